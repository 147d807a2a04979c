"""NumPy semantics on top of strict primitives: promotion and broadcasting.

Primitives want equal dtypes and shapes; these helpers insert the
``convert_element_type`` and ``broadcast_in_dim`` that NumPy does implicitly.
On concrete values (eager mode) the same helpers run the NumPy implementations
at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from functrace.config import config
from functrace.core import dtypes
from functrace.core.abstract import ShapedArray, concrete_aval, is_python_scalar
from functrace.core.source_info import with_user_line
from functrace.core.trace import Tracer, _state, get_aval
from functrace.lax.elementwise import convert_element_type_p
from functrace.lax.structural import broadcast_in_dim_p

ArrayLike = Any


_CONFIG = config._values


def eager_fast_path() -> bool:
    """May an eager call skip the primitives and call NumPy directly? Not while staging,
    and not with ``debug_nans``, which checks every primitive."""
    return _state.dynamic.level == 0 and not _CONFIG["debug_nans"]


def is_eager(*args: Any) -> bool:
    """True when no argument is traced and no staging is active."""
    return _state.dynamic.level == 0 and not any(isinstance(a, Tracer) for a in args)


def asarray(x: ArrayLike, dtype: Any = None) -> Any:
    """A tracer stays a tracer (converted if ``dtype`` differs); anything else becomes an ndarray."""
    if isinstance(x, Tracer):
        return x if dtype is None else convert(x, dtypes.canonicalize(dtype))
    if isinstance(x, list | tuple) and any(isinstance(e, Tracer) for e in _flat_sequence(x)):
        from functrace.numpy.manipulation import stack

        return stack([asarray(e, dtype) for e in x])
    if dtype is not None:
        dtype = dtypes.canonicalize(dtype)
    arr = np.asarray(x)
    target = dtype if dtype is not None else dtypes.canonicalize(arr.dtype)
    return arr if arr.dtype == target else arr.astype(target)


def _flat_sequence(x: Any) -> list:
    if isinstance(x, list | tuple):
        return [e for item in x for e in _flat_sequence(item)]
    return [x]


def convert(x: ArrayLike, dtype: np.dtype, weak_type: bool = False) -> Any:
    """``x`` as ``dtype``: a ``convert_element_type`` for a tracer, NumPy for a constant."""
    if isinstance(x, Tracer):
        if x.aval.dtype == dtype:
            return x  # a weak flag alone is not worth an equation: it only guides promotion
        return convert_element_type_p.bind(x, new_dtype=dtype, weak_type=weak_type)
    arr = np.asarray(x)
    return arr if arr.dtype == dtype else arr.astype(dtype)


def broadcast_shapes(name: str, *shapes: Sequence[int]) -> tuple[int, ...]:
    """NumPy's broadcasting of shapes; ``TypeError`` naming the operation and shapes."""
    ndim = max((len(s) for s in shapes), default=0)
    out = [1] * ndim
    for shape in shapes:
        for i, d in enumerate(shape, start=ndim - len(shape)):
            if d == out[i] or d == 1:
                continue
            if out[i] == 1:
                out[i] = d
            else:
                listed = " and ".join(str(tuple(s)) for s in shapes)
                raise TypeError(with_user_line(f"{name} got incompatible shapes for broadcasting: {listed}"))
    return tuple(out)


def broadcast_to(x: ArrayLike, shape: Sequence[int]) -> Any:
    """Broadcast ``x`` (NumPy rules) to ``shape`` with ``broadcast_in_dim``."""
    shape = tuple(shape)
    aval = get_aval(x)
    if aval.shape == shape:
        return x
    if aval.ndim > len(shape):
        raise TypeError(with_user_line(f"cannot broadcast shape {aval.shape} to {shape}"))
    if broadcast_shapes("broadcast_to", aval.shape, shape) != shape:
        raise TypeError(with_user_line(f"cannot broadcast shape {aval.shape} to {shape}"))
    dims = tuple(range(len(shape) - aval.ndim, len(shape)))
    if not isinstance(x, Tracer):
        x = np.asarray(x, dtype=aval.dtype)
    return broadcast_in_dim_p.bind(x, shape=shape, broadcast_dimensions=dims)


def result_type(*args: ArrayLike) -> tuple[np.dtype, bool]:
    """NumPy 2 promotion of the arguments (Python scalars weakly typed)."""
    return dtypes.result_type(*[get_aval(a) for a in args])


def promote_dtypes(*args: ArrayLike) -> list[Any]:
    """Convert every argument to the promoted dtype (no broadcasting)."""
    dtype, weak = result_type(*args)
    return [_convert_arg(a, dtype, weak) for a in args]


def _convert_arg(x: ArrayLike, dtype: np.dtype, weak: bool) -> Any:
    if isinstance(x, Tracer):
        return convert(x, dtype, weak)
    if is_python_scalar(x):
        return np.asarray(x, dtype=dtype)
    arr = np.asarray(x)
    canonical = dtypes.canonicalize(arr.dtype)
    return arr if canonical == dtype and arr.dtype == dtype else arr.astype(dtype)


def promote(name: str, *args: ArrayLike) -> list[Any]:
    """Promote to a common dtype and broadcast to a common shape (rank-0 operands stay
    scalars: elementwise primitives broadcast them)."""
    avals = [get_aval(a) for a in args]
    dtype, weak = dtypes.result_type(*avals)
    shape = broadcast_shapes(name, *[a.shape for a in avals])
    out = []
    for a, aval in zip(args, avals, strict=True):
        a = _convert_arg(a, dtype, weak)
        if aval.shape != shape and aval.shape != ():  # rank-0 operands broadcast in the primitive
            a = broadcast_to(a, shape)
        out.append(a)
    return out


def inexact_dtype(aval: ShapedArray) -> tuple[np.dtype, bool]:
    """The float dtype an operation like ``sin`` computes in (ints and bools go to float64)."""
    return (aval.dtype, aval.weak_type) if aval.dtype.kind == "f" else (dtypes.float64, aval.weak_type)


def promote_inexact(*args: ArrayLike) -> list[Any]:
    """Promote together, then to a float dtype (as NumPy's ``sin`` or ``true_divide`` do)."""
    dtype, weak = result_type(*args)
    if dtype.kind != "f":
        dtype = dtypes.float64
    return [_convert_arg(a, dtype, weak) for a in args]


def aval_of(x: ArrayLike) -> ShapedArray:
    return x.aval if isinstance(x, Tracer) else concrete_aval(x)
