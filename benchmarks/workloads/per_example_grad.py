"""``per_example_grad``: ``jit(vmap(grad(loss), in_axes=(None, 0, 0)))`` — the gradient of
each example's squared error separately, for a tanh MLP 64-128-10 over a batch of 128,
float32. PyTorch runs ``torch.func.vmap(torch.func.grad(loss))`` (no compiler).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.harness import BACKEND, System, Workload, bar_best_peer

BATCH = 128


def data(seed: int = 0) -> tuple[list, np.ndarray, np.ndarray]:
    """Params ``[(w1, b1), (w2, b2)]``, inputs ``[128, 64]`` and targets ``[128, 10]``."""
    rng = np.random.default_rng(seed)
    params = [
        (rng.normal(0, 0.1, (64, 128)).astype(np.float32), np.zeros(128, np.float32)),
        (rng.normal(0, 0.1, (128, 10)).astype(np.float32), np.zeros(10, np.float32)),
    ]
    x = rng.normal(size=(BATCH, 64)).astype(np.float32)
    y = rng.normal(size=(BATCH, 10)).astype(np.float32)
    return params, x, y


def loss_of(np_module: Any) -> Callable:
    """One example's loss, for ``functrace.numpy``, ``jax.numpy`` or ``torch``."""

    def loss(params, x, y):
        (w1, b1), (w2, b2) = params
        h = np_module.tanh(x @ w1 + b1)
        return np_module.sum((h @ w2 + b2 - y) ** 2)

    return loss


def functrace_per_example_grad() -> Callable[[], Any]:
    """functrace: ``jit(vmap(grad))``."""
    import functrace as ft
    import functrace.numpy as fnp

    f = ft.jit(ft.vmap(ft.grad(loss_of(fnp)), in_axes=(None, 0, 0)), backend=BACKEND)
    params, x, y = data()
    return lambda: f(params, x, y)


def jax_per_example_grad() -> Callable[[], Any]:
    """JAX: ``jit(vmap(grad))``."""
    import jax
    import jax.numpy as jnp

    f = jax.jit(jax.vmap(jax.grad(loss_of(jnp)), in_axes=(None, 0, 0)))
    params, x, y = jax.device_put(data())
    return lambda: jax.block_until_ready(f(params, x, y))


def torch_per_example_grad() -> Callable[[], Any]:
    """PyTorch: ``torch.func.vmap(torch.func.grad)``, eager."""
    import torch
    from torch.func import grad, vmap

    f = vmap(grad(loss_of(torch)), in_dims=(None, 0, 0))
    params, x, y = data()
    params_t = [(torch.from_numpy(w), torch.from_numpy(b)) for w, b in params]
    x_t, y_t = torch.from_numpy(x), torch.from_numpy(y)
    return lambda: f(params_t, x_t, y_t)


WORKLOAD = Workload(
    name="per_example_grad",
    description="jit(vmap(grad(loss))), tanh MLP 64-128-10, batch 128",
    systems=(
        System("functrace", "functrace jit(vmap(grad))", functrace_per_example_grad),
        System("jax", "JAX jit(vmap(grad))", jax_per_example_grad),
        System("torch", "PyTorch torch.func vmap(grad)", torch_per_example_grad),
    ),
    bar=bar_best_peer(),
)
