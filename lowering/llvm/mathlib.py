"""Math functions: libm calls that the loop vectorizer turns into libmvec calls.

A plain call to ``expf`` keeps a loop scalar. Declared pure and given the
``vector-function-abi-variant`` attribute naming glibc libmvec's SIMD versions
(``_ZGVeN16v_expf`` for AVX-512, ``_ZGVdN8v_expf`` for AVX2), the call vectorizes:
the loop vectorizer swaps in the 16- or 8-lane function. The variants are offered
only when libmvec loads and the CPU has the instruction set; otherwise the loop
calls libm one element at a time (correct, slower).

Accuracy is libmvec's: at most 4 ULP from the correctly rounded result for every
function here (glibc's documented bound); ``tests/test_llvm_math.py`` checks the
bound against NumPy on random and edge inputs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from llvmlite import ir

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
