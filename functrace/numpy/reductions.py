"""Reductions of ``functrace.numpy``: ``sum``, ``mean``, ``max``, ... with ``axis`` and ``keepdims``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from functrace.core import dtypes
from functrace.core.source_info import api_boundary, with_user_line
from functrace.lax.reductions import reduce_sum_p
from functrace.numpy.promotion import aval_of, convert, promote
from functrace.numpy.shape import expand_reduced

__all__ = ["sum", "mean"]


def normalize_axes(axis: int | Sequence[int] | None, ndim: int, name: str) -> tuple[int, ...]:
    """``axis`` as a sorted tuple of non-negative axes; ``None`` means all."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int | np.integer) else tuple(axis)
    out = []
    for a in axes:
        if not -ndim <= a < ndim:
            raise ValueError(with_user_line(f"{name}: axis {a} is out of bounds for an array of dimension {ndim}"))
        out.append(int(a) % ndim)
    if len(set(out)) != len(out):
        raise ValueError(with_user_line(f"{name}: repeated axis in {axis}"))
    return tuple(sorted(out))


def _sum_dtype(dtype: np.dtype) -> np.dtype:
    # NumPy sums bools and int32 in int64. (It sums uint32 in uint64, which functrace
    # does not have: uint32 sums stay uint32 and wrap, as in JAX.)
    if dtype == dtypes.bool_ or dtype == dtypes.int32:
        return dtypes.int64
    return dtype


@api_boundary
def sum(a: Any, axis: int | Sequence[int] | None = None, dtype: Any = None, keepdims: bool = False) -> Any:  # noqa: A001
    """NumPy's ``sum``.

    >>> import numpy as np, functrace.numpy as fnp
    >>> fnp.sum(np.arange(6.0).reshape(2, 3), axis=0)
    array([3., 5., 7.])
    """
    (a,) = promote("sum", a)
    aval = aval_of(a)
    axes = normalize_axes(axis, aval.ndim, "sum")
    target = dtypes.canonicalize(dtype) if dtype is not None else _sum_dtype(aval.dtype)
    a = convert(a, target)
    out = reduce_sum_p.bind(a, axes=axes)
    return expand_reduced(out, aval.shape, axes) if keepdims else out


@api_boundary
def mean(a: Any, axis: int | Sequence[int] | None = None, dtype: Any = None, keepdims: bool = False) -> Any:
    """NumPy's ``mean`` (integers average in float64).

    >>> import numpy as np, functrace.numpy as fnp
    >>> fnp.mean(np.array([[1.0, 2.0], [3.0, 5.0]]), axis=1)
    array([1.5, 4. ])
    """
    (a,) = promote("mean", a)
    aval = aval_of(a)
    axes = normalize_axes(axis, aval.ndim, "mean")
    count = int(np.prod([aval.shape[i] for i in axes], dtype=np.int64))
    target = (
        dtypes.canonicalize(dtype) if dtype is not None else (aval.dtype if aval.dtype.kind == "f" else dtypes.float64)
    )
    total = sum(convert(a, target), axis=axes, keepdims=keepdims)
    from functrace.numpy.elementwise import true_divide

    return true_divide(total, np.asarray(count, dtype=target))
