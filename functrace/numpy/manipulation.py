"""Array manipulation in ``functrace.numpy``: reshape, transpose, stacking, splitting, padding...

Shapes are static: every function here works out its output shape from the
input shapes and binds structural primitives (``reshape``, ``transpose``,
``broadcast_in_dim``, ``concatenate``, ``slice``, ``pad``, ``rev``...). Axis
errors are NumPy's ``AxisError`` (a ``ValueError``); incompatible shapes are a
``TypeError`` naming the function and the shapes.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

from functrace.core import dtypes
from functrace.core.source_info import api_boundary, with_user_line
from functrace.core.trace import Tracer
from functrace.lax.indexing import slice_p
from functrace.lax.structural import (
    broadcast_in_dim_p,
    concatenate_p,
    expand_dims_p,
    pad_p,
    reshape_p,
    rev_p,
    squeeze_p,
    transpose_p,
)
from functrace.numpy.promotion import asarray, aval_of, broadcast_shapes, convert, promote_dtypes

__all__ = [
    "array_split", "atleast_1d", "atleast_2d", "atleast_3d", "broadcast_arrays", "broadcast_to",
    "concatenate", "expand_dims", "flip", "hstack", "moveaxis", "ndim", "pad", "ravel", "repeat",
    "reshape", "shape", "size", "split", "squeeze", "stack", "swapaxes", "tile", "transpose", "vstack",
]  # fmt: skip

ArrayLike = Any


def normalize_axis(name: str, axis: Any, ndim: int) -> int:
    """``axis`` as a non-negative int; NumPy's ``AxisError`` when out of bounds."""
    axis = int(axis)
    if not -ndim <= axis < ndim:
        raise np.exceptions.AxisError(
            with_user_line(f"{name}: axis {axis} is out of bounds for an array of dimension {ndim}")
        )
    return axis % ndim


def normalize_axes(name: str, axes: Any, ndim: int) -> tuple[int, ...]:
    """An int or a sequence of ints as distinct non-negative axes, in the given order."""
    axes = (axes,) if isinstance(axes, int | np.integer) else tuple(axes)
    out = tuple(normalize_axis(name, a, ndim) for a in axes)
    if len(set(out)) != len(out):
        raise ValueError(with_user_line(f"{name}: repeated axis in {axes}"))
    return out


def _operand(x: ArrayLike) -> Any:
    """A tracer, or ``x`` as an ndarray of a supported dtype."""
    return asarray(x)


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


def _reshape(x: Any, shape: tuple[int, ...]) -> Any:
    return x if aval_of(x).shape == shape else reshape_p.bind(x, new_sizes=shape)


@api_boundary
def reshape(a: ArrayLike, *newshape: Any, order: str = "C") -> Any:
    """NumPy's ``reshape`` (row-major); one dimension may be ``-1``.

    >>> import numpy as np, functrace.numpy as fnp
    >>> fnp.reshape(np.arange(6), (3, -1)).shape
    (3, 2)
    """
    if order != "C":
        raise NotImplementedError("reshape supports only order='C'")
    if len(newshape) == 1:
        newshape = newshape[0]
    a = _operand(a)
    return _reshape(a, _resolve_shape(newshape, aval_of(a).size))


@api_boundary
def ravel(a: ArrayLike) -> Any:
    """NumPy's ``ravel``.

    >>> import numpy as np, functrace.numpy as fnp
    >>> fnp.ravel(np.ones((2, 3))).shape
    (6,)
    """
    return reshape(a, (-1,))


def _transpose(x: Any, perm: tuple[int, ...]) -> Any:
    return x if perm == tuple(range(len(perm))) else transpose_p.bind(x, permutation=perm)


