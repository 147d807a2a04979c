"""Compile an IR function for the CPU: lower, optimise, cache, load, wrap.

The exported entry point takes the NumPy arrays themselves (``PyObject*``) — the
constants, the inputs, then one preallocated array per output — and reads each data
pointer straight from the array object, so a call costs one ctypes call.
The workspace (intermediate buffers) is a byte array the caller passes last: executables
keep a pool of them, so a call reuses memory whose pages are already mapped instead of
faulting in fresh pages every call.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import math
import re

import numpy as np
from llvmlite import ir

from functrace.config import config
from functrace.core.ir import Function, sub_functions
from lowering.llvm import cache, engine, mathlib, pool, runtime
from lowering.llvm.codegen import I64, PTR, ModuleBuilder, i64

log = logging.getLogger("functrace.jit")


def _probe_data_offset() -> int:
    """Where ``PyArrayObject`` keeps its data pointer (16 on a regular 64-bit CPython)."""
    a = np.arange(3.0)
    for off in range(8, 128, 8):
        if ctypes.c_void_p.from_address(id(a) + off).value == a.ctypes.data:
            return off
    raise RuntimeError("cannot find the data pointer of a NumPy array")


def _probe_flags_offset() -> int:
    """Where ``PyArrayObject`` keeps its flags (an int; 64 on a regular 64-bit CPython)."""
    arrays = [np.arange(6.0), np.arange(6.0)[::2], np.arange(6.0).reshape(2, 3).T]
    for off in range(8, 128, 4):
        if all(ctypes.c_int.from_address(id(a) + off).value == a.flags.num for a in arrays):
            return off
    raise RuntimeError("cannot find the flags of a NumPy array")


DATA_OFFSET = _probe_data_offset()
FLAGS_OFFSET = _probe_flags_offset()
_C_CONTIGUOUS_ALIGNED = 0x1 | 0x100  # NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED
# The rest of NumPy's PyArrayObject layout on 64-bit CPython, verified below.
ND_OFFSET, DIMS_OFFSET, DESCR_OFFSET = 24, 32, 56

# The objects the entry compares arguments against: the ndarray type and the canonical
# dtype of each supported type. Passed at run time (addresses differ between processes).
RUNTIME_DTYPES = ("float32", "float64", "int32", "int64", "uint32", "bool")
_runtime = (ctypes.c_void_p * (1 + len(RUNTIME_DTYPES)))(id(np.ndarray), *(id(np.dtype(d)) for d in RUNTIME_DTYPES))
RUNTIME_TABLE = ctypes.cast(_runtime, ctypes.c_void_p)


def _verify_layout() -> bool:
    for a in (np.zeros((2, 3)), np.zeros(5, np.float32), np.zeros((1, 2, 3), np.int32), np.zeros((), np.int64)):
        if ctypes.c_void_p.from_address(id(a) + 8).value != id(np.ndarray):
            return False
        if ctypes.c_int.from_address(id(a) + ND_OFFSET).value != a.ndim:
            return False
        if ctypes.c_void_p.from_address(id(a) + DESCR_OFFSET).value != id(a.dtype):
            return False
        dims = ctypes.c_void_p.from_address(id(a) + DIMS_OFFSET).value
        if a.ndim and list((ctypes.c_int64 * a.ndim).from_address(dims)) != list(a.shape):
            return False
    return True


# Without the expected layout the entry checks only the flags and callers check the rest.
FULL_CHECK = _verify_layout()


def module_text(
    fn: Function, prefix: str, donated: tuple[int, ...] = (), profile_rows: list[str] | None = None
) -> tuple[str, str, int, list]:
    """The LLVM IR text of ``fn`` with its entry point, as one module:
    ``(text, entry name, workspace bytes, donation pairs)``. With a ``profile_rows`` list
    every kernel is timed, and the list receives what each counter times."""
    texts, entry, ws_size, pairs = module_texts(fn, prefix, donated, profile_rows)
    return texts[0], entry, ws_size, pairs


def module_texts(
    fn: Function,
    prefix: str,
    donated: tuple[int, ...] = (),
    profile_rows: list[str] | None = None,
    modules: int = 1,
) -> tuple[list[str], str, int, list]:
    """As ``module_text``, in up to ``modules`` modules that can be compiled at the same
    time (``split_module``); the first one holds the entry point."""
    mb = ModuleBuilder(prefix)
    main, ws_size, pairs = mb.lower_main(fn, donated, profile_rows is not None, modules)
    if profile_rows is not None:
        profile_rows.extend(mb.profile_rows)
    n_in = len(fn.constvars) + len(fn.invars)
    n_out = len(fn.outvars)
    i32 = ir.IntType(32)
    i8 = ir.IntType(8)
    n_ws = 1 if ws_size else 0
    entry = ir.Function(mb.module, ir.FunctionType(i32, [PTR] * (1 + n_in + n_out + n_ws)), f"{prefix}_entry")
    # The argument checks are straight-line loads and compares that LLVM's optimisations
    # hardly improve but spend milliseconds on (a fifth of the MLP step's compile time):
    # the entry point is compiled as it is written. Calls measure the same.
    entry.attributes.add("noinline")
    entry.attributes.add("optnone")
    table, objects = entry.args[0], entry.args[1 : 1 + n_in + n_out]
    b = ir.IRBuilder(entry.append_basic_block("entry"))
    refuse = entry.append_basic_block("refuse")

    def field(obj, offset, ty):
        return b.load(b.gep(obj, [i64(offset)], source_etype=i8), typ=ty)

    def require(cond):
        nonlocal b
        nxt = entry.append_basic_block("check")
        b.cbranch(cond, nxt, refuse)
        b.position_at_end(nxt)

    # Refuse (return 1) unless every input is an ndarray of the traced type, C-contiguous
    # and aligned: the caller then converts the arguments and calls again.
    mask = ir.Constant(i32, _C_CONTIGUOUS_ALIGNED)
    in_avals = [v.aval for v in [*fn.constvars, *fn.invars]]
    ndarray_type = b.load(table, typ=PTR)
    inputs = list(zip(objects[:n_in], in_avals, strict=True))

    def all_of(conds):
        ok = ir.Constant(ir.IntType(1), 1)
        for c in conds:
            ok = b.and_(ok, c)
        return ok

    # Three rounds, each one branch: a field is read only once the object is known to have it.
    if FULL_CHECK:
        require(all_of(b.icmp_unsigned("==", field(obj, 8, PTR), ndarray_type) for obj, _ in inputs))
    conds = []
    for obj, aval in inputs:
        if FULL_CHECK:
            descr = b.load(b.gep(table, [i64(1 + RUNTIME_DTYPES.index(aval.dtype.name))], source_etype=PTR), typ=PTR)
            conds.append(b.icmp_unsigned("==", field(obj, DESCR_OFFSET, PTR), descr))
            conds.append(b.icmp_signed("==", field(obj, ND_OFFSET, i32), ir.Constant(i32, len(aval.shape))))
        conds.append(b.icmp_unsigned("==", b.and_(field(obj, FLAGS_OFFSET, i32), mask), mask))
    require(all_of(conds))
    if FULL_CHECK:
        conds = []
        for obj, aval in inputs:
            dims = field(obj, DIMS_OFFSET, PTR)
            for d, size in enumerate(aval.shape):
                conds.append(b.icmp_signed("==", b.load(b.gep(dims, [i64(d)], source_etype=I64), typ=I64), i64(size)))
        require(all_of(conds))
    run = entry.append_basic_block("run")
    b.branch(run)
    b.position_at_end(refuse)
    b.ret(ir.Constant(i32, 1))
    b.position_at_end(run)
    ins = b.alloca(PTR, size=max(1, n_in))
    outs = b.alloca(PTR, size=max(1, n_out))
    for k, obj in enumerate(objects):
        data = b.load(b.gep(obj, [i64(DATA_OFFSET)], source_etype=ir.IntType(8)), typ=PTR)
        arr, pos = (ins, k) if k < n_in else (outs, k - n_in)
        b.store(data, b.gep(arr, [i64(pos)], source_etype=PTR))
    if ws_size:
        # The workspace: a uint8 array of ws_size + 64 bytes from the caller's pool, aligned here.
        data = b.load(b.gep(entry.args[-1], [i64(DATA_OFFSET)], source_etype=ir.IntType(8)), typ=PTR)
        aligned = b.and_(b.add(b.ptrtoint(data, I64), i64(63)), i64(-64))
        b.call(main, [ins, outs, b.inttoptr(aligned, PTR)])
    else:
        b.call(main, [ins, outs, ir.Constant(PTR, None)])
    b.ret(ir.Constant(i32, 0))
    text = mathlib.annotate(str(mb.module), sorted(mb.math_functions), engine.libmvec_isa())
    texts = split_module(text, mb, modules) if len(mb.parts) > 1 and modules > 1 else [text]
    return texts, entry.name, ws_size, pairs


_SYMBOL = re.compile(r'@"((?:[^"\\]|\\.)*)"')


def split_module(text: str, mb: ModuleBuilder, modules: int) -> list[str]:
    """Module text split into up to ``modules`` modules, by the parts of the top-level
    function (``ModuleBuilder.parts``). A part comes with the functions first reached from
    it (loop bodies, threaded kernels); the parts are shared out so that the modules have
    about as many lines each, the first one also holding the top-level function and the
    entry point. Every module repeats the declarations, attributes and metadata, and the
    constants it uses; a function called from another module loses ``internal``, and is
    declared there. MCJIT links the objects when it loads them (``engine.load``)."""
    shared: list[str] = []  # header, declarations, attributes, metadata
    constants: dict[str, str] = {}
    defines: dict[str, str] = {}
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("define "):
            end = lines.index("}", i)
            defines[_SYMBOL.search(line).group(1)] = "\n".join(lines[i : end + 1])
            i = end + 1
            continue
        match = _SYMBOL.match(line)
        if match and " constant " not in line:
            return [text]  # a variable (profiling counters): one copy, in one module
        if match:
            constants[match.group(1)] = line
        elif line:
            shared.append(line)
        i += 1
    refs = {name: {m for m in _SYMBOL.findall(body) if m != name} for name, body in defines.items()}
    # Each part with the functions first reached from it; the rest (the top-level function,
    # the entry point) go with the first part.
    units: list[list[str]] = []
    seen: set[str] = set()
    for part in mb.parts:
        unit, stack = [], [part.name]
        while stack:
            name = stack.pop()
            if name in defines and name not in seen:
                seen.add(name)
                unit.append(name)
                stack.extend(refs[name])
        units.append(unit)
    units[0] += [n for n in defines if n not in seen]
    # Compile time goes with the lines (instructions) of the functions LLVM optimises (not
    # the entry point's). The first part to the first module, then the largest first, each
    # to the module with the fewest lines so far.
    cost = {n: 0 if "optnone" in body[: body.index("\n")].split() else body.count("\n") for n, body in defines.items()}
    sizes = [sum(cost[n] for n in unit) for unit in units]
    loads = [0] * min(modules, len(units))
    group: dict[str, int] = {}
    for u in sorted(range(len(units)), key=lambda u: (u != 0, -sizes[u])):
        g = min(range(len(loads)), key=loads.__getitem__)
        loads[g] += sizes[u]
        group.update((n, g) for n in units[u])
    texts = []
    for g in range(len(loads)):
        names = [n for n in defines if group[n] == g]
        used = set().union(*(refs[n] for n in names))
        body = list(shared)
        body += [constants[n] for n in sorted(used & constants.keys())]
        body += [_declaration(mb.module.get_global(n)) for n in sorted(used) if n in defines and group[n] != g]
        for n in names:
            called_elsewhere = any(n in refs[m] for m in defines if group[m] != g)
            body.append(defines[n].replace("define internal ", "define ", 1) if called_elsewhere else defines[n])
        texts.append("\n".join(body) + "\n")
    return texts


def _declaration(fn: ir.Function) -> str:
    args = ", ".join(str(t) for t in fn.ftype.args)
    return f'declare {fn.ftype.return_type} @"{fn.name}"({args})'


SMALL_PROGRAM_ELEMENTS = 1 << 14


def releases_gil(fn: Function) -> bool:
    """Whether calls release the GIL: unless the program is small (few elements in and out,
    no loops, no BLAS), so that its run time is microseconds."""
    if runtime.uses_blas(fn) or any(True for _ in sub_functions(fn)):
        return True  # BLAS calls, or loops and calls of sub-functions
    elements = sum(math.prod(v.aval.shape) for v in [*fn.constvars, *fn.invars, *fn.outvars])
    elements += sum(math.prod(v.aval.shape) for e in fn.eqns for v in e.outvars)
    return elements >= SMALL_PROGRAM_ELEMENTS


def _key(fn: Function, donated: tuple[int, ...]) -> str:
    # Top-level constants are run-time arguments (only their types matter); constants of
    # sub-functions are compiled into the code, so their bytes are part of the key.
    consts = ";".join(f"{np.shape(c)}:{np.asarray(c).dtype}" for c in fn.consts)
    h = hashlib.sha256()
    for sub in sub_functions(fn):
        for c in sub.consts:
            c = np.ascontiguousarray(c)
            h.update(f"{c.shape}{c.dtype}".encode())
            h.update(c.tobytes())
    return cache.compile_key(
        str(fn),
        consts,
        h.hexdigest(),
        f"donated={donated}",
        engine.versions(),
        engine.cpu_name(),
        engine.cpu_features(),
        ",".join(engine.libmvec_isa()),
        str(engine.blas()),
        f"{DATA_OFFSET},{FLAGS_OFFSET},{FULL_CHECK}",
    )


class Compiled:
    """The machine code of one IR function, callable on flat NumPy arrays."""

    def __init__(self, fn: Function, key: str, entry: str, address: int, ws_size: int, from_cache: bool, donation=()):
        self.fn = fn
        self.donation = [tuple(p) for p in donation]  # (output position, input position)
        self.key = key
        self.entry = entry
        self.ws_size = ws_size
        self.from_cache = from_cache
        n = len(fn.constvars) + len(fn.invars) + len(fn.outvars) + (1 if ws_size else 0)
        # Big programs release the GIL while they run (other threads go on); tiny ones keep it:
        # releasing and taking it back costs more than their work when other threads wait.
        factory = ctypes.CFUNCTYPE if releases_gil(fn) else ctypes.PYFUNCTYPE
        self.cfunc = factory(ctypes.c_int, ctypes.c_void_p, *[ctypes.py_object] * n)(address)

    def llvm_ir(self, optimized: bool = True) -> str:
        """The LLVM IR of this function, as one module (generated again: a cache hit has only
        object code)."""
        text = module_text(self.fn, _prefix(self.key))[0]
        return str(engine.optimize(text)) if optimized else text

    def assembly(self) -> str:
        text = module_text(self.fn, _prefix(self.key))[0]
        return engine.emit_assembly(engine.optimize(text))


def _prefix(key: str) -> str:
    return f"ft_{key[:20]}"


def compile_function(fn: Function, donated: tuple[int, ...] = ()) -> Compiled:
    """Compile ``fn`` (or load it from the persistent cache)."""
    engine.blas()  # bind the runtime symbols before any code is loaded
    engine.libmvec_isa()
    engine.tune_malloc()
    donated = tuple(sorted(set(donated)))
    key = _key(fn, donated)
    directory = config.jit_cache_dir
    hit = cache.get(directory, key)
    if hit is not None:
        meta, obj = hit
        try:
            objects, start = [], 0  # the objects of the program's modules, one after the other
            for size in meta.get("objects", [len(obj)]):
                objects.append(obj[start : start + int(size)])
                start += int(size)
            if start != len(obj):
                raise ValueError("the object sizes do not add up")
            if pool.SYMBOL.encode() in obj:
                pool.bind()  # the thread pool the program calls (bound when compiled, too)
            addresses = engine.load(key, objects, [meta["entry"]])
            log.info("jit: loaded %s from the persistent cache %s", meta["entry"], directory)
            entry = meta["entry"]
            return Compiled(fn, key, entry, addresses[entry], int(meta["ws_size"]), True, meta.get("donation", ()))
        except Exception as e:  # a damaged entry that passed the checksum: compile again
            log.warning("jit: cache entry %s is unusable (%s); compiling again", key, e)
    texts, entry, ws_size, pairs = module_texts(fn, _prefix(key), donated, modules=engine.compile_threads())
    objects = engine.compile_objects(texts)
    meta = {"entry": entry, "ws_size": ws_size, "donation": pairs, "objects": [len(o) for o in objects]}
    cache.put(directory, key, meta, b"".join(objects))
    addresses = engine.load(key, objects, [entry])
    return Compiled(fn, key, entry, addresses[entry], ws_size, False, pairs)


def profile_kernels(fn: Function, args: list, repeat: int = 10) -> list[tuple[float, str]]:
    """Run ``fn`` compiled with a cycle counter around every kernel; returns
    ``(share of cycles, kernel description)`` sorted by cost. Kernels of loop bodies are
    named with their function (``[sub] ...``) and also count in their loop's share.
    A development tool (``docs/jit.md``, "Debugging")."""
    key = _key(fn, ()) + "-profile"
    prefix = _prefix(key)
    rows: list[str] = []
    text, entry, ws_size, _ = module_text(fn, prefix, (), profile_rows=rows)
    obj = engine.emit_object(engine.optimize(text))
    addresses = engine.load(key, [obj], [entry])
    compiled = Compiled(fn, key, entry, addresses[entry], ws_size, False)
    from lowering.llvm.executable import Executable

    exe = Executable(fn, compiled)
    for _ in range(repeat):
        exe(*args)
    with engine._lock:
        address = engine._engine.get_global_value_address(f"{prefix}_profile")
    counts = list((ctypes.c_int64 * max(1, len(rows))).from_address(address))
    total = max(1, sum(c for c, r in zip(counts, rows, strict=False) if not r.startswith("[")))
    return sorted(((c / total, r) for c, r in zip(counts, rows, strict=False)), reverse=True)
