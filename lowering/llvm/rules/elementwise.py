"""Scalar rules: elementwise primitives on register values.

Semantics follow the eager implementation (``functrace.lax.elementwise``) exactly
where NumPy defines them: NaN propagates through ``max``/``min``, integer division
and remainder by zero give 0 (and ``INT_MIN / -1`` wraps, as NumPy), shifts by the
bit width or more give 0, float → int conversion saturates (NaN → 0; NumPy leaves
out-of-range conversions undefined). No fast-math flags: results are IEEE.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir

from lowering.llvm import mathlib
from lowering.llvm.codegen import I1, constant, value_type
from lowering.llvm.registry import scalar_rule


def _dtype(eqn, k: int = 0) -> np.dtype:
    return eqn.inputs[k].aval.dtype


def _out_dtype(eqn) -> np.dtype:
    return eqn.outvars[0].aval.dtype


def _intrinsic(ctx, name: str, x: ir.Value, *rest: ir.Value) -> ir.Value:
    ty = x.type
    suffix = "f32" if ty == ir.FloatType() else "f64"
    fn = ctx.mb.declare(f"llvm.{name}.{suffix}", ty, [ty] * (1 + len(rest)))
    return ctx.b.call(fn, [x, *rest])


def _zero(dtype):
    return constant(0, dtype)


# --- arithmetic ---------------------------------------------------------------------------


@scalar_rule("neg")
def _neg(ctx, eqn, args):
    (x,) = args
    return ctx.b.fneg(x) if _dtype(eqn).kind == "f" else ctx.b.sub(_zero(_dtype(eqn)), x)


@scalar_rule("add")
def _add(ctx, eqn, args):
    return (ctx.b.fadd if _dtype(eqn).kind == "f" else ctx.b.add)(*args)


@scalar_rule("sub")
def _sub(ctx, eqn, args):
    return (ctx.b.fsub if _dtype(eqn).kind == "f" else ctx.b.sub)(*args)


@scalar_rule("mul")
def _mul(ctx, eqn, args):
    return (ctx.b.fmul if _dtype(eqn).kind == "f" else ctx.b.mul)(*args)


def _safe_divisor(ctx, dtype, x, y):
    """``(y', zero, overflow)``: a divisor that cannot trap, and the two special cases."""
    b = ctx.b
    zero = b.icmp_unsigned("==", y, _zero(dtype))
    if dtype.kind == "i":
        lowest = constant(np.iinfo(dtype).min, dtype)
        overflow = b.and_(b.icmp_signed("==", x, lowest), b.icmp_signed("==", y, constant(-1, dtype)))
    else:
        overflow = ir.Constant(I1, 0)
    safe = b.select(b.or_(zero, overflow), constant(1, dtype), y)
    return safe, zero, overflow


@scalar_rule("div")
def _div(ctx, eqn, args):
    x, y = args
    dtype = _dtype(eqn)
    b = ctx.b
    if dtype.kind == "f":
        return b.fdiv(x, y)
    safe, zero, overflow = _safe_divisor(ctx, dtype, x, y)
    q = b.sdiv(x, safe) if dtype.kind == "i" else b.udiv(x, safe)
    q = b.select(overflow, x, q)  # INT_MIN / -1 wraps to INT_MIN
    return b.select(zero, _zero(dtype), q)


@scalar_rule("rem")
def _rem(ctx, eqn, args):
    x, y = args
    dtype = _dtype(eqn)
    b = ctx.b
    if dtype.kind == "f":
        return b.frem(x, y)
    safe, zero, overflow = _safe_divisor(ctx, dtype, x, y)
    r = b.srem(x, safe) if dtype.kind == "i" else b.urem(x, safe)
    return b.select(b.or_(zero, overflow), _zero(dtype), r)


def extremum(b: ir.IRBuilder, dtype: np.dtype, pred: str, x: ir.Value, y: ir.Value) -> ir.Value:
    """``x`` if ``x pred y`` else ``y`` (``pred`` is ">" for max, "<" for min), NaN winning
    as in ``np.maximum``; shared by the reductions and windows."""
    if dtype.kind == "f":
        r = b.select(b.fcmp_ordered(pred, x, y), x, y)
        return b.select(b.fcmp_unordered("uno", x, x), x, r)
    cmp = b.icmp_signed if dtype.kind == "i" else b.icmp_unsigned
    return b.select(cmp(pred, x, y), x, y)


def _extremum(ctx, eqn, args, pred: str):
    return extremum(ctx.b, _dtype(eqn), pred, *args)


@scalar_rule("max")
def _max(ctx, eqn, args):
    return _extremum(ctx, eqn, args, ">")


@scalar_rule("min")
def _min(ctx, eqn, args):
    return _extremum(ctx, eqn, args, "<")


@scalar_rule("sign")
def _sign(ctx, eqn, args):
    (x,) = args
    dtype = _dtype(eqn)
    b = ctx.b
    one, minus = constant(1, dtype), constant(-1, dtype)
    if dtype.kind == "f":
        pos = b.select(b.fcmp_ordered(">", x, _zero(dtype)), one, x)
        return b.select(b.fcmp_ordered("<", x, _zero(dtype)), minus, pos)  # keeps ±0 and NaN
    if dtype.kind == "u":
        return b.zext(b.icmp_unsigned("!=", x, _zero(dtype)), x.type)
    pos = b.zext(b.icmp_signed(">", x, _zero(dtype)), x.type)
    neg = b.zext(b.icmp_signed("<", x, _zero(dtype)), x.type)
    return b.sub(pos, neg)


@scalar_rule("abs")
def _abs(ctx, eqn, args):
    (x,) = args
    dtype = _dtype(eqn)
    if dtype.kind == "f":
        return _intrinsic(ctx, "fabs", x)
    if dtype.kind == "u":
        return x
    b = ctx.b
    return b.select(b.icmp_signed("<", x, _zero(dtype)), b.sub(_zero(dtype), x), x)


@scalar_rule("pow")
def _pow(ctx, eqn, args):
    x, y = args
    dtype = _dtype(eqn)
    if dtype.kind == "f":
        return ctx.call_math("pow", [x, y])
    return _integer_power(ctx, dtype, x, y)


def _integer_power(ctx, dtype, x, y):
    """``x ** y`` by squaring in a helper function; negative ``y`` as the eager rule."""
    name = f"functrace_ipow_{dtype.name}"
    mod = ctx.mb.module
    ty = x.type
    fn = mod.globals.get(name)
    if fn is None:
        fn = ir.Function(mod, ir.FunctionType(ty, [ty, ty]), name)
        fn.linkage = "internal"
        fn.attributes.add("nounwind")
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        base, exp = fn.args
        loop = fn.append_basic_block("loop")
        done = fn.append_basic_block("done")
        entry = b.block
        signed = dtype.kind == "i"
        negative = b.icmp_signed("<", exp, _zero(dtype)) if signed else ir.Constant(I1, 0)
        e0 = b.select(negative, _zero(dtype), exp)
        b.branch(loop)
        b.position_at_end(loop)
        acc = b.phi(ty)
        bb = b.phi(ty)
        ee = b.phi(ty)
        acc.add_incoming(constant(1, dtype), entry)
        bb.add_incoming(base, entry)
        ee.add_incoming(e0, entry)
        odd = b.trunc(ee, I1)
        acc2 = b.select(odd, b.mul(acc, bb), acc)
        bb2 = b.mul(bb, bb)
        ee2 = b.lshr(ee, constant(1, dtype))
        acc.add_incoming(acc2, loop)
        bb.add_incoming(bb2, loop)
        ee.add_incoming(ee2, loop)
        b.cbranch(b.icmp_unsigned("!=", ee2, _zero(dtype)), loop, done)
        b.position_at_end(done)
        result = b.select(b.icmp_unsigned("==", e0, _zero(dtype)), constant(1, dtype), acc2)
        if signed:
            one, minus = constant(1, dtype), constant(-1, dtype)
            odd_exp = b.trunc(exp, I1)
            neg_val = b.select(
                b.icmp_signed("==", base, one),
                one,
                b.select(b.icmp_signed("==", base, minus), b.select(odd_exp, minus, one), _zero(dtype)),
            )
            result = b.select(negative, neg_val, result)
        b.ret(result)
    return ctx.b.call(fn, [x, y])


@scalar_rule("integer_pow")
def _integer_pow(ctx, eqn, args):
    (x,) = args
    y = eqn.params["y"]
    dtype = _dtype(eqn)
    b = ctx.b
    mul = b.fmul if dtype.kind == "f" else b.mul
    acc, base, n = None, x, abs(y)
    while n:
        if n & 1:
            acc = base if acc is None else mul(acc, base)
        n >>= 1
        if n:
            base = mul(base, base)
    if acc is None:
        acc = constant(1, dtype)
    return b.fdiv(constant(1, dtype), acc) if y < 0 else acc


# --- rounding and math --------------------------------------------------------------------


@scalar_rule("floor")
def _floor(ctx, eqn, args):
    return _intrinsic(ctx, "floor", *args)


@scalar_rule("ceil")
def _ceil(ctx, eqn, args):
    return _intrinsic(ctx, "ceil", *args)


@scalar_rule("round")
def _round(ctx, eqn, args):
    return _intrinsic(ctx, "roundeven", *args)  # half to even, as NumPy


@scalar_rule("sqrt")
def _sqrt(ctx, eqn, args):
    return _intrinsic(ctx, "sqrt", *args)


@scalar_rule("rsqrt")
def _rsqrt(ctx, eqn, args):
    (x,) = args
    return ctx.b.fdiv(constant(1, _dtype(eqn)), _intrinsic(ctx, "sqrt", x))


def _math(name: str):
    def rule(ctx, eqn, args):
        return ctx.call_math(name, args)

    return rule


for _name in ("log", "log1p", "expm1", "sin", "cos", "erf"):
    scalar_rule(_name)(_math(_name))


def _inline_f32(name: str, inline):
    """float32: the inline polynomial of ``mathlib`` (vectorizes in place); float64: libm/libmvec."""

    def rule(ctx, eqn, args):
        if _dtype(eqn) == np.float32:
            return inline(ctx, *args)
        return ctx.call_math(name, args)

    return rule


scalar_rule("exp")(_inline_f32("exp", mathlib.exp_f32))
scalar_rule("tanh")(_inline_f32("tanh", mathlib.tanh_f32))


@scalar_rule("logistic")
def _logistic(ctx, eqn, args):
    # With e = exp(-|x|) (at most 1, never overflows): 1 / (1 + e) for x >= 0, e / (1 + e)
    # below, which keeps the tiny values of very negative x (down to the denormals).
    (x,) = args
    if _dtype(eqn) == np.float32:
        return mathlib.logistic_f32(ctx, x)
    one = constant(1, _dtype(eqn))
    b = ctx.b
    e = ctx.call_math("exp", [b.fneg(_intrinsic(ctx, "fabs", x))])
    num = b.select(b.fcmp_ordered("<", x, _zero(_dtype(eqn))), e, one)  # NaN: e is NaN
    return b.fdiv(num, b.fadd(one, e))


@scalar_rule("is_finite")
def _is_finite(ctx, eqn, args):
    (x,) = args
    inf = constant(np.inf, _dtype(eqn))
    return ctx.b.fcmp_ordered("<", _intrinsic(ctx, "fabs", x), inf)


# --- comparisons, logic, bits ----------------------------------------------------------------


def _compare(pred: str):
    def rule(ctx, eqn, args):
        x, y = args
        dtype = _dtype(eqn)
        b = ctx.b
        if dtype.kind == "f":
            return b.fcmp_unordered(pred, x, y) if pred == "!=" else b.fcmp_ordered(pred, x, y)
        if dtype.kind == "i":
            return b.icmp_signed(pred, x, y)
        return b.icmp_unsigned(pred, x, y)

    return rule


for _name, _pred in (("eq", "=="), ("ne", "!="), ("lt", "<"), ("le", "<="), ("gt", ">"), ("ge", ">=")):
    scalar_rule(_name)(_compare(_pred))


@scalar_rule("not")
def _not(ctx, eqn, args):
    return ctx.b.not_(*args)


@scalar_rule("and")
def _and(ctx, eqn, args):
    return ctx.b.and_(*args)


@scalar_rule("or")
def _or(ctx, eqn, args):
    return ctx.b.or_(*args)


@scalar_rule("xor")
def _xor(ctx, eqn, args):
    return ctx.b.xor(*args)


def _bits(eqn) -> int:
    return _dtype(eqn).itemsize * 8


def _logical_shift(op: str):
    """``shift_left`` / ``shift_right_logical``: 0 for a shift by the bit width or more (a
    negative shift is a huge unsigned value), as the eager rule."""

    def rule(ctx, eqn, args):
        x, y = args
        b = ctx.b
        zero = _zero(_dtype(eqn))
        in_range = b.icmp_unsigned("<", y, constant(_bits(eqn), _dtype(eqn)))
        return b.select(in_range, getattr(b, op)(x, b.select(in_range, y, zero)), zero)

    return rule


scalar_rule("shift_left")(_logical_shift("shl"))
scalar_rule("shift_right_logical")(_logical_shift("lshr"))


@scalar_rule("shift_right_arithmetic")
def _shift_right_arithmetic(ctx, eqn, args):
    x, y = args
    dtype = _dtype(eqn)
    b = ctx.b
    top = constant(_bits(eqn) - 1, dtype)
    if dtype.kind == "i":
        y = b.select(b.icmp_signed("<", y, _zero(dtype)), _zero(dtype), y)
        y = b.select(b.icmp_signed(">", y, top), top, y)
    else:
        y = b.select(b.icmp_unsigned(">", y, top), top, y)
    return b.ashr(x, y) if dtype.kind == "i" else b.lshr(x, y)  # NumPy shifts unsigned logically


# --- select, conversion ----------------------------------------------------------------------


@scalar_rule("select")
def _select(ctx, eqn, args):
    pred, on_true, on_false = args
    return ctx.b.select(pred, on_true, on_false)


@scalar_rule("stop_gradient")
def _identity(ctx, eqn, args):
    return args[0]


@scalar_rule("convert_element_type")
def _convert(ctx, eqn, args):
    (x,) = args
    src, dst = _dtype(eqn), np.dtype(_out_dtype(eqn))
    b = ctx.b
    ty = value_type(dst)
    if src == dst:
        return x
    if dst.kind == "b":
        if src.kind == "f":
            return b.fcmp_unordered("!=", x, constant(0, src))  # NaN is True, as NumPy
        return b.icmp_unsigned("!=", x, constant(0, src))
    if src.kind == "f" and dst.kind == "f":
        return b.fpext(x, ty) if dst.itemsize > src.itemsize else b.fptrunc(x, ty)
    if src.kind == "f":
        name = "fptosi" if dst.kind == "i" else "fptoui"
        src_name = "f32" if src.itemsize == 4 else "f64"
        fn = ctx.mb.declare(f"llvm.{name}.sat.i{dst.itemsize * 8}.{src_name}", ty, [x.type])
        return b.call(fn, [x])
    if dst.kind == "f":
        return b.sitofp(x, ty) if src.kind == "i" else b.uitofp(x, ty)
    # integer or bool to integer
    if dst.itemsize * 8 == x.type.width:
        return x
    if dst.itemsize * 8 < x.type.width:
        return b.trunc(x, ty)
    return b.sext(x, ty) if src.kind == "i" else b.zext(x, ty)
