"""Index rules: the result at a multi-index is one operand element (or an index).

These fuse: a ``transpose`` or ``broadcast_in_dim`` inside a kernel is only index
arithmetic, never a copy. ``reshape`` shares its operand's buffer (row-major order
is unchanged) and copies only when its result must live in an output buffer.
"""

from __future__ import annotations

from functrace.core.ir import Literal
from lowering.llvm.codegen import constant, i64, value_type
from lowering.llvm.registry import alias_primitives, index_rule, kernel_rule


@index_rule("broadcast_in_dim")
def _broadcast_in_dim(ctx, eqn, idx):
    (x,) = eqn.inputs
    dims = eqn.params["broadcast_dimensions"]
    operand_idx = [i64(0) if x.aval.shape[k] == 1 else idx[d] for k, d in enumerate(dims)]
    return ctx.value_at(x, operand_idx)


@index_rule("transpose")
def _transpose(ctx, eqn, idx):
    (x,) = eqn.inputs
    perm = eqn.params["permutation"]
    operand_idx = [None] * len(perm)
    for out_axis, in_axis in enumerate(perm):
        operand_idx[in_axis] = idx[out_axis]
    return ctx.value_at(x, operand_idx)


@index_rule("squeeze")
def _squeeze(ctx, eqn, idx):
    (x,) = eqn.inputs
    dims = set(eqn.params["dimensions"])
    it = iter(idx)
    return ctx.value_at(x, [i64(0) if k in dims else next(it) for k in range(x.aval.ndim)])


@index_rule("expand_dims")
def _expand_dims(ctx, eqn, idx):
    (x,) = eqn.inputs
    dims = set(eqn.params["dimensions"])
    return ctx.value_at(x, [i for k, i in enumerate(idx) if k not in dims])


@index_rule("rev")
def _rev(ctx, eqn, idx):
    (x,) = eqn.inputs
    dims = set(eqn.params["dimensions"])
    b = ctx.b
    operand_idx = [b.sub(i64(x.aval.shape[k] - 1), i) if k in dims else i for k, i in enumerate(idx)]
    return ctx.value_at(x, operand_idx)


@index_rule("slice")
def _slice(ctx, eqn, idx):
    (x,) = eqn.inputs
    starts = eqn.params["start_indices"]
    steps = eqn.params["strides"] or (1,) * len(starts)
    b = ctx.b
    operand_idx = []
    for i, start, step in zip(idx, starts, steps, strict=True):
        j = i if step == 1 else b.mul(i, i64(step))
        operand_idx.append(j if start == 0 else b.add(j, i64(start)))
    return ctx.value_at(x, operand_idx)


@index_rule("iota")
def _iota(ctx, eqn, idx):
    i = idx[eqn.params["dimension"]]
    dtype = eqn.outvars[0].aval.dtype
    if dtype.itemsize == 8 and dtype.kind in "iu":
        return i
    if dtype.kind in "iu":
        return ctx.b.trunc(i, value_type(dtype))
    return ctx.b.sitofp(i, value_type(dtype))


@index_rule("pad")
def _pad(ctx, eqn, idx):
    """Inside the operand's image (``lo + k * (interior + 1)``) its element, else the
    padding value; the operand is read at a clamped index, so never out of bounds."""
    x, value = eqn.inputs
    b = ctx.b
    pad_value = ctx.value_at(value, ())
    if 0 in x.aval.shape:
        return pad_value
    inside = None
    operand_idx = []
    for i, (lo, _, interior), n in zip(idx, eqn.params["padding_config"], x.aval.shape, strict=True):
        j = b.sub(i, i64(lo)) if lo else i
        step = interior + 1
        if step > 1:
            k = b.sdiv(j, i64(step))
            ok = b.and_(b.icmp_signed(">=", j, i64(0)), b.icmp_signed("==", b.srem(j, i64(step)), i64(0)))
        else:
            k = j
            ok = b.icmp_signed(">=", j, i64(0))
        ok = b.and_(ok, b.icmp_signed("<", k, i64(n)))
        inside = ok if inside is None else b.and_(inside, ok)
        k = b.select(b.icmp_signed("<", k, i64(0)), i64(0), k)
        operand_idx.append(b.select(b.icmp_signed(">", k, i64(n - 1)), i64(n - 1), k))
    if inside is None:  # rank 0
        return ctx.value_at(x, ())
    return b.select(inside, ctx.value_at(x, operand_idx), pad_value)


alias_primitives.add("reshape")


@kernel_rule("reshape")
def _reshape(ctx, eqn, ins, outs):
    """A reshape that must own its buffer (an output): a copy of the operand."""
    (src,) = ins
    if isinstance(src, Literal):
        outs[0].store(ctx.b, constant(src.val, src.aval.dtype), i64(0))
    else:
        ctx.fl.copy(outs[0], src)
