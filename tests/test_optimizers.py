"""Optimizers against hand-written NumPy update formulas, convergence eagerly and under jit,
schedules, l2_norm/clip_grads, and the optimizer state as a plain pytree."""

from __future__ import annotations

import math

import numpy as np
import pytest

import functrace as ft
import functrace.numpy as fnp
from functrace import optimizers
from functrace.serialization import load, save
from functrace.tree_util import tree_leaves, tree_map, tree_structure

# --- NumPy references: one step on one array, state as a list ------------------------------


def ref_sgd(lr):
    return [], lambda i, x, g, s: (x - lr(i) * g, s)


def ref_momentum(lr, mass):
    def step(i, x, g, s):
        v = mass * s[0] + g
        return x - lr(i) * v, [v]

    return ["zeros"], step


def ref_nesterov(lr, mass):
    def step(i, x, g, s):
        v = mass * s[0] + g
        return x - lr(i) * (mass * v + g), [v]

    return ["zeros"], step


def ref_adagrad(lr, momentum):
    def step(i, x, g, s):
        g_sq = s[0] + g**2
        with np.errstate(divide="ignore", invalid="ignore"):
            scaled = np.where(g_sq > 0, g / np.sqrt(g_sq), 0.0)
        m = (1 - momentum) * scaled + momentum * s[1]
        return x - lr(i) * m, [g_sq, m]

    return ["zeros", "zeros"], step


def ref_rmsprop(lr, gamma, eps):
    def step(i, x, g, s):
        avg = gamma * s[0] + (1 - gamma) * g**2
        return x - lr(i) * g / np.sqrt(avg + eps), [avg]

    return ["zeros"], step


def ref_adam(lr, b1, b2, eps):
    def step(i, x, g, s):
        m = (1 - b1) * g + b1 * s[0]
        v = (1 - b2) * g**2 + b2 * s[1]
        m_hat, v_hat = m / (1 - b1 ** (i + 1)), v / (1 - b2 ** (i + 1))
        return x - lr(i) * m_hat / (np.sqrt(v_hat) + eps), [m, v]

    return ["zeros", "zeros"], step


def decaying(i):
    return 0.05 * 0.5 ** (i / 3)


OPTIMIZERS = {
    "sgd": (optimizers.sgd(0.1), ref_sgd(lambda i: 0.1)),
    "sgd with schedule": (optimizers.sgd(optimizers.exponential_decay(0.05, 3, 0.5)), ref_sgd(decaying)),
    "momentum": (optimizers.momentum(0.1, mass=0.9), ref_momentum(lambda i: 0.1, 0.9)),
    "nesterov": (optimizers.nesterov(decaying, mass=0.8), ref_nesterov(decaying, 0.8)),
    "adagrad": (optimizers.adagrad(0.3), ref_adagrad(lambda i: 0.3, 0.9)),
    "adagrad momentum 0.5": (optimizers.adagrad(0.3, momentum=0.5), ref_adagrad(lambda i: 0.3, 0.5)),
    "rmsprop": (optimizers.rmsprop(0.01), ref_rmsprop(lambda i: 0.01, 0.9, 1e-8)),
    "rmsprop custom": (optimizers.rmsprop(decaying, gamma=0.5, eps=1e-3), ref_rmsprop(decaying, 0.5, 1e-3)),
    "adam": (optimizers.adam(0.01), ref_adam(lambda i: 0.01, 0.9, 0.999, 1e-8)),
    "adam custom": (optimizers.adam(decaying, b1=0.5, b2=0.9, eps=1e-4), ref_adam(decaying, 0.5, 0.9, 1e-4)),
}


def make_params(dtype=np.float64):
    rng = np.random.default_rng(0)
    return {
        "w": rng.normal(size=(3, 2)).astype(dtype),
        "layers": [(rng.normal(size=4).astype(dtype), None), rng.normal(size=()).astype(dtype)],
    }


def make_grads(params, step):
    rng = np.random.default_rng(100 + step)
    grads = tree_map(lambda p: rng.normal(size=np.shape(p)).astype(np.asarray(p).dtype), params)
    grads["w"][0, 0] = 0.0  # an entry whose gradient is exactly zero (adagrad's special case)
    return grads


