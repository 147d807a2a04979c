"""Traces and tracers: how transformations intercept primitive applications.

The design is Autodidax's: a stack of *main traces*, one per active
transformation, each with a level. ``bind`` finds the highest-level trace among
its arguments (or the *dynamic* trace, which staging installs so that even
constant computations are recorded), lifts every argument into it and lets it
process the primitive. Transformations of different kinds nest to any depth
because each one only ever sees tracers of its own level.

With no transformation active, ``bind`` calls the NumPy implementation directly:
that is eager mode.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

from functrace.config import config
from functrace.core.abstract import ShapedArray, concrete_aval
from functrace.core.source_info import with_user_line
from functrace.errors import ConcretizationError, UnexpectedTracerError

if TYPE_CHECKING:
    from functrace.core.primitive import Primitive


class MainTrace:
    """One active transformation: its level on the stack and its global data."""

    __slots__ = ("level", "trace_type", "global_data", "active", "description")

    def __init__(self, level: int, trace_type: type, global_data: Any, description: str):
        self.level = level
        self.trace_type = trace_type
        self.global_data = global_data
        self.active = True
        self.description = description

    def __repr__(self) -> str:
        return f"MainTrace({self.level}, {self.trace_type.__name__})"


class Trace:
    """How one transformation processes primitives applied to its tracers."""

    __slots__ = ("main",)

    def __init__(self, main: MainTrace):
        self.main = main

    def pure(self, val: Any) -> Tracer:
        """Embed a concrete value."""
        raise NotImplementedError

    def lift(self, tracer: Tracer) -> Tracer:
        """Embed a tracer of a lower level."""
        raise NotImplementedError

    def process_primitive(self, primitive: Primitive, tracers: list, params: dict) -> list:
        raise NotImplementedError

    def concretization_message(self, tracer: Tracer, what: str) -> str:
        return with_user_line(
            f"{what} needs a concrete value, but got a traced value {tracer.aval.str_short()} "
            f"inside {self.main.description}. Use lax.cond / lax.while_loop for control flow "
            "that depends on traced values, or mark the argument as static with static_argnums."
        )

    def full_raise(self, val: Any) -> Tracer:
        if not isinstance(val, Tracer):
            return self.pure(val)
        main = val._trace.main
        if main is self.main:
            return val
        if not main.active:
            raise _leaked(main)
        if main.level < self.main.level:
            return self.lift(val)
        raise UnexpectedTracerError(
            with_user_line(
                f"a value traced by {main.description} reached {self.main.description}, "
                "which started earlier; did a traced value escape through a global or a closure?"
            )
        )


class EvalTrace(Trace):
    """The bottom of the stack: apply implementations to concrete values."""

    __slots__ = ()

    def pure(self, val):
        return val

    lift = pure

    def process_primitive(self, primitive, values, params):
        return primitive.impl(*values, **params)


class Tracer:
    """A value flowing through a transformation.

    Subclasses provide ``aval``. Operators (``+``, ``@``, ``x[i]``, ``.at``...) are
    installed by ``functrace.numpy`` so that the core knows nothing of NumPy's API.
    """

    __slots__ = ("_trace",)
    __array_priority__ = 1000
    __array_ufunc__ = None  # make `ndarray + tracer` defer to Tracer.__radd__

    _trace: Trace

    @property
    def aval(self) -> ShapedArray:
        raise NotImplementedError

    @property
    def shape(self) -> tuple[int, ...]:
        return self.aval.shape

    @property
    def dtype(self) -> np.dtype:
        return self.aval.dtype

    @property
    def ndim(self) -> int:
        return self.aval.ndim

    @property
    def size(self) -> int:
        return self.aval.size

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d traced value")
        return self.shape[0]

    def __iter__(self) -> Iterator:
        if not self.shape:
            raise TypeError("iteration over a 0-d traced value")
        return (self[i] for i in range(self.shape[0]))

    def full_lower(self) -> Any:
        """This value at the lowest level that can represent it."""
        return self

    def inner(self) -> Any:
        """The value this tracer wraps at a lower level, for transformations that have one."""
        return None

    def concrete_value(self) -> np.ndarray | None:
        """The concrete value behind this tracer, when the transformation has one."""
        inner = self.inner()
        if inner is None:
            return None
        return inner.concrete_value() if isinstance(inner, Tracer) else np.asarray(inner)

    def _concretize(self, what: str) -> np.ndarray:
        value = self.concrete_value()
        if value is None:
            inner = self.inner()
            if isinstance(inner, Tracer):
                return inner._concretize(what)  # the innermost trace knows where the value came from
            raise ConcretizationError(self._trace.concretization_message(self, what))
        return value

    def __bool__(self) -> bool:
        return bool(self._concretize("bool()"))

    def __int__(self) -> int:
        return int(self._concretize("int()"))

    def __float__(self) -> float:
        return float(self._concretize("float()"))

    def __index__(self) -> int:
        return int(self._concretize("an index (__index__)"))

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        value = np.asarray(self._concretize("numpy.asarray()"))
        return value if dtype is None else value.astype(dtype)

    __hash__ = None  # type: ignore[assignment]  # == is elementwise

    def __repr__(self) -> str:
        return f"Traced<{self.aval.str_short()}> by {self._trace.main.description}"


def _leaked(main: MainTrace) -> UnexpectedTracerError:
    return UnexpectedTracerError(
        with_user_line(
            f"a traced value created by {main.description} was used after that "
            "transformation ended. It escaped, e.g. through a global variable, a list "
            "appended to, or a closure; return it from the function instead."
        )
    )


class _TraceState(threading.local):
    def __init__(self) -> None:
        bottom = MainTrace(0, EvalTrace, None, "eager evaluation")
        self.stack: list[MainTrace] = [bottom]
        self.dynamic: MainTrace = bottom


_state = _TraceState()


@contextmanager
def new_main(trace_type: type, global_data: Any = None, *, description: str, dynamic: bool = False):
    """Push a transformation on the stack for the duration of the block."""
    stack = _state.stack
    main = MainTrace(len(stack), trace_type, global_data, description)
    stack.append(main)
    prev_dynamic = _state.dynamic
    if dynamic:
        _state.dynamic = main
    try:
        yield main
    finally:
        main.active = False
        _state.dynamic = prev_dynamic
        stack.pop()


def current_level() -> int:
    return len(_state.stack) - 1


def bind(primitive: Primitive, *args: Any, **params: Any):
    """Apply ``primitive`` to ``args`` in the innermost relevant transformation."""
    top = None
    for a in args:
        if isinstance(a, Tracer):
            main = a._trace.main
            if top is None or main.level > top.level:
                top = main
    dynamic = _state.dynamic
    if top is None:
        if dynamic.level == 0:
            # Eager: check types as staging would, so bad input fails the same way.
            primitive.abstract_eval(*[concrete_aval(a) for a in args], **params)
            outs = primitive.impl(*args, **params)
            if _config_values["debug_nans"]:
                check_nans(primitive, args, outs)
            return outs if primitive.multiple_results else outs[0]
        top = dynamic
    elif dynamic.level > top.level:
        top = dynamic
    if not top.active:
        raise _leaked(top)
    trace = top.trace_type(top)
    tracers = [trace.full_raise(a) for a in args]
    outs = [full_lower(o) for o in trace.process_primitive(primitive, tracers, params)]
    return outs if primitive.multiple_results else outs[0]


_config_values = config._values


def _has_nan(x: Any) -> bool:
    arr = np.asarray(x)
    return arr.dtype.kind == "f" and bool(np.isnan(arr).any())


def check_nans(primitive: Primitive, args: Any, outs: list) -> None:
    """``debug_nans``: raise if this primitive made a NaN out of NaN-free inputs."""
    if any(_has_nan(o) for o in outs) and not any(_has_nan(a) for a in args):
        raise FloatingPointError(with_user_line(f"debug_nans: the primitive '{primitive.name}' produced a NaN"))


def full_lower(val: Any) -> Any:
    if isinstance(val, Tracer):
        return val.full_lower()
    return val


def get_aval(x: Any) -> ShapedArray:
    """The abstract value of a tracer or a concrete value."""
    if isinstance(x, Tracer):
        return x.aval
    return concrete_aval(x)


def is_traced(x: Any) -> bool:
    return isinstance(x, Tracer)
