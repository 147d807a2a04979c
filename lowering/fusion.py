"""Loop fusion, shared by the backends.

The pass groups the equations of an IR function into *kernels*: one root equation
whose loop nest computes, element by element, the producers fused into it. A fused
producer's value lives only in registers inside the root's loop; everything else is
*materialized* in a buffer.

A producer is fused into its consumers' kernel when

- it is elementwise or an index remapping (``broadcast_in_dim``, ``transpose``...),
  with one result that is not a function output;
- every use of that result is in the same kernel, in an operand slot that the
  consumer reads element by element (``FUSIBLE_OPERANDS``);
- fusing never repeats work: the kernels evaluate it at most once per element (a small
  array broadcast into a big loop is computed once, in its own kernel), or it has one
  element. An array read through slices is evaluated only where they read it: the
  pieces of a split fuse into each piece's kernel. Cheap producers may be evaluated
  again in up to ``MAX_DUPLICATES`` kernels.

``concatenate`` fuses its operands: each piece is computed straight into its place in
the result (the cotangent of a split, in a reverse-mode loop body, is one kernel).

Reductions fuse their producers too (``sum(x * y)`` is one loop with no
intermediate), so an elementwise / broadcast / reduction chain becomes one loop nest.

>>> import numpy as np, functrace as ft, functrace.numpy as fnp
>>> fn = ft.make_ir(lambda x, y: fnp.sum(fnp.tanh(x * 1.5 + 0.5) * y))(np.ones(4, np.float32), np.ones(4, np.float32))
>>> plan = fuse(fn)
>>> [[e.primitive.name for e in k.eqns] for k in plan.kernels]
[['mul', 'add', 'tanh', 'mul', 'reduce_sum']]
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from functrace.core.ir import Eqn, Function, Var

ELEMENTWISE = frozenset(
    [
        "abs",
        "add",
        "and",
        "ceil",
        "convert_element_type",
        "cos",
        "div",
        "eq",
        "erf",
        "exp",
        "expm1",
        "floor",
        "ge",
        "gt",
        "integer_pow",
        "is_finite",
        "le",
        "log",
        "log1p",
        "logistic",
        "lt",
        "max",
        "min",
        "mul",
        "ne",
        "neg",
        "not",
        "or",
        "pow",
        "rem",
        "round",
        "rsqrt",
        "select",
        "shift_left",
        "shift_right_arithmetic",
        "shift_right_logical",
        "sign",
        "sin",
        "sqrt",
        "stop_gradient",
        "sub",
        "tanh",
        "xor",
    ]
)
# Index remappings: each output element is one operand element (or a constant).
INDEX_REMAP = frozenset(["broadcast_in_dim", "transpose", "squeeze", "expand_dims", "rev", "slice", "iota", "pad"])
REDUCTIONS = frozenset(["reduce_sum", "reduce_max", "reduce_min", "reduce_prod"])


def _pads_innermost(eqn: Eqn) -> bool:
    """A ``pad`` of the last axis: fused, its clamped loads would keep the innermost loop
    from vectorizing; alone it is a few block copies."""
    if eqn.primitive.name != "pad" or not eqn.params["padding_config"]:
        return False
    return tuple(eqn.params["padding_config"][-1]) != (0, 0, 0)


def fusible_operands(eqn: Eqn) -> Sequence[int]:
    """Operand positions that the equation's kernel reads element by element."""
    name = eqn.primitive.name
    if _pads_innermost(eqn):
        return ()
    if name in ELEMENTWISE or name in INDEX_REMAP:
        return range(len(eqn.inputs))
    if name in REDUCTIONS:
        return (0,)
    if name == "concatenate":
        return range(len(eqn.inputs))
    return ()


def operand_evaluations(eqn: Eqn, slot: int, evaluations: int) -> int:
    """How often a fused operand in ``slot`` is evaluated when ``eqn`` is evaluated
    ``evaluations`` times (a concatenate evaluates each piece once per piece element)."""
    if eqn.primitive.name == "concatenate":
        return math.prod(eqn.inputs[slot].aval.shape)
    return evaluations


def is_fusible_producer(eqn: Eqn) -> bool:
    name = eqn.primitive.name
    return (name in ELEMENTWISE or name in INDEX_REMAP) and len(eqn.outvars) == 1 and not _pads_innermost(eqn)


def loop_size(eqn: Eqn) -> int:
    """Elements the equation's kernel loops over: its operand's for a reduction, else its output's."""
    if eqn.primitive.name in REDUCTIONS:
        return math.prod(eqn.inputs[0].aval.shape)
    return math.prod(eqn.outvars[0].aval.shape) if eqn.outvars else 0


