"""Higher-order primitives: ``cond``, ``scan``, ``while`` and the call-like custom-derivative
primitives, as calls of their lowered sub-functions.

Each sub-IR is lowered once per module (``ModuleBuilder.lower``) into
``void f(ptr ins, ptr outs, ptr ws)`` and called with data pointers: operands are
passed in place (a scanned ``x`` is a pointer into the stacked array), results are
written straight where they belong (a scanned ``y`` into its row of the stacked output).

A sub-function writes its outputs while it still reads its inputs, so a loop never
passes the same buffer as both: the carries *ping-pong* between the output buffers and
one scratch copy, and each step reads the buffers the step before wrote.

Constants embedded in a sub-IR (arrays that a transformation made, e.g. inside a jvp
or vmap of a body) become read-only globals of the module, passed as the callee's
leading inputs as ``FunctionLowering.run`` expects.
"""

from __future__ import annotations

import math
import weakref

import numpy as np
from llvmlite import ir

from functrace.core.abstract import ShapedArray
from functrace.core.ir import Function, Literal
from lowering.llvm.codegen import (
    ALIGN,
    I8,
    I32,
    Buffer,
    KernelContext,
    ModuleBuilder,
    constant,
    for_range,
    i64,
    memory_type,
)
from lowering.llvm.registry import kernel_rule
from lowering.llvm.rules import smallgemm

_Operand = Buffer | Literal

# Per module: the globals holding each lowered sub-function's constants, by id(fn)
# (ModuleBuilder keeps every lowered Function alive, so ids are stable).
_const_globals: weakref.WeakKeyDictionary[ModuleBuilder, dict[int, list[ir.GlobalVariable]]] = (
    weakref.WeakKeyDictionary()
)


# --- helpers --------------------------------------------------------------------------------


def _pointer(ctx: KernelContext, x: _Operand) -> ir.Value:
    """The data pointer of an operand; a scalar literal is stored to a stack slot first."""
    if isinstance(x, Buffer):
        return x.ptr
    slot = ctx.fl.alloca(memory_type(x.aval.dtype))
    value = constant(x.val, x.aval.dtype)
    ctx.b.store(ctx.b.zext(value, I8) if x.aval.dtype == np.bool_ else value, slot)
    return slot


def _const_pointers(ctx: KernelContext, fn: Function) -> list[ir.Value]:
    """Pointers to ``fn``'s embedded constants, as module globals made once per module."""
    table = _const_globals.setdefault(ctx.mb, {})
    globals_ = table.get(id(fn))
    if globals_ is None:
        globals_ = []
        for v, c in zip(fn.constvars, fn.consts, strict=True):
            data = np.ascontiguousarray(np.asarray(c, dtype=v.aval.dtype)).tobytes() or b"\0"
            ty = ir.ArrayType(I8, len(data))
            g = ir.GlobalVariable(ctx.mb.module, ty, ctx.mb.unique("const"))
            g.initializer = ir.Constant(ty, bytearray(data))
            g.global_constant = True
            g.linkage = "internal"
            g.align = ALIGN
            globals_.append(g)
        table[id(fn)] = globals_
    return list(globals_)


def _call(ctx: KernelContext, fn: Function, ins: list[ir.Value], outs: list[ir.Value]) -> None:
    """Call sub-function ``fn``: its constants, then ``ins``; results written to ``outs``.
    No pointer of ``outs`` may be read through ``ins``."""
    ctx.call_function(fn, [*_const_pointers(ctx, fn), *ins], outs)


def _offset(b: ir.IRBuilder, ptr: ir.Value, row: ir.Value, row_bytes: int) -> ir.Value:
    """``ptr`` advanced by ``row`` rows of ``row_bytes`` bytes (a slice of a stacked array)."""
    if row_bytes == 0:
        return ptr
    return b.gep(ptr, [b.mul(row, i64(row_bytes))], inbounds=True, source_etype=I8)


def _row_bytes(buf: Buffer) -> int:
    return math.prod(buf.aval.shape[1:]) * buf.aval.dtype.itemsize


