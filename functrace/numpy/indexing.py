"""Indexing of ``functrace.numpy``: ``x[...]``, ``x.at[...]``, ``take``, ``take_along_axis``.

``getitem(x, index)`` (what ``x[index]`` calls on a traced value) follows NumPy:
integers (negative ones count from the end), slices with any step, ``None``,
``Ellipsis``, integer arrays (NumPy's advanced indexing: index arrays broadcast
together, and their dimensions go first when a slice, ``None`` or ``...`` separates
them) and boolean masks. Basic indexing becomes ``slice``/``rev``/``reshape``
(``dynamic_slice`` for a traced integer); integer arrays become one ``gather``.

Out of bounds: a concrete index out of bounds raises ``IndexError``, as in NumPy.
A *traced* index cannot be checked, so, as in JAX, negative traced indices are
normalised (``i + n`` where ``i < 0``) and then reads (``x[i]``, ``take``,
``.at[i].get()``) **clamp** into bounds, while updates (``.at[i].set`` ...) **drop**
out-of-bounds writes. A traced boolean mask is an error (the result's shape would
depend on its values); a concrete mask works, traced operand or not.

Functional updates, JAX style, return a new array and leave ``x`` untouched::

    y = x.at[idx].set(v)   # also .add, .multiply (.mul), .min, .max, .get

Traced values have ``.at``. A NumPy array has no ``.at`` attribute, so eager code
writes ``fnp.at(x)[idx].set(v)``, which works on traced values too. Likewise a NumPy
array indexed by a traced value (``table[i]`` with ``table`` a constant) is NumPy's own
indexing, which needs a concrete ``i``: write ``fnp.take(table, i, axis=0)`` or
``fnp.at(table)[i].get()``. Where indices
repeat, ``.add``/``.multiply``/``.min``/``.max`` combine every update, and ``.set``
keeps one of them (the last, in NumPy's order).
"""

from __future__ import annotations

import operator
from typing import Any, NamedTuple

import numpy as np

from functrace.core import dtypes
from functrace.core.source_info import api_boundary, with_user_line
from functrace.core.trace import Tracer
from functrace.lax import elementwise as ew
from functrace.lax import gather_scatter as gs
from functrace.lax import indexing as lx
from functrace.lax.structural import broadcast_in_dim_p, concatenate_p, reshape_p, rev_p
from functrace.numpy.promotion import asarray, aval_of, broadcast_to, convert, is_eager

ArrayLike = Any

__all__ = ["at", "put_along_axis", "take", "take_along_axis"]

# --- parsing an index into one entry per indexed dimension ------------------------------


class _NewAxis(NamedTuple):
    position: int


class _Slice(NamedTuple):
    dim: int
    start: int
    step: int
    count: int
    position: int


class _Int(NamedTuple):
    dim: int
    value: Any  # a normalised int, or a traced integer scalar
    position: int


class _Array(NamedTuple):
    dim: int
    value: Any  # a normalised int64 ndarray, or a traced integer array
    position: int


def _is_traced(value: Any) -> bool:
    return isinstance(value, Tracer)


def _as_index_array(item: Any) -> Any:
    """A list, tuple or array index as an ndarray or tracer (``[]`` is an empty integer index)."""
    arr = asarray(item) if not isinstance(item, np.ndarray) else item
    if not _is_traced(arr) and arr.size == 0 and arr.dtype.kind == "f":
        return arr.astype(np.int64)
    return arr


def _check_bounds(values: np.ndarray, size: int, dim: int) -> np.ndarray:
    values = np.asarray(values).astype(np.int64)
    bad = values[(values < -size) | (values >= size)]
    if bad.size:
        raise IndexError(with_user_line(f"index {bad.flat[0]} is out of bounds for axis {dim} with size {size}"))
    return np.where(values < 0, values + size, values)


