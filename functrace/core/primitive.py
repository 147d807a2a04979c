"""Primitives and the rule tables keyed by them.

A primitive is an operation the IR knows. Its rules live in tables keyed by the
primitive object, one table per transformation, so that a transformation is just
"look up the rule and call it". Backends keep their own lowering tables; the
frontend never imports them.

Rule signatures (one per kind, every rule returns a list):

- ``impl(*arrays, **params) -> list[np.ndarray]``
- ``abstract_eval(*avals, **params) -> list[ShapedArray]``
- ``jvp(primals, tangents, **params) -> (list, list)``            (see ``core/ad_util.py``)
- ``vjp(cts_out, primals_in, primals_out, **params) -> list``     (see ``core/ad_util.py``)
- ``batch(args, batch_dims, **params) -> (list, list)``           (issue: vmap)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

all_primitives: dict[str, Primitive] = {}

# Transformation rule tables, filled under each primitive's definition.
jvp_rules: dict[Primitive, Callable] = {}
vjp_rules: dict[Primitive, Callable] = {}
batch_rules: dict[Primitive, Callable] = {}
# Primitives whose derivative is zero by definition (comparisons, argmax, bit ops...).
zero_derivative: set[Primitive] = set()

RULE_TABLES: dict[str, dict] = {
    "jvp": jvp_rules,
    "vjp": vjp_rules,
    "batch": batch_rules,
}


class Primitive:
    """A named operation with rules.

    >>> from functrace.core.abstract import ShapedArray
    >>> neg_p = Primitive("example_neg")
    >>> neg_p.def_impl(lambda x: [-x])
    >>> neg_p.def_abstract_eval(lambda aval: [aval])
    >>> neg_p.bind(3.0)
    -3.0
    """

    __slots__ = ("name", "multiple_results", "impl", "abstract_eval", "__weakref__")

    def __init__(self, name: str, *, multiple_results: bool = False):
        self.name = name
        self.multiple_results = multiple_results
        self.impl: Callable[..., list] = _missing(name, "impl")
        self.abstract_eval: Callable[..., list] = _missing(name, "abstract_eval")
        if not name.startswith("example_"):
            all_primitives[name] = self

    def def_impl(self, impl: Callable[..., list]) -> None:
        self.impl = impl

    def def_abstract_eval(self, rule: Callable[..., list]) -> None:
        self.abstract_eval = rule

    def bind(self, *args: Any, **params: Any):
        return bind(self, *args, **params)

    def __repr__(self) -> str:
        return self.name


class MissingRule:
    """Placeholder for a rule a primitive does not have; calling it explains the gap."""

    def __init__(self, primitive: str, kind: str):
        self.primitive, self.kind = primitive, kind

    def __call__(self, *args, **kwargs):
        raise NotImplementedError(f"primitive '{self.primitive}' has no {self.kind} rule")


def _missing(name: str, kind: str) -> MissingRule:
    return MissingRule(name, kind)


def has_rule(prim: Primitive, kind: str) -> bool:
    if kind in ("impl", "abstract_eval"):
        return not isinstance(getattr(prim, kind), MissingRule)
    return prim in RULE_TABLES[kind]


def get_rule(table: dict, prim: Primitive, kind: str) -> Callable:
    try:
        return table[prim]
    except KeyError:
        raise NotImplementedError(f"primitive '{prim.name}' has no {kind} rule") from None


from functrace.core.trace import bind  # noqa: E402  (trace.py needs Primitive's module loaded)
