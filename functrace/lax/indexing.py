"""Indexing primitives: static and dynamic slices, and XLA's general gather and scatter.

Out-of-bounds rules (as XLA and JAX):

- ``dynamic_slice`` and ``dynamic_update_slice`` clamp each start index into
  ``[0, dim - size]``, so the window always lies inside the operand;
- ``gather`` in mode ``"clip"`` (the default) clamps the start of every window the
  same way; in mode ``"fill"`` a window that does not fit returns a fill value
  (NaN for floats, the lowest value for signed integers, the highest for unsigned
  ones, ``True`` for bool) instead;
- the scatters in mode ``"drop"`` (the default) skip an update window that does not
  fit; in mode ``"clip"`` they clamp its start.

Gather and scatter take their index vectors along the last dimension of the
indices (XLA's ``index_vector_dim`` is always the last one here).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from functrace.core import dtypes
from functrace.core.abstract import ShapedArray
from functrace.core.primitive import Primitive
from functrace.core.source_info import with_user_line
from functrace.core.trace import Tracer, get_aval
from functrace.lax.structural import reshape_p

_pyslice = slice  # the builtin; ``slice`` below is the lax wrapper


def _ints(values: Sequence[Any]) -> tuple[int, ...]:
    return tuple(int(v) for v in values)


def _check_start_indices(name: str, operand: ShapedArray, starts: Sequence[ShapedArray]) -> None:
    if len(starts) != operand.ndim:
        raise TypeError(
            with_user_line(f"{name} needs {operand.ndim} start indices for shape {operand.shape}, got {len(starts)}")
        )
    for i, s in enumerate(starts):
        if s.shape != () or s.dtype.kind not in "iu":
            raise TypeError(with_user_line(f"{name}: start index {i} must be an integer scalar, got {s.str_short()}"))


def _clamped_starts(starts: Sequence[Any], shape: Sequence[int], sizes: Sequence[int]) -> list[int]:
    """XLA's rule: each start moves into ``[0, dim - size]`` so the window fits."""
    return [min(max(int(s), 0), d - n) for s, d, n in zip(starts, shape, sizes, strict=True)]


# --- slice ----------------------------------------------------------------------------

slice_p = Primitive("slice")


def _slice_impl(x, *, start_indices, limit_indices, strides):
    index = tuple(_pyslice(*bounds) for bounds in zip(start_indices, limit_indices, strides, strict=True))
    return [np.asarray(x)[index]]


