"""``eager_grad_mlp``: ``grad`` of the ``mlp_step`` loss without ``jit`` (MLP 784-512-512-10,
batch 128, float32) — every operation dispatched as the Python code runs. The bar is
faster than autograd; JAX (``grad`` without ``jit``) and PyTorch (eager autograd) are shown
for orientation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from benchmarks.harness import Results, System, Workload, ratio, verdict
from benchmarks.workloads.mlp_step import mlp_data, mlp_loss, torch_mlp_loss


def functrace_eager_grad_mlp() -> Callable[[], Any]:
    """functrace: ``grad`` without ``jit``."""
    import functrace as ft
    import functrace.numpy as fnp

    grad_loss = ft.grad(mlp_loss(fnp))
    params, x, labels = mlp_data()
    return lambda: grad_loss(params, x, labels)


def autograd_eager_grad_mlp() -> Callable[[], Any]:
    """autograd: ``grad``."""
    import autograd
    import autograd.numpy as anp

    grad_loss = autograd.grad(mlp_loss(anp))
    params, x, labels = mlp_data()
    return lambda: grad_loss(params, x, labels)


def jax_eager_grad_mlp() -> Callable[[], Any]:
    """JAX: ``grad`` without ``jit`` (each operation dispatched on its own)."""
    import jax
    import jax.numpy as jnp

    grad_loss = jax.grad(mlp_loss(jnp))
    params, x, labels = jax.device_put(mlp_data())
    return lambda: jax.block_until_ready(grad_loss(params, x, labels))


def torch_eager_grad_mlp() -> Callable[[], Any]:
    """PyTorch: eager forward and ``torch.autograd.grad``."""
    import torch

    params, x, labels = mlp_data()
    params_t = [(torch.from_numpy(w).requires_grad_(), torch.from_numpy(b).requires_grad_()) for w, b in params]
    leaves = [p for layer in params_t for p in layer]
    x_t, labels_t = torch.from_numpy(x), torch.from_numpy(labels)
    return lambda: torch.autograd.grad(torch_mlp_loss(params_t, x_t, labels_t), leaves)


def bar(results: Results) -> str:
    """functrace faster than autograd."""
    return verdict("functrace / autograd", ratio(results.time("functrace"), results.time("autograd")), 1.0)


WORKLOAD = Workload(
    name="eager_grad_mlp",
    description="grad of the mlp_step loss without jit",
    systems=(
        System("functrace", "functrace grad (eager)", functrace_eager_grad_mlp),
        System("autograd", "autograd", autograd_eager_grad_mlp),
        System("jax", "JAX grad (no jit)", jax_eager_grad_mlp),
        System("torch", "PyTorch eager autograd", torch_eager_grad_mlp),
    ),
    bar=bar,
)
