"""Peak memory of the jitted ``mlp_step`` (BENCHMARKS.md), functrace against JAX.

Each system runs in a fresh process: it imports, builds the data and the jitted step,
records its resident set size, then runs 20 steps and reports how far the peak resident
set size (``ru_maxrss``) rose above that point: the memory the compiled step and its
buffers (workspace, outputs) cost, compile included.

    python benchmarks/peak_memory.py
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _current_rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def child(system: str) -> None:
    """Measure one system in this process and print ``peak MiB``."""
    from benchmarks.workloads.mlp_step import functrace_mlp_step_fn, jax_mlp_step_fn, mlp_data

    params, x, labels = mlp_data()
    if system == "functrace":
        step = functrace_mlp_step_fn()
        run = lambda p: step(p, x, labels)  # noqa: E731
    else:
        import jax

        step = jax_mlp_step_fn()
        params = jax.device_put(params)
        run = lambda p: jax.block_until_ready(step(p, x, labels))  # noqa: E731
    before = _current_rss_kib()
    for _ in range(20):
        params = run(params)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(f"peak MiB {(peak - before) / 1024:.1f}")


def main() -> None:
    env = dict(os.environ, PYTHONPATH=REPO_DIR)
    rows = []
    for system in ("functrace", "jax"):
        out = subprocess.run([sys.executable, __file__, system], capture_output=True, text=True, env=env, cwd=REPO_DIR)
        lines = [ln for ln in out.stdout.splitlines() if ln.startswith("peak MiB")]
        rows.append((system, lines[0].split()[-1] + " MiB" if lines else f"error: {out.stderr.strip()[-200:]}"))
    print("| system | mlp_step: peak RSS above the state before the first call |")
    print("|---|---|")
    for system, value in rows:
        print(f"| {system} | {value} |")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        child(sys.argv[1])
    else:
        main()