def _classify(item: Any) -> tuple[str, Any]:
    """The kind of one index item: none, ellipsis, slice, int, array or mask."""
    if item is None:
        return "none", None
    if item is Ellipsis:
        return "ellipsis", None
    if isinstance(item, slice):
        for bound in (item.start, item.stop, item.step):
            if _is_traced(bound):
                raise IndexError(
                    with_user_line("slice bounds must be static; use lax.dynamic_slice for a traced start")
                )
        return "slice", item
    if isinstance(item, bool | np.bool_):
        raise IndexError(with_user_line("boolean scalar indices are only supported by eager x[...]; use None"))
    if isinstance(item, int | np.integer):
        return "int", operator.index(item)
    arr = _as_index_array(item)
    kind = aval_of(arr).dtype.kind
    if kind == "b":
        if _is_traced(arr):
            raise IndexError(
                with_user_line(
                    "boolean mask indexing with a traced mask has a shape that depends on the mask's values; "
                    "use fnp.where(mask, x, other) instead, or pass the mask as a concrete array"
                )
            )
        return "mask", arr
    if kind not in "iu":
        raise IndexError(
            with_user_line(
                "only integers, slices (`:`), ellipsis (`...`), None and integer or boolean arrays are valid indices"
            )
        )
    return ("int" if aval_of(arr).ndim == 0 else "array"), arr


def _parse(shape: tuple[int, ...], index: Any) -> list:
    """One entry per index item, with dimensions assigned and concrete values checked."""
    items = [_classify(item) for item in (index if isinstance(index, tuple) else (index,))]
    consumed = sum(np.ndim(v) if k == "mask" else 1 for k, v in items if k in ("slice", "int", "array", "mask"))
    if consumed > len(shape):
        raise IndexError(
            with_user_line(
                f"too many indices for array: array is {len(shape)}-dimensional, but {consumed} were indexed"
            )
        )
    if sum(k == "ellipsis" for k, _ in items) > 1:
        raise IndexError(with_user_line("an index can only have a single ellipsis ('...')"))
    entries: list = []
    dim = 0
    for position, (kind, value) in enumerate(items):
        if kind == "none":
            entries.append(_NewAxis(position))
        elif kind == "ellipsis":
            for _ in range(len(shape) - consumed):
                entries.append(_Slice(dim, 0, 1, shape[dim], position))
                dim += 1
        elif kind == "slice":
            start, stop, step = value.indices(shape[dim])
            entries.append(_Slice(dim, start, step, len(range(start, stop, step)), position))
            dim += 1
        elif kind == "mask":
            if value.shape != shape[dim : dim + value.ndim]:
                raise IndexError(
                    with_user_line(f"boolean index of shape {value.shape} does not match the indexed shape {shape}")
                )
            for offset, coordinates in enumerate(np.nonzero(value)):
                entries.append(_Array(dim + offset, coordinates.astype(np.int64), position))
            dim += value.ndim
        else:
            if not _is_traced(value):
                value = _check_bounds(value, shape[dim], dim)
                value = int(value) if kind == "int" else value
            entries.append((_Int if kind == "int" else _Array)(dim, value, position))
            dim += 1
    entries += [_Slice(d, 0, 1, shape[d], len(items)) for d in range(dim, len(shape))]
    return entries


def _advanced(entries: list) -> list:
    """NumPy's advanced indices: integer arrays, and integers when there is an array."""
    if not any(isinstance(e, _Array) for e in entries):
        return []
    return [e for e in entries if isinstance(e, _Array | _Int)]


def _normalized(value: Any, size: int) -> Any:
    """A traced index as int64, with negative values counted from the end."""
    signed = aval_of(value).dtype.kind == "i"
    value = convert(value, dtypes.int64)
    if not signed:
        return value
    negative = ew.lt_p.bind(value, np.int64(0))
    return ew.select_p.bind(negative, ew.add_p.bind(value, np.int64(size)), value)


def _broadcast(x: Any, shape: tuple[int, ...]) -> Any:
    """``x`` broadcast to ``shape``, by NumPy when it is concrete (no equation for a constant)."""
    return broadcast_to(x, shape) if _is_traced(x) else np.broadcast_to(np.asarray(x), shape)


def _reshape(x: Any, shape: tuple[int, ...]) -> Any:
    """``x`` reshaped to ``shape``: nothing if it has that shape, NumPy if it is concrete."""
    if aval_of(x).shape == shape:
        return x
    return reshape_p.bind(x, new_sizes=shape) if _is_traced(x) else np.reshape(x, shape)


# --- basic indexing: slice, rev, dynamic_slice, reshape ------------------------------------


def _basic_shape(entries: list) -> tuple[int, ...]:
    """The result shape of basic indexing (no index arrays)."""
    return tuple(1 if isinstance(e, _NewAxis) else e.count for e in entries if not isinstance(e, _Int))


