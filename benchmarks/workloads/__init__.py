"""The workloads of BENCHMARKS.md, one module each, in the order the table prints them.

Each module defines, per system, a setup function named ``<system>_<workload>()`` that builds
the data and the compiled function and returns a zero-argument callable running one step,
and a ``WORKLOAD`` (:class:`harness.Workload`) that lists them with their bar.
"""

from __future__ import annotations

import importlib

from benchmarks.harness import Workload

MODULES = (
    "mlp_step",
    "cnn_step",
    "lstm_step",
    "elementwise_10m",
    "matmul_1024",
    "dispatch_small",
    "per_example_grad",
    "first_call_mlp",
    "eager_grad_mlp",
)


def all_workloads() -> list[Workload]:
    """Every workload, imported on demand (the peers are imported only by their setups)."""
    return [importlib.import_module(f"benchmarks.workloads.{name}").WORKLOAD for name in MODULES]
