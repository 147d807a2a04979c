"""The staging entry points: ``make_ir`` and ``jit``."""

from __future__ import annotations

import functools
import inspect
import logging
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from functrace import tree_util
from functrace.config import config as _config
from functrace.control_flow.scan_passes import (
    hoist_accumulations,
    pretranspose_loop_weights,
    prune_scans,
    sink_input_biases,
)
from functrace.core.abstract import ShapedArray
from functrace.core.eval import eval_ir
from functrace.core.ir import Function
from functrace.core.layout import absorb_transposes
from functrace.core.passes import simplify
from functrace.core.source_info import api_boundary
from functrace.core.staging import leaf_names, trace_to_ir
from functrace.core.trace import Tracer, _state, get_aval


def _normalize_argnums(argnums: int | Sequence[int], nargs: int, what: str) -> tuple[int, ...]:
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    out = []
    for n in nums:
        if not -nargs <= n < nargs:
            raise ValueError(f"{what}={n} is out of range for a call with {nargs} positional arguments")
        out.append(n % nargs)
    return tuple(sorted(set(out)))


def _hashable_static(value: Any, index: int, fun: Callable) -> Any:
    try:
        hash(value)
    except TypeError:
        raise ValueError(
            f"static argument {index} of {getattr(fun, '__name__', 'the function')} has "
            f"unhashable type {type(value).__name__}; static arguments are cache keys, so "
            "pass a hashable value (a tuple instead of a list, say)"
        ) from None
    return value


def optimize(fn: Function) -> Function:
    """The IR passes every backend gets, in order: simplification (folding, identities,
    CSE, DCE), scans' accumulations hoisted and unused residuals pruned, transposes
    absorbed into products and reductions, biases of scanned inputs added in the loop
    body, loop bodies' products by a weight's transpose made to read a transposed copy,
    and simplification again."""
    fn = prune_scans(hoist_accumulations(simplify(fn)))
    return simplify(pretranspose_loop_weights(sink_input_biases(absorb_transposes(fn))))


def _stage(
    fun: Callable,
    args: tuple,
    static_nums: tuple[int, ...],
    description: str,
) -> tuple[Function, list]:
    """Trace ``fun(*args)`` with the non-static arguments abstract."""
    dynamic = tuple(a for i, a in enumerate(args) if i not in static_nums)
    flat, in_tree = tree_util.tree_flatten(dynamic)
    in_avals = [get_aval(x) for x in flat]
    out_tree_box: list = []

    def flat_fun(*flat_args):
        rebuilt = tree_util.tree_unflatten(in_tree, flat_args)
        it = iter(rebuilt)
        full = [a if i in static_nums else next(it) for i, a in enumerate(args)]
        out = fun(*full)
        out_flat, out_tree = tree_util.tree_flatten(out)
        out_tree_box.append(out_tree)
        return out_flat

    names = leaf_names(args, fun, skip=static_nums)
    fn = trace_to_ir(flat_fun, in_avals, names, description=description)
    fn.in_tree, fn.out_tree = in_tree, out_tree_box[0]
    fn.typecheck()
    return fn, flat


def make_ir(fun: Callable, static_argnums: int | Sequence[int] = ()) -> Callable[..., Function]:
    """Return a function that traces ``fun`` at the given arguments into IR.

    Static arguments are baked into the IR; ``.eval`` takes the others.

    >>> import numpy as np, functrace as ft, functrace.numpy as fnp
    >>> print(ft.make_ir(lambda x, y: fnp.sin(x) * y)(np.ones(3), 2.0))
    { lambda ; a:f64[3] b:f64[]. let
        c:f64[3] = sin a
        d:f64[3] = mul c b
      in (d,) }
    """

    @api_boundary
    @functools.wraps(fun)
    def make_ir_fun(*args: Any) -> Function:
        static = _normalize_argnums(static_argnums, len(args), "static_argnums") if args else ()
        for i in static:
            _hashable_static(args[i], i, fun)
        fn, _ = _stage(fun, args, static, f"make_ir({getattr(fun, '__name__', 'fun')})")
        return fn

    return make_ir_fun