def _basic_getitem(x: Any, entries: list) -> Any:
    shape = aval_of(x).shape
    starts, limits, strides, reversed_dims = [0] * len(shape), list(shape), [1] * len(shape), []
    dynamic = {}
    for e in entries:
        if isinstance(e, _Slice) and e.count > 0:
            first, last = sorted((e.start, e.start + (e.count - 1) * e.step))
            starts[e.dim], limits[e.dim], strides[e.dim] = first, last + 1, abs(e.step)
            if e.step < 0 and e.count > 1:
                reversed_dims.append(e.dim)
        elif isinstance(e, _Slice):
            limits[e.dim] = 0
        elif isinstance(e, _Int) and _is_traced(e.value):
            if shape[e.dim] == 0:
                raise IndexError(with_user_line(f"index is out of bounds for axis {e.dim} with size 0"))
            dynamic[e.dim] = _normalized(e.value, shape[e.dim])
        elif isinstance(e, _Int):
            starts[e.dim], limits[e.dim] = e.value, e.value + 1
    if (starts, limits, strides) != ([0] * len(shape), list(shape), [1] * len(shape)):
        x = lx.slice_p.bind(x, start_indices=tuple(starts), limit_indices=tuple(limits), strides=tuple(strides))
    if reversed_dims:
        x = rev_p.bind(x, dimensions=tuple(reversed_dims))
    if dynamic:
        sliced = aval_of(x).shape
        sizes = tuple(1 if d in dynamic else n for d, n in enumerate(sliced))
        x = lx.dynamic_slice_p.bind(x, *[dynamic.get(d, np.int64(0)) for d in range(len(sliced))], slice_sizes=sizes)
    return _reshape(x, _basic_shape(entries))


# --- the general case: one gather (or scatter) -------------------------------------------


class _Plan(NamedTuple):
    """``x[index]`` as a gather: ``indices`` holds one index vector per batch position."""

    indices: Any
    dimension_numbers: gs.GatherDimensionNumbers
    slice_sizes: tuple[int, ...]
    gather_shape: tuple[int, ...]  # the gather's output: the result without its new axes
    out_shape: tuple[int, ...]
    empty_batch: bool


def _broadcast_advanced(advanced: list) -> tuple[int, ...]:
    shapes = [aval_of(e.value).shape if not isinstance(e.value, int) else () for e in advanced]
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        listed = " ".join(str(s) for s in shapes)
        raise IndexError(
            with_user_line(f"shape mismatch: indexing arrays could not be broadcast together with shapes {listed}")
        ) from None


class _Walk(NamedTuple):
    batch_sizes: list[int]  # the batch axes of the index vectors
    components: list[tuple[int, Any, tuple[int, ...]]]  # (operand dim, value, batch axes it spans)
    layout: list[tuple[str, int]]  # the result's dims: ("batch", axis), ("window", dim) or ("new", 0)
    slice_sizes: list[int]
    collapsed: list[int]


def _walk(shape: tuple[int, ...], entries: list) -> _Walk:
    """Each entry's part in one gather. A unit-step slice is a window (its start an index
    component unless it is 0); an integer is a collapsed dimension with a component; a
    strided slice is a collapsed dimension indexed by an ``arange`` along its own batch
    axis; index arrays are collapsed dimensions indexed along the shared advanced axes,
    which go first when the advanced indices are not next to each other (NumPy's rule)."""
    advanced = _advanced(entries)
    advanced_shape = _broadcast_advanced(advanced) if advanced else ()
    positions = sorted({e.position for e in advanced})
    contiguous = not positions or positions[-1] - positions[0] == len(positions) - 1
    walk = _Walk([], [], [], list(shape), [])

    def new_axes(sizes: tuple[int, ...]) -> tuple[int, ...]:
        axes = tuple(range(len(walk.batch_sizes), len(walk.batch_sizes) + len(sizes)))
        walk.batch_sizes.extend(sizes)
        walk.layout.extend(("batch", a) for a in axes)
        return axes

    advanced_axes = new_axes(advanced_shape) if advanced and not contiguous else None
    for e in entries:
        if isinstance(e, _NewAxis):
            walk.layout.append(("new", 0))
        elif isinstance(e, _Slice) and e.step == 1:
            walk.slice_sizes[e.dim] = e.count
            walk.layout.append(("window", e.dim))
            if e.count != shape[e.dim]:
                walk.components.append((e.dim, e.start, ()))
        else:
            walk.slice_sizes[e.dim] = 1
            walk.collapsed.append(e.dim)
            if isinstance(e, _Slice):
                strided = np.arange(e.count, dtype=np.int64) * e.step + e.start
                walk.components.append((e.dim, strided, new_axes((e.count,))))
            elif advanced:
                advanced_axes = new_axes(advanced_shape) if advanced_axes is None else advanced_axes
                walk.components.append((e.dim, e.value, advanced_axes))
            else:
                walk.components.append((e.dim, e.value, ()))
    return walk