@api_boundary
def transpose(a: ArrayLike, axes: Sequence[int] | None = None) -> Any:
    """NumPy's ``transpose``; by default reverses the dimensions.

    >>> import numpy as np, functrace.numpy as fnp
    >>> fnp.transpose(np.zeros((2, 3))).shape
    (3, 2)
    """
    a = _operand(a)
    ndim = aval_of(a).ndim
    if axes is None:
        return _transpose(a, tuple(range(ndim))[::-1])
    perm = normalize_axes("transpose", axes, ndim)
    if len(perm) != ndim:
        raise ValueError(with_user_line(f"transpose: axes {tuple(axes)} don't match an array of dimension {ndim}"))
    return _transpose(a, perm)


@api_boundary
def swapaxes(a: ArrayLike, axis1: int, axis2: int) -> Any:
    """NumPy's ``swapaxes``.

    >>> import numpy as np, functrace.numpy as fnp
    >>> fnp.swapaxes(np.zeros((2, 3, 4)), 0, -1).shape
    (4, 3, 2)
    """
    a = _operand(a)
    ndim = aval_of(a).ndim
    i, j = normalize_axis("swapaxes", axis1, ndim), normalize_axis("swapaxes", axis2, ndim)
    perm = list(range(ndim))
    perm[i], perm[j] = j, i
    return _transpose(a, tuple(perm))


@api_boundary
def moveaxis(a: ArrayLike, source: int | Sequence[int], destination: int | Sequence[int]) -> Any:
    """NumPy's ``moveaxis``.

    >>> import numpy as np, functrace.numpy as fnp
    >>> fnp.moveaxis(np.zeros((2, 3, 4)), 0, -1).shape
    (3, 4, 2)
    """
    a = _operand(a)
    ndim = aval_of(a).ndim
    src = normalize_axes("moveaxis", source, ndim)
    dst = normalize_axes("moveaxis", destination, ndim)
    if len(src) != len(dst):
        raise ValueError(with_user_line("moveaxis: `source` and `destination` need the same number of elements"))
    rest = [i for i in range(ndim) if i not in src]
    for d, s in sorted(zip(dst, src, strict=True)):
        rest.insert(d, s)
    return _transpose(a, tuple(rest))


@api_boundary
def squeeze(a: ArrayLike, axis: int | Sequence[int] | None = None) -> Any:
    """NumPy's ``squeeze``: remove size-1 dimensions (all of them, or those in ``axis``).

    >>> import numpy as np, functrace.numpy as fnp
    >>> fnp.squeeze(np.zeros((1, 3, 1))).shape
    (3,)
    """
    a = _operand(a)
    shape = aval_of(a).shape
    if axis is None:
        dims = tuple(i for i, d in enumerate(shape) if d == 1)
    else:
        dims = tuple(sorted(normalize_axes("squeeze", axis, len(shape))))
        if any(shape[i] != 1 for i in dims):
            raise ValueError(
                with_user_line(f"squeeze: cannot remove axis {axis} of shape {shape}: its size is not one")
            )
    return squeeze_p.bind(a, dimensions=dims) if dims else a


@api_boundary
def expand_dims(a: ArrayLike, axis: int | Sequence[int]) -> Any:
    """NumPy's ``expand_dims``: size-1 dimensions at the output positions ``axis``.

    >>> import numpy as np, functrace.numpy as fnp
    >>> fnp.expand_dims(np.zeros(3), (0, -1)).shape
    (1, 3, 1)
    """
    a = _operand(a)
    axes = (axis,) if isinstance(axis, int | np.integer) else tuple(axis)
    dims = normalize_axes("expand_dims", axes, aval_of(a).ndim + len(axes))
    return expand_dims_p.bind(a, dimensions=tuple(sorted(dims))) if dims else a


