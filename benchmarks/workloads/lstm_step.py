"""``lstm_step``: a character LSTM, float32 — one-hot inputs over a vocabulary of 65,
hidden size 256, batch 32, 64 time steps through ``lax.scan``, a dense head on every step
and the cross-entropy of the next character; one step = gradient + SGD update.

The model is written once for functrace and JAX (the equations of ``stax.LSTM``: gates
i, f, g, o; the input projection of all steps is one matrix product before the scan).
PyTorch runs ``nn.LSTM`` and ``nn.Linear``, the way a PyTorch user writes it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.harness import BACKEND, LEARNING_RATE, System, Workload, bar_best_peer
from benchmarks.workloads.training import sgd_step

VOCAB, HIDDEN, BATCH, STEPS = 65, 256, 32, 64


def lstm_data(seed: int = 0) -> tuple[tuple, np.ndarray, np.ndarray]:
    """Params ``((w_x, w_h, b), (w_out, b_out))``, one-hot inputs and next-character targets ``[32, 64, 65]``."""
    rng = np.random.default_rng(seed)

    def weight(m: int, n: int) -> np.ndarray:
        return rng.normal(0, np.sqrt(1 / m), (m, n)).astype(np.float32)

    bias = np.zeros(4 * HIDDEN, np.float32)
    bias[HIDDEN : 2 * HIDDEN] = 1.0  # the forget gate starts open
    params = (
        (weight(VOCAB, 4 * HIDDEN), weight(HIDDEN, 4 * HIDDEN), bias),
        (weight(HIDDEN, VOCAB), np.zeros(VOCAB, np.float32)),
    )
    codes = rng.integers(0, VOCAB, (BATCH, STEPS + 1))
    one_hot = np.eye(VOCAB, dtype=np.float32)[codes]
    return params, one_hot[:, :-1], one_hot[:, 1:]


def lstm_loss(lib: Any, np_module: Any) -> Callable:
    """The loss for ``lib`` = ``functrace`` or ``jax`` (``lax.scan``, ``nn``) and its NumPy module."""

    def loss(params, inputs, targets):
        (w_x, w_h, b), (w_out, b_out) = params
        projected = np_module.swapaxes(inputs @ w_x + b, 0, 1)  # [time, batch, 4 * hidden]

        def cell(carry, x_t):
            h, c = carry
            i, f, g, o = np_module.split(x_t + h @ w_h, 4, axis=-1)
            c = lib.nn.sigmoid(f) * c + lib.nn.sigmoid(i) * np_module.tanh(g)
            h = lib.nn.sigmoid(o) * np_module.tanh(c)
            return (h, c), h

        zeros = np_module.zeros((inputs.shape[0], HIDDEN), np.float32)
        _, hs = lib.lax.scan(cell, (zeros, zeros), projected)
        log_probs = lib.nn.log_softmax(hs @ w_out + b_out, axis=-1)
        return -np_module.mean(np_module.sum(log_probs * np_module.swapaxes(targets, 0, 1), axis=-1))

    return loss


def functrace_lstm_step() -> Callable[[], Any]:
    """functrace: :func:`lstm_loss`, the jitted step."""
    import functrace as ft
    import functrace.numpy as fnp

    step = ft.jit(sgd_step(ft, lstm_loss(ft, fnp)), backend=BACKEND)
    params, inputs, targets = lstm_data()
    return lambda: step(params, inputs, targets)


def jax_lstm_step() -> Callable[[], Any]:
    """JAX: :func:`lstm_loss`, the jitted step."""
    import jax
    import jax.numpy as jnp

    step = jax.jit(sgd_step(jax, lstm_loss(jax, jnp)))
    params, inputs, targets = jax.device_put(lstm_data())
    return lambda: jax.block_until_ready(step(params, inputs, targets))


def torch_lstm_step() -> Callable[[], Any]:
    """PyTorch: ``nn.LSTM`` (batch first) and ``nn.Linear``, ``torch.optim.SGD``."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    lstm, head = nn.LSTM(VOCAB, HIDDEN, batch_first=True), nn.Linear(HIDDEN, VOCAB)
    optimizer = torch.optim.SGD([*lstm.parameters(), *head.parameters()], lr=LEARNING_RATE)
    _, inputs, targets = lstm_data()
    inputs_t, targets_t = torch.from_numpy(inputs), torch.from_numpy(targets)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        hs, _ = lstm(inputs_t)
        (-(head(hs).log_softmax(dim=-1) * targets_t).sum(dim=-1).mean()).backward()
        optimizer.step()

    return step


WORKLOAD = Workload(
    name="lstm_step",
    description="char LSTM (vocab 65, hidden 256, batch 32, 64 steps by scan): jitted grad + SGD step",
    systems=(
        System("functrace", "functrace jit", functrace_lstm_step),
        System("jax", "JAX jit", jax_lstm_step),
        System("torch", "PyTorch eager (nn.LSTM)", torch_lstm_step),
    ),
    bar=bar_best_peer(),
)
