"""Reductions of ``functrace.numpy``: ``sum``, ``mean``, ``max``, ... with ``axis`` and ``keepdims``.

Result dtypes are NumPy's: ``sum``/``prod``/``cumsum`` of bool and int32 give int64,
``mean``/``var``/``std`` of integers give float64, float32 stays float32. One
difference: NumPy accumulates uint32 in uint64, which functrace does not have, so
uint32 stays uint32 and wraps (as in JAX).
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

import numpy as np

from functrace.core import dtypes
from functrace.core.primitive import Primitive
from functrace.core.source_info import api_boundary, with_user_line
from functrace.lax.reductions import (
    argmax_p,
    argmin_p,
    cumsum_p,
    reduce_max_p,
    reduce_min_p,
    reduce_prod_p,
    reduce_sum_p,
)
from functrace.numpy.manipulation import expand_reduced, reshape
from functrace.numpy.promotion import aval_of, convert, eager_fast_path, promote

__all__ = [
    "all", "amax", "amin", "any", "argmax", "argmin", "count_nonzero", "cumsum", "max", "mean",
    "min", "prod", "std", "sum", "var",
]  # fmt: skip

Axis = int | Sequence[int] | None


def normalize_axes(axis: Axis, ndim: int, name: str) -> tuple[int, ...]:
    """``axis`` as a sorted tuple of non-negative axes; ``None`` means all."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int | np.integer) else axis
    if not isinstance(axes, Sequence):
        raise TypeError(with_user_line(f"{name}: axis must be an integer or a tuple of integers, got {axis!r}"))
    out = []
    for a in axes:
        if not isinstance(a, int | np.integer):
            raise TypeError(with_user_line(f"{name}: axis must be an integer or a tuple of integers, got {axis!r}"))
        if not -ndim <= a < ndim:
            raise ValueError(with_user_line(f"{name}: axis {a} is out of bounds for an array of dimension {ndim}"))
        out.append(int(a) % ndim)
    if len(set(out)) != len(out):
        raise ValueError(with_user_line(f"{name}: repeated axis in {axis}"))
    return tuple(sorted(out))


def _unsupported(name: str, **kwargs: Any) -> None:
    """NumPy arguments that functrace does not implement: ``out``, ``initial``, ``where``."""
    for key, value in kwargs.items():
        if value is not None and not (key == "where" and value is True):
            raise NotImplementedError(f"{name}: the '{key}' argument is not supported")


def _accumulator_dtype(dtype: np.dtype) -> np.dtype:
    # NumPy sums and multiplies bools and int32 in int64 (and uint32 in uint64, which
    # functrace does not have: uint32 stays uint32 and wraps, as in JAX).
    if dtype == dtypes.bool_ or dtype == dtypes.int32:
        return dtypes.int64
    return dtype


def _float_dtype(dtype: np.dtype, requested: Any) -> np.dtype:
    if requested is not None:
        return dtypes.canonicalize(requested)
    return dtype if dtype.kind == "f" else dtypes.float64


_NUMPY_REDUCERS = {
    reduce_sum_p: np.add.reduce,
    reduce_prod_p: np.multiply.reduce,
    reduce_max_p: np.maximum.reduce,
    reduce_min_p: np.minimum.reduce,
}


def _reduce(name: str, prim: Primitive, a: Any, axis: Axis, keepdims: bool, target: Any = None) -> Any:
    """Reduce ``a`` with ``prim`` over ``axis``; ``target`` maps the input dtype to the one reduced in."""
    if (
        type(a) is np.ndarray
        and a.dtype in dtypes.SHORT_NAMES
        and prim in _NUMPY_REDUCERS
        and a.size  # max/min of nothing is the identity for the primitive, an error for NumPy
        and eager_fast_path()
    ):
        # Eager: NumPy's reduction directly, in the dtype the primitive would use.
        axes = normalize_axes(axis, a.ndim, name)
        dtype = a.dtype if target is None else target(a.dtype)
        return _NUMPY_REDUCERS[prim](a, axis=axes, dtype=dtype, keepdims=keepdims)
    (a,) = promote(name, a)
    aval = aval_of(a)
    axes = normalize_axes(axis, aval.ndim, name)
    if target is not None:
        a = convert(a, target(aval.dtype))
    out = prim.bind(a, axes=axes)
    return expand_reduced(out, aval.shape, axes) if keepdims else out


