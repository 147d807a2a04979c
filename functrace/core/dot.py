"""Graphviz DOT text of an IR function: the graph view of a computation."""

from __future__ import annotations

from functrace.core.ir import Function, Literal, Var
from functrace.core.pretty import _pp_value, pp_literal


def _escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"')


def to_dot(fn: Function, name: str = "functrace") -> str:
    """Nodes are inputs, constants and operations; edges carry the value's type.

    >>> import numpy as np, functrace as ft, functrace.numpy as fnp
    >>> print(ft.make_ir(lambda x: fnp.sin(x))(np.ones(2)).to_dot().splitlines()[0])
    digraph functrace {
    """
    lines = [
        f"digraph {name} {{",
        "  rankdir=TB;",
        '  node [fontname="Helvetica", fontsize=10];',
        '  edge [fontname="Helvetica", fontsize=9];',
    ]
    producer: dict[Var, str] = {}
    for i, v in enumerate(fn.constvars):
        node = f"const{i}"
        producer[v] = node
        lines.append(f'  {node} [shape=box, style=filled, fillcolor=lightgray, label="const\\n{v.aval.str_short()}"];')
    for i, v in enumerate(fn.invars):
        node = f"in{i}"
        producer[v] = node
        label = fn.arg_names[i] if i < len(fn.arg_names) else f"in{i}"
        lines.append(
            f"  {node} [shape=ellipse, style=filled, fillcolor=lightblue, "
            f'label="{_escape(label)}\\n{v.aval.str_short()}"];'
        )
    for i, eqn in enumerate(fn.eqns):
        node = f"op{i}"
        types = ", ".join(v.aval.str_short() for v in eqn.outvars)
        params = "".join(
            f"\\n{k}={_escape(_pp_value(v))}"
            for k, v in sorted(eqn.params.items())
            if not isinstance(v, Function) and len(_pp_value(v)) <= 40
        )
        lines.append(f'  {node} [shape=box, label="{eqn.primitive.name}{params}\\n{types}"];')
        for a in eqn.inputs:
            if isinstance(a, Literal):
                lines.append(f'  {node}_lit{id(a)} [shape=plaintext, label="{_escape(pp_literal(a))}"];')
                lines.append(f"  {node}_lit{id(a)} -> {node};")
            else:
                lines.append(f'  {producer[a]} -> {node} [label="{a.aval.str_short()}"];')
        for v in eqn.outvars:
            producer[v] = node
    for i, a in enumerate(fn.outvars):
        lines.append(
            f'  out{i} [shape=ellipse, style=filled, fillcolor=palegreen, label="out{i}\\n{a.aval.str_short()}"];'
        )
        if isinstance(a, Var):
            lines.append(f"  {producer[a]} -> out{i};")
    lines.append("}")
    return "\n".join(lines)
