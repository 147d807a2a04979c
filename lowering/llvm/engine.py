"""LLVM: the host target, the optimisation pipeline, object code and the JIT.

Modules are optimised with LLVM's new pass manager at O3 for the host CPU (its name
and features, e.g. AVX-512), compiled to object code, and loaded into one MCJIT
engine per process. Object code is what the persistent cache stores
(``lowering.llvm.cache``), so a cache hit skips code generation and optimisation.

A program split into several modules (``lowering.llvm.compiler``) is compiled on
``compile_threads()`` threads at once (``compile_objects``): each module is parsed into
an LLVM context of its own and compiled with a target machine of its own, and the long
calls (parsing, the pass pipeline, code generation) bypass llvmlite's process-wide lock
and release the GIL.

Runtime symbols resolved here: libm, glibc's libmvec (SIMD math) and a BLAS
``cblas_sgemm``/``cblas_dgemm`` (NumPy's bundled OpenBLAS) under the names
``functrace_sgemm``/``functrace_dgemm``.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import functools
import glob
import os
import threading

import llvmlite
import llvmlite.binding as llvm
from llvmlite.binding import ffi

from lowering.llvm import runtime

_lock = threading.RLock()


@functools.cache
def _initialize() -> None:
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()


@functools.cache
def target_machine() -> llvm.TargetMachine:
    return _new_target_machine()


def _new_target_machine() -> llvm.TargetMachine:
    _initialize()
    target = llvm.Target.from_default_triple()
    return target.create_target_machine(cpu=cpu_name(), features=cpu_features(), opt=3, jit=True)


@functools.cache
def data_layout() -> str:
    return str(target_machine().target_data)


@functools.cache
def cpu_name() -> str:
    _initialize()
    return llvm.get_host_cpu_name()


@functools.cache
def cpu_features() -> str:
    _initialize()
    return llvm.get_host_cpu_features().flatten()


@functools.cache
def libmvec_isa() -> tuple[str, ...]:
    """The libmvec ISA codes usable here: ``e`` (AVX-512), ``d`` (AVX2); empty without libmvec."""
    if os.environ.get("FUNCTRACE_NO_LIBMVEC"):
        return ()
    try:
        llvm.load_library_permanently("libmvec.so.1")
    except RuntimeError:
        return ()
    features = set(cpu_features().split(","))
    isa = []
    if "+avx512f" in features:
        isa.append("e")
    if "+avx2" in features:
        isa.append("d")
    return tuple(isa)


@functools.cache
def blas() -> str | None:
    """Bind a CBLAS gemm into the JIT; returns a description of it, or None when absent."""
    if os.environ.get("FUNCTRACE_NO_BLAS"):
        return None
    import numpy

    root = os.path.dirname(os.path.dirname(numpy.__file__))
    candidates = sorted(glob.glob(os.path.join(root, "numpy.libs", "libscipy_openblas*.so*")))
    for path in candidates:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for suffix in ("64_", ""):
            try:
                sgemm = getattr(lib, f"scipy_cblas_sgemm{suffix}")
                dgemm = getattr(lib, f"scipy_cblas_dgemm{suffix}")
            except AttributeError:
                continue
            llvm.add_symbol("functrace_sgemm", ctypes.cast(sgemm, ctypes.c_void_p).value)
            llvm.add_symbol("functrace_dgemm", ctypes.cast(dgemm, ctypes.c_void_p).value)
            _keep.append(lib)
            return f"{os.path.basename(path)} (ILP64={suffix == '64_'})"
    return None


_keep: list = []


def blas_ilp64() -> bool:
    """Whether the bound BLAS takes 64-bit integers (the ILP64 interface NumPy bundles)."""
    return "ILP64=True" in (blas() or "")


@functools.cache
def tune_malloc() -> bool:
    """Raise glibc's mmap and trim thresholds (64 MiB / 128 MiB) so that arrays up to
    64 MiB reuse freed heap memory instead of mapping fresh pages on every call: outputs
    and workspaces are allocated per call, and first-touch page faults cost as much as the
    computation of a memory-bound kernel (10M-element elementwise: 9.9 -> 7.5 ms here).
    ``FUNCTRACE_MALLOC_TUNING=0`` keeps glibc's defaults. Returns whether it applied."""
    if os.environ.get("FUNCTRACE_MALLOC_TUNING", "1") == "0":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(libc.mallopt(m_mmap_threshold, 64 << 20)) and bool(libc.mallopt(m_trim_threshold, 128 << 20))


