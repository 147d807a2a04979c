"""Small stax networks learn synthetic tasks: the loss must fall by a stated factor.

Full-batch Adam (functrace.optimizers) on fixed data and fixed seeds, each step one
``jit(backend="interpret")`` call, so the runs are deterministic and quick.
"""

from __future__ import annotations

from functools import partial

import numpy as np

import functrace as ft
import functrace.numpy as fnp
from functrace import optimizers, random, stax


def _quadrant_images(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """8x8 noise images with a bright 2x2 square in one quadrant; the label is the quadrant."""
    rng = np.random.default_rng(seed)
    images = rng.normal(scale=0.3, size=(n, 8, 8, 1)).astype(np.float32)
    labels = rng.integers(0, 4, size=n)
    for image, label in zip(images, labels, strict=True):
        top, left = 4 * (label // 2) + rng.integers(0, 3), 4 * (label % 2) + rng.integers(0, 3)
        image[top : top + 2, left : left + 2] += 2.0
    return images, labels


def test_cnn_with_batchnorm_and_dropout_learns_quadrants():
    init_fun, apply_fun = stax.serial(
        stax.Conv(6, (3, 3), padding="SAME"),
        stax.BatchNorm(),
        stax.Relu,
        stax.MaxPool((2, 2), strides=(2, 2)),
        stax.Flatten,
        stax.Dropout(0.1),
        stax.Dense(4),
        stax.LogSoftmax,
    )
    images, labels = _quadrant_images(64)
    targets = np.eye(4, dtype=np.float32)[labels]
    _, params = init_fun(random.PRNGKey(0), (-1, 8, 8, 1))
    opt_init, opt_update, get_params = optimizers.adam(0.03)
    opt_state = opt_init(params)
    train_apply = stax.stateful(apply_fun)

    def loss(params, rng):
        log_probs, state = train_apply(params, images, rng=rng)
        return -fnp.mean(fnp.sum(log_probs * targets, axis=-1)), state

    @partial(ft.jit, backend="interpret")
    def step(i, opt_state, params, rng):
        (value, state), grads = ft.value_and_grad(loss, has_aux=True)(params, rng)
        opt_state = opt_update(i, grads, opt_state)
        return value, opt_state, stax.merge_state(get_params(opt_state), state)

    losses = []
    for i in range(20):
        value, opt_state, params = step(i, opt_state, params, random.fold_in(random.PRNGKey(1), i))
        losses.append(float(value))
    assert losses[-1] < losses[0] / 10, losses  # about 1.8 -> 0.002 in practice
    predictions = np.argmax(apply_fun(params, images, mode="test"), axis=-1)
    assert np.mean(predictions == labels) > 0.9


def test_lstm_learns_running_sum():
    init_fun, apply_fun = stax.serial(stax.LSTM(8, return_sequences=False), stax.Dense(1))
    rng = np.random.default_rng(0)
    xs = rng.uniform(-1, 1, size=(64, 5, 1)).astype(np.float32)
    ys = xs.sum(axis=1)
    _, params = init_fun(random.PRNGKey(0), (-1, 5, 1))
    opt_init, opt_update, get_params = optimizers.adam(0.03)
    opt_state = opt_init(params)

    def loss(params):
        return fnp.mean((apply_fun(params, xs) - ys) ** 2)

    @partial(ft.jit, backend="interpret")
    def step(i, opt_state):
        value, grads = ft.value_and_grad(loss)(get_params(opt_state))
        return value, opt_update(i, grads, opt_state)

    losses = []
    for i in range(40):
        value, opt_state = step(i, opt_state)
        losses.append(float(value))
    assert losses[-1] < losses[0] / 10, losses  # about 2.2 -> 0.04 in practice