@api_boundary
def broadcast_to(array: ArrayLike, shape: int | Sequence[int]) -> Any:
    """NumPy's ``broadcast_to``.

    >>> import numpy as np, functrace.numpy as fnp
    >>> fnp.broadcast_to(np.array([1, 2]), (3, 2)).shape
    (3, 2)
    """
    array = _operand(array)
    shape = (int(shape),) if isinstance(shape, int | np.integer) else tuple(int(d) for d in shape)
    if any(d < 0 for d in shape):
        raise ValueError(with_user_line(f"broadcast_to: negative dimensions in {shape} are not allowed"))
    aval = aval_of(array)
    ok = aval.ndim <= len(shape) and all(d in (1, n) for d, n in zip(aval.shape[::-1], shape[::-1], strict=False))
    if not ok:
        raise TypeError(with_user_line(f"broadcast_to: cannot broadcast shape {aval.shape} to {shape}"))
    if aval.shape == shape:
        return array
    dims = tuple(range(len(shape) - aval.ndim, len(shape)))
    return broadcast_in_dim_p.bind(array, shape=shape, broadcast_dimensions=dims)


@api_boundary
def broadcast_arrays(*args: ArrayLike) -> tuple[Any, ...]:
    """NumPy's ``broadcast_arrays``: the arguments broadcast to their common shape.

    >>> import numpy as np, functrace.numpy as fnp
    >>> [x.shape for x in fnp.broadcast_arrays(np.zeros((2, 1)), np.zeros(3))]
    [(2, 3), (2, 3)]
    """
    arrays = [_operand(x) for x in args]
    shape = broadcast_shapes("broadcast_arrays", *[aval_of(x).shape for x in arrays])
    return tuple(broadcast_to(x, shape) for x in arrays)


def _common_dtype(arrays: list[Any], dtype: Any) -> list[Any]:
    if dtype is not None:
        return [convert(x, dtypes.canonicalize(dtype)) for x in arrays]
    return promote_dtypes(*arrays)


@api_boundary
def concatenate(arrays: Sequence[ArrayLike], axis: int | None = 0, dtype: Any = None) -> Any:
    """NumPy's ``concatenate`` (dtypes promoted; ``axis=None`` flattens first).

    >>> import numpy as np, functrace.numpy as fnp
    >>> fnp.concatenate([np.zeros((1, 2), np.int32), np.ones((2, 2))]).dtype
    dtype('float64')
    """
    arrays = [_operand(x) for x in arrays]
    if not arrays:
        raise ValueError(with_user_line("concatenate needs at least one array"))
    if axis is None:
        arrays = [ravel(x) for x in arrays]
        axis = 0
    if any(aval_of(x).ndim == 0 for x in arrays):
        raise ValueError(with_user_line("concatenate: zero-dimensional arrays cannot be concatenated"))
    axis = normalize_axis("concatenate", axis, aval_of(arrays[0]).ndim)
    return concatenate_p.bind(*_common_dtype(arrays, dtype), dimension=axis)


@api_boundary
def stack(arrays: Sequence[ArrayLike], axis: int = 0, dtype: Any = None) -> Any:
    """NumPy's ``stack``: join equal-shaped arrays along a new axis.

    >>> import numpy as np, functrace.numpy as fnp
    >>> fnp.stack([np.zeros(2), np.ones(2)], axis=1).shape
    (2, 2)
    """
    arrays = [_operand(x) for x in arrays]
    if not arrays:
        raise ValueError(with_user_line("stack needs at least one array"))
    shapes = [aval_of(x).shape for x in arrays]
    if len(set(shapes)) > 1:
        listed = " and ".join(str(s) for s in shapes)
        raise TypeError(with_user_line(f"stack needs arrays of one shape, got {listed}"))
    axis = normalize_axis("stack", axis, len(shapes[0]) + 1)
    arrays = [expand_dims_p.bind(x, dimensions=(axis,)) for x in _common_dtype(arrays, dtype)]
    return concatenate_p.bind(*arrays, dimension=axis)


def _atleast_shape(shape: tuple[int, ...], ndim: int) -> tuple[int, ...]:
    # NumPy's placement: a 1-d array becomes a row (1, n) or (1, n, 1); 2-d gains a last axis.
    if len(shape) >= ndim:
        return shape
    if len(shape) == 0:
        return (1,) * ndim
    if len(shape) == 1:
        return (1, shape[0], 1)[:ndim]
    return (*shape, 1)


