"""LLVM: the host target, the optimisation pipeline, object code and the JIT.

Modules are optimised with LLVM's new pass manager at O3 for the host CPU (its name
and features, e.g. AVX-512), compiled to object code, and loaded into one MCJIT
engine per process. Object code is what the persistent cache stores
(``lowering.llvm.cache``), so a cache hit skips code generation and optimisation.

Runtime symbols resolved here: libm, glibc's libmvec (SIMD math) and a BLAS
``cblas_sgemm``/``cblas_dgemm`` (NumPy's bundled OpenBLAS) under the names
``functrace_sgemm``/``functrace_dgemm``.
"""

from __future__ import annotations

import ctypes
import functools
import glob
import os
import threading

import llvmlite
import llvmlite.binding as llvm

_lock = threading.RLock()


@functools.cache
def _initialize() -> None:
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()


@functools.cache
def target_machine() -> llvm.TargetMachine:
    _initialize()
    target = llvm.Target.from_default_triple()
    return target.create_target_machine(cpu=cpu_name(), features=cpu_features(), opt=3, jit=True)


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
    """What compiled code depends on, for cache keys."""
    from functrace import __version__

    return f"functrace={__version__};llvmlite={llvmlite.__version__};llvm={llvm.llvm_version_info}"


def optimize(text: str) -> llvm.ModuleRef:
    """Parse, verify and optimise module text at O3 for the host."""
    tm = target_machine()
    with _lock:
        mod = llvm.parse_assembly(text)
        mod.triple = tm.triple
        mod.data_layout = str(tm.target_data)
        mod.verify()
        pto = llvm.create_pipeline_tuning_options(speed_level=3)
        pto.loop_vectorization = True
        pto.slp_vectorization = True
        # Unrolling and interleaving quadruple the code and double compile time for little
        # gain on memory-bound kernels; vectorization stays on.
        pto.loop_unrolling = False
        pto.loop_interleaving = False
        pb = llvm.create_pass_builder(tm, pto)
        pb.getModulePassManager().run(mod, pb)
        return mod


def emit_object(mod: llvm.ModuleRef) -> bytes:
    with _lock:
        return target_machine().emit_object(mod)


def emit_assembly(mod: llvm.ModuleRef) -> str:
    with _lock:
        return target_machine().emit_assembly(mod)


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
    cpu_features()
    libmvec_isa()
    blas()
    tune_malloc()
    versions()
    _create_engine()


def load(key: str, obj: bytes, names: list[str]) -> dict[str, int]:
    """Load object code into the process's JIT once per key; the addresses of ``names``."""
    global _engine
    with _lock:
        hit = _loaded.get(key)
        if hit is not None:
            return hit
        if _engine is None:
            _create_engine()
        _engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
        _engine.finalize_object()
        addresses = {n: _engine.get_function_address(n) for n in names}
        if not all(addresses.values()):
            missing = [n for n, a in addresses.items() if not a]
            raise RuntimeError(f"compiled code lacks the functions {missing}")
        _loaded[key] = addresses
        return addresses