# --- jit -----------------------------------------------------------------------------

_backends: dict[str, Callable[[Function], Callable[..., list]]] = {}


def register_backend(name: str, compile_fn: Callable[..., Callable[..., list]]) -> None:
    """Backends (``lowering.llvm``, ``lowering.cuda``) register their compilers here:
    ``compile_fn(fn, donated)`` where ``donated`` holds the flat input positions whose
    buffers the caller donates (the backend may reuse them for outputs)."""
    _backends[name] = compile_fn


def _interpret(fn: Function, donated: tuple[int, ...] = ()) -> Callable[..., list]:
    dtypes = [v.aval.dtype for v in fn.invars]

    def run(*flat: Any) -> list:
        # Arguments take the dtypes the IR was traced with (an int8 array was traced as int32).
        args = [x if getattr(x, "dtype", None) == d else np.asarray(x, d) for x, d in zip(flat, dtypes, strict=True)]
        return eval_ir(fn, args)

    return run


register_backend("interpret", _interpret)

DEFAULT_BACKEND = "cpu"
_BACKEND_MODULES = {"cpu": "lowering.llvm", "cuda": "lowering.cuda"}


def get_backend(name: str) -> Callable[[Function], Callable[..., list]]:
    if name not in _backends and name in _BACKEND_MODULES:
        import contextlib
        import importlib

        with contextlib.suppress(ImportError):
            importlib.import_module(_BACKEND_MODULES[name])
    if name not in _backends:
        known = sorted(set(_backends) | set(_BACKEND_MODULES))
        if name in _BACKEND_MODULES:
            raise NotImplementedError(
                f'the {name!r} backend is not available in this version of functrace; use jit(..., backend="interpret")'
            )
        raise ValueError(f"unknown backend {name!r}; known backends: {', '.join(known)}")
    return _backends[name]


class _CacheEntry:
    __slots__ = ("executable", "fn", "single")

    def __init__(self, fn: Function, executable: Callable[..., list]):
        self.fn = fn
        self.executable = executable
        self.single = fn.out_tree is not None and fn.out_tree.node_type is None


_log = logging.getLogger("functrace.jit")
_config_values = _config._values


def _log_compiles() -> bool:
    return os.environ.get("FUNCTRACE_LOG_COMPILES", "") not in ("", "0") or _log.isEnabledFor(logging.DEBUG)


def _miss_reason(key: tuple, cached: Sequence[tuple], names: Sequence[str]) -> str:
    """Why ``key`` missed the cache, against the closest cached key."""
    if not cached:
        return "first call"
    in_tree, sigs, static = key
    best: list[str] | None = None
    for other_tree, other_sigs, other_static in cached:
        if other_tree != in_tree:
            continue
        diffs = []
        for name, (shape, dtype, weak), (shape2, dtype2, weak2) in zip(names, sigs, other_sigs, strict=True):
            if shape != shape2:
                diffs.append(f"new shape for {name}: {shape} (cached: {shape2})")
            if dtype != dtype2:
                diffs.append(f"new dtype for {name}: {dtype} (cached: {dtype2})")
            if weak != weak2:
                diffs.append(f"new weak type for {name}: {weak} (cached: {weak2})")
        for (i, v), (_, v2) in zip(static, other_static, strict=False):
            if v != v2:
                diffs.append(f"new static value for argument {i}: {v!r} (cached: {v2!r})")
        if diffs and (best is None or len(diffs) < len(best)):
            best = diffs
    return "; ".join(best) if best else "new argument structure"


class Lowered:
    """A jitted function staged and optimised for particular arguments."""

    def __init__(self, fn: Function, backend: str, compile_fn: Callable[[], Callable[..., list]]):
        self._fn = fn
        self._backend = backend
        self._compile = compile_fn

    def as_text(self) -> str:
        """The IR that the backend compiles."""
        return str(self._fn)

    def as_llvm(self) -> str:
        """The optimised LLVM IR (cpu backend)."""
        compiled = getattr(self._compile(), "compiled", None)
        if compiled is None or not hasattr(compiled, "llvm_ir"):
            raise NotImplementedError(f"as_llvm() needs the cpu backend; this was lowered for {self._backend!r}")
        return compiled.llvm_ir()

    def compile(self) -> Callable[..., list]:
        return self._compile()


