"""Shape primitives: broadcasting, reshaping, transposing, slicing, padding..."""

from __future__ import annotations

import numpy as np

from functrace.core import dtypes
from functrace.core.abstract import ShapedArray
from functrace.core.ad_util import Zero, deflinear, zeros
from functrace.core.batching_util import mapped_size, move_axis
from functrace.core.primitive import Primitive, batch_rules, jvp_rules, zero_derivative
from functrace.core.source_info import with_user_line
from functrace.core.trace import get_aval
from functrace.lax.elementwise import _lax_operands, select_p, sub_p

# Every primitive here but iota is linear: its derivative is itself (``deflinear``), and
# its transpose maps an output cotangent back to the operands' shapes. reductions.py and
# indexing.py import this module, so the transposes import reduce_sum_p and slice_p
# when they run.
#
# Batch rules see the mapped axis ``d`` of an operand; an example's dimension ``e`` is
# dimension ``_full(e, d)`` of the batched value.


def _full(e: int, d: int) -> int:
    """The batched value's dimension holding an example's dimension ``e`` (mapped axis ``d``)."""
    return e if e < d else e + 1


def _full_dims(dims: tuple[int, ...], d: int) -> tuple[int, ...]:
    return tuple(_full(e, d) for e in dims)


def _sum_all(x):
    """The sum of all elements (x itself when it is a scalar)."""
    from functrace.lax.reductions import reduce_sum_p

    ndim = get_aval(x).ndim
    return reduce_sum_p.bind(x, axes=tuple(range(ndim))) if ndim else x


def _slice(x, starts: tuple[int, ...], limits: tuple[int, ...], strides: tuple[int, ...]):
    """``x[starts:limits:strides]``, with no equation when that is all of x."""
    from functrace.lax.indexing import slice_p

    if not any(starts) and limits == get_aval(x).shape and all(s == 1 for s in strides):
        return x
    return slice_p.bind(x, start_indices=starts, limit_indices=limits, strides=strides)


# --- broadcast_in_dim ---------------------------------------------------------------

broadcast_in_dim_p = Primitive("broadcast_in_dim")


def _broadcast_in_dim_impl(x, *, shape: tuple[int, ...], broadcast_dimensions: tuple[int, ...]):
    x = np.asarray(x)
    expanded = [1] * len(shape)
    for src, dst in enumerate(broadcast_dimensions):
        expanded[dst] = x.shape[src]
    return [np.broadcast_to(x.reshape(expanded), shape)]


def _broadcast_in_dim_abstract_eval(x: ShapedArray, *, shape, broadcast_dimensions):
    ok = len(broadcast_dimensions) == x.ndim and all(
        0 <= d < len(shape) and x.shape[i] in (1, shape[d]) for i, d in enumerate(broadcast_dimensions)
    )
    ok = ok and list(broadcast_dimensions) == sorted(set(broadcast_dimensions))
    if not ok:
        raise TypeError(
            with_user_line(
                f"broadcast_in_dim cannot broadcast shape {x.shape} to {tuple(shape)} "
                f"with broadcast_dimensions={tuple(broadcast_dimensions)}"
            )
        )
    return [ShapedArray(shape, x.dtype, x.weak_type)]


broadcast_in_dim_p.def_impl(_broadcast_in_dim_impl)
broadcast_in_dim_p.def_abstract_eval(_broadcast_in_dim_abstract_eval)


def _broadcast_in_dim_transpose(ct, aval: ShapedArray, *, shape, broadcast_dimensions) -> list:
    # Sum over the new dimensions and over those broadcast from size 1, then put the
    # size-1 dimensions back.
    from functrace.lax.reductions import reduce_sum_p

    new = [d for d in range(len(shape)) if d not in broadcast_dimensions]
    stretched = [d for i, d in enumerate(broadcast_dimensions) if aval.shape[i] == 1 and shape[d] != 1]
    axes = tuple(sorted(new + stretched))
    if axes:
        ct = reduce_sum_p.bind(ct, axes=axes)
    if get_aval(ct).shape != aval.shape:
        ct = reshape_p.bind(ct, new_sizes=aval.shape)
    return [ct]


