"""Lowering rules of the CPU backend, one module per family of primitives."""

from lowering.llvm.rules import (  # noqa: F401
    control_flow,
    convolution,
    elementwise,
    gather_scatter,
    indexing,
    linalg,
    misc,
    reductions,
    structural,
    windowed,
)
