"""``dispatch_small``: a jitted ``a + b`` on two float32[8] arrays, in microseconds per call
after warm-up — the fixed cost of calling a compiled function. The bar is ≤ 2 µs.

NumPy's row is the eager ``np.add`` (there is nothing to compile), PyTorch's the eager
``torch.add``; Numba's is an ``njit`` function.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.harness import BACKEND, Results, System, Workload, verdict


def data() -> tuple[np.ndarray, np.ndarray]:
    """Two float32[8] arrays."""
    return np.ones(8, np.float32), np.full(8, 2.0, np.float32)


def functrace_dispatch_small() -> Callable[[], Any]:
    """functrace: the jitted sum, after the first call compiled it."""
    import functrace as ft

    f = ft.jit(lambda a, b: a + b, backend=BACKEND)
    a, b = data()
    return lambda: f(a, b)


def numpy_dispatch_small() -> Callable[[], Any]:
    """NumPy: the eager ``np.add``."""
    a, b = data()
    return lambda: np.add(a, b)


def jax_dispatch_small() -> Callable[[], Any]:
    """JAX: the jitted sum, waiting for its result."""
    import jax

    f = jax.jit(lambda a, b: a + b)
    a, b = jax.device_put(data())
    return lambda: jax.block_until_ready(f(a, b))


def torch_dispatch_small() -> Callable[[], Any]:
    """PyTorch: the eager ``torch.add``."""
    import torch

    a, b = (torch.from_numpy(v) for v in data())
    return lambda: torch.add(a, b)


def numba_dispatch_small() -> Callable[[], Any]:
    """Numba: an ``njit`` function."""
    import numba

    f = numba.njit(lambda a, b: a + b)
    a, b = data()
    return lambda: f(a, b)


def bar(results: Results) -> str:
    """functrace ≤ 2 µs per call."""
    seconds = results.time("functrace")
    return verdict("functrace µs per call", None if seconds is None else seconds * 1e6, 2.0)


WORKLOAD = Workload(
    name="dispatch_small",
    description="jitted a + b on float32[8], per call after warm-up",
    systems=(
        System("functrace", "functrace jit", functrace_dispatch_small),
        System("numpy", "NumPy eager np.add", numpy_dispatch_small),
        System("jax", "JAX jit", jax_dispatch_small),
        System("torch", "PyTorch eager", torch_dispatch_small),
        System("numba", "Numba njit", numba_dispatch_small),
    ),
    bar=bar,
    unit="µs",
)
