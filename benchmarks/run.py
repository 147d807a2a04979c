"""Run the benchmark suite of BENCHMARKS.md and print one ratio table.

    python benchmarks/run.py                      # every workload
    python benchmarks/run.py mlp_step matmul_1024 # some of them
    python benchmarks/run.py --quick              # fewer repeats, for a smoke run
    python benchmarks/run.py --markdown out.md    # also write the table to a file
    python benchmarks/run.py --update-docs        # ... or into docs/performance.md

Every workload runs with functrace and, side by side in this one process, with each peer
that is installed; a peer that is absent is skipped with a note. A system that fails (a
backend that cannot lower a primitive yet, say) shows its error in the table and the run
goes on. The functrace side jits with ``FUNCTRACE_BENCH_BACKEND`` (default ``cpu``).
"""

from __future__ import annotations

import argparse
import faulthandler
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repository root

from benchmarks.harness import (
    PEERS,
    Results,
    System,
    Timed,
    Workload,
    peer_available,
)
from benchmarks.report import SCALE, CpuShare, markdown, update_docs
from benchmarks.workloads import all_workloads


def _failure(error: Exception) -> str:
    return f"error: {type(error).__name__}: {error}"[:160]


def _progress(workload: Workload, system: System, text: str) -> None:
    print(f"  {workload.name:16s} {system.label:30s} {text}", file=sys.stderr, flush=True)


def prepare(workload: Workload, quick: bool) -> tuple[dict[System, Timed], dict[System, str]]:
    """Set up, warm up and calibrate every available system; skips and failures get a message."""
    timers, failures = {}, {}
    for system in workload.systems:
        start = time.perf_counter()
        if not peer_available(system.peer):
            failures[system] = f"skipped: {PEERS[system.peer]} is not installed"
        else:
            try:
                timers[system] = Timed(system.setup(), 0.05 if quick else 0.2, workload.self_timed)
            except Exception as error:  # report it in the table, keep going
                failures[system] = _failure(error)
        spent = time.perf_counter() - start
        _progress(workload, system, f"{failures.get(system, 'set up')} ({spent:.1f} s)")
    return timers, failures


def run_workload(workload: Workload, quick: bool) -> tuple[Results, dict[System, str]]:
    """Time every system of a workload, the rounds of all systems interleaved."""
    timers, failures = prepare(workload, quick)
    repeats = (2 if quick else 5) if workload.self_timed else (3 if quick else 7)
    for _ in range(repeats):
        for system, timer in list(timers.items()):
            try:
                timer.round()
            except Exception as error:
                failures[system] = _failure(error)
                del timers[system]
    results = Results({s: timers[s].median() if s in timers else None for s in workload.systems})
    for system in timers:
        _progress(workload, system, f"median {results.times[system] * SCALE[workload.unit]:.3f} {workload.unit}")
    return results, failures


def select(names: list[str]) -> list[Workload]:
    """The named workloads (case-insensitive), or all of them."""
    workloads = all_workloads()
    if not names:
        return workloads
    by_name = {w.name.lower(): w for w in workloads}
    unknown = [n for n in names if n.lower() not in by_name]
    if unknown:
        raise SystemExit(f"unknown workload(s) {', '.join(unknown)}; known: {', '.join(w.name for w in workloads)}")
    return [by_name[n.lower()] for n in names]


def main() -> None:
    parser = argparse.ArgumentParser(description="Run functrace's benchmark suite against its peers.")
    parser.add_argument("names", nargs="*", help="workloads to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="fewer repeats and first-call processes")
    parser.add_argument("--markdown", metavar="PATH", help="also write the report to this file")
    parser.add_argument("--update-docs", action="store_true", help="write the report into docs/performance.md")
    parser.add_argument("--list", action="store_true", help="list the workloads and exit")
    args = parser.parse_args()
    faulthandler.enable()  # a crash in compiled code still names the workload that caused it
    workloads = select(args.names)
    if args.list:
        for w in workloads:
            print(f"{w.name:18s} {w.description}")
        return
    absent = [PEERS[p] for p in PEERS if not peer_available(p)]
    if absent:
        print(f"note: not installed, skipped: {', '.join(absent)}", file=sys.stderr)
    cpu_share = CpuShare()
    runs = [(w, *run_workload(w, args.quick)) for w in workloads]
    mode = "quick (3 repeats; 2 first-call processes)" if args.quick else "median of 7 repeats; 5 first-call processes"
    text = markdown(runs, mode, cpu_share)
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text)
    if args.update_docs:
        update_docs(text)


if __name__ == "__main__":
    main()
