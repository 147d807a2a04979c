"""``mlp_step``: MLP 784-512-512-10, ReLU, log-softmax cross-entropy, batch 128, float32;
one step = the gradient of the loss and an SGD update of every parameter.

functrace, JAX: ``jit`` of ``grad`` + update. NumPy: forward and backward written by hand.
PyTorch: eager autograd and an in-place update. autograd: ``grad`` + update, no compiler.
The loss here is shared with ``first_call_mlp`` and ``eager_grad_mlp``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.harness import BACKEND, LEARNING_RATE, System, Workload, bar_best_peer
from benchmarks.workloads.training import sgd_step

SIZES = (784, 512, 512, 10)
BATCH = 128


def mlp_data(seed: int = 0) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray, np.ndarray]:
    """He-initialised ``[(w, b), ...]``, inputs ``[BATCH, 784]`` and one-hot labels ``[BATCH, 10]``."""
    rng = np.random.default_rng(seed)
    params = [
        (rng.normal(0, np.sqrt(2 / m), (m, n)).astype(np.float32), np.zeros(n, np.float32))
        for m, n in itertools.pairwise(SIZES)
    ]
    x = rng.normal(size=(BATCH, SIZES[0])).astype(np.float32)
    labels = np.eye(SIZES[-1], dtype=np.float32)[rng.integers(0, SIZES[-1], BATCH)]
    return params, x, labels


def mlp_loss(np_module: Any) -> Callable:
    """The loss written against a NumPy-like module (``functrace.numpy``, ``jax.numpy``,
    ``autograd.numpy``): mean cross-entropy of a log-softmax computed stably."""

    def loss(params, x, labels):
        h = x
        for w, b in params[:-1]:
            h = np_module.maximum(h @ w + b, 0.0)
        w, b = params[-1]
        logits = h @ w + b
        shifted = logits - np_module.max(logits, axis=1, keepdims=True)
        log_probs = shifted - np_module.log(np_module.sum(np_module.exp(shifted), axis=1, keepdims=True))
        return -np_module.mean(np_module.sum(log_probs * labels, axis=1))

    return loss


def functrace_mlp_step_fn(backend: str = BACKEND) -> Callable:
    """The jitted step ``(params, x, labels) -> new params`` (``first_call_mlp`` times its first call)."""
    import functrace as ft
    import functrace.numpy as fnp

    return ft.jit(sgd_step(ft, mlp_loss(fnp)), backend=backend)


def jax_mlp_step_fn() -> Callable:
    """JAX's jitted step, written as :func:`functrace_mlp_step_fn`."""
    import jax
    import jax.numpy as jnp

    return jax.jit(sgd_step(jax, mlp_loss(jnp)))


def functrace_mlp_step() -> Callable[[], Any]:
    """functrace: the jitted step on NumPy arrays."""
    step = functrace_mlp_step_fn()
    params, x, labels = mlp_data()
    return lambda: step(params, x, labels)


def jax_mlp_step() -> Callable[[], Any]:
    """JAX: the jitted step on arrays placed on the device once, outside the clock."""
    import jax

    step = jax_mlp_step_fn()
    params, x, labels = jax.device_put(mlp_data())
    return lambda: jax.block_until_ready(step(params, x, labels))


def numpy_sgd_step(params: list, x: np.ndarray, labels: np.ndarray) -> list:
    """One SGD step with the gradient derived by hand (``d loss / d logits = (softmax - labels) / batch``)."""
    activations = [x]
    for w, b in params[:-1]:
        activations.append(np.maximum(activations[-1] @ w + b, 0.0))
    w, b = params[-1]
    logits = activations[-1] @ w + b
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    delta = (exp / exp.sum(axis=1, keepdims=True) - labels) / np.float32(len(x))
    updated = []
    for i in reversed(range(len(params))):
        w, b = params[i]
        grad_w, grad_b = activations[i].T @ delta, delta.sum(axis=0)
        if i > 0:  # back through the ReLU: its output is positive exactly where it passed
            delta = (delta @ w.T) * (activations[i] > 0)
        updated.append((w - LEARNING_RATE * grad_w, b - LEARNING_RATE * grad_b))
    return updated[::-1]


def numpy_mlp_step() -> Callable[[], Any]:
    """NumPy: :func:`numpy_sgd_step`."""
    params, x, labels = mlp_data()
    return lambda: numpy_sgd_step(params, x, labels)


def torch_mlp_loss(params: list, x: Any, labels: Any) -> Any:
    """The loss in PyTorch, same layout as :func:`mlp_loss` (weights ``[in, out]``)."""
    h = x
    for w, b in params[:-1]:
        h = (h @ w + b).relu()
    w, b = params[-1]
    return -((h @ w + b).log_softmax(dim=1) * labels).sum(dim=1).mean()


def torch_mlp_step() -> Callable[[], Any]:
    """PyTorch: eager forward, ``backward()``, an in-place update of each parameter."""
    import torch

    params, x, labels = mlp_data()
    leaves = [torch.from_numpy(a).requires_grad_() for layer in params for a in layer]
    params_t = list(zip(leaves[::2], leaves[1::2], strict=True))
    x_t, labels_t = torch.from_numpy(x), torch.from_numpy(labels)

    def step() -> None:
        torch_mlp_loss(params_t, x_t, labels_t).backward()
        with torch.no_grad():
            for p in leaves:
                p -= LEARNING_RATE * p.grad
                p.grad = None

    return step


def autograd_mlp_step() -> Callable[[], Any]:
    """autograd: ``grad`` and the update, run eagerly."""
    import autograd
    import autograd.numpy as anp

    grad_loss = autograd.grad(mlp_loss(anp))
    params, x, labels = mlp_data()

    def step() -> list:
        grads = grad_loss(params, x, labels)
        return [
            (w - LEARNING_RATE * gw, b - LEARNING_RATE * gb) for (w, b), (gw, gb) in zip(params, grads, strict=True)
        ]

    return step


WORKLOAD = Workload(
    name="mlp_step",
    description="MLP 784-512-512-10, batch 128: jitted grad + SGD step",
    systems=(
        System("functrace", "functrace jit", functrace_mlp_step),
        System("numpy", "NumPy (hand backprop)", numpy_mlp_step),
        System("jax", "JAX jit", jax_mlp_step),
        System("torch", "PyTorch eager", torch_mlp_step),
        System("autograd", "autograd", autograd_mlp_step),
    ),
    bar=bar_best_peer(),
)