def _plan(shape: tuple[int, ...], entries: list) -> _Plan:
    walk = _walk(shape, entries)
    sizes = {("batch", a): n for a, n in enumerate(walk.batch_sizes)}
    sizes.update({("window", d): n for d, n in enumerate(walk.slice_sizes)})
    sizes["new", 0] = 1
    gathered = [item for item in walk.layout if item[0] != "new"]
    dn = gs.GatherDimensionNumbers(
        offset_dims=tuple(p for p, (kind, _) in enumerate(gathered) if kind == "window"),
        collapsed_slice_dims=tuple(sorted(walk.collapsed)),
        start_index_map=tuple(d for d, _, _ in walk.components),
    )
    return _Plan(
        indices=_stack_indices(shape, walk.components, tuple(walk.batch_sizes)),
        dimension_numbers=dn,
        slice_sizes=tuple(walk.slice_sizes),
        gather_shape=tuple(sizes[item] for item in gathered),
        out_shape=tuple(sizes[item] for item in walk.layout),
        empty_batch=0 in walk.batch_sizes,
    )


def _stack_indices(shape: tuple[int, ...], components: list, batch_shape: tuple[int, ...]) -> Any:
    """The index vectors, ``batch_shape + (len(components),)``; NumPy unless one is traced."""
    target = (*batch_shape, 1)
    parts = []
    for dim, value, axes in components:
        span = tuple(batch_shape[a] for a in axes)
        if _is_traced(value):
            value = broadcast_to(_normalized(value, shape[dim]), span)
            parts.append(broadcast_in_dim_p.bind(value, shape=target, broadcast_dimensions=axes))
        else:
            value = np.broadcast_to(np.asarray(value, dtype=np.int64), span)
            expanded = [batch_shape[a] if a in axes else 1 for a in range(len(batch_shape))]
            parts.append(np.broadcast_to(value.reshape(*expanded, 1), target))
    if not any(_is_traced(p) for p in parts):
        return np.concatenate(parts, axis=-1) if parts else np.zeros((*target[:-1], 0), np.int64)
    return parts[0] if len(parts) == 1 else concatenate_p.bind(*parts, dimension=len(batch_shape))


def _check_collapsed_sizes(shape: tuple[int, ...], plan: _Plan) -> None:
    for d in plan.dimension_numbers.collapsed_slice_dims:
        if shape[d] == 0:
            raise IndexError(with_user_line(f"index is out of bounds for axis {d} with size 0"))


def _gather_getitem(x: Any, entries: list, mode: str | None, fill_value: Any) -> Any:
    aval = aval_of(x)
    plan = _plan(aval.shape, entries)
    if plan.empty_batch:
        return np.zeros(plan.out_shape, aval.dtype)
    _check_collapsed_sizes(aval.shape, plan)
    out = gs.gather(
        x, plan.indices, plan.dimension_numbers, plan.slice_sizes, mode=mode or "clip", fill_value=fill_value
    )
    return _reshape(out, plan.out_shape)


def _has_bool(index: Any) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return any(
        isinstance(i, bool | np.bool_) or (isinstance(i, np.ndarray | list) and np.asarray(i).dtype == bool)
        for i in items
    )


def _index_items(index: Any) -> list:
    items = index if isinstance(index, tuple) else (index,)
    return [i for item in items for i in (item if isinstance(item, list) else (item,))]


