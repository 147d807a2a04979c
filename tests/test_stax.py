"""functrace.stax: shapes, values against NumPy, gradients, modes, BatchNorm state, errors."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from reference import assert_same, check_against_numpy

import functrace as ft
from functrace import random, stax, tree_util
from functrace.testing import check_grads

KEY = random.PRNGKey(0)


def _inputs(shape_tree, seed: int = 0, dtype=np.float32):
    """Random normal inputs for a shape or a tuple of shapes."""
    rng = np.random.default_rng(seed)
    if shape_tree and isinstance(shape_tree[0], tuple):
        return tuple(_inputs(s, seed + i + 1, dtype) for i, s in enumerate(shape_tree))
    return rng.normal(size=shape_tree).astype(dtype)


def _with_unknown_batch(shape_tree):
    if shape_tree and isinstance(shape_tree[0], tuple):
        return tuple(_with_unknown_batch(s) for s in shape_tree)
    return (-1, *shape_tree[1:])


def _to_float64(tree):
    return tree_util.tree_map(lambda a: np.asarray(a, np.float64) if np.asarray(a).dtype.kind == "f" else a, tree)


# --- shape agreement: one row per layer or combinator ----------------------------------------

side = st.integers(0, 3)
pos = st.integers(1, 3)
paddings = st.sampled_from(["VALID", "SAME", "explicit"])


def _window_case(draw, n_spatial: int, window_max: int = 3):
    spatial = [draw(st.integers(1, 5)) for _ in range(n_spatial)]
    window = [draw(st.integers(1, min(window_max, s))) for s in spatial]
    strides = [draw(st.integers(1, 2)) for _ in spatial]
    padding = draw(paddings)
    if padding == "explicit":
        padding = tuple((draw(st.integers(0, 1)), draw(st.integers(0, 1))) for _ in spatial)
    return spatial, tuple(window), tuple(strides), padding


@st.composite
def dense_case(draw):
    return stax.Dense(draw(side)), tuple(draw(st.lists(side, min_size=1, max_size=3)))


@st.composite
def conv_case(draw):
    spatial, window, strides, padding = _window_case(draw, 2)
    layer = stax.Conv(draw(pos), window, strides, padding)
    return layer, (draw(side), *spatial, draw(pos))


@st.composite
def conv1d_case(draw):
    spatial, window, strides, padding = _window_case(draw, 1)
    return stax.Conv1D(draw(pos), window, strides, padding), (draw(side), *spatial, draw(pos))


@st.composite
def general_conv_case(draw):
    spatial, window, strides, padding = _window_case(draw, 2)
    layer = stax.GeneralConv(("NCHW", "OIHW", "NCHW"), draw(pos), window, strides, padding)
    return layer, (draw(side), draw(pos), *spatial)


def pool_case(pool):
    @st.composite
    def case(draw):
        n = draw(st.integers(1, 2))
        spatial, window, strides, padding = _window_case(draw, n)
        return pool(window, strides, padding), (draw(side), *spatial, draw(pos))

    return case()


def any_shape_case(layer, min_dims: int = 0):
    return st.tuples(st.just(layer), st.lists(side, min_size=min_dims, max_size=3).map(tuple))


@st.composite
def batchnorm_case(draw):
    rank = draw(st.integers(2, 4))
    axis = (0, *draw(st.sets(st.integers(1, rank - 1), max_size=rank - 1)))
    shape = (draw(pos), *[draw(side) for _ in range(rank - 1)])
    return stax.BatchNorm(axis=tuple(sorted(axis))), shape


@st.composite
def embedding_case(draw):
    return stax.Embedding(draw(pos), draw(pos)), tuple(draw(st.lists(side, max_size=3)))


def recurrent_case(cell):
    @st.composite
    def case(draw):
        return cell(draw(pos), return_sequences=draw(st.booleans())), (draw(side), draw(side), draw(pos))

    return case()


@st.composite
def serial_case(draw):
    layer = stax.serial(stax.Dense(draw(pos)), stax.Relu, stax.Dropout(0.5), stax.Dense(draw(pos)))
    return layer, (draw(side), draw(pos))


@st.composite
def parallel_case(draw):
    return stax.parallel(stax.Dense(draw(pos)), stax.Identity), ((draw(side), draw(pos)), (draw(side), draw(side)))


@st.composite
def fan_sum_case(draw):
    branch = stax.Dense(draw(pos))
    layer = stax.serial(stax.FanOut(2), stax.parallel(branch, branch), stax.FanInSum)
    return layer, (draw(side), draw(pos))


@st.composite
def fan_concat_case(draw):
    axis = draw(st.sampled_from([-1, 1]))
    layer = stax.serial(stax.FanOut(3), stax.parallel(stax.Dense(draw(pos)), stax.Identity, stax.Tanh))
    if axis == 1:
        return stax.serial(layer, stax.parallel(*[stax.Dense(2)] * 3), stax.FanInConcat(axis)), (draw(side), 2)
    return stax.serial(layer, stax.FanInConcat(axis)), (draw(side), draw(pos))


@st.composite
def shape_dependent_case(draw):
    layer = stax.shape_dependent(lambda shape: stax.Dense(2 * shape[-1]))
    return layer, (draw(side), draw(pos))


SHAPE_CASES = {
    "Dense": dense_case(),
    "Conv": conv_case(),
    "Conv1D": conv1d_case(),
    "GeneralConv": general_conv_case(),
    "MaxPool": pool_case(stax.MaxPool),
    "AvgPool": pool_case(stax.AvgPool),
    "SumPool": pool_case(stax.SumPool),
    "Flatten": any_shape_case(stax.Flatten, min_dims=1),
    "Identity": any_shape_case(stax.Identity),
    **{
        name: any_shape_case(getattr(stax, name), min_dims=1)
        for name in ["Relu", "Tanh", "Sigmoid", "Elu", "LeakyRelu", "Softplus", "Gelu"]
    },
    # the softmax of an empty axis is undefined (a max over no elements), as in NumPy and JAX
    "Softmax": st.tuples(st.just(stax.Softmax), st.lists(side, max_size=2).map(lambda s: (*s, 3))),
    "LogSoftmax": st.tuples(st.just(stax.LogSoftmax), st.lists(side, max_size=2).map(lambda s: (*s, 1))),
    "Dropout": any_shape_case(stax.Dropout(0.25)),
    "BatchNorm": batchnorm_case(),
    "Embedding": embedding_case(),
    "LSTM": recurrent_case(stax.LSTM),
    "GRU": recurrent_case(stax.GRU),
    "serial": serial_case(),
    "parallel": parallel_case(),
    "FanOut+FanInSum": fan_sum_case(),
    "FanInConcat": fan_concat_case(),
    "shape_dependent": shape_dependent_case(),
}


def _shapes_of(outputs):
    if isinstance(outputs, tuple):
        return tuple(_shapes_of(o) for o in outputs)
    return np.shape(outputs)


@pytest.mark.parametrize("name", list(SHAPE_CASES))
@given(data=st.data())
def test_init_and_apply_shapes_agree(name, data):
    layer, input_shape = data.draw(SHAPE_CASES[name])
    init_fun, apply_fun = layer
    out_shape, params = init_fun(KEY, input_shape)
    inputs = np.zeros(input_shape, np.int32) if name == "Embedding" else _inputs(input_shape)
    with np.errstate(all="ignore"):
        for mode in ("train", "test"):
            out = apply_fun(params, inputs, rng=random.PRNGKey(1), mode=mode)
            assert _shapes_of(out) == out_shape
    for leaf in tree_util.tree_leaves(params):
        assert np.asarray(leaf).dtype == np.float32
    if len(input_shape) >= 2 and not isinstance(input_shape[0], tuple):
        unknown_out, _ = init_fun(KEY, _with_unknown_batch(input_shape))
        assert unknown_out == (-1, *out_shape[1:])


def test_unknown_batch_is_kept_through_a_network():
    init_fun, _ = stax.serial(
        stax.Conv(3, (3, 3), padding="SAME"),
        stax.BatchNorm(),
        stax.Relu,
        stax.AvgPool((2, 2), strides=(2, 2)),
        stax.Flatten,
        stax.Dense(5),
        stax.Dropout(0.1),
        stax.LogSoftmax,
    )
    assert init_fun(KEY, (-1, 6, 6, 2))[0] == (-1, 5)
    recurrent, _ = stax.serial(stax.Embedding(7, 4), stax.GRU(3), stax.LSTM(2, return_sequences=False))
    assert recurrent(KEY, (-1, 5))[0] == (-1, 2)


# --- values against NumPy -----------------------------------------------------------------


def np_conv_nhwc(x, w, strides, pads):
    x = np.pad(x, ((0, 0), *pads, (0, 0)))
    kh, kw, _, out_c = w.shape
    oh = (x.shape[1] - kh) // strides[0] + 1
    ow = (x.shape[2] - kw) // strides[1] + 1
    out = np.zeros((x.shape[0], oh, ow, out_c), np.result_type(x, w))
    for i in range(oh):
        for j in range(ow):
            patch = x[:, i * strides[0] : i * strides[0] + kh, j * strides[1] : j * strides[1] + kw, :]
            out[:, i, j, :] = np.einsum("nhwc,hwco->no", patch, w)
    return out


def np_pool(x, window, strides, pads, reduce, fill):
    x = np.pad(x, ((0, 0), *pads, (0, 0)), constant_values=fill)
    oh = (x.shape[1] - window[0]) // strides[0] + 1
    ow = (x.shape[2] - window[1]) // strides[1] + 1
    out = np.zeros((x.shape[0], oh, ow, x.shape[3]), x.dtype)
    for i in range(oh):
        for j in range(ow):
            patch = x[:, i * strides[0] : i * strides[0] + window[0], j * strides[1] : j * strides[1] + window[1], :]
            out[:, i, j, :] = reduce(patch)
    return out


def np_avg_pool(x, window, strides, pads):
    sums = np_pool(x, window, strides, pads, lambda p: p.sum(axis=(1, 2)), 0)
    counts = np_pool(np.ones_like(x), window, strides, pads, lambda p: p.sum(axis=(1, 2)), 0)
    return sums / counts


CONV_PADDINGS = [("VALID", ((0, 0), (0, 0))), ("SAME", ((1, 1), (0, 1))), (((2, 0), (1, 1)), ((2, 0), (1, 1)))]


@pytest.mark.parametrize(("padding", "pads"), CONV_PADDINGS)
def test_conv_matches_numpy(padding, pads):
    init_fun, apply_fun = stax.Conv(4, (3, 2), strides=(1, 2), padding=padding)
    x = _inputs((2, 5, 6, 3))
    _, (w, b) = init_fun(KEY, x.shape)
    b = np.arange(4, dtype=np.float32)
    check_against_numpy(
        lambda w, b, x: apply_fun((w, b), x), lambda w, b, x: np_conv_nhwc(x, w, (1, 2), pads) + b, w, b, x
    )


def test_conv1d_and_general_conv_match_numpy():
    x = _inputs((2, 7, 3), dtype=np.float64)
    _, (w, b) = stax.Conv1D(5, (3,))[0](KEY, x.shape)
    expected = np_conv_nhwc(x[:, :, None, :], np.asarray(w)[:, None], (1, 1), ((0, 0), (0, 0)))[:, :, 0] + b
    assert_same(stax.Conv1D(5, (3,))[1]((w, b), x), expected, rtol=1e-6, atol=1e-6)
    init_fun, apply_fun = stax.GeneralConv(("NCHW", "OIHW", "NCHW"), 4, (2, 3), padding="SAME")
    x = _inputs((2, 3, 5, 6))
    _, (w, b) = init_fun(KEY, x.shape)
    expected = np_conv_nhwc(x.transpose(0, 2, 3, 1), w.transpose(2, 3, 1, 0), (1, 1), ((0, 1), (1, 1))) + b
    assert_same(apply_fun((w, b), x), expected.transpose(0, 3, 1, 2))


POOLS = [
    (stax.MaxPool, lambda x, w, s, p: np_pool(x, w, s, p, lambda q: q.max(axis=(1, 2)), -np.inf)),
    (stax.SumPool, lambda x, w, s, p: np_pool(x, w, s, p, lambda q: q.sum(axis=(1, 2)), 0)),
    (stax.AvgPool, np_avg_pool),
]


@pytest.mark.parametrize(("pool", "reference"), POOLS, ids=["MaxPool", "SumPool", "AvgPool"])
@pytest.mark.parametrize(("padding", "pads"), [("VALID", ((0, 0), (0, 0))), ("SAME", ((0, 1), (1, 1)))])
def test_pools_match_numpy(pool, reference, padding, pads):
    x = _inputs((2, 5, 4, 3))
    _, apply_fun = pool((2, 3), strides=(2, 1), padding=padding)
    check_against_numpy(lambda x: apply_fun((), x), lambda x: reference(x, (2, 3), (2, 1), pads), x)


def test_dense_flatten_embedding_match_numpy():
    x = _inputs((3, 2, 4))
    _, (w, b) = stax.Dense(5)[0](KEY, x.shape)
    check_against_numpy(lambda w, b, x: stax.Dense(5)[1]((w, b), x), lambda w, b, x: x @ w + b, w, b, x)
    check_against_numpy(lambda x: stax.Flatten[1]((), x), lambda x: x.reshape(3, 8), x)
    check_against_numpy(lambda x: stax.Flatten[1]((), x), lambda x: x.reshape(0, 0), np.zeros((0, 2, 0), np.float32))
    _, table = stax.Embedding(6, 3)[0](KEY, (2, 4))
    ids = np.array([[5, 0, 2, 2], [1, 1, 3, 4]], np.int32)
    check_against_numpy(lambda t, i: stax.Embedding(6, 3)[1](t, i), lambda t, i: t[i], table, ids)


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _np_softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


ACTIVATIONS = {
    "Relu": lambda x: np.maximum(x, 0),
    "Tanh": np.tanh,
    "Sigmoid": _sigmoid,
    "Elu": lambda x: np.where(x > 0, x, np.expm1(x)),
    "LeakyRelu": lambda x: np.where(x > 0, x, 0.01 * x),
    "Softplus": lambda x: np.logaddexp(x, 0),
    "Gelu": lambda x: 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3))),
    "Softmax": _np_softmax,
    "LogSoftmax": lambda x: np.log(_np_softmax(x)),
}


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_activation_layers_match_numpy(name):
    x = _inputs((3, 4), dtype=np.float64) * 3
    assert_same(getattr(stax, name)[1]((), x), ACTIVATIONS[name](x), rtol=1e-10, atol=1e-12)
    assert getattr(stax, name)[0](KEY, (-1, 4)) == ((-1, 4), ())


# --- gradients through every layer ----------------------------------------------------------

GRAD_CASES = [
    ("Dense", stax.Dense(3), (2, 4), {}, 2),
    ("Conv SAME", stax.Conv(2, (2, 2), strides=(1, 2), padding="SAME"), (1, 3, 4, 2), {}, 2),
    ("Conv1D", stax.Conv1D(2, (2,), padding=((1, 0),)), (2, 4, 2), {}, 1),
    ("MaxPool", stax.MaxPool((2, 2), padding="SAME"), (1, 3, 3, 2), {}, 2),
    ("AvgPool", stax.AvgPool((2, 2), strides=(2, 1), padding="SAME"), (1, 3, 3, 2), {}, 2),
    ("SumPool", stax.SumPool((2,)), (2, 3, 2), {}, 2),
    ("Flatten", stax.Flatten, (2, 2, 3), {}, 2),
    *[(n, getattr(stax, n), (2, 3), {}, 2) for n in ["Relu", "Tanh", "Sigmoid", "Elu", "LeakyRelu", "Softplus"]],
    *[(n, getattr(stax, n), (2, 3), {}, 2) for n in ["Gelu", "Softmax", "LogSoftmax"]],
    ("Dropout train", stax.Dropout(0.5), (3, 4), {"rng": random.PRNGKey(3)}, 2),
    ("Dropout test", stax.Dropout(0.5), (3, 4), {"mode": "test"}, 1),
    ("BatchNorm train", stax.BatchNorm(axis=(0, 1)), (3, 2, 2), {}, 2),
    ("BatchNorm test", stax.BatchNorm(), (2, 2, 2, 2), {"mode": "test"}, 1),
    ("LSTM", stax.LSTM(2), (2, 3, 2), {}, 1),
    ("LSTM last", stax.LSTM(2, return_sequences=False), (1, 3, 2), {}, 1),
    ("GRU", stax.GRU(2), (2, 3, 2), {}, 1),
    ("GRU last", stax.GRU(2, return_sequences=False), (1, 3, 2), {}, 1),
    ("serial", stax.serial(stax.Dense(3), stax.Tanh, stax.Dense(2)), (2, 3), {}, 2),
    (
        "fan",
        stax.serial(stax.FanOut(2), stax.parallel(stax.Dense(2), stax.Sigmoid), stax.FanInConcat()),
        (2, 3),
        {},
        2,
    ),
    ("FanInSum", stax.serial(stax.FanOut(2), stax.parallel(stax.Dense(3), stax.Tanh), stax.FanInSum), (2, 3), {}, 1),
    ("shape_dependent", stax.shape_dependent(lambda s: stax.Dense(s[-1])), (2, 3), {}, 1),
]


@pytest.mark.parametrize(
    ("name", "layer", "input_shape", "kwargs", "order"), GRAD_CASES, ids=[c[0] for c in GRAD_CASES]
)
def test_gradients_through_layer(name, layer, input_shape, kwargs, order):
    init_fun, apply_fun = layer
    _, params = init_fun(KEY, input_shape)
    params = _to_float64(params)
    x = _inputs(input_shape, seed=7, dtype=np.float64)
    if name.startswith("BatchNorm"):
        # the running statistics are read through stop_gradient: differentiate beta, gamma and x only
        beta, gamma, stats = params
        check_grads(lambda b, g, x: apply_fun((b, g, stats), x, **kwargs), (beta, gamma, x), order=order)
    else:
        check_grads(lambda p, x: apply_fun(p, x, **kwargs), (params, x), order=order)


def test_gradient_through_embedding_table():
    init_fun, apply_fun = stax.Embedding(5, 3)
    _, table = init_fun(KEY, (2, 2))
    ids = np.array([[0, 4], [4, 2]])
    check_grads(lambda t: apply_fun(t, ids), (_to_float64(table),), order=2)
    grad = ft.grad(lambda t: apply_fun(t, ids).sum())(table)
    np.testing.assert_array_equal(grad, np.array([[1] * 3, [0] * 3, [1] * 3, [0] * 3, [2] * 3], np.float32))


# --- recurrent layers against a NumPy loop of the documented gate equations --------------------


def np_lstm(params, x):
    W_x, W_h, b = params
    H = W_h.shape[0]
    h = c = np.zeros((x.shape[0], H))
    hs = []
    for t in range(x.shape[1]):
        z = x[:, t] @ W_x + h @ W_h + b
        i, f, g, o = z[:, :H], z[:, H : 2 * H], z[:, 2 * H : 3 * H], z[:, 3 * H :]
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        h = _sigmoid(o) * np.tanh(c)
        hs.append(h)
    return np.stack(hs, axis=1), h


def np_gru(params, x):
    W_x, W_h, b_x, b_h = params
    H = W_h.shape[0]
    h = np.zeros((x.shape[0], H))
    hs = []
    for t in range(x.shape[1]):
        xg, hg = x[:, t] @ W_x + b_x, h @ W_h + b_h
        r = _sigmoid(xg[:, :H] + hg[:, :H])
        z = _sigmoid(xg[:, H : 2 * H] + hg[:, H : 2 * H])
        n = np.tanh(xg[:, 2 * H :] + r * hg[:, 2 * H :])
        h = (1 - z) * n + z * h
        hs.append(h)
    return np.stack(hs, axis=1), h


@pytest.mark.parametrize(("cell", "reference"), [(stax.LSTM, np_lstm), (stax.GRU, np_gru)], ids=["LSTM", "GRU"])
@pytest.mark.parametrize("return_sequences", [True, False])
def test_recurrent_layer_matches_numpy_loop(cell, reference, return_sequences):
    init_fun, apply_fun = cell(4, return_sequences=return_sequences)
    _, params = init_fun(KEY, (3, 5, 2))
    params = tuple(p + np.random.default_rng(i).normal(size=p.shape) * 0.5 for i, p in enumerate(params))
    x = _inputs((3, 5, 2), dtype=np.float64)
    expected = reference(params, x)[0 if return_sequences else 1]
    check_against_numpy(lambda p, x: apply_fun(p, x), lambda p, x: expected, params, x, rtol=1e-10, atol=1e-12)


def test_lstm_initial_params_follow_the_documented_layout():
    _, (W_x, W_h, b) = stax.LSTM(3)[0](KEY, (-1, 4, 2))
    assert (W_x.shape, W_h.shape) == ((2, 12), (3, 12))
    np.testing.assert_array_equal(b, np.array([0] * 3 + [1] * 3 + [0] * 6, np.float32))  # forget gate at one


# --- Dropout ---------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [0.1, 0.3, 0.75])
def test_dropout_drops_at_rate_and_scales_kept_units(rate):
    _, apply_fun = stax.Dropout(rate)
    x = np.full((200, 500), 2.0, np.float32)
    y = apply_fun((), x, rng=random.PRNGKey(42))
    dropped = np.mean(y == 0)
    bound = 6 * np.sqrt(rate * (1 - rate) / x.size)  # six standard deviations of the binomial fraction
    assert abs(dropped - rate) < bound
    np.testing.assert_allclose(y[y != 0], np.float32(2.0 / (1 - rate)), rtol=1e-6)
    assert y.dtype == np.float32
    jitted = ft.jit(lambda x, k: apply_fun((), x, rng=k), backend="interpret")(x, random.PRNGKey(42))
    np.testing.assert_array_equal(jitted, y)
    other = apply_fun((), x, rng=random.PRNGKey(43))
    assert np.mean((other == 0) != (y == 0)) > rate * (1 - rate)  # independent masks differ at 2 rate (1 - rate)


def test_dropout_modes():
    x = _inputs((4, 6))
    assert stax.Dropout(0.5)[1]((), x, mode="test") is x
    assert stax.Dropout(0.5, mode="test")[1]((), x) is x
    overridden = stax.Dropout(0.5, mode="test")[1]((), x, rng=KEY, mode="train")
    assert np.any(overridden == 0)
    assert stax.Dropout(0.0)[1]((), x, rng=KEY) is x
    np.testing.assert_array_equal(stax.Dropout(1.0)[1]((), x, rng=KEY), np.zeros_like(x))
    net = stax.serial(stax.Dense(3), stax.Dropout(0.5))
    _, params = net[0](KEY, x.shape)
    np.testing.assert_array_equal(net[1](params, x, mode="test"), stax.Dense(3)[1](params[0], x))


# --- BatchNorm ---------------------------------------------------------------------------------


def _batch(seed: int = 0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(8, 3, 3, 2)) * [2.0, 0.5] + [3.0, -1.0]).astype(np.float32)


def test_batchnorm_train_mode_uses_batch_statistics():
    init_fun, apply_fun = stax.BatchNorm()
    _, (beta, gamma, stats) = init_fun(KEY, (-1, 3, 3, 2))
    x = _batch()
    y = apply_fun((beta, gamma, stats), x)
    np.testing.assert_allclose(y.mean(axis=(0, 1, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(y.var(axis=(0, 1, 2)), x.var(axis=(0, 1, 2)) / (x.var(axis=(0, 1, 2)) + 1e-5), rtol=1e-4)
    y = apply_fun((beta + 1, gamma * 2, stats), x)
    np.testing.assert_allclose(y.mean(axis=(0, 1, 2)), 1, atol=1e-5)
    np.testing.assert_allclose(y.std(axis=(0, 1, 2)), 2, rtol=1e-4)


def test_batchnorm_test_mode_uses_running_statistics():
    init_fun, apply_fun = stax.BatchNorm()
    _, params = init_fun(KEY, (-1, 3, 3, 2))
    x = _batch()
    np.testing.assert_allclose(apply_fun(params, x, mode="test"), x / np.sqrt(1 + 1e-5), rtol=1e-6)
    mean, var = np.array([1.0, 2.0], np.float32), np.array([4.0, 0.25], np.float32)
    y = apply_fun((params[0], params[1], (mean, var)), x, mode="test")
    np.testing.assert_allclose(y, (x - mean) / np.sqrt(var + 1e-5), rtol=1e-5, atol=1e-6)
    _, test_apply = stax.BatchNorm(mode="test")
    np.testing.assert_allclose(test_apply(params, x), apply_fun(params, x, mode="test"))
    np.testing.assert_allclose(test_apply(params, x, mode="train"), apply_fun(params, x))


def test_batchnorm_state_update_follows_momentum():
    init_fun, apply_fun = stax.serial(stax.Dense(2), stax.BatchNorm(axis=(0,), momentum=0.9), stax.Relu)
    x = _inputs((16, 3))
    _, params = init_fun(KEY, (-1, 3))
    outputs, state = stax.stateful(apply_fun)(params, x)
    np.testing.assert_array_equal(outputs, apply_fun(params, x))
    hidden = x @ params[0][0] + params[0][1]
    assert state[0] == (None, None) and state[2] == () and state[1][:2] == (None, None)
    new_mean, new_var = state[1][2]
    np.testing.assert_allclose(new_mean, 0.1 * hidden.mean(axis=0), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(new_var, 0.9 + 0.1 * hidden.var(axis=0), rtol=1e-5)
    assert new_mean.dtype == new_var.dtype == np.float32
    merged = stax.merge_state(params, state)
    assert merged[0][0] is params[0][0] and merged[1][0] is params[1][0] and merged[1][2] == state[1][2]
    _, test_state = stax.stateful(apply_fun)(params, x, mode="test")
    assert tree_util.tree_leaves(test_state) == []


def test_batchnorm_running_statistics_converge_under_jit():
    init_fun, apply_fun = stax.BatchNorm(momentum=0.5)
    _, params = init_fun(KEY, (-1, 3, 3, 2))
    x = _batch()
    train = ft.jit(lambda p, x: stax.merge_state(p, stax.stateful(apply_fun)(p, x)[1]), backend="interpret")
    for _ in range(40):
        params = train(params, x)
    np.testing.assert_allclose(apply_fun(params, x, mode="test"), apply_fun(params, x), rtol=1e-4, atol=1e-4)


def test_batchnorm_running_statistics_get_no_gradient():
    init_fun, apply_fun = stax.BatchNorm(axis=(0,))
    _, params = init_fun(KEY, (-1, 3))
    x = _inputs((5, 3))
    for mode in ("train", "test"):
        grads = ft.grad(lambda p, mode=mode: (apply_fun(p, x, mode=mode) ** 2).sum())(params)
        assert not np.any(grads[2][0]) and not np.any(grads[2][1])

    def loss(p):
        y, state = stax.stateful(apply_fun)(p, x)
        return (y**3).sum(), state

    (_, state), grads = ft.value_and_grad(loss, has_aux=True)(params)
    np.testing.assert_allclose(state[2][0], 0.01 * x.mean(axis=0), rtol=1e-5)


# --- composition with transformations ----------------------------------------------------------


def test_network_under_jit_and_vmap_matches_eager():
    init_fun, apply_fun = stax.serial(
        stax.Conv(3, (2, 2)), stax.Relu, stax.MaxPool((2, 2)), stax.Flatten, stax.Dense(4), stax.LogSoftmax
    )
    _, params = init_fun(KEY, (-1, 5, 5, 1))
    x = _inputs((2, 5, 5, 1))
    eager = apply_fun(params, x)
    assert_same(ft.jit(apply_fun, backend="interpret")(params, x), eager)
    per_example = ft.vmap(lambda x: apply_fun(params, x[None])[0])(x)
    assert_same(per_example, eager, rtol=1e-5, atol=1e-6)


def test_vmap_over_keys_and_over_an_ensemble_of_params():
    init_fun, apply_fun = stax.serial(stax.LSTM(3), stax.Dropout(0.5), stax.GRU(2, return_sequences=False))
    x = _inputs((5, 4, 2))
    keys = random.split(random.PRNGKey(1), 3)
    ensemble = ft.vmap(lambda k: init_fun(k, (-1, 4, 2))[1])(keys)
    outputs = ft.vmap(lambda p, k: apply_fun(p, x, rng=k))(ensemble, keys)
    for i in range(3):
        member = tree_util.tree_map(lambda a, i=i: a[i], ensemble)
        np.testing.assert_array_equal(member[0][0], init_fun(keys[i], (-1, 4, 2))[1][0][0])
        assert_same(outputs[i], apply_fun(member, x, rng=keys[i]), rtol=1e-5, atol=1e-6)


def test_recurrent_network_under_jit_matches_eager():
    init_fun, apply_fun = stax.serial(stax.Embedding(5, 3), stax.LSTM(4), stax.GRU(2, return_sequences=False))
    _, params = init_fun(KEY, (-1, 6))
    ids = np.array([[0, 1, 2, 3, 4, 0], [4, 4, 3, 3, 2, 1]])
    assert_same(ft.jit(apply_fun, backend="interpret")(params, ids), apply_fun(params, ids), rtol=1e-6, atol=1e-6)


def test_serial_splits_rng_between_layers():
    _, apply_fun = stax.serial(stax.Dropout(0.5), stax.Dropout(0.5))
    x = np.ones((50, 50), np.float32)
    y = apply_fun(((), ()), x, rng=KEY)
    assert set(np.unique(y)) <= {0.0, 4.0}
    np.testing.assert_array_equal(y, apply_fun(((), ()), x, rng=KEY))
    assert abs(np.mean(y == 0) - 0.75) < 0.05  # independent masks: a unit survives both with p = 1/4
    _, params = stax.serial(stax.Dense(4), stax.Dense(4))[0](KEY, (-1, 4))
    assert not np.array_equal(params[0][0], params[1][0])


# --- errors --------------------------------------------------------------------------------------


def _init(layer, shape):
    return lambda: layer[0](KEY, shape)


def _apply(layer, init_shape, x, **kwargs):
    def run():
        _, params = layer[0](KEY, init_shape)
        return layer[1](params, x, **kwargs)

    return run


ERROR_CASES = [
    (
        "kernel larger than VALID input",
        _init(stax.Conv(2, (5, 5)), (1, 3, 3, 1)),
        TypeError,
        r"Conv\(2, \(5, 5\).*kernel \(5, 5\) is larger than the spatial dimensions \(3, 3\)",
    ),
    (
        "pool window too big",
        _init(stax.MaxPool((4,)), (1, 3, 2)),
        TypeError,
        r"MaxPool\(\(4,\).*window \(4,\) is larger",
    ),
    ("Conv wrong rank", _init(stax.Conv(2, (1, 1)), (3, 3, 1)), TypeError, r"Conv\(2, \(1, 1\).*rank 4"),
    ("Conv unknown channels", _init(stax.Conv(2, (1, 1)), (1, 3, 3, -1)), ValueError, "must be known"),
    (
        "Conv channels mismatch",
        _apply(stax.Conv(2, (1, 1)), (1, 3, 3, 2), np.ones((1, 3, 3, 5))),
        TypeError,
        r"Conv\(2.*\(1, 3, 3, 5\)",
    ),
    (
        "Dense input mismatch",
        _apply(stax.Dense(4), (2, 3), np.ones((2, 5))),
        TypeError,
        r"Dense\(4\): inputs of shape \(2, 5\).*kernel of shape \(3, 4\)",
    ),
    ("Dense scalar input", _init(stax.Dense(4), ()), TypeError, r"Dense\(4\).*rank >= 1"),
    ("Flatten unknown dims", _init(stax.Flatten, (2, -1)), ValueError, "Flatten"),
    ("LSTM rank", _init(stax.LSTM(3), (2, 3)), TypeError, r"LSTM\(3.*rank 3"),
    ("GRU feature mismatch", _apply(stax.GRU(3), (2, 4, 2), np.ones((2, 4, 3))), TypeError, r"GRU\(3.*\(2, 4, 3\)"),
    ("Embedding float ids", _apply(stax.Embedding(3, 2), (4,), np.ones(4)), TypeError, r"Embedding\(3, 2\).*integer"),
    (
        "Dropout needs rng",
        _apply(stax.Dropout(0.5), (3,), np.ones(3)),
        ValueError,
        r"Dropout\(0.5\) in train mode needs a PRNG key",
    ),
    ("Dropout bad rate", lambda: stax.Dropout(1.5), ValueError, r"Dropout\(1.5\).*\[0, 1\]"),
    (
        "bad mode",
        _apply(stax.Dropout(0.5), (3,), np.ones(3), mode="eval"),
        ValueError,
        "mode must be 'train' or 'test'",
    ),
    (
        "serial bad mode",
        _apply(stax.serial(stax.Dense(1)), (1, 1), np.ones((1, 1)), mode="predict"),
        ValueError,
        "serial",
    ),
    ("BatchNorm bad axis", _init(stax.BatchNorm(), (2, 3)), TypeError, r"BatchNorm.*axis \(0, 1, 2\)"),
    (
        "BatchNorm mismatch",
        _apply(stax.BatchNorm(axis=(0,)), (2, 3), np.ones((2, 4))),
        TypeError,
        r"BatchNorm.*\(2, 4\)",
    ),
    ("bad padding", lambda: stax.Conv(1, (1, 1), padding="FULL"), ValueError, r"Conv\(1.*padding must be"),
    ("bad strides", lambda: stax.AvgPool((2, 2), strides=(0, 1)), ValueError, r"AvgPool.*strides must be 2 positive"),
    ("Conv filter rank", lambda: stax.Conv(1, (3,)), ValueError, "filter_shape must hold 2"),
    (
        "parallel count",
        _init(stax.parallel(stax.Identity, stax.Identity), ((1,),)),
        TypeError,
        r"parallel\(<2 layers>\).*got 1",
    ),
    ("FanInSum shapes", _init(stax.FanInSum, ((2, 3), (2, 4))), TypeError, "FanInSum.*differ"),
    ("FanInConcat shapes", _init(stax.FanInConcat(0), ((2, 3), (2, 4))), TypeError, r"FanInConcat\(axis=0\).*differ"),
    (
        "serial params count",
        lambda: stax.serial(stax.Relu, stax.Relu)[1]((()), np.ones(2)),
        TypeError,
        r"serial\(<2 layers>\).*params",
    ),
]


@pytest.mark.parametrize(("run", "error", "pattern"), [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES])
def test_errors_name_the_layer(run, error, pattern):
    with pytest.raises(error, match=pattern):
        run()


def test_error_message_points_at_user_line():
    with pytest.raises(TypeError) as info:
        stax.Conv(2, (5, 5))[0](KEY, (1, 3, 3, 1))
    assert re.search(r"at .*test_stax\.py:\d+", str(info.value))


def test_stateful_refuses_a_jitted_apply_fun():
    import functrace as ft

    _, apply_fun = stax.serial(stax.Dense(2), stax.BatchNorm(axis=(0,)))
    with pytest.raises(ValueError, match="stateful must wrap the un-jitted apply_fun"):
        stax.stateful(ft.jit(apply_fun))
