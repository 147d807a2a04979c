"""The CPU backend's lowering tables, one rule per primitive.

- ``scalar_rules[prim](ctx, eqn, args) -> value``: elementwise; ``args`` are the
  operand values (LLVM registers) at one index.
- ``index_rules[prim](ctx, eqn, idx) -> value``: the result at multi-index ``idx``,
  reading operands with ``ctx.value_at(atom, other_idx)``.
- ``kernel_rules[prim](ctx, eqn, ins, outs)``: writes the output ``Buffer``s; ``ins``
  holds a ``Buffer`` per materialized operand, the ``Literal`` for a literal, and
  ``None`` for an operand fused into this kernel (read it with ``ctx.value_at``).
- ``alias_primitives``: names whose result may share the operand's buffer (reshape).

``lowering.llvm.rules`` fills the tables; ``tests/test_llvm_registry.py`` fails on a
primitive that has no rule.
"""

from __future__ import annotations

from collections.abc import Callable

from functrace.core.primitive import Primitive, all_primitives

scalar_rules: dict[Primitive, Callable] = {}
index_rules: dict[Primitive, Callable] = {}
kernel_rules: dict[Primitive, Callable] = {}
alias_primitives: set[str] = set()


def _register(table: dict, names: str | tuple[str, ...]) -> Callable[[Callable], Callable]:
    names = (names,) if isinstance(names, str) else names

    def deco(rule: Callable) -> Callable:
        for name in names:
            table[all_primitives[name]] = rule
        return rule

    return deco


def scalar_rule(*names: str) -> Callable[[Callable], Callable]:
    return _register(scalar_rules, names)


def index_rule(*names: str) -> Callable[[Callable], Callable]:
    return _register(index_rules, names)


def kernel_rule(*names: str) -> Callable[[Callable], Callable]:
    return _register(kernel_rules, names)


def has_lowering(prim: Primitive) -> bool:
    return prim in scalar_rules or prim in index_rules or prim in kernel_rules