def _copy_into(ctx: KernelContext, dst: Buffer, src: _Operand) -> None:
    if isinstance(src, Literal):
        dst.store(ctx.b, constant(src.val, src.aval.dtype), i64(0))
    else:
        ctx.fl.copy(dst, src)


def _scratch_carries(ctx: KernelContext, outs: list[Buffer]) -> tuple[list[Buffer], list]:
    """One scratch buffer per carry (the other half of the ping-pong), and their frees."""
    pairs = [ctx.fl.scratch_buffer(o.aval) for o in outs]
    return [buf for buf, _ in pairs], [free for _, free in pairs]


# --- cond -----------------------------------------------------------------------------------


@kernel_rule("cond")
def _cond_lower(ctx, eqn, ins, outs):
    """``branches[clamp(index, 0, n - 1)](*operands)``, as the eager impl.

    A ``switch`` on the clamped index: one block per branch, each calling the branch's
    function with the operands in place and the kernel's outputs as its outputs.
    """
    branches = eqn.params["branches"]
    index, operands = ins[0], ins[1:]
    b = ctx.b
    args = [_pointer(ctx, x) for x in operands]
    out_ptrs = [o.ptr for o in outs]
    n = len(branches)
    if isinstance(index, Literal) or n == 1:
        k = 0 if n == 1 else int(np.clip(int(index.val), 0, n - 1))
        _call(ctx, branches[k], args, out_ptrs)
        return
    i = index.load(b, i64(0))
    i = b.select(b.icmp_signed("<", i, ir.Constant(I32, 0)), ir.Constant(I32, 0), i)
    i = b.select(b.icmp_signed(">", i, ir.Constant(I32, n - 1)), ir.Constant(I32, n - 1), i)
    blocks = [b.append_basic_block(f"cond.branch{k}") for k in range(n)]
    end = b.append_basic_block("cond.end")
    switch = b.switch(i, blocks[-1])
    for k, block in enumerate(blocks[:-1]):
        switch.add_case(ir.Constant(I32, k), block)
    for k, block in enumerate(blocks):
        b.position_at_end(block)
        _call(ctx, branches[k], args, out_ptrs)
        b.branch(end)
    b.position_at_end(end)


# --- scan -----------------------------------------------------------------------------------


@kernel_rule("scan")
def _scan_lower(ctx, eqn, ins, outs):
    """``length`` calls of ``body(consts, carry, xs[i]) -> (carry, ys[i])``, ``i`` counting
    down when ``reverse``.

    Step ``j`` reads the carries step ``j - 1`` wrote (the init operands for ``j = 0``)
    and writes the output buffers when ``length - 1 - j`` is even, the scratch copies
    when odd: the last step writes the outputs, and no step reads what it writes.
    ``xs[i]`` and ``ys[i]`` are pointers to row ``i`` of the stacked arrays. A scan of
    length 0 copies the init carries to the outputs.
    """
    p = eqn.params
    body, num_consts, num_carry, length = p["body"], p["num_consts"], p["num_carry"], p["length"]
    consts, init, xs = ins[:num_consts], ins[num_consts : num_consts + num_carry], ins[num_consts + num_carry :]
    carry_out, ys = outs[:num_carry], outs[num_carry:]
    b = ctx.b
    if length == 0:
        for dst, src in zip(carry_out, init, strict=True):
            _copy_into(ctx, dst, src)
        return
    const_ptrs = [_pointer(ctx, c) for c in consts]
    # Weights that the body multiplies by, every step: packed once (rules/smallgemm.py).
    packed = smallgemm.packed_weights(body, num_consts, length)
    ctx.mb.packed_inputs[id(body)] = packed
    packed_frees = []
    for k in sorted(packed):
        w = body.invars[k]
        buf, free = ctx.fl.scratch_buffer(ShapedArray(smallgemm.packed_shape(w), w.aval.dtype))
        smallgemm.pack(ctx, consts[k], buf.ptr)
        const_ptrs[k] = buf.ptr
        packed_frees.append(free)
    init_ptrs = [_pointer(ctx, c) for c in init]
    scratch, frees = _scratch_carries(ctx, carry_out) if length > 1 else ([], [])
    with for_range(b, length, "scan") as j:
        row = b.sub(i64(length - 1), j) if p["reverse"] else j
        remaining = b.sub(i64(length - 1), j)
        to_outputs = b.icmp_unsigned("==", b.and_(remaining, i64(1)), i64(0))
        first = b.icmp_unsigned("==", j, i64(0))
        src, dst = [], []
        for k, (out, start) in enumerate(zip(carry_out, init_ptrs, strict=True)):
            if length == 1:
                src.append(start)
                dst.append(out.ptr)
                continue
            dst.append(b.select(to_outputs, out.ptr, scratch[k].ptr))
            src.append(b.select(first, start, b.select(to_outputs, scratch[k].ptr, out.ptr)))
        x_ptrs = [_offset(b, x.ptr, row, _row_bytes(x)) for x in xs]
        y_ptrs = [_offset(b, y.ptr, row, _row_bytes(y)) for y in ys]
        _call(ctx, body, [*const_ptrs, *src, *x_ptrs], [*dst, *y_ptrs])
    for free in [*frees, *packed_frees]:
        free()