deflinear(broadcast_in_dim_p, _broadcast_in_dim_transpose)


def _broadcast_in_dim_batch(args: list, dims: list, *, shape, broadcast_dimensions) -> tuple[list, list]:
    # The mapped axis goes right after the output dimension of the operand dimension
    # before it, which keeps broadcast_dimensions increasing: no transpose needed.
    (x,), (d,) = args, dims
    out_d = broadcast_dimensions[d - 1] + 1 if d else 0
    bdims = tuple(b if b < out_d else b + 1 for b in broadcast_dimensions)
    bdims = (*bdims[:d], out_d, *bdims[d:])
    out_shape = (*shape[:out_d], get_aval(x).shape[d], *shape[out_d:])
    return [broadcast_in_dim_p.bind(x, shape=out_shape, broadcast_dimensions=bdims)], [out_d]


batch_rules[broadcast_in_dim_p] = _broadcast_in_dim_batch

# --- reshape ------------------------------------------------------------------------

reshape_p = Primitive("reshape")


def _reshape_abstract_eval(x: ShapedArray, *, new_sizes: tuple[int, ...]):
    if int(np.prod(new_sizes, dtype=np.int64)) != x.size or any(d < 0 for d in new_sizes):
        raise TypeError(with_user_line(f"reshape cannot reshape an array of shape {x.shape} into {tuple(new_sizes)}"))
    return [ShapedArray(new_sizes, x.dtype, x.weak_type)]


reshape_p.def_impl(lambda x, *, new_sizes: [np.reshape(x, new_sizes)])
reshape_p.def_abstract_eval(_reshape_abstract_eval)
deflinear(reshape_p, lambda ct, aval, *, new_sizes: [reshape_p.bind(ct, new_sizes=aval.shape)])


def _reshape_batch(args: list, dims: list, *, new_sizes) -> tuple[list, list]:
    # Row-major reshape mixes the dimensions, so the mapped axis must lead.
    (x,), (d,) = args, dims
    x = move_axis(x, d, 0)
    return [reshape_p.bind(x, new_sizes=(get_aval(x).shape[0], *new_sizes))], [0]


batch_rules[reshape_p] = _reshape_batch

# --- transpose ----------------------------------------------------------------------

transpose_p = Primitive("transpose")


def _transpose_abstract_eval(x: ShapedArray, *, permutation: tuple[int, ...]):
    if sorted(permutation) != list(range(x.ndim)):
        raise TypeError(with_user_line(f"transpose permutation {permutation} is invalid for shape {x.shape}"))
    return [ShapedArray(tuple(x.shape[p] for p in permutation), x.dtype, x.weak_type)]


transpose_p.def_impl(lambda x, *, permutation: [np.transpose(x, permutation)])
transpose_p.def_abstract_eval(_transpose_abstract_eval)


def _transpose_transpose(ct, aval: ShapedArray, *, permutation: tuple[int, ...]) -> list:
    inverse = tuple(int(i) for i in np.argsort(permutation))
    return [transpose_p.bind(ct, permutation=inverse)]


deflinear(transpose_p, _transpose_transpose)


def _transpose_batch(args: list, dims: list, *, permutation) -> tuple[list, list]:
    # The mapped axis stays where it is; the examples' dimensions move around it.
    (x,), (d,) = args, dims
    perm = list(_full_dims(permutation, d))
    perm.insert(d, d)
    return [transpose_p.bind(x, permutation=tuple(perm))], [d]


batch_rules[transpose_p] = _transpose_batch


# --- squeeze and expand_dims --------------------------------------------------------


def _check_dimensions(name: str, dimensions: tuple[int, ...], ndim: int, shape: tuple[int, ...]) -> None:
    if len(set(dimensions)) != len(dimensions) or any(not 0 <= d < ndim for d in dimensions):
        raise TypeError(with_user_line(f"{name}: dimensions {tuple(dimensions)} are invalid for shape {shape}"))


squeeze_p = Primitive("squeeze")


