"""Kernel rules for XLA's ``gather`` and the scatters (``scatter``, ``scatter_add``,
``scatter_mul``, ``scatter_min``, ``scatter_max``), as ``functrace.lax.gather_scatter``.

Both walk the batch of index vectors (the indices without their last axis) in
row-major order. For each index vector the window start along every operand dimension
is computed in registers: component ``k`` of the vector (any integer dtype, widened to
int64 exactly) starts dimension ``start_index_map[k]``, clamped into
``[0, dim - window]``; a batching dimension starts at the vector's own batch
coordinate; every other dimension at 0. Then one box loop (``indexing.copy_box`` /
``combine_box``) walks the window.

Out of bounds, exactly as eager:

- ``gather`` mode ``"clip"`` reads the clamped window; mode ``"fill"`` writes the fill
  value (``fill_value``, or NaN / the lowest signed / the highest unsigned integer /
  ``True``) over a window whose unclamped start does not fit;
- the scatters in mode ``"drop"`` skip a window whose start does not fit; in mode
  ``"clip"`` they apply it at the clamped start.

A scatter first copies the operand into the output, then applies the update windows
one at a time, in index order, each window's elements in row-major order: the order
of NumPy's ``ufunc.at`` in the eager implementation, so ``scatter`` keeps the last of
repeated updates, and float ``scatter_add``/``scatter_mul`` round identically.
``scatter_min``/``scatter_max`` propagate NaN (``np.minimum``/``np.maximum``: on ties,
``-0.0`` against ``0.0``, the update wins). On ``bool`` the combiners are ``or``
(add, max) and ``and`` (mul, min), as NumPy.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from contextlib import nullcontext

import numpy as np
from llvmlite import ir

from functrace.core.ir import Eqn
from functrace.lax.gather_scatter import _fill_value
from lowering.llvm.codegen import Buffer, KernelContext, constant, i64, loop_nest, strides
from lowering.llvm.registry import kernel_rule
from lowering.llvm.rules.indexing import (
    as_buffer,
    clamp_start,
    combine_box,
    copy_box,
    fill_box,
    index_i64,
    offset,
    start_fits,
)


def _window_starts(
    ctx: KernelContext,
    indices: Buffer,
    batch_idx: Sequence[ir.Value],
    shape: Sequence[int],
    window: Sequence[int],
    index_map: Sequence[int],
    batching: Sequence[tuple[int, int]],
) -> tuple[list[ir.Value], ir.Value]:
    """For the index vector at ``batch_idx``: the clamped window start along every operand
    dimension, and whether the unclamped start fits (i1). ``batching`` pairs each operand
    batching dimension with its indices batching dimension."""
    b = ctx.b
    starts: list[ir.Value] = [i64(0)] * len(shape)
    fits: ir.Value = ir.Constant(ir.IntType(1), 1)
    vector = offset(b, i64(0), batch_idx, strides(indices.aval.shape)[:-1])
    for k, d in enumerate(index_map):
        raw = index_i64(b, indices.load(b, b.add(vector, i64(k)) if k else vector), indices.aval.dtype)
        upper = shape[d] - window[d]
        fits = start_fits(b, raw, upper) if k == 0 else b.and_(fits, start_fits(b, raw, upper))
        starts[d] = clamp_start(b, raw, upper)
    for operand_dim, indices_dim in batching:
        starts[operand_dim] = batch_idx[indices_dim]
    return starts, fits


def _positions(rank: int, window_positions: Sequence[int]) -> list[int]:
    """The batch positions of an array (gather output, scatter updates): those that are
    not window positions, in order."""
    return [p for p in range(rank) if p not in window_positions]


@kernel_rule("gather")
def _gather_lower(ctx: KernelContext, eqn: Eqn, ins: list, outs: list[Buffer]) -> None:
    """For each index vector: compute its window start, then copy the window into the
    output (mode ``"fill"``: store the fill value instead when the start does not fit)."""
    operand, indices = as_buffer(ctx, ins[0]), ins[1]
    (out,) = outs
    dn, sizes, mode = eqn.params["dimension_numbers"], eqn.params["slice_sizes"], eqn.params["mode"]
    if not math.prod(out.aval.shape):
        return
    shape, dtype = operand.aval.shape, operand.aval.dtype
    removed = set(dn.collapsed_slice_dims) | set(dn.operand_batching_dims)
    window_dims = [d for d in range(len(shape)) if d not in removed]
    out_strides = strides(out.aval.shape)
    batch_steps = [out_strides[p] for p in _positions(out.aval.ndim, dn.offset_dims)]
    window = [sizes[d] for d in window_dims]
    batching = list(zip(dn.operand_batching_dims, dn.start_indices_batching_dims, strict=True))
    src_steps = [strides(shape)[d] for d in window_dims]
    dst_steps = [out_strides[p] for p in dn.offset_dims]
    b = ctx.b
    with loop_nest(b, indices.aval.shape[:-1], "batch") as bidx:
        starts, fits = _window_starts(ctx, indices, bidx, shape, sizes, dn.start_index_map, batching)
        dst_base = offset(b, i64(0), bidx, batch_steps)
        src_base = offset(b, i64(0), starts, strides(shape))
        if mode == "fill":
            fill = np.asarray(_fill_value(dtype, eqn.params["fill_value"])).astype(dtype).item()
            with b.if_else(fits) as (inside, outside):
                with inside:
                    copy_box(ctx, out, dst_base, dst_steps, operand, src_base, src_steps, window)
                with outside:
                    fill_box(ctx, out, dst_base, dst_steps, window, constant(fill, dtype))
        else:
            copy_box(ctx, out, dst_base, dst_steps, operand, src_base, src_steps, window)


def _combiner(ctx: KernelContext, name: str, dtype: np.dtype) -> Callable[[ir.Value, ir.Value], ir.Value]:
    """``combine(old, update)`` as NumPy's ``ufunc.at`` with ``np.add`` / ``np.multiply`` /
    ``np.minimum`` / ``np.maximum`` (``scatter`` itself copies instead)."""
    b = ctx.b
    if dtype.kind == "b":
        return b.or_ if name in ("scatter_add", "scatter_max") else b.and_
    if name == "scatter_add":
        return b.fadd if dtype.kind == "f" else b.add
    if name == "scatter_mul":
        return b.fmul if dtype.kind == "f" else b.mul
    pred = "<" if name == "scatter_min" else ">"

    def extremum(old: ir.Value, new: ir.Value) -> ir.Value:
        if dtype.kind == "f":  # np.minimum(old, new): old if old < new or old is NaN, else new
            keep = b.or_(b.fcmp_ordered(pred, old, new), b.fcmp_unordered("uno", old, old))
        else:
            keep = (b.icmp_signed if dtype.kind == "i" else b.icmp_unsigned)(pred, old, new)
        return b.select(keep, old, new)

    return extremum


@kernel_rule("scatter", "scatter_add", "scatter_mul", "scatter_min", "scatter_max")
def _scatter_lower(ctx: KernelContext, eqn: Eqn, ins: list, outs: list[Buffer]) -> None:
    """Copy the operand to the output, then for each index vector in order: compute its
    window start, skip the window if it does not fit (mode ``"drop"``), else combine the
    update window into the output element by element (``scatter``: a copy)."""
    operand, indices, updates = as_buffer(ctx, ins[0]), ins[1], as_buffer(ctx, ins[2])
    (out,) = outs
    name = eqn.primitive.name
    dn, mode = eqn.params["dimension_numbers"], eqn.params["mode"]
    ctx.fl.copy(out, operand)
    u_shape = updates.aval.shape
    if not math.prod(u_shape):
        return
    shape = out.aval.shape
    removed = set(dn.inserted_window_dims) | set(dn.operand_batching_dims)
    window_dims = [d for d in range(len(shape)) if d not in removed]
    window = [1] * len(shape)
    for d in dn.operand_batching_dims:
        window[d] = min(1, shape[d])
    for d, p in zip(window_dims, dn.update_window_dims, strict=True):
        window[d] = u_shape[p]
    u_strides = strides(u_shape)
    batch_steps = [u_strides[p] for p in _positions(len(u_shape), dn.update_window_dims)]
    counts = [window[d] for d in window_dims]
    batching = list(zip(dn.operand_batching_dims, dn.scatter_indices_batching_dims, strict=True))
    dst_steps = [strides(shape)[d] for d in window_dims]
    src_steps = [u_strides[p] for p in dn.update_window_dims]
    combine = None if name == "scatter" else _combiner(ctx, name, out.aval.dtype)
    b = ctx.b
    with loop_nest(b, indices.aval.shape[:-1], "batch") as bidx:
        starts, fits = _window_starts(ctx, indices, bidx, shape, window, dn.scatter_dims_to_operand_dims, batching)
        src_base = offset(b, i64(0), bidx, batch_steps)
        dst_base = offset(b, i64(0), starts, strides(shape))
        with b.if_then(fits) if mode == "drop" else nullcontext():
            if combine is None:
                copy_box(ctx, out, dst_base, dst_steps, updates, src_base, src_steps, counts)
            else:
                combine_box(ctx, out, dst_base, dst_steps, updates, src_base, src_steps, counts, combine)