@functools.cache
def versions() -> str:
    """What compiled code depends on, for cache keys: the versions, and a digest of the
    backend's own source (a change to a lowering rule must not reuse old object code)."""
    import hashlib

    from functrace import __version__

    digest = hashlib.sha256()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # lowering/
    for path in sorted(glob.glob(os.path.join(root, "**", "*.py"), recursive=True)):
        with open(path, "rb") as f:
            digest.update(os.path.relpath(path, root).encode() + b"\0" + f.read())
    return (
        f"functrace={__version__};llvmlite={llvmlite.__version__};llvm={llvm.llvm_version_info};"
        f"backend={digest.hexdigest()[:16]};threads={runtime.NUM_THREADS}"
    )


def _pass_builder(tm: llvm.TargetMachine) -> llvm.PassBuilder:
    pto = llvm.create_pipeline_tuning_options(speed_level=3)
    pto.loop_vectorization = True
    pto.slp_vectorization = True
    # Unrolling and interleaving quadruple the code and double compile time for little
    # gain on memory-bound kernels; vectorization stays on.
    pto.loop_unrolling = False
    pto.loop_interleaving = False
    return llvm.create_pass_builder(tm, pto)


def optimize(text: str) -> llvm.ModuleRef:
    """Parse, verify and optimise module text at O3 for the host (in the global context)."""
    tm = target_machine()
    with _lock:
        mod = llvm.parse_assembly(text)
        mod.triple = tm.triple
        mod.data_layout = data_layout()
        mod.verify()
        pb = _pass_builder(tm)
        pb.getModulePassManager().run(mod, pb)
        return mod


def emit_object(mod: llvm.ModuleRef) -> bytes:
    with _lock:
        return target_machine().emit_object(mod)


def emit_assembly(mod: llvm.ModuleRef) -> str:
    with _lock:
        return target_machine().emit_assembly(mod)


# --- compiling modules on several threads -----------------------------------------------

_free_machines: list[llvm.TargetMachine] = []  # target machines not in use by a thread
_pool: concurrent.futures.ThreadPoolExecutor | None = None


def compile_threads() -> int:
    """How many modules are compiled at once: the CPUs this process may use
    (``FUNCTRACE_NUM_THREADS`` overrides, as for the threads of compiled code)."""
    return runtime.NUM_THREADS


def _unlocked(name: str):
    """The ctypes function behind llvmlite's wrapper, which takes a process-wide lock
    around every call; calling it directly lets threads run LLVM at the same time (on
    objects of their own). The wrapper itself where llvmlite has no such attribute."""
    fn = getattr(ffi.lib, name)
    return getattr(fn, "_cfn", fn)