def _squeeze_abstract_eval(x: ShapedArray, *, dimensions: tuple[int, ...]):
    _check_dimensions("squeeze", dimensions, x.ndim, x.shape)
    if any(x.shape[d] != 1 for d in dimensions):
        raise TypeError(
            with_user_line(f"squeeze can only remove size-1 dimensions, not dimensions {dimensions} of shape {x.shape}")
        )
    shape = tuple(d for i, d in enumerate(x.shape) if i not in dimensions)
    return [ShapedArray(shape, x.dtype, x.weak_type)]


squeeze_p.def_impl(lambda x, *, dimensions: [np.squeeze(np.asarray(x), axis=dimensions)])
squeeze_p.def_abstract_eval(_squeeze_abstract_eval)

expand_dims_p = Primitive("expand_dims")


def _expand_dims_abstract_eval(x: ShapedArray, *, dimensions: tuple[int, ...]):
    ndim = x.ndim + len(dimensions)
    _check_dimensions("expand_dims", dimensions, ndim, x.shape)
    sizes = iter(x.shape)
    shape = tuple(1 if i in dimensions else next(sizes) for i in range(ndim))
    return [ShapedArray(shape, x.dtype, x.weak_type)]


expand_dims_p.def_impl(lambda x, *, dimensions: [np.expand_dims(np.asarray(x), dimensions)])
expand_dims_p.def_abstract_eval(_expand_dims_abstract_eval)
# The same ``dimensions`` name the removed size-1 dimensions of squeeze's operand and
# the inserted ones of expand_dims' output, so each is the other's transpose.
deflinear(squeeze_p, lambda ct, aval, *, dimensions: [expand_dims_p.bind(ct, dimensions=dimensions)])
deflinear(expand_dims_p, lambda ct, aval, *, dimensions: [squeeze_p.bind(ct, dimensions=dimensions)])


def _squeeze_batch(args: list, dims: list, *, dimensions) -> tuple[list, list]:
    (x,), (d,) = args, dims
    out_d = d - sum(e < d for e in dimensions)
    return [squeeze_p.bind(x, dimensions=_full_dims(dimensions, d))], [out_d]


def _expand_dims_batch(args: list, dims: list, *, dimensions) -> tuple[list, list]:
    # The mapped axis goes right after the output position of the example dimension
    # before it (first if none is), and the inserted dimensions shift around it.
    (x,), (d,) = args, dims
    out_rank = get_aval(x).ndim - 1 + len(dimensions)
    kept = [i for i in range(out_rank) if i not in dimensions]
    out_d = kept[d - 1] + 1 if d else 0
    inserted = tuple(e if e < out_d else e + 1 for e in dimensions)
    return [expand_dims_p.bind(x, dimensions=inserted)], [out_d]


batch_rules[squeeze_p] = _squeeze_batch
batch_rules[expand_dims_p] = _expand_dims_batch

# --- rev ----------------------------------------------------------------------------

rev_p = Primitive("rev")


def _rev_abstract_eval(x: ShapedArray, *, dimensions: tuple[int, ...]):
    _check_dimensions("rev", dimensions, x.ndim, x.shape)
    return [x]


def _rev_impl(x, *, dimensions: tuple[int, ...]):
    x = np.asarray(x)
    return [np.flip(x, dimensions) if dimensions else x]


rev_p.def_impl(_rev_impl)
rev_p.def_abstract_eval(_rev_abstract_eval)
deflinear(rev_p, lambda ct, aval, *, dimensions: [rev_p.bind(ct, dimensions=dimensions)])


def _rev_batch(args: list, dims: list, *, dimensions) -> tuple[list, list]:
    (x,), (d,) = args, dims
    return [rev_p.bind(x, dimensions=_full_dims(dimensions, d))], [d]


batch_rules[rev_p] = _rev_batch

# --- pad ----------------------------------------------------------------------------
# XLA semantics: per dimension (lo, hi, interior); ``interior`` padding values go
# between neighbouring elements, then ``lo``/``hi`` are added at the ends, where a
# negative amount crops instead.

pad_p = Primitive("pad")


def _padded_size(size: int, lo: int, hi: int, interior: int) -> int:
    return lo + hi + size + max(size - 1, 0) * interior


