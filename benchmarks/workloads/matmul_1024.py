"""``matmul_1024``: float32 ``[1024, 1024] @ [1024, 1024]``, jitted; also in GFLOP/s
(``2 n³`` floating-point operations). The bar is ≥ 0.9 x NumPy's BLAS GFLOP/s.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.harness import BACKEND, Results, System, Workload, ratio, verdict

N = 1024


def data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two standard-normal float32 matrices, 1024x1024."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(N, N)).astype(np.float32), rng.normal(size=(N, N)).astype(np.float32)


def functrace_matmul_1024() -> Callable[[], Any]:
    """functrace: the jitted product."""
    import functrace as ft

    f = ft.jit(lambda a, b: a @ b, backend=BACKEND)
    a, b = data()
    return lambda: f(a, b)


def numpy_matmul_1024() -> Callable[[], Any]:
    """NumPy: ``a @ b`` (its BLAS)."""
    a, b = data()
    return lambda: a @ b


def jax_matmul_1024() -> Callable[[], Any]:
    """JAX: the jitted product."""
    import jax

    f = jax.jit(lambda a, b: a @ b)
    a, b = jax.device_put(data())
    return lambda: jax.block_until_ready(f(a, b))


def torch_matmul_1024() -> Callable[[], Any]:
    """PyTorch: ``a @ b`` (its BLAS)."""
    import torch

    a, b = (torch.from_numpy(m) for m in data())
    return lambda: a @ b


def gflops(seconds: float) -> str:
    """The rate of ``2 n³`` floating-point operations in this time."""
    return f"{2 * N**3 / seconds / 1e9:.0f} GFLOP/s"


def bar(results: Results) -> str:
    """functrace's GFLOP/s ≥ 0.9 x NumPy's (the GFLOP/s ratio is the inverse time ratio)."""
    return verdict(
        "functrace GFLOP/s / NumPy's", ratio(results.time("numpy"), results.time("functrace")), 0.9, at_most=False
    )


WORKLOAD = Workload(
    name="matmul_1024",
    description="float32 1024x1024 @ 1024x1024, jitted",
    systems=(
        System("functrace", "functrace jit", functrace_matmul_1024),
        System("numpy", "NumPy (BLAS)", numpy_matmul_1024),
        System("jax", "JAX jit", jax_matmul_1024),
        System("torch", "PyTorch eager", torch_matmul_1024),
    ),
    bar=bar,
    note=gflops,
)