class JittedFunction:
    """A function compiled per abstract signature; see ``jit``."""

    def __init__(
        self,
        fun: Callable,
        static_argnums: tuple[int, ...],
        static_argnames: tuple[str, ...],
        backend: str | None,
        donate_argnums: tuple[int, ...],
    ):
        functools.update_wrapper(self, fun)
        self._fun = fun
        self._static_argnums = static_argnums
        self._static_argnames = static_argnames
        self._backend = backend or DEFAULT_BACKEND
        self._donate_argnums = donate_argnums
        self._cache: dict[Any, _CacheEntry] = {}
        # Cached calls whose arguments are all plain arrays skip flattening and key building.
        self._fast: dict[tuple, _CacheEntry] = {}
        # The only cache entry, when there is one and it takes plain arrays: its compiled
        # entry point checks the arguments itself.
        self._sole_call: tuple | None = None  # (number of arguments, fast, single output, out tree)
        self._lock = threading.Lock()
        self._signature = _signature_or_none(fun)

    def _bind_args(self, args: tuple, kwargs: dict) -> tuple[tuple, tuple[int, ...]]:
        """Positional arguments (keywords resolved through the signature) and static positions."""
        if kwargs:
            if self._signature is None:
                raise TypeError("keyword arguments need a function with an inspectable signature")
            bound = self._signature.bind(*args, **kwargs)
            bound.apply_defaults()
            args = tuple(bound.args)
            if bound.kwargs:
                raise TypeError(f"jit does not support keyword-only arguments ({', '.join(bound.kwargs)})")
        nargs = len(args)
        static = set(_normalize_argnums(self._static_argnums, nargs, "static_argnums") if nargs else ())
        if self._static_argnames and self._signature is not None:
            names = list(self._signature.parameters)
            static.update(names.index(n) for n in self._static_argnames if n in names and names.index(n) < nargs)
        return args, tuple(sorted(static))

    def _entry(self, args: tuple, static: tuple[int, ...]) -> tuple[_CacheEntry, list]:
        dynamic = tuple(a for i, a in enumerate(args) if i not in static)
        flat, in_tree = tree_util.tree_flatten(dynamic)
        key = (
            in_tree,
            tuple(_signature_of(x) for x in flat),
            tuple((i, _hashable_static(args[i], i, self._fun)) for i in static),
        )
        entry = self._cache.get(key)
        if entry is None:
            with self._lock:
                entry = self._cache.get(key)
                if entry is None:
                    name = getattr(self._fun, "__name__", "fun")
                    fn, _ = _stage(self._fun, args, static, f"jit({name})")
                    if _log_compiles():
                        reason = _miss_reason(
                            key, list(self._cache), fn.arg_names or [f"arg{i}" for i in range(len(flat))]
                        )
                        _log.warning("jit: compiling %s for %s: %s", name, self._backend, reason)
                    # The staged IR was type-checked; the passes keep it well typed.
                    fn = optimize(fn)
                    entry = _CacheEntry(fn, get_backend(self._backend)(fn, self._donated_leaves(args, static)))
                    self._cache[key] = entry
        if not static and not self._donate_argnums and all(type(a) is np.ndarray for a in args):
            self._fast[tuple([(a.shape, a.dtype) for a in args])] = entry
            fast = getattr(entry.executable, "fast", None)
            sole = len(self._cache) == 1 and fast is not None
            self._sole_call = (len(args), fast, entry.single, entry.fn.out_tree) if sole else None
        return entry, flat

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        sole = self._sole_call
        if (
            sole is not None
            and not kwargs
            and len(args) == sole[0]
            and not _config_values["debug_nans"]
            and not _state.dynamic.level
        ):
            # The compiled entry checks the arguments itself (tracers are refused).
            outs = sole[1](args)
            if outs is not None:
                return outs[0] if sole[2] else tree_util.tree_unflatten(sole[3], outs)
        if not kwargs and _state.dynamic.level == 0:
            # The fast path: every argument a plain array of a signature seen before.
            fast_key = tuple([(a.shape, a.dtype) for a in args if type(a) is np.ndarray])
            entry = self._fast.get(fast_key) if len(fast_key) == len(args) else None
            if entry is not None and not _config_values["debug_nans"]:
                outs = entry.executable(*args)
                return outs[0] if entry.single else tree_util.tree_unflatten(entry.fn.out_tree, outs)
        return self._call(*args, **kwargs)

    @api_boundary
    def _call(self, *args: Any, **kwargs: Any) -> Any:
        args, static = self._bind_args(args, kwargs)
        entry, flat = self._entry(args, static)
        if _state.dynamic.level > 0 or any(isinstance(x, Tracer) for x in flat):
            # Inside another transformation: inline the staged IR so the enclosing
            # transformation sees (and transforms) its equations. (Static arguments
            # cannot be tracers: tracers are unhashable.)
            outs = eval_ir(entry.fn, flat)
        else:
            outs = entry.executable(*flat)
        return tree_util.tree_unflatten(entry.fn.out_tree, outs)

    def _donated_leaves(self, args: tuple, static: tuple[int, ...]) -> tuple[int, ...]:
        """Flat input positions of the leaves of the donated arguments."""
        if not self._donate_argnums:
            return ()
        donate = set(_normalize_argnums(self._donate_argnums, len(args), "donate_argnums"))
        out, pos = [], 0
        for i, a in enumerate(args):
            if i in static:
                continue
            n = len(tree_util.tree_leaves(a))
            if i in donate:
                out.extend(range(pos, pos + n))
            pos += n
        return tuple(out)

    def lower(self, *args: Any, **kwargs: Any) -> Lowered:
        """Stage for these arguments without running: ``.as_text()``, ``.compile()``."""
        args, static = self._bind_args(args, kwargs)
        entry, _ = self._entry(args, static)
        return Lowered(entry.fn, self._backend, lambda: entry.executable)

    def cache_size(self) -> int:
        return len(self._cache)


