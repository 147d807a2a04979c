"""The IR type checker, run after every pass that produces IR.

It checks that every variable is defined exactly once before use, that literals
are scalars of the type they claim, and that each equation's output types are
what the primitive's shape/dtype rule computes from its input types.
"""

from __future__ import annotations

import numpy as np

from functrace.core.abstract import ShapedArray
from functrace.core.ir import Eqn, Function, Literal, Var
from functrace.errors import IRTypeError


def typecheck(fn: Function) -> None:
    """Raise ``IRTypeError`` naming the first malformed equation of ``fn``."""
    defined: set[Var] = set()

    def define(v: Var, where: str) -> None:
        if not isinstance(v, Var):
            raise IRTypeError(f"{where}: binder {v!r} is not a variable")
        if v in defined:
            raise IRTypeError(f"{where}: variable {v!r} is defined twice")
        defined.add(v)

    def check_atom(a, where: str) -> ShapedArray:
        if isinstance(a, Literal):
            val = np.asarray(a.val)
            if val.shape != () or a.aval.shape != ():
                raise IRTypeError(f"{where}: literal {a!r} is not a scalar")
            if val.dtype != a.aval.dtype:
                raise IRTypeError(f"{where}: literal value {val.dtype} does not match its type {a.aval}")
            return a.aval
        if not isinstance(a, Var):
            raise IRTypeError(f"{where}: {a!r} is neither a variable nor a literal")
        if a not in defined:
            raise IRTypeError(f"{where}: variable {a!r} is used before it is defined")
        return a.aval

    if len(fn.constvars) != len(fn.consts):
        raise IRTypeError(f"{len(fn.constvars)} constvars but {len(fn.consts)} constant values")
    for v in fn.constvars:
        define(v, "constvars")
    for v in fn.invars:
        define(v, "invars")
    for i, eqn in enumerate(fn.eqns):
        _check_eqn(eqn, i, check_atom, define)
    for a in fn.outvars:
        check_atom(a, "outputs")


def _check_eqn(eqn: Eqn, index: int, check_atom, define) -> None:
    where = f"equation {index} ({eqn.primitive.name})"
    in_avals = [check_atom(a, where) for a in eqn.inputs]
    try:
        expected = eqn.primitive.abstract_eval(*in_avals, **eqn.params)
    except TypeError as e:
        raise IRTypeError(f"{where}: inputs do not type-check: {e}") from e
    if len(expected) != len(eqn.outvars):
        raise IRTypeError(f"{where}: {len(eqn.outvars)} outputs, the rule gives {len(expected)}")
    for v, want in zip(eqn.outvars, expected, strict=True):
        if not isinstance(v, Var) or not v.aval.same_type(want):
            got = v.aval.str_short() if isinstance(v, Var) else repr(v)
            raise IRTypeError(f"{where}: output declared {got}, the rule gives {want.str_short()}")
    for v in eqn.outvars:
        define(v, where)
