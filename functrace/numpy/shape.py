"""Shape functions of ``functrace.numpy``: reshape, transpose, stacking, splitting..."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from functrace.core.source_info import api_boundary, with_user_line
from functrace.lax.structural import broadcast_in_dim_p, reshape_p, transpose_p
from functrace.numpy.promotion import aval_of, promote

__all__ = ["reshape", "transpose", "stack", "ravel"]


def expand_reduced(x: Any, shape: Sequence[int], axes: Sequence[int]) -> Any:
    """Put back reduced ``axes`` as size-1 dimensions (``keepdims=True``)."""
    kept = tuple(1 if i in axes else d for i, d in enumerate(shape))
    return reshape_p.bind(x, new_sizes=kept)


def _resolve_shape(newshape: Any, size: int) -> tuple[int, ...]:
    shape = (int(newshape),) if isinstance(newshape, int | np.integer) else tuple(int(d) for d in newshape)
    if shape.count(-1) > 1:
        raise ValueError(with_user_line("reshape: can only specify one unknown dimension"))
    if -1 in shape:
        known = int(np.prod([d for d in shape if d != -1], dtype=np.int64))
        if known == 0 or size % known:
            raise TypeError(with_user_line(f"reshape: cannot reshape an array of size {size} into {shape}"))
        shape = tuple(size // known if d == -1 else d for d in shape)
    return shape


@api_boundary
def reshape(a: Any, *newshape: Any, order: str = "C") -> Any:
    """NumPy's ``reshape`` (row-major); one dimension may be ``-1``.

    >>> import numpy as np, functrace.numpy as fnp
    >>> fnp.reshape(np.arange(6), (3, -1)).shape
    (3, 2)
    """
    if order != "C":
        raise NotImplementedError("reshape supports only order='C'")
    if len(newshape) == 1:
        newshape = newshape[0]
    (a,) = promote("reshape", a)
    aval = aval_of(a)
    shape = _resolve_shape(newshape, aval.size)
    if shape == aval.shape:
        return a
    return reshape_p.bind(a, new_sizes=shape)


@api_boundary
def ravel(a: Any) -> Any:
    """NumPy's ``ravel``.

    >>> import numpy as np, functrace.numpy as fnp
    >>> fnp.ravel(np.ones((2, 3))).shape
    (6,)
    """
    return reshape(a, (-1,))


@api_boundary
def transpose(a: Any, axes: Sequence[int] | None = None) -> Any:
    """NumPy's ``transpose``; by default reverses the dimensions.

    >>> import numpy as np, functrace.numpy as fnp
    >>> fnp.transpose(np.zeros((2, 3))).shape
    (3, 2)
    """
    (a,) = promote("transpose", a)
    ndim = aval_of(a).ndim
    perm = tuple(range(ndim))[::-1] if axes is None else tuple(int(ax) % ndim if ndim else ax for ax in axes)
    if perm == tuple(range(ndim)):
        return a
    return transpose_p.bind(a, permutation=perm)


@api_boundary
def stack(arrays: Sequence[Any], axis: int = 0) -> Any:
    """NumPy's ``stack``.

    >>> import numpy as np, functrace.numpy as fnp
    >>> fnp.stack([np.zeros(2), np.ones(2)]).shape
    (2, 2)
    """
    arrays = promote("stack", *arrays) if arrays else []
    if not arrays:
        raise ValueError(with_user_line("stack needs at least one array"))
    ndim = aval_of(arrays[0]).ndim
    axis = int(axis) % (ndim + 1)
    expanded = []
    for x in arrays:
        shape = aval_of(x).shape
        new_shape = (*shape[:axis], 1, *shape[axis:])
        dims = tuple(i for i in range(ndim + 1) if i != axis)
        expanded.append(broadcast_in_dim_p.bind(x, shape=new_shape, broadcast_dimensions=dims))
    return concatenate(expanded, axis=axis)
