"""Math functions: inline float32 exp, tanh and logistic; libm calls for the rest.

float32 ``exp``, ``tanh`` and ``logistic`` are emitted inline (``exp_f32``, ``tanh_f32``,
``logistic_f32`` below): straight-line IR that the loop vectorizer widens in place, with no
call. Every other function, and float64, is a libm call: a plain call to ``logf`` keeps a
loop scalar, but declared pure and given the ``vector-function-abi-variant`` attribute
naming glibc libmvec's SIMD versions (``_ZGVeN16v_logf`` for AVX-512, ``_ZGVdN8v_logf`` for
AVX2), the call vectorizes: the loop vectorizer swaps in the 16- or 8-lane function. The
variants are offered only when libmvec loads and the CPU has the instruction set; otherwise
the loop calls libm one element at a time (correct, slower).

Accuracy: libmvec documents at most 4 ULP from the correctly rounded result for every
function here; the inline functions stay within 2 ULP over all float32 inputs.
``tests/test_llvm_elementwise.py`` checks the bounds against NumPy in wider precision on
random and edge inputs (and a dense sample of all float32 for the inline functions).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

from llvmlite import ir

F32 = ir.FloatType()
I32 = ir.IntType(32)

# name -> number of arguments
FUNCTIONS = {"exp": 1, "log": 1, "sin": 1, "cos": 1, "tanh": 1, "erf": 1, "log1p": 1, "expm1": 1, "pow": 2}


def call(ctx, name: str, args: Sequence[ir.Value]) -> ir.Value:
    """``name(*args)`` in the type of ``args[0]`` (``expf`` for float, ``exp`` for double)."""
    ty = args[0].type
    symbol = name + ("f" if isinstance(ty, ir.FloatType) else "")
    fn = ctx.mb.declare(symbol, ty, [ty] * len(args))
    ctx.mb.math_functions.add(symbol)
    return ctx.b.call(fn, list(args))


def _variants(symbol: str, isa: Sequence[str]) -> list[tuple[str, int, str]]:
    """``(vector symbol, lanes, element type)`` for the ISAs available."""
    single = symbol.endswith("f") and symbol[:-1] in FUNCTIONS
    base = symbol[:-1] if single else symbol
    arity = FUNCTIONS[base]
    out = []
    for code in isa:
        lanes = {("e", True): 16, ("e", False): 8, ("d", True): 8, ("d", False): 4}[(code, single)]
        out.append((f"_ZGV{code}N{lanes}{'v' * arity}_{symbol}", lanes, "float" if single else "double"))
    return out


def _novec(text: str) -> str:
    """Make the ``functrace.novec`` marker node a loop ID: distinct, self-referential, with
    ``llvm.loop.vectorize.enable`` false."""
    match = re.search(r'^(![0-9]+) = !\{ ?!"functrace\.novec" ?\}$', text, flags=re.MULTILINE)
    if match is None:
        return text
    node = match.group(1)
    loop_id = f'{node} = distinct !{{{node}, !{{!"llvm.loop.vectorize.enable", i1 false}}}}'
    return text[: match.start()] + loop_id + text[match.end() :]


def annotate(text: str, symbols: Sequence[str], isa: Sequence[str]) -> str:
    """Give the math declarations in module text their purity and SIMD-variant attributes,
    and every defined function a 512-bit preferred vector width when AVX-512 is used."""
    text = _novec(text)
    extra: list[str] = []
    used: list[str] = []
    for k, symbol in enumerate(sorted(symbols)):
        variants = _variants(symbol, isa)
        arity = FUNCTIONS[symbol[:-1] if symbol.endswith("f") and symbol[:-1] in FUNCTIONS else symbol]
        abi = ",".join(f"_ZGV_LLVM_N{lanes}{'v' * arity}_{symbol}({vec})" for vec, lanes, _ in variants)
        attrs = "nounwind willreturn memory(none)"
        if abi:
            attrs += f' "vector-function-abi-variant"="{abi}"'
        group = 100 + k
        extra.append(f"attributes #{group} = {{ {attrs} }}")
        text = re.sub(
            rf'^(declare [^\n]* @"?{re.escape(symbol)}"?\([^\n]*\))[^\n]*$',
            rf"\1 #{group}",
            text,
            flags=re.MULTILINE,
        )
        for vec, lanes, elem in variants:
            vty = f"<{lanes} x {elem}>"
            extra.append(f"declare {vty} @{vec}({', '.join([vty] * arity)})")
            used.append(vec)
    if "e" in isa:
        lines = text.split("\n")
        for n, line in enumerate(lines):
            if line.startswith("define "):
                brace = line.endswith("{")
                lines[n] = (line[:-1].rstrip() if brace else line) + " #99" + (" {" if brace else "")
        text = "\n".join(lines)
        extra.append('attributes #99 = { "prefer-vector-width"="512" }')
    if used:
        refs = ", ".join(f"ptr @{u}" for u in used)
        extra.append(f'@llvm.compiler.used = appending global [{len(used)} x ptr] [{refs}], section "llvm.metadata"')
    return text + "\n" + "\n".join(extra) + "\n"


# --- inline float32 exp, tanh and logistic ------------------------------------------------------
#
# Straight-line IR (fma, bit casts, integer ops, selects, one fdiv; no calls, no branches), so
# the loop vectorizer turns each into 16-lane AVX-512 code inside the loop itself, and nothing
# is spent on calls. exp(y) = 2^n exp(r) with n = round(y / ln 2) and |r| <= ln2 / 2 (Cody and
# Waite's two-constant ln 2), exp(r) - 1 = r + r^2 q(r) by a relative-error minimax (Remez)
# polynomial of degree 6, rounded to float32 (relative error of the fit 3.1e-9). The scaling
# by 2^n is ``llvm.ldexp`` (one ``vscalefps`` with AVX-512: overflow to inf, denormals rounded
# once), or with other instruction sets two multiplies by powers of 2 built in the exponent
# bits (``llvm.ldexp`` there is a libm call per element).

# exp(r) = 1 + r + r^2 q(r), q(r) = sum(_EXP_Q[k] r^k).
_EXP_Q = (0.4999999403953552, 0.1666652113199234, 0.04166838526725769, 0.008368723094463348, 0.0013814896810799837)
# ln 2 = _LN2_HI + _LN2_LO; _LN2_HI has 15 significant bits, so n * _LN2_HI is exact for
# |n| < 512 and y - n * _LN2_HI is exact (Sterbenz).
_LN2_HI = float.fromhex("0x1.62e4p-1")
_LN2_LO = float.fromhex("0x1.7f7d1cp-20")
_LN2 = float.fromhex("0x1.62e430p-1")  # float32(ln 2)
_LOG2E = float.fromhex("0x1.715476p+0")
_ROUND = float.fromhex("0x1.8p23")  # v + _ROUND rounds |v| < 2^22 to an integer, held in the low bits
_ROUND_BITS = 0x4B400000
_EXP_HI = 89.0  # exp overflows from 88.7228: clamped here, n = 128 and the result is still inf
_EXP_LO = -104.0  # exp rounds to 0 below -103.973: clamped here, the result is still 0
_TANH_HI = 10.0  # tanh(x) rounds to 1 from |x| = 9.01; |x| is clamped here
# expm1(2r) / 2 = r + r^2 2q(2r): _EXP_Q scaled by powers of 2 (exactly).
_TANH_EXP_Q = tuple(c * 2.0 ** (k + 1) for k, c in enumerate(_EXP_Q))


@functools.cache
def _scalef_available() -> bool:
    """Whether ``llvm.ldexp`` becomes ``vscalefps`` (AVX-512) rather than a libm call."""
    from lowering.llvm import engine

    return "+avx512f" in engine.cpu_features().split(",")


class _F32:
    """Float32 IR helpers on a rule's builder."""

    def __init__(self, ctx):
        self.b = ctx.b
        self.mb = ctx.mb

    def c(self, value: float) -> ir.Constant:
        return ir.Constant(F32, value)

    def i(self, value: int) -> ir.Constant:
        return ir.Constant(I32, value)

    def intrinsic(self, name: str, *args: ir.Value) -> ir.Value:
        fn = self.mb.declare(f"llvm.{name}.f32", F32, [F32] * len(args))
        return self.b.call(fn, list(args))

    def fma(self, a: ir.Value, b: ir.Value, c: ir.Value) -> ir.Value:
        return self.intrinsic("fma", a, b, c)

    def below(self, x: ir.Value, high: float) -> ir.Value:
        """``min(x, high)``; NaN stays NaN (the ordered compare is false)."""
        return self.b.select(self.b.fcmp_ordered(">", x, self.c(high)), self.c(high), x)

    def above(self, x: ir.Value, low: float) -> ir.Value:
        """``max(x, low)``; NaN stays NaN."""
        return self.b.select(self.b.fcmp_ordered("<", x, self.c(low)), self.c(low), x)

    def pow2(self, n: ir.Value) -> ir.Value:
        """``2 ** n`` for an integer ``-126 <= n <= 127``: the exponent field."""
        b = self.b
        return b.bitcast(b.shl(b.add(n, self.i(127)), self.i(23)), F32)

    def reduce(self, y: ir.Value, scale: float = 1.0, exact: bool = True) -> tuple[ir.Value, ir.Value]:
        """``(n, r)`` with ``scale y = n ln2 + scale r``: ``n = round(scale y / ln2)`` as an i32
        and ``|r| <= ln2 / (2 scale)``, for a finite ``|y| <= 2^21`` (NaN gives a NaN ``r``; ``n``
        is then meaningless but never poison). ``exact``: ln 2 in two constants (Cody and Waite),
        so ``r`` has one rounding; else in one (an error of ``n 2e-9`` in ``r``)."""
        b = self.b
        t = self.fma(y, self.c(_LOG2E * scale), self.c(_ROUND))
        n = b.sub(b.bitcast(t, I32), self.i(_ROUND_BITS))
        nf = b.fsub(t, self.c(_ROUND))
        if not exact:
            return n, self.fma(nf, self.c(-_LN2 / scale), y)
        r = self.fma(nf, self.c(-_LN2_HI / scale), y)  # exact
        return n, self.fma(nf, self.c(-_LN2_LO / scale), r)

    def poly(self, r: ir.Value, coefficients: Sequence[float]) -> ir.Value:
        """``sum(c_k r^k)`` by Horner's rule."""
        acc = self.c(coefficients[-1])
        for k in reversed(coefficients[:-1]):
            acc = self.fma(acc, r, self.c(k))
        return acc

    def exp_reduced(self, r: ir.Value) -> ir.Value:
        """``exp(r)`` for ``|r| <= ln2 / 2``, in [0.70, 1.42]."""
        return self.poly(r, (1.0, 1.0, *_EXP_Q))

    def ldexp(self, p: ir.Value, n: ir.Value) -> ir.Value:
        """``p 2^n`` rounded once, for ``0.7 <= p <= 1.5`` and ``-160 <= n <= 160``."""
        b = self.b
        if _scalef_available():
            fn = self.mb.declare("llvm.ldexp.f32.i32", F32, [F32, I32])
            return b.call(fn, [p, n])
        half = b.ashr(n, self.i(1))  # p 2^half is exact; the second multiply rounds
        return b.fmul(b.fmul(p, self.pow2(half)), self.pow2(b.sub(n, half)))