def _slice_abstract_eval(x: ShapedArray, *, start_indices, limit_indices, strides):
    bounds = f"start_indices={start_indices}, limit_indices={limit_indices}, strides={strides}"
    if not len(start_indices) == len(limit_indices) == len(strides) == x.ndim:
        raise TypeError(with_user_line(f"slice of shape {x.shape} needs {x.ndim} bounds per argument, got {bounds}"))
    for start, limit, stride, dim in zip(start_indices, limit_indices, strides, x.shape, strict=True):
        if not 0 <= start <= limit <= dim or stride < 1:
            raise TypeError(with_user_line(f"slice: {bounds} are invalid for shape {x.shape}"))
    shape = tuple(
        -(-(limit - start) // stride)
        for start, limit, stride in zip(start_indices, limit_indices, strides, strict=True)
    )
    return [ShapedArray(shape, x.dtype, x.weak_type)]


slice_p.def_impl(_slice_impl)
slice_p.def_abstract_eval(_slice_abstract_eval)

# --- dynamic_slice ----------------------------------------------------------------------

dynamic_slice_p = Primitive("dynamic_slice")


def _dynamic_slice_impl(x, *starts, slice_sizes):
    x = np.asarray(x)
    starts = _clamped_starts(starts, x.shape, slice_sizes)
    return [x[tuple(_pyslice(s, s + n) for s, n in zip(starts, slice_sizes, strict=True))]]


def _dynamic_slice_abstract_eval(x: ShapedArray, *starts: ShapedArray, slice_sizes):
    _check_start_indices("dynamic_slice", x, starts)
    if len(slice_sizes) != x.ndim or any(not 0 <= n <= d for n, d in zip(slice_sizes, x.shape, strict=True)):
        raise TypeError(with_user_line(f"dynamic_slice: slice_sizes {slice_sizes} are invalid for shape {x.shape}"))
    return [ShapedArray(slice_sizes, x.dtype, x.weak_type)]


dynamic_slice_p.def_impl(_dynamic_slice_impl)
dynamic_slice_p.def_abstract_eval(_dynamic_slice_abstract_eval)

# --- dynamic_update_slice ---------------------------------------------------------------

dynamic_update_slice_p = Primitive("dynamic_update_slice")


def _dynamic_update_slice_impl(x, update, *starts):
    out = np.array(x, copy=True)
    update = np.asarray(update)
    starts = _clamped_starts(starts, out.shape, update.shape)
    out[tuple(_pyslice(s, s + n) for s, n in zip(starts, update.shape, strict=True))] = update
    return [out]


def _dynamic_update_slice_abstract_eval(x: ShapedArray, update: ShapedArray, *starts: ShapedArray):
    _check_start_indices("dynamic_update_slice", x, starts)
    if update.ndim != x.ndim or any(n > d for n, d in zip(update.shape, x.shape, strict=True)):
        raise TypeError(
            with_user_line(f"dynamic_update_slice: update of shape {update.shape} does not fit operand {x.shape}")
        )
    if update.dtype != x.dtype:
        raise TypeError(
            with_user_line(
                f"dynamic_update_slice: update dtype {update.dtype.name} differs from operand dtype {x.dtype.name}"
            )
        )
    return [x]


dynamic_update_slice_p.def_impl(_dynamic_update_slice_impl)
dynamic_update_slice_p.def_abstract_eval(_dynamic_update_slice_abstract_eval)

# --- gather and scatter: dimension numbers and index grids ------------------------------


class GatherDimensionNumbers(NamedTuple):
    """How ``gather`` maps index vectors and windows to operand and output dimensions.

    ``offset_dims``: output dimensions that hold window dimensions; ``collapsed_slice_dims``:
    operand dimensions of window size 1 that the output drops; ``start_index_map``: the
    operand dimension each component of an index vector starts; ``operand_batching_dims``
    and ``start_indices_batching_dims``: pairs of operand and indices dimensions indexed
    together (the operand dimension is dropped from the output).

    >>> GatherDimensionNumbers(offset_dims=(1,), collapsed_slice_dims=(0,), start_index_map=(0,))
    GatherDimensionNumbers(offset_dims=(1,), collapsed_slice_dims=(0,), start_index_map=(0,), \
operand_batching_dims=(), start_indices_batching_dims=())
    """

    offset_dims: tuple[int, ...]
    collapsed_slice_dims: tuple[int, ...]
    start_index_map: tuple[int, ...]
    operand_batching_dims: tuple[int, ...] = ()
    start_indices_batching_dims: tuple[int, ...] = ()


class ScatterDimensionNumbers(NamedTuple):
    """How a scatter maps index vectors and update windows to operand dimensions.

    The mirror image of :class:`GatherDimensionNumbers`: ``update_window_dims`` are the
    window dimensions of the updates, ``inserted_window_dims`` the operand dimensions of
    window size 1 absent from the updates, ``scatter_dims_to_operand_dims`` the operand
    dimension each index vector component starts.

    >>> ScatterDimensionNumbers((1,), (0,), (0,)).inserted_window_dims
    (0,)
    """

    update_window_dims: tuple[int, ...]
    inserted_window_dims: tuple[int, ...]
    scatter_dims_to_operand_dims: tuple[int, ...]
    operand_batching_dims: tuple[int, ...] = ()
    scatter_indices_batching_dims: tuple[int, ...] = ()


def _sorted_dims(name: str, what: str, dims: tuple[int, ...], rank: int) -> None:
    if list(dims) != sorted(set(dims)) or any(not 0 <= d < rank for d in dims):
        raise TypeError(with_user_line(f"{name}: {what}={dims} must be sorted, distinct and in [0, {rank})"))


def _check_indexing(
    name: str,
    operand: ShapedArray,
    indices: ShapedArray,
    removed_dims: tuple[int, ...],
    index_map: tuple[int, ...],
    operand_batching_dims: tuple[int, ...],
    indices_batching_dims: tuple[int, ...],
    window: tuple[int, ...],
) -> None:
    """The checks gather and scatter share; ``window`` holds a size per operand dimension."""
    rank = operand.ndim
    if indices.dtype.kind not in "iu" or indices.ndim < 1:
        raise TypeError(
            with_user_line(f"{name} needs integer indices with an index vector dimension, got {indices.str_short()}")
        )
    _sorted_dims(name, "operand_batching_dims", operand_batching_dims, rank)
    if set(removed_dims) & set(operand_batching_dims):
        raise TypeError(with_user_line(f"{name}: a dimension cannot be both removed and a batching dimension"))
    if len(set(index_map)) != len(index_map) or any(not 0 <= d < rank for d in index_map):
        raise TypeError(with_user_line(f"{name}: index map {index_map} is invalid for operand shape {operand.shape}"))
    if set(index_map) & set(operand_batching_dims):
        raise TypeError(with_user_line(f"{name}: index map {index_map} overlaps the batching dimensions"))
    if len(index_map) != indices.shape[-1]:
        raise TypeError(
            with_user_line(
                f"{name}: indices of shape {indices.shape} hold index vectors of length {indices.shape[-1]}, "
                f"but the index map {index_map} has {len(index_map)} entries"
            )
        )
    batch_rank = indices.ndim - 1
    if len(set(indices_batching_dims)) != len(indices_batching_dims) or any(
        not 0 <= d < batch_rank for d in indices_batching_dims
    ):
        raise TypeError(with_user_line(f"{name}: indices batching dims {indices_batching_dims} are invalid"))
    pairs = list(zip(operand_batching_dims, indices_batching_dims, strict=False))
    if len(operand_batching_dims) != len(indices_batching_dims) or any(
        operand.shape[o] != indices.shape[i] for o, i in pairs
    ):
        raise TypeError(
            with_user_line(
                f"{name}: operand batching dims {operand_batching_dims} of shape {operand.shape} do not match "
                f"indices batching dims {indices_batching_dims} of shape {indices.shape}"
            )
        )
    for d, (size, dim) in enumerate(zip(window, operand.shape, strict=True)):
        if not 0 <= size <= dim or (size != 1 and (d in removed_dims or d in operand_batching_dims)):
            raise TypeError(
                with_user_line(f"{name}: window size {size} is invalid for dimension {d} of operand {operand.shape}")
            )


def _index_grids(
    shape: tuple[int, ...],
    indices: np.ndarray,
    window: tuple[int, ...],
    window_dims: tuple[int, ...],
    index_map: tuple[int, ...],
    operand_batching_dims: tuple[int, ...],
    indices_batching_dims: tuple[int, ...],
) -> tuple[list[np.ndarray], np.ndarray]:
    """Operand coordinates of every element of every window, laid out as
    ``batch_shape + window_shape``, with each window's start clamped into bounds,
    and a mask over ``batch_shape`` telling which windows fit without clamping."""
    indices = np.asarray(indices).astype(np.int64)
    batch_shape = indices.shape[:-1]
    rank = len(batch_shape) + len(window_dims)

    def along(axis: int, values: np.ndarray) -> np.ndarray:
        return values.reshape([values.size if a == axis else 1 for a in range(rank)])

    grids = [np.zeros((1,) * rank, np.int64) for _ in shape]
    fits = np.ones(batch_shape, dtype=bool)
    trailing = (1,) * len(window_dims)
    for k, d in enumerate(index_map):
        start, upper = indices[..., k], shape[d] - window[d]
        fits &= (start >= 0) & (start <= upper)
        grids[d] = np.clip(start, 0, upper).reshape(batch_shape + trailing)
    for operand_dim, indices_dim in zip(operand_batching_dims, indices_batching_dims, strict=True):
        grids[operand_dim] = along(indices_dim, np.arange(batch_shape[indices_dim]))
    for j, d in enumerate(window_dims):
        grids[d] = grids[d] + along(len(batch_shape) + j, np.arange(window[d]))
    return grids, fits


def _batch_then_window(rank: int, window_positions: tuple[int, ...]) -> list[int]:
    """The dimensions of an array (gather output, scatter updates) reordered so that
    its batch dimensions come first and its window dimensions last."""
    return [p for p in range(rank) if p not in window_positions] + list(window_positions)


def _fill_value(dtype: np.dtype, fill_value: Any) -> Any:
    if fill_value is not None:
        return fill_value
    if dtype.kind == "f":
        return np.nan
    if dtype.kind == "b":
        return True
    info = np.iinfo(dtype)
    return info.min if dtype.kind == "i" else info.max


# --- gather -----------------------------------------------------------------------------

gather_p = Primitive("gather")
GATHER_MODES = ("clip", "fill")


def _gather_impl(operand, indices, *, dimension_numbers, slice_sizes, mode, fill_value):
    operand, indices = np.asarray(operand), np.asarray(indices)
    dn = dimension_numbers
    removed = set(dn.collapsed_slice_dims) | set(dn.operand_batching_dims)
    window_dims = tuple(d for d in range(operand.ndim) if d not in removed)
    batch_shape = indices.shape[:-1]
    full_shape = batch_shape + tuple(slice_sizes[d] for d in window_dims)
    order = _batch_then_window(len(full_shape), dn.offset_dims)
    if 0 in full_shape:
        out = np.zeros(full_shape, operand.dtype)
    else:
        grids, fits = _index_grids(
            operand.shape,
            indices,
            slice_sizes,
            window_dims,
            dn.start_index_map,
            dn.operand_batching_dims,
            dn.start_indices_batching_dims,
        )
        out = np.broadcast_to(operand[tuple(grids)], full_shape)
        if mode == "fill":
            fits = fits.reshape(batch_shape + (1,) * len(window_dims))
            out = np.where(fits, out, np.asarray(_fill_value(operand.dtype, fill_value)).astype(operand.dtype))
    return [np.array(np.transpose(out, np.argsort(order)), order="C")]


def _gather_abstract_eval(
    operand: ShapedArray, indices: ShapedArray, *, dimension_numbers, slice_sizes, mode, fill_value
):
    dn = dimension_numbers
    if mode not in GATHER_MODES:
        raise ValueError(with_user_line(f"gather: mode must be one of {GATHER_MODES}, got {mode!r}"))
    if len(slice_sizes) != operand.ndim:
        raise TypeError(with_user_line(f"gather: slice_sizes {slice_sizes} need one size per dim of {operand.shape}"))
    _sorted_dims("gather", "collapsed_slice_dims", dn.collapsed_slice_dims, operand.ndim)
    _check_indexing(
        "gather",
        operand,
        indices,
        dn.collapsed_slice_dims,
        dn.start_index_map,
        dn.operand_batching_dims,
        dn.start_indices_batching_dims,
        slice_sizes,
    )
    removed = set(dn.collapsed_slice_dims) | set(dn.operand_batching_dims)
    window = [n for d, n in enumerate(slice_sizes) if d not in removed]
    rank = len(window) + indices.ndim - 1
    _sorted_dims("gather", "offset_dims", dn.offset_dims, rank)
    if len(dn.offset_dims) != len(window):
        raise TypeError(
            with_user_line(f"gather: {len(dn.offset_dims)} offset_dims for {len(window)} window dimensions")
        )
    batch, window_iter = iter(indices.shape[:-1]), iter(window)
    shape = tuple(next(window_iter) if p in dn.offset_dims else next(batch) for p in range(rank))
    return [ShapedArray(shape, operand.dtype, operand.weak_type)]


gather_p.def_impl(_gather_impl)
gather_p.def_abstract_eval(_gather_abstract_eval)

# --- scatter, scatter_add, scatter_mul, scatter_min, scatter_max ------------------------
# For duplicate indices, ``scatter`` keeps one of the updates (NumPy's order: the last).

SCATTER_MODES = ("clip", "drop")


def _assign(out: np.ndarray, index: tuple, updates: np.ndarray) -> None:
    out[index] = updates


def _scatter_apply(combine: Callable, operand, indices, updates, *, dimension_numbers, mode):
    out = np.array(operand, copy=True)
    indices, updates = np.asarray(indices), np.asarray(updates)
    dn = dimension_numbers
    if updates.size == 0:
        return [out]
    removed = set(dn.inserted_window_dims) | set(dn.operand_batching_dims)
    window_dims = tuple(d for d in range(out.ndim) if d not in removed)
    window = [1] * out.ndim
    for d, p in zip(window_dims, dn.update_window_dims, strict=True):
        window[d] = updates.shape[p]
    grids, fits = _index_grids(
        out.shape,
        indices,
        tuple(window),
        window_dims,
        dn.scatter_dims_to_operand_dims,
        dn.operand_batching_dims,
        dn.scatter_indices_batching_dims,
    )
    updates = np.transpose(updates, _batch_then_window(updates.ndim, dn.update_window_dims))
    flat = np.zeros(updates.shape, np.int64)  # positions in the flattened operand
    for grid, stride in zip(grids, _strides(out.shape), strict=True):
        flat += grid * stride
    if mode == "drop":
        keep = np.broadcast_to(fits.reshape(fits.shape + (1,) * len(window_dims)), updates.shape)
        flat, updates = flat[keep], updates[keep]
    combine(out.reshape(-1), flat.reshape(-1), updates.reshape(-1))
    return [out]


def _strides(shape: tuple[int, ...]) -> list[int]:
    """Row-major strides, in elements."""
    return [int(np.prod(shape[d + 1 :], dtype=np.int64)) for d in range(len(shape))]


def _scatter_abstract_eval(name: str, operand, indices, updates, *, dimension_numbers, mode):
    dn = dimension_numbers
    if mode not in SCATTER_MODES:
        raise ValueError(with_user_line(f"{name}: mode must be one of {SCATTER_MODES}, got {mode!r}"))
    if updates.dtype != operand.dtype:
        raise TypeError(
            with_user_line(
                f"{name}: updates dtype {updates.dtype.name} differs from operand dtype {operand.dtype.name}"
            )
        )
    _sorted_dims(name, "update_window_dims", dn.update_window_dims, updates.ndim)
    _sorted_dims(name, "inserted_window_dims", dn.inserted_window_dims, operand.ndim)
    removed = set(dn.inserted_window_dims) | set(dn.operand_batching_dims)
    window_dims = [d for d in range(operand.ndim) if d not in removed]
    scatter_shape = tuple(n for p, n in enumerate(updates.shape) if p not in dn.update_window_dims)
    if len(window_dims) != len(dn.update_window_dims) or scatter_shape != indices.shape[:-1]:
        raise TypeError(
            with_user_line(
                f"{name}: updates of shape {updates.shape} with update_window_dims={dn.update_window_dims} do not "
                f"match indices {indices.shape} and operand {operand.shape}"
            )
        )
    window = [1] * operand.ndim
    for d, p in zip(window_dims, dn.update_window_dims, strict=True):
        window[d] = updates.shape[p]
    _check_indexing(
        name,
        operand,
        indices,
        dn.inserted_window_dims,
        dn.scatter_dims_to_operand_dims,
        dn.operand_batching_dims,
        dn.scatter_indices_batching_dims,
        tuple(window),
    )
    return [operand]


def scatter_primitive(name: str, combine: Callable) -> Primitive:
    """A scatter that merges each update into the operand with ``combine(out, index, updates)``."""
    prim = Primitive(name)
    prim.def_impl(lambda *args, **params: _scatter_apply(combine, *args, **params))
    prim.def_abstract_eval(lambda *avals, **params: _scatter_abstract_eval(name, *avals, **params))
    return prim


scatter_p = scatter_primitive("scatter", _assign)
scatter_add_p = scatter_primitive("scatter_add", np.add.at)
scatter_mul_p = scatter_primitive("scatter_mul", np.multiply.at)
scatter_min_p = scatter_primitive("scatter_min", np.minimum.at)
scatter_max_p = scatter_primitive("scatter_max", np.maximum.at)


# --- public wrappers (functrace.lax) ------------------------------------------------------


def _index_scalar(name: str, value: Any) -> Any:
    """A start index as a tracer or an integer array (Python ints become int64)."""
    if isinstance(value, Tracer):
        return value
    arr = np.asarray(value)
    if arr.dtype.kind not in "iu" or arr.ndim != 0:
        raise TypeError(with_user_line(f"{name}: start indices must be integer scalars, got {value!r}"))
    return arr.astype(dtypes.canonicalize(arr.dtype))


def _start_indices(name: str, start_indices: Any) -> list[Any]:
    if isinstance(start_indices, Tracer):  # a traced vector of start indices: split it statically
        count = get_aval(start_indices).shape[0]
        return [index_in_dim(start_indices, i, keepdims=False) for i in range(count)]
    return [_index_scalar(name, s) for s in start_indices]


def slice(operand, start_indices, limit_indices, strides=None):  # noqa: A001  (JAX's name)
    """The static slice ``operand[start:limit:stride, ...]`` (strides default to 1).

    >>> import numpy as np
    >>> from functrace import lax
    >>> lax.slice(np.arange(10), (1,), (8,), (3,))
    array([1, 4, 7])
    """
    strides = (1,) * len(start_indices) if strides is None else strides
    return slice_p.bind(
        operand, start_indices=_ints(start_indices), limit_indices=_ints(limit_indices), strides=_ints(strides)
    )


def slice_in_dim(operand, start_index, limit_index, stride=1, axis=0):
    """``lax.slice`` along one axis (``None`` bounds mean the ends, negatives count from the end).

    >>> import numpy as np
    >>> from functrace import lax
    >>> lax.slice_in_dim(np.arange(6).reshape(2, 3), 1, None, axis=1)
    array([[1, 2],
           [4, 5]])
    """
    shape = get_aval(operand).shape
    axis = int(axis) % len(shape)
    start, limit, _ = _pyslice(start_index, limit_index).indices(shape[axis])
    starts, limits, strides = [0] * len(shape), list(shape), [1] * len(shape)
    starts[axis], limits[axis], strides[axis] = start, max(start, limit), stride
    return slice(operand, starts, limits, strides)


def index_in_dim(operand, index, axis=0, keepdims=True):
    """Element ``index`` (static, negatives count from the end) along ``axis``.

    >>> import numpy as np
    >>> from functrace import lax
    >>> lax.index_in_dim(np.arange(6).reshape(2, 3), -1, axis=1, keepdims=False)
    array([2, 5])
    """
    shape = get_aval(operand).shape
    axis = int(axis) % len(shape)
    index = int(index)
    if not -shape[axis] <= index < shape[axis]:
        raise IndexError(with_user_line(f"index {index} is out of bounds for axis {axis} with size {shape[axis]}"))
    index %= shape[axis]
    out = slice_in_dim(operand, index, index + 1, axis=axis)
    return out if keepdims else _drop_axis(out, axis)


def _drop_axis(x, axis: int):
    shape = get_aval(x).shape
    return reshape_p.bind(x, new_sizes=shape[:axis] + shape[axis + 1 :])


def dynamic_slice(operand, start_indices, slice_sizes):
    """The window of ``slice_sizes`` at ``start_indices`` (clamped so the window fits).

    >>> import numpy as np
    >>> from functrace import lax
    >>> lax.dynamic_slice(np.arange(5), (np.int32(4),), (2,))
    array([3, 4])
    """
    starts = _start_indices("dynamic_slice", start_indices)
    return dynamic_slice_p.bind(operand, *starts, slice_sizes=_ints(slice_sizes))


def dynamic_update_slice(operand, update, start_indices):
    """``operand`` with the window at ``start_indices`` (clamped so it fits) replaced by ``update``.

    >>> import numpy as np
    >>> from functrace import lax
    >>> lax.dynamic_update_slice(np.zeros(4), np.ones(2), (-1,))
    array([1., 1., 0., 0.])
    """
    starts = _start_indices("dynamic_update_slice", start_indices)
    return dynamic_update_slice_p.bind(operand, update, *starts)


def _in_dim(operand, index, axis: int) -> tuple[int, list]:
    ndim = get_aval(operand).ndim
    axis = int(axis) % ndim
    zero = np.zeros((), get_aval(index).dtype if isinstance(index, Tracer) else np.int64)
    return axis, [index if d == axis else zero for d in range(ndim)]


def dynamic_slice_in_dim(operand, start_index, slice_size, axis=0):
    """``dynamic_slice`` along one axis.

    >>> import numpy as np
    >>> from functrace import lax
    >>> lax.dynamic_slice_in_dim(np.arange(6).reshape(2, 3), 1, 2, axis=1)
    array([[1, 2],
           [4, 5]])
    """
    axis, starts = _in_dim(operand, start_index, axis)
    sizes = list(get_aval(operand).shape)
    sizes[axis] = slice_size
    return dynamic_slice(operand, starts, sizes)


def dynamic_index_in_dim(operand, index, axis=0, keepdims=True):
    """Element ``index`` (clamped into bounds) along ``axis``.

    >>> import numpy as np
    >>> from functrace import lax
    >>> lax.dynamic_index_in_dim(np.arange(6).reshape(2, 3), 7, axis=1, keepdims=False)
    array([2, 5])
    """
    axis = int(axis) % get_aval(operand).ndim
    out = dynamic_slice_in_dim(operand, index, 1, axis)
    return out if keepdims else _drop_axis(out, axis)


def dynamic_update_slice_in_dim(operand, update, start_index, axis):
    """``dynamic_update_slice`` along one axis.

    >>> import numpy as np
    >>> from functrace import lax
    >>> lax.dynamic_update_slice_in_dim(np.zeros((2, 3)), np.ones((2, 1)), 2, axis=1)
    array([[0., 0., 1.],
           [0., 0., 1.]])
    """
    _, starts = _in_dim(operand, start_index, axis)
    return dynamic_update_slice(operand, update, starts)


def _mode(name: str, mode: str | None, default: str, out_of_bounds: str) -> str:
    if mode is None:
        return default
    if mode in ("fill", "drop"):
        return out_of_bounds
    if mode != "clip":
        raise ValueError(with_user_line(f"{name}: mode must be 'clip', 'fill' or 'drop', got {mode!r}"))
    return mode


def gather(
    operand, start_indices, dimension_numbers: GatherDimensionNumbers, slice_sizes, *, mode=None, fill_value=None
):
    """XLA's gather: a window of ``slice_sizes`` at each index vector (the last axis of
    ``start_indices``). ``mode``: ``"clip"`` (default) clamps windows into bounds,
    ``"fill"`` returns ``fill_value`` for windows out of bounds.

    >>> import numpy as np
    >>> from functrace import lax
    >>> dn = lax.GatherDimensionNumbers(offset_dims=(1,), collapsed_slice_dims=(0,), start_index_map=(0,))
    >>> lax.gather(np.arange(6.0).reshape(3, 2), np.array([[2], [0]]), dn, (1, 2))
    array([[4., 5.],
           [0., 1.]])
    """
    dn = GatherDimensionNumbers(*(_ints(field) for field in dimension_numbers))
    fill = None if fill_value is None else np.asarray(fill_value).item()
    return gather_p.bind(
        operand,
        start_indices,
        dimension_numbers=dn,
        slice_sizes=_ints(slice_sizes),
        mode=_mode("gather", mode, "clip", "fill"),
        fill_value=fill,
    )


_SCATTER_EXAMPLE = (np.ones(3), np.array([[0], [0], [7]]), np.array([2.0, 3.0, 4.0]))


def _scatter_wrapper(prim: Primitive, what: str) -> Callable:
    def fn(operand, scatter_indices, updates, dimension_numbers: ScatterDimensionNumbers, *, mode=None):
        dn = ScatterDimensionNumbers(*(_ints(field) for field in dimension_numbers))
        return prim.bind(
            operand, scatter_indices, updates, dimension_numbers=dn, mode=_mode(prim.name, mode, "drop", "drop")
        )

    example = prim.impl(*_SCATTER_EXAMPLE, dimension_numbers=ScatterDimensionNumbers((), (0,), (0,)), mode="drop")[0]
    fn.__name__ = fn.__qualname__ = prim.name
    fn.__doc__ = (
        f"XLA's scatter that {what} each update window at its index vector (the last axis of\n"
        '``scatter_indices``). ``mode``: ``"drop"`` (default) skips windows out of bounds,\n'
        '``"clip"`` clamps them into bounds.\n\n'
        ">>> import numpy as np\n>>> from functrace import lax\n"
        ">>> dn = lax.ScatterDimensionNumbers((), (0,), (0,))\n"
        f">>> lax.{prim.name}(np.ones(3), np.array([[0], [0], [7]]), np.array([2.0, 3.0, 4.0]), dn)\n{example!r}\n"
    )
    return fn


scatter = _scatter_wrapper(scatter_p, "writes (one update wins where indices repeat)")
scatter_add = _scatter_wrapper(scatter_add_p, "adds (repeated indices accumulate)")
scatter_mul = _scatter_wrapper(scatter_mul_p, "multiplies by")
scatter_min = _scatter_wrapper(scatter_min_p, "takes the minimum with")
scatter_max = _scatter_wrapper(scatter_max_p, "takes the maximum with")


__all__ = [
    "GatherDimensionNumbers", "ScatterDimensionNumbers", "dynamic_index_in_dim", "dynamic_slice",
    "dynamic_slice_in_dim", "dynamic_update_slice", "dynamic_update_slice_in_dim", "gather",
    "index_in_dim", "scatter", "scatter_add", "scatter_max", "scatter_min", "scatter_mul", "slice",
    "slice_in_dim",
]  # fmt: skip
