"""Convolution: ``conv_general_dilated`` (XLA's Convolution) and its wrappers.

A kernel slides over the spatial dimensions of ``lhs``. ``lhs_dilation`` inserts holes
between input elements (a transposed convolution), ``rhs_dilation`` spreads the kernel
taps apart (atrous convolution), ``padding`` is applied after ``lhs_dilation``, and
negative pads crop. With ``feature_group_count = G`` the input and output features
split into ``G`` groups convolved separately (``G`` = input features: depthwise); with
``batch_group_count = B`` the batch splits into ``B`` groups instead, each group of
output features seeing one (the form the kernel's gradient of a grouped convolution takes).
Groups are contiguous: group ``g`` holds features ``g * size ... (g + 1) * size - 1``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from functrace.core.abstract import ShapedArray
from functrace.core.ad_util import defbilinear, zeros
from functrace.core.batching_util import mapped_size, move_axis
from functrace.core.primitive import Primitive, batch_rules
from functrace.core.source_info import with_user_line
from functrace.core.trace import get_aval
from functrace.lax.elementwise import NUMERIC, _check_kinds
from functrace.lax.structural import broadcast_in_dim_p, reshape_p, rev_p, transpose_p
from functrace.lax.windowed import (
    Padding,
    dilate_and_pad,
    dilate_dim,
    normalize_padding,
    padtype_to_pads,
    sliding_windows,
    static_ints,
    transpose_padding,
    window_output_shape,
)


class ConvDimensionNumbers(NamedTuple):
    """Where the batch, feature and spatial dimensions of each operand are (XLA's form).

    ``lhs_spec = (batch, feature, *spatial)``, ``rhs_spec = (out feature, in feature,
    *spatial)``, ``out_spec = (batch, feature, *spatial)``: each a permutation of the
    operand's dimensions, the spatial dimensions listed in matching order.

    >>> ConvDimensionNumbers((0, 3, 1, 2), (3, 2, 0, 1), (0, 3, 1, 2)).lhs_spec
    (0, 3, 1, 2)
    """

    lhs_spec: tuple[int, ...]
    rhs_spec: tuple[int, ...]
    out_spec: tuple[int, ...]


def _specs_from_strings(lhs: str, rhs: str, out: str) -> ConvDimensionNumbers:
    """``("NHWC", "HWIO", "NHWC")`` to specs; spatial dims follow their order in ``rhs``."""
    for spec, (a, b) in ((lhs, "NC"), (rhs, "OI"), (out, "NC")):
        if spec.count(a) != 1 or spec.count(b) != 1 or len(set(spec)) != len(spec):
            raise ValueError(
                f"convolution dimension numbers {(lhs, rhs, out)}: {spec!r} needs one {a!r}, one {b!r} "
                "and distinct spatial letters"
            )
    spatial = [c for c in rhs if c not in "OI"]
    if set(lhs) - set("NC") != set(spatial) or set(out) - set("NC") != set(spatial):
        raise ValueError(f"convolution dimension numbers {(lhs, rhs, out)} name different spatial dimensions")

    def spec(s: str, first: str, second: str) -> tuple[int, ...]:
        return (s.index(first), s.index(second), *(s.index(c) for c in spatial))

    return ConvDimensionNumbers(spec(lhs, "N", "C"), spec(rhs, "O", "I"), spec(out, "N", "C"))


def _check_ranks(lhs_shape: Sequence[int], rhs_shape: Sequence[int]) -> None:
    if len(lhs_shape) != len(rhs_shape) or len(lhs_shape) < 2:
        raise TypeError(
            with_user_line(
                f"conv_general_dilated needs lhs and rhs of one rank >= 2, got shapes "
                f"{tuple(lhs_shape)} and {tuple(rhs_shape)}"
            )
        )


def conv_dimension_numbers(
    lhs_shape: Sequence[int],
    rhs_shape: Sequence[int],
    dimension_numbers: ConvDimensionNumbers | tuple[str, str, str] | None,
) -> ConvDimensionNumbers:
    """Normalise ``dimension_numbers`` for operands of these shapes.

    ``None`` means NCHW inputs and outputs with OIHW kernels (for any number of spatial
    dimensions); strings such as ``("NHWC", "HWIO", "NHWC")`` name each dimension.

    >>> from functrace import lax
    >>> lax.conv_dimension_numbers((1, 5, 5, 3), (3, 3, 3, 8), ("NHWC", "HWIO", "NHWC"))
    ConvDimensionNumbers(lhs_spec=(0, 3, 1, 2), rhs_spec=(3, 2, 0, 1), out_spec=(0, 3, 1, 2))
    """
    _check_ranks(lhs_shape, rhs_shape)
    if dimension_numbers is None:
        default = tuple(range(len(lhs_shape)))
        return ConvDimensionNumbers(default, default, default)
    if len(dimension_numbers) != 3:
        raise ValueError(f"convolution dimension numbers need 3 entries (lhs, rhs, out), got {dimension_numbers!r}")
    if all(isinstance(s, str) for s in dimension_numbers):
        lhs, rhs, out = dimension_numbers
        if not len(lhs) == len(rhs) == len(out) == len(lhs_shape):
            raise TypeError(
                with_user_line(
                    f"convolution dimension numbers {tuple(dimension_numbers)} do not match the ranks of "
                    f"shapes {tuple(lhs_shape)} and {tuple(rhs_shape)}"
                )
            )
        return _specs_from_strings(lhs, rhs, out)
    return ConvDimensionNumbers(*(tuple(int(d) for d in spec) for spec in dimension_numbers))


# --- the primitive ------------------------------------------------------------------

conv_general_dilated_p = Primitive("conv_general_dilated")


def _grouped_contract(patches: np.ndarray, kernel: np.ndarray, feature_groups: int, batch_groups: int) -> np.ndarray:
    """``patches (N, C, *out_spatial, *taps)`` with ``kernel (O, C/G, *taps)`` to
    ``(N/B, O, *out_spatial)``, one matmul per group (at most one of G, B exceeds 1)."""
    n, c = patches.shape[:2]
    out_spatial = patches.shape[2 : kernel.ndim]
    o, groups = kernel.shape[0], feature_groups * batch_groups
    positions, taps = int(np.prod(out_spatial, dtype=np.int64)), int(np.prod(kernel.shape[2:], dtype=np.int64))
    a = patches.reshape(batch_groups, n // batch_groups, feature_groups, c // feature_groups, positions, taps)
    a = a.transpose(0, 2, 1, 4, 3, 5).reshape(groups, n // batch_groups * positions, c // feature_groups * taps)
    w = kernel.reshape(groups, o // groups, kernel.shape[1] * taps).transpose(0, 2, 1)
    out = np.matmul(a, w).reshape(groups, n // batch_groups, positions, o // groups)
    return out.transpose(1, 0, 3, 2).reshape(n // batch_groups, o, *out_spatial)


def _conv_general_dilated_impl(
    lhs,
    rhs,
    *,
    window_strides: tuple[int, ...],
    padding: Padding,
    lhs_dilation: tuple[int, ...],
    rhs_dilation: tuple[int, ...],
    dimension_numbers: ConvDimensionNumbers,
    feature_group_count: int,
    batch_group_count: int,
):
    lhs_spec, rhs_spec, out_spec = dimension_numbers
    x = np.transpose(np.asarray(lhs), lhs_spec)  # (N, C, *spatial)
    kernel = np.transpose(np.asarray(rhs), rhs_spec)  # (O, I, *spatial)
    spatial = range(2, x.ndim)
    out_spatial = window_output_shape(
        "conv_general_dilated", x.shape[2:], kernel.shape[2:], window_strides, padding, lhs_dilation, rhs_dilation
    )
    if 0 in out_spatial:
        out = np.zeros((x.shape[0] // batch_group_count, kernel.shape[0], *out_spatial), x.dtype)
        return [np.transpose(out, np.argsort(out_spec))]
    x = dilate_and_pad(x, (1, 1, *lhs_dilation), ((0, 0), (0, 0), *padding), 0)
    patches = sliding_windows(x, spatial, kernel.shape[2:], window_strides, rhs_dilation)
    out = _grouped_contract(patches, kernel, feature_group_count, batch_group_count)
    return [np.asarray(np.transpose(out, np.argsort(out_spec)), dtype=x.dtype)]


def _check_dimension_numbers(lhs: ShapedArray, dimension_numbers: ConvDimensionNumbers) -> None:
    for name, spec in zip(("lhs_spec", "rhs_spec", "out_spec"), dimension_numbers, strict=True):
        if sorted(spec) != list(range(lhs.ndim)):
            raise TypeError(
                with_user_line(
                    f"conv_general_dilated: {name}={spec} is not a permutation of the {lhs.ndim} dimensions "
                    f"of the operands (lhs shape {lhs.shape})"
                )
            )


def _check_groups(lhs_n: int, lhs_c: int, rhs_o: int, rhs_i: int, feature_groups: int, batch_groups: int) -> None:
    if feature_groups < 1 or batch_groups < 1 or (feature_groups > 1 and batch_groups > 1):
        raise TypeError(
            with_user_line(
                f"conv_general_dilated: feature_group_count={feature_groups} and batch_group_count={batch_groups} "
                "must be positive and at most one of them above 1"
            )
        )
    if lhs_c != rhs_i * feature_groups:
        raise TypeError(
            with_user_line(
                f"conv_general_dilated: lhs has {lhs_c} input features but rhs expects {rhs_i} per group "
                f"x {feature_groups} feature groups"
            )
        )
    if rhs_o % (feature_groups * batch_groups) != 0:
        raise TypeError(
            with_user_line(
                f"conv_general_dilated: rhs's {rhs_o} output features do not split into "
                f"{feature_groups * batch_groups} groups"
            )
        )
    if lhs_n % batch_groups != 0:
        raise TypeError(
            with_user_line(f"conv_general_dilated: lhs batch size {lhs_n} does not split into {batch_groups} groups")
        )


def _conv_general_dilated_abstract_eval(
    lhs: ShapedArray,
    rhs: ShapedArray,
    *,
    window_strides: tuple[int, ...],
    padding: Padding,
    lhs_dilation: tuple[int, ...],
    rhs_dilation: tuple[int, ...],
    dimension_numbers: ConvDimensionNumbers,
    feature_group_count: int,
    batch_group_count: int,
) -> list[ShapedArray]:
    _check_ranks(lhs.shape, rhs.shape)
    _check_kinds("conv_general_dilated", lhs, NUMERIC)
    if lhs.dtype != rhs.dtype:
        raise TypeError(
            with_user_line(f"conv_general_dilated got different dtypes {lhs.dtype.name} and {rhs.dtype.name}")
        )
    _check_dimension_numbers(lhs, dimension_numbers)
    lhs_spec, rhs_spec, out_spec = dimension_numbers
    n, c, *in_spatial = (lhs.shape[d] for d in lhs_spec)
    o, i, *kernel_spatial = (rhs.shape[d] for d in rhs_spec)
    _check_groups(n, c, o, i, feature_group_count, batch_group_count)
    out_spatial = window_output_shape(
        "conv_general_dilated",
        tuple(in_spatial),
        tuple(kernel_spatial),
        window_strides,
        padding,
        lhs_dilation,
        rhs_dilation,
    )
    logical = (n // batch_group_count, o, *out_spatial)
    shape = tuple(logical[k] for k in np.argsort(out_spec))
    return [ShapedArray(shape, lhs.dtype, lhs.weak_type and rhs.weak_type)]


conv_general_dilated_p.def_impl(_conv_general_dilated_impl)
conv_general_dilated_p.def_abstract_eval(_conv_general_dilated_abstract_eval)

# Both transposes are convolutions again (written per spatial dimension; input element
# ``j`` sits at ``lo + j * lhs_dilation`` and kernel tap ``k`` of output ``y`` reads
# position ``y * stride + k * rhs_dilation``):
#
# - lhs: the cotangent, dilated by the strides, convolved with the spatially reversed
#   kernel (in and out features swapped) with stride ``lhs_dilation``; see
#   ``transpose_padding``. With ``G`` feature groups the kernel's features regroup and
#   the convolution keeps ``G`` groups; with ``B`` batch groups it becomes a ``B``-group
#   convolution whose output features are then moved back into the batch.
# - rhs: ``lhs`` convolved with the cotangent, batch and feature dimensions trading
#   places (the batch is summed over), stride ``rhs_dilation``, kernel dilation
#   ``window_strides``. Feature groups become batch groups and vice versa.


def _to_layout(x, spec: tuple[int, ...]):
    """A logical ``(batch, feature, *spatial)`` array in the layout ``spec`` describes."""
    permutation = tuple(int(p) for p in np.argsort(spec))
    return x if permutation == tuple(range(len(spec))) else transpose_p.bind(x, permutation=permutation)


def _regroup_kernel(rhs, rhs_spec: tuple[int, ...], groups: int):
    """Logical kernel ``(O, I, *K)`` with output features in ``groups`` blocks to
    ``(groups * I, O / groups, *K)``: the kernel of the transposed grouped convolution."""
    kernel = transpose_p.bind(rhs, permutation=rhs_spec)
    o, i, *taps = get_aval(kernel).shape
    kernel = reshape_p.bind(kernel, new_sizes=(groups, o // groups, i, *taps))
    kernel = transpose_p.bind(kernel, permutation=(0, 2, 1, *range(3, 3 + len(taps))))
    return reshape_p.bind(kernel, new_sizes=(groups * i, o // groups, *taps))


def _batch_groups_to_batch(z, batch_groups: int, lhs_spec: tuple[int, ...]):
    """Logical ``(N / B, B * C, *S)`` to ``lhs``'s layout of ``(N, C, *S)``, batch group major."""
    n, bc, *space = get_aval(z).shape
    z = reshape_p.bind(z, new_sizes=(n, batch_groups, bc // batch_groups, *space))
    z = transpose_p.bind(z, permutation=(1, 0, *range(2, 3 + len(space))))
    z = reshape_p.bind(z, new_sizes=(n * batch_groups, bc // batch_groups, *space))
    return _to_layout(z, lhs_spec)


def _any_empty(*xs) -> bool:
    return any(get_aval(x).size == 0 for x in xs)


def _conv_general_dilated_transpose_lhs(
    ct, lhs: ShapedArray, rhs, *, window_strides, padding, lhs_dilation, rhs_dilation, dimension_numbers, **groups
):
    lhs_spec, rhs_spec, out_spec = dimension_numbers
    feature_groups, batch_groups = groups["feature_group_count"], groups["batch_group_count"]
    if lhs.size == 0 or _any_empty(ct, rhs):
        return zeros(lhs)
    in_spatial = tuple(lhs.shape[d] for d in lhs_spec[2:])
    kernel_spatial = tuple(get_aval(rhs).shape[d] for d in rhs_spec[2:])
    out_spatial = tuple(get_aval(ct).shape[d] for d in out_spec[2:])
    pads = transpose_padding(
        in_spatial, kernel_spatial, out_spatial, window_strides, padding, lhs_dilation, rhs_dilation
    )
    kernel = rev_p.bind(rhs, dimensions=rhs_spec[2:])
    groups_count = feature_groups * batch_groups
    if groups_count == 1:
        kernel_spec = (rhs_spec[1], rhs_spec[0], *rhs_spec[2:])
    else:
        kernel, kernel_spec = _regroup_kernel(kernel, rhs_spec, groups_count), tuple(range(lhs.ndim))
    result_spec = lhs_spec if batch_groups == 1 else tuple(range(lhs.ndim))
    ct_lhs = conv_general_dilated_p.bind(
        ct,
        kernel,
        window_strides=lhs_dilation,
        padding=pads,
        lhs_dilation=window_strides,
        rhs_dilation=rhs_dilation,
        dimension_numbers=ConvDimensionNumbers(out_spec, kernel_spec, result_spec),
        feature_group_count=groups_count,
        batch_group_count=1,
    )
    return ct_lhs if batch_groups == 1 else _batch_groups_to_batch(ct_lhs, batch_groups, lhs_spec)


def _conv_general_dilated_transpose_rhs(
    ct, lhs, rhs: ShapedArray, *, window_strides, padding, lhs_dilation, rhs_dilation, dimension_numbers, **groups
):
    lhs_spec, rhs_spec, out_spec = dimension_numbers
    if rhs.size == 0 or _any_empty(ct, lhs):
        return zeros(rhs)
    in_spatial = tuple(get_aval(lhs).shape[d] for d in lhs_spec[2:])
    kernel_spatial = tuple(rhs.shape[d] for d in rhs_spec[2:])
    out_spatial = tuple(get_aval(ct).shape[d] for d in out_spec[2:])
    pads = []
    for x, w, y, s, (lo, _), ld, rd in zip(
        in_spatial, kernel_spatial, out_spatial, window_strides, padding, lhs_dilation, rhs_dilation, strict=True
    ):
        # Kernel tap k reads positions k * rd + y * s; the high pad keeps exactly w taps.
        pads.append((lo, (w - 1) * rd + dilate_dim(y, s) - dilate_dim(x, ld) - lo))

    def swap(spec: tuple[int, ...]) -> tuple[int, ...]:
        return (spec[1], spec[0], *spec[2:])

    return conv_general_dilated_p.bind(
        lhs,
        ct,
        window_strides=rhs_dilation,
        padding=tuple(pads),
        lhs_dilation=lhs_dilation,
        rhs_dilation=window_strides,
        dimension_numbers=ConvDimensionNumbers(swap(lhs_spec), swap(out_spec), swap(rhs_spec)),
        feature_group_count=groups["batch_group_count"],
        batch_group_count=groups["feature_group_count"],
    )


defbilinear(conv_general_dilated_p, _conv_general_dilated_transpose_lhs, _conv_general_dilated_transpose_rhs)

# Batching folds the mapped axis into a dimension the convolution already treats as
# independent, convolves once and unfolds it from the output:
#
# - only lhs mapped: into lhs's batch dimension, out of the output batch;
# - only rhs mapped: into the kernel's output features, out of the output features;
# - both mapped: into lhs's features and the kernel's output features, multiplying
#   feature_group_count by the batch size, so each example's features form their own
#   groups. With batch groups (which exclude feature groups) it goes into lhs's batch and
#   multiplies batch_group_count instead; that form is also used without groups when the
#   mapped axis already sits before lhs's batch dimension, as it then costs no transpose.
#
# Groups are contiguous blocks, so the mapped axis goes either outside the dimension
# (``(B, X)``: example-major, needed when it must form groups of its own) or inside it
# (``(X, B)``: every group keeps its examples together); ``_fold``/``_unfold`` do both.


def _fold(x, bdim: int, dim: int, outer: bool):
    """``x`` with its mapped axis ``bdim`` merged into example dimension ``dim``:
    ``(B, X)`` flattened if ``outer`` (mapped axis outermost), else ``(X, B)``."""
    x = move_axis(x, bdim, dim if outer else dim + 1)
    shape = get_aval(x).shape
    return reshape_p.bind(x, new_sizes=(*shape[:dim], shape[dim] * shape[dim + 1], *shape[dim + 2 :]))


def _unfold(y, dim: int, size: int, outer: bool):
    """Split dimension ``dim`` of ``y`` back into the mapped axis and the example's
    dimension (the layout ``_fold`` made); returns the result and its mapped axis."""
    shape = get_aval(y).shape
    split = (size, shape[dim] // size) if outer else (shape[dim] // size, size)
    y = reshape_p.bind(y, new_sizes=(*shape[:dim], *split, *shape[dim + 1 :]))
    return y, (dim if outer else dim + 1)


def _conv_general_dilated_batch(args: list, dims: list, **params) -> tuple[list, list]:
    (lhs, rhs), (lhs_bdim, rhs_bdim) = args, dims
    lhs_spec, rhs_spec, out_spec = params["dimension_numbers"]
    feature_groups, batch_groups = params["feature_group_count"], params["batch_group_count"]
    size = mapped_size(args, dims)
    if size == 0:
        return [_empty_batch(lhs, lhs_bdim, rhs, rhs_bdim, params)], [0]
    if rhs_bdim is None:
        # Outside the batch dimension only without batch groups, and only where it is free.
        outer = lhs_bdim == lhs_spec[0] and batch_groups == 1
        out = conv_general_dilated_p.bind(_fold(lhs, lhs_bdim, lhs_spec[0], outer), rhs, **params)
        out, out_bdim = _unfold(out, out_spec[0], size, outer)
        return [out], [out_bdim]
    if lhs_bdim is None:
        outer = rhs_bdim == rhs_spec[0] and feature_groups * batch_groups == 1
        out = conv_general_dilated_p.bind(lhs, _fold(rhs, rhs_bdim, rhs_spec[0], outer), **params)
        out, out_bdim = _unfold(out, out_spec[1], size, outer)
        return [out], [out_bdim]
    if batch_groups > 1 or (feature_groups == 1 and lhs_bdim == lhs_spec[0]):
        lhs_dim, groups = lhs_spec[0], {"batch_group_count": batch_groups * size}
    else:
        lhs_dim, groups = lhs_spec[1], {"feature_group_count": feature_groups * size}
    out = conv_general_dilated_p.bind(
        _fold(lhs, lhs_bdim, lhs_dim, True), _fold(rhs, rhs_bdim, rhs_spec[0], True), **(params | groups)
    )
    out, out_bdim = _unfold(out, out_spec[1], size, True)
    return [out], [out_bdim]


def _example_aval(x, bdim: int | None) -> ShapedArray:
    aval = get_aval(x)
    return aval if bdim is None else aval.update(shape=aval.shape[:bdim] + aval.shape[bdim + 1 :])


def _empty_batch(lhs, lhs_bdim: int | None, rhs, rhs_bdim: int | None, params: dict):
    """The result for a batch of no examples (no grouping by a size of 0), mapped axis first."""
    example = _conv_general_dilated_abstract_eval(_example_aval(lhs, lhs_bdim), _example_aval(rhs, rhs_bdim), **params)
    zero = np.zeros((), example[0].dtype)
    return broadcast_in_dim_p.bind(zero, shape=(0, *example[0].shape), broadcast_dimensions=())


batch_rules[conv_general_dilated_p] = _conv_general_dilated_batch


# --- public wrappers (functrace.lax) --------------------------------------------------


def conv_general_dilated(
    lhs,
    rhs,
    window_strides: Sequence[int],
    padding: str | Sequence[tuple[int, int]],
    lhs_dilation: Sequence[int] | None = None,
    rhs_dilation: Sequence[int] | None = None,
    dimension_numbers: ConvDimensionNumbers | tuple[str, str, str] | None = None,
    feature_group_count: int = 1,
    batch_group_count: int = 1,
    precision=None,
    preferred_element_type=None,
):
    """General convolution, XLA's semantics and JAX's signature.

    ``padding`` is ``"VALID"``, ``"SAME"``, ``"SAME_LOWER"`` or ``(lo, hi)`` pairs per
    spatial dimension (string padding uses the undilated input and the dilated kernel, as
    JAX). ``dimension_numbers`` is ``None`` (NCHW, OIHW, NCHW), three layout strings such
    as ``("NHWC", "HWIO", "NHWC")``, or a :class:`ConvDimensionNumbers`.

    >>> import numpy as np
    >>> from functrace import lax
    >>> x = np.arange(5.0).reshape(1, 1, 5)  # N, C, W
    >>> lax.conv_general_dilated(x, np.ones((1, 1, 2)), (1,), "VALID")
    array([[[1., 3., 5., 7.]]])
    >>> images, kernels = np.ones((2, 8, 8, 3)), np.ones((3, 3, 3, 16))
    >>> lax.conv_general_dilated(images, kernels, (2, 2), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")).shape
    (2, 4, 4, 16)
    """
    del precision  # accepted for JAX compatibility; NumPy and LLVM compute at full precision
    lhs_aval, rhs_aval = get_aval(lhs), get_aval(rhs)
    dnums = conv_dimension_numbers(lhs_aval.shape, rhs_aval.shape, dimension_numbers)
    _check_dimension_numbers(lhs_aval, dnums)
    n = lhs_aval.ndim - 2
    per = f"spatial dimension of lhs {lhs_aval.shape}"
    strides = static_ints("conv_general_dilated", "window_strides", window_strides, n, per)
    lhs_dilation = static_ints("conv_general_dilated", "lhs_dilation", lhs_dilation, n, per)
    rhs_dilation = static_ints("conv_general_dilated", "rhs_dilation", rhs_dilation, n, per)
    if isinstance(padding, str):
        in_spatial = [lhs_aval.shape[d] for d in dnums.lhs_spec[2:]]
        kernel = [dilate_dim(rhs_aval.shape[d], r) for d, r in zip(dnums.rhs_spec[2:], rhs_dilation, strict=True)]
        padding = padtype_to_pads(in_spatial, kernel, strides, padding)
    out = conv_general_dilated_p.bind(
        lhs,
        rhs,
        window_strides=strides,
        padding=normalize_padding(padding),
        lhs_dilation=lhs_dilation,
        rhs_dilation=rhs_dilation,
        dimension_numbers=dnums,
        feature_group_count=int(feature_group_count),
        batch_group_count=int(batch_group_count),
    )
    if preferred_element_type is not None:
        from functrace.lax.elementwise import convert_element_type

        out = convert_element_type(out, preferred_element_type)
    return out


def conv(
    lhs,
    rhs,
    window_strides: Sequence[int],
    padding: str | Sequence[tuple[int, int]],
    precision=None,
    preferred_element_type=None,
):
    """Convolution of NCHW ``lhs`` with OIHW ``rhs`` (any number of spatial dimensions).

    >>> import numpy as np
    >>> from functrace import lax
    >>> lax.conv(np.ones((1, 2, 4, 4)), np.ones((3, 2, 2, 2)), (2, 2), "VALID")[0, :, 0, 0]
    array([8., 8., 8.])
    """
    return conv_general_dilated(
        lhs, rhs, window_strides, padding, precision=precision, preferred_element_type=preferred_element_type
    )


__all__ = ["ConvDimensionNumbers", "conv", "conv_dimension_numbers", "conv_general_dilated"]
