"""The pretty printer: one equation a line, JAX's jaxpr style.

{ lambda c:f32[3]; a:f32[3] b:f32[3]. let
    d:f32[3] = mul a b
    e:f32[3] = add d c
  in (e,) }
"""

from __future__ import annotations

from typing import Any

import numpy as np

from functrace.core.ir import Function, Literal, Var


class _Names:
    """Short names a, b, ..., z, ba, bb, ... in order of first definition."""

    def __init__(self) -> None:
        self.names: dict[Var, str] = {}

    def __call__(self, v: Var) -> str:
        name = self.names.get(v)
        if name is None:
            name = self.names[v] = _nth_name(len(self.names))
        return name


def _nth_name(n: int) -> str:
    letters = "abcdefghijklmnopqrstuvwxyz"
    s = ""
    while True:
        s = letters[n % 26] + s
        n //= 26
        if n == 0:
            return s


def pp_literal(lit: Literal) -> str:
    val = np.asarray(lit.val).item()
    return f"{val!r}:{lit.aval.str_short()}"


def pp_function(fn: Function, indent: int = 0) -> str:
    names = _Names()

    def binder(v: Var) -> str:
        return f"{names(v)}:{v.aval.str_short()}"

    def atom(a) -> str:
        return pp_literal(a) if isinstance(a, Literal) else names(a)

    pad = " " * indent
    consts = " ".join(binder(v) for v in fn.constvars)
    ins = " ".join(binder(v) for v in fn.invars)
    lines = [f"{pad}{{ lambda {consts}; {ins}. let"]
    for eqn in fn.eqns:
        outs = " ".join(binder(v) for v in eqn.outvars)
        params = _pp_params(eqn.params, indent + 4)
        args = " ".join(atom(a) for a in eqn.inputs)
        lines.append(f"{pad}    {outs} = {eqn.primitive.name}{params} {args}".rstrip())
    outs = ", ".join(atom(a) for a in fn.outvars)
    if len(fn.outvars) == 1:
        outs += ","
    lines.append(f"{pad}  in ({outs}) }}")
    return "\n".join(lines)


def _pp_params(params: dict[str, Any], indent: int) -> str:
    if not params:
        return ""
    parts = []
    for k in sorted(params):
        v = params[k]
        if isinstance(v, Function):
            parts.append(f"{k}=\n{pp_function(v, indent + 2)}\n{' ' * indent}")
        elif isinstance(v, tuple) and v and all(isinstance(x, Function) for x in v):
            inner = "\n".join(pp_function(x, indent + 2) for x in v)
            parts.append(f"{k}=(\n{inner}\n{' ' * indent})")
        else:
            parts.append(f"{k}={_pp_value(v)}")
    return "[" + " ".join(parts) + "]"


def _pp_value(v: Any) -> str:
    if isinstance(v, np.dtype):
        return v.name
    if isinstance(v, type) and issubclass(v, np.generic):
        return np.dtype(v).name
    if isinstance(v, tuple) and hasattr(v, "_fields"):  # a NamedTuple of dimension numbers
        fields = ", ".join(f"{k}={_pp_value(getattr(v, k))}" for k in v._fields)
        return f"{type(v).__name__}({fields})"
    if isinstance(v, tuple):
        inner = ", ".join(_pp_value(x) for x in v)
        return f"({inner},)" if len(v) == 1 else f"({inner})"
    return repr(v)
