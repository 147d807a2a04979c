"""Pytrees: nested containers of arrays that transformations look through.

Tuples, lists, dicts (keys in sorted order), namedtuples and ``None`` are nodes;
anything else is a leaf unless its class is registered.

>>> leaves, tree = tree_flatten({"b": (1, 2), "a": [3, None]})
>>> leaves
[3, 1, 2]
>>> tree_unflatten(tree, [x * 10 for x in leaves])
{'a': [30, None], 'b': (10, 20)}
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import Any, NamedTuple

__all__ = [
    "PyTreeDef",
    "register_pytree_node",
    "register_pytree_node_class",
    "tree_flatten",
    "tree_leaves",
    "tree_map",
    "tree_structure",
    "tree_unflatten",
]


class _NodeType(NamedTuple):
    to_iterable: Callable[[Any], tuple[Iterable, Hashable]]
    from_iterable: Callable[[Hashable, Iterable], Any]


_registry: dict[type, _NodeType] = {}


def register_pytree_node(
    nodetype: type,
    flatten_func: Callable[[Any], tuple[Iterable, Hashable]],
    unflatten_func: Callable[[Hashable, Iterable], Any],
) -> None:
    """Make ``nodetype`` a pytree node.

    ``flatten_func(x) -> (children, aux_data)``; ``unflatten_func(aux_data, children) -> x``;
    ``aux_data`` must be hashable and comparable.
    """
    if nodetype in _registry:
        raise ValueError(f"{nodetype.__name__} is already registered as a pytree node")
    _registry[nodetype] = _NodeType(flatten_func, unflatten_func)


def register_pytree_node_class(cls: type) -> type:
    """Class decorator: register a class with ``tree_flatten``/``tree_unflatten`` methods.

    >>> @register_pytree_node_class
    ... class Pair:
    ...     def __init__(self, a, b): self.a, self.b = a, b
    ...     def tree_flatten(self): return (self.a, self.b), None
    ...     @classmethod
    ...     def tree_unflatten(cls, aux, children): return cls(*children)
    >>> tree_leaves(Pair(1, (2, 3)))
    [1, 2, 3]
    """
    register_pytree_node(cls, lambda x: x.tree_flatten(), cls.tree_unflatten)
    return cls


def _dict_flatten(d: dict) -> tuple[list, tuple]:
    keys = tuple(sorted(d))
    return [d[k] for k in keys], keys


register_pytree_node(tuple, lambda t: (t, None), lambda _, xs: tuple(xs))
register_pytree_node(list, lambda t: (t, None), lambda _, xs: list(xs))
register_pytree_node(dict, _dict_flatten, lambda keys, xs: dict(zip(keys, xs, strict=True)))
register_pytree_node(type(None), lambda _: ((), None), lambda _, __: None)


def _is_namedtuple(x: Any) -> bool:
    return isinstance(x, tuple) and hasattr(type(x), "_fields")


class PyTreeDef:
    """The structure of a pytree: node types, auxiliary data and children."""

    __slots__ = ("node_type", "aux", "children", "num_leaves", "_hash")

    def __init__(self, node_type: type | None, aux: Hashable, children: tuple[PyTreeDef, ...]):
        self.node_type = node_type  # None marks a leaf
        self.aux = aux
        self.children = children
        self.num_leaves = 1 if node_type is None else sum(c.num_leaves for c in children)
        self._hash = hash((node_type, aux, children))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, PyTreeDef)
            and self.node_type is other.node_type
            and self.aux == other.aux
            and self.children == other.children
        )

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        return f"PyTreeDef({self._pp()})"

    def _pp(self) -> str:
        if self.node_type is None:
            return "*"
        inner = ", ".join(c._pp() for c in self.children)
        if self.node_type is tuple:
            return f"({inner}{',' if len(self.children) == 1 else ''})"
        if self.node_type is list:
            return f"[{inner}]"
        if self.node_type is dict:
            return "{" + ", ".join(f"{k!r}: {c._pp()}" for k, c in zip(self.aux, self.children, strict=True)) + "}"
        if self.node_type is type(None):
            return "None"
        return f"{self.node_type.__name__}({inner})"

    @property
    def num_nodes(self) -> int:
        return 1 + sum(c.num_nodes for c in self.children)


_LEAF = PyTreeDef(None, None, ())


def _node_of(x: Any) -> tuple[type, _NodeType] | None:
    t = type(x)
    node = _registry.get(t)
    if node is not None:
        return t, node
    if _is_namedtuple(x):
        return t, _NodeType(lambda nt: (tuple(nt), None), lambda _, xs, t=t: t(*xs))
    return None


def _flatten(x: Any, leaves: list, is_leaf: Callable[[Any], bool] | None) -> PyTreeDef:
    if is_leaf is not None and is_leaf(x):
        leaves.append(x)
        return _LEAF
    found = _node_of(x)
    if found is None:
        leaves.append(x)
        return _LEAF
    t, node = found
    children, aux = node.to_iterable(x)
    return PyTreeDef(t, aux, tuple(_flatten(c, leaves, is_leaf) for c in children))


def tree_flatten(tree: Any, is_leaf: Callable[[Any], bool] | None = None) -> tuple[list, PyTreeDef]:
    """Leaves in a fixed order (dict keys sorted) and the structure to rebuild the tree."""
    leaves: list = []
    return leaves, _flatten(tree, leaves, is_leaf)


def _unflatten(treedef: PyTreeDef, leaves: Iterable) -> Any:
    if treedef.node_type is None:
        return next(leaves)  # type: ignore[call-overload]
    children = [_unflatten(c, leaves) for c in treedef.children]
    if treedef.node_type in _registry:
        return _registry[treedef.node_type].from_iterable(treedef.aux, children)
    return treedef.node_type(*children)  # a namedtuple


def tree_unflatten(treedef: PyTreeDef, leaves: Iterable) -> Any:
    """Rebuild a tree of ``treedef``'s structure from leaves."""
    leaves = list(leaves)
    if len(leaves) != treedef.num_leaves:
        raise ValueError(f"tree_unflatten: structure {treedef} needs {treedef.num_leaves} leaves, got {len(leaves)}")
    return _unflatten(treedef, iter(leaves))


