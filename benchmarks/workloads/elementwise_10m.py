"""``elementwise_10M``: ``tanh(x * 1.5 + 0.5) * sigmoid(x) + x * x`` on 10,000,000 float32
values, jitted.

The memory floor is a plain copy of the input into a preallocated output (``np.copyto``):
no elementwise kernel can finish before it has read its input and written its output.
The bar is ≤ 1.5 x that floor.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.harness import BACKEND, Results, System, Workload, ratio, verdict

SIZE = 10_000_000


def data(seed: int = 0) -> np.ndarray:
    """10M standard-normal float32 values."""
    return np.random.default_rng(seed).normal(size=SIZE).astype(np.float32)


def functrace_elementwise_10m() -> Callable[[], Any]:
    """functrace: the jitted expression."""
    import functrace as ft
    import functrace.numpy as fnp

    f = ft.jit(lambda x: fnp.tanh(x * 1.5 + 0.5) * ft.nn.sigmoid(x) + x * x, backend=BACKEND)
    x = data()
    return lambda: f(x)


def numpy_elementwise_10m() -> Callable[[], Any]:
    """NumPy: the expression, one temporary array per operation."""
    x = data()
    return lambda: np.tanh(x * 1.5 + 0.5) * (1.0 / (1.0 + np.exp(-x))) + x * x


def jax_elementwise_10m() -> Callable[[], Any]:
    """JAX: the jitted expression (XLA fuses it)."""
    import jax
    import jax.numpy as jnp

    f = jax.jit(lambda x: jnp.tanh(x * 1.5 + 0.5) * jax.nn.sigmoid(x) + x * x)
    x = jax.device_put(data())
    return lambda: jax.block_until_ready(f(x))


def torch_elementwise_10m() -> Callable[[], Any]:
    """PyTorch: the eager expression."""
    import torch

    x = torch.from_numpy(data())
    return lambda: torch.tanh(x * 1.5 + 0.5) * torch.sigmoid(x) + x * x


def numba_elementwise_10m() -> Callable[[], Any]:
    """Numba: a float32 ufunc compiled with ``target="parallel"`` (all cores)."""
    import math

    import numba

    @numba.vectorize(["float32(float32)"], target="parallel")
    def f(v):
        return math.tanh(v * np.float32(1.5) + np.float32(0.5)) / (np.float32(1.0) + math.exp(-v)) + v * v

    x = data()
    return lambda: f(x)


def memory_floor() -> Callable[[], Any]:
    """The floor: copy the input into a preallocated output."""
    x = data()
    out = np.empty_like(x)
    return lambda: np.copyto(out, x)


def bandwidth(seconds: float) -> str:
    """The effective bandwidth of reading the input and writing the output once."""
    return f"{2 * SIZE * 4 / seconds / 1e9:.1f} GB/s effective"


def bar(results: Results) -> str:
    """functrace ≤ 1.5 x the memory floor."""
    return verdict("functrace / memory floor", ratio(results.time("functrace"), results.time("floor")), 1.5)


WORKLOAD = Workload(
    name="elementwise_10M",
    description="tanh(x*1.5+0.5) * sigmoid(x) + x*x on 10M float32, jitted",
    systems=(
        System("functrace", "functrace jit", functrace_elementwise_10m),
        System("numpy", "NumPy", numpy_elementwise_10m),
        System("jax", "JAX jit", jax_elementwise_10m),
        System("torch", "PyTorch eager", torch_elementwise_10m),
        System("numba", "Numba vectorize (parallel)", numba_elementwise_10m),
        System("floor", "memory floor (np.copyto)", memory_floor),
    ),
    bar=bar,
    note=bandwidth,
)