def _atleast(arys: tuple[ArrayLike, ...], ndim: int) -> Any:
    out = []
    for x in arys:
        x = _operand(x)
        out.append(_reshape(x, _atleast_shape(aval_of(x).shape, ndim)))
    return out[0] if len(out) == 1 else tuple(out)


@api_boundary
def atleast_1d(*arys: ArrayLike) -> Any:
    """NumPy's ``atleast_1d``.

    >>> import functrace.numpy as fnp
    >>> fnp.atleast_1d(3.0)
    array([3.])
    """
    return _atleast(arys, 1)


@api_boundary
def atleast_2d(*arys: ArrayLike) -> Any:
    """NumPy's ``atleast_2d``: 1-d arrays become rows.

    >>> import numpy as np, functrace.numpy as fnp
    >>> fnp.atleast_2d(np.zeros(3)).shape
    (1, 3)
    """
    return _atleast(arys, 2)


@api_boundary
def atleast_3d(*arys: ArrayLike) -> Any:
    """NumPy's ``atleast_3d``: ``(n,)`` becomes ``(1, n, 1)`` and ``(m, n)`` becomes ``(m, n, 1)``.

    >>> import numpy as np, functrace.numpy as fnp
    >>> fnp.atleast_3d(np.zeros(3)).shape
    (1, 3, 1)
    """
    return _atleast(arys, 3)


@api_boundary
def hstack(tup: Sequence[ArrayLike], dtype: Any = None) -> Any:
    """NumPy's ``hstack``: along the second axis (the first for 1-d arrays).

    >>> import numpy as np, functrace.numpy as fnp
    >>> fnp.hstack([np.zeros(2), np.ones(3)]).shape
    (5,)
    """
    arrays = [atleast_1d(x) for x in tup]
    axis = 0 if arrays and aval_of(arrays[0]).ndim == 1 else 1
    return concatenate(arrays, axis=axis, dtype=dtype)


@api_boundary
def vstack(tup: Sequence[ArrayLike], dtype: Any = None) -> Any:
    """NumPy's ``vstack``: along the first axis, 1-d arrays as rows.

    >>> import numpy as np, functrace.numpy as fnp
    >>> fnp.vstack([np.zeros(2), np.ones(2)]).shape
    (2, 2)
    """
    return concatenate([atleast_2d(x) for x in tup], axis=0, dtype=dtype)


def slice_axis(x: Any, axis: int, start: int, stop: int) -> Any:
    """``x[..., start:stop, ...]`` along ``axis`` with the ``slice`` primitive."""
    shape = aval_of(x).shape
    if (start, stop) == (0, shape[axis]):
        return x
    starts = tuple(start if i == axis else 0 for i in range(len(shape)))
    limits = tuple(stop if i == axis else d for i, d in enumerate(shape))
    return slice_p.bind(x, start_indices=starts, limit_indices=limits, strides=(1,) * len(shape))


def _split_bounds(n: int, indices_or_sections: Any, even: bool) -> list[tuple[int, int]]:
    if isinstance(indices_or_sections, int | np.integer | Tracer) or np.ndim(indices_or_sections) == 0:
        sections = int(indices_or_sections)
        if sections <= 0:
            raise ValueError(with_user_line(f"split: the number of sections must be positive, got {sections}"))
        if even and n % sections:
            raise ValueError(with_user_line(f"split: an axis of size {n} does not split into {sections} equal parts"))
        size, extra = divmod(n, sections)
        edges = np.cumsum([0] + [size + 1] * extra + [size] * (sections - extra)).tolist()
        return list(itertools.pairwise(edges))
    edges = [0, *(int(i) for i in indices_or_sections), n]
    bounds = []
    for lo, hi in itertools.pairwise(edges):
        start, stop, _ = slice(lo, hi).indices(n)  # Python slicing: negative and past-the-end indices
        bounds.append((start, max(start, stop)))
    return bounds


