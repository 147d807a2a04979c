"""functrace.nn against NumPy references (eager, make_ir, jit), gradients checked against
finite differences, numerical stability at +-1e4, one_hot, and the initializers'
signatures and statistics."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from reference import assert_same, check_against_numpy

import functrace as ft
import functrace.numpy as fnp
import functrace.random as random
from functrace import nn
from functrace.nn import initializers
from functrace.testing import check_grads
from functrace.testing import strategies as fts


def as_float(x):
    """NumPy's float dtype for an elementwise math function of ``x`` (ints compute in float64)."""
    x = np.asarray(x)
    return x if x.dtype.kind == "f" else x.astype(np.float64)


def elementwise_reference(fn):
    def reference(x):
        x = as_float(x)
        return np.asarray(fn(x), dtype=x.dtype)

    return reference


_erf = np.vectorize(math.erf, otypes=[np.float64])


def np_gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


# name, functrace function, NumPy reference on float input
ACTIVATIONS = [
    ("sigmoid", nn.sigmoid, lambda x: 1 / (1 + np.exp(-x))),
    ("softplus", nn.softplus, lambda x: np.log1p(np.exp(-np.abs(x))) + np.maximum(x, 0)),
    ("elu", nn.elu, lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0)))),
    ("elu alpha", lambda x: nn.elu(x, alpha=0.5), lambda x: np.where(x > 0, x, 0.5 * np.expm1(np.minimum(x, 0)))),
    ("leaky_relu", nn.leaky_relu, lambda x: np.where(x >= 0, x, 0.01 * x)),
    ("leaky_relu slope", lambda x: nn.leaky_relu(x, negative_slope=0.2), lambda x: np.where(x >= 0, x, 0.2 * x)),
    ("gelu", nn.gelu, np_gelu_tanh),
    ("gelu exact", lambda x: nn.gelu(x, approximate=False), lambda x: x * 0.5 * (1 + _erf(x / math.sqrt(2)))),
    ("silu", nn.silu, lambda x: x / (1 + np.exp(-x))),
]


@pytest.mark.parametrize(("name", "fn", "ref"), ACTIVATIONS, ids=[a[0] for a in ACTIVATIONS])
@given(x=fts.arrays(fts.dtypes("fi"), fts.shapes()))
def test_activation_matches_numpy(name, fn, ref, x):
    check_against_numpy(fn, elementwise_reference(ref), x)


@given(x=fts.arrays(fts.dtypes("fiu"), fts.shapes()))
def test_relu_matches_numpy_and_keeps_dtype(x):
    check_against_numpy(nn.relu, lambda x: np.maximum(x, 0), x)


def test_gelu_default_is_the_tanh_approximation():
    x = np.array([-3.0, -0.5, 0.7, 2.5])
    np.testing.assert_allclose(nn.gelu(x), np_gelu_tanh(x), rtol=1e-15)
    assert np.max(np.abs(nn.gelu(x) - nn.gelu(x, approximate=False))) > 1e-5


SMOOTH_POINTS = np.array([[-2.3, -0.7, 0.4], [1.9, -0.1, 0.8]])
GRAD_CASES = [(name, fn) for name, fn, _ in ACTIVATIONS] + [
    ("relu", nn.relu),
    ("softmax", nn.softmax),
    ("softmax axis 0", lambda x: nn.softmax(x, axis=0)),
    ("log_softmax", nn.log_softmax),
    ("log_softmax axes", lambda x: nn.log_softmax(x, axis=(0, 1))),
    ("logsumexp", nn.logsumexp),
    ("logsumexp axis keepdims", lambda x: nn.logsumexp(x, axis=1, keepdims=True)),
]


@pytest.mark.parametrize(("name", "fn"), GRAD_CASES, ids=[c[0] for c in GRAD_CASES])
def test_gradients_match_finite_differences(name, fn):
    order = 1 if name == "relu" else 2  # relu's second derivative is zero away from 0
    check_grads(fn, (SMOOTH_POINTS,), order=order, modes=("fwd", "rev"))


def test_relu_derivative_at_zero_is_zero_and_gradient_ir_is_one_select():
    x = np.array([-1.0, 0.0, 2.0])
    np.testing.assert_array_equal(ft.grad(lambda x: nn.relu(x).sum())(x), [0.0, 0.0, 1.0])
    ir = ft.make_ir(ft.grad(lambda x: nn.relu(x).sum()))(x)
    names = [eqn.primitive.name for eqn in ir.eqns]
    assert names.count("select") == 1 and "max" not in names and len(names) <= 3, str(ir)


# --- softmax family ----------------------------------------------------------------------------


def np_logsumexp(x, axis=None, keepdims=False):
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis)


def np_softmax(x, axis=-1):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def np_log_softmax(x, axis=-1):
    return x - np_logsumexp(x, axis=axis, keepdims=True)