def _pad_abstract_eval(x: ShapedArray, padding_value: ShapedArray, *, padding_config):
    if padding_value.shape != ():
        raise TypeError(with_user_line(f"pad needs a scalar padding value, got shape {padding_value.shape}"))
    if padding_value.dtype != x.dtype:
        raise TypeError(
            with_user_line(
                f"pad: operand dtype {x.dtype.name} and padding value dtype {padding_value.dtype.name} differ"
            )
        )
    if len(padding_config) != x.ndim or any(len(c) != 3 or c[2] < 0 for c in padding_config):
        raise TypeError(
            with_user_line(
                f"pad: padding_config {padding_config} needs one (lo, hi, interior >= 0) per dimension "
                f"of shape {x.shape}"
            )
        )
    shape = tuple(_padded_size(d, *c) for d, c in zip(x.shape, padding_config, strict=True))
    if any(d < 0 for d in shape):
        raise TypeError(with_user_line(f"pad: padding_config {padding_config} crops shape {x.shape} to {shape}"))
    return [ShapedArray(shape, x.dtype, x.weak_type and padding_value.weak_type)]


def _pad_impl(x, padding_value, *, padding_config):
    x = np.asarray(x)
    dtype = x.dtype
    # Interior padding first: x's elements land every (interior + 1) positions.
    spread_shape = tuple(_padded_size(d, 0, 0, c[2]) for d, c in zip(x.shape, padding_config, strict=True))
    spread = np.full(spread_shape, padding_value, dtype)
    spread[tuple(slice(None, None, c[2] + 1) for c in padding_config)] = x
    # Then the edges: output index j holds spread index j - lo, when that exists.
    out_shape = tuple(lo + hi + d for d, (lo, hi, _) in zip(spread_shape, padding_config, strict=True))
    out = np.full(out_shape, padding_value, dtype)
    dst, src = [], []
    for d, n, (lo, _, _) in zip(spread_shape, out_shape, padding_config, strict=True):
        start, stop = max(lo, 0), min(n, lo + d)
        if start >= stop:
            return [out]
        dst.append(slice(start, stop))
        src.append(slice(start - lo, stop - lo))
    out[tuple(dst)] = spread[tuple(src)]
    return [out]


pad_p.def_impl(_pad_impl)
pad_p.def_abstract_eval(_pad_abstract_eval)


def _pad_uses_value(aval: ShapedArray, padding_config) -> bool:
    """Whether any output element is the padding value."""
    out_size = np.prod([_padded_size(d, *c) for d, c in zip(aval.shape, padding_config, strict=True)])
    grows = any(
        lo > 0 or hi > 0 or (interior > 0 and d > 1)
        for d, (lo, hi, interior) in zip(aval.shape, padding_config, strict=True)
    )
    return bool(out_size) and grows


def _pad_transpose(ct, aval: ShapedArray, value_aval: ShapedArray, *, padding_config) -> list:
    # The operand's cotangent is the part of ct its elements went to: undo the crops
    # (negative lo/hi) by padding ct with zeros, then take every (interior + 1)-th element
    # after lo. The padding value went everywhere else.
    grown = ct
    if any(lo < 0 or hi < 0 for lo, hi, _ in padding_config):
        uncrop = tuple((max(-lo, 0), max(-hi, 0), 0) for lo, hi, _ in padding_config)
        grown = pad_p.bind(ct, np.zeros((), aval.dtype), padding_config=uncrop)
    starts = tuple(max(lo, 0) for lo, _, _ in padding_config)
    limits = tuple(
        start + _padded_size(d, 0, 0, interior)
        for start, d, (_, _, interior) in zip(starts, aval.shape, padding_config, strict=True)
    )
    ct_x = _slice(grown, starts, limits, tuple(interior + 1 for _, _, interior in padding_config))
    if not _pad_uses_value(aval, padding_config):
        return [ct_x, None]
    return [ct_x, sub_p.bind(_sum_all(ct), _sum_all(ct_x))]


deflinear(pad_p, _pad_transpose)


