"""Scans along one axis: ``cumsum`` and ``argmax`` / ``argmin``.

Both walk the axis in order for each position of the other dims. When dims follow
the axis, the loop over them is innermost (contiguous, it vectorizes) and the running
state lives in memory: the previous output row for ``cumsum``, scratch rows of best
values and indices for ``argmax``; when the axis is last, it is a register.

``cumsum`` adds in order from the start (from the end with ``reverse``), as
``np.cumsum``, so float results agree bit for bit; integers wrap.
``argmax``/``argmin`` give the first index of the extremum, or of the first NaN (as
NumPy); an empty axis gives 0. The index is computed in 64 bits and converted to
``index_dtype`` (wrapping, as ``np.asarray(..., dtype=index_dtype)``).
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir

from functrace.core.abstract import ShapedArray
from lowering.llvm.codegen import I64, constant, for_range, i64, loop_nest, value_type
from lowering.llvm.registry import kernel_rule


def _split(shape: tuple[int, ...], axis: int) -> tuple[list[int], int, list[int]]:
    """``(dims before axis, axis size, dims after)``."""
    return list(shape[:axis]), shape[axis], list(shape[axis + 1 :])


def _at(outer, k, inner) -> list:
    """The multi-index with ``k`` on the scanned axis."""
    return [*outer, k, *inner]


@kernel_rule("cumsum")
def _cumsum_lower(ctx, eqn, ins, outs):
    """``out[.., k, ..] = out[.., k -/+ 1, ..] + x[.., k, ..]`` in axis order."""
    (x,) = ins
    (out,) = outs
    axis, reverse = eqn.params["axis"], eqn.params["reverse"]
    dtype = out.aval.dtype
    before, n, after = _split(out.aval.shape, axis)
    if out.aval.size == 0:
        return
    b = ctx.b
    add = b.fadd if dtype.kind == "f" else b.add
    first = i64(n - 1 if reverse else 0)

    def axis_index(j: ir.Value) -> tuple[ir.Value, ir.Value]:
        """Step ``j`` of the scan (after the first element): ``(k, previous k)``."""
        if reverse:
            k = b.sub(i64(n - 2), j)
            return k, b.add(k, i64(1))
        k = b.add(j, i64(1))
        return k, j

    if math.prod(after) == 1:
        after_idx = [i64(0)] * len(after)
        acc_slot = ctx.fl.alloca(value_type(dtype))
        with loop_nest(b, before, "o") as o:
            acc = x.load_at(b, _at(o, first, after_idx))
            b.store(acc, acc_slot)
            out.store_at(b, acc, _at(o, first, after_idx))
            with for_range(b, n - 1, "k") as j:
                k, _ = axis_index(j)
                acc = add(b.load(acc_slot), x.load_at(b, _at(o, k, after_idx)))
                b.store(acc, acc_slot)
                out.store_at(b, acc, _at(o, k, after_idx))
        return
    with loop_nest(b, before, "o") as o:
        with loop_nest(b, after, "i") as i:
            out.store_at(b, x.load_at(b, _at(o, first, i)), _at(o, first, i))
        with for_range(b, n - 1, "k") as j:
            k, prev = axis_index(j)
            with loop_nest(b, after, "i") as i:
                value = add(out.load_at(b, _at(o, prev, i)), x.load_at(b, _at(o, k, i)))
                out.store_at(b, value, _at(o, k, i))


def _better(b: ir.IRBuilder, name: str, dtype: np.dtype, v: ir.Value, best: ir.Value) -> ir.Value:
    """Whether ``v`` replaces ``best``: strictly better, or the first NaN."""
    pred = ">" if name == "argmax" else "<"
    if dtype.kind == "f":
        first_nan = b.and_(b.fcmp_unordered("uno", v, v), b.fcmp_ordered("ord", best, best))
        return b.or_(b.fcmp_ordered(pred, v, best), first_nan)
    cmp = b.icmp_signed if dtype.kind == "i" else b.icmp_unsigned
    return cmp(pred, v, best)


def _to_index(b: ir.IRBuilder, i: ir.Value, index_dtype: np.dtype) -> ir.Value:
    """An i64 index as ``index_dtype`` (truncated, as NumPy's conversion wraps)."""
    ty = value_type(index_dtype)
    return i if ty == I64 else b.trunc(i, ty)


@kernel_rule("argmax", "argmin")
def _arg_extremum_lower(ctx, eqn, ins, outs):
    """Scan the axis keeping the best value and its index (see the module docstring)."""
    (x,) = ins
    (out,) = outs
    name = eqn.primitive.name
    (axis,) = eqn.params["axes"]
    dtype, index_dtype = x.aval.dtype, out.aval.dtype
    before, n, after = _split(x.aval.shape, axis)
    b = ctx.b
    if out.aval.size == 0:
        return
    if n == 0:
        with for_range(b, out.aval.size, "z") as i:
            out.store(b, constant(0, index_dtype), i)
        return
    if math.prod(after) == 1:
        after_idx = [i64(0)] * len(after)
        best_slot, index_slot = ctx.fl.alloca(value_type(dtype)), ctx.fl.alloca(I64)
        with loop_nest(b, before, "o") as o:
            b.store(x.load_at(b, _at(o, i64(0), after_idx)), best_slot)
            b.store(i64(0), index_slot)
            with for_range(b, n - 1, "k") as j:
                k = b.add(j, i64(1))
                v, best = x.load_at(b, _at(o, k, after_idx)), b.load(best_slot)
                take = _better(b, name, dtype, v, best)
                b.store(b.select(take, v, best), best_slot)
                b.store(b.select(take, k, b.load(index_slot)), index_slot)
            out.store_at(b, _to_index(b, b.load(index_slot), index_dtype), [*o, *after_idx])
        return
    best, free_best = ctx.fl.scratch_buffer(ShapedArray(tuple(after), dtype))
    index, free_index = ctx.fl.scratch_buffer(ShapedArray(tuple(after), np.dtype(np.int64)))
    with loop_nest(b, before, "o") as o:
        with loop_nest(b, after, "i") as i:
            best.store_at(b, x.load_at(b, _at(o, i64(0), i)), i)
            index.store_at(b, i64(0), i)
        with for_range(b, n - 1, "k") as j:
            k = b.add(j, i64(1))
            with loop_nest(b, after, "i") as i:
                v, current = x.load_at(b, _at(o, k, i)), best.load_at(b, i)
                take = _better(b, name, dtype, v, current)
                best.store_at(b, b.select(take, v, current), i)
                index.store_at(b, b.select(take, k, index.load_at(b, i)), i)
        with loop_nest(b, after, "i") as i:
            out.store_at(b, _to_index(b, index.load_at(b, i), index_dtype), [*o, *i])
    free_index()
    free_best()
