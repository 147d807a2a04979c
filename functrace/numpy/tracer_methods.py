"""Operators and array methods on traced values, forwarding to ``functrace.numpy``.

Installed once when ``functrace.numpy`` is imported, so the core's ``Tracer``
knows nothing of the NumPy API.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from functrace.core.trace import Tracer


def _fnp(name: str) -> Callable:
    import functrace.numpy as fnp

    return getattr(fnp, name)


def _forward(name: str) -> Callable:
    def method(self, *args: Any, **kwargs: Any) -> Any:
        return _fnp(name)(self, *args, **kwargs)

    method.__name__ = name
    return method


def _reflected(name: str) -> Callable:
    def method(self, other: Any) -> Any:
        return _fnp(name)(other, self)

    method.__name__ = f"r{name}"
    return method


_BINARY_OPERATORS = {
    "add": "add",
    "sub": "subtract",
    "mul": "multiply",
    "truediv": "true_divide",
    "floordiv": "floor_divide",
    "mod": "remainder",
    "pow": "power",
    "matmul": "matmul",
    "and": "bitwise_and",
    "or": "bitwise_or",
    "xor": "bitwise_xor",
    "lshift": "left_shift",
    "rshift": "right_shift",
}
_COMPARISONS = {
    "eq": "equal",
    "ne": "not_equal",
    "lt": "less",
    "le": "less_equal",
    "gt": "greater",
    "ge": "greater_equal",
}
_UNARY = {"neg": "negative", "pos": "positive", "abs": "abs", "invert": "bitwise_not"}
_METHODS = (
    "reshape", "transpose", "sum", "mean", "max", "min", "prod", "var", "std", "argmax", "argmin",
    "ravel", "squeeze", "swapaxes", "clip", "round", "dot", "cumsum", "any", "all", "repeat",
)  # fmt: skip


def _astype(self: Tracer, dtype: Any) -> Any:
    return _fnp("asarray")(self, dtype=dtype)


def _getitem(self: Tracer, index: Any) -> Any:
    from functrace.numpy.indexing import getitem

    return getitem(self, index)


def _at(self: Tracer) -> Any:
    from functrace.numpy.indexing import AtIndexer

    return AtIndexer(self)


def _transpose_property(self: Tracer) -> Any:
    return _fnp("transpose")(self)


def _flatten(self: Tracer) -> Any:
    return _fnp("ravel")(self)


def install() -> None:
    for op, name in _BINARY_OPERATORS.items():
        setattr(Tracer, f"__{op}__", _forward(name))
        setattr(Tracer, f"__r{op}__", _reflected(name))
    for op, name in _COMPARISONS.items():
        setattr(Tracer, f"__{op}__", _forward(name))
    for op, name in _UNARY.items():
        setattr(Tracer, f"__{op}__", _forward(name))
    for name in _METHODS:
        setattr(Tracer, name, _forward(name))
    Tracer.astype = _astype
    Tracer.flatten = _flatten
    Tracer.__getitem__ = _getitem
    Tracer.at = property(_at)
    Tracer.T = property(_transpose_property)
