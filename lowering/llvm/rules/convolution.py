"""``conv_general_dilated`` as im2col + matrix multiply, per group.

Logically the input is ``x (N, C, *S)``, the kernel ``w (O, I, *K)`` and the output
``(N / B, O, *Y)`` (each in its own layout, given by the dimension numbers). For group
``g`` of ``G * B`` (feature groups ``G`` or batch groups ``B``, at most one above 1)
and output image ``n``, with ``Og = O / (G * B)`` features per group::

    out[n, g*Og + o, y] = sum_{c < I, t} w[g*Og + o, c, t] * x[n', c', y * stride + t * rhs_dilation - lo]

where ``n' = g * N/B + n`` with batch groups (else ``n``), ``c' = g * I + c`` with
feature groups (else ``c``), and a position of the lhs-dilated input holds an
element only at multiples of ``lhs_dilation`` inside the input (holes and pads are 0).

The patches ``P[(n, y), (c, t)]`` are gathered into a scratch buffer with bounds
checks, never reading out of bounds: runs of contiguous input features are one
``memcpy`` (or ``memset``), runs along the last spatial dim are one masked vector load
(or ``memcpy`` between two ``memset``), anything else is a clamped load and a select.
They are multiplied with the kernel viewed as a matrix (``linalg.matmul``: BLAS for
floats). When the gathering would walk the input across its memory order, the input
is first copied into the order it walks. The kernel is read
in place when its ``(c, t)`` or ``(t, c)`` dims flatten to one strided dim (OIHW,
HWIO; the patches' depth follows the same order), else copied once. The patch layout
follows the output's, so that products land in it in place:

- features innermost (NHWC, or a kernel gradient HWIO): ``P (rows, depth) @ w_g^T``,
  the rows a block of images ``(n, y)``, or ``(y, n)`` with all images when the output
  orders them so (the kernel gradient, whose "images" are input features);
- positions innermost (NCHW): ``w_g @ P (depth, y)`` per image;
- any other output layout: the NCHW form into a scratch result, then copied.

The patch matrix stays under ``PATCH_BUDGET`` bytes: rows come in blocks of images and,
when that is not enough, the depth in blocks accumulated into the zeroed result.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

from llvmlite import ir

from functrace.core.abstract import ShapedArray
from lowering.llvm.codegen import (
    I1,
    I32,
    I64,
    PTR,
    Buffer,
    constant,
    flat_index,
    for_range,
    i64,
    loop_nest,
    memory_type,
    strides,
)
from lowering.llvm.registry import kernel_rule
from lowering.llvm.rules.linalg import (
    MatrixView,
    blas_layout,
    fill_zero,
    matmul,
    merged_stride,
    transposed_copy,
    use_blas,
)
from lowering.llvm.rules.windowed import window_position

PATCH_BUDGET = 1 << 20  # the patch block stays in L2 for the gemm that reads it
# Runs of the patch rows up to this long are copied by one masked vector load.
MASKED_RUN_BYTES = 256


class _Conv:
    """The logical sizes of one convolution (see the module docstring)."""

    def __init__(self, eqn, lhs: Buffer, rhs: Buffer, out: Buffer):
        p = eqn.params
        self.lhs_spec, self.rhs_spec, self.out_spec = p["dimension_numbers"]
        self.strides, self.padding = p["window_strides"], p["padding"]
        self.lhs_dilation, self.rhs_dilation = p["lhs_dilation"], p["rhs_dilation"]
        self.feature_groups, self.batch_groups = p["feature_group_count"], p["batch_group_count"]
        self.lhs, self.rhs, self.out = lhs, rhs, out
        self.dtype = out.aval.dtype
        self.in_spatial = [lhs.aval.shape[d] for d in self.lhs_spec[2:]]
        self.kernel_spatial = [rhs.aval.shape[d] for d in self.rhs_spec[2:]]
        self.out_spatial = [out.aval.shape[d] for d in self.out_spec[2:]]
        self.in_features = rhs.aval.shape[self.rhs_spec[1]]  # I, per group
        self.groups = self.feature_groups * self.batch_groups
        self.group_features = rhs.aval.shape[self.rhs_spec[0]] // self.groups  # Og
        self.out_batch = out.aval.shape[self.out_spec[0]]
        self.positions = math.prod(self.out_spatial)
        self.depth = self.in_features * math.prod(self.kernel_spatial)  # the contraction size


class _Plan(NamedTuple):
    """How the products are laid out (see the module docstring)."""

    order: str  # "ct" or "tc": which of input feature and taps is outer in the depth
    rows: bool  # P is (rows, depth) (else (depth, positions), one image)
    image_minor: bool  # rows ordered (y, n), all images in one block
    images: int  # images per block
    depth_block: int  # entries of the outer depth dim per block
    in_place: bool  # products land in the output (else in a scratch result)

    def depth_shape(self, conv: _Conv) -> list[int]:
        """The dims of the contraction index, outer first."""
        if self.order == "ct":
            return [conv.in_features, *conv.kernel_spatial]
        return [*conv.kernel_spatial, conv.in_features]


def _kernel_matrix(ctx, conv: _Conv, blas: bool) -> tuple[MatrixView, str, Callable[[], None] | None]:
    """The kernel's group 0 as an ``(Og, depth)`` view, its depth order, and the free of
    its scratch copy (None when read in place). Features go innermost in the depth when
    they are innermost in the input (NHWC), so the gathering reads the input in order."""
    rhs, spec = conv.rhs, conv.rhs_spec
    shape, st = rhs.aval.shape, strides(rhs.aval.shape)
    orders = {"ct": [spec[1], *spec[2:]], "tc": [*spec[2:], spec[1]]}
    features_last = strides(conv.lhs.aval.shape)[conv.lhs_spec[1]] == 1
    preferred = ("tc", "ct") if features_last else ("ct", "tc")
    for order in preferred:
        s_depth = merged_stride(shape, st, orders[order])
        if s_depth is not None:
            view = MatrixView(rhs.ptr, conv.group_features, conv.depth, st[spec[0]], s_depth)
            if not blas or blas_layout(view) is not None:
                return view, order, None
    copy, free = transposed_copy(ctx, rhs, [spec[0], *orders[preferred[0]]])
    return MatrixView(copy.ptr, conv.group_features, conv.depth, conv.depth, 1), preferred[0], free


def _pack_input(ctx, conv: _Conv, plan: _Plan) -> Callable[[], None] | None:
    """Copy the input into the layout whose innermost dim the gathering's innermost loop
    walks (features for ``"tc"`` rows, else the last spatial dim), when it is not already
    and the gathering reads each element more than twice; returns the copy's free."""
    lhs, spec = conv.lhs, conv.lhs_spec
    if (plan.rows and plan.order == "tc") or len(spec) == 2:
        want = [spec[0], *spec[2:], spec[1]]
    else:
        want = [spec[0], spec[1], *spec[2:]]
    if strides(lhs.aval.shape)[want[-1]] == 1 or lhs.aval.shape[want[-1]] == 1:
        return None
    if conv.groups * conv.out_batch * conv.positions * conv.depth < 2 * lhs.aval.size:
        return None
    conv.lhs, free = transposed_copy(ctx, lhs, want)
    conv.lhs_spec = tuple(want.index(d) for d in spec)
    return free


