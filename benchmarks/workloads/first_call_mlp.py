"""``first_call_mlp``: the wall time of the first call of the jitted ``mlp_step`` in a fresh
process — trace, lower, compile and run — with the persistent compile cache off, and with
a warm one (a first process fills a temporary cache directory, the timed process reuses it).

Each measurement is a subprocess running this module (``python -m benchmarks.workloads.first_call_mlp
SYSTEM [CACHE_DIR]``); it imports everything and builds the data before it starts the clock,
and prints the seconds of the first call. The bar: cache off ≤ 0.5 x JAX's, warm cache ≤ 20 ms.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable

from benchmarks.harness import Results, System, Workload, ratio, scratch_dir, verdict

REPO_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MARKER = "first call seconds:"


def first_call_functrace(cache_dir: str | None) -> float:
    """Seconds of the first call of functrace's jitted ``mlp_step``."""
    import functrace as ft
    from benchmarks.workloads.mlp_step import functrace_mlp_step_fn, mlp_data

    ft.config.update("jit_cache_dir", cache_dir)
    step = functrace_mlp_step_fn()  # imports the backend module, outside the clock
    params, x, labels = mlp_data()
    start = time.perf_counter()
    step(params, x, labels)
    return time.perf_counter() - start


def first_call_jax(cache_dir: str | None) -> float:
    """Seconds of the first call of JAX's jitted ``mlp_step``."""
    import jax

    from benchmarks.workloads.mlp_step import jax_mlp_step_fn, mlp_data

    jax.config.update("jax_compilation_cache_dir", cache_dir)
    if cache_dir is not None:  # cache every compiled program, however small or fast to compile
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    jax.devices()  # start the runtime outside the clock, as functrace's backend is imported
    step = jax_mlp_step_fn()
    params, x, labels = mlp_data()
    start = time.perf_counter()
    jax.block_until_ready(step(params, x, labels))
    return time.perf_counter() - start


FIRST_CALLS = {"functrace": first_call_functrace, "jax": first_call_jax}


def run_child(system: str, cache_dir: str | None) -> float:
    """Run one fresh process and return the seconds it measured; its error if it failed."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [REPO_DIR, os.environ.get("PYTHONPATH")])))
    command = [sys.executable, "-m", "benchmarks.workloads.first_call_mlp", system, *([cache_dir] if cache_dir else [])]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, check=False)
    for line in done.stdout.splitlines():
        if line.startswith(MARKER):
            return float(line[len(MARKER) :])
    lines = done.stderr.strip().splitlines() or [f"exit status {done.returncode}"]
    raise RuntimeError(f"child process: {lines[-1]}")


def cold(system: str) -> Callable[[], Callable[[], float]]:
    """Setup of the cache-off measurement: every call is a fresh process without a cache.
    One untimed process runs first, so that no timed one pays for writing bytecode caches."""

    def setup() -> Callable[[], float]:
        run_child(system, None)
        return lambda: run_child(system, None)

    return setup


def warm(system: str) -> Callable[[], Callable[[], float]]:
    """Setup of the warm-cache measurement: one process fills a new cache directory, then
    every timed call is a fresh process that finds it full."""

    def setup() -> Callable[[], float]:
        cache_dir = scratch_dir(f"{system}-cache")
        run_child(system, cache_dir)
        return lambda: run_child(system, cache_dir)

    return setup


def bar(results: Results) -> str:
    """Cache off ≤ 0.5 x JAX cache off; warm cache ≤ 20 ms."""
    cache_off = ratio(results.time("functrace", "cache off"), results.time("jax", "cache off"))
    warm_ms = results.time("functrace", "warm cache")
    return "; ".join(
        [
            verdict("functrace / JAX, cache off", cache_off, 0.5),
            verdict("functrace ms, warm cache", None if warm_ms is None else warm_ms * 1e3, 20.0, fmt="{:.1f}"),
        ]
    )


WORKLOAD = Workload(
    name="first_call_mlp",
    description="first call of jitted mlp_step in a fresh process (trace + lower + compile + run)",
    systems=(
        System("functrace", "functrace, cache off", cold("functrace"), variant="cache off"),
        System("jax", "JAX, cache off", cold("jax"), variant="cache off"),
        System("functrace", "functrace, warm cache", warm("functrace"), variant="warm cache"),
        System("jax", "JAX, warm cache", warm("jax"), variant="warm cache"),
    ),
    bar=bar,
    self_timed=True,
)


if __name__ == "__main__":
    seconds = FIRST_CALLS[sys.argv[1]](sys.argv[2] if len(sys.argv) > 2 else None)
    print(f"{MARKER} {seconds!r}")