def _pad_batch(args: list, dims: list, *, padding_config) -> tuple[list, list]:
    (x, value), (d, value_d) = args, dims
    if value_d is None:
        config = (*padding_config[:d], (0, 0, 0), *padding_config[d:])
        return [pad_p.bind(x, value, padding_config=config)], [d]
    # One padding value per example: pad with anything, then select each example's value
    # wherever the padding went. The mask is the padding of an all-True example.
    if d is None:
        x, d = move_axis(x, None, 0, mapped_size(args, dims)), 0
    aval = get_aval(x)
    example = aval.shape[:d] + aval.shape[d + 1 :]
    config = (*padding_config[:d], (0, 0, 0), *padding_config[d:])
    padded = pad_p.bind(x, np.zeros((), aval.dtype), padding_config=config)
    out_shape = get_aval(padded).shape
    kept = tuple(i for i in range(len(out_shape)) if i != d)
    ones = broadcast_in_dim_p.bind(np.True_, shape=example, broadcast_dimensions=())
    mask = pad_p.bind(ones, np.False_, padding_config=padding_config)
    mask = broadcast_in_dim_p.bind(mask, shape=out_shape, broadcast_dimensions=kept)
    values = broadcast_in_dim_p.bind(value, shape=out_shape, broadcast_dimensions=(d,))
    return [select_p.bind(mask, padded, values)], [d]


batch_rules[pad_p] = _pad_batch

# --- concatenate --------------------------------------------------------------------

concatenate_p = Primitive("concatenate")


def _concatenate_abstract_eval(*operands: ShapedArray, dimension: int):
    if not operands:
        raise TypeError(with_user_line("concatenate needs at least one operand"))
    first = operands[0]
    shapes = " and ".join(str(x.shape) for x in operands)
    if any(x.dtype != first.dtype for x in operands):
        listed = " and ".join(x.dtype.name for x in operands)
        raise TypeError(with_user_line(f"concatenate needs operands of one dtype, got {listed}"))
    if not 0 <= dimension < first.ndim:
        raise TypeError(with_user_line(f"concatenate: dimension {dimension} is invalid for shapes {shapes}"))

    def others(shape: tuple[int, ...]) -> tuple[int, ...]:
        return shape[:dimension] + shape[dimension + 1 :]

    if any(x.ndim != first.ndim or others(x.shape) != others(first.shape) for x in operands):
        raise TypeError(
            with_user_line(f"concatenate along dimension {dimension} needs equal other dimensions, got shapes {shapes}")
        )
    size = sum(x.shape[dimension] for x in operands)
    shape = (*first.shape[:dimension], size, *first.shape[dimension + 1 :])
    return [ShapedArray(shape, first.dtype, all(x.weak_type for x in operands))]


concatenate_p.def_impl(lambda *operands, dimension: [np.concatenate(operands, axis=dimension)])
concatenate_p.def_abstract_eval(_concatenate_abstract_eval)


def _concatenate_transpose(ct, *avals: ShapedArray, dimension: int) -> list:
    shape = get_aval(ct).shape
    cts, start = [], 0
    for aval in avals:
        stop = start + aval.shape[dimension]
        starts = tuple(start if d == dimension else 0 for d in range(len(shape)))
        limits = tuple(stop if d == dimension else n for d, n in enumerate(shape))
        cts.append(_slice(ct, starts, limits, (1,) * len(shape)))
        start = stop
    return cts


def _concatenate_jvp(primals: list, tangents: list, *, dimension: int) -> tuple[list, list]:
    # Symbolic zeros at the ends become padding; runs of them between nonzero tangents
    # become one zero block each.
    out = concatenate_p.bind(*primals, dimension=dimension)
    live = [i for i, t in enumerate(tangents) if type(t) is not Zero]
    if not live:
        return [out], [Zero(get_aval(out))]
    sizes = [get_aval(p).shape[dimension] for p in primals]
    pieces, zero_run = [], 0
    for t, size in zip(tangents[live[0] : live[-1] + 1], sizes[live[0] : live[-1] + 1], strict=True):
        if type(t) is Zero:
            zero_run += size
            continue
        if zero_run:
            shape = get_aval(t).shape
            pieces.append(zeros(get_aval(t).update(shape=(*shape[:dimension], zero_run, *shape[dimension + 1 :]))))
            zero_run = 0
        pieces.append(t)
    t_out = pieces[0] if len(pieces) == 1 else concatenate_p.bind(*pieces, dimension=dimension)
    lo, hi = sum(sizes[: live[0]]), sum(sizes[live[-1] + 1 :])
    if lo or hi:
        config = tuple((lo, hi, 0) if d == dimension else (0, 0, 0) for d in range(get_aval(out).ndim))
        t_out = pad_p.bind(t_out, np.zeros((), get_aval(out).dtype), padding_config=config)
    return [out], [t_out]


