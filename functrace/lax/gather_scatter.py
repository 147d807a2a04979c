"""XLA's general gather and scatter (``scatter``, ``scatter_add``, ``scatter_mul``,
``scatter_min``, ``scatter_max``): the primitives behind NumPy's integer-array indexing
and ``x.at[...]``. The out-of-bounds and derivative rules are described in
``functrace/lax/indexing.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from functrace.core.abstract import ShapedArray
from functrace.core.ad_util import Zero, add_tangents, instantiate, zeros
from functrace.core.batching_util import mapped_size, move_axis
from functrace.core.primitive import Primitive, batch_rules, jvp_rules, vjp_rules
from functrace.core.source_info import with_user_line
from functrace.core.trace import Tracer, get_aval
from functrace.lax.elementwise import add_p, convert_element_type_p, div_p, eq_p, mul_p, select_p
from functrace.lax.indexing import _insert, _ints, _linear_jvp, _needs
from functrace.lax.structural import broadcast_in_dim_p, iota_p, reshape_p

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
        # A batching dimension's window is its one element (none, when it is empty).
        batching = d in operand_batching_dims and size != min(1, dim)
        if not 0 <= size <= dim or (d in removed_dims and size != 1) or batching:
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


# --- batching: one more dimension in the dimension numbers -------------------------------
# GatherDimensionNumbers and ScatterDimensionNumbers list their fields in the same order:
# (window positions in the output / updates, removed operand dims, index map, operand
# batching dims, indices batching dims), so one function batches both.


def _shifted(dims: tuple[int, ...], at: int) -> tuple[int, ...]:
    """``dims`` renumbered for an array that gains a dimension at ``at``."""
    return tuple(d + 1 if d >= at else d for d in dims)


def _index_batch_axis(indices: Any, di: int | None) -> tuple[Any, int | None]:
    """The indices with their mapped axis anywhere but last (the index vector dimension)."""
    if di is not None and di == get_aval(indices).ndim - 1:
        return move_axis(indices, di, 0), 0
    return indices, di


def _batch_numbers(dn: tuple, rank: int, do: int | None, di: int | None) -> tuple[tuple, int]:
    """Dimension numbers for an operand mapped along ``do`` and indices mapped along ``di``
    (``None``: not mapped; ``di`` is not the last axis), and where the mapped axis goes in
    the gather's output / the scatter's updates, of ``rank`` dimensions per example.

    Operand and indices mapped: their axes are one more pair of batching dimensions.
    Only the operand: its axis is one more window dimension, of full size. Only the
    indices: one more batch dimension of the index vectors."""
    window_pos, removed, index_map, operand_batching, indices_batching = dn
    if do is not None:
        removed, index_map, operand_batching = (_shifted(f, do) for f in (removed, index_map, operand_batching))
    if di is None:
        # The new window dimension comes after the operand's window dimensions before it.
        j = sum(1 for q in range(do) if q not in removed and q not in operand_batching)
        p = window_pos[j - 1] + 1 if j else 0
        window_pos = tuple(sorted((*_shifted(window_pos, p), p)))
    else:
        indices_batching = _shifted(indices_batching, di)
        if do is not None:
            k = sum(1 for q in operand_batching if q < do)
            operand_batching = _insert(operand_batching, k, do)
            indices_batching = _insert(indices_batching, k, di)
        # Batch positions follow the indices' batch dimensions in order: the new one is number di.
        batch_pos = [q for q in range(rank) if q not in window_pos]
        p = batch_pos[di - 1] + 1 if di else 0
        window_pos = _shifted(window_pos, p)
    return type(dn)(window_pos, removed, index_map, operand_batching, indices_batching), p


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


def _gather_jvp(primals: list, tangents: list, *, dimension_numbers, slice_sizes, mode, fill_value):
    params = {"dimension_numbers": dimension_numbers, "slice_sizes": slice_sizes, "mode": mode}
    out = gather_p.bind(*primals, **params, fill_value=fill_value)
    if type(tangents[0]) is Zero:
        return [out], [Zero(get_aval(out))]
    # A window out of bounds reads the fill value, a constant: its tangent is zero.
    fill = 0 if mode == "fill" else fill_value
    return [out], [gather_p.bind(tangents[0], primals[1], **params, fill_value=fill)]


def _gather_vjp(cts: list, primals: list, outs: list, *, dimension_numbers, slice_sizes, mode, fill_value):
    # Every element read sends its cotangent back to where it was read: the clamped
    # window in mode "clip"; nowhere for a window out of bounds in mode "fill".
    operand, indices = primals
    ct = scatter_add_p.bind(
        zeros(get_aval(operand)),
        indices,
        cts[0],
        dimension_numbers=ScatterDimensionNumbers(*dimension_numbers),
        mode="clip" if mode == "clip" else "drop",
    )
    return [ct, None]


jvp_rules[gather_p] = _gather_jvp
vjp_rules[gather_p] = _gather_vjp


def _gather_batch(args: list, dims: list, *, dimension_numbers, slice_sizes, mode, fill_value) -> tuple[list, list]:
    (operand, indices), (do, di) = args, dims
    indices, di = _index_batch_axis(indices, di)
    rank = len(dimension_numbers.offset_dims) + get_aval(indices).ndim - 1 - (di is not None)
    dn, out_dim = _batch_numbers(dimension_numbers, rank, do, di)
    if do is not None:  # a window of one along a batching dimension, of all of it otherwise
        size = get_aval(operand).shape[do]
        slice_sizes = _insert(slice_sizes, do, min(1, size) if di is not None else size)
    out = gather_p.bind(
        operand, indices, dimension_numbers=dn, slice_sizes=slice_sizes, mode=mode, fill_value=fill_value
    )
    return [out], [out_dim]


batch_rules[gather_p] = _gather_batch

# --- scatter, scatter_add, scatter_mul, scatter_min, scatter_max ------------------------
# For duplicate indices, ``scatter`` keeps one of the updates (NumPy's order: the last).

SCATTER_MODES = ("clip", "drop")


def _assign(out: np.ndarray, index: tuple, updates: np.ndarray) -> None:
    out[index] = updates


def _scatter_window(shape: tuple[int, ...], dn: ScatterDimensionNumbers, updates_shape: tuple[int, ...]) -> tuple:
    """The operand dimensions an update window spans, and its size along every dimension
    of the operand (of ``shape``)."""
    removed = set(dn.inserted_window_dims) | set(dn.operand_batching_dims)
    window_dims = tuple(d for d in range(len(shape)) if d not in removed)
    window = [1] * len(shape)
    for d in dn.operand_batching_dims:
        window[d] = min(1, shape[d])
    for d, p in zip(window_dims, dn.update_window_dims, strict=True):
        window[d] = updates_shape[p]
    return window_dims, tuple(window)


def _scatter_targets(shape, indices, updates_shape, dn: ScatterDimensionNumbers, mode: str) -> np.ndarray:
    """The position in the flattened operand each update element goes to (-1 for the
    elements of windows that mode "drop" skips), laid out batch first, window last."""
    window_dims, window = _scatter_window(shape, dn, updates_shape)
    grids, fits = _index_grids(
        shape,
        indices,
        window,
        window_dims,
        dn.scatter_dims_to_operand_dims,
        dn.operand_batching_dims,
        dn.scatter_indices_batching_dims,
    )
    order = _batch_then_window(len(updates_shape), dn.update_window_dims)
    flat = np.zeros([updates_shape[p] for p in order], np.int64)
    for grid, stride in zip(grids, _strides(shape), strict=True):
        flat += grid * stride
    if mode == "drop":
        flat = np.where(fits.reshape(fits.shape + (1,) * len(window_dims)), flat, -1)
    return flat


def _scatter_apply(combine: Callable, operand, indices, updates, *, dimension_numbers, mode):
    out = np.array(operand, copy=True, order="C")  # C order: reshape(-1) below must be a view
    indices, updates = np.asarray(indices), np.asarray(updates)
    dn = dimension_numbers
    if updates.size == 0:
        return [out]
    flat = _scatter_targets(out.shape, indices, updates.shape, dn, mode)
    updates = np.transpose(updates, _batch_then_window(updates.ndim, dn.update_window_dims))
    keep = flat >= 0
    combine(out.reshape(-1), flat[keep], updates[keep])
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
    _check_indexing(
        name,
        operand,
        indices,
        dn.inserted_window_dims,
        dn.scatter_dims_to_operand_dims,
        dn.operand_batching_dims,
        dn.scatter_indices_batching_dims,
        _scatter_window(operand.shape, dn, updates.shape)[1],
    )
    return [operand]


def _scatter_batch_rule(prim: Primitive) -> Callable:
    """The batch rule of a scatter: an unmapped operand first gets the mapped axis (every
    example updates its own copy), then the updates get it where the numbers say."""

    def batch(args: list, dims: list, *, dimension_numbers, mode) -> tuple[list, list]:
        (operand, indices, updates), (do, di, du) = args, dims
        size = mapped_size(args, dims)
        if do is None:
            operand, do = move_axis(operand, None, 0, size), 0
        indices, di = _index_batch_axis(indices, di)
        rank = get_aval(updates).ndim - (du is not None)
        dn, updates_dim = _batch_numbers(dimension_numbers, rank, do, di)
        updates = move_axis(updates, du, updates_dim, size)
        return [prim.bind(operand, indices, updates, dimension_numbers=dn, mode=mode)], [do]

    return batch


def scatter_primitive(name: str, combine: Callable) -> Primitive:
    """A scatter that merges each update into the operand with ``combine(out, index, updates)``."""
    prim = Primitive(name)
    prim.def_impl(lambda *args, **params: _scatter_apply(combine, *args, **params))
    prim.def_abstract_eval(lambda *avals, **params: _scatter_abstract_eval(name, *avals, **params))
    batch_rules[prim] = _scatter_batch_rule(prim)
    return prim


scatter_p = scatter_primitive("scatter", _assign)
scatter_add_p = scatter_primitive("scatter_add", np.add.at)
scatter_mul_p = scatter_primitive("scatter_mul", np.multiply.at)
scatter_min_p = scatter_primitive("scatter_min", np.minimum.at)
scatter_max_p = scatter_primitive("scatter_max", np.maximum.at)

# --- scatter derivatives ------------------------------------------------------------------
# ScatterDimensionNumbers and GatherDimensionNumbers list their fields in the same order:
# the gather that reads what a scatter writes has the same numbers, and mode "fill"
# skips the windows that mode "drop" does.


def _gather_windows(x, indices, updates_aval: ShapedArray, dn: ScatterDimensionNumbers, mode: str, fill_value=0):
    """What the scatter's update windows address in ``x`` (shaped like the updates);
    windows that mode "drop" skips read ``fill_value``."""
    _, window = _scatter_window(get_aval(x).shape, dn, updates_aval.shape)
    clip = mode == "clip"
    return gather_p.bind(
        x,
        indices,
        dimension_numbers=GatherDimensionNumbers(*dn),
        slice_sizes=window,
        mode="clip" if clip else "fill",
        fill_value=None if clip else fill_value,
    )


def _collide(indices, operand: ShapedArray, updates: ShapedArray, dn: ScatterDimensionNumbers, mode: str) -> bool:
    """Whether two update elements may land on one operand position (always, for traced indices)."""
    if isinstance(indices, Tracer):
        return True
    if updates.size == 0:
        return False
    flat = _scatter_targets(operand.shape, indices, updates.shape, dn, mode)
    kept = flat[flat >= 0]
    return np.unique(kept).size != kept.size


def _scatter_add_jvp(primals: list, tangents: list, *, dimension_numbers, mode):
    operand, indices, updates = primals
    t_operand, _, t_updates = tangents
    out = scatter_add_p.bind(operand, indices, updates, dimension_numbers=dimension_numbers, mode=mode)
    if type(t_updates) is Zero:
        return [out], [t_operand]
    t_out = scatter_add_p.bind(
        instantiate(t_operand), indices, t_updates, dimension_numbers=dimension_numbers, mode=mode
    )
    return [out], [t_out]


def _scatter_add_vjp(cts: list, primals: list, outs: list, *, dimension_numbers, mode):
    (ct,), (_, indices, updates) = cts, primals
    ct_updates = _gather_windows(ct, indices, get_aval(updates), dimension_numbers, mode) if _needs(2) else None
    return [ct if _needs(0) else None, None, ct_updates]


jvp_rules[scatter_add_p] = _scatter_add_jvp
vjp_rules[scatter_add_p] = _scatter_add_vjp


def _kept_updates(indices, operand: ShapedArray, updates: ShapedArray, dn, mode: str):
    """Which update elements ``scatter`` keeps where several land on one position: scatter
    every element's number, then read back which number stayed."""
    int64 = np.dtype(np.int64)
    numbers = iota_p.bind(dtype=int64, shape=(updates.size,), dimension=0)
    numbers = reshape_p.bind(numbers, new_sizes=updates.shape)
    board = broadcast_in_dim_p.bind(np.int64(-1), shape=operand.shape, broadcast_dimensions=())
    board = scatter_p.bind(board, indices, numbers, dimension_numbers=dn, mode=mode)
    return eq_p.bind(_gather_windows(board, indices, updates, dn, mode, fill_value=-1), numbers)


