"""The CPU backend: IR → LLVM IR (llvmlite) → native code, run from Python.

``jit(f)`` (``backend="cpu"``, the default) lowers through this package:
``lowering.fusion`` groups equations into loop nests, ``codegen`` emits LLVM IR with
one rule per primitive (``rules/``), ``engine`` optimises for the host CPU and
loads the object code, ``cache`` keeps it on disk, ``executable`` calls it.
"""

from __future__ import annotations

from functrace.api import register_backend
from functrace.core.ir import Function
from lowering.llvm import engine, rules  # noqa: F401  (rules fill the lowering tables)
from lowering.llvm.compiler import compile_function
from lowering.llvm.executable import Executable


def compile_cpu(fn: Function, donated: tuple[int, ...] = ()) -> Executable:
    return Executable(fn, compile_function(fn, donated))


engine.initialize()
register_backend("cpu", compile_cpu)
