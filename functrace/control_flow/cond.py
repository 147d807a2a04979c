"""``cond`` and ``switch``: choose one of several branches by a traced index.

One primitive, ``cond``, with operands ``(index, *operands)`` and the branches as closed
IRs (each takes every branch's captured values, then the operands). The index is
clamped into range, as in JAX. Under ``vmap`` with a mapped index every branch runs on
the whole batch and a ``select`` picks each example's result.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from functrace import tree_util
from functrace.control_flow.common import (
    batch_function,
    cached,
    check_same_types,
    jvp_function,
    leaf_paths,
    stage_transformed,
)
from functrace.core import dtypes
from functrace.core.abstract import ShapedArray
from functrace.core.ad_util import Zero, instantiate, is_differentiable
from functrace.core.batching_util import mapped_size, move_axis
from functrace.core.eval import eval_ir
from functrace.core.ir import Function, Var
from functrace.core.primitive import Primitive, batch_rules, jvp_rules, vjp_rules
from functrace.core.source_info import api_boundary, with_user_line
from functrace.core.staging import stage_closed
from functrace.core.trace import get_aval
from functrace.lax.elementwise import convert_element_type_p, eq_p, max_p, min_p, select_p
from functrace.lax.structural import broadcast_in_dim_p

cond_p = Primitive("cond", multiple_results=True)


def _cond_impl(index, *operands, branches: tuple[Function, ...]):
    i = int(np.clip(int(np.asarray(index)), 0, len(branches) - 1))
    return eval_ir(branches[i], operands)


def _cond_abstract_eval(index: ShapedArray, *operands: ShapedArray, branches: tuple[Function, ...]):
    if index.shape != () or index.dtype != dtypes.int32:
        raise TypeError(with_user_line(f"cond: the branch index must be an int32 scalar, got {index.str_short()}"))
    for b in branches:
        check_same_types("cond operands", [f"operand {i}" for i in range(len(operands))], list(operands), b.in_avals)
    return branches[0].out_avals


cond_p.def_impl(_cond_impl)
cond_p.def_abstract_eval(_cond_abstract_eval)


def _cond_jvp(primals, tangents, *, branches):
    index, operands = primals[0], primals[1:]
    nonzero = [type(t) is not Zero for t in tangents[1:]]
    jvp_branches = tuple(jvp_function(b, nonzero, True)[0] for b in branches)
    live = [
        instantiate(t) for t, nz in zip(tangents[1:], nonzero, strict=True) if nz and is_differentiable(get_aval(t))
    ]
    outs = cond_p.bind(index, *operands, *live, branches=jvp_branches)
    n = len(branches[0].outvars)
    primals_out, rest = outs[:n], iter(outs[n:])
    tangents_out = [next(rest) if is_differentiable(get_aval(p)) else Zero(get_aval(p)) for p in primals_out]
    return primals_out, tangents_out


def _vjp_branch(branch: Function, float_outs: tuple[bool, ...]) -> Function:
    """IR ``(operands, cotangents of the float outputs) -> cotangents of the float operands``
    (the branch's forward pass is recomputed inside it)."""

    def build() -> Function:
        from functrace.ad import vjp

        n = len(branch.invars)
        ct_avals = [v.aval for v, f in zip(branch.outvars, float_outs, strict=True) if f]

        def backward(*xs):
            ops, cts = xs[:n], iter(xs[n:])
            outs, f_vjp = vjp(lambda *o: eval_ir(branch, o), *ops)
            full = [next(cts) if f else instantiate(Zero(get_aval(o))) for o, f in zip(outs, float_outs, strict=True)]
            grads = f_vjp(full)
            return [g for g, v in zip(grads, branch.invars, strict=True) if is_differentiable(v.aval)]

        return stage_transformed(backward, [v.aval for v in branch.invars] + ct_avals, "cond vjp")

    return cached(branch, ("vjp", float_outs), build)


def _cond_vjp(cts, primals, outs, *, branches):
    index, operands = primals[0], primals[1:]
    float_outs = tuple(is_differentiable(get_aval(o)) for o in outs)
    cts = [instantiate(Zero(get_aval(o))) if c is None else c for c, o, f in zip(cts, outs, float_outs, strict=True)]
    live_cts = [c for c, f in zip(cts, float_outs, strict=True) if f]
    vjp_branches = tuple(_vjp_branch(b, float_outs) for b in branches)
    grads = iter(cond_p.bind(index, *operands, *live_cts, branches=vjp_branches))
    return [None] + [next(grads) if is_differentiable(get_aval(x)) else None for x in operands]


def _cond_batch(args, dims, *, branches):
    (index, *operands), (index_dim, *op_dims) = args, dims
    size = mapped_size(args, dims)
    if index_dim is None:
        first = [batch_function(b, op_dims, size)[1] for b in branches]
        want = [0 if any(d is not None for d in ds) else None for ds in zip(*first, strict=True)]
        new = tuple(batch_function(b, op_dims, size, want)[0] for b in branches)
        return cond_p.bind(index, *operands, branches=new), want
    # A mapped index: run every branch on the whole batch, then pick per example.
    n_out = len(branches[0].outvars)
    results = [eval_ir(batch_function(b, op_dims, size, [0] * n_out)[0], operands) for b in branches]
    index = move_axis(index, index_dim, 0)
    index = min_p.bind(max_p.bind(index, np.int32(0)), np.int32(len(branches) - 1))
    outs = list(results[0])
    for i, result in enumerate(results[1:], start=1):
        chosen = eq_p.bind(index, np.int32(i))
        for k, value in enumerate(result):
            shape = get_aval(value).shape
            mask = broadcast_in_dim_p.bind(chosen, shape=shape, broadcast_dimensions=(0,)) if len(shape) > 1 else chosen
            outs[k] = select_p.bind(mask, value, outs[k])
    return outs, [0] * n_out


jvp_rules[cond_p] = _cond_jvp
vjp_rules[cond_p] = _cond_vjp
batch_rules[cond_p] = _cond_batch


# --- public wrappers (functrace.lax) -----------------------------------------------------


def _stage_branches(
    branches: Sequence[Callable], operands: tuple, labels: Sequence[str]
) -> tuple[tuple[Function, ...], list, Any]:
    """Trace every branch at the operands' types; join their captured values."""
    flat, in_tree = tree_util.tree_flatten(operands)
    avals = [get_aval(x) for x in flat]
    staged = [
        stage_closed(lambda *xs, b=b: b(*tree_util.tree_unflatten(in_tree, xs)), avals, "cond branch") for b in branches
    ]
    out_tree = staged[0][2]
    names = leaf_paths("output", out_tree)
    for i, (ir, _, tree) in enumerate(staged[1:], start=1):
        if tree != out_tree:
            raise TypeError(with_user_line(f"{labels[i]} returns a {tree}, {labels[0]} a {out_tree}"))
        check_same_types(f"{labels[i]} (must match {labels[0]})", names, ir.out_avals, staged[0][0].out_avals)
    all_consts = [c for _, consts, _ in staged for c in consts]
    padded, offset = [], 0
    for ir, consts, _ in staged:
        k = len(consts)
        before = [Var(get_aval(c)) for c in all_consts[:offset]]
        after = [Var(get_aval(c)) for c in all_consts[offset + k :]]
        invars = [*before, *ir.invars[:k], *after, *ir.invars[k:]]
        padded.append(Function(invars, ir.eqns, ir.outvars))
        offset += k
    return tuple(padded), [*all_consts, *flat], out_tree


@api_boundary
def switch(index: Any, branches: Sequence[Callable], *operands: Any) -> Any:
    """Apply ``branches[index](*operands)``; ``index`` is clamped into range.

    >>> import numpy as np
    >>> from functrace import lax
    >>> lax.switch(1, [lambda x: x + 1.0, lambda x: x * 10.0], np.array([1.0, 2.0]))
    array([10., 20.])
    """
    return _switch(index, branches, operands)


def _switch(index: Any, branches: Sequence[Callable], operands: tuple, labels: Sequence[str] | None = None) -> Any:
    branches = list(branches)
    if not branches:
        raise ValueError(with_user_line("switch needs at least one branch"))
    index_aval = get_aval(index)
    if index_aval.shape != () or index_aval.dtype.kind not in "iub":
        raise TypeError(with_user_line(f"switch: the index must be an integer scalar, got {index_aval.str_short()}"))
    index = convert_element_type_p.bind(index, new_dtype=dtypes.int32, weak_type=False)
    labels = labels or [f"switch branch {i}" for i in range(len(branches))]
    irs, flat, out_tree = _stage_branches(branches, operands, labels)
    return tree_util.tree_unflatten(out_tree, cond_p.bind(index, *flat, branches=irs))


@api_boundary
def cond(pred: Any, true_fun: Callable, false_fun: Callable, *operands: Any) -> Any:
    """``true_fun(*operands)`` if ``pred`` else ``false_fun(*operands)``, with a traced ``pred``.

    Both branches must return the same types. Under ``vmap`` with a mapped ``pred`` both
    branches run and a ``select`` chooses per example.

    >>> import numpy as np
    >>> from functrace import lax
    >>> lax.cond(np.float64(-2.0) > 0, lambda x: x, lambda x: -x, np.float64(-2.0))
    array(2.)
    """
    aval = get_aval(pred)
    if aval.shape != ():
        raise TypeError(with_user_line(f"cond: the predicate must be a scalar, got {aval.str_short()}"))
    if aval.dtype != dtypes.bool_:
        from functrace.lax.elementwise import ne_p

        pred = ne_p.bind(pred, np.zeros((), aval.dtype))
    return _switch(pred, [false_fun, true_fun], operands, ["cond: false_fun", "cond: true_fun"])


__all__ = ["cond", "switch"]
