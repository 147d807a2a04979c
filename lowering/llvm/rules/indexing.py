"""Kernel rules for copies of boxes: ``dynamic_slice``, ``dynamic_update_slice``, ``pad``,
``concatenate``; and the strided box loops that ``gather_scatter.py`` shares.

Every rule here is a few *box copies*: a ``counts``-shaped box of elements read at
``src_base + sum(i * src_strides)`` and written at ``dst_base + sum(i * dst_strides)``
(offsets in elements). ``_copy_box`` drops the dimensions of one element, merges the
dimensions that are contiguous in both buffers, and copies each innermost contiguous
run with one ``llvm.memcpy`` of constant size (LLVM expands the short ones inline).

Out of bounds, as the eager implementations (``functrace.lax.indexing``): the start
indices of ``dynamic_slice`` / ``dynamic_update_slice`` may have any integer dtype and
any value; each is widened to int64 and clamped into ``[0, dim - size]``, so the box
always lies inside the operand. ``pad``'s negative ``lo``/``hi`` crop: the operand
elements that would land outside the output are never read. No rule here reads or
writes outside its buffers, whatever the index values.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from llvmlite import ir

from functrace.core.ir import Eqn, Literal
from lowering.llvm.codegen import (
    I64,
    Buffer,
    KernelContext,
    constant,
    i64,
    loop_nest,
    memory_type,
    strides,
)
from lowering.llvm.registry import kernel_rule

Operand = Buffer | Literal

# --- helpers shared with gather_scatter.py ------------------------------------------------


def scalar_value(ctx: KernelContext, operand: Operand) -> ir.Value:
    """The register value of a rank-0 operand (a buffer or a literal)."""
    if isinstance(operand, Literal):
        return constant(operand.val, operand.aval.dtype)
    return operand.load(ctx.b, i64(0))


def as_buffer(ctx: KernelContext, operand: Operand) -> Buffer:
    """``operand`` in memory: a literal (always rank 0) is stored in a stack slot."""
    if not isinstance(operand, Literal):
        return operand
    buf = Buffer(ctx.fl.alloca(memory_type(operand.aval.dtype)), operand.aval)
    buf.store(ctx.b, constant(operand.val, operand.aval.dtype), i64(0))
    return buf


def index_i64(b: ir.IRBuilder, value: ir.Value, dtype: np.dtype) -> ir.Value:
    """An integer index widened to int64 exactly (sign- or zero-extended by ``dtype``)."""
    if value.type == I64:
        return value
    return b.zext(value, I64) if np.dtype(dtype).kind == "u" else b.sext(value, I64)


def clamp_start(b: ir.IRBuilder, start: ir.Value, upper: int) -> ir.Value:
    """``min(max(start, 0), upper)`` on int64 (``upper >= 0``): a window start that fits."""
    lo = b.select(b.icmp_signed("<", start, i64(0)), i64(0), start)
    return b.select(b.icmp_signed(">", lo, i64(upper)), i64(upper), lo)


def start_fits(b: ir.IRBuilder, start: ir.Value, upper: int) -> ir.Value:
    """``0 <= start <= upper`` (i1): the window fits without clamping."""
    return b.and_(b.icmp_signed(">=", start, i64(0)), b.icmp_signed("<=", start, i64(upper)))


def offset(b: ir.IRBuilder, base: ir.Value, idx: Sequence[ir.Value], steps: Sequence[int]) -> ir.Value:
    """``base + sum(idx * steps)``: an element offset (never negative, so the adds are nuw/nsw)."""
    flags = ("nuw", "nsw")
    for i, step in zip(idx, steps, strict=True):
        if step:
            term = i if step == 1 else b.mul(i, i64(step), flags=flags)
            base = term if isinstance(base, ir.Constant) and base.constant == 0 else b.add(base, term, flags=flags)
    return base


def _simplify(counts: Sequence[int], *step_lists: Sequence[int]) -> tuple[list[int], list[list[int]]] | None:
    """The box with its one-element dimensions dropped and neighbouring dimensions merged
    where they are contiguous in every buffer (row-major order is kept); None if empty."""
    if 0 in counts:
        return None
    kept = [k for k, n in enumerate(counts) if n != 1]
    out_counts = [counts[k] for k in kept]
    out_steps = [[steps[k] for k in kept] for steps in step_lists]
    j = len(out_counts) - 1
    while j > 0:
        if all(s[j - 1] == out_counts[j] * s[j] for s in out_steps):
            out_counts[j - 1] *= out_counts.pop(j)
            for s in out_steps:
                s.pop(j - 1)
        j -= 1
    return out_counts, out_steps


def copy_box(
    ctx: KernelContext,
    dst: Buffer,
    dst_base: ir.Value,
    dst_steps: Sequence[int],
    src: Buffer,
    src_base: ir.Value,
    src_steps: Sequence[int],
    counts: Sequence[int],
) -> None:
    """Copy a ``counts``-shaped box of elements (see the module docstring): loops over
    the outer dimensions, one memcpy per innermost contiguous run."""
    box = _simplify(counts, dst_steps, src_steps)
    if box is None:
        return
    counts, (dst_steps, src_steps) = box
    b = ctx.b
    run = 1
    if counts and dst_steps[-1] == 1 and src_steps[-1] == 1:
        run = counts.pop()
        dst_steps.pop()
        src_steps.pop()
    with loop_nest(b, counts, "box") as idx:
        d = dst.address(b, offset(b, dst_base, idx, dst_steps))
        s = src.address(b, offset(b, src_base, idx, src_steps))
        if run == 1:
            b.store(b.load(s, typ=src.elem), d)
        else:
            ctx.mb.memcpy(b, d, s, run * src.aval.dtype.itemsize)


def combine_box(
    ctx: KernelContext,
    dst: Buffer,
    dst_base: ir.Value,
    dst_steps: Sequence[int],
    src: Buffer,
    src_base: ir.Value,
    src_steps: Sequence[int],
    counts: Sequence[int],
    combine: Callable[[ir.Value, ir.Value], ir.Value],
) -> None:
    """``dst[j] = combine(dst[j], src[i])`` over a box, element by element in row-major order."""
    box = _simplify(counts, dst_steps, src_steps)
    if box is None:
        return
    counts, (dst_steps, src_steps) = box
    b = ctx.b
    with loop_nest(b, counts, "box") as idx:
        d = offset(b, dst_base, idx, dst_steps)
        dst.store(b, combine(dst.load(b, d), src.load(b, offset(b, src_base, idx, src_steps))), d)


def fill_box(
    ctx: KernelContext, dst: Buffer, base: ir.Value, steps: Sequence[int], counts: Sequence[int], value: ir.Value
) -> None:
    """Store the register ``value`` at every element of a box of ``dst``."""
    box = _simplify(counts, steps)
    if box is None:
        return
    counts, (steps,) = box
    b = ctx.b
    with loop_nest(b, counts, "fill") as idx:
        dst.store(b, value, offset(b, base, idx, steps))


def clamped_starts(
    ctx: KernelContext, starts: Sequence[Operand], shape: Sequence[int], sizes: Sequence[int]
) -> list[ir.Value]:
    """The start-index operands, widened to int64 and clamped into ``[0, dim - size]``."""
    b = ctx.b
    return [
        clamp_start(b, index_i64(b, scalar_value(ctx, s), s.aval.dtype), d - n)
        for s, d, n in zip(starts, shape, sizes, strict=True)
    ]


# --- the rules ----------------------------------------------------------------------------


@kernel_rule("dynamic_slice")
def _dynamic_slice_lower(ctx: KernelContext, eqn: Eqn, ins: list, outs: list[Buffer]) -> None:
    """``out = x[s0:s0+n0, ...]`` with each start clamped into ``[0, dim - n]``: one box copy."""
    x, *starts = ins
    (out,) = outs
    sizes = eqn.params["slice_sizes"]
    if not math.prod(sizes):
        return
    x = as_buffer(ctx, x)
    shape = x.aval.shape
    base = offset(ctx.b, i64(0), clamped_starts(ctx, starts, shape, sizes), strides(shape))
    copy_box(ctx, out, i64(0), strides(sizes), x, base, strides(shape), sizes)


@kernel_rule("dynamic_update_slice")
def _dynamic_update_slice_lower(ctx: KernelContext, eqn: Eqn, ins: list, outs: list[Buffer]) -> None:
    """``out = x`` then ``out[box at clamped starts] = update``: two copies (one if the
    update covers everything)."""
    x, update, *starts = ins
    (out,) = outs
    shape = out.aval.shape
    sizes = eqn.inputs[1].aval.shape
    if tuple(sizes) != tuple(shape):
        ctx.fl.copy(out, as_buffer(ctx, x))
    if not math.prod(sizes):
        return
    update = as_buffer(ctx, update)
    base = offset(ctx.b, i64(0), clamped_starts(ctx, starts, shape, sizes), strides(shape))
    copy_box(ctx, out, base, strides(shape), update, i64(0), strides(sizes), sizes)


def _pad_copied(size: int, out_size: int, lo: int, interior: int) -> tuple[int, int]:
    """Along one dimension: the first operand index that lands inside the output
    (at ``lo + i * (interior + 1)``), and how many consecutive ones do."""
    step = interior + 1
    first = max(0, -(lo // step))  # ceil(-lo / step)
    stop = min(size, -(-(out_size - lo) // step)) if out_size > lo else 0
    return first, max(0, stop - first)


@kernel_rule("pad")
def _pad_lower(ctx: KernelContext, eqn: Eqn, ins: list, outs: list[Buffer]) -> None:
    """Fill the output with the padding value (unless the operand covers it all), then
    copy the operand elements that land inside it to ``lo + i * (interior + 1)``; the
    ranges are computed at compile time, so cropped elements are never read."""
    x, value = ins
    (out,) = outs
    config = eqn.params["padding_config"]
    shape, out_shape = eqn.inputs[0].aval.shape, out.aval.shape
    ranges = [_pad_copied(n, m, lo, interior) for n, m, (lo, _, interior) in zip(shape, out_shape, config, strict=True)]
    counts = [count for _, count in ranges]
    if math.prod(counts) < math.prod(out_shape):
        fill_box(ctx, out, i64(0), [1], [math.prod(out_shape)], scalar_value(ctx, value))
    if not math.prod(counts):
        return
    out_strides = strides(out_shape)
    dst_start = [lo + first * (interior + 1) for (first, _), (lo, _, interior) in zip(ranges, config, strict=True)]
    dst_base = sum(s * st for s, st in zip(dst_start, out_strides, strict=True))
    src_base = sum(first * st for (first, _), st in zip(ranges, strides(shape), strict=True))
    dst_steps = [st * (interior + 1) for st, (_, _, interior) in zip(out_strides, config, strict=True)]
    copy_box(ctx, out, i64(dst_base), dst_steps, as_buffer(ctx, x), i64(src_base), strides(shape), counts)


@kernel_rule("concatenate")
def _concatenate_lower(ctx: KernelContext, eqn: Eqn, ins: list, outs: list[Buffer]) -> None:
    """One box copy per operand, to its offset along ``dimension`` (contiguous blocks
    become memcpys: one in all when concatenating along the first axis). A fused operand
    (``lowering.fusion``) is computed in a loop nest over its shape, straight into place."""
    (out,) = outs
    dim = eqn.params["dimension"]
    out_strides = strides(out.aval.shape)
    start = 0
    for a, x in zip(eqn.inputs, ins, strict=True):
        shape = a.aval.shape
        base = start * out_strides[dim]
        if x is None:
            with loop_nest(ctx.b, shape, "piece") as idx:
                flat = offset(ctx.b, i64(base), idx, out_strides)
                out.store(ctx.b, ctx.value_at(a, idx), flat)
            ctx.forget()
        else:
            copy_box(ctx, out, i64(base), out_strides, x, i64(0), strides(shape), shape)
        start += shape[dim]