@st.composite
def array_and_axis(draw):
    x = draw(fts.arrays(fts.dtypes("fi"), fts.shapes(min_dims=1)))
    axis = draw(st.one_of(st.integers(-x.ndim, x.ndim - 1), st.just(tuple(range(x.ndim)))))
    axes = axis if isinstance(axis, tuple) else (axis,)
    assume(all(x.shape[a] > 0 for a in axes))  # a max over an empty axis has no value
    return x, axis


@given(array_and_axis())
def test_softmax_and_log_softmax_match_numpy(case):
    x, axis = case
    check_against_numpy(lambda x: nn.softmax(x, axis=axis), elementwise_reference(lambda x: np_softmax(x, axis)), x)
    check_against_numpy(
        lambda x: nn.log_softmax(x, axis=axis), elementwise_reference(lambda x: np_log_softmax(x, axis)), x
    )


@given(array_and_axis(), st.booleans(), st.booleans())
def test_logsumexp_matches_numpy(case, keepdims, all_axes):
    x, axis = case
    axis = None if all_axes else axis
    assume(x.size > 0)
    check_against_numpy(
        lambda x: nn.logsumexp(x, axis=axis, keepdims=keepdims),
        elementwise_reference(lambda x: np_logsumexp(x, axis, keepdims)),
        x,
    )


HUGE = np.array([[1e4, -1e4, 1e4 - 1.0], [-1e4, -1e4, -1e4 + 2.0]])
HUGE_CASES = [
    ("softmax", nn.softmax, np_softmax),
    ("log_softmax", nn.log_softmax, np_log_softmax),
    ("logsumexp", lambda x: nn.logsumexp(x, axis=-1), lambda x: np_logsumexp(x, axis=-1)),
    ("logsumexp all", nn.logsumexp, np_logsumexp),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("name", "fn", "ref"), HUGE_CASES, ids=[c[0] for c in HUGE_CASES])
def test_huge_inputs_give_finite_values_and_gradients(name, fn, ref, dtype):
    x = HUGE.astype(dtype)
    out = fn(x)
    assert np.all(np.isfinite(out))
    assert_same(out, ref(x.astype(np.float64)).astype(dtype), rtol=1e-6, atol=1e-6)
    weights = np.arange(1.0, 1.0 + np.size(out)).reshape(np.shape(out)).astype(dtype)
    grad = ft.grad(lambda x: fnp.sum(fn(x) * weights))(x)
    assert grad.dtype == dtype and np.all(np.isfinite(grad))
    jac = ft.jacfwd(fn)(x)
    assert np.all(np.isfinite(jac))


def test_logsumexp_gradient_is_softmax_at_huge_inputs():
    grad = ft.grad(lambda x: nn.logsumexp(x))(HUGE[0])
    np.testing.assert_allclose(grad, [1 / (1 + math.exp(-1)), 0.0, math.exp(-1) / (1 + math.exp(-1))])


def test_infinite_inputs():
    with np.errstate(divide="ignore"):  # log(0) is -inf, as wanted
        assert nn.logsumexp(np.array([-np.inf, -np.inf])) == -np.inf
    assert nn.logsumexp(np.array([-np.inf, 0.0])) == 0.0
    np.testing.assert_array_equal(nn.softmax(np.array([-np.inf, 0.0, 0.0])), [0.0, 0.5, 0.5])


def test_vmap_of_softmax_is_row_wise():
    x = np.random.default_rng(0).normal(size=(4, 5))
    np.testing.assert_allclose(ft.vmap(nn.softmax)(x), np_softmax(x), rtol=1e-14)
    np.testing.assert_allclose(ft.vmap(nn.logsumexp)(x), np_logsumexp(x, axis=1), rtol=1e-14)


# --- one_hot --------------------------------------------------------------------------------


def np_one_hot(x, num_classes, dtype=np.float32, axis=-1):
    out = (np.asarray(x)[..., None] == np.arange(num_classes)).astype(dtype)
    return np.moveaxis(out, -1, axis)


@given(
    x=fts.arrays(fts.dtypes("i"), fts.shapes(max_dims=2), elements=st.integers(-2, 6)),
    num_classes=st.integers(0, 5),
    axis_choice=st.integers(0, 5),
    dtype=st.sampled_from([np.float32, np.float64, np.int32, np.bool_]),
)
def test_one_hot_matches_numpy(x, num_classes, axis_choice, dtype):
    axis = axis_choice % (x.ndim + 1) - (x.ndim + 1) * (axis_choice % 2)  # negative and positive axes
    check_against_numpy(
        lambda x: nn.one_hot(x, num_classes, dtype=dtype, axis=axis),
        lambda x: np_one_hot(x, num_classes, dtype, axis),
        x,
    )