deflinear(concatenate_p, _concatenate_transpose)
jvp_rules[concatenate_p] = _concatenate_jvp  # leaner than deflinear's with some zero tangents


def _concatenate_batch(args: list, dims: list, *, dimension) -> tuple[list, list]:
    # Operands mapped at one axis keep it (unmapped ones get it by broadcasting);
    # otherwise the mapped axes move to the front.
    size = mapped_size(args, dims)
    mapped = {d for d in dims if d is not None}
    out_d = mapped.pop() if len(mapped) == 1 else 0
    operands = [move_axis(x, d, out_d, size) for x, d in zip(args, dims, strict=True)]
    return [concatenate_p.bind(*operands, dimension=_full(dimension, out_d))], [out_d]


batch_rules[concatenate_p] = _concatenate_batch

# --- iota ---------------------------------------------------------------------------

iota_p = Primitive("iota")


def _iota_abstract_eval(*, dtype: np.dtype, shape: tuple[int, ...], dimension: int):
    if dtype.kind not in "fiu":
        raise TypeError(with_user_line(f"iota needs a numeric dtype, got {dtype.name}"))
    if any(d < 0 for d in shape) or not 0 <= dimension < len(shape):
        raise TypeError(with_user_line(f"iota: dimension {dimension} is invalid for shape {tuple(shape)}"))
    return [ShapedArray(shape, dtype)]


def _iota_impl(*, dtype: np.dtype, shape: tuple[int, ...], dimension: int):
    along = [1] * len(shape)
    along[dimension] = shape[dimension]
    values = np.arange(shape[dimension], dtype=dtype).reshape(along)
    return [np.broadcast_to(values, shape).copy()]


iota_p.def_impl(_iota_impl)
iota_p.def_abstract_eval(_iota_abstract_eval)
zero_derivative.add(iota_p)


def _iota_batch(args: list, dims: list, **params) -> tuple[list, list]:
    # iota has no operands, so vmap never has a mapped one to give it.
    raise AssertionError("iota has no operands to be mapped")


batch_rules[iota_p] = _iota_batch


# --- public wrappers (functrace.lax) --------------------------------------------------


def broadcast_in_dim(operand, shape, broadcast_dimensions):
    """Broadcast ``operand`` to ``shape``; its dimension ``i`` becomes ``broadcast_dimensions[i]``.

    >>> import numpy as np
    >>> from functrace import lax
    >>> lax.broadcast_in_dim(np.array([1.0, 2.0]), (3, 2), (1,)).shape
    (3, 2)
    """
    return broadcast_in_dim_p.bind(
        operand, shape=tuple(int(d) for d in shape), broadcast_dimensions=tuple(int(d) for d in broadcast_dimensions)
    )


def reshape(operand, new_sizes):
    """Reshape (row-major) to ``new_sizes``.

    >>> import numpy as np
    >>> from functrace import lax
    >>> lax.reshape(np.arange(6.0), (2, 3)).shape
    (2, 3)
    """
    return reshape_p.bind(operand, new_sizes=tuple(int(d) for d in new_sizes))


def transpose(operand, permutation):
    """Permute the dimensions: output dimension ``i`` is input dimension ``permutation[i]``.

    >>> import numpy as np
    >>> from functrace import lax
    >>> lax.transpose(np.zeros((2, 3, 4)), (2, 0, 1)).shape
    (4, 2, 3)
    """
    return transpose_p.bind(operand, permutation=tuple(int(p) for p in permutation))