def _scatter_vjp(cts: list, primals: list, outs: list, *, dimension_numbers, mode):
    # The operand's cotangent is ct where no update landed; an update's is ct where it
    # landed, if it is the one that stayed there.
    (ct,), (operand, indices, updates) = cts, primals
    dn, aval = dimension_numbers, get_aval(updates)
    ct_operand = ct_updates = None
    if _needs(0):
        ct_operand = scatter_p.bind(ct, indices, zeros(aval), dimension_numbers=dn, mode=mode)
    if _needs(2):
        ct_updates = _gather_windows(ct, indices, aval, dn, mode)
        if _collide(indices, get_aval(operand), aval, dn, mode):
            kept = _kept_updates(indices, get_aval(operand), aval, dn, mode)
            ct_updates = select_p.bind(kept, ct_updates, np.zeros((), aval.dtype))
    return [ct_operand, None, ct_updates]


jvp_rules[scatter_p] = _linear_jvp(scatter_p, (0, 2))
vjp_rules[scatter_p] = _scatter_vjp


def _unique_for_mul(indices, operand: ShapedArray, updates: ShapedArray, dn, mode: str) -> None:
    # Uniqueness can only be checked on concrete indices; with traced ones a repeated
    # index would give a silently wrong derivative, so refuse (as JAX does).
    if isinstance(indices, Tracer):
        indices = indices.concrete_value()  # known under eager transformations, not under jit
    if indices is None:
        raise NotImplementedError(
            with_user_line(
                "scatter_mul (x.at[i].multiply): the derivative with respect to the updates needs "
                "concrete, unique indices; these indices are traced. Differentiate outside jit, or "
                "write the product with x.at[i].get() and x.at[i].set()"
            )
        )
    if _collide(indices, operand, updates, dn, mode):
        raise NotImplementedError(
            with_user_line(
                "scatter_mul: the derivative with respect to the updates needs unique indices, "
                "but two updates land on the same position"
            )
        )