@api_boundary
def getitem(x: ArrayLike, index: Any, mode: str | None = None, fill_value: Any = None) -> Any:
    """NumPy's ``x[index]`` (see the module docstring); ``mode`` ``"clip"`` (default) or
    ``"fill"`` says what traced out-of-bounds indices read.

    >>> import numpy as np
    >>> from functrace.numpy.indexing import getitem
    >>> getitem(np.arange(12).reshape(3, 4), (slice(None, None, -2), [0, 3]))
    array([[ 8, 11],
           [ 0,  3]])
    """
    x = asarray(x)
    if is_eager(x, *_index_items(index)) and _has_bool(index):
        return np.asarray(np.asarray(x)[index])  # concrete boolean indexing: NumPy's own rules
    entries = _parse(aval_of(x).shape, index)
    traced_int = any(isinstance(e, _Int) and _is_traced(e.value) for e in entries)
    if not _advanced(entries) and (mode in (None, "clip") or not traced_int):
        return _basic_getitem(x, entries)
    return _gather_getitem(x, entries, mode, fill_value)


# --- functional updates: x.at[index].set(v) ------------------------------------------------


def _updates(x: Any, entries: list, values: ArrayLike, out_shape: tuple[int, ...]) -> Any:
    """``values`` in ``x``'s dtype, broadcast to the indexed shape (NumPy assignment rules)."""
    values = convert(asarray(values), aval_of(x).dtype)
    shape = aval_of(values).shape
    while len(shape) > len(out_shape) and shape[0] == 1:  # NumPy drops leading unit dimensions
        shape = shape[1:]
        values = _reshape(values, shape)
    return broadcast_to(values, out_shape)


def _is_box(entries: list) -> bool:
    """Only static integers, unit-step slices and new axes: the update is one rectangular box."""
    return all(
        isinstance(e, _NewAxis)
        or (isinstance(e, _Slice) and e.step == 1)
        or (isinstance(e, _Int) and not _is_traced(e.value))
        for e in entries
    )


def _box_set(x: Any, entries: list, values: ArrayLike) -> Any:
    shape = aval_of(x).shape
    starts, sizes = [0] * len(shape), list(shape)
    for e in entries:
        if isinstance(e, _Slice):
            starts[e.dim], sizes[e.dim] = e.start, e.count
        elif isinstance(e, _Int):
            starts[e.dim], sizes[e.dim] = e.value, 1
    update = _updates(x, entries, values, _basic_shape(entries))
    update = _reshape(update, tuple(sizes))
    return lx.dynamic_update_slice_p.bind(x, update, *[np.int64(s) for s in starts])


def _scatter_update(prim: Any, x: Any, index: Any, values: ArrayLike, mode: str | None) -> Any:
    x = asarray(x)
    aval = aval_of(x)
    entries = _parse(aval.shape, index)
    if prim is gs.scatter_p and _is_box(entries):
        return _box_set(x, entries, values)
    plan = _plan(aval.shape, entries)
    updates = _updates(x, entries, values, plan.out_shape)
    if plan.empty_batch:
        return x if _is_traced(x) else np.array(x, copy=True)
    _check_collapsed_sizes(aval.shape, plan)
    updates = _reshape(updates, plan.gather_shape)
    dn = plan.dimension_numbers
    scatter_dn = gs.ScatterDimensionNumbers(dn.offset_dims, dn.collapsed_slice_dims, dn.start_index_map)
    scatter = getattr(gs, prim.name)
    return scatter(x, plan.indices, updates, scatter_dn, mode=mode)


class _IndexUpdateRef:
    """``x.at[index]``: the functional update methods."""

    __slots__ = ("x", "index")

    def __init__(self, x: Any, index: Any):
        self.x, self.index = x, index

    @api_boundary
    def get(self, *, mode: str | None = None, fill_value: Any = None) -> Any:
        """``x[index]``; traced out-of-bounds indices clamp (``mode="clip"``) or read ``fill_value``
        (``mode="fill"``)."""
        return getitem(self.x, self.index, mode=mode, fill_value=fill_value)

    @api_boundary
    def set(self, values: ArrayLike, *, mode: str | None = None) -> Any:
        """A copy of ``x`` with ``x[index] = values``."""
        return _scatter_update(gs.scatter_p, self.x, self.index, values, mode)

    @api_boundary
    def add(self, values: ArrayLike, *, mode: str | None = None) -> Any:
        """A copy of ``x`` with ``values`` added at ``index`` (repeated indices accumulate)."""
        return _scatter_update(gs.scatter_add_p, self.x, self.index, values, mode)

    @api_boundary
    def multiply(self, values: ArrayLike, *, mode: str | None = None) -> Any:
        """A copy of ``x`` multiplied by ``values`` at ``index``."""
        return _scatter_update(gs.scatter_mul_p, self.x, self.index, values, mode)

    mul = multiply

    @api_boundary
    def min(self, values: ArrayLike, *, mode: str | None = None) -> Any:
        """A copy of ``x`` with ``minimum(x[index], values)`` at ``index``."""
        return _scatter_update(gs.scatter_min_p, self.x, self.index, values, mode)

    @api_boundary
    def max(self, values: ArrayLike, *, mode: str | None = None) -> Any:
        """A copy of ``x`` with ``maximum(x[index], values)`` at ``index``."""
        return _scatter_update(gs.scatter_max_p, self.x, self.index, values, mode)


