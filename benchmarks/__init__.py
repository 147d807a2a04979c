"""functrace's benchmark suite (BENCHMARKS.md): run it with ``python benchmarks/run.py``."""