def tree_leaves(tree: Any, is_leaf: Callable[[Any], bool] | None = None) -> list:
    return tree_flatten(tree, is_leaf)[0]


def tree_structure(tree: Any, is_leaf: Callable[[Any], bool] | None = None) -> PyTreeDef:
    return tree_flatten(tree, is_leaf)[1]


def tree_map(f: Callable, tree: Any, *rest: Any, is_leaf: Callable[[Any], bool] | None = None) -> Any:
    """Apply ``f`` leafwise; ``rest`` trees must have ``tree``'s structure.

    >>> tree_map(lambda a, b: a + b, (1, [2]), (10, [20]))
    (11, [22])
    """
    leaves, treedef = tree_flatten(tree, is_leaf)
    others = []
    for r in rest:
        r_leaves, r_def = tree_flatten(r, is_leaf)
        if r_def != treedef:
            raise ValueError(f"tree_map: structures differ: {treedef} and {r_def}")
        others.append(r_leaves)
    return tree_unflatten(treedef, [f(*xs) for xs in zip(leaves, *others, strict=True)])


def flatten_up_to(prefix: PyTreeDef, tree: Any) -> list:
    """Split ``tree`` into one subtree per leaf of the prefix structure ``prefix``.

    Used for ``in_axes``-style arguments that are pytree prefixes.
    """
    out: list = []

    def go(p: PyTreeDef, t: Any) -> None:
        if p.node_type is None:
            out.append(t)
            return
        found = _node_of(t)
        if found is None or found[0] is not p.node_type:
            raise ValueError(f"tree {t!r} does not match the prefix structure {p}")
        children, aux = found[1].to_iterable(t)
        children = list(children)
        if aux != p.aux or len(children) != len(p.children):
            raise ValueError(f"tree {t!r} does not match the prefix structure {p}")
        for pc, tc in zip(p.children, children, strict=True):
            go(pc, tc)

    go(prefix, tree)
    return out