def _scatter_mul_jvp(primals: list, tangents: list, *, dimension_numbers, mode):
    # With unique indices, out = operand * (updates where they land, 1 elsewhere).
    operand, indices, updates = primals
    t_operand, _, t_updates = tangents
    params = {"dimension_numbers": dimension_numbers, "mode": mode}
    out = scatter_mul_p.bind(operand, indices, updates, **params)
    t_out = None
    if type(t_operand) is not Zero:
        t_out = scatter_mul_p.bind(t_operand, indices, updates, **params)
    if type(t_updates) is not Zero:
        aval = get_aval(operand)
        _unique_for_mul(indices, aval, get_aval(updates), dimension_numbers, mode)
        spread = scatter_add_p.bind(zeros(aval), indices, t_updates, **params)
        t_out = add_tangents(t_out, mul_p.bind(operand, spread))
    return [out], [Zero(get_aval(out)) if t_out is None else t_out]


def _scatter_mul_vjp(cts: list, primals: list, outs: list, *, dimension_numbers, mode):
    (ct,), (operand, indices, updates) = cts, primals
    dn, aval = dimension_numbers, get_aval(updates)
    ct_operand = ct_updates = None
    if _needs(0):
        ct_operand = scatter_mul_p.bind(ct, indices, updates, dimension_numbers=dn, mode=mode)
    if _needs(2):
        _unique_for_mul(indices, get_aval(operand), aval, dn, mode)
        ct_updates = _gather_windows(mul_p.bind(ct, operand), indices, aval, dn, mode)
    return [ct_operand, None, ct_updates]


