"""The Markdown the suite prints: the machine, the ratio table and the bar.

``update_docs`` writes the same text into ``docs/performance.md`` between the markers
``<!-- results:start -->`` and ``<!-- results:end -->``.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import subprocess
import time

import numpy as np

from benchmarks.harness import BACKEND, PEERS, Results, System, Workload, peer_available

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS_PAGE = os.path.join(REPO_DIR, "docs", "performance.md")
START, END = "<!-- results:start -->", "<!-- results:end -->"
SCALE = {"ms": 1e3, "µs": 1e6}


def _cpu() -> str:
    """CPU model, logical cores, AVX-512 and memory, from /proc where it exists."""
    model, avx512, memory = "", False, ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and not model:
                    model = line.split(":", 1)[1].strip()
                avx512 = avx512 or (line.startswith("flags") and " avx512f" in line)
        with open("/proc/meminfo") as f:
            memory = f", {int(f.readline().split()[1]) / 2**20:.0f} GiB memory"
    except OSError:
        pass
    model = model or platform.processor() or platform.machine()
    return f"{model}, {os.cpu_count()} logical cores{', AVX-512' if avx512 else ''}{memory}"


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _git_revision() -> str:
    try:
        out = subprocess.run(["git", "-C", REPO_DIR, "describe", "--always", "--dirty"], capture_output=True, text=True)
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def _blas() -> str:
    try:
        return np.show_config(mode="dicts")["Build Dependencies"]["blas"]["name"]
    except (KeyError, TypeError, ValueError):
        return "unknown BLAS"


class CpuShare:
    """How much of the CPU other processes used while the suite ran (from ``/proc/stat``):
    on a shared machine, the first thing to look at before trusting a ratio."""

    def __init__(self) -> None:
        self.start = self._snapshot()

    @staticmethod
    def _snapshot() -> tuple[float, float, float] | None:
        """(busy CPU seconds of the machine, CPU seconds of this process and its children, wall time)."""
        try:
            with open("/proc/stat") as f:
                ticks = [int(v) for v in f.readline().split()[1:9]]
        except (OSError, ValueError):
            return None
        busy = (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait
        own = os.times()
        return busy, own.user + own.system + own.children_user + own.children_system, time.monotonic()

    def others(self) -> str:
        end = self._snapshot()
        if self.start is None or end is None:
            return "unknown"
        busy, own, wall = (e - s for e, s in zip(end, self.start, strict=True))
        return f"{max(0.0, busy - own) / (wall * (os.cpu_count() or 1)):.0%}"


def machine_description(mode: str, cpu_share: CpuShare) -> str:
    """A few lines naming the machine, the versions and the way this run was timed."""
    peers = ", ".join(f"{PEERS[p]} {_version(p)}" for p in PEERS if peer_available(p))
    absent = [PEERS[p] for p in PEERS if not peer_available(p)]
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"- machine: {_cpu()}; {platform.system()} {platform.release()}; Python {platform.python_version()}",
        f"- functrace {_version('functrace')} (git {_git_revision()}), jit backend `{BACKEND}`",
        f"- peers: {peers} (NumPy with {_blas()})",
        f"- run: {now}, {mode}; other processes used {cpu_share.others()} of the CPU meanwhile (0% is the ideal)",
    ]
    if absent:
        lines.append(f"- not installed, rows skipped: {', '.join(absent)}")
    return "\n".join(lines)


def _format_time(seconds: float, unit: str) -> str:
    value = seconds * SCALE[unit]
    digits = 0 if value >= 100 else 1 if value >= 10 else 2
    return f"{value:.{digits}f} {unit}"


def _cell(text: str) -> str:
    """Table-safe text: one line, no column separator."""
    return " ".join(text.split()).replace("|", "\\|")


def _rows(workload: Workload, results: Results, failures: dict[System, str]) -> list[str]:
    """A workload's table rows: times, functrace's ratio to the best peer of its variant, notes."""
    rows = []
    best = {s.variant: results.best_peer(s.variant) for s in workload.systems}
    for i, system in enumerate(workload.systems):
        seconds = results.times.get(system)
        name = f"`{workload.name}`" if i == 0 else ""
        if seconds is None:
            rows.append(f"| {name} | {system.label} | {_cell(failures.get(system, 'not run'))} | | |")
            continue
        notes = [workload.note(seconds)] if workload.note else []
        ratio = ""
        variant_best = best[system.variant]
        if system.peer == "functrace" and variant_best is not None:
            ratio = f"{seconds / variant_best[1]:.2f}x"
        elif variant_best is not None and variant_best[0] is system:
            notes.append("best peer")
        rows.append(
            f"| {name} | {system.label} | {_format_time(seconds, workload.unit)} | {ratio} | {'; '.join(notes)} |"
        )
    return rows


def markdown(runs: list[tuple[Workload, Results, dict[System, str]]], mode: str, cpu_share: CpuShare) -> str:
    """The whole report: machine, table, bar."""
    table = [
        "| workload | system | median | functrace / best peer | notes |",
        "|---|---|---:|---:|---|",
    ]
    bar = []
    for workload, results, failures in runs:
        table.extend(_rows(workload, results, failures))
        bar.append(f"- `{workload.name}`: {workload.bar(results)}")
    return "\n".join([machine_description(mode, cpu_share), "", *table, "", "The bar (BENCHMARKS.md):", "", *bar, ""])


def update_docs(text: str, path: str = DOCS_PAGE) -> None:
    """Replace what lies between the results markers of ``docs/performance.md``."""
    with open(path) as f:
        page = f.read()
    start, end = page.find(START), page.find(END)
    if start < 0 or end < start:
        raise SystemExit(f"{path} has no {START} ... {END} markers")
    with open(path, "w") as f:
        f.write(page[: start + len(START)] + "\n" + text + page[end:])
