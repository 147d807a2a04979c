"""lax.cond and lax.switch through every transformation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from reference import assert_same

import functrace as ft
import functrace.numpy as fnp
from functrace import lax
from functrace.testing import check_grads

BRANCHES = [
    lambda v, w: fnp.sin(v) * w,
    lambda v, w: fnp.cos(v) + w * w,
    lambda v, w: fnp.tanh(v * w),
]
NUMPY_BRANCHES = [
    lambda v, w: np.sin(v) * w,
    lambda v, w: np.cos(v) + w * w,
    lambda v, w: np.tanh(v * w),
]


def sign_cond(x, w):
    return lax.cond(fnp.sum(x) > 0, lambda v: fnp.sin(v) * w, lambda v: fnp.cos(v) - w, x)


def reference_sign_cond(x, w):
    return np.sin(x) * w if np.sum(x) > 0 else np.cos(x) - w


def _all_paths(fn, *args):
    """eager, make_ir(...).eval and jit(interpret) results."""
    return [fn(*args), ft.make_ir(fn)(*args).eval(*args), ft.jit(fn, backend="interpret")(*args)]


@given(st.integers(-3, 5), st.floats(-2, 2), st.floats(0.5, 2))
def test_switch_matches_python_and_clamps(index, v, w):
    x = np.array([v, v / 2])
    expected = NUMPY_BRANCHES[min(max(index, 0), 2)](x, w)
    for out in _all_paths(lambda i, x, w: lax.switch(i, BRANCHES, x, w), index, x, w):
        assert_same(out, expected)


def test_cond_on_both_sides_and_pytrees():
    x = np.array([0.5, 1.0])
    for v in (x, -x):
        for out in _all_paths(sign_cond, v, 2.0):
            assert_same(out, reference_sign_cond(v, 2.0))

    def f(p, flag):
        return lax.cond(
            flag, lambda q: {"a": q["a"] * 2.0, "b": (q["b"],)}, lambda q: {"a": -q["a"], "b": (q["b"],)}, p
        )

    p = {"a": np.ones(2), "b": np.int32(3)}
    assert_same(f(p, True)["a"], np.full(2, 2.0))
    assert_same(ft.jit(f, backend="interpret")(p, False)["b"][0], np.asarray(np.int32(3)))


def test_cond_gradients_order_two_in_both_branches():
    x = np.array([0.5, 1.0])
    for v in (x, -x):
        check_grads(sign_cond, (v, 1.5), order=2)
        check_grads(lambda v: lax.switch(2, BRANCHES, v, 0.7), (v,), order=2)


def test_grad_through_cond_equals_branch_gradient_and_is_staged():
    x = np.array([0.5, 1.0])
    g = ft.grad(lambda x: fnp.sum(sign_cond(x, 2.0)))
    assert_same(g(x), 2.0 * np.cos(x))
    assert_same(g(-x), np.sin(x))
    ir = ft.make_ir(g)(x)
    assert [e.primitive.name for e in ir.eqns].count("cond") >= 1
    assert_same(ir.eval(-x), np.sin(x))


def test_cond_closing_over_traced_values():
    def f(x, y):
        return lax.cond(x > 0, lambda: x * y, lambda: y - x)

    assert_same(ft.grad(f, argnums=(0, 1))(2.0, 3.0), (np.asarray(3.0), np.asarray(2.0)))
    assert_same(ft.grad(f, argnums=(0, 1))(-2.0, 3.0), (np.asarray(-1.0), np.asarray(1.0)))
    assert_same(ft.jit(f, backend="interpret")(-2.0, 3.0), np.asarray(5.0))


@given(st.lists(st.floats(-2, 2), min_size=1, max_size=4))
def test_vmap_with_mapped_and_unmapped_predicates(values):
    xs = np.array([[v, v + 0.25] for v in values])
    loop = np.stack([reference_sign_cond(x, 1.5) for x in xs])
    assert_same(ft.vmap(sign_cond, in_axes=(0, None))(xs, 1.5), loop)
    # unmapped predicate, mapped operand
    f = lambda w, x: lax.cond(w > 1.0, lambda v: v * w, lambda v: v - w, x)  # noqa: E731
    assert_same(ft.vmap(f, in_axes=(None, 0))(1.5, xs), xs * 1.5)
    indices = np.arange(len(values)) - 1
    out = ft.vmap(lambda i, x: lax.switch(i, BRANCHES, x, 0.5))(indices, xs)
    assert_same(out, np.stack([NUMPY_BRANCHES[min(max(i, 0), 2)](x, 0.5) for i, x in zip(indices, xs, strict=True)]))


def test_per_example_gradients_through_cond():
    xs = np.array([[0.5, 1.0], [-0.5, -1.0], [2.0, -1.0]])
    g = ft.grad(lambda x: fnp.sum(sign_cond(x, 2.0)))
    expected = np.stack([g(x) for x in xs])
    assert_same(ft.vmap(g)(xs), expected)
    assert_same(ft.jit(ft.vmap(g), backend="interpret")(xs), expected)


def test_nested_cond_and_jvp():
    def f(x):
        return lax.cond(x > 0, lambda v: lax.cond(v > 1, lambda u: u**3, lambda u: u**2, v), lambda v: -v, x)

    for x, d in ((2.0, 12.0), (0.5, 1.0), (-1.0, -1.0)):
        assert_same(ft.jvp(f, (x,), (1.0,))[1], np.asarray(d))
        check_grads(f, (x,), order=2)


def test_branch_type_mismatch_names_the_leaf():
    with pytest.raises(
        TypeError,
        match=r"cond: true_fun \(must match cond: false_fun\): output\[1\] has type f64\[2\] but must be f32\[2\]",
    ):
        lax.cond(True, lambda x: (x, x), lambda x: (x, x.astype(np.float32)), np.ones(2))
    with pytest.raises(TypeError, match="predicate must be a scalar"):
        lax.cond(np.array([True, False]), lambda: 1.0, lambda: 2.0)