class Kernel:
    """A root equation and the producers fused into it (``eqns`` in program order, root last)."""

    __slots__ = ("eqns", "root", "size")

    def __init__(self, root: Eqn):
        self.root = root
        self.eqns = [root]
        self.size = loop_size(root)

    @property
    def is_elementwise(self) -> bool:
        """Every equation is elementwise: the kernel can loop over a flat index."""
        return all(e.primitive.name in ELEMENTWISE for e in self.eqns)

    def __repr__(self) -> str:
        return f"Kernel({' '.join(e.primitive.name for e in self.eqns)})"


class FusionPlan:
    """Kernels in execution order; ``fused`` vars are never materialized."""

    __slots__ = ("fused", "kernels", "producer")

    def __init__(self, kernels: list[Kernel], fused: set[Var], producer: dict[Var, Eqn]):
        self.kernels = kernels
        self.fused = fused
        self.producer = producer


# Cheap producers may be computed again in each consumer kernel rather than stored once:
# a few integer/float operations per element cost less than writing and reading an array.
CHEAP = frozenset(
    [
        "add",
        "sub",
        "mul",
        "neg",
        "max",
        "min",
        "select",
        "eq",
        "ne",
        "lt",
        "le",
        "gt",
        "ge",
        "and",
        "or",
        "not",
        "xor",
        "abs",
        "sign",
        "convert_element_type",
        "stop_gradient",
    ]
) | INDEX_REMAP - {"pad"}
MAX_DUPLICATES = 4
# Kernels that may each compute a part of one fused producer (no element twice).
MAX_SHARERS = 16
# How deep a fused expression may nest (producer of a producer of ... the root): code
# generation recurses once per level, and a long chain is better cut into several loops.
MAX_DEPTH = 48


def fuse(fn: Function, enabled: bool = True) -> FusionPlan:
    """Group ``fn``'s equations into kernels (see the module docstring)."""
    producer = {v: e for e in fn.eqns for v in e.outvars}
    uses: dict[Var, list[tuple[Eqn, int]]] = {}
    for e in fn.eqns:
        for i, a in enumerate(e.inputs):
            if isinstance(a, Var):
                uses.setdefault(a, []).append((e, i))
    outputs = {v for v in fn.outvars if isinstance(v, Var)}
    kernels_of: dict[int, list[Kernel]] = {}  # an equation's kernels (several when duplicated)
    # How often each kernel evaluates an equation: (id(eqn), id(kernel)) -> count.
    evaluations: dict[tuple[int, int], int] = {}
    depth: dict[int, int] = {}  # how deep an equation sits under its kernel's root
    fused: set[Var] = set()
    roots: list[Kernel] = []
    for eqn in reversed(fn.eqns):
        plan = _fusion_targets(eqn, uses, outputs, kernels_of, evaluations) if enabled else None
        level = 1 + max((depth[id(user)] for user, _ in uses.get(eqn.outvars[0], ())), default=0) if plan else 0
        if not plan or level > MAX_DEPTH:
            root = Kernel(eqn)
            roots.append(root)
            kernels_of[id(eqn)] = [root]
            evaluations[id(eqn), id(root)] = root.size
        else:
            for target, count in plan:
                target.eqns.insert(0, eqn)
                evaluations[id(eqn), id(target)] = count
            fused.add(eqn.outvars[0])
            kernels_of[id(eqn)] = [target for target, _ in plan]
        depth[id(eqn)] = level
    roots.reverse()
    return FusionPlan(roots, fused, producer)


def _fusion_targets(
    eqn: Eqn, uses: dict, outputs: set, kernels_of: dict, evaluations: dict
) -> list[tuple[Kernel, int]] | None:
    """The kernels to compute ``eqn`` in, each with how often it evaluates ``eqn``: its
    consumers' kernel(s); None when it must be stored."""
    if not is_fusible_producer(eqn):
        return None
    (out,) = eqn.outvars
    if out in outputs or out not in uses:
        return None
    if any(slot not in fusible_operands(user) for user, slot in uses[out]):
        return None
    counts: dict[int, tuple[Kernel, int]] = {}
    for user, slot in uses[out]:
        for k in kernels_of[id(user)]:
            n = operand_evaluations(user, slot, evaluations[id(user), id(k)])
            if id(k) not in counts or counts[id(k)][1] < n:
                counts[id(k)] = (k, n)
    plan = list(counts.values())
    size = math.prod(out.aval.shape)
    if size == 1:
        cheap = eqn.primitive.name in CHEAP and len(plan) <= MAX_DUPLICATES
        return plan if len(plan) == 1 or cheap else None
    if any(n > size for _, n in plan):
        return None  # a broadcast: fused, each element would be computed many times
    total = sum(n for _, n in plan)
    if total <= size and len(plan) <= MAX_SHARERS:
        return plan  # no element computed twice (disjoint slices, or one kernel)
    if eqn.primitive.name in CHEAP and len(plan) <= MAX_DUPLICATES:
        return plan
    return None