def _check_nonempty(name: str, a: Any, axis: Axis, message: str) -> None:
    """NumPy refuses a reduction without identity along an axis of size 0 (even when
    the result is empty)."""
    shape = aval_of(a).shape
    if builtins.any(shape[i] == 0 for i in normalize_axes(axis, len(shape), name)):
        raise ValueError(with_user_line(f"{name}: {message} (shape {shape}, axis={axis})"))


@api_boundary
def sum(  # noqa: A001
    a: Any,
    axis: Axis = None,
    dtype: Any = None,
    out: None = None,
    keepdims: bool = False,
    initial: Any = None,
    where: Any = None,
) -> Any:
    """NumPy's ``sum``.

    >>> import numpy as np, functrace.numpy as fnp
    >>> fnp.sum(np.arange(6.0).reshape(2, 3), axis=0)
    array([3., 5., 7.])
    """
    _unsupported("sum", out=out, initial=initial, where=where)
    target = (lambda d: dtypes.canonicalize(dtype)) if dtype is not None else _accumulator_dtype
    return _reduce("sum", reduce_sum_p, a, axis, keepdims, target)


@api_boundary
def prod(
    a: Any,
    axis: Axis = None,
    dtype: Any = None,
    out: None = None,
    keepdims: bool = False,
    initial: Any = None,
    where: Any = None,
) -> Any:
    """NumPy's ``prod`` (bool and int32 multiply in int64).

    >>> import numpy as np, functrace.numpy as fnp
    >>> fnp.prod(np.array([[1, 2], [3, 4]], np.int32), axis=1)
    array([ 2, 12])
    """
    _unsupported("prod", out=out, initial=initial, where=where)
    target = (lambda d: dtypes.canonicalize(dtype)) if dtype is not None else _accumulator_dtype
    return _reduce("prod", reduce_prod_p, a, axis, keepdims, target)


@api_boundary
def max(  # noqa: A001
    a: Any, axis: Axis = None, out: None = None, keepdims: bool = False, initial: Any = None, where: Any = None
) -> Any:
    """NumPy's ``max`` (NaN propagates); an empty reduction is a ``ValueError``, as in NumPy.

    >>> import numpy as np, functrace.numpy as fnp
    >>> fnp.max(np.array([[1.0, 5.0], [3.0, 4.0]]), axis=0)
    array([3., 5.])
    """
    _unsupported("max", out=out, initial=initial, where=where)
    _check_nonempty("max", a, axis, "zero-size array to reduction operation maximum which has no identity")
    return _reduce("max", reduce_max_p, a, axis, keepdims)


@api_boundary
def min(  # noqa: A001
    a: Any, axis: Axis = None, out: None = None, keepdims: bool = False, initial: Any = None, where: Any = None
) -> Any:
    """NumPy's ``min`` (NaN propagates); an empty reduction is a ``ValueError``, as in NumPy.

    >>> import numpy as np, functrace.numpy as fnp
    >>> fnp.min(np.array([[1.0, 5.0], [3.0, 4.0]]), axis=1, keepdims=True)
    array([[1.],
           [3.]])
    """
    _unsupported("min", out=out, initial=initial, where=where)
    _check_nonempty("min", a, axis, "zero-size array to reduction operation minimum which has no identity")
    return _reduce("min", reduce_min_p, a, axis, keepdims)


amax = max
amin = min


