"""Elementwise functions of ``functrace.numpy``: NumPy's names, broadcasting and promotion."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from functrace.core import dtypes
from functrace.core.source_info import api_boundary, with_user_line
from functrace.core.trace import Tracer
from functrace.lax import elementwise as ew
from functrace.numpy.promotion import (
    aval_of,
    broadcast_shapes,
    broadcast_to,
    convert,
    eager_fast_path,
    promote,
    promote_inexact,
)

ArrayLike = Any
_SUPPORTED = dtypes.SHORT_NAMES


__all__ = [
    "abs", "absolute", "add", "bitwise_and", "bitwise_not", "bitwise_or", "bitwise_xor", "ceil",
    "clip", "cos", "divide", "equal", "exp", "expm1", "floor", "floor_divide", "greater",
    "greater_equal", "invert", "isfinite", "isinf", "isnan", "left_shift", "less", "less_equal",
    "log", "log1p", "logaddexp", "logical_and", "logical_not", "logical_or", "logical_xor",
    "maximum", "minimum", "mod", "multiply", "negative", "not_equal", "positive", "power",
    "reciprocal", "remainder", "right_shift", "round", "sign", "sin", "sqrt", "square",
    "subtract", "tanh", "true_divide", "where",
]  # fmt: skip

_EXAMPLE = np.array([0.5, 2.0])


def _document(fn: Callable, name: str, example: str) -> Callable:
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = (
        f"NumPy's ``{name}``, usable on traced values.\n\n"
        f">>> import numpy as np, functrace.numpy as fnp\n>>> {example}\n"
    )
    return api_boundary(fn)


def _unary_inexact(prim, name: str, np_fn: Callable) -> Callable:
    def fn(x: ArrayLike) -> Any:
        if type(x) is np.ndarray and x.dtype.kind == "f" and x.dtype in _SUPPORTED and eager_fast_path():
            return prim.impl(x)[0]
        (x,) = promote_inexact(x)
        return prim.bind(x)

    with np.errstate(all="ignore"):
        result = np_fn(_EXAMPLE)
    return _document(fn, name, f"fnp.{name}(np.array([0.5, 2.0]))\n{result!r}")


_PYTHON_SCALARS = (int, float, bool)


def _array_and_scalar(x1: Any, x2: Any) -> bool:
    if type(x1) is np.ndarray:
        return type(x2) in _PYTHON_SCALARS and x1.dtype in _SUPPORTED
    return type(x2) is np.ndarray and type(x1) in _PYTHON_SCALARS and x2.dtype in _SUPPORTED


def _supported_arrays(*xs: Any) -> bool:
    return all(type(x) is np.ndarray and x.dtype in _SUPPORTED for x in xs)


def _binary(prim, name: str, np_fn: Callable, bool_prim=None) -> Callable:
    """``bool_prim`` is what NumPy computes on two bools (``add`` is ``or`` there)."""

    def fn(x1: ArrayLike, x2: ArrayLike) -> Any:
        if (
            type(x1) is np.ndarray
            and type(x2) is np.ndarray
            and x1.shape == x2.shape
            and x1.dtype == x2.dtype
            and x1.dtype in _SUPPORTED
            and eager_fast_path()
        ):
            return prim.impl(x1, x2)[0]
        if eager_fast_path() and (_array_and_scalar(x1, x2) or _supported_arrays(x1, x2)):
            try:
                return np_fn(x1, x2)  # NumPy 2 promotes and broadcasts exactly as we do
            except ValueError:
                pass  # incompatible shapes: the general path raises our TypeError
        x1, x2 = promote(name, x1, x2)
        if bool_prim is not None and aval_of(x1).dtype == dtypes.bool_:
            return bool_prim.bind(x1, x2)
        return prim.bind(x1, x2)

    result = np_fn(_EXAMPLE, np.array([1.0, 3.0]))
    return _document(fn, name, f"fnp.{name}(np.array([0.5, 2.0]), np.array([1.0, 3.0]))\n{result!r}")


exp = _unary_inexact(ew.exp_p, "exp", np.exp)
log = _unary_inexact(ew.log_p, "log", np.log)
log1p = _unary_inexact(ew.log1p_p, "log1p", np.log1p)
expm1 = _unary_inexact(ew.expm1_p, "expm1", np.expm1)
tanh = _unary_inexact(ew.tanh_p, "tanh", np.tanh)
sin = _unary_inexact(ew.sin_p, "sin", np.sin)
cos = _unary_inexact(ew.cos_p, "cos", np.cos)
sqrt = _unary_inexact(ew.sqrt_p, "sqrt", np.sqrt)

add = _binary(ew.add_p, "add", np.add, ew.or_p)
subtract = _binary(ew.sub_p, "subtract", np.subtract)
multiply = _binary(ew.mul_p, "multiply", np.multiply, ew.and_p)
maximum = _binary(ew.max_p, "maximum", np.maximum, ew.or_p)
minimum = _binary(ew.min_p, "minimum", np.minimum, ew.and_p)
equal = _binary(ew.eq_p, "equal", np.equal)
not_equal = _binary(ew.ne_p, "not_equal", np.not_equal)
less = _binary(ew.lt_p, "less", np.less)
less_equal = _binary(ew.le_p, "less_equal", np.less_equal)
greater = _binary(ew.gt_p, "greater", np.greater)
greater_equal = _binary(ew.ge_p, "greater_equal", np.greater_equal)


def _bitwise(prim, name: str) -> Callable:
    def fn(x1: ArrayLike, x2: ArrayLike) -> Any:
        return prim.bind(*promote(name, x1, x2))

    return _document(
        fn,
        name,
        f"fnp.{name}(np.array([12, 10]), np.array([10, 6]))\n"
        f"{getattr(np, name)(np.array([12, 10]), np.array([10, 6]))!r}",
    )


bitwise_and = _bitwise(ew.and_p, "bitwise_and")
bitwise_or = _bitwise(ew.or_p, "bitwise_or")
bitwise_xor = _bitwise(ew.xor_p, "bitwise_xor")
left_shift = _bitwise(ew.shift_left_p, "left_shift")


@api_boundary
def right_shift(x1: ArrayLike, x2: ArrayLike) -> Any:
    """NumPy's ``right_shift``: arithmetic on signed, logical on unsigned integers.

    >>> import numpy as np, functrace.numpy as fnp
    >>> fnp.right_shift(np.uint32(0x80000000), 31)
    array(1, dtype=uint32)
    """
    x1, x2 = promote("right_shift", x1, x2)
    prim = ew.shift_right_arithmetic_p if aval_of(x1).dtype.kind == "i" else ew.shift_right_logical_p
    return prim.bind(x1, x2)


@api_boundary
def bitwise_not(x: ArrayLike) -> Any:
    """NumPy's ``bitwise_not`` (``~x``): logical not on bool, bit flip on integers.

    >>> import numpy as np, functrace.numpy as fnp
    >>> fnp.bitwise_not(np.array([True, False]))
    array([False,  True])
    """
    (x,) = promote("bitwise_not", x)
    return ew.not_p.bind(x)


invert = bitwise_not


def _to_bool(x: ArrayLike) -> Any:
    aval = aval_of(x)
    if aval.dtype == dtypes.bool_:
        return x if isinstance(x, Tracer) else np.asarray(x)
    return not_equal(x, np.zeros((), aval.dtype))


def _logical(prim, name: str) -> Callable:
    def fn(x1: ArrayLike, x2: ArrayLike) -> Any:
        return prim.bind(*promote(name, _to_bool(x1), _to_bool(x2)))

    result = getattr(np, name)(np.array([True, False]), np.array([True, True]))
    return _document(fn, name, f"fnp.{name}(np.array([True, False]), np.array([True, True]))\n{result!r}")


logical_and = _logical(ew.and_p, "logical_and")
logical_or = _logical(ew.or_p, "logical_or")
logical_xor = _logical(ew.xor_p, "logical_xor")


@api_boundary
def logical_not(x: ArrayLike) -> Any:
    """NumPy's ``logical_not``.

    >>> import numpy as np, functrace.numpy as fnp
    >>> fnp.logical_not(np.array([0.0, 2.0]))
    array([ True, False])
    """
    return ew.not_p.bind(_to_bool(x))


@api_boundary
def negative(x: ArrayLike) -> Any:
    """NumPy's ``negative`` (``-x``).

    >>> import numpy as np, functrace.numpy as fnp
    >>> fnp.negative(np.array([1.0, -2.0]))
    array([-1.,  2.])
    """
    if type(x) is np.ndarray and x.dtype in _SUPPORTED and eager_fast_path() and x.dtype != dtypes.bool_:
        return ew.neg_p.impl(x)[0]
    (x,) = promote("negative", x)
    if aval_of(x).dtype == dtypes.bool_:
        raise TypeError(with_user_line("negative is not defined on bool; use logical_not"))
    return ew.neg_p.bind(x)


@api_boundary
def positive(x: ArrayLike) -> Any:
    """NumPy's ``positive`` (``+x``): the value itself.

    >>> import numpy as np, functrace.numpy as fnp
    >>> fnp.positive(np.array([1.0]))
    array([1.])
    """
    (x,) = promote("positive", x)
    return x


def _numeric_unary(prim, name: str, np_fn: Callable) -> Callable:
    def fn(x: ArrayLike) -> Any:
        (x,) = promote(name, x)
        if aval_of(x).dtype == dtypes.bool_:
            x = convert(x, dtypes.int64) if name == "sign" else x
            if name == "abs":
                return x
        return prim.bind(x)

    return _document(fn, name, f"fnp.{name}(np.array([-1.5, 2.0]))\n{np_fn(np.array([-1.5, 2.0]))!r}")


abs = _numeric_unary(ew.abs_p, "abs", np.abs)  # noqa: A001  (NumPy's name)
absolute = abs
sign = _numeric_unary(ew.sign_p, "sign", np.sign)


def _rounding(prim, name: str, np_fn: Callable) -> Callable:
    def fn(x: ArrayLike) -> Any:
        (x,) = promote(name, x)
        if aval_of(x).dtype.kind != "f":
            return x  # integers are already whole, as in NumPy
        return prim.bind(x)

    return _document(fn, name, f"fnp.{name}(np.array([-1.5, 2.5]))\n{np_fn(np.array([-1.5, 2.5]))!r}")


floor = _rounding(ew.floor_p, "floor", np.floor)
ceil = _rounding(ew.ceil_p, "ceil", np.ceil)
_round_half_even = _rounding(ew.round_p, "round", np.round)


@api_boundary
def round(a: ArrayLike, decimals: int = 0) -> Any:  # noqa: A001  (NumPy's name)
    """NumPy's ``round`` (half to even), with ``decimals``.

    >>> import numpy as np, functrace.numpy as fnp
    >>> fnp.round(np.array([0.5, 1.5, 1.26]), 1)
    array([0.5, 1.5, 1.3])
    """
    if decimals == 0:
        return _round_half_even(a)
    (a,) = promote("round", a)
    if aval_of(a).dtype.kind != "f":
        raise TypeError(with_user_line("round with decimals is only supported for floats"))
    scale = 10.0**decimals
    return divide(_round_half_even(multiply(a, scale)), scale)


@api_boundary
def true_divide(x1: ArrayLike, x2: ArrayLike) -> Any:
    """NumPy's ``true_divide`` (``x1 / x2``): integers divide as floats.

    >>> import numpy as np, functrace.numpy as fnp
    >>> fnp.true_divide(np.array([1, 3]), 2)
    array([0.5, 1.5])
    """
    if (
        type(x1) is np.ndarray
        and type(x2) is np.ndarray
        and x1.shape == x2.shape
        and x1.dtype == x2.dtype
        and x1.dtype in dtypes.FLOATING
        and eager_fast_path()
    ):
        return ew.div_p.impl(x1, x2)[0]
    return ew.div_p.bind(*promote("true_divide", *promote_inexact(x1, x2)))


divide = true_divide


@api_boundary
def floor_divide(x1: ArrayLike, x2: ArrayLike) -> Any:
    """NumPy's ``floor_divide`` (``x1 // x2``).

    >>> import numpy as np, functrace.numpy as fnp
    >>> fnp.floor_divide(np.array([-7, 7]), 2)
    array([-4,  3])
    """
    x1, x2 = promote("floor_divide", x1, x2)
    if aval_of(x1).dtype.kind == "f":
        return floor(ew.div_p.bind(x1, x2))
    # Truncated quotient, minus one where the signs differ and the division is inexact.
    q = ew.div_p.bind(x1, x2)
    r = ew.rem_p.bind(x1, x2)
    zero = np.zeros((), aval_of(x1).dtype)
    adjust = logical_and(not_equal(r, zero), not_equal(less(r, zero), less(x2, zero)))
    return where(adjust, subtract(q, np.ones((), aval_of(x1).dtype)), q)


@api_boundary
def remainder(x1: ArrayLike, x2: ArrayLike) -> Any:
    """NumPy's ``remainder`` (``x1 % x2``): the result has the sign of the divisor.

    >>> import numpy as np, functrace.numpy as fnp
    >>> fnp.remainder(np.array([-7, 7]), 3)
    array([2, 1])
    """
    x1, x2 = promote("remainder", x1, x2)
    r = ew.rem_p.bind(x1, x2)
    zero = np.zeros((), aval_of(x1).dtype)
    adjust = logical_and(not_equal(r, zero), not_equal(less(r, zero), less(x2, zero)))
    return where(adjust, add(r, x2), r)


mod = remainder


@api_boundary
def power(x1: ArrayLike, x2: ArrayLike) -> Any:
    """NumPy's ``power`` (``x1 ** x2``). A Python integer exponent uses ``integer_pow``.

    >>> import numpy as np, functrace.numpy as fnp
    >>> fnp.power(np.array([2.0, 3.0]), 2)
    array([4., 9.])
    """
    if type(x2) is int:
        (x1,) = promote("power", x1)
        if aval_of(x1).dtype == dtypes.bool_:
            x1 = convert(x1, dtypes.int64)
        return ew.integer_pow_p.bind(x1, y=x2)
    x1, x2 = promote("power", x1, x2)
    if aval_of(x1).dtype == dtypes.bool_:
        x1, x2 = convert(x1, dtypes.int64), convert(x2, dtypes.int64)
    return ew.pow_p.bind(x1, x2)


@api_boundary
def square(x: ArrayLike) -> Any:
    """NumPy's ``square``.

    >>> import numpy as np, functrace.numpy as fnp
    >>> fnp.square(np.array([1.5, -2.0]))
    array([2.25, 4.  ])
    """
    (x,) = promote("square", x)
    return ew.integer_pow_p.bind(x, y=2)


@api_boundary
def reciprocal(x: ArrayLike) -> Any:
    """``1 / x`` in the dtype of ``x`` (floats).

    >>> import numpy as np, functrace.numpy as fnp
    >>> fnp.reciprocal(np.array([2.0, 4.0]))
    array([0.5 , 0.25])
    """
    (x,) = promote_inexact(x)
    return ew.integer_pow_p.bind(x, y=-1)


@api_boundary
def where(condition: ArrayLike, x: ArrayLike = None, y: ArrayLike = None) -> Any:
    """NumPy's three-argument ``where``.

    >>> import numpy as np, functrace.numpy as fnp
    >>> fnp.where(np.array([True, False]), 1.0, np.array([5.0, 6.0]))
    array([1., 6.])
    """
    if x is None or y is None:
        raise TypeError(with_user_line("where(condition) without x and y has a data-dependent shape; pass x and y"))
    condition = _to_bool(condition)
    x, y = promote("where", x, y)
    shape = broadcast_shapes("where", aval_of(condition).shape, aval_of(x).shape, aval_of(y).shape)
    condition, x, y = (v if aval_of(v).shape in ((), shape) else broadcast_to(v, shape) for v in (condition, x, y))
    if all(aval_of(v).shape == () for v in (condition, x, y)) or shape == ():
        return ew.select_p.bind(condition, x, y)
    if aval_of(x).shape == () and aval_of(y).shape == ():  # the output takes its shape from an operand
        x = broadcast_to(x, shape)
    return ew.select_p.bind(condition, x, y)


@api_boundary
def clip(a: ArrayLike, a_min: ArrayLike = None, a_max: ArrayLike = None) -> Any:
    """NumPy's ``clip``; either bound may be ``None``.

    >>> import numpy as np, functrace.numpy as fnp
    >>> fnp.clip(np.array([-2.0, 0.5, 3.0]), 0.0, 1.0)
    array([0. , 0.5, 1. ])
    """
    if a_min is not None:
        a = maximum(a, a_min)
    if a_max is not None:
        a = minimum(a, a_max)
    return a


@api_boundary
def isfinite(x: ArrayLike) -> Any:
    """NumPy's ``isfinite``.

    >>> import numpy as np, functrace.numpy as fnp
    >>> fnp.isfinite(np.array([1.0, np.inf, np.nan]))
    array([ True, False, False])
    """
    (x,) = promote("isfinite", x)
    if aval_of(x).dtype.kind != "f":
        return broadcast_to(np.asarray(True), aval_of(x).shape)
    return ew.is_finite_p.bind(x)


@api_boundary
def isnan(x: ArrayLike) -> Any:
    """NumPy's ``isnan``.

    >>> import numpy as np, functrace.numpy as fnp
    >>> fnp.isnan(np.array([1.0, np.nan]))
    array([False,  True])
    """
    return not_equal(x, x)


@api_boundary
def isinf(x: ArrayLike) -> Any:
    """NumPy's ``isinf``.

    >>> import numpy as np, functrace.numpy as fnp
    >>> fnp.isinf(np.array([1.0, -np.inf, np.nan]))
    array([False,  True, False])
    """
    return logical_and(logical_not(isfinite(x)), logical_not(isnan(x)))


@api_boundary
def logaddexp(x1: ArrayLike, x2: ArrayLike) -> Any:
    """NumPy's ``logaddexp``: ``log(exp(x1) + exp(x2))`` without overflow.

    >>> import numpy as np, functrace.numpy as fnp
    >>> fnp.logaddexp(np.array([1000.0]), np.array([1000.0]))
    array([1000.69314718])
    """
    x1, x2 = promote("logaddexp", *promote_inexact(x1, x2))
    amax = maximum(x1, x2)
    delta = subtract(x1, x2)
    return where(isnan(delta), add(x1, x2), add(amax, log1p(exp(negative(abs(delta))))))
