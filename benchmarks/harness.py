"""What a benchmark is, and how it is timed.

A :class:`Workload` is one row group of the table (``mlp_step``, ``matmul_1024``, ...): a
list of :class:`System` entries, each the same computation written for one system
(functrace or a peer). A system's ``setup`` builds the data and the compiled function and
returns a zero-argument callable that runs one step and waits for its result; the driver
(``run.py``) times that callable. Setup is never timed.

The functrace side jits with ``backend=BACKEND``: ``"cpu"`` unless the environment variable
``FUNCTRACE_BENCH_BACKEND`` names another (``FUNCTRACE_BENCH_BACKEND=interpret``).
"""

from __future__ import annotations

import importlib.util
import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

# The systems run side by side in one process, their rounds interleaved. PyTorch's OpenMP
# workers spin for a while after each of its calls (the default wait policy), so whatever
# runs next shares the two cores with them: functrace's CNN step measured 22 ms alone and
# 38-42 ms right after a PyTorch call. A passive wait policy (set before PyTorch loads)
# removes that interference and did not change PyTorch's own time (24.7 -> 23.9 ms).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
SETTLE_SECONDS = 0.05

BACKEND = os.environ.get("FUNCTRACE_BENCH_BACKEND", "cpu")

# The peers: the module (and distribution) name of each, and the name printed. "floor" rows
# (the memory floor of elementwise_10M) are references, not peers: no ratio is taken to them.
PEERS = {"numpy": "NumPy", "jax": "JAX", "torch": "PyTorch", "autograd": "autograd", "numba": "Numba"}

LEARNING_RATE = 0.01


@dataclass(frozen=True)
class System:
    """One system's version of a workload.

    ``peer`` is ``"functrace"``, a key of ``PEERS``, or ``"floor"``; ``label`` is the
    name printed in the table; ``variant`` groups rows whose ratio is taken among themselves
    (``first_call_mlp`` compares a cold functrace with a cold JAX, a warm cache with a warm one).
    """

    peer: str
    label: str
    setup: Callable[[], Callable[[], Any]]
    variant: str = ""


@dataclass(frozen=True)
class Workload:
    """A benchmark workload: its systems, how to print its times, and its bar.

    ``unit`` is ``"ms"`` or ``"µs"``. With ``self_timed`` the callable returns its own time
    in seconds (``first_call_mlp`` times a subprocess from inside it). ``note(seconds)`` adds
    a per-row remark (GFLOP/s, bandwidth); ``bar(results)`` says whether functrace meets the
    bar of BENCHMARKS.md.
    """

    name: str
    description: str
    systems: tuple[System, ...]
    bar: Callable[[Results], str]
    unit: str = "ms"
    self_timed: bool = False
    note: Callable[[float], str] | None = None


@dataclass
class Results:
    """Median seconds per system of one workload (``None`` where skipped or failed)."""

    times: dict[System, float | None]

    def time(self, peer: str, variant: str = "") -> float | None:
        """The time of the first system of this peer and variant."""
        for system, seconds in self.times.items():
            if system.peer == peer and system.variant == variant:
                return seconds
        return None

    def best_peer(self, variant: str = "") -> tuple[System, float] | None:
        """The fastest peer (not functrace, not a floor) of this variant, with its time."""
        timed = [(s, t) for s, t in self.times.items() if s.peer in PEERS and s.variant == variant and t is not None]
        return min(timed, key=lambda pair: pair[1]) if timed else None


def peer_available(peer: str) -> bool:
    """Whether the peer's module can be imported (functrace and floors always can)."""
    return peer not in PEERS or importlib.util.find_spec(peer) is not None


class Timed:
    """A system's callable, warmed up and calibrated, timed one round at a time.

    Rounds of all the systems of a workload are interleaved by the driver, so that a burst
    of load from elsewhere on the machine slows every system alike rather than one of them.
    ``number`` calls make a round that lasts about ``min_time``; a self-timed callable
    (one returning its own seconds) makes one call per round.
    """

    def __init__(self, fn: Callable[[], Any], min_time: float, self_timed: bool = False):
        self.fn, self.self_timed, self.rounds = fn, self_timed, []
        self.number = 1 if self_timed else self._calibrate(min_time)

    def _calibrate(self, min_time: float) -> int:
        seconds = self._call_seconds()  # the warm-up call
        if seconds < min_time:  # it may have been slow (caches, allocation): estimate again
            seconds = self._call_seconds()
        return max(1, min(100_000, math.ceil(min_time / max(seconds, 1e-7))))

    def _call_seconds(self) -> float:
        start = time.perf_counter()
        self.fn()
        return time.perf_counter() - start

    def round(self) -> None:
        """Time one round; its seconds per call go to ``rounds``. The round starts after a
        pause (the previous system's worker threads go idle: OpenBLAS, XLA and OpenMP
        workers spin for a while after their calls) and one untimed call of its own."""
        if self.self_timed:
            self.rounds.append(float(self.fn()))
            return
        time.sleep(SETTLE_SECONDS)
        self.fn()
        start = time.perf_counter()
        for _ in range(self.number):
            self.fn()
        self.rounds.append((time.perf_counter() - start) / self.number)

    def median(self) -> float:
        return float(np.median(self.rounds))


_scratch: tempfile.TemporaryDirectory | None = None


def scratch_dir(name: str) -> str:
    """A fresh directory under one temporary directory that is removed at exit."""
    global _scratch
    if _scratch is None:
        _scratch = tempfile.TemporaryDirectory(prefix="functrace-bench-")
    return tempfile.mkdtemp(prefix=f"{name}-", dir=_scratch.name)


def verdict(description: str, value: float | None, limit: float, at_most: bool = True, fmt: str = "{:.2f}") -> str:
    """One line of the bar: ``"functrace / best peer ≤ 1.0: 0.83, met"``; ``n/a`` without a value.

    >>> verdict("functrace / best peer", 0.83, 1.0)
    'functrace / best peer ≤ 1.0: 0.83 — met'
    """
    sign = "≤" if at_most else "≥"
    if value is None:
        return f"{description} {sign} {limit}: n/a"
    met = value <= limit if at_most else value >= limit
    return f"{description} {sign} {limit}: {fmt.format(value)} — {'met' if met else 'NOT met'}"


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """``numerator / denominator``, or ``None`` when either is missing."""
    if numerator is None or denominator is None:
        return None
    return numerator / denominator


def ratio_to_best_peer(results: Results, variant: str = "") -> float | None:
    """functrace's time over the best peer's, within one variant."""
    best = results.best_peer(variant)
    return ratio(results.time("functrace", variant), best[1] if best else None)


def bar_best_peer(limit: float = 1.0) -> Callable[[Results], str]:
    """The bar of the ``*_step`` workloads: functrace ≤ ``limit`` x the best peer."""
    return lambda results: verdict("functrace / best peer", ratio_to_best_peer(results), limit)