def exp_f32(ctx, x: ir.Value) -> ir.Value:
    """``exp(x)`` for float32, inline. ``x`` is clamped to [-104, 89] first (results 0 and inf
    are kept; NaN passes through)."""
    f = _F32(ctx)
    n, r = f.reduce(f.above(f.below(x, _EXP_HI), _EXP_LO))
    return f.ldexp(f.exp_reduced(r), n)


def tanh_f32(ctx, x: ir.Value) -> ir.Value:
    """``tanh(x)`` for float32, inline: ``sign(x) E / (E + 2)`` with ``E = expm1(2|x|)``.
    ``2|x| = n ln2 + 2r``, ``E = 2^n (1 + 2m) - 1`` computed as ``fma(m, 2^(n+1), 2^n - 1)`` with
    ``2m = expm1(2r) = 2r + 4r^2 q(2r)``: no cancellation, accurate down to the denormals (where
    ``n = 0`` and ``E = 2m``). ln 2 in one constant: its error, ``n 2e-9`` in ``2r``, costs
    ``2/(E + 2)`` of that in the result. ``|x|`` is clamped at 10 (the result is 1 from 9.01);
    ``-0.0`` gives ``-0.0``, NaN NaN."""
    f = _F32(ctx)
    b = f.b
    a = f.intrinsic("fabs", x)
    n, r = f.reduce(f.below(a, _TANH_HI), scale=2.0, exact=False)
    half_m = f.fma(b.fmul(r, r), f.poly(r, _TANH_EXP_Q), r)  # expm1(2r) / 2
    s2 = b.bitcast(b.shl(b.add(n, f.i(128)), f.i(23)), F32)  # 2^(n + 1), 0 <= n <= 29
    e = f.fma(half_m, s2, f.fma(s2, f.c(0.5), f.c(-1.0)))
    q = b.fdiv(e, b.fadd(e, f.c(2.0)))
    # |x| < ln2 / 4 (n = 0, E = 2m): q = m / (1 + m) = m - m q, whose error is m (<= 0.21)
    # times q's, which removes most of the rounding of 1 + m (3 ULP at worst, 2 without this).
    q = b.select(b.icmp_signed("==", n, f.i(0)), f.fma(b.fneg(half_m), q, half_m), q)
    return f.intrinsic("copysign", q, x)


def logistic_f32(ctx, x: ir.Value) -> ir.Value:
    """``1 / (1 + exp(-x))`` for float32, inline: with ``e = exp(-|x|)`` (at most 1: nothing
    overflows), ``1 / (1 + e)`` for ``x >= 0`` and ``e / (1 + e)`` below (down to the
    denormals, where it is ``e``). NaN gives NaN."""
    f = _F32(ctx)
    b = f.b
    n, r = f.reduce(f.above(b.fneg(f.intrinsic("fabs", x)), _EXP_LO))
    e = f.ldexp(f.exp_reduced(r), n)
    num = b.select(b.fcmp_ordered("<", x, f.c(0.0)), e, f.c(1.0))  # NaN: 1, and e is NaN
    return b.fdiv(num, b.fadd(e, f.c(1.0)))