def _split(name: str, ary: ArrayLike, indices_or_sections: Any, axis: int, even: bool) -> list[Any]:
    ary = _operand(ary)
    shape = aval_of(ary).shape
    axis = normalize_axis(name, axis, len(shape))
    return [slice_axis(ary, axis, lo, hi) for lo, hi in _split_bounds(shape[axis], indices_or_sections, even)]


@api_boundary
def split(ary: ArrayLike, indices_or_sections: int | Sequence[int], axis: int = 0) -> list[Any]:
    """NumPy's ``split``: into equal sections, or at the given indices.

    >>> import numpy as np, functrace.numpy as fnp
    >>> [x.tolist() for x in fnp.split(np.arange(5), [2, 3])]
    [[0, 1], [2], [3, 4]]
    """
    return _split("split", ary, indices_or_sections, axis, even=True)


@api_boundary
def array_split(ary: ArrayLike, indices_or_sections: int | Sequence[int], axis: int = 0) -> list[Any]:
    """NumPy's ``array_split``: as ``split``, but sections may differ in size by one.

    >>> import numpy as np, functrace.numpy as fnp
    >>> [x.tolist() for x in fnp.array_split(np.arange(5), 2)]
    [[0, 1, 2], [3, 4]]
    """
    return _split("array_split", ary, indices_or_sections, axis, even=False)


@api_boundary
def tile(A: ArrayLike, reps: int | Sequence[int]) -> Any:
    """NumPy's ``tile``.

    >>> import numpy as np, functrace.numpy as fnp
    >>> fnp.tile(np.array([1, 2]), (2, 2))
    array([[1, 2, 1, 2],
           [1, 2, 1, 2]])
    """
    a = _operand(A)
    reps = (int(reps),) if isinstance(reps, int | np.integer) else tuple(int(r) for r in reps)
    if any(r < 0 for r in reps):
        raise ValueError(with_user_line(f"tile: negative repetitions in {reps} are not allowed"))
    shape = aval_of(a).shape
    ndim = max(len(reps), len(shape))
    shape = (1,) * (ndim - len(shape)) + shape
    reps = (1,) * (ndim - len(reps)) + reps
    a = _reshape(a, shape)
    # (r0, s0, r1, s1, ...) holds the copies; merging each pair gives NumPy's order.
    interleaved = tuple(v for r, s in zip(reps, shape, strict=True) for v in (r, s))
    tiled = broadcast_in_dim_p.bind(a, shape=interleaved, broadcast_dimensions=tuple(range(1, 2 * ndim, 2)))
    return _reshape(tiled, tuple(r * s for r, s in zip(reps, shape, strict=True)))


def _index_runs(indices: Sequence[int]) -> list[tuple[int, int, int]]:
    """Split static indices into ``(first, step, count)`` runs with step 1, -1 or 0."""
    runs: list[tuple[int, int, int]] = []
    i = 0
    while i < len(indices):
        step = indices[i + 1] - indices[i] if i + 1 < len(indices) else 1
        step = step if step in (-1, 0, 1) else 1
        count = 1
        while i + count < len(indices) and indices[i + count] - indices[i + count - 1] == step:
            count += 1
        runs.append((indices[i], step if count > 1 else 1, count))
        i += count
    return runs


