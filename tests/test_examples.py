"""The worked examples train (their plotting needs matplotlib and is not exercised here)."""

from __future__ import annotations

import importlib.util
import os

import numpy as np

from functrace import random

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "examples")


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, os.path.join(EXAMPLES, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_colour_price_regression_fits_the_prices():
    ex = _load("colour_price_regression")
    colours, prices = ex.make_data(256)
    params = {"w": np.zeros(3, np.float32), "c": np.float32(0.0)}
    _, first = ex.train_step(params, colours, prices, np.float32(0.5))
    for _ in range(150):
        params, last = ex.train_step(params, colours, prices, np.float32(0.5))
    assert float(last) < float(first) / 100
    np.testing.assert_allclose(params["w"], ex.TRUE_W * 100, rtol=0.05)


def test_programmer_classifier_learns():
    ex = _load("programmer_classifier")
    features, labels = ex.make_data(512)
    test_features, test_labels = ex.make_data(256, seed=1)
    key = random.PRNGKey(0)
    _, params = ex.init_fun(key, (-1, 2))
    opt_state = ex.opt_init(params)
    losses = []
    for step in range(60):
        opt_state, value = ex.train_step(step, opt_state, features, labels, random.fold_in(key, step))
        losses.append(float(value))
    assert losses[-1] < losses[0] / 3
    assert ex.accuracy(ex.get_params(opt_state), test_features, test_labels) > 0.9


def test_char_lstm_learns_to_predict_characters():
    ex = _load("char_lstm")
    rng = np.random.default_rng(0)
    key = random.PRNGKey(0)
    _, params = ex.init_fun(key, (-1, ex.SEQ, ex.VOCAB))
    opt_state = ex.opt_init(params)
    losses = []
    for step in range(80):
        opt_state, value = ex.train_step(step, opt_state, *ex.batches(rng))
        losses.append(float(value))
    assert np.mean(losses[-5:]) < losses[0] / 2
    text = ex.sample(ex.get_params(opt_state), key, length=10)
    assert len(text) == 14 and set(text) <= set(ex.CHARS)
