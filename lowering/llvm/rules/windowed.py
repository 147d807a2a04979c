"""Window reductions (sum, max and min pooling) as direct loop nests, and the window
arithmetic that convolution shares.

XLA's window semantics (``functrace.lax.windowed``): the operand is dilated by
``base_dilation`` and padded by ``padding``; tap ``t`` of window ``y`` reads position
``y * stride + t * window_dilation - lo`` of the dilated operand, which holds element
``position / base_dilation`` when that divides exactly and lies inside the operand,
and otherwise a hole or pad holding the reduction's identity. Instead of building the
padded operand, every tap computes its position, loads a clamped (always in-bounds)
element and selects the identity where there is none; dims where every tap is in
bounds skip the checks at compile time.

A sum starts at ``+0.0`` and adds pads as ``+0.0``, as NumPy's sum over the eager
padded array does, so even the sign of a zero agrees. Max and min propagate NaN, as
NumPy.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir

from functrace.core.ir import Literal
from lowering.llvm.codegen import constant, for_range, i64, loop_nest, value_type
from lowering.llvm.registry import kernel_rule
from lowering.llvm.rules.elementwise import extremum


def window_position(
    b: ir.IRBuilder,
    y: ir.Value,
    t: ir.Value,
    *,
    size: int,
    stride: int,
    lo: int,
    base_dilation: int,
    window_dilation: int,
    out_size: int,
    window_size: int,
) -> tuple[ir.Value, ir.Value | None]:
    """One dim of a window: the operand index that tap ``t`` of window ``y`` reads, clamped
    into ``[0, size)``, and an ``i1`` saying whether an element is there (None when it
    always is). ``size`` must be positive."""
    last = (size - 1) * base_dilation
    q = b.sub(b.add(b.mul(y, i64(stride)), b.mul(t, i64(window_dilation))), i64(lo))
    q_max = (out_size - 1) * stride + (window_size - 1) * window_dilation - lo
    if base_dilation == 1 and lo <= 0 and q_max <= last:
        return q, None
    clamped = b.select(b.icmp_signed("<", q, i64(0)), i64(0), q)
    clamped = b.select(b.icmp_signed(">", clamped, i64(last)), i64(last), clamped)
    valid = b.icmp_signed("==", q, clamped)
    if base_dilation == 1:
        return clamped, valid
    valid = b.and_(valid, b.icmp_unsigned("==", b.urem(clamped, i64(base_dilation)), i64(0)))
    return b.udiv(clamped, i64(base_dilation)), valid


def _identity(name: str, dtype: np.dtype):
    """The value of holes and pads (as the eager implementation fills them)."""
    if name == "reduce_window_sum":
        return 0
    if dtype.kind == "f":
        return -np.inf if name == "reduce_window_max" else np.inf
    info = np.iinfo(dtype)
    return info.min if name == "reduce_window_max" else info.max


def _combine(b: ir.IRBuilder, name: str, dtype: np.dtype, acc: ir.Value, x: ir.Value) -> ir.Value:
    """``acc + x``, or the larger / smaller (NaN wins, as ``np.max``)."""
    if name == "reduce_window_sum":
        return b.fadd(acc, x) if dtype.kind == "f" else b.add(acc, x)
    return extremum(b, dtype, ">" if name == "reduce_window_max" else "<", x, acc)


@kernel_rule("reduce_window_sum", "reduce_window_max", "reduce_window_min")
def _reduce_window_lower(ctx, eqn, ins, outs):
    """For each window: fold its taps into a register accumulator (pads give the identity)."""
    (x,) = ins
    (out,) = outs
    name, p = eqn.primitive.name, eqn.params
    dtype = out.aval.dtype
    b = ctx.b
    pad = constant(_identity(name, dtype), dtype)
    if out.aval.size == 0:
        return
    if isinstance(x, Literal):  # a rank-0 operand: one window of one tap
        out.store(b, constant(x.val, dtype), i64(0))
        return
    if x.aval.size == 0:  # every tap is a pad
        with for_range(b, out.aval.size, "w") as i:
            out.store(b, pad, i)
        return
    window = p["window_dimensions"]
    nd = len(window)
    # Trailing dims that the window does not touch (size 1, stride 1, no padding or
    # dilation: channels, in pooling) go innermost, so the tap loops sit outside a
    # contiguous, vectorizable loop that accumulates straight into the output.
    inner = 0
    while inner < nd and _untouched(p, nd - 1 - inner):
        inner += 1
    outer = nd - inner
    out_outer, out_inner = out.aval.shape[:outer], out.aval.shape[outer:]

    def tap(oidx, tidx):
        idx, valid = [], None
        for d, (y, t) in enumerate(zip(oidx, tidx, strict=True)):
            i, ok = window_position(
                b,
                y,
                t,
                size=x.aval.shape[d],
                stride=p["window_strides"][d],
                lo=p["padding"][d][0],
                base_dilation=p["base_dilation"][d],
                window_dilation=p["window_dilation"][d],
                out_size=out.aval.shape[d],
                window_size=window[d],
            )
            idx.append(i)
            valid = ok if valid is None else (valid if ok is None else b.and_(valid, ok))
        return idx, valid

    if inner:
        with loop_nest(b, out_outer, "o") as oidx:
            with loop_nest(b, out_inner, "c") as cidx:
                out.store_at(b, pad, [*oidx, *cidx])
            with loop_nest(b, window[:outer], "t") as tidx:
                idx, valid = tap(oidx, tidx)
                with loop_nest(b, out_inner, "c") as cidx:
                    v = x.load_at(b, [*idx, *cidx])
                    if valid is not None:
                        v = b.select(valid, v, pad)
                    acc = out.load_at(b, [*oidx, *cidx])
                    out.store_at(b, _combine(b, name, dtype, acc, v), [*oidx, *cidx])
        return
    acc_slot = ctx.fl.alloca(value_type(dtype))
    with loop_nest(b, out.aval.shape, "o") as oidx:
        b.store(pad, acc_slot)
        with loop_nest(b, window, "t") as tidx:
            idx, valid = tap(oidx, tidx)
            v = x.load_at(b, idx)
            if valid is not None:
                v = b.select(valid, v, pad)
            b.store(_combine(b, name, dtype, b.load(acc_slot), v), acc_slot)
        out.store_at(b, b.load(acc_slot), oidx)


def _untouched(p: dict, d: int) -> bool:
    """Dim ``d`` of the output equals the operand's: the window does not reach across it."""
    return (
        p["window_dimensions"][d] == 1
        and p["window_strides"][d] == 1
        and tuple(p["padding"][d]) == (0, 0)
        and p["base_dilation"][d] == 1
        and p["window_dilation"][d] == 1
    )