def reference_run(reference, params, steps):
    slots, step = reference
    leaves = tree_leaves(params)
    states = [[np.zeros_like(x) for _ in slots] for x in leaves]
    for i in range(steps):
        g_leaves = tree_leaves(make_grads(params, i))
        for j, g in enumerate(g_leaves):
            leaves[j], states[j] = step(i, leaves[j], g, states[j])
    return leaves, states


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_matches_reference_formulas(name):
    (init_fun, update_fun, get_params), reference = OPTIMIZERS[name]
    params = make_params()
    state = init_fun(params)
    for i in range(5):
        state = update_fun(i, make_grads(params, i), state)
    want_params, want_states = reference_run(reference, params, 5)
    got = tree_leaves(get_params(state))
    assert tree_structure(get_params(state)) == tree_structure(params)
    for a, e in zip(got, want_params, strict=True):
        np.testing.assert_allclose(a, e, rtol=1e-12, atol=1e-12)
    # The statistics, slot by slot, are the reference's too.
    assert len(state) == 1 + len(reference[0])
    for k, slot in enumerate(state[1:]):
        for a, e in zip(tree_leaves(slot), [s[k] for s in want_states], strict=True):
            np.testing.assert_allclose(a, e, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_jit_float32_matches_eager_and_keeps_dtypes(name):
    init_fun, update_fun, _ = OPTIMIZERS[name][0]
    params = make_params(np.float32)
    jitted = ft.jit(update_fun, backend="interpret")
    eager_state = jit_state = init_fun(params)
    for i in range(4):
        grads = make_grads(params, i)
        eager_state = update_fun(i, grads, eager_state)
        jit_state = jitted(i, grads, jit_state)
    for a, e in zip(tree_leaves(jit_state), tree_leaves(eager_state), strict=True):
        assert np.asarray(a).dtype == np.float32 and np.asarray(e).dtype == np.float32
        np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-6)


# --- convergence -------------------------------------------------------------------------------

TARGET = {"a": np.array([1.0, -2.0, 3.0]), "b": (np.array([[0.5, -0.5]]),)}


def quadratic_loss(params):
    weights = (1.0, 4.0)  # different curvatures
    leaves = zip(tree_leaves(params), tree_leaves(TARGET), weights, strict=True)
    return sum(w * fnp.sum((p - t) ** 2) for p, t, w in leaves)


CONVERGENCE = {
    "sgd": (optimizers.sgd(0.05), 200),
    "momentum": (optimizers.momentum(0.02, mass=0.9), 200),
    "nesterov": (optimizers.nesterov(0.02, mass=0.9), 200),
    "adagrad": (optimizers.adagrad(0.5), 300),
    "rmsprop": (optimizers.rmsprop(optimizers.inverse_time_decay(0.05, 50, 1.0)), 300),
    "adam": (optimizers.adam(optimizers.polynomial_decay(0.2, 250, 0.001)), 300),
    "adam piecewise": (optimizers.adam(optimizers.piecewise_constant([150], [0.1, 0.01])), 300),
}


@pytest.mark.parametrize("mode", ["eager", "jit"])
@pytest.mark.parametrize("name", CONVERGENCE)
def test_converges_on_a_quadratic(name, mode):
    (init_fun, update_fun, get_params), steps = CONVERGENCE[name]

    def train_step(i, state):
        grads = ft.grad(quadratic_loss)(get_params(state))
        return update_fun(i, grads, state)

    if mode == "jit":
        train_step = ft.jit(train_step, backend="interpret")
    state = init_fun(tree_map(np.zeros_like, TARGET))
    start = float(quadratic_loss(get_params(state)))
    for i in range(steps):
        state = train_step(i, state)
    assert float(quadratic_loss(get_params(state))) < 1e-4 * start


def test_vmap_over_a_batch_of_parameters():
    init_fun, update_fun, get_params = optimizers.adam(0.1)
    xs = np.linspace(-1.0, 1.0, 6).reshape(3, 2)
    gs = np.arange(6.0).reshape(3, 2) - 2.0

    def one_step(x, g):
        return get_params(update_fun(0, g, init_fun(x)))

    batched = ft.vmap(one_step)(xs, gs)
    np.testing.assert_allclose(batched, np.stack([one_step(x, g) for x, g in zip(xs, gs, strict=True)]))


# --- the state is a plain pytree --------------------------------------------------------------


def test_state_is_a_tuple_of_parameter_shaped_trees():
    params = make_params()
    state = optimizers.adam(0.1)[0](params)
    assert type(state) is tuple and len(state) == 3
    assert all(tree_structure(slot) == tree_structure(params) for slot in state)
    for a, e in zip(tree_leaves(state[0]), tree_leaves(params), strict=True):
        np.testing.assert_array_equal(a, e)
    assert all(np.all(x == 0) for x in tree_leaves(state[1:]))


def test_saved_state_resumes_training_identically(tmp_path):
    init_fun, update_fun, _ = optimizers.momentum(0.1, mass=0.9)
    params = make_params(np.float32)
    state = init_fun(params)
    for i in range(3):
        state = update_fun(i, make_grads(params, i), state)
    save(tmp_path / "opt.npz", state)
    restored = load(tmp_path / "opt.npz")
    for i in range(3, 6):
        state = update_fun(i, make_grads(params, i), state)
        restored = update_fun(i, make_grads(params, i), restored)
    for a, e in zip(tree_leaves(restored), tree_leaves(state), strict=True):
        np.testing.assert_array_equal(a, e)
        assert np.asarray(a).dtype == np.asarray(e).dtype


def test_empty_parameter_tree():
    init_fun, update_fun, get_params = optimizers.adam(0.1)
    state = init_fun({"relu": (), "dense": None})
    assert get_params(update_fun(0, {"relu": (), "dense": None}, state)) == {"relu": (), "dense": None}


