"""Pytrees: flatten/unflatten round trips, node types, registration."""

from __future__ import annotations

import collections

import pytest
from hypothesis import given

from functrace import tree_util as tu
from functrace.testing import strategies as fts

Point = collections.namedtuple("Point", ["x", "y"])


@given(fts.pytrees())
def test_flatten_unflatten_round_trip(tree):
    leaves, treedef = tu.tree_flatten(tree)
    rebuilt = tu.tree_unflatten(treedef, leaves)
    assert tu.tree_structure(rebuilt) == treedef
    assert all(a is b for a, b in zip(tu.tree_leaves(rebuilt), leaves, strict=True))
    assert treedef.num_leaves == len(leaves)


def test_dicts_flatten_in_sorted_key_order():
    assert tu.tree_leaves({"b": 2, "a": 1, "c": [3, 4]}) == [1, 2, 3, 4]


def test_none_is_an_empty_node_and_namedtuples_are_nodes():
    leaves, treedef = tu.tree_flatten([None, Point(1, (2, None))])
    assert leaves == [1, 2]
    rebuilt = tu.tree_unflatten(treedef, [10, 20])
    assert rebuilt == [None, Point(10, (20, None))] and isinstance(rebuilt[1], Point)


def test_structures_compare_by_shape_not_leaves():
    assert tu.tree_structure((1, [2])) == tu.tree_structure((5, [6]))
    assert tu.tree_structure((1, [2])) != tu.tree_structure((1, (2,)))
    assert tu.tree_structure({"a": 1}) != tu.tree_structure({"b": 1})
    assert hash(tu.tree_structure({"a": [1]})) == hash(tu.tree_structure({"a": [9]}))


def test_tree_map_with_several_trees_and_mismatch_error():
    assert tu.tree_map(lambda a, b: a * b, {"a": 2, "b": (3,)}, {"a": 5, "b": (7,)}) == {"a": 10, "b": (21,)}
    with pytest.raises(ValueError, match="structures differ"):
        tu.tree_map(lambda a, b: a, (1, 2), [1, 2])


def test_is_leaf_stops_descent():
    assert tu.tree_leaves([(1, 2), (3, 4)], is_leaf=lambda x: isinstance(x, tuple)) == [(1, 2), (3, 4)]


def test_unflatten_checks_leaf_count():
    _, treedef = tu.tree_flatten((1, 2))
    with pytest.raises(ValueError, match="needs 2 leaves, got 3"):
        tu.tree_unflatten(treedef, [1, 2, 3])


def test_register_pytree_node_and_class_decorator():
    class Box:
        def __init__(self, value, label):
            self.value, self.label = value, label

    tu.register_pytree_node(Box, lambda b: ((b.value,), b.label), lambda label, kids: Box(kids[0], label))
    out = tu.tree_map(lambda v: v + 1, [Box(1, "a"), Box(2, "b")])
    assert [(b.value, b.label) for b in out] == [(2, "a"), (3, "b")]
    with pytest.raises(ValueError, match="already registered"):
        tu.register_pytree_node(Box, lambda b: ((), None), lambda a, k: None)

    @tu.register_pytree_node_class
    class Pair:
        def __init__(self, a, b):
            self.a, self.b = a, b

        def tree_flatten(self):
            return (self.a, self.b), None

        @classmethod
        def tree_unflatten(cls, aux, children):
            return cls(*children)

    assert tu.tree_leaves(Pair(1, Pair(2, 3))) == [1, 2, 3]
    assert repr(tu.tree_structure(Pair(1, 2))) == "PyTreeDef(Pair(*, *))"


def test_flatten_up_to_prefix():
    prefix = tu.tree_structure((0, {"a": 0}))
    assert tu.flatten_up_to(prefix, ([1, 2], {"a": (3, 4)})) == [[1, 2], (3, 4)]
    with pytest.raises(ValueError, match="does not match the prefix"):
        tu.flatten_up_to(prefix, ([1, 2], {"b": 3}))