def _signature_or_none(fun: Callable) -> inspect.Signature | None:
    try:
        return inspect.signature(fun)
    except (TypeError, ValueError):
        return None


def _signature_of(x: Any) -> tuple:
    """A leaf's part of the cache key. An array's own dtype stands in for the canonical one
    (cheaper; an int8 array then has its own entry, traced as int32 all the same)."""
    if type(x) is np.ndarray:
        return (x.shape, x.dtype, False)
    aval: ShapedArray = get_aval(x)
    return (aval.shape, aval.dtype, aval.weak_type)


def jit(
    fun: Callable | None = None,
    *,
    static_argnums: int | Sequence[int] = (),
    static_argnames: str | Sequence[str] = (),
    backend: str | None = None,
    donate_argnums: int | Sequence[int] = (),
) -> Any:
    """Compile ``fun``: trace it once per abstract signature and run the compiled IR.

    The cache key is the pytree structure, shapes, dtypes and weak types of the
    arguments, plus the values of static arguments (which must be hashable).

    >>> import numpy as np, functrace as ft, functrace.numpy as fnp
    >>> f = ft.jit(lambda x: fnp.tanh(x) * 2.0, backend="interpret")
    >>> f(np.zeros(2, np.float32))
    array([0., 0.], dtype=float32)
    """
    if fun is None:
        return functools.partial(
            jit,
            static_argnums=static_argnums,
            static_argnames=static_argnames,
            backend=backend,
            donate_argnums=donate_argnums,
        )
    get_backend(backend or DEFAULT_BACKEND)  # load it now (and fail early if unknown or unavailable)
    nums = (static_argnums,) if isinstance(static_argnums, int) else tuple(static_argnums)
    names = (static_argnames,) if isinstance(static_argnames, str) else tuple(static_argnames)
    donate = (donate_argnums,) if isinstance(donate_argnums, int) else tuple(donate_argnums)
    return JittedFunction(fun, nums, names, backend, donate)
