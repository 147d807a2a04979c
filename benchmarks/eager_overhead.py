"""Eager overhead: an fnp call on concrete arrays against the bare NumPy call.

    python benchmarks/eager_overhead.py

Prints, per operation, the median time per call of NumPy and of functrace.numpy, side
by side in one run, and the overhead (difference) and ratio.
"""

from __future__ import annotations

import timeit

import numpy as np

import functrace.numpy as fnp


def _median_us(fn, number: int = 20000, repeat: int = 7) -> float:
    times = timeit.repeat(fn, number=number, repeat=repeat)
    return float(np.median(times)) / number * 1e6


def main() -> None:
    small = np.ones(8, np.float32)
    other = np.ones(8, np.float32)
    matrix = np.ones((8, 8), np.float32)
    row = np.ones(8, np.float32)
    medium = np.ones(100_000, np.float32)
    cases = [
        ("add f32[8] + f32[8]", lambda: np.add(small, other), lambda: fnp.add(small, other)),
        ("multiply f32[8] * 2.0", lambda: np.multiply(small, 2.0), lambda: fnp.multiply(small, 2.0)),
        ("tanh f32[8]", lambda: np.tanh(small), lambda: fnp.tanh(small)),
        ("add f32[8,8] + f32[8] (broadcast)", lambda: np.add(matrix, row), lambda: fnp.add(matrix, row)),
        ("sum f32[8,8] axis=0", lambda: np.sum(matrix, axis=0), lambda: fnp.sum(matrix, axis=0)),
        ("matmul f32[8,8] @ f32[8,8]", lambda: np.matmul(matrix, matrix), lambda: fnp.matmul(matrix, matrix)),
        ("exp f32[100000]", lambda: np.exp(medium), lambda: fnp.exp(medium)),
    ]
    print(f"{'operation':40s} {'numpy µs':>10s} {'fnp µs':>10s} {'overhead µs':>12s} {'ratio':>7s}")
    for name, np_fn, fnp_fn in cases:
        t_np, t_fnp = _median_us(np_fn), _median_us(fnp_fn)
        print(f"{name:40s} {t_np:10.2f} {t_fnp:10.2f} {t_fnp - t_np:12.2f} {t_fnp / t_np:7.2f}")


if __name__ == "__main__":
    main()