# --- while ----------------------------------------------------------------------------------

# Where the current carries live: the init operands, the outputs, the scratch copies.
_AT_INIT, _AT_OUTPUTS, _AT_SCRATCH = 0, 1, 2


@kernel_rule("while")
def _while_lower(ctx, eqn, ins, outs):
    """``while cond(cond_consts, carry): carry = body(body_consts, carry)``.

    A loop whose state says where the current carries live (init operands, outputs or
    scratch copies); each body call reads them there and writes the other of outputs /
    scratch. On exit, carries not already in the outputs are copied there.
    """
    p = eqn.params
    cond, body, n_cond, n_body = p["cond"], p["body"], p["cond_nconsts"], p["body_nconsts"]
    cond_consts = [_pointer(ctx, x) for x in ins[:n_cond]]
    body_consts = [_pointer(ctx, x) for x in ins[n_cond : n_cond + n_body]]
    init = [_pointer(ctx, x) for x in ins[n_cond + n_body :]]
    b = ctx.b
    scratch, frees = _scratch_carries(ctx, outs)
    pred_slot = ctx.fl.alloca(I8)
    entry = b.block
    header = b.append_basic_block("while.cond")
    loop = b.append_basic_block("while.body")
    done = b.append_basic_block("while.end")
    b.branch(header)
    b.position_at_end(header)
    where = b.phi(I8, name="where")
    where.add_incoming(ir.Constant(I8, _AT_INIT), entry)
    in_outputs = b.icmp_unsigned("==", where, ir.Constant(I8, _AT_OUTPUTS))
    in_init = b.icmp_unsigned("==", where, ir.Constant(I8, _AT_INIT))
    current = [
        b.select(in_init, start, b.select(in_outputs, out.ptr, tmp.ptr))
        for start, out, tmp in zip(init, outs, scratch, strict=True)
    ]
    _call(ctx, cond, [*cond_consts, *current], [pred_slot])
    b.cbranch(b.icmp_unsigned("!=", b.load(pred_slot, typ=I8), ir.Constant(I8, 0)), loop, done)
    b.position_at_end(loop)
    targets = [b.select(in_outputs, tmp.ptr, out.ptr) for out, tmp in zip(outs, scratch, strict=True)]
    _call(ctx, body, [*body_consts, *current], targets)
    where.add_incoming(b.select(in_outputs, ir.Constant(I8, _AT_SCRATCH), ir.Constant(I8, _AT_OUTPUTS)), b.block)
    b.branch(header)
    b.position_at_end(done)
    if any(o.nbytes for o in outs):
        with b.if_then(b.not_(in_outputs)):
            for out, src in zip(outs, current, strict=True):
                ctx.fl.copy(out, Buffer(src, out.aval))
    for free in frees:
        free()


# --- calls ----------------------------------------------------------------------------------


@kernel_rule("custom_jvp_call", "custom_vjp_call", "remat_call")
def _call_lower(ctx, eqn, ins, outs):
    """Outside differentiation a custom-derivative or checkpointed call is its primal
    function (``params["call"]``, closure-converted: captured values lead the operands)."""
    _call(ctx, eqn.params["call"], [_pointer(ctx, x) for x in ins], [o.ptr for o in outs])