@api_boundary
def any(a: Any, axis: Axis = None, out: None = None, keepdims: bool = False, *, where: Any = None) -> Any:  # noqa: A001
    """NumPy's ``any``: whether some element is nonzero (NaN counts as nonzero).

    >>> import numpy as np, functrace.numpy as fnp
    >>> fnp.any(np.array([[0.0, 0.0], [0.0, 2.0]]), axis=1)
    array([False,  True])
    """
    _unsupported("any", out=out, where=where)
    return _reduce("any", reduce_max_p, a, axis, keepdims, lambda d: dtypes.bool_)


@api_boundary
def all(a: Any, axis: Axis = None, out: None = None, keepdims: bool = False, *, where: Any = None) -> Any:  # noqa: A001
    """NumPy's ``all``: whether every element is nonzero (NaN counts as nonzero).

    >>> import numpy as np, functrace.numpy as fnp
    >>> fnp.all(np.array([[1, 0], [1, 2]]), axis=1)
    array([False,  True])
    """
    _unsupported("all", out=out, where=where)
    return _reduce("all", reduce_min_p, a, axis, keepdims, lambda d: dtypes.bool_)


@api_boundary
def count_nonzero(a: Any, axis: Axis = None, *, keepdims: bool = False) -> Any:
    """NumPy's ``count_nonzero`` (an int64 count).

    >>> import numpy as np, functrace.numpy as fnp
    >>> fnp.count_nonzero(np.array([[1, 0], [3, 2]]), axis=0)
    array([2, 1])
    """
    (a,) = promote("count_nonzero", a)
    nonzero = convert(a, dtypes.bool_)
    return _reduce("count_nonzero", reduce_sum_p, nonzero, axis, keepdims, lambda d: dtypes.int64)


@api_boundary
def mean(
    a: Any, axis: Axis = None, dtype: Any = None, out: None = None, keepdims: bool = False, *, where: Any = None
) -> Any:
    """NumPy's ``mean`` (integers average in float64; an empty mean is NaN).

    >>> import numpy as np, functrace.numpy as fnp
    >>> fnp.mean(np.array([[1.0, 2.0], [3.0, 5.0]]), axis=1)
    array([1.5, 4. ])
    """
    _unsupported("mean", out=out, where=where)
    (a,) = promote("mean", a)
    aval = aval_of(a)
    axes = normalize_axes(axis, aval.ndim, "mean")
    count = int(np.prod([aval.shape[i] for i in axes], dtype=np.int64))
    target = _float_dtype(aval.dtype, dtype)
    total = sum(convert(a, target), axis=axes, keepdims=keepdims)
    from functrace.numpy.elementwise import true_divide

    return true_divide(total, np.asarray(count, dtype=target))


@api_boundary
def var(
    a: Any,
    axis: Axis = None,
    dtype: Any = None,
    out: None = None,
    ddof: float = 0,
    keepdims: bool = False,
    *,
    where: Any = None,
) -> Any:
    """NumPy's ``var``: the mean squared deviation, divided by ``N - ddof`` (at least 0).

    >>> import numpy as np, functrace.numpy as fnp
    >>> fnp.var(np.array([[1.0, 3.0], [2.0, 2.0]]), axis=1)
    array([1., 0.])
    """
    _unsupported("var", out=out, where=where)
    return _variance("var", a, axis, dtype, ddof, keepdims)


def _variance(name: str, a: Any, axis: Axis, dtype: Any, ddof: float, keepdims: bool) -> Any:
    from functrace.numpy.elementwise import multiply, subtract, true_divide

    (a,) = promote(name, a)
    aval = aval_of(a)
    axes = normalize_axes(axis, aval.ndim, name)
    target = _float_dtype(aval.dtype, dtype)
    a = convert(a, target)
    centered = subtract(a, mean(a, axis=axes, keepdims=True))
    total = sum(multiply(centered, centered), axis=axes, keepdims=keepdims)
    count = int(np.prod([aval.shape[i] for i in axes], dtype=np.int64))
    return true_divide(total, np.asarray(builtins.max(count - ddof, 0), dtype=target))