def compile_object(text: str) -> bytes:
    """Object code of one module text: parsed into an LLVM context of its own, verified,
    optimised (``_pass_builder``) and compiled with a target machine no other thread uses,
    so that several threads may run this at once."""
    with _lock:
        tm = _free_machines.pop() if _free_machines else None
    if tm is None:
        tm = _new_target_machine()
    context = llvm.create_context()
    owned: list = []  # disposed in reverse order: the pass manager and builder before the module
    try:
        with ffi.OutputString() as err:
            ptr = _unlocked("LLVMPY_ParseAssembly")(context, ctypes.c_char_p(text.encode()), err)
            if not ptr:
                raise RuntimeError(f"LLVM IR parsing error\n{err}")
        mod = llvm.ModuleRef(ptr, context)
        owned.append(mod)
        mod.triple = tm.triple
        mod.data_layout = data_layout()
        with ffi.OutputString() as err:
            if _unlocked("LLVMPY_VerifyModule")(mod, err):
                raise RuntimeError(str(err))
        pb = _pass_builder(tm)
        owned.append(pb)
        mpm = pb.getModulePassManager()
        owned.append(mpm)
        _unlocked("LLVMPY_RunNewModulePassManager")(mpm, mod, pb)
        with ffi.OutputString() as err:
            buf = _unlocked("LLVMPY_TargetMachineEmitToMemory")(tm, mod, 1, err)
            if not buf:
                raise RuntimeError(str(err))
        try:
            return ctypes.string_at(ffi.lib.LLVMPY_GetBufferStart(buf), ffi.lib.LLVMPY_GetBufferSize(buf))
        finally:
            ffi.lib.LLVMPY_DisposeMemoryBuffer(buf)
    finally:
        for obj in reversed(owned):
            obj.close()
        context.close()
        with _lock:
            _free_machines.append(tm)


def compile_objects(texts: list[str]) -> list[bytes]:
    """Object code of each module text, compiled on up to ``compile_threads()`` threads
    (this one included), the largest modules first."""
    if len(texts) == 1:
        return [compile_object(texts[0])]
    results: list[bytes | None] = [None] * len(texts)
    pending = sorted(range(len(texts)), key=lambda k: len(texts[k]))  # pop() takes the largest
    errors: list[BaseException] = []
    take = threading.Lock()

    def work() -> None:
        while not errors:
            with take:
                if not pending:
                    return
                k = pending.pop()
            try:
                results[k] = compile_object(texts[k])
            except BaseException as e:  # re-raised in the calling thread
                errors.append(e)

    helpers = [_compile_pool().submit(work) for _ in range(min(len(texts), compile_threads()) - 1)]
    work()
    for h in helpers:
        h.result()
    if errors:
        raise errors[0]
    return results  # type: ignore[return-value]


def _compile_pool() -> concurrent.futures.ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = concurrent.futures.ThreadPoolExecutor(
                max(1, compile_threads() - 1), thread_name_prefix="functrace-llvm"
            )
        return _pool


def _forget_pool() -> None:
    """In a forked child: the pool's threads did not survive the fork; start a new pool."""
    global _pool
    _pool = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


_engine: llvm.ExecutionEngine | None = None
_loaded: dict[str, dict[str, int]] = {}


def _create_engine() -> None:
    global _engine
    with _lock:
        if _engine is None:
            empty = llvm.parse_assembly("")
            empty.triple = target_machine().triple
            _engine = llvm.create_mcjit_compiler(empty, target_machine())


def initialize() -> None:
    """Start the backend's runtime (LLVM's target, the JIT engine, the runtime symbols)
    once, when the backend loads, so that the first compile does not pay for it."""
    target_machine()
    data_layout()
    cpu_features()
    libmvec_isa()
    blas()
    tune_malloc()
    versions()
    _create_engine()
    with _lock:  # a target machine for each compile thread
        while len(_free_machines) < compile_threads():
            _free_machines.append(_new_target_machine())


def load(key: str, objects: list[bytes], names: list[str]) -> dict[str, int]:
    """Load the object code of a program (its modules' objects, which may call each other)
    into the process's JIT once per key; the addresses of ``names``."""
    global _engine
    with _lock:
        hit = _loaded.get(key)
        if hit is not None:
            return hit
        if _engine is None:
            _create_engine()
        for obj in objects:
            _engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
        _engine.finalize_object()
        addresses = {n: _engine.get_function_address(n) for n in names}
        if not all(addresses.values()):
            missing = [n for n, a in addresses.items() if not a]
            raise RuntimeError(f"compiled code lacks the functions {missing}")
        _loaded[key] = addresses
        return addresses
