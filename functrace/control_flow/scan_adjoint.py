"""The adjoint pass over an IR whose intermediate values were saved: what a scan's
backward step runs on the residuals its forward pass stacked.

``grad`` differentiates Python code with a tape. A loop body is an IR instead, run once
per step by a primitive, so its reverse mode is an interpreter over the body's
equations in reverse order: each primitive's vjp rule is called with primal values read
from an environment of saved values (the residuals), and cotangents accumulate per
variable. Nothing of the body's forward computation is re-run, except inside
equations that chose to recompute (``checkpoint``'s ``remat_call``, nested loops).

>>> import numpy as np, functrace as ft, functrace.numpy as fnp
>>> body = ft.make_ir(lambda x: fnp.sin(x) * x)(1.0)
>>> [x], [sin_x], [out] = body.invars, body.eqns[0].outvars, body.eqns[1].outvars
>>> env = {x: np.array(1.0), sin_x: np.sin(1.0), out: np.sin(1.0) * 1.0}
>>> residual_vars(body, [True]) == [x, sin_x, out]
True
>>> [ct] = adjoint_pass(body, [True], env, [np.array(1.0)])
>>> bool(np.isclose(ct, np.cos(1.0) + np.sin(1.0)))
True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from functrace.core.ad_util import add_tangents, is_differentiable, set_needed_cotangents
from functrace.core.ir import Eqn, Function, Literal, Var
from functrace.core.primitive import get_rule, vjp_rules, zero_derivative


def active_equations(fn: Function, active_in: Sequence[bool]) -> tuple[list[bool], set[Var]]:
    """Which equations depend on a differentiated input (``active_in`` per invar), and
    the set of float variables that do: only those carry cotangents."""
    active: set[Var] = {v for v, a in zip(fn.invars, active_in, strict=True) if a and is_differentiable(v.aval)}
    flags = []
    for eqn in fn.eqns:
        on = eqn.primitive not in zero_derivative and any(isinstance(a, Var) and a in active for a in eqn.inputs)
        flags.append(on)
        if on:
            active.update(v for v in eqn.outvars if is_differentiable(v.aval))
    return flags, active


def residual_vars(fn: Function, active_in: Sequence[bool]) -> list[Var]:
    """The values the adjoint pass reads: the inputs and outputs of every active
    equation, in order of first appearance and without repeats."""
    flags, _ = active_equations(fn, active_in)
    seen: dict[Var, None] = {}
    for eqn, on in zip(fn.eqns, flags, strict=True):
        if on:
            for a in [*eqn.inputs, *eqn.outvars]:
                if isinstance(a, Var):
                    seen.setdefault(a)
    return list(seen)


def adjoint_pass(fn: Function, active_in: Sequence[bool], env: dict[Var, Any], cts_out: Sequence[Any]) -> list:
    """Cotangents of ``fn``'s inputs (``None`` = zero) given its outputs' cotangents.

    ``env`` maps every variable of ``residual_vars(fn, active_in)`` to its value;
    constants of ``fn`` are read from ``fn`` itself.
    """
    flags, active = active_equations(fn, active_in)
    env = {**dict(zip(fn.constvars, fn.consts, strict=True)), **env}
    ct_env: dict[Var, Any] = {}
    for v, ct in zip(fn.outvars, cts_out, strict=True):
        if isinstance(v, Var) and v in active and ct is not None:
            ct_env[v] = add_tangents(ct_env.get(v), ct)
    for eqn, on in zip(reversed(fn.eqns), reversed(flags), strict=True):
        if not on:
            continue
        cts = [ct_env.pop(v, None) for v in eqn.outvars]
        if all(c is None for c in cts):
            continue
        needed = tuple(isinstance(a, Var) and a in active for a in eqn.inputs)
        cts_in = _equation_vjp(eqn, env, cts, needed)
        for a, ct, need in zip(eqn.inputs, cts_in, needed, strict=True):
            if need and ct is not None:
                ct_env[a] = add_tangents(ct_env.get(a), ct)
    return [ct_env.get(v) for v in fn.invars]


def _equation_vjp(eqn: Eqn, env: dict[Var, Any], cts: list, needed: tuple[bool, ...]) -> list:
    from functrace.ad import tape_forward_rules

    primals_in = [a.val if isinstance(a, Literal) else env[a] for a in eqn.inputs]
    params = eqn.params
    forward = tape_forward_rules.get(eqn.primitive)
    if forward is None:
        primals_out = [env[v] for v in eqn.outvars]
    else:
        # Its vjp rule needs what the tape's forward pass would have saved: recompute it.
        primals_out, extra = forward(primals_in, **params)
        params = {**params, **extra}
    rule = get_rule(vjp_rules, eqn.primitive, "vjp")
    previous = set_needed_cotangents(needed)
    try:
        return rule(cts, primals_in, primals_out, **params)
    finally:
        set_needed_cotangents(previous)