class AtIndexer:
    """What ``x.at`` returns: ``x.at[index]`` offers ``get set add multiply mul min max``."""

    __slots__ = ("x",)

    def __init__(self, x: Any):
        self.x = x

    def __getitem__(self, index: Any) -> _IndexUpdateRef:
        return _IndexUpdateRef(self.x, index)


def at(x: ArrayLike) -> AtIndexer:
    """JAX's ``x.at`` for any array, NumPy arrays included: functional indexed updates.

    >>> import numpy as np, functrace.numpy as fnp
    >>> x = np.zeros(4)
    >>> fnp.at(x)[np.array([0, 2, 0])].add(1.0)
    array([2., 0., 1., 0.])
    >>> x
    array([0., 0., 0., 0.])
    """
    return AtIndexer(x)


# --- take, take_along_axis, put_along_axis ------------------------------------------------


def _axis(axis: int, ndim: int, name: str) -> int:
    if not -ndim <= axis < ndim:
        raise ValueError(with_user_line(f"{name}: axis {axis} is out of bounds for an array of dimension {ndim}"))
    return axis % ndim


@api_boundary
def take(a: ArrayLike, indices: ArrayLike, axis: int | None = None, mode: str | None = None) -> Any:
    """NumPy's ``take``. ``mode``: ``None``/``"raise"`` (concrete indices out of bounds raise,
    traced ones clamp), ``"wrap"``, ``"clip"`` (NumPy's: negatives clip to 0), or ``"fill"``
    (JAX's: out-of-bounds indices read NaN / the lowest integer).

    >>> import numpy as np, functrace.numpy as fnp
    >>> fnp.take(np.array([[1, 2], [3, 4]]), np.array([1, -1, 0]), axis=1)
    array([[2, 2, 1],
           [4, 4, 3]])
    """
    a = asarray(a)
    if axis is None:
        a, axis = reshape_p.bind(a, new_sizes=(aval_of(a).size,)), 0
    axis = _axis(axis, aval_of(a).ndim, "take")
    size = aval_of(a).shape[axis]
    indices = _as_index_array(indices)
    if mode in ("wrap", "clip") and size == 0 and aval_of(indices).size:
        raise IndexError(with_user_line("take: cannot do a non-empty take from an empty axis"))
    if mode == "wrap":
        indices = _wrap(indices, size)
    elif mode == "clip":
        indices = _clip(indices, size)
    elif mode not in (None, "raise", "fill"):
        raise ValueError(with_user_line(f"take: mode must be 'raise', 'wrap', 'clip' or 'fill', got {mode!r}"))
    return getitem(a, (slice(None),) * axis + (indices,), mode="fill" if mode == "fill" else None)


def _wrap(indices: Any, size: int) -> Any:
    if not _is_traced(indices):
        return np.mod(np.asarray(indices).astype(np.int64), size)
    from functrace.numpy.elementwise import remainder

    return remainder(convert(indices, dtypes.int64), np.int64(size))


def _clip(indices: Any, size: int) -> Any:
    if not _is_traced(indices):
        return np.clip(np.asarray(indices).astype(np.int64), 0, size - 1)
    from functrace.numpy.elementwise import clip

    return clip(convert(indices, dtypes.int64), np.int64(0), np.int64(size - 1))


