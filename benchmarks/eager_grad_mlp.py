"""``eager_grad_mlp``: ``grad`` of the MLP loss without ``jit``, against autograd.

    python benchmarks/eager_grad_mlp.py

MLP 784-512-512-10, ReLU, log-softmax cross-entropy, batch 128, float32 (BENCHMARKS.md).
Both run side by side in one process; prints median times and the ratio. autograd is an
optional benchmark peer (``pip install autograd``); without it only functrace is timed.
"""

from __future__ import annotations

import itertools
import timeit

import numpy as np

import functrace as ft
import functrace.numpy as fnp

SIZES = (784, 512, 512, 10)
BATCH = 128


def init_params(rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    return [
        (rng.normal(0, np.sqrt(2 / m), (m, n)).astype(np.float32), np.zeros(n, np.float32))
        for m, n in itertools.pairwise(SIZES)
    ]


def make_loss(np_module):
    """The same loss written against a NumPy-like module (fnp or autograd.numpy)."""

    def loss(params, x, labels_one_hot):
        h = x
        for w, b in params[:-1]:
            h = np_module.maximum(h @ w + b, 0.0)
        w, b = params[-1]
        logits = h @ w + b
        shifted = logits - np_module.max(logits, axis=1, keepdims=True)
        log_probs = shifted - np_module.log(np_module.sum(np_module.exp(shifted), axis=1, keepdims=True))
        return -np_module.mean(np_module.sum(log_probs * labels_one_hot, axis=1))

    return loss


def _median_ms(fn, number: int = 5, repeat: int = 7) -> float:
    fn()
    return float(np.median(timeit.repeat(fn, number=number, repeat=repeat))) / number * 1e3


def main() -> None:
    rng = np.random.default_rng(0)
    params = init_params(rng)
    x = rng.normal(size=(BATCH, SIZES[0])).astype(np.float32)
    labels = np.eye(SIZES[-1], dtype=np.float32)[rng.integers(0, SIZES[-1], BATCH)]

    ft_grad = ft.grad(make_loss(fnp))
    results = {"functrace": _median_ms(lambda: ft_grad(params, x, labels))}
    try:
        import autograd
        import autograd.numpy as anp

        ag_grad = autograd.grad(make_loss(anp))
        results["autograd"] = _median_ms(lambda: ag_grad(params, x, labels))
        # Same numbers, so the comparison is fair.
        for (gw, gb), (aw, ab) in zip(ft_grad(params, x, labels), ag_grad(params, x, labels), strict=True):
            np.testing.assert_allclose(gw, aw, rtol=2e-3, atol=1e-5)
            np.testing.assert_allclose(gb, ab, rtol=2e-3, atol=1e-5)
    except ImportError:
        pass
    print("eager_grad_mlp (MLP 784-512-512-10, batch 128, float32, no jit)")
    for name, ms in results.items():
        print(f"  {name:10s} {ms:8.2f} ms")
    if "autograd" in results:
        print(f"  functrace / autograd = {results['functrace'] / results['autograd']:.2f}")


if __name__ == "__main__":
    main()
