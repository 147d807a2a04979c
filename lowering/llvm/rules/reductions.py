"""Reductions, with their elementwise producers fused into the loop.

Two loop orders, both reading the operand once in memory order where it matters:

- reduced axes last (row sums, the softmax denominator): a register accumulator per
  output element over an inner loop; float sums are marked ``reassoc`` so the inner
  loop vectorizes (the order of additions differs from NumPy's pairwise sum, within
  float rounding);
- otherwise (column sums, the bias gradient): the output starts at the identity and
  the operand is walked in row-major order, each element combined into its output
  element, so the innermost loop is contiguous in both.

``max``/``min`` propagate NaN, as NumPy.
"""

from __future__ import annotations

import numpy as np

from lowering.llvm.codegen import constant, flat_index, loop_nest
from lowering.llvm.registry import kernel_rule
from lowering.llvm.rules.elementwise import extremum


def _identity(name: str, dtype: np.dtype):
    if name == "reduce_sum":
        return 0
    if name == "reduce_prod":
        return 1
    if dtype.kind == "f":
        return -np.inf if name == "reduce_max" else np.inf
    if dtype.kind == "b":
        return name == "reduce_min"
    info = np.iinfo(dtype)
    return info.min if name == "reduce_max" else info.max


def _combine(b, name: str, dtype: np.dtype, acc, x):
    if name in ("reduce_sum", "reduce_prod"):
        if dtype.kind == "f":
            op = b.fadd if name == "reduce_sum" else b.fmul
            return op(acc, x, flags=("reassoc",))
        return (b.add if name == "reduce_sum" else b.mul)(acc, x)
    return extremum(b, dtype, ">" if name == "reduce_max" else "<", x, acc)


@kernel_rule("reduce_sum", "reduce_max", "reduce_min", "reduce_prod")
def _reduce(ctx, eqn, ins, outs):
    (x,) = eqn.inputs
    (out,) = outs
    name = eqn.primitive.name
    axes = tuple(sorted(eqn.params["axes"]))
    shape = x.aval.shape
    dtype = x.aval.dtype
    b = ctx.b
    kept = [d for d in range(len(shape)) if d not in axes]
    kept_shape = [shape[d] for d in kept]
    init = constant(_identity(name, dtype), dtype)
    if axes == tuple(range(len(shape) - len(axes), len(shape))):
        acc_slot = ctx.fl.alloca(init.type)
        with loop_nest(b, kept_shape, "o", outer=ctx.outer) as oidx:
            b.store(init, acc_slot)
            with loop_nest(b, [shape[d] for d in axes], "r") as ridx:
                acc = b.load(acc_slot)
                b.store(_combine(b, name, dtype, acc, ctx.value_at(x, [*oidx, *ridx])), acc_slot)
            out.store(b, b.load(acc_slot), flat_index(b, oidx, kept_shape))
        return
    with loop_nest(b, kept_shape, "o") as oidx:
        out.store(b, init, flat_index(b, oidx, kept_shape))
    with loop_nest(b, shape, "r") as idx:
        o = flat_index(b, [idx[d] for d in kept], kept_shape)
        out.store(b, _combine(b, name, dtype, out.load(b, o), ctx.value_at(x, idx)), o)