def take_static(x: Any, axis: int, indices: Sequence[int]) -> Any:
    """``x`` indexed along ``axis`` by static ``indices``: slices, reversed slices and
    broadcasts, concatenated (no gather needed)."""
    shape = aval_of(x).shape
    pieces = []
    for first, step, count in _index_runs([int(i) for i in indices]):
        if step == 1:
            pieces.append(slice_axis(x, axis, first, first + count))
        elif step == -1:
            pieces.append(rev_p.bind(slice_axis(x, axis, first - count + 1, first + 1), dimensions=(axis,)))
        else:
            one = slice_axis(x, axis, first, first + 1)
            target = (*shape[:axis], count, *shape[axis + 1 :])
            pieces.append(broadcast_in_dim_p.bind(one, shape=target, broadcast_dimensions=tuple(range(len(shape)))))
    if not pieces:
        return slice_axis(x, axis, 0, 0)
    return pieces[0] if len(pieces) == 1 else concatenate_p.bind(*pieces, dimension=axis)


def _concrete(x: Any, what: str) -> np.ndarray:
    return x._concretize(what) if isinstance(x, Tracer) else np.asarray(x)


@api_boundary
def repeat(a: ArrayLike, repeats: int | Sequence[int], axis: int | None = None) -> Any:
    """NumPy's ``repeat``; ``repeats`` is static (an int, or one count per element).

    >>> import numpy as np, functrace.numpy as fnp
    >>> fnp.repeat(np.array([1, 2]), 2)
    array([1, 1, 2, 2])
    """
    a = _operand(a)
    if axis is None:
        a, axis = ravel(a), 0
    shape = aval_of(a).shape
    axis = normalize_axis("repeat", axis, len(shape))
    counts = _concrete(repeats, "repeat's repeats argument")
    if counts.size == 0:
        counts = counts.astype(np.int64)  # np.asarray([]) is float64
    if counts.dtype.kind not in "iub" or counts.ndim > 1:
        raise TypeError(with_user_line(f"repeat: repeats must be an int or a 1-d sequence of ints, got {repeats!r}"))
    if np.any(counts < 0):
        raise ValueError(with_user_line("repeat: repeats may not contain negative values"))
    if counts.size == 1:
        r = int(counts.reshape(()))
        expanded = (*shape[: axis + 1], r, *shape[axis + 1 :])
        dims = tuple(i for i in range(len(shape) + 1) if i != axis + 1)
        out = broadcast_in_dim_p.bind(a, shape=expanded, broadcast_dimensions=dims)
        return _reshape(out, (*shape[:axis], shape[axis] * r, *shape[axis + 1 :]))
    if counts.shape != (shape[axis],):
        raise TypeError(with_user_line(f"repeat: {counts.size} repeats for an axis of size {shape[axis]}"))
    return take_static(a, axis, np.repeat(np.arange(shape[axis]), counts))


@api_boundary
def flip(m: ArrayLike, axis: int | Sequence[int] | None = None) -> Any:
    """NumPy's ``flip``: reverse the order of elements along ``axis`` (all axes by default).

    >>> import numpy as np, functrace.numpy as fnp
    >>> fnp.flip(np.array([1, 2, 3]))
    array([3, 2, 1])
    """
    m = _operand(m)
    ndim = aval_of(m).ndim
    dims = tuple(range(ndim)) if axis is None else tuple(sorted(normalize_axes("flip", axis, ndim)))
    return rev_p.bind(m, dimensions=dims) if dims else m


def _as_pairs(name: str, value: Any, ndim: int, integral: bool) -> np.ndarray:
    """NumPy's broadcasting of a pad argument to one ``(before, after)`` pair per axis."""
    arr = np.asarray(value)
    if integral and arr.dtype.kind not in "iu":
        raise TypeError(with_user_line(f"{name}: pad_width must be of integral type, got {value!r}"))
    try:
        pairs = np.broadcast_to(arr, (ndim, 2))
    except ValueError:
        raise ValueError(with_user_line(f"{name}: cannot use {value!r} for an array of dimension {ndim}")) from None
    if integral and np.any(pairs < 0):
        raise ValueError(with_user_line(f"{name}: pad_width {value!r} can't contain negative values"))
    return pairs


