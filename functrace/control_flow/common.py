"""Staging and transforming the sub-IRs that control-flow primitives carry.

- (closure conversion itself is ``functrace.core.staging.stage_closed``, shared with the
  custom-derivative primitives).
- ``jvp_function``: the IR of the JVP of an IR, for the tangents known to be nonzero.
- ``batch_function``: the IR of an IR under ``vmap``, with chosen mapped axes.
- ``check_same_types``: the error users get when branch or carry types disagree.

Transformed IRs are cached by the identity of the source IR and the transformation's
arguments, so ``grad(grad(scan(...)))`` does not re-trace the same body over and over.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import Any

from functrace import tree_util
from functrace.core.abstract import ShapedArray
from functrace.core.ad_util import Zero, instantiate, is_differentiable
from functrace.core.eval import eval_ir
from functrace.core.ir import Function
from functrace.core.source_info import with_user_line
from functrace.core.staging import trace_to_ir
from functrace.core.trace import get_aval

_cache: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def cached(fn: Function, key: tuple, build: Callable[[], Any]) -> Any:
    table = _cache.setdefault(fn, {})
    if key not in table:
        table[key] = build()
    return table[key]


def stage_transformed(fun: Callable, in_avals: Sequence[ShapedArray], description: str) -> Function:
    """Trace a transformation of a closed IR. Its only constants are arrays the rules
    made (never tracers: everything traced is an input), so they stay embedded."""
    from functrace.core.trace import Tracer

    ir = trace_to_ir(fun, list(in_avals), description=description)
    if any(isinstance(c, Tracer) for c in ir.consts):
        raise AssertionError(f"{description} of a closed IR captured a traced value")
    ir.typecheck()
    return ir


def check_same_types(what: str, names: Sequence[str], got: Sequence[ShapedArray], want: Sequence[ShapedArray]) -> None:
    """``TypeError`` naming the first leaf whose shape or dtype differs."""
    if len(got) != len(want):
        raise TypeError(with_user_line(f"{what}: {len(got)} values where {len(want)} were expected"))
    for name, g, w in zip(names, got, want, strict=True):
        if not g.same_type(w):
            raise TypeError(with_user_line(f"{what}: {name} has type {g.str_short()} but must be {w.str_short()}"))


def leaf_paths(prefix: str, tree_def) -> list[str]:
    """Readable names for the leaves of a pytree structure (``carry[0]['w']``)."""
    example = tree_util.tree_unflatten(tree_def, list(range(tree_def.num_leaves)))
    names = [""] * tree_def.num_leaves

    def walk(x, path):
        if isinstance(x, dict):
            for k in sorted(x):
                walk(x[k], f"{path}[{k!r}]")
        elif isinstance(x, tuple | list):
            for i, v in enumerate(x):
                walk(v, f"{path}[{i}]")
        elif isinstance(x, int):
            names[x] = path or prefix
        else:
            for i, leaf in enumerate(tree_util.tree_leaves(x)):
                names[leaf] = f"{path}<{i}>"

    walk(example, prefix)
    return names


# --- jvp of an IR -----------------------------------------------------------------------------


def jvp_function(fn: Function, nonzero: Sequence[bool], instantiate_out: bool | Sequence[bool] = True):
    """The IR ``(primals, tangents of the nonzero inputs) -> (primals_out, tangents_out)``.

    Returns ``(ir, out_nonzero)``; output tangents are instantiated (as zeros) where
    ``instantiate_out`` says so, and left out of the IR where they are symbolic zeros.
    """
    nonzero = tuple(bool(n) and is_differentiable(v.aval) for n, v in zip(nonzero, fn.invars, strict=True))
    if isinstance(instantiate_out, bool):
        instantiate_out = (instantiate_out,) * len(fn.outvars)
    key = ("jvp", nonzero, tuple(instantiate_out))
    return cached(fn, key, lambda: _build_jvp(fn, nonzero, tuple(instantiate_out)))


def _build_jvp(fn: Function, nonzero: tuple[bool, ...], instantiate_out: tuple[bool, ...]):
    from functrace.ad import jvp_flat

    n = len(fn.invars)
    tangent_avals = [v.aval.strip_weak() for v, nz in zip(fn.invars, nonzero, strict=True) if nz]
    out_nonzero_box: list = []

    def jvp_fun(*xs):
        primals = list(xs[:n])
        it = iter(xs[n:])
        tangents = [next(it) if nz else Zero(v.aval) for v, nz in zip(fn.invars, nonzero, strict=True)]
        in_tree = tree_util.tree_structure(tuple(primals))
        outs, t_outs, _ = jvp_flat(lambda *a: eval_ir(fn, a), primals, tangents, in_tree)
        kept, flags = [], []
        for t, inst, o in zip(t_outs, instantiate_out, outs, strict=True):
            live = type(t) is not Zero or (inst and is_differentiable(get_aval(o)))
            flags.append(live)
            if live:
                kept.append(instantiate(t))
        out_nonzero_box.append(tuple(flags))
        return [*outs, *kept]

    ir = stage_transformed(jvp_fun, [v.aval for v in fn.invars] + tangent_avals, "jvp")
    return ir, out_nonzero_box[0]


# --- vmap of an IR ----------------------------------------------------------------------------


def batch_function(fn: Function, dims: Sequence[int | None], size: int, out_dims: Sequence[int | None] | None = None):
    """The IR of ``fn`` under ``vmap`` with input mapped axes ``dims``.

    Outputs are moved to ``out_dims`` when given (``None`` there means the output must be
    unmapped), otherwise every mapped output goes to axis 0. Returns ``(ir, out_dims)``.
    """
    key = ("batch", tuple(dims), size, None if out_dims is None else tuple(out_dims))
    return cached(fn, key, lambda: _build_batch(fn, tuple(dims), size, out_dims))


def _build_batch(fn: Function, dims: tuple, size: int, requested: Sequence[int | None] | None):
    from functrace.batching import vmap_flat
    from functrace.core.batching_util import move_axis

    avals = []
    for v, d in zip(fn.invars, dims, strict=True):
        shape = list(v.aval.shape)
        if d is not None:
            shape.insert(d, size)
        avals.append(ShapedArray(tuple(shape), v.aval.dtype, v.aval.weak_type))
    out_dims_box: list = []

    def batched(*xs):
        in_tree = tree_util.tree_structure(tuple(xs))
        vals, _, got = vmap_flat(lambda *a: eval_ir(fn, a), xs, list(dims), size, in_tree)
        want = requested if requested is not None else [None if d is None else 0 for d in got]
        outs = []
        for v, d, w in zip(vals, got, want, strict=True):
            if w is None and d is not None:
                raise _MappedOutput()
            outs.append(v if w is None else move_axis(v, d, w, size))
        out_dims_box.append(list(want))
        return outs

    ir = stage_transformed(batched, avals, "vmap")
    return ir, out_dims_box[0]


class _MappedOutput(Exception):
    """An output asked to be unmapped came out mapped (callers widen and retry)."""


MappedOutput = _MappedOutput
