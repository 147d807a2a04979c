"""Lowering rules of the CPU backend, one module per family of primitives."""

from lowering.llvm.rules import elementwise, reductions, structural  # noqa: F401