def _plan(conv: _Conv, order: str, blas: bool) -> _Plan:
    """Choose the patch layout and the block sizes for the output's layout."""
    shape, st = conv.out.aval.shape, strides(conv.out.aval.shape)
    n_dim, o_dim, y_dims = conv.out_spec[0], conv.out_spec[1], list(conv.out_spec[2:])
    s_y = merged_stride(shape, st, y_dims)
    rows = s_y is not None and (st[o_dim] == 1 or conv.group_features == 1)
    image_minor, images = False, 1
    if rows and merged_stride(shape, st, [n_dim, *y_dims]) is not None:
        per_image = conv.positions * conv.depth * conv.dtype.itemsize
        images = max(1, min(conv.out_batch, PATCH_BUDGET // max(1, per_image)))
    elif rows and merged_stride(shape, st, [*y_dims, n_dim]) is not None:
        image_minor, images = True, conv.out_batch
    in_place = rows or (s_y is not None and (s_y == 1 or conv.positions == 1 or not blas))
    outer = conv.in_features if order == "ct" or not conv.kernel_spatial else conv.kernel_spatial[0]
    per_outer = images * conv.positions * (conv.depth // outer) * conv.dtype.itemsize
    depth_block = max(1, min(outer, PATCH_BUDGET // max(1, per_outer)))
    return _Plan(order, rows, image_minor, images, depth_block, in_place)


def _gather_patches(ctx, conv: _Conv, plan: _Plan, patches: Buffer, g, n0, images: int, d0, outer: int) -> None:
    """Fill ``patches`` for ``images`` images from ``n0`` of group ``g``, depth entries
    ``d0 .. d0 + outer`` of the outer depth dim. When the innermost loop walks the
    input's contiguous features, each run of them is one ``memcpy`` (or ``memset`` to 0)."""
    b = ctx.b
    depth_shape = [outer, *plan.depth_shape(conv)[1:]]
    if not plan.rows:
        shape = [*depth_shape, *conv.out_spatial]
    elif plan.image_minor:
        shape = [*conv.out_spatial, images, *depth_shape]
    else:
        shape = [images, *conv.out_spatial, *depth_shape]
    features_inner = plan.rows and (plan.order == "tc" or len(shape) == 2)
    if features_inner and strides(conv.lhs.aval.shape)[conv.lhs_spec[1]] == 1:
        run = shape[-1] * conv.dtype.itemsize
        with loop_nest(b, shape[:-1], "p") as idx:
            idx = [*idx, i64(0)]
            lhs_idx, valid = _source(b, conv, plan, idx, g, n0, d0)
            src, dst = (
                conv.lhs.address(b, flat_index(b, lhs_idx, conv.lhs.aval.shape)),
                patches.address(b, flat_index(b, idx, shape)),
            )
            if valid is None:
                ctx.mb.memcpy(b, dst, src, run)
            else:
                with b.if_else(valid) as (then, otherwise):
                    with then:
                        ctx.mb.memcpy(b, dst, src, run)
                    with otherwise:
                        ctx.mb.memset(b, dst, run)
        return
    if _spatial_runs(conv, plan):
        _gather_runs(ctx, conv, plan, patches, shape, g, n0, d0)
        return
    with loop_nest(b, shape, "p") as idx:
        lhs_idx, valid = _source(b, conv, plan, idx, g, n0, d0)
        value = conv.lhs.load_at(b, lhs_idx)
        if valid is not None:
            value = b.select(valid, value, constant(0, conv.dtype))
        patches.store(b, value, flat_index(b, idx, shape))


def _spatial_runs(conv: _Conv, plan: _Plan) -> bool:
    """Whether the innermost patch loop walks the input's last spatial dim one contiguous
    element at a time (a tap of unit dilation, or a position of unit stride)."""
    nsp = len(conv.out_spatial)
    if nsp == 0 or (plan.rows and plan.order == "tc") or conv.lhs_dilation[-1] != 1:
        return False
    step = conv.rhs_dilation[-1] if plan.rows else conv.strides[-1]
    return step == 1 and strides(conv.lhs.aval.shape)[conv.lhs_spec[-1]] == 1


def _gather_runs(ctx, conv: _Conv, plan: _Plan, patches: Buffer, shape: list[int], g, n0, d0) -> None:
    """The patches as runs along the innermost loop: input positions ``q0 .. q0 + L``, the
    part inside the input copied and the rest zeroed, by one masked vector load (masked
    lanes are never read) for short runs, else ``memset``/``memcpy``/``memset``."""
    b = ctx.b
    size, length, elem = conv.in_spatial[-1], shape[-1], memory_type(conv.dtype)

    def clamp(v, lo, hi):
        v = b.select(b.icmp_signed("<", v, lo), lo, v)
        return b.select(b.icmp_signed(">", v, hi), hi, v)

    with loop_nest(b, shape[:-1], "p") as idx:
        idx = [*idx, i64(0)]
        lhs_idx, valid = _source(b, conv, plan, idx, g, n0, d0, raw_last=True)
        q0 = lhs_idx[conv.lhs_spec[-1]]
        start = clamp(b.sub(i64(0), q0), i64(0), i64(length))
        stop = clamp(b.sub(i64(size), q0), start, i64(length))
        if valid is not None:
            stop = b.select(valid, stop, start)
        row = flat_index(b, idx, shape)
        if length * conv.dtype.itemsize <= MASKED_RUN_BYTES:
            lhs_idx[conv.lhs_spec[-1]] = i64(0)
            first = b.add(flat_index(b, lhs_idx, conv.lhs.aval.shape), q0)  # may lie outside: never dereferenced
            src = b.gep(conv.lhs.ptr, [first], source_etype=elem)
            _masked_run(ctx, elem, src, patches.address(b, row), length, start, stop)
        else:
            lhs_idx[conv.lhs_spec[-1]] = clamp(b.add(q0, start), i64(0), i64(size - 1))
            src = conv.lhs.address(b, flat_index(b, lhs_idx, conv.lhs.aval.shape))
            _copy_run(ctx, conv, patches, row, src, length, start, stop)


def _masked_run(ctx, elem: ir.Type, src: ir.Value, dst: ir.Value, length: int, start, stop) -> None:
    """``dst[j] = src[j]`` for ``start <= j < stop``, else 0, for ``j < length``."""
    b = ctx.b
    vec, lanes, mask_ty = ir.VectorType(elem, length), ir.VectorType(I64, length), ir.VectorType(I1, length)
    iota = ir.Constant(lanes, [ir.Constant(I64, j) for j in range(length)])

    def splat(v):
        one = b.insert_element(ir.Constant(ir.VectorType(I64, 1), None), v, ir.Constant(I32, 0))
        return b.shuffle_vector(one, one, ir.Constant(ir.VectorType(I32, length), [0] * length))

    mask = b.and_(b.icmp_signed(">=", iota, splat(start)), b.icmp_signed("<", iota, splat(stop)))
    suffix = f"v{length}{'f' if isinstance(elem, ir.FloatType | ir.DoubleType) else 'i'}{_bits(elem)}"
    load = ctx.mb.declare(f"llvm.masked.load.{suffix}.p0", vec, [PTR, I32, mask_ty, vec])
    value = b.call(load, [src, ir.Constant(I32, 1), mask, ir.Constant(vec, None)])
    b.store(value, dst, align=1)


def _bits(elem: ir.Type) -> int:
    """The width of an LLVM element type, for intrinsic names."""
    if isinstance(elem, ir.IntType):
        return elem.width
    return 32 if isinstance(elem, ir.FloatType) else 64


def _copy_run(ctx, conv: _Conv, patches: Buffer, row, src, length: int, start, stop) -> None:
    """``patches[row + j]`` for ``j < length``: zeros, ``src[0 .. stop - start]`` from ``start``, zeros."""
    b, item = ctx.b, conv.dtype.itemsize

    def nbytes(lo, hi):
        return b.mul(b.sub(hi, lo), i64(item))

    ctx.mb.memset(b, patches.address(b, row), nbytes(i64(0), start))
    ctx.mb.memcpy(b, patches.address(b, b.add(row, start)), src, nbytes(start, stop))
    ctx.mb.memset(b, patches.address(b, b.add(row, stop)), nbytes(stop, i64(length)))


def _source(b: ir.IRBuilder, conv: _Conv, plan: _Plan, idx, g, n0, d0, raw_last: bool = False):
    """For a patch index: the input element it copies (clamped in bounds) and whether it
    is there (an ``i1``; None when always). With ``raw_last`` the last spatial dim's
    position is left unclamped and out of the check."""
    nsp = len(conv.out_spatial)
    ndepth = len(conv.kernel_spatial) + 1
    if not plan.rows:
        n_local, ys, depth = i64(0), idx[ndepth:], list(idx[:ndepth])
    elif plan.image_minor:
        n_local, ys, depth = idx[nsp], idx[:nsp], list(idx[nsp + 1 :])
    else:
        n_local, ys, depth = idx[0], idx[1 : 1 + nsp], list(idx[1 + nsp :])
    depth[0] = b.add(depth[0], d0)
    c, ts = (depth[0], depth[1:]) if plan.order == "ct" else (depth[-1], depth[:-1])
    n = b.add(n0, n_local)
    if conv.batch_groups > 1:
        n = b.add(n, b.mul(g, i64(conv.out_batch)))
    if conv.feature_groups > 1:
        c = b.add(c, b.mul(g, i64(conv.in_features)))
    lhs_idx = [None] * (2 + nsp)
    lhs_idx[conv.lhs_spec[0]], lhs_idx[conv.lhs_spec[1]] = n, c
    valid = None
    for d in range(nsp):
        if raw_last and d == nsp - 1:
            q = b.add(b.mul(ys[d], i64(conv.strides[d])), b.mul(ts[d], i64(conv.rhs_dilation[d])))
            lhs_idx[conv.lhs_spec[2 + d]] = b.sub(q, i64(conv.padding[d][0]))
            continue
        pos, ok = window_position(
            b,
            ys[d],
            ts[d],
            size=conv.in_spatial[d],
            stride=conv.strides[d],
            lo=conv.padding[d][0],
            base_dilation=conv.lhs_dilation[d],
            window_dilation=conv.rhs_dilation[d],
            out_size=conv.out_spatial[d],
            window_size=conv.kernel_spatial[d],
        )
        lhs_idx[conv.lhs_spec[2 + d]] = pos
        valid = ok if valid is None else (valid if ok is None else b.and_(valid, ok))
    return lhs_idx, valid


def _result_view(b: ir.IRBuilder, conv: _Conv, plan: _Plan, g, n0, images: int, scratch: Buffer | None) -> MatrixView:
    """Where the product for ``images`` images from ``n0`` of group ``g`` goes: ``(rows, Og)``
    or ``(Og, positions)`` in the output, or the ``(Og, positions)`` scratch result."""
    if scratch is not None:
        return MatrixView(scratch.ptr, conv.group_features, conv.positions, conv.positions, 1)
    shape, st = conv.out.aval.shape, strides(conv.out.aval.shape)
    n_dim, o_dim, y_dims = conv.out_spec[0], conv.out_spec[1], list(conv.out_spec[2:])
    off = b.add(b.mul(n0, i64(st[n_dim])), b.mul(g, i64(conv.group_features * st[o_dim])))
    ptr = conv.out.address(b, off)
    if not plan.rows:
        return MatrixView(ptr, conv.group_features, conv.positions, st[o_dim], merged_stride(shape, st, y_dims))
    row_dims = [*y_dims, n_dim] if plan.image_minor else [n_dim, *y_dims]
    row_stride = merged_stride(shape, st, row_dims) if images > 1 else merged_stride(shape, st, y_dims)
    return MatrixView(ptr, images * conv.positions, conv.group_features, row_stride, st[o_dim])


def _scatter_result(ctx, conv: _Conv, result: Buffer, g, n) -> None:
    """Copy an ``(Og, *Y)`` scratch result into the output at image ``n``, group ``g``."""
    b = ctx.b
    shape = [conv.group_features, *conv.out_spatial]
    with loop_nest(b, shape, "r") as idx:
        out_idx = [None] * (len(shape) + 1)
        out_idx[conv.out_spec[0]] = n
        out_idx[conv.out_spec[1]] = b.add(idx[0], b.mul(g, i64(conv.group_features)))
        for d, i in enumerate(idx[1:]):
            out_idx[conv.out_spec[2 + d]] = i
        conv.out.store_at(b, result.load(b, flat_index(b, idx, shape)), out_idx)


def _blocks(b: ir.IRBuilder, total: int, size: int, body: Callable[[ir.Value, int], None], name: str) -> None:
    """``body(start, count)`` over ``range(total)`` in blocks of ``size``: a loop, then the rest."""
    full, rest = divmod(total, size)
    if full == 1:
        body(i64(0), size)
    elif full:
        with for_range(b, full, name) as k:
            body(b.mul(k, i64(size)), size)
    if rest:
        body(i64(full * size), rest)


@kernel_rule("conv_general_dilated")
def _conv_general_dilated_lower(ctx, eqn, ins, outs):
    """im2col + ``matmul`` per group and block (see the module docstring)."""
    lhs, rhs = ins
    (out,) = outs
    conv = _Conv(eqn, lhs, rhs, out)
    if out.aval.size == 0:
        return
    if lhs.aval.size == 0 or rhs.aval.size == 0:
        fill_zero(ctx, conv.dtype, MatrixView(out.ptr, 1, out.aval.size, 0, 1))
        return
    b, dtype = ctx.b, conv.dtype
    elem = memory_type(dtype)
    blas = use_blas(dtype, conv.group_features, conv.positions, conv.depth)
    kernel, order, free_kernel = _kernel_matrix(ctx, conv, blas)
    plan = _plan(conv, order, blas)
    free_input = _pack_input(ctx, conv, plan)
    outer = plan.depth_shape(conv)[0]
    inner = conv.depth // outer
    patch_size = plan.images * conv.positions * plan.depth_block * inner
    patches, free_patches = ctx.fl.scratch_buffer(ShapedArray((patch_size,), dtype))
    scratch, free_scratch = None, None
    if not plan.in_place:
        scratch, free_scratch = ctx.fl.scratch_buffer(ShapedArray((conv.group_features * conv.positions,), dtype))
    blocked = plan.depth_block < outer

    def images_block(g, n0, images: int) -> None:
        result = _result_view(b, conv, plan, g, n0, images, scratch)
        if blocked:
            fill_zero(ctx, dtype, result)

        def depth_block(d0, count: int) -> None:
            _gather_patches(ctx, conv, plan, patches, g, n0, images, d0, count)
            w_off = b.mul(g, i64(conv.group_features * kernel.row_stride))
            w_off = b.add(w_off, b.mul(d0, i64(inner * kernel.col_stride)))
            w = kernel._replace(ptr=b.gep(kernel.ptr, [w_off], inbounds=True, source_etype=elem), cols=count * inner)
            if plan.rows:
                p = MatrixView(patches.ptr, images * conv.positions, count * inner, count * inner, 1)
                matmul(ctx, dtype, p, w.T, result, accumulate=blocked)
            else:
                p = MatrixView(patches.ptr, count * inner, conv.positions, conv.positions, 1)
                matmul(ctx, dtype, w, p, result, accumulate=blocked)

        _blocks(b, outer, plan.depth_block, depth_block, "d")
        if scratch is not None:
            _scatter_result(ctx, conv, scratch, g, n0)

    with for_range(b, conv.groups, "g") as g:
        _blocks(b, conv.out_batch, plan.images, lambda n0, images: images_block(g, n0, images), "n")
    for free in (free_scratch, free_patches, free_input, free_kernel):
        if free is not None:
            free()
