"""Staging: trace a Python function into an IR ``Function``.

Staging installs its trace as the *dynamic* trace, so every primitive applied
while the function runs is recorded, even one on constants only. Arrays the
function closes over (or tracers of an enclosing transformation) become
constvars; scalar constants become literals.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from functrace.core import abstract
from functrace.core.abstract import ShapedArray
from functrace.core.ir import Eqn, Function, Literal, Var
from functrace.core.passes import eliminate_dead_code
from functrace.core.source_info import user_frame, with_user_line
from functrace.core.trace import Trace, Tracer, new_main


class StagingTracer(Tracer):
    __slots__ = ("_aval",)

    def __init__(self, trace: StagingTrace, aval: ShapedArray):
        self._trace = trace
        self._aval = aval

    @property
    def aval(self) -> ShapedArray:
        return self._aval


class IRBuilder:
    """Collects equations while a function is staged."""

    def __init__(self, arg_names: Sequence[str] = ()):
        self.eqns: list[Eqn] = []
        self.vars: dict[int, Var] = {}
        self.tracers: list[StagingTracer] = []  # keeps ids stable while building
        self.constvals: dict[Var, Any] = {}
        self.const_tracers: dict[int, StagingTracer] = {}
        self.invars: list[Var] = []
        self.arg_names = list(arg_names)

    def new_tracer(self, trace: StagingTrace, aval: ShapedArray) -> StagingTracer:
        tracer = StagingTracer(trace, aval)
        self.tracers.append(tracer)
        self.vars[id(tracer)] = Var(aval)
        return tracer

    def new_arg(self, trace: StagingTrace, aval: ShapedArray) -> StagingTracer:
        tracer = self.new_tracer(trace, aval)
        self.invars.append(self.vars[id(tracer)])
        return tracer

    def new_const(self, trace: StagingTrace, val: Any) -> StagingTracer:
        tracer = self.const_tracers.get(id(val))
        if tracer is None:
            aval = val.aval if isinstance(val, Tracer) else abstract.concrete_aval(val)
            tracer = self.new_tracer(trace, aval)
            self.constvals[self.vars[id(tracer)]] = val
            self.const_tracers[id(val)] = tracer
            self.tracers.append(val)  # keep val alive so its id is not reused
        return tracer

    def getvar(self, tracer: StagingTracer) -> Var:
        return self.vars[id(tracer)]

    def dependencies(self, tracer: StagingTracer) -> list[str]:
        """Names of the arguments a traced value depends on (for error messages)."""
        target = {self.getvar(tracer)}
        for eqn in reversed(self.eqns):
            if target.intersection(eqn.outvars):
                target.update(a for a in eqn.inputs if isinstance(a, Var))
        return [n for v, n in zip(self.invars, self.arg_names, strict=False) if v in target]

    def build(self, out_tracers: Sequence[Any], trace: StagingTrace) -> Function:
        outvars = [self.getvar(trace.full_raise(t)) for t in out_tracers]
        constvars, consts, literals = [], [], {}
        for var, val in self.constvals.items():
            if not isinstance(val, Tracer) and np.ndim(val) == 0:
                literals[var] = Literal(abstract.as_array(val, var.aval.dtype)[()], var.aval)
            else:
                constvars.append(var)
                consts.append(val if isinstance(val, Tracer) else abstract.as_array(val, var.aval.dtype))
        eqns = [_inline_literals(e, literals) for e in self.eqns]
        outs = [literals.get(v, v) for v in outvars]
        fn = Function(self.invars, eqns, outs, constvars, consts, arg_names=self.arg_names)
        return eliminate_dead_code(fn)


def _inline_literals(eqn: Eqn, literals: dict[Var, Literal]) -> Eqn:
    if not any(a in literals for a in eqn.inputs if isinstance(a, Var)):
        return eqn
    inputs = [literals.get(a, a) if isinstance(a, Var) else a for a in eqn.inputs]
    return Eqn(eqn.primitive, inputs, eqn.params, eqn.outvars, eqn.source)


class StagingTrace(Trace):
    __slots__ = ()

    @property
    def builder(self) -> IRBuilder:
        return self.main.global_data

    def pure(self, val: Any) -> StagingTracer:
        return self.builder.new_const(self, val)

    lift = pure

    def process_primitive(self, primitive, tracers, params):
        builder = self.builder
        avals_out = primitive.abstract_eval(*[t.aval for t in tracers], **params)
        outs = [builder.new_tracer(self, a) for a in avals_out]
        eqn = Eqn(
            primitive,
            [builder.getvar(t) for t in tracers],
            params,
            [builder.getvar(t) for t in outs],
            user_frame(),
        )
        builder.eqns.append(eqn)
        return outs

    def concretization_message(self, tracer: Tracer, what: str) -> str:
        deps = self.builder.dependencies(tracer)
        origin = (
            f"it depends on the argument{'s' if len(deps) > 1 else ''} {', '.join(deps)}"
            if deps
            else "it was computed inside the traced function"
        )
        return with_user_line(
            f"{what} needs a concrete value, but got a traced value {tracer.aval.str_short()} "
            f"inside {self.main.description}: {origin}. For control flow on traced values use "
            "lax.cond, lax.switch or lax.while_loop; if the value is really a constant "
            "(a size, a flag, a mode), pass it with static_argnums."
        )


def trace_to_ir(
    fun: Callable[..., Sequence[Any]],
    in_avals: Sequence[ShapedArray],
    arg_names: Sequence[str] = (),
    description: str = "make_ir",
) -> Function:
    """Stage ``fun`` (flat inputs to a flat list of outputs) into a ``Function``."""
    builder = IRBuilder(arg_names)
    with new_main(StagingTrace, builder, description=description, dynamic=True) as main:
        trace = StagingTrace(main)
        args = [builder.new_arg(trace, a) for a in in_avals]
        outs = fun(*args)
        fn = builder.build(outs, trace)
    return fn


def leaf_names(args: Sequence[Any], fun: Callable, skip: Sequence[int] = ()) -> list[str]:
    """Readable names of the leaves of ``args``: ``x``, ``params[0]['w']``..."""
    try:
        params = list(inspect.signature(fun).parameters.values())
    except (TypeError, ValueError):
        params = []
    names: list[str] = []
    for i, arg in enumerate(args):
        if i in skip:
            continue
        if i < len(params) and params[i].kind in (params[i].POSITIONAL_ONLY, params[i].POSITIONAL_OR_KEYWORD):
            base = params[i].name
        else:
            base = f"args[{i}]"
        names.extend(base + path for path in _paths(arg))
    return names


def _paths(tree: Any, prefix: str = "") -> list[str]:
    if isinstance(tree, dict):
        return [p for k in sorted(tree) for p in _paths(tree[k], f"{prefix}[{k!r}]")]
    if isinstance(tree, tuple | list):
        return [p for i, x in enumerate(tree) for p in _paths(x, f"{prefix}[{i}]")]
    if tree is None:
        return []
    from functrace.tree_util import tree_leaves

    n = len(tree_leaves(tree))
    return [prefix] if n == 1 else [f"{prefix}<{j}>" for j in range(n)]


# --- closed IRs for higher-order primitives ----------------------------------------------


def close(ir: Function) -> tuple[Function, list]:
    """Make constants leading inputs: returns the closed IR and the constant values."""
    closed = Function([*ir.constvars, *ir.invars], ir.eqns, ir.outvars)
    closed.typecheck()
    return closed, list(ir.consts)


def stage_closed(fun: Callable, in_avals: Sequence[ShapedArray], description: str) -> tuple[Function, list, Any]:
    """Trace ``fun`` (flat inputs, pytree output) to a closed IR; returns (IR, consts, out_tree)."""
    from functrace.tree_util import tree_flatten

    out_tree_box: list = []

    def flat_fun(*xs):
        out = fun(*xs)
        out_flat, out_tree = tree_flatten(out)
        out_tree_box.append(out_tree)
        return out_flat

    ir = trace_to_ir(flat_fun, list(in_avals), description=description)
    closed, consts = close(ir)
    return closed, consts, out_tree_box[0]
