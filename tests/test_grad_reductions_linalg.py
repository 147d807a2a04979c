"""Gradients of reductions and contractions: finite-difference checks to order 2 (forward
and reverse), and a softmax-cross-entropy MLP whose ``grad`` is compared with a
hand-written NumPy back-propagation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import functrace as ft
import functrace.numpy as fnp
from functrace import lax
from functrace.testing import strategies as fts
from functrace.testing.gradients import check_grads

ORDER2 = {"order": 2, "modes": ("fwd", "rev")}

# --- inputs -----------------------------------------------------------------------------


def distinct(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Values at least 0.3 apart: no ties for max/min, even after a finite-difference step."""
    rng = np.random.default_rng(seed)
    size = int(np.prod(shape, dtype=np.int64))
    values = rng.permutation(size) * 0.5 - size / 4 + rng.uniform(-0.1, 0.1, size)
    return values.reshape(shape)


def near_one(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Magnitudes in [0.5, 1.5] with random signs: products stay well conditioned."""
    rng = np.random.default_rng(seed)
    return rng.uniform(0.5, 1.5, shape) * rng.choice([-1.0, 1.0], shape)


def normal(shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape)


@st.composite
def shape_and_axis(draw, mode: str, min_side: int = 1):
    """A shape and an ``axis`` argument: None, one (possibly negative) int, or a tuple.
    With ``min_side`` 2 at least one axis is reduced (an empty tuple reduces none)."""
    min_dims = 0 if mode == "none" and min_side < 2 else 1
    shape = draw(fts.shapes(min_dims=min_dims, max_dims=3, min_side=min_side, max_side=3))
    ndim = len(shape)
    if mode == "none":
        return shape, None
    if mode == "int":
        return shape, draw(st.integers(-ndim, ndim - 1))
    axes = draw(st.lists(st.integers(0, ndim - 1), unique=True, min_size=min_side >= 2, max_size=ndim))
    return shape, tuple(axes)


# --- fnp reductions ------------------------------------------------------------------------

# name, function, input maker, smallest side (std needs two elements: sqrt'(0) is infinite).
REDUCTIONS = [
    ("sum", fnp.sum, normal, 1),
    ("mean", fnp.mean, normal, 1),
    ("max", fnp.max, distinct, 1),
    ("min", fnp.min, distinct, 1),
    ("prod", fnp.prod, near_one, 1),
    ("var", fnp.var, normal, 1),
    ("std", fnp.std, distinct, 2),
]
AXIS_MODES = [("none", False), ("int", False), ("tuple", False), ("tuple", True), ("int", True)]


@pytest.mark.parametrize("mode,keepdims", AXIS_MODES)
@pytest.mark.parametrize("name,fn,make,min_side", REDUCTIONS, ids=[r[0] for r in REDUCTIONS])
@settings(max_examples=8)
@given(data=st.data(), seed=st.integers(0, 2**16))
def test_fnp_reduction_grads(name, fn, make, min_side, mode, keepdims, data, seed):
    shape, axis = data.draw(shape_and_axis(mode, min_side))
    check_grads(lambda x: fn(x, axis=axis, keepdims=keepdims), (make(shape, seed),), **ORDER2)


@pytest.mark.parametrize("mode", ["none", "int"])
@settings(max_examples=10)
@given(data=st.data(), seed=st.integers(0, 2**16))
def test_fnp_cumsum_grads(mode, data, seed):
    shape, axis = data.draw(shape_and_axis(mode, min_side=0))
    check_grads(lambda x: fnp.cumsum(x, axis=axis), (normal(shape, seed),), **ORDER2)


def test_mean_and_sum_of_size_zero_axes_have_zero_gradients():
    x = np.zeros((3, 0))
    assert ft.grad(lambda x: fnp.sum(fnp.sum(x, axis=1) * 2.0))(x).shape == (3, 0)
    check_grads(lambda x: fnp.sum(x, axis=1), (x,), **ORDER2)
    check_grads(lambda x: fnp.prod(x, axis=0), (x,), **ORDER2)


# --- lax reductions --------------------------------------------------------------------

LAX_REDUCTIONS = [
    ("reduce_sum", lax.reduce_sum, normal),
    ("reduce_max", lax.reduce_max, distinct),
    ("reduce_min", lax.reduce_min, distinct),
    ("reduce_prod", lax.reduce_prod, near_one),
]


@pytest.mark.parametrize("name,fn,make", LAX_REDUCTIONS, ids=[r[0] for r in LAX_REDUCTIONS])
@settings(max_examples=10)
@given(data=st.data(), seed=st.integers(0, 2**16))
def test_lax_reduction_grads(name, fn, make, data, seed):
    shape, axes = data.draw(shape_and_axis("tuple"))
    check_grads(lambda x: fn(x, axes), (make(shape, seed),), **ORDER2)


@pytest.mark.parametrize("reverse", [False, True])
@settings(max_examples=10)
@given(data=st.data(), seed=st.integers(0, 2**16))
def test_lax_cumsum_grads(reverse, data, seed):
    shape, axis = data.draw(shape_and_axis("int", min_side=0))
    check_grads(lambda x: lax.cumsum(x, axis, reverse=reverse), (normal(shape, seed),), **ORDER2)


@pytest.mark.parametrize(
    "reducer,x,expected",
    [
        (lax.reduce_max, [1.0, 3.0, 3.0, 2.0], [0.0, 0.5, 0.5, 0.0]),
        (lax.reduce_min, [2.0, 1.0, 1.0, 1.0], [0.0, 1 / 3, 1 / 3, 1 / 3]),
        (lax.reduce_max, [-1.0, -5.0], [1.0, 0.0]),
    ],
)
def test_max_min_split_the_gradient_among_ties(reducer, x, expected):
    g = ft.grad(lambda x: reducer(x, (0,)))(np.array(x))
    np.testing.assert_allclose(g, expected)


@pytest.mark.parametrize(
    "x",
    [[2.0, 0.0, 3.0, 4.0], [0.0, 5.0, 0.0, 2.0], [0.0, 0.0, 0.0, 0.0], [0.0], [-1.5, 2.0, 0.5, 3.0]],
)
def test_prod_gradient_is_the_product_of_the_others_also_at_zeros(x):
    x = np.array(x)
    others = np.array([np.prod(np.delete(x, i)) for i in range(x.size)])
    np.testing.assert_allclose(ft.grad(lambda x: lax.reduce_prod(x, (0,)))(x), others, rtol=1e-14)
    _, t = ft.jvp(lambda x: lax.reduce_prod(x, (0,)), (x,), (np.arange(1.0, x.size + 1),))
    np.testing.assert_allclose(t, others @ np.arange(1.0, x.size + 1), rtol=1e-14)


def test_prod_gradient_at_a_zero_has_no_nan_or_warning():
    x = np.array([[0.0, 2.0], [3.0, 4.0]])
    with np.errstate(all="raise"):
        g = ft.grad(lambda x: fnp.sum(fnp.prod(x, axis=1)))(x)
    np.testing.assert_array_equal(g, [[2.0, 0.0], [4.0, 3.0]])


@pytest.mark.parametrize("arg", [lax.argmax, lax.argmin])
def test_argmax_argmin_have_zero_derivative(arg):
    x = distinct((3, 4), 0)

    def f(x):
        index = lax.convert_element_type(arg(x, 1, np.int32), np.float64)
        return lax.mul(lax.reduce_sum(x, (1,)), index)

    _, t = ft.jvp(lambda x: arg(x, 1, np.int32), (x,), (np.ones_like(x),))
    np.testing.assert_array_equal(t, 0)
    check_grads(f, (x,), **ORDER2)


# --- dot_general ----------------------------------------------------------------------------


@st.composite
def dot_general_problem(draw):
    """Operand shapes and dimension numbers: batch, contracting and free dims of each
    operand in a random order (no dims at all gives an outer product)."""
    sizes = st.integers(1, 3)
    batch = draw(st.lists(sizes, max_size=2))
    contract = draw(st.lists(sizes, max_size=2))
    lhs_free = draw(st.lists(sizes, max_size=2))
    rhs_free = draw(st.lists(sizes, max_size=2))

    def layout(free: list[int]) -> tuple[list[tuple[str, int]], tuple[int, ...]]:
        dims = [("b", i) for i in range(len(batch))] + [("c", i) for i in range(len(contract))]
        dims += [("f", i) for i in range(len(free))]
        dims = draw(st.permutations(dims))
        size = {"b": batch, "c": contract, "f": free}
        return dims, tuple(size[kind][i] for kind, i in dims)

    (lhs_dims, lhs_shape), (rhs_dims, rhs_shape) = layout(lhs_free), layout(rhs_free)
    # Contracting pairs may be listed in any order, as long as both sides agree.
    c_order = draw(st.permutations(range(len(contract))))
    b_order = draw(st.permutations(range(len(batch))))
    lc, rc = (tuple(d.index(("c", i)) for i in c_order) for d in (lhs_dims, rhs_dims))
    lb, rb = (tuple(d.index(("b", i)) for i in b_order) for d in (lhs_dims, rhs_dims))
    return lhs_shape, rhs_shape, ((lc, rc), (lb, rb))


@settings(max_examples=40)
@given(problem=dot_general_problem(), seed=st.integers(0, 2**16))
def test_dot_general_grads(problem, seed):
    lhs_shape, rhs_shape, dims = problem
    args = (normal(lhs_shape, seed), normal(rhs_shape, seed + 1))
    check_grads(lambda a, b: lax.dot_general(a, b, dims), args, **ORDER2)


def test_dot_general_gradient_with_a_constant_operand():
    w = np.array([[1.0, 2.0], [3.0, 4.0]])

    def f(w):
        n = lax.convert_element_type(np.array([[1, 2]], np.int32), np.float64)
        return lax.reduce_sum(lax.dot_general(n, w, (((1,), (0,)), ((), ()))), (0, 1))

    np.testing.assert_allclose(ft.grad(f)(w), [[1.0, 1.0], [2.0, 2.0]])


# --- fnp contractions -----------------------------------------------------------------------

MATMUL_SHAPES = [
    ((3,), (3,)),
    ((3,), (3, 4)),
    ((2, 3), (3,)),
    ((2, 3), (3, 4)),
    ((5, 2, 3), (3, 4)),
    ((2, 3), (5, 3, 4)),
    ((3,), (2, 3, 4)),
    ((2, 3, 1), (1,)),
    ((1, 2, 3), (4, 3, 2)),
    ((2, 1, 2, 3), (3, 3, 2)),
    ((1, 1), (1, 1)),
]


@pytest.mark.parametrize("lhs_shape,rhs_shape", MATMUL_SHAPES)
def test_matmul_grads(lhs_shape, rhs_shape):
    check_grads(fnp.matmul, (normal(lhs_shape, 0), normal(rhs_shape, 1)), **ORDER2)


EINSUMS = [
    ("ij,jk->ik", (2, 3), (3, 4)),
    ("bij,bjk->bik", (2, 2, 3), (2, 3, 1)),
    ("i,i->", (3,), (3,)),
    ("i,j->ij", (2,), (3,)),
    ("ijk,kj->i", (2, 3, 4), (4, 3)),
    ("...ij,...jk->...ik", (2, 1, 2, 3), (3, 3, 2)),
    ("ij,kj", (2, 3), (4, 3)),
    ("ij->j", (2, 3), None),
    ("ijk->kij", (2, 3, 4), None),
]


@pytest.mark.parametrize("subscripts,lhs_shape,rhs_shape", EINSUMS)
def test_einsum_grads(subscripts, lhs_shape, rhs_shape):
    args = [normal(lhs_shape, 0)] + ([] if rhs_shape is None else [normal(rhs_shape, 1)])
    check_grads(lambda *xs: fnp.einsum(subscripts, *xs), tuple(args), **ORDER2)


def test_einsum_three_operands_grads():
    args = (normal((2, 3), 0), normal((3, 4), 1), normal((4, 2), 2))
    check_grads(lambda a, b, c: fnp.einsum("ij,jk,kl->il", a, b, c), args, **ORDER2)


CONTRACTIONS = [
    ("tensordot axes=2", lambda a, b: fnp.tensordot(a, b), (2, 3, 4), (3, 4, 2)),
    ("tensordot axes=0", lambda a, b: fnp.tensordot(a, b, 0), (2,), (3, 2)),
    ("tensordot pairs", lambda a, b: fnp.tensordot(a, b, ((0, 2), (2, 1))), (2, 3, 4), (1, 4, 2)),
    ("outer", fnp.outer, (2, 3), (4,)),
    ("dot matrix", fnp.dot, (2, 3), (4, 3, 5)),
    ("dot vector", fnp.dot, (3,), (3,)),
    ("dot scalar", fnp.dot, (), (2, 3)),
    ("inner", fnp.inner, (2, 3), (4, 3)),
    ("vdot", fnp.vdot, (2, 3), (3, 2)),
]


@pytest.mark.parametrize("name,fn,lhs_shape,rhs_shape", CONTRACTIONS, ids=[c[0] for c in CONTRACTIONS])
def test_contraction_grads(name, fn, lhs_shape, rhs_shape):
    check_grads(fn, (normal(lhs_shape, 0), normal(rhs_shape, 1)), **ORDER2)


# --- acceptance: an MLP with a softmax cross-entropy loss --------------------------------------


def mlp_loss(params, x, one_hot):
    w1, b1, w2, b2 = params
    hidden = fnp.maximum(fnp.matmul(x, w1) + b1, 0.0)
    logits = fnp.matmul(hidden, w2) + b2
    top = lax.stop_gradient(fnp.max(logits, axis=1, keepdims=True))
    logsumexp = fnp.log(fnp.sum(fnp.exp(logits - top), axis=1, keepdims=True)) + top
    return fnp.mean(logsumexp - fnp.sum(one_hot * logits, axis=1, keepdims=True))


def mlp_numpy_gradient(params, x, one_hot):
    """Back-propagation by hand, in NumPy."""
    w1, b1, w2, b2 = params
    pre = x @ w1 + b1
    hidden = np.maximum(pre, 0.0)
    logits = hidden @ w2 + b2
    softmax = np.exp(logits - logits.max(axis=1, keepdims=True))
    softmax /= softmax.sum(axis=1, keepdims=True)
    d_logits = (softmax - one_hot) / x.shape[0]
    d_pre = (d_logits @ w2.T) * (pre > 0)
    return x.T @ d_pre, d_pre.sum(axis=0), hidden.T @ d_logits, d_logits.sum(axis=0)


def mlp_problem(batch=8, n_in=5, n_hidden=7, n_out=4, seed=0):
    rng = np.random.default_rng(seed)
    params = (
        rng.normal(size=(n_in, n_hidden)),
        rng.normal(size=n_hidden) * 0.1,
        rng.normal(size=(n_hidden, n_out)),
        rng.normal(size=n_out) * 0.1,
    )
    x = rng.normal(size=(batch, n_in))
    one_hot = np.eye(n_out)[rng.integers(0, n_out, batch)]
    return params, x, one_hot


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mlp_grad_equals_numpy_backpropagation(seed):
    params, x, one_hot = mlp_problem(seed=seed)
    grads = ft.grad(mlp_loss)(params, x, one_hot)
    expected = mlp_numpy_gradient(params, x, one_hot)
    assert isinstance(grads, tuple) and len(grads) == 4
    for g, e in zip(grads, expected, strict=True):
        assert g.dtype == np.float64 and g.shape == e.shape
        np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-14)


def test_mlp_grad_ir_typechecks_and_stays_lean():
    params, x, one_hot = mlp_problem()
    forward = ft.make_ir(mlp_loss)(params, x, one_hot)
    backward = ft.make_ir(ft.grad(mlp_loss))(params, x, one_hot)
    backward.typecheck()
    # The forward pass it needs plus its adjoint: with dead code removed, at most twice the
    # forward pass's equations (23 forward, 40 for the gradient at the time of writing).
    assert len(backward.eqns) <= 2 * len(forward.eqns), (len(forward.eqns), len(backward.eqns))
    grads = backward.eval(params, x, one_hot)
    for g, e in zip(grads, mlp_numpy_gradient(params, x, one_hot), strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-14)


def trivial_arithmetic(ir) -> list[str]:
    """Equations that multiply by a literal 1 or add a literal 0."""
    from functrace.core.ir import Literal

    found = []
    for eqn in ir.eqns:
        literals = [a.val for a in eqn.inputs if isinstance(a, Literal)]
        if (eqn.primitive.name == "mul" and 1 in literals) or (eqn.primitive.name == "add" and 0 in literals):
            found.append(f"{eqn.primitive.name} {literals}")
    return found


# Equation counts of the gradient IR, dead forward equations removed (the forward
# reduce_prod, cumsum and dot_general are not needed by their rules).
LEAN_GRADIENTS = [
    ("sum", lambda x: fnp.sum(fnp.sum(x, axis=1) * 3.0), {"add": 0, "transpose": 0}),
    ("max", lambda x: fnp.sum(fnp.max(x, axis=(0, 2)) * 3.0), {"add": 0, "reduce_max": 1}),
    ("prod", lambda x: fnp.sum(fnp.prod(x, axis=2) * 3.0), {"add": 0, "reduce_prod": 1}),
    ("cumsum", lambda x: fnp.sum(fnp.cumsum(x, axis=1) * 3.0), {"add": 0, "cumsum": 1}),
    ("matmul", lambda x: fnp.sum(fnp.matmul(x, x) * 3.0), {"add": 1, "transpose": 0, "dot_general": 2}),
]


@pytest.mark.parametrize("name,fn,counts", LEAN_GRADIENTS, ids=[g[0] for g in LEAN_GRADIENTS])
def test_reduction_and_contraction_gradient_ir_is_lean(name, fn, counts):
    x = distinct((3, 3, 3), 0) if name != "matmul" else normal((2, 3, 3), 0)
    ir = ft.make_ir(ft.grad(fn))(x)
    ir.typecheck()
    assert trivial_arithmetic(ir) == [], str(ir)
    prims = [e.primitive.name for e in ir.eqns]
    for prim, count in counts.items():
        assert prims.count(prim) == count, (prim, str(ir))
    np.testing.assert_allclose(ir.eval(x), ft.grad(fn)(x))