jvp_rules[scatter_mul_p] = _scatter_mul_jvp
vjp_rules[scatter_mul_p] = _scatter_mul_vjp


def _extremum_shares(operand, indices, updates, out, dn, mode: str):
    """Which elements the result of scatter_min/max equals, as 1.0/0.0 masks over the
    operand and the updates, and how many there are at each position: they share it."""
    dtype = get_aval(operand).dtype

    def as_float(pred):
        return convert_element_type_p.bind(pred, new_dtype=dtype, weak_type=False)

    kept = as_float(eq_p.bind(operand, out))
    # Windows a "drop" scatter skips read NaN, equal to nothing.
    seen = _gather_windows(out, indices, get_aval(updates), dn, mode, fill_value=None)
    won = as_float(eq_p.bind(updates, seen))
    count = add_p.bind(
        kept, scatter_add_p.bind(zeros(get_aval(operand)), indices, won, dimension_numbers=dn, mode=mode)
    )
    return kept, won, count


def _def_extremum_rules(prim: Primitive) -> None:
    def jvp(primals: list, tangents: list, *, dimension_numbers, mode):
        operand, indices, updates = primals
        t_operand, _, t_updates = tangents
        out = prim.bind(operand, indices, updates, dimension_numbers=dimension_numbers, mode=mode)
        if type(t_operand) is Zero and type(t_updates) is Zero:
            return [out], [Zero(get_aval(out))]
        kept, won, count = _extremum_shares(operand, indices, updates, out, dimension_numbers, mode)
        t_out = None if type(t_operand) is Zero else mul_p.bind(t_operand, kept)
        if type(t_updates) is not Zero:
            spread = scatter_add_p.bind(
                zeros(get_aval(operand)),
                indices,
                mul_p.bind(t_updates, won),
                dimension_numbers=dimension_numbers,
                mode=mode,
            )
            t_out = add_tangents(t_out, spread)
        return [out], [div_p.bind(t_out, count)]

    def vjp(cts: list, primals: list, outs: list, *, dimension_numbers, mode):
        (ct,), (operand, indices, updates) = cts, primals
        kept, won, count = _extremum_shares(operand, indices, updates, outs[0], dimension_numbers, mode)
        share = div_p.bind(ct, count)
        ct_updates = None
        if _needs(2):
            gathered = _gather_windows(share, indices, get_aval(updates), dimension_numbers, mode)
            ct_updates = mul_p.bind(gathered, won)
        return [mul_p.bind(share, kept) if _needs(0) else None, None, ct_updates]

    jvp_rules[prim] = jvp
    vjp_rules[prim] = vjp


_def_extremum_rules(scatter_min_p)
_def_extremum_rules(scatter_max_p)


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
    "GatherDimensionNumbers", "ScatterDimensionNumbers", "gather", "scatter", "scatter_add",
    "scatter_max", "scatter_min", "scatter_mul",
]  # fmt: skip
