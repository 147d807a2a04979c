"""Passes over the IR shared by every backend. Each is a small read/write
interpreter that returns a new ``Function`` (the input is not modified).

- ``eliminate_dead_code``: drop equations whose results nothing uses (every
  primitive is pure, so this is always valid). Staging runs it on every IR it builds.
"""

from __future__ import annotations

from functrace.core.ir import Function, Var


def eliminate_dead_code(fn: Function) -> Function:
    """``fn`` without equations whose outputs are unused, and without unused constants.

    >>> import numpy as np, functrace as ft, functrace.numpy as fnp
    >>> def f(x):
    ...     unused = fnp.exp(x)
    ...     return x * 2.0
    >>> [e.primitive.name for e in ft.make_ir(f)(np.ones(2)).eqns]
    ['mul']
    """
    live: set[Var] = {a for a in fn.outvars if isinstance(a, Var)}
    kept = []
    for eqn in reversed(fn.eqns):
        if any(v in live for v in eqn.outvars):
            kept.append(eqn)
            live.update(a for a in eqn.inputs if isinstance(a, Var))
    if len(kept) == len(fn.eqns) and all(v in live for v in fn.constvars):
        return fn
    pairs = [(v, c) for v, c in zip(fn.constvars, fn.consts, strict=True) if v in live]
    return Function(
        fn.invars,
        list(reversed(kept)),
        fn.outvars,
        [v for v, _ in pairs],
        [c for _, c in pairs],
        fn.in_tree,
        fn.out_tree,
        fn.arg_names,
    )