def _along_axis(name: str, arr: ArrayLike, indices: ArrayLike, axis: int | None) -> tuple[Any, Any, int, Any]:
    """Operand and indices broadcast together except along ``axis``, and the gather/scatter
    dimension numbers that pair their other dimensions as batching dimensions."""
    arr, indices = asarray(arr), _as_index_array(indices)
    if axis is None:
        if aval_of(indices).ndim != 1:
            raise ValueError(with_user_line(f"{name}: with axis=None the indices must be one-dimensional"))
        arr, axis = reshape_p.bind(arr, new_sizes=(aval_of(arr).size,)), 0
    a_shape, i_shape = aval_of(arr).shape, aval_of(indices).shape
    if len(a_shape) != len(i_shape):
        raise ValueError(with_user_line(f"{name}: indices {i_shape} and arr {a_shape} need the same number of dims"))
    if aval_of(indices).dtype.kind not in "iu":
        raise IndexError(with_user_line(f"{name}: indices must be integers, got {aval_of(indices).dtype.name}"))
    axis = _axis(axis, len(a_shape), name)
    size = a_shape[axis]
    indices = _normalized(indices, size) if _is_traced(indices) else _check_bounds(indices, size, axis)
    try:
        common = np.broadcast_shapes(a_shape[:axis] + a_shape[axis + 1 :], i_shape[:axis] + i_shape[axis + 1 :])
    except ValueError:
        raise ValueError(with_user_line(f"{name}: shapes {a_shape} and {i_shape} do not broadcast")) from None
    arr_shape = (*common[:axis], size, *common[axis:])
    if name == "put_along_axis" and arr_shape != a_shape:
        raise ValueError(with_user_line(f"{name}: indices {i_shape} do not broadcast to arr {a_shape}"))
    arr = _broadcast(arr, arr_shape)
    indices = _broadcast(indices, (*common[:axis], i_shape[axis], *common[axis:]))
    indices = _reshape(indices, (*aval_of(indices).shape, 1))
    others = tuple(d for d in range(len(a_shape)) if d != axis)
    return arr, indices, axis, others


@api_boundary
def take_along_axis(arr: ArrayLike, indices: ArrayLike, axis: int | None) -> Any:
    """NumPy's ``take_along_axis``: ``out[..., j, ...] = arr[..., indices[..., j, ...], ...]``
    (traced out-of-bounds indices clamp).

    >>> import numpy as np, functrace.numpy as fnp
    >>> fnp.take_along_axis(np.array([[10, 30, 20]]), np.array([[0, 2, 1]]), axis=1)
    array([[10, 20, 30]])
    """
    arr, indices, axis, others = _along_axis("take_along_axis", arr, indices, axis)
    aval, out_shape = aval_of(arr), aval_of(indices).shape[:-1]
    if 0 in out_shape:
        return np.zeros(out_shape, aval.dtype)
    if aval.shape[axis] == 0:
        raise IndexError(with_user_line(f"take_along_axis: index out of bounds for axis {axis} with size 0"))
    dn = gs.GatherDimensionNumbers((), (axis,), (axis,), others, others)
    return gs.gather(arr, indices, dn, (1,) * aval.ndim)


@api_boundary
def put_along_axis(arr: ArrayLike, indices: ArrayLike, values: ArrayLike, axis: int | None) -> Any:
    """NumPy's ``put_along_axis``, functionally: returns a new array (``arr`` is untouched)
    with ``values`` written at ``indices`` along ``axis``; traced out-of-bounds writes drop.

    >>> import numpy as np, functrace.numpy as fnp
    >>> fnp.put_along_axis(np.zeros((2, 3)), np.array([[2], [0]]), 1.0, axis=1)
    array([[0., 0., 1.],
           [1., 0., 0.]])
    """
    arr, indices, axis, others = _along_axis("put_along_axis", arr, indices, axis)
    aval, out_shape = aval_of(arr), aval_of(indices).shape[:-1]
    values = broadcast_to(convert(asarray(values), aval.dtype), out_shape)
    if 0 in out_shape:
        return arr if _is_traced(arr) else np.array(arr, copy=True)
    if aval.shape[axis] == 0:
        raise IndexError(with_user_line(f"put_along_axis: index out of bounds for axis {axis} with size 0"))
    dn = gs.ScatterDimensionNumbers((), (axis,), (axis,), others, others)
    return gs.scatter(arr, indices, values, dn)
