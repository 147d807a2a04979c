"""vmap: axes specs, errors, nesting, and composition with grad, jvp and jit."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from reference import assert_same, vmap_loop

import functrace as ft
import functrace.numpy as fnp
from functrace.testing import strategies as fts

RNG = np.random.default_rng(0)


def mlp_loss(params, x, y):
    (w1, b1), (w2, b2) = params
    h = fnp.tanh(x @ w1 + b1)
    return fnp.sum((h @ w2 + b2 - y) ** 2)


def _mlp_data(batch=6):
    params = [(RNG.normal(size=(4, 5)), RNG.normal(size=5)), (RNG.normal(size=(5, 2)), RNG.normal(size=2))]
    return params, RNG.normal(size=(batch, 4)), RNG.normal(size=(batch, 2))


@given(
    shapes=fts.broadcastable_shapes(2, min_dims=1, max_dims=3, min_side=1, max_side=3),
    size=st.integers(1, 4),
    axes=st.tuples(st.sampled_from([0, -1, None]), st.sampled_from([0, 1, None])),
    out_axis=st.sampled_from([0, -1]),
)
def test_elementwise_chain_matches_loop(shapes, size, axes, out_axis):
    if axes == (None, None):
        axes = (0, None)

    def f(x, y):
        return fnp.tanh(x) * y + fnp.exp(-y * y) - 2.0

    args = []
    for shape, ax in zip(shapes, axes, strict=True):
        if ax is None:
            args.append(RNG.normal(size=shape))
        else:
            full = list(shape)
            full.insert(ax % (len(shape) + 1), size)
            args.append(RNG.normal(size=full))
    out = ft.vmap(f, in_axes=axes, out_axes=out_axis)(*args)
    assert_same(out, vmap_loop(f, axes, out_axis)(*args))


def test_pytree_in_axes_and_out_axes():
    def f(p, x):
        return {"a": p["w"] * x, "b": p["s"] + 0.0 * x.sum()}, x.sum()

    p = {"w": RNG.normal(size=(3,)), "s": np.float64(2.0)}
    x = RNG.normal(size=(5, 3))
    (out, total) = ft.vmap(f, in_axes=({"w": None, "s": None}, 0), out_axes=({"a": 1, "b": 0}, 0))(p, x)
    assert_same(out["a"], (p["w"] * x).T)
    assert_same(out["b"], np.full(5, 2.0))
    assert_same(total, x.sum(axis=1))


def test_axis_size_when_nothing_is_mapped_and_unmapped_outputs():
    out = ft.vmap(lambda x: x * 2.0, in_axes=None, axis_size=3)(np.arange(2.0))
    assert_same(out, np.tile(np.arange(2.0) * 2, (3, 1)))
    assert_same(ft.vmap(lambda x: 1.0, axis_size=2, in_axes=None)(0.0), np.ones(2))


def test_nested_vmap_is_an_outer_product():
    x, y = RNG.normal(size=3), RNG.normal(size=4)
    out = ft.vmap(ft.vmap(lambda a, b: a * b, in_axes=(None, 0)), in_axes=(0, None))(x, y)
    assert_same(out, np.outer(x, y))


def test_per_example_gradients_equal_a_loop_of_grad():
    params, x, y = _mlp_data()
    per_example = ft.vmap(ft.grad(mlp_loss), in_axes=(None, 0, 0))(params, x, y)
    reference = vmap_loop(ft.grad(mlp_loss), (None, 0, 0))(params, x, y)
    assert_same(per_example, reference)


def test_grad_of_vmap_and_jit_of_vmap_of_grad():
    params, x, y = _mlp_data()
    batched_loss = lambda p: fnp.sum(ft.vmap(mlp_loss, in_axes=(None, 0, 0))(p, x, y))  # noqa: E731
    assert_same(ft.grad(batched_loss)(params), ft.grad(lambda p: mlp_loss(p, x, y))(params))
    jitted = ft.jit(ft.vmap(ft.grad(mlp_loss), in_axes=(None, 0, 0)), backend="interpret")
    assert_same(jitted(params, x, y), ft.vmap(ft.grad(mlp_loss), in_axes=(None, 0, 0))(params, x, y))


def test_vmap_of_jvp_and_jvp_of_vmap():
    x, t = RNG.normal(size=(4, 3)), RNG.normal(size=(4, 3))
    f = lambda v: fnp.sin(v) * fnp.sum(v)  # noqa: E731
    _, batched = ft.vmap(lambda a, b: ft.jvp(f, (a,), (b,)))(x, t)
    assert_same(batched, vmap_loop(lambda a, b: ft.jvp(f, (a,), (b,))[1], (0, 0))(x, t))
    _, outer = ft.jvp(ft.vmap(f), (x,), (t,))
    assert_same(outer, batched)


def test_ir_of_vmap_does_not_grow_with_the_batch():
    params, _, _ = _mlp_data()
    counts = []
    for batch in (2, 7):
        _, x, y = _mlp_data(batch)
        ir = ft.make_ir(ft.vmap(ft.grad(mlp_loss), in_axes=(None, 0, 0)))(params, x, y)
        counts.append(len(ir.eqns))
    assert counts[0] == counts[1]


def test_jacobians_are_vectorised():
    f = lambda x: fnp.sin(x) * fnp.sum(x)  # noqa: E731
    x = RNG.normal(size=4)
    expected = np.diag(np.cos(x) * x.sum()) + np.sin(x)[:, None]
    assert_same(ft.jacfwd(f)(x), expected)
    assert_same(ft.jacrev(f)(x), expected)
    counts = [len(ft.make_ir(ft.jacrev(f))(RNG.normal(size=n)).eqns) for n in (2, 6)]
    assert counts[0] == counts[1]


def test_custom_rules_and_checkpoint_under_vmap():
    @ft.custom_jvp
    def softplus(x):
        return fnp.log1p(fnp.exp(x))

    @softplus.defjvp
    def softplus_jvp(primals, tangents):
        (x,), (t,) = primals, tangents
        return softplus(x), t * ft.lax.logistic(x) * 10.0  # scaled: proves the rule is used

    x = RNG.normal(size=(3, 2))
    sig = 1 / (1 + np.exp(-x))
    assert_same(ft.vmap(softplus)(x), np.log1p(np.exp(x)))
    assert_same(ft.grad(lambda x: fnp.sum(ft.vmap(softplus)(x)))(x), 10 * sig)
    assert_same(ft.vmap(ft.grad(lambda x: fnp.sum(softplus(x))))(x), 10 * sig)

    @ft.custom_vjp
    def scaled(x):
        return x

    scaled.defvjp(lambda x: (x, 2 * x), lambda r, g: (g * r,))
    assert_same(ft.grad(lambda x: fnp.sum(ft.vmap(scaled)(x)))(x), 2 * x)
    assert_same(ft.vmap(ft.grad(lambda x: fnp.sum(scaled(x))))(x), 2 * x)

    block = ft.checkpoint(lambda x: fnp.sin(fnp.sin(x)))
    plain = ft.grad(lambda x: fnp.sum(fnp.sin(fnp.sin(x))))(x)
    assert_same(ft.vmap(ft.grad(lambda x: fnp.sum(block(x))))(x), plain)
    assert_same(ft.grad(lambda x: fnp.sum(ft.vmap(block)(x)))(x), plain)


# --- errors --------------------------------------------------------------------------------------


def test_mismatched_axis_sizes_list_every_argument():
    with pytest.raises(ValueError, match=r"different sizes: x: shape \(3, 2\), axis 0; y: shape \(4,\), axis 0"):
        ft.vmap(lambda x, y: x)(np.ones((3, 2)), np.ones(4))


def test_in_axes_that_do_not_match_the_arguments():
    with pytest.raises(ValueError, match="in_axes has 1 entries but the function got 2 arguments"):
        ft.vmap(lambda x, y: x, in_axes=(0,))(np.ones(3), np.ones(3))
    with pytest.raises(ValueError, match="pytree prefix"):
        ft.vmap(lambda p: p["a"], in_axes=({"b": 0},))({"a": np.ones(3)})
    with pytest.raises(ValueError, match="must be a tuple, not a list"):
        ft.vmap(lambda x: x, in_axes=[0])(np.ones(3))


def test_out_of_range_axes():
    with pytest.raises(ValueError, match="in_axes=2 is out of range for a value of rank 2"):
        ft.vmap(lambda x: x, in_axes=2)(np.ones((3, 2)))
    with pytest.raises(ValueError, match="out_axes=3 is out of range"):
        ft.vmap(lambda x: x, out_axes=3)(np.ones((3, 2)))


def test_axis_size_needed_when_nothing_is_mapped():
    with pytest.raises(ValueError, match="needs axis_size"):
        ft.vmap(lambda x: x, in_axes=None)(np.ones(3))


def test_python_control_flow_on_a_mapped_value():
    with pytest.raises(ft.errors.ConcretizationError):
        ft.vmap(lambda x: x if x > 0 else -x)(np.ones(3))


def test_shape_errors_under_vmap_describe_the_examples():
    with pytest.raises(TypeError, match=r"axes \(1,\) are invalid for shape \(3,\)"):
        ft.vmap(lambda x: ft.lax.reduce_sum(x, (1,)))(np.ones((2, 3)))


ELEMENTWISE_UNARY = ["exp", "log1p", "tanh", "sin", "cos", "abs", "negative", "square", "floor", "sign", "isfinite"]
ELEMENTWISE_BINARY = ["add", "subtract", "multiply", "divide", "maximum", "minimum", "power", "less", "equal"]


@pytest.mark.parametrize("name", ELEMENTWISE_UNARY + ELEMENTWISE_BINARY)
@given(example=fts.shapes(max_dims=2, min_side=1, max_side=3), size=st.integers(1, 4), data=st.data())
def test_every_elementwise_function_matches_loop(name, example, size, data):
    f = getattr(fnp, name)
    n_args = 1 if name in ELEMENTWISE_UNARY else 2
    axes = tuple(data.draw(st.sampled_from([0, -1, None])) for _ in range(n_args))
    if all(a is None for a in axes):
        axes = (0, *axes[1:])
    args = []
    for ax in axes:
        shape = list(example)
        if ax is not None:
            shape.insert(ax % (len(example) + 1), size)
        args.append(np.abs(RNG.normal(size=shape)) + 0.5)
    expected = vmap_loop(f, axes)(*args)
    assert_same(ft.vmap(f, in_axes=axes)(*args), expected)
    assert_same(ft.jit(ft.vmap(f, in_axes=axes), backend="interpret")(*args), expected)
