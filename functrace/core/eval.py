"""Evaluate an IR function, one equation at a time, through ``bind``.

Because every equation goes through ``bind``, evaluating an IR inside a
transformation transforms it: this is how staged code composes with everything.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from functrace.config import config
from functrace.core.abstract import concrete_aval
from functrace.core.ir import Function, Literal, Var
from functrace.core.trace import Tracer, bind


def eval_ir(fn: Function, args: Sequence[Any]) -> list[Any]:
    """Evaluate ``fn`` on flat arguments (its constants are bound automatically)."""
    env: dict[Var, Any] = {}
    for v, x in zip(fn.constvars, fn.consts, strict=True):
        env[v] = x
    for v, x in zip(fn.invars, args, strict=True):
        env[v] = x

    def read(atom):
        return atom.val if isinstance(atom, Literal) else env[atom]

    debug_nans = config.debug_nans
    for eqn in fn.eqns:
        if debug_nans:
            outs = _bind_naming_source(eqn, list(map(read, eqn.inputs)))
        else:
            outs = bind(eqn.primitive, *map(read, eqn.inputs), **eqn.params)
        if not eqn.primitive.multiple_results:
            outs = (outs,)
        for v, x in zip(eqn.outvars, outs, strict=True):
            env[v] = x
    return [read(a) for a in fn.outvars]


def _bind_naming_source(eqn, args: list) -> Any:
    try:
        return bind(eqn.primitive, *args, **eqn.params)
    except FloatingPointError as e:
        if eqn.source and "traced at" not in str(e):
            raise FloatingPointError(f"{e}\n  (traced at {eqn.source})") from None
        raise


def eval_function(fn: Function, *args: Any) -> Any:
    """Evaluate on pytree arguments, checking them against the traced types."""
    from functrace.tree_util import tree_flatten, tree_unflatten

    flat, in_tree = tree_flatten(args)
    if fn.in_tree is not None and in_tree != fn.in_tree:
        raise TypeError(f"eval expected arguments structured as {fn.in_tree}, got {in_tree}")
    if len(flat) != len(fn.invars):
        raise TypeError(f"eval expected {len(fn.invars)} array arguments, got {len(flat)}")
    for i, (v, x) in enumerate(zip(fn.invars, flat, strict=True)):
        aval = x.aval if isinstance(x, Tracer) else concrete_aval(x)
        if not aval.same_type(v.aval):
            name = fn.arg_names[i] if i < len(fn.arg_names) else f"#{i}"
            raise TypeError(f"eval: argument {name} was traced as {v.aval.str_short()} but got {aval.str_short()}")
    outs = eval_ir(fn, flat)
    return outs if fn.out_tree is None else tree_unflatten(fn.out_tree, outs)