def test_structure_errors():
    init_fun, update_fun, get_params = optimizers.momentum(0.1, 0.9)
    state = init_fun({"w": np.ones(2)})
    with pytest.raises(ValueError, match=r"gradients of structure .* for parameters of structure"):
        update_fun(0, {"v": np.ones(2)}, state)
    with pytest.raises(ValueError, match="must be a tuple of 2 trees"):
        update_fun(0, {"w": np.ones(2)}, [state[0], state[1]])
    with pytest.raises(ValueError, match=r"must be a tuple of 2 trees .* of length 3"):
        get_params((*state, state[0]))
    with pytest.raises(ValueError, match="optimizer state trees differ"):
        get_params((state[0], [np.ones(2)]))


@pytest.mark.parametrize("bad", ["0.1", None, np.ones(2)])
def test_step_size_must_be_number_or_schedule(bad):
    with pytest.raises(TypeError, match="step_size must be a number or a schedule"):
        optimizers.sgd(bad)


# --- schedules ------------------------------------------------------------------------------

SCHEDULES = {
    "constant": (optimizers.constant(0.3), lambda i: 0.3),
    "exponential_decay": (optimizers.exponential_decay(0.1, 10, 0.5), lambda i: 0.1 * 0.5 ** (i / 10)),
    "inverse_time_decay": (optimizers.inverse_time_decay(1.0, 4, 2.0), lambda i: 1 / (1 + 2 * i / 4)),
    "inverse_time_decay staircase": (
        optimizers.inverse_time_decay(1.0, 4, 2.0, staircase=True),
        lambda i: 1 / (1 + 2 * math.floor(i / 4)),
    ),
    "polynomial_decay linear": (
        optimizers.polynomial_decay(1.0, 10, 0.1),
        lambda i: (1 - min(i, 10) / 10) * 0.9 + 0.1,
    ),
    "polynomial_decay power 2": (
        optimizers.polynomial_decay(0.5, 8, 0.0, power=2.0),
        lambda i: 0.5 * (1 - min(i, 8) / 8) ** 2,
    ),
    "piecewise_constant": (
        optimizers.piecewise_constant([3, 7], [1.0, 0.1, 0.01]),
        lambda i: 1.0 if i <= 3 else 0.1 if i <= 7 else 0.01,
    ),
}
STEPS = [0, 1, 3, 4, 7, 8, 10, 25]


@pytest.mark.parametrize("name", SCHEDULES)
def test_schedule_values_eager_and_traced(name):
    schedule, reference = SCHEDULES[name]
    jitted = ft.jit(lambda i: fnp.asarray(schedule(i), np.float64), backend="interpret")
    for i in STEPS:
        assert float(schedule(i)) == pytest.approx(reference(i), rel=1e-12), i
        assert float(jitted(np.int64(i))) == pytest.approx(reference(i), rel=1e-12), i


def test_piecewise_constant_needs_one_more_value():
    with pytest.raises(ValueError, match="one more value than boundaries"):
        optimizers.piecewise_constant([1, 2], [1.0, 2.0])


# --- l2_norm and clip_grads -----------------------------------------------------------------


def test_l2_norm_matches_numpy():
    tree = make_params()
    flat = np.concatenate([np.ravel(x) for x in tree_leaves(tree)])
    np.testing.assert_allclose(optimizers.l2_norm(tree), np.linalg.norm(flat), rtol=1e-14)
    assert float(optimizers.l2_norm({})) == 0.0


@pytest.mark.parametrize("max_norm", [0.5, 2.0, 100.0])
@pytest.mark.parametrize("mode", ["eager", "jit"])
def test_clip_grads(max_norm, mode):
    grads = make_params(np.float32)
    clip = optimizers.clip_grads if mode == "eager" else ft.jit(optimizers.clip_grads, static_argnums=1)
    clipped = clip(grads, max_norm)
    norm = float(np.linalg.norm(np.concatenate([np.ravel(x) for x in tree_leaves(grads)])))
    scale = min(1.0, max_norm / norm)
    assert tree_structure(clipped) == tree_structure(grads)
    for c, g in zip(tree_leaves(clipped), tree_leaves(grads), strict=True):
        assert np.asarray(c).dtype == np.float32
        np.testing.assert_allclose(c, g * scale, rtol=1e-6)
    assert float(optimizers.l2_norm(clipped)) == pytest.approx(min(norm, max_norm), rel=1e-6)


def test_clip_grads_of_zero_gradients_stays_finite():
    with np.errstate(all="raise"):
        out = optimizers.clip_grads([np.zeros(3)], 1.0)
    np.testing.assert_array_equal(out[0], np.zeros(3))


def test_lifting_decorator_on_a_custom_optimizer():
    @optimizers.optimizer
    def sign_descent(step_size):
        def update(i, g, state):
            return (state[0] - step_size * fnp.sign(g),)

        return (lambda x: (x,)), update, (lambda state: state[0])

    init_fun, update_fun, get_params = sign_descent(0.5)
    out = get_params(update_fun(0, {"a": np.array([2.0, -3.0])}, init_fun({"a": np.zeros(2)})))
    np.testing.assert_array_equal(out["a"], [-0.5, 0.5])
    assert sign_descent.__name__ == "sign_descent"
