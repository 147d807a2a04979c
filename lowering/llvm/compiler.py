"""Compile an IR function for the CPU: lower, optimise, cache, load, wrap.

The exported entry point takes the NumPy arrays themselves (``PyObject*``) — the
constants, the inputs, then one preallocated array per output — and reads each data
pointer straight from the array object, so a call costs one ctypes call.
It allocates the workspace (``aligned_alloc``), runs the program, frees it.
"""

from __future__ import annotations

import ctypes
import logging
import math

import numpy as np
from llvmlite import ir

from functrace.config import config
from functrace.core.ir import Function
from lowering.llvm import cache, engine, mathlib
from lowering.llvm.codegen import I64, PTR, VOID, ModuleBuilder, i64

log = logging.getLogger("functrace.jit")


def _probe_data_offset() -> int:
    """Where ``PyArrayObject`` keeps its data pointer (16 on a regular 64-bit CPython)."""
    a = np.arange(3.0)
    for off in range(8, 128, 8):
        if ctypes.c_void_p.from_address(id(a) + off).value == a.ctypes.data:
            return off
    raise RuntimeError("cannot find the data pointer of a NumPy array")


DATA_OFFSET = _probe_data_offset()


def module_text(fn: Function, prefix: str) -> tuple[str, str, int]:
    """The LLVM IR text of ``fn`` with its entry point; ``(text, entry name, workspace bytes)``."""
    mb = ModuleBuilder(prefix)
    main, ws_size = mb.lower(fn, "main")
    n_in = len(fn.constvars) + len(fn.invars)
    n_out = len(fn.outvars)
    entry = ir.Function(mb.module, ir.FunctionType(VOID, [PTR] * (n_in + n_out)), f"{prefix}_entry")
    b = ir.IRBuilder(entry.append_basic_block("entry"))
    ins = b.alloca(PTR, size=max(1, n_in))
    outs = b.alloca(PTR, size=max(1, n_out))
    for k, obj in enumerate(entry.args):
        data = b.load(b.gep(obj, [i64(DATA_OFFSET)], source_etype=ir.IntType(8)), typ=PTR)
        arr, pos = (ins, k) if k < n_in else (outs, k - n_in)
        b.store(data, b.gep(arr, [i64(pos)], source_etype=PTR))
    if ws_size:
        alloc = mb.declare("aligned_alloc", PTR, [I64, I64])
        free = mb.declare("free", VOID, [PTR])
        ws = b.call(alloc, [i64(64), i64(-(-ws_size // 64) * 64)])
        b.call(main, [ins, outs, ws])
        b.call(free, [ws])
    else:
        b.call(main, [ins, outs, ir.Constant(PTR, None)])
    b.ret_void()
    text = mathlib.annotate(str(mb.module), sorted(mb.math_functions), engine.libmvec_isa())
    return text, entry.name, ws_size


def _key(fn: Function) -> str:
    consts = ";".join(f"{np.shape(c)}:{np.asarray(c).dtype}" for c in fn.consts)
    return cache.compile_key(
        str(fn),
        consts,
        engine.versions(),
        engine.cpu_name(),
        engine.cpu_features(),
        ",".join(engine.libmvec_isa()),
        str(engine.blas()),
        str(DATA_OFFSET),
    )


class Compiled:
    """The machine code of one IR function, callable on flat NumPy arrays."""

    def __init__(self, fn: Function, key: str, entry: str, address: int, ws_size: int, from_cache: bool):
        self.fn = fn
        self.key = key
        self.entry = entry
        self.ws_size = ws_size
        self.from_cache = from_cache
        n = len(fn.constvars) + len(fn.invars) + len(fn.outvars)
        self.cfunc = ctypes.CFUNCTYPE(None, *[ctypes.py_object] * n)(address)

    def llvm_ir(self, optimized: bool = True) -> str:
        """The LLVM IR of this function (generated again: a cache hit has only object code)."""
        text, _, _ = module_text(self.fn, _prefix(self.key))
        return str(engine.optimize(text)) if optimized else text

    def assembly(self) -> str:
        text, _, _ = module_text(self.fn, _prefix(self.key))
        return engine.emit_assembly(engine.optimize(text))


def _prefix(key: str) -> str:
    return f"ft_{key[:20]}"


def compile_function(fn: Function) -> Compiled:
    """Compile ``fn`` (or load it from the persistent cache)."""
    engine.blas()  # bind the runtime symbols before any code is loaded
    engine.libmvec_isa()
    key = _key(fn)
    directory = config.jit_cache_dir
    hit = cache.get(directory, key)
    if hit is not None:
        meta, obj = hit
        try:
            addresses = engine.load(key, obj, [meta["entry"]])
            log.info("jit: loaded %s from the persistent cache %s", meta["entry"], directory)
            return Compiled(fn, key, meta["entry"], addresses[meta["entry"]], int(meta["ws_size"]), True)
        except Exception as e:  # a damaged entry that passed the checksum: compile again
            log.warning("jit: cache entry %s is unusable (%s); compiling again", key, e)
    text, entry, ws_size = module_text(fn, _prefix(key))
    obj = engine.emit_object(engine.optimize(text))
    cache.put(directory, key, {"entry": entry, "ws_size": ws_size}, obj)
    addresses = engine.load(key, obj, [entry])
    return Compiled(fn, key, entry, addresses[entry], ws_size, False)


def nbytes(aval) -> int:
    return math.prod(aval.shape) * aval.dtype.itemsize