def _pad_constant(array: Any, widths: np.ndarray, constant_values: Any) -> Any:
    dtype = aval_of(array).dtype
    ndim = len(widths)
    if isinstance(constant_values, Tracer) or np.ndim(constant_values) == 0:
        config = tuple((int(lo), int(hi), 0) for lo, hi in widths)
        return pad_p.bind(array, convert(constant_values, dtype), padding_config=config)
    values = _as_pairs("pad", constant_values, ndim, integral=False)
    # Axis by axis, so that corners take the value of the later axis (NumPy's order).
    for axis in range(ndim):
        for side in (0, 1):
            width = int(widths[axis, side])
            if width:
                config = [(0, 0, 0)] * ndim
                config[axis] = (width, 0, 0) if side == 0 else (0, width, 0)
                value = convert(np.asarray(values[axis, side]), dtype)
                array = pad_p.bind(array, value, padding_config=tuple(config))
    return array


def _source_index(mode: str, j: int, n: int) -> int:
    """Which element of an axis of size ``n`` lands at position ``j`` (``0 <= j < n`` is the array)."""
    if mode == "edge":
        return min(max(j, 0), n - 1)
    if mode == "wrap":
        return j % n
    if mode == "reflect":
        if n == 1:
            return 0
        m = j % (2 * n - 2)
        return m if m < n else 2 * n - 2 - m
    m = j % (2 * n)  # symmetric: the edge element is repeated
    return m if m < n else 2 * n - 1 - m


_PAD_MODES = ("constant", "edge", "reflect", "symmetric", "wrap", "empty")


@api_boundary
def pad(array: ArrayLike, pad_width: Any, mode: str = "constant", constant_values: Any = 0) -> Any:
    """NumPy's ``pad`` with modes ``constant``, ``edge``, ``reflect``, ``symmetric``, ``wrap``
    (and ``empty``, which pads with zeros).

    >>> import numpy as np, functrace.numpy as fnp
    >>> fnp.pad(np.array([1, 2, 3]), (2, 1), mode="reflect")
    array([3, 2, 1, 2, 3, 2])
    """
    if mode not in _PAD_MODES:
        raise NotImplementedError(f"pad: mode {mode!r} is not supported; use one of {', '.join(_PAD_MODES)}")
    array = _operand(array)
    shape = aval_of(array).shape
    widths = _as_pairs("pad", pad_width, len(shape), integral=True)
    if mode in ("constant", "empty"):
        return _pad_constant(array, widths, constant_values if mode == "constant" else 0)
    for axis, (lo, hi) in enumerate(widths.tolist()):
        if not lo and not hi:
            continue
        n = shape[axis]
        if n == 0:
            raise ValueError(with_user_line(f"pad: can't extend the empty axis {axis} with mode {mode!r}"))
        indices = [_source_index(mode, j, n) for j in range(-lo, n + hi)]
        array = take_static(array, axis, indices)
    return array


@api_boundary
def shape(a: ArrayLike) -> tuple[int, ...]:
    """NumPy's ``shape`` (static, also for traced values).

    >>> import numpy as np, functrace.numpy as fnp
    >>> fnp.shape(np.zeros((2, 3)))
    (2, 3)
    """
    return aval_of(_operand(a)).shape


@api_boundary
def ndim(a: ArrayLike) -> int:
    """NumPy's ``ndim`` (static, also for traced values).

    >>> import functrace.numpy as fnp
    >>> fnp.ndim([[1, 2]])
    2
    """
    return aval_of(_operand(a)).ndim


@api_boundary
def size(a: ArrayLike, axis: int | None = None) -> int:
    """NumPy's ``size``: the number of elements (along ``axis`` if given).

    >>> import numpy as np, functrace.numpy as fnp
    >>> fnp.size(np.zeros((2, 3))), fnp.size(np.zeros((2, 3)), 1)
    (6, 3)
    """
    aval = aval_of(_operand(a))
    return aval.size if axis is None else aval.shape[normalize_axis("size", axis, aval.ndim)]
