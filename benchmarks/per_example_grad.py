"""``per_example_grad``: ``vmap(grad(loss), in_axes=(None, 0, 0))`` for a tanh MLP 64-128-10,
batch 128 (BENCHMARKS.md), against a Python loop of ``grad`` calls, side by side.

    python benchmarks/per_example_grad.py

Until the CPU backend lands this measures the eager and ``jit(backend="interpret")``
paths; JAX is timed too when installed.
"""

from __future__ import annotations

import timeit

import numpy as np

import functrace as ft
import functrace.numpy as fnp

BATCH = 128


def make_loss(np_module):
    def loss(params, x, y):
        (w1, b1), (w2, b2) = params
        h = np_module.tanh(x @ w1 + b1)
        logits = h @ w2 + b2
        return np_module.sum((logits - y) ** 2)

    return loss


def _median_ms(fn, number: int = 3, repeat: int = 5) -> float:
    fn()
    return float(np.median(timeit.repeat(fn, number=number, repeat=repeat))) / number * 1e3


def main() -> None:
    rng = np.random.default_rng(0)
    params = [
        (rng.normal(0, 0.1, (64, 128)).astype(np.float32), np.zeros(128, np.float32)),
        (rng.normal(0, 0.1, (128, 10)).astype(np.float32), np.zeros(10, np.float32)),
    ]
    x = rng.normal(size=(BATCH, 64)).astype(np.float32)
    y = rng.normal(size=(BATCH, 10)).astype(np.float32)
    loss = make_loss(fnp)
    per_example = ft.vmap(ft.grad(loss), in_axes=(None, 0, 0))
    jitted = ft.jit(per_example, backend="interpret")
    grad = ft.grad(loss)

    def loop():
        return [grad(params, x[i], y[i]) for i in range(BATCH)]

    results = {
        "loop of grad (eager)": _median_ms(loop, number=1),
        "vmap(grad) eager": _median_ms(lambda: per_example(params, x, y)),
        "jit(vmap(grad)) interpret": _median_ms(lambda: jitted(params, x, y)),
    }
    try:
        import jax
        import jax.numpy as jnp

        jax_fn = jax.jit(jax.vmap(jax.grad(make_loss(jnp)), in_axes=(None, 0, 0)))
        results["JAX jit(vmap(grad))"] = _median_ms(lambda: jax.block_until_ready(jax_fn(params, x, y)))
    except ImportError:
        pass
    print("per_example_grad (tanh MLP 64-128-10, batch 128, float32)")
    base = results["loop of grad (eager)"]
    for name, ms in results.items():
        print(f"  {name:28s} {ms:9.2f} ms   loop / this = {base / ms:6.1f}x")


if __name__ == "__main__":
    main()
