"""Indexing primitives: static and dynamic slices (gather and scatter are in
``gather_scatter.py``).

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

Derivatives: every primitive here is linear in its array operands except
``scatter_mul``, ``scatter_min`` and ``scatter_max``; integer start indices and
indices get no cotangent. Where indices repeat, the derivatives are exact for
``scatter_add`` (updates accumulate), ``scatter`` (only the update that is kept gets a
cotangent) and ``scatter_min``/``scatter_max`` (the elements equal to the result share
it evenly, as ``max`` does for ties). ``scatter_mul``'s derivative with respect to its
updates needs unique indices: it raises ``NotImplementedError`` when the indices
repeat, or when they are traced (under ``jit``) so that uniqueness cannot be checked.

Batching (``vmap``): a mapped axis is one more dimension taken whole, except that
per-example start indices turn ``dynamic_slice`` into one ``gather`` and
``dynamic_update_slice`` into one ``scatter`` (mode ``"clip"``: the same clamping),
and mapped operand and indices of gather and the scatters become one more pair of
batching dimensions (``operand_batching_dims``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from functrace.core import dtypes
from functrace.core.abstract import ShapedArray
from functrace.core.ad_util import Zero, instantiate, needed_cotangents, zeros
from functrace.core.batching_util import mapped_size, move_axis
from functrace.core.primitive import Primitive, batch_rules, jvp_rules, vjp_rules
from functrace.core.source_info import with_user_line
from functrace.core.trace import Tracer, get_aval
from functrace.lax.elementwise import convert_element_type_p
from functrace.lax.structural import broadcast_in_dim_p, concatenate_p, pad_p, reshape_p

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


def _insert(values: tuple, at: int, value: Any) -> tuple:
    return (*values[:at], value, *values[at:])


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


def _slice_transpose(ct, aval: ShapedArray, *, start_indices, limit_indices, strides) -> list:
    # Each element goes back where it came from: zeros before the start, after the last
    # element taken, and (stride - 1) of them between neighbours.
    config = []
    for start, n, stride, dim in zip(start_indices, get_aval(ct).shape, strides, aval.shape, strict=True):
        spread = (n - 1) * stride + 1 if n else 0
        config.append((start, dim - start - spread, stride - 1 if n > 1 else 0))
    if all(c == (0, 0, 0) for c in config):
        return [ct]
    return [pad_p.bind(ct, np.zeros((), aval.dtype), padding_config=tuple(config))]


def _needs(i: int) -> bool:
    """Whether the adjoint pass wants a cotangent for input ``i`` of the current primitive."""
    mask = needed_cotangents()
    return mask is None or mask[i]


def _linear_jvp(prim: Primitive, linear: tuple[int, ...]) -> Callable:
    """The jvp of a primitive linear in the operands at positions ``linear`` (the others
    are integer indices): the primitive applied to those tangents, the same indices."""

    def jvp(primals: list, tangents: list, **params) -> tuple[list, list]:
        out = prim.bind(*primals, **params)
        if all(type(tangents[i]) is Zero for i in linear):
            return [out], [Zero(get_aval(out))]
        args = [instantiate(tangents[i]) if i in linear else p for i, p in enumerate(primals)]
        return [out], [prim.bind(*args, **params)]

    return jvp


jvp_rules[slice_p] = _linear_jvp(slice_p, (0,))
vjp_rules[slice_p] = lambda cts, primals, outs, **params: _slice_transpose(cts[0], get_aval(primals[0]), **params)


def _slice_batch(args: list, dims: list, *, start_indices, limit_indices, strides) -> tuple[list, list]:
    (x,), (d,) = args, dims
    out = slice_p.bind(
        x,
        start_indices=_insert(start_indices, d, 0),
        limit_indices=_insert(limit_indices, d, get_aval(x).shape[d]),
        strides=_insert(strides, d, 1),
    )
    return [out], [d]


batch_rules[slice_p] = _slice_batch

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


def _dynamic_slice_vjp(cts: list, primals: list, outs: list, *, slice_sizes) -> list:
    # The cotangent goes back into the window, which dynamic_update_slice clamps as
    # dynamic_slice did.
    (ct,), (x, *starts) = cts, primals
    aval = get_aval(x)
    if slice_sizes != aval.shape:
        ct = dynamic_update_slice_p.bind(zeros(aval), ct, *starts)
    return [ct] + [None] * len(starts)


jvp_rules[dynamic_slice_p] = _linear_jvp(dynamic_slice_p, (0,))
vjp_rules[dynamic_slice_p] = _dynamic_slice_vjp


def _stacked_starts(starts: Sequence[Any], dims: Sequence[int | None], size: int) -> Any:
    """Every example's start indices as one int64 array of shape ``(size, len(starts))``:
    the index vectors of a gather or scatter."""
    int64 = np.dtype(np.int64)
    columns = []
    for s, d in zip(starts, dims, strict=True):
        if get_aval(s).dtype != int64:
            s = convert_element_type_p.bind(s, new_dtype=int64, weak_type=False)
        columns.append(broadcast_in_dim_p.bind(s, shape=(size, 1), broadcast_dimensions=() if d is None else (0,)))
    return columns[0] if len(columns) == 1 else concatenate_p.bind(*columns, dimension=1)


def _dynamic_slice_batch(args: list, dims: list, *, slice_sizes) -> tuple[list, list]:
    # Shared starts: the mapped axis is one more dimension, sliced whole. Per-example
    # starts: one gather, whose mode "clip" clamps each window as dynamic_slice does.
    from functrace.lax.gather_scatter import GatherDimensionNumbers, gather_p

    (x, *starts), (d, *start_dims) = args, dims
    size = mapped_size(args, dims)
    if all(s is None for s in start_dims):
        out = dynamic_slice_p.bind(
            x, *_insert(tuple(starts), d, np.int64(0)), slice_sizes=_insert(slice_sizes, d, size)
        )
        return [out], [d]
    indices = _stacked_starts(starts, start_dims, size)
    rank = len(slice_sizes)
    if d is None:  # the gather's output has the batch of index vectors first
        window = tuple(range(1, rank + 1))
        dn = GatherDimensionNumbers(offset_dims=window, collapsed_slice_dims=(), start_index_map=tuple(range(rank)))
        d, sizes = 0, slice_sizes
    else:  # the operand's mapped axis pairs with the index vectors' batch, and stays at d
        others = tuple(a for a in range(rank + 1) if a != d)
        dn = GatherDimensionNumbers(others, (), others, operand_batching_dims=(d,), start_indices_batching_dims=(0,))
        sizes = _insert(slice_sizes, d, min(1, size))
    out = gather_p.bind(x, indices, dimension_numbers=dn, slice_sizes=sizes, mode="clip", fill_value=None)
    return [out], [d]


batch_rules[dynamic_slice_p] = _dynamic_slice_batch

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


def _dynamic_update_slice_vjp(cts: list, primals: list, outs: list) -> list:
    # The operand's cotangent is ct outside the window; the update's is ct inside it
    # (None where that is nothing: a window covering everything, or an empty one).
    (ct,), (x, update, *starts) = cts, primals
    aval = get_aval(update)
    whole = aval.shape == get_aval(x).shape
    ct_x = ct_update = None
    if _needs(0) and not whole:
        ct_x = ct if aval.size == 0 else dynamic_update_slice_p.bind(ct, zeros(aval), *starts)
    if _needs(1):
        ct_update = ct if whole else dynamic_slice_p.bind(ct, *starts, slice_sizes=aval.shape)
    return [ct_x, ct_update] + [None] * len(starts)


jvp_rules[dynamic_update_slice_p] = _linear_jvp(dynamic_update_slice_p, (0, 1))
vjp_rules[dynamic_update_slice_p] = _dynamic_update_slice_vjp


def _dynamic_update_slice_batch(args: list, dims: list) -> tuple[list, list]:
    # Operand and update get the mapped axis at one position d. Shared starts: the window
    # spans that axis whole. Per-example starts: one scatter, whose mode "clip" clamps
    # each window as dynamic_update_slice does.
    from functrace.lax.gather_scatter import ScatterDimensionNumbers, scatter_p

    (x, update, *starts), (dx, du, *start_dims) = args, dims
    size = mapped_size(args, dims)
    d = next((a for a in (dx, du) if a is not None), 0)
    x, update = move_axis(x, dx, d, size), move_axis(update, du, d, size)
    if all(s is None for s in start_dims):
        return [dynamic_update_slice_p.bind(x, update, *_insert(tuple(starts), d, np.int64(0)))], [d]
    others = tuple(a for a in range(get_aval(x).ndim) if a != d)
    dn = ScatterDimensionNumbers(others, (), others, operand_batching_dims=(d,), scatter_indices_batching_dims=(0,))
    indices = _stacked_starts(starts, start_dims, size)
    return [scatter_p.bind(x, indices, update, dimension_numbers=dn, mode="clip")], [d]


batch_rules[dynamic_update_slice_p] = _dynamic_update_slice_batch

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


__all__ = [
    "dynamic_index_in_dim", "dynamic_slice", "dynamic_slice_in_dim", "dynamic_update_slice",
    "dynamic_update_slice_in_dim", "index_in_dim", "slice", "slice_in_dim",
]  # fmt: skip
