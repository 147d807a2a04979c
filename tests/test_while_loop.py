"""lax.while_loop: forward values against Python loops, forward-mode derivatives, the
reverse-mode error, vmap (unmapped and per-example predicates) against loops over
examples, nesting, and the staged IR."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import assert_same, check_against_numpy

import functrace as ft
import functrace.numpy as fnp
from functrace import lax
from functrace.control_flow.while_loop import while_loop
from functrace.testing import strategies as fts
from functrace.testing.gradients import check_grads

RNG = np.random.default_rng(0)


def python_while(cond, body, init):
    """The reference: a plain Python loop on NumPy values."""
    val = init
    while cond(val):
        val = body(val)
    return val


# --- forward values: (name, cond(c, xp), body(c, xp), init(x, xp)) where xp is np or fnp --------

CASES = [
    ("counter", lambda c, xp: c[0] < 5, lambda c, xp: (c[0] + 1, c[1] * 0.5 + 1.0), lambda x, xp: (0, x)),
    ("zero_iterations", lambda c, xp: c[0] < 0, lambda c, xp: (c[0] + 1, c[1] * 2.0), lambda x, xp: (0, x)),
    (
        "value_dependent",  # the trip count depends on the values (and ends for empty arrays)
        lambda c, xp: c[1] < 50.0,
        lambda c, xp: (c[0] * 1.5 + 1.0, c[1] * 1.5 + xp.sum(c[0]) + 1.0),
        lambda x, xp: (xp.abs(x), xp.abs(x).sum() + 1),
    ),
    (
        "dict_carry",
        lambda c, xp: c["i"] < 3,
        lambda c, xp: {"i": c["i"] + np.int32(1), "acc": c["acc"] + xp.sin(c["x"]), "x": c["x"] * 0.9},
        lambda x, xp: {"i": np.int32(0), "acc": xp.zeros_like(x), "x": x},
    ),
    (
        "nested_tuple_carry",
        lambda c, xp: c[1][0] < 4,
        lambda c, xp: (xp.tanh(c[0]), (c[1][0] + 1, c[1][1] + c[0].sum())),
        lambda x, xp: (x, (0, xp.zeros((), x.dtype))),
    ),
]


def _bind(fn, xp):
    return lambda c: fn(c, xp)


@pytest.mark.parametrize("name,cond,body,init", CASES, ids=[c[0] for c in CASES])
@given(shape=fts.shapes(max_dims=2, max_side=3), dtype=fts.dtypes("f"))
@settings(max_examples=10)
def test_forward_matches_python_loop(name, cond, body, init, shape, dtype):
    x = RNG.uniform(-2, 2, size=shape).astype(dtype)

    def f(x):
        return while_loop(_bind(cond, fnp), _bind(body, fnp), init(x, fnp))

    def reference(x):
        return python_while(_bind(cond, np), _bind(body, np), init(x, np))

    tol = {"rtol": 1e-5, "atol": 1e-5} if dtype == np.float32 else {"rtol": 1e-12, "atol": 1e-12}
    check_against_numpy(f, reference, x, **tol)


def test_python_scalar_init_is_promoted_like_jax():
    assert_same(while_loop(lambda i: i < 10, lambda i: i + 1.5, 0), np.float64(10.5))
    out = while_loop(lambda i: i < 3, lambda i: i + np.int32(1), 0)
    assert np.asarray(out).dtype == np.int32 and out == 3  # the weak 0 takes the body's int32
    zero_trip = while_loop(lambda i: i > 0, lambda i: i + 1, 0)
    assert isinstance(zero_trip, np.ndarray | np.generic) and zero_trip == 0


def test_closure_over_traced_values_in_cond_and_body():
    def f(x, limit):
        return while_loop(lambda c: c[0] < limit, lambda c: (c[0] + 1, c[1] * x), (0, fnp.ones_like(x)))

    def reference(x, limit):
        return python_while(lambda c: c[0] < limit, lambda c: (c[0] + 1, c[1] * x), (0, np.ones_like(x)))

    check_against_numpy(f, reference, np.array([1.5, -2.0]), np.int64(4))


def test_nested_while_in_while():
    def f(x):
        def outer_body(c):
            i, acc = c
            inner = while_loop(lambda d: d[0] < i, lambda d: (d[0] + 1, d[1] * x + 1.0), (0, acc))
            return i + 1, inner[1]

        return while_loop(lambda c: c[0] < 4, outer_body, (0, fnp.zeros_like(x)))

    def reference(x):
        i, acc = 0, np.zeros_like(x)
        while i < 4:
            for _ in range(i):
                acc = acc * x + 1.0
            i += 1
        return i, acc

    x = np.array([0.5, -1.1, 2.0])
    check_against_numpy(f, reference, x)
    check_grads(lambda x: f(x)[1], (x,), order=2, modes=("fwd",))


# --- forward-mode derivatives ---------------------------------------------------------------

GRAD_CASES = [
    ("carry", lambda x: while_loop(lambda c: c[0] < 3, lambda c: (c[0] + 1, fnp.sin(c[1]) * 1.3), (0, x))[1]),
    (
        "body_closes_over_x",
        lambda x: while_loop(lambda c: c[0] < 4, lambda c: (c[0] + 1, c[1] * x + x**2), (0, fnp.ones_like(x)))[1],
    ),
    (
        "value_dependent_trip_count",  # inputs in [1, 2]: 3 steps, away from the boundary
        lambda x: while_loop(lambda c: fnp.max(c) < 5.0, lambda c: c * 1.4 + 0.1 * fnp.tanh(c), x),
    ),
    (
        "pytree_carry",
        lambda x: while_loop(
            lambda c: c["i"] < 2,
            lambda c: {"i": c["i"] + 1, "a": c["a"] * c["b"], "b": fnp.exp(-c["a"])},
            {"i": 0, "a": x, "b": x[::-1]},
        ),
    ),
]


@pytest.mark.parametrize("name,f", GRAD_CASES, ids=[c[0] for c in GRAD_CASES])
def test_check_grads_forward_order_2(name, f):
    x = RNG.uniform(1.0, 1.3, size=3)
    check_grads(f, (x,), order=2, modes=("fwd",))
    (_, t), (_, t_ir) = ft.jvp(f, (x,), (np.ones(3),)), ft.make_ir(lambda x: ft.jvp(f, (x,), (np.ones(3),)))(x).eval(x)
    assert_same(t_ir, t)


def test_jvp_only_tangents_that_can_be_nonzero_are_carried():
    def f(x):
        # c[2] never meets x: its tangent stays a symbolic zero (no extra carry for it).
        body = lambda c: (c[0] + 1, c[1] * x, c[2] * 2.0)  # noqa: E731
        return while_loop(lambda c: c[0] < 3, body, (0, fnp.ones_like(x), fnp.ones_like(x)))

    x = np.array([2.0, 3.0])
    _, (_, t, t_untouched) = ft.jvp(f, (x,), (np.ones(2),))
    assert_same(t, 3 * x**2)
    assert_same(t_untouched, np.zeros(2))
    ir = ft.make_ir(lambda x, t: ft.jvp(f, (x,), (t,)))(x, x)
    (eqn,) = [e for e in ir.eqns if e.primitive.name == "while"]
    assert len(eqn.outvars) == 4  # three primal carries and one tangent


def test_jvp_through_the_predicate_only_is_zero():
    def f(limit):
        return while_loop(lambda x: x < limit, lambda x: x + 1.0, 0.0)

    out, t = ft.jvp(f, (np.float64(3.5),), (np.float64(1.0),))
    assert_same(out, np.float64(4.0))
    assert_same(t, np.float64(0.0))
    assert_same(ft.grad(f)(np.float64(3.5)), np.float64(0.0))


def test_reverse_mode_raises_a_clear_error():
    f = GRAD_CASES[1][1]
    with pytest.raises(TypeError, match=r"reverse-mode differentiation of while_loop is not supported.*lax\.scan"):
        ft.grad(lambda x: fnp.sum(f(x)))(np.ones(3))
    with pytest.raises(TypeError, match="fori_loop with static"):
        ft.jacrev(f)(np.ones(3))


# --- vmap -----------------------------------------------------------------------------------


def stack_loop(f, in_axes):
    """Apply ``f`` per example and stack on axis 0 (``in_axes`` per positional argument)."""

    def run(*args):
        size = next(np.shape(a)[ax] for a, ax in zip(args, in_axes, strict=True) if ax is not None)
        outs = [
            f(*[a if ax is None else np.take(a, i, axis=ax) for a, ax in zip(args, in_axes, strict=True)])
            for i in range(size)
        ]
        return ft.tree_util.tree_map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *outs)

    return run


def per_example_steps(n, x):
    """A per-example trip count ``n`` (a mapped predicate when ``n`` is mapped)."""
    return while_loop(lambda c: c[0] < n, lambda c: (c[0] + 1, c[1] * 1.5 + fnp.sin(c[1])), (0, x))


def fixed_steps_value_carry(n, x):
    """The predicate depends on an unmapped ``n`` and an unmapped counter only."""
    return while_loop(lambda c: c[0] < n, lambda c: (c[0] + 1, c[1] * x + 1.0, c[2]), (0, fnp.zeros_like(x), n))


def value_threshold(n, x):
    """A mapped predicate computed from a mapped float carry."""
    return while_loop(lambda c: fnp.sum(c[1]) < n, lambda c: (c[0] + 1, c[1] * 2.0 + 0.5), (0, fnp.abs(x)))


def python_per_example_steps(n, x):
    i = 0
    while i < n:
        i, x = i + 1, x * 1.5 + np.sin(x)
    return i, x


def python_fixed_steps_value_carry(n, x):
    i, acc = 0, np.zeros_like(x)
    while i < n:
        i, acc = i + 1, acc * x + 1.0
    return i, acc, n


def python_value_threshold(n, x):
    i, c = 0, np.abs(x)
    while np.sum(c) < n:
        i, c = i + 1, c * 2.0 + 0.5
    return i, c


VMAP_CASES = [
    (per_example_steps, python_per_example_steps),
    (fixed_steps_value_carry, python_fixed_steps_value_carry),
    (value_threshold, python_value_threshold),
]


@pytest.mark.parametrize("f,reference", VMAP_CASES, ids=[c[0].__name__ for c in VMAP_CASES])
@given(
    size=st.integers(1, 4),
    shape=fts.shapes(max_dims=2, min_side=1, max_side=3),
    n_axis=st.sampled_from([0, None]),
    x_axis=st.sampled_from([0, -1, None]),
    data=st.data(),
)
@settings(max_examples=12)
def test_vmap_matches_loop_over_examples(f, reference, size, shape, n_axis, x_axis, data):
    if n_axis is None and x_axis is None:
        x_axis = 0
    if x_axis is not None and not shape:
        shape = (1,)
    limit = 20.0 if f is value_threshold else 6
    ns = np.asarray(data.draw(st.lists(st.integers(0, 5), min_size=size, max_size=size)), np.int64)
    n = ns * (limit / 5) if f is value_threshold else ns
    n = n if n_axis is not None else n[0]
    x = RNG.uniform(-1, 1, size=shape if x_axis is None else np.insert(shape, x_axis % (len(shape) + 1), size))
    in_axes = (n_axis, x_axis)
    expected = stack_loop(reference, in_axes)(n, x)
    assert_same(ft.vmap(f, in_axes=in_axes)(n, x), expected)
    assert_same(ft.jit(ft.vmap(f, in_axes=in_axes), backend="interpret")(n, x), expected)
    assert_same(ft.make_ir(ft.vmap(f, in_axes=in_axes))(n, x).eval(n, x), expected)


def test_vmap_lanes_finish_at_different_steps():
    ns = np.array([0, 3, 1, 5])
    x = np.linspace(-1, 1, 8).reshape(4, 2)
    out = ft.vmap(per_example_steps)(ns, x)
    assert_same(out, stack_loop(python_per_example_steps, (0, 0))(ns, x))
    assert_same(out[0], ns)


def test_vmap_unmapped_predicate_keeps_the_counter_unmapped():
    ir = ft.make_ir(ft.vmap(fixed_steps_value_carry, in_axes=(None, 0)))(3, np.ones((5, 2)))
    (eqn,) = [e for e in ir.eqns if e.primitive.name == "while"]
    assert [v.aval.shape for v in eqn.outvars] == [(), (5, 2), ()]
    assert not any(e.primitive.name == "select" for e in eqn.params["body"].eqns)


def test_vmap_ir_size_does_not_depend_on_batch_size():
    def count(size):
        ir = ft.make_ir(ft.vmap(per_example_steps))(np.arange(size), np.ones((size, 2)))
        return len(ir.eqns), len(str(ir).splitlines())

    assert count(2) == count(7)


def test_vmap_composes_with_jvp_and_nesting():
    ns, x = np.array([1, 4, 2]), np.array([0.3, -0.2, 0.9])

    def tangent(n, x):
        return ft.jvp(lambda x: per_example_steps(n, x)[1], (x,), (fnp.ones_like(x),))[1]

    def python_tangent(n, x, eps=1e-6):
        return (python_per_example_steps(n, x + eps)[1] - python_per_example_steps(n, x - eps)[1]) / (2 * eps)

    assert_same(ft.vmap(tangent)(ns, x), stack_loop(python_tangent, (0, 0))(ns, x), rtol=1e-6, atol=1e-6)
    jvp_of_vmap = ft.jvp(lambda x: ft.vmap(per_example_steps)(ns, x)[1], (x,), (np.ones(3),))[1]
    assert_same(jvp_of_vmap, ft.vmap(tangent)(ns, x))
    nested_n = np.array([[0, 2], [3, 1]])
    nested_x = RNG.normal(size=(2, 2, 3))
    got = ft.vmap(ft.vmap(per_example_steps))(nested_n, nested_x)
    for i in range(2):
        assert_same(tuple(o[i] for o in got), stack_loop(python_per_example_steps, (0, 0))(nested_n[i], nested_x[i]))


def test_vmap_of_nested_while_with_mapped_inner_predicate():
    def f(n, x):
        def outer_body(c):
            i, acc = c
            inner = while_loop(lambda d: d[0] < n + i, lambda d: (d[0] + 1, d[1] * 0.5 + x), (0, acc))
            return i + 1, inner[1]

        return while_loop(lambda c: c[0] < 3, outer_body, (0, fnp.zeros_like(x)))

    def reference(n, x):
        acc = np.zeros_like(x)
        for i in range(3):
            for _ in range(n + i):
                acc = acc * 0.5 + x
        return 3, acc

    ns, xs = np.array([0, 2, 1]), np.array([1.0, -2.0, 0.5])
    assert_same(ft.vmap(f)(ns, xs), stack_loop(reference, (0, 0))(ns, xs))


# --- the staged IR and error messages -------------------------------------------------------


def test_ir_size_does_not_depend_on_the_trip_count():
    def loop(n):
        return lambda x: while_loop(lambda c: c[0] < n, lambda c: (c[0] + 1, c[1] * 0.999 + 1.0), (0, x))

    x = np.ones(3)
    short, long = ft.make_ir(loop(10))(x), ft.make_ir(loop(10_000))(x)
    assert len(short.eqns) == len(long.eqns) == 1
    assert str(short).replace("10:", "N:") == str(long).replace("10000:", "N:")
    expected = python_while(lambda c: c[0] < 10_000, lambda c: (c[0] + 1, c[1] * 0.999 + 1.0), (0, x))
    assert_same(long.eval(x), expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize(
    "body,message",
    [
        (lambda c: (c[0] + 1, c[1].astype(np.float32)), r"carry\[1\] has type f32\[2\] but must be f64\[2\]"),
        (lambda c: (c[0] + 1, c[1][:1]), r"carry\[1\] has type f64\[1\] but must be f64\[2\]"),
        (lambda c: (c[0] + 1.5, c[1]), r"carry\[0\] has type f64\[\] but must be i32\[\]"),
        (lambda c: (c[0] + 1,), "body_fun must return a carry with the structure of init_val"),
        (lambda c: [c[0] + 1, c[1]], "body_fun must return a carry with the structure of init_val"),
    ],
)
def test_carry_type_errors_name_the_leaf(body, message):
    with pytest.raises(TypeError, match=message):
        while_loop(lambda c: c[0] < 3, body, (np.int32(0), np.ones(2)))


@pytest.mark.parametrize(
    "cond,got",
    [
        (lambda x: fnp.sum(x), r"f64\[\]"),
        (lambda x: x < 1.0, r"bool\[2\]"),
        (lambda x: (x[0] < 1.0, x[1] < 1.0), r"bool\[\], bool\[\]"),
        (lambda x: 1, r"i64\[\]"),
    ],
)
def test_cond_must_return_a_bool_scalar(cond, got):
    with pytest.raises(TypeError, match=rf"while_loop: cond_fun must return a bool scalar, got {got}"):
        while_loop(cond, lambda x: x + 1.0, np.zeros(2))


def test_errors_also_when_staged():
    with pytest.raises(TypeError, match=r"carry has type f32\[\] but must be f64\[\]"):
        ft.make_ir(lambda x: while_loop(lambda c: c < 3.0, lambda c: c.astype(np.float32), x))(np.float64(0.0))


def test_exported_from_lax():
    assert lax.while_loop is while_loop