def _normalize_dimensions(name: str, dimensions, ndim: int) -> tuple[int, ...]:
    """Dimensions as non-negative ints (negative ones count from the end, as in JAX)."""
    dims = (dimensions,) if isinstance(dimensions, int | np.integer) else tuple(dimensions)
    out = []
    for d in dims:
        if not -ndim <= d < ndim:
            raise TypeError(with_user_line(f"{name}: dimension {d} is out of range for rank {ndim}"))
        out.append(int(d) % ndim)
    return tuple(out)


def squeeze(array, dimensions):
    """Remove the size-1 ``dimensions``.

    >>> import numpy as np
    >>> from functrace import lax
    >>> lax.squeeze(np.zeros((1, 3, 1)), (0, -1)).shape
    (3,)
    """
    ndim = get_aval(array).ndim
    return squeeze_p.bind(array, dimensions=tuple(sorted(_normalize_dimensions("squeeze", dimensions, ndim))))


def expand_dims(array, dimensions):
    """Insert size-1 dimensions at the output positions ``dimensions``.

    >>> import numpy as np
    >>> from functrace import lax
    >>> lax.expand_dims(np.zeros(3), (0, 2)).shape
    (1, 3, 1)
    """
    dims = (dimensions,) if isinstance(dimensions, int | np.integer) else tuple(dimensions)
    ndim = get_aval(array).ndim + len(dims)
    return expand_dims_p.bind(array, dimensions=tuple(sorted(_normalize_dimensions("expand_dims", dims, ndim))))


def rev(operand, dimensions):
    """Reverse the order of the elements along ``dimensions``.

    >>> import numpy as np
    >>> from functrace import lax
    >>> lax.rev(np.array([[1, 2], [3, 4]]), (1,))
    array([[2, 1],
           [4, 3]])
    """
    ndim = get_aval(operand).ndim
    return rev_p.bind(operand, dimensions=tuple(sorted(_normalize_dimensions("rev", dimensions, ndim))))


def pad(operand, padding_value, padding_config):
    """Pad with ``padding_value``; ``padding_config`` holds one ``(lo, hi, interior)`` per
    dimension. Negative ``lo``/``hi`` crop; ``interior`` puts values between elements.

    >>> import numpy as np
    >>> from functrace import lax
    >>> lax.pad(np.array([1, 2, 3]), 0, [(1, -1, 1)])
    array([0, 1, 0, 2, 0])
    """
    operand, padding_value = _lax_operands(operand, padding_value)
    config = tuple((int(lo), int(hi), int(interior)) for lo, hi, interior in padding_config)
    return pad_p.bind(operand, padding_value, padding_config=config)


def concatenate(operands, dimension):
    """Join ``operands`` (one dtype, equal shapes except at ``dimension``) along ``dimension``.

    >>> import numpy as np
    >>> from functrace import lax
    >>> lax.concatenate([np.zeros((2, 1)), np.ones((2, 2))], 1).shape
    (2, 3)
    """
    return concatenate_p.bind(*operands, dimension=int(dimension))


def broadcasted_iota(dtype, shape, dimension):
    """An array of ``shape`` holding its index along ``dimension``.

    >>> import numpy as np
    >>> from functrace import lax
    >>> lax.broadcasted_iota(np.int32, (2, 3), 1)
    array([[0, 1, 2],
           [0, 1, 2]], dtype=int32)
    """
    shape = tuple(int(d) for d in shape)
    return iota_p.bind(dtype=dtypes.canonicalize(dtype), shape=shape, dimension=int(dimension))


def iota(dtype, size):
    """``0, 1, ..., size - 1`` as a 1-d array of ``dtype``.

    >>> import numpy as np
    >>> from functrace import lax
    >>> lax.iota(np.float32, 3)
    array([0., 1., 2.], dtype=float32)
    """
    return broadcasted_iota(dtype, (size,), 0)


__all__ = [
    "broadcast_in_dim", "broadcasted_iota", "concatenate", "expand_dims", "iota", "pad", "reshape", "rev",
    "squeeze", "transpose",
]  # fmt: skip