@api_boundary
def std(
    a: Any,
    axis: Axis = None,
    dtype: Any = None,
    out: None = None,
    ddof: float = 0,
    keepdims: bool = False,
    *,
    where: Any = None,
) -> Any:
    """NumPy's ``std``: the square root of ``var``.

    >>> import numpy as np, functrace.numpy as fnp
    >>> fnp.std(np.array([1.0, 3.0, 1.0, 3.0]))
    array(1.)
    """
    from functrace.numpy.elementwise import sqrt

    _unsupported("std", out=out, where=where)
    return sqrt(_variance("std", a, axis, dtype, ddof, keepdims))


def _single_axis(name: str, a: Any, axis: Any) -> tuple[Any, int]:
    """``a`` and the one axis that ``argmax``/``cumsum`` work along (``None`` flattens,
    as does any valid axis of a 0-d array, as in NumPy)."""
    ndim = aval_of(a).ndim
    if axis is not None and not isinstance(axis, int | np.integer):
        raise TypeError(with_user_line(f"{name}: axis must be an integer or None, got {axis!r}"))
    if axis is not None and ndim > 0:
        return a, normalize_axes(axis, ndim, name)[0]
    if axis is not None and axis not in (0, -1):
        raise ValueError(with_user_line(f"{name}: axis {axis} is out of bounds for an array of dimension 0"))
    return reshape(a, (-1,)), 0


def _arg_extremum(name: str, prim: Primitive, a: Any, axis: Any, keepdims: bool) -> Any:
    (a,) = promote(name, a)
    shape = aval_of(a).shape
    flat, ax = _single_axis(name, a, axis)
    _check_nonempty(name, flat, ax, f"attempt to get {name} of an empty sequence")
    out = prim.bind(flat, axes=(ax,), index_dtype=dtypes.int64)
    if not keepdims:
        return out
    if axis is None:
        return reshape(out, (1,) * len(shape))
    return expand_reduced(out, shape, (ax,)) if shape else out


@api_boundary
def argmax(a: Any, axis: int | None = None, out: None = None, *, keepdims: bool = False) -> Any:
    """NumPy's ``argmax``: the first index of the maximum (of the first NaN, if any),
    into the flattened array when ``axis`` is ``None``; int64.

    >>> import numpy as np, functrace.numpy as fnp
    >>> fnp.argmax(np.array([[1.0, 5.0], [7.0, 4.0]]), axis=1)
    array([1, 0])
    """
    _unsupported("argmax", out=out)
    return _arg_extremum("argmax", argmax_p, a, axis, keepdims)


@api_boundary
def argmin(a: Any, axis: int | None = None, out: None = None, *, keepdims: bool = False) -> Any:
    """NumPy's ``argmin``: the first index of the minimum (of the first NaN, if any),
    into the flattened array when ``axis`` is ``None``; int64.

    >>> import numpy as np, functrace.numpy as fnp
    >>> fnp.argmin(np.array([[1.0, 5.0], [7.0, 4.0]]))
    array(0)
    """
    _unsupported("argmin", out=out)
    return _arg_extremum("argmin", argmin_p, a, axis, keepdims)


@api_boundary
def cumsum(a: Any, axis: int | None = None, dtype: Any = None, out: None = None) -> Any:
    """NumPy's ``cumsum`` (of the flattened array when ``axis`` is ``None``).

    >>> import numpy as np, functrace.numpy as fnp
    >>> fnp.cumsum(np.array([[1, 2], [3, 4]]), axis=0)
    array([[1, 2],
           [4, 6]])
    """
    _unsupported("cumsum", out=out)
    (a,) = promote("cumsum", a)
    a, ax = _single_axis("cumsum", a, axis)
    src = aval_of(a).dtype
    target = dtypes.canonicalize(dtype) if dtype is not None else _accumulator_dtype(src)
    return cumsum_p.bind(convert(a, target), axis=ax, reverse=False)