def test_one_hot_default_dtype_and_out_of_range():
    out = nn.one_hot(np.array([1, 3, -1]), 3)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [[0, 1, 0], [0, 0, 0], [0, 0, 0]])


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"num_classes": 2.5}, TypeError, "num_classes must be a non-negative int"),
        ({"num_classes": -1}, TypeError, "num_classes must be a non-negative int"),
        ({"num_classes": 3, "axis": 3}, ValueError, "axis 3 is out of range for a result of rank 2"),
    ],
)
def test_one_hot_errors(kwargs, error, message):
    with pytest.raises(error, match=message):
        nn.one_hot(np.array([0, 1]), **kwargs)


# --- initializers --------------------------------------------------------------------------


KEY = random.PRNGKey(42)
TRUNC_STDDEV = 0.87962566103423978

# name, initializer, shape, expected variance, bound on |w| (None: unbounded)
DENSE, CONV = (300, 500), (5, 5, 64, 32)
CONV_FAN_IN, CONV_FAN_OUT = 5 * 5 * 64, 5 * 5 * 32
STATISTICS = [
    ("glorot_normal", initializers.glorot_normal(), DENSE, 2 / 800, 2 * math.sqrt(2 / 800) / TRUNC_STDDEV),
    ("glorot_uniform", initializers.glorot_uniform(), DENSE, 2 / 800, math.sqrt(3 * 2 / 800)),
    ("he_normal", initializers.he_normal(), DENSE, 2 / 300, 2 * math.sqrt(2 / 300) / TRUNC_STDDEV),
    ("lecun_normal", initializers.lecun_normal(), DENSE, 1 / 300, 2 * math.sqrt(1 / 300) / TRUNC_STDDEV),
    ("normal", initializers.normal(), DENSE, 1e-4, None),
    ("normal stddev", initializers.normal(stddev=2.0), DENSE, 4.0, None),
    ("he_normal conv", initializers.he_normal(), CONV, 2 / CONV_FAN_IN, None),
    ("glorot_uniform conv", initializers.glorot_uniform(), CONV, 2 / (CONV_FAN_IN + CONV_FAN_OUT), None),
    ("lecun_normal in_axis", initializers.lecun_normal(in_axis=-1, out_axis=-2), (500, 300), 1 / 300, None),
    ("variance_scaling fan_out", initializers.variance_scaling(3.0, "fan_out", "normal"), DENSE, 3 / 500, None),
]


@pytest.mark.parametrize(("name", "init", "shape", "variance", "bound"), STATISTICS, ids=[s[0] for s in STATISTICS])
def test_initializer_statistics(name, init, shape, variance, bound):
    w = init(KEY, shape)
    assert w.shape == shape and w.dtype == np.float32
    w = w.astype(np.float64)
    assert abs(np.var(w) / variance - 1) < 0.03, np.var(w) / variance
    assert abs(np.mean(w)) < 4 * math.sqrt(variance / w.size)
    if bound is not None:
        assert np.max(np.abs(w)) <= bound * (1 + 1e-6)
        assert np.max(np.abs(w)) > 0.9 * bound  # the whole range is used


FACTORIES = ["glorot_normal", "glorot_uniform", "he_normal", "lecun_normal", "normal"]


@pytest.mark.parametrize("name", FACTORIES)
def test_initializer_signature_dtype_and_determinism(name):
    init = getattr(initializers, name)()
    a = init(KEY, (4, 6))
    assert a.dtype == np.float32 and a.shape == (4, 6)
    assert init(KEY, [4, 6], np.float64).dtype == np.float64
    assert init(KEY, (4, 6), dtype=np.float64).dtype == np.float64
    assert getattr(initializers, name)(dtype=np.float64)(KEY, (4, 6)).dtype == np.float64
    np.testing.assert_array_equal(a, init(KEY, (4, 6)))
    assert not np.array_equal(a, init(random.split(KEY)[0], (4, 6)))
    jitted = ft.jit(lambda key: init(key, (4, 6)), backend="interpret")(KEY)
    np.testing.assert_array_equal(jitted, a)


@pytest.mark.parametrize(("init", "value"), [(initializers.zeros, 0.0), (initializers.ones, 1.0)])
def test_zeros_and_ones_are_init_functions(init, value):
    out = init(KEY, (2, 3))
    assert out.dtype == np.float32 and out.shape == (2, 3) and np.all(out == value)
    assert init(KEY, (2,), np.int32).dtype == np.int32


def test_initializer_errors():
    with pytest.raises(ValueError, match="rank >= 2"):
        initializers.glorot_normal()(KEY, (5,))
    with pytest.raises(ValueError, match="mode must be one of"):
        initializers.variance_scaling(1.0, "fan_sum", "normal")
    with pytest.raises(ValueError, match="distribution must be one of"):
        initializers.variance_scaling(1.0, "fan_in", "cauchy")


def test_empty_shape_initializes_to_an_empty_array():
    assert initializers.he_normal()(KEY, (0, 3)).shape == (0, 3)
