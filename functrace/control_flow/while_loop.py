"""``while_loop``: repeat a body while a traced predicate holds.

One primitive, ``while``, with operands ``(*cond_consts, *body_consts, *carry)`` and two
closed IRs: ``cond`` (cond_consts, carry) -> bool scalar and ``body`` (body_consts,
carry) -> carry. The trip count is data, so the IR does not grow with it.

- Forward mode carries the tangents through the loop; the predicate sees primals only.
- Reverse mode is not defined: the trip count is not known ahead of the loop, so nothing
  says how many steps of residuals to store (use ``scan``, or ``fori_loop`` with static
  bounds, which is a scan).
- Under ``vmap`` with an unmapped predicate the body is batched and the loop runs as
  before. With a mapped predicate (lanes stop at different steps) the loop runs while
  ANY lane's predicate holds, and a ``select`` keeps the carries of finished lanes, so
  every lane ends with its own result, but the body is evaluated on finished lanes too
  (their results are discarded).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

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
from functrace.core.abstract import ShapedArray, as_array
from functrace.core.ad_util import Zero, instantiate, is_differentiable, needed_cotangents
from functrace.core.batching_util import mapped_size, move_axis
from functrace.core.eval import eval_ir
from functrace.core.ir import Function, Var
from functrace.core.primitive import Primitive, batch_rules, jvp_rules, vjp_rules
from functrace.core.source_info import api_boundary, with_user_line
from functrace.core.staging import stage_closed
from functrace.core.trace import get_aval
from functrace.lax.elementwise import select_p
from functrace.lax.reductions import reduce_max_p
from functrace.lax.structural import broadcast_in_dim_p
from functrace.numpy.promotion import convert

NO_REVERSE_MODE = (
    "reverse-mode differentiation of while_loop is not supported: the trip count is not known "
    "ahead; use lax.scan, or lax.fori_loop with static (Python int) bounds"
)

while_p = Primitive("while", multiple_results=True)


def _split(xs: Sequence[Any], cond_nconsts: int, body_nconsts: int) -> tuple[list, list, list]:
    """(cond consts, body consts, carry) of the flat operands."""
    xs = list(xs)
    return xs[:cond_nconsts], xs[cond_nconsts : cond_nconsts + body_nconsts], xs[cond_nconsts + body_nconsts :]


def _while_impl(*args, cond: Function, body: Function, cond_nconsts: int, body_nconsts: int):
    cond_consts, body_consts, carry = _split(args, cond_nconsts, body_nconsts)
    while bool(eval_ir(cond, [*cond_consts, *carry])[0]):
        carry = eval_ir(body, [*body_consts, *carry])
    return [as_array(x, v.aval.dtype) for x, v in zip(carry, body.outvars, strict=True)]


def _operand_names(n: int) -> list[str]:
    return [f"operand {i}" for i in range(n)]


def _while_abstract_eval(*avals: ShapedArray, cond: Function, body: Function, cond_nconsts: int, body_nconsts: int):
    cond_consts, body_consts, carry = _split(avals, cond_nconsts, body_nconsts)
    cond_ops, body_ops = [*cond_consts, *carry], [*body_consts, *carry]
    check_same_types("while cond operands", _operand_names(len(cond_ops)), cond_ops, cond.in_avals)
    check_same_types("while body operands", _operand_names(len(body_ops)), body_ops, body.in_avals)
    _check_predicate(cond.out_avals)
    check_same_types("while body output", [f"carry {i}" for i in range(len(carry))], body.out_avals, carry)
    return [v.aval for v in body.invars[body_nconsts:]]


def _check_predicate(out_avals: Sequence[ShapedArray]) -> None:
    if len(out_avals) == 1 and out_avals[0].shape == () and out_avals[0].dtype == dtypes.bool_:
        return
    got = ", ".join(a.str_short() for a in out_avals) or "nothing"
    raise TypeError(with_user_line(f"while_loop: cond_fun must return a bool scalar, got {got}"))


while_p.def_impl(_while_impl)
while_p.def_abstract_eval(_while_abstract_eval)


# --- forward mode ------------------------------------------------------------------------


def _nonzero_carries(body: Function, consts_nz: list[bool], carry_nz: list[bool]) -> list[bool]:
    """The carries whose tangents can be nonzero in some iteration: a fixed point, since a
    carry's tangent becomes nonzero once the body makes it depend on a nonzero one."""
    while True:
        _, out_nz = jvp_function(body, [*consts_nz, *carry_nz], instantiate_out=False)
        new = [a or b for a, b in zip(carry_nz, out_nz, strict=True)]
        if new == carry_nz:
            return carry_nz
        carry_nz = new


def _jvp_body(body: Function, consts_nz: tuple[bool, ...], carry_nz: tuple[bool, ...]) -> Function:
    """The body's JVP with operands reordered to the loop's layout:
    (consts, const tangents, carry, carry tangents) -> (carry, carry tangents)."""

    def build() -> Function:
        ir, out_nz = jvp_function(body, [*consts_nz, *carry_nz], instantiate_out=carry_nz)
        assert tuple(out_nz) == carry_nz, (out_nz, carry_nz)
        nc, n = len(consts_nz), len(carry_nz)
        primals, tangents = ir.invars[: nc + n], ir.invars[nc + n :]
        nct = sum(consts_nz)
        invars = [*primals[:nc], *tangents[:nct], *primals[nc:], *tangents[nct:]]
        return Function(invars, ir.eqns, ir.outvars, ir.constvars, ir.consts)

    return cached(body, ("while_jvp", consts_nz, carry_nz), build)


def _cond_ignoring(cond: Function, extra: tuple[ShapedArray, ...]) -> Function:
    """``cond`` taking (and ignoring) the carry tangents after its operands."""

    def build() -> Function:
        invars = [*cond.invars, *(Var(a) for a in extra)]
        return Function(invars, cond.eqns, cond.outvars, cond.constvars, cond.consts)

    return cached(cond, ("while_jvp_cond", extra), build)


def _while_jvp(primals, tangents, *, cond, body, cond_nconsts, body_nconsts):
    cond_consts, body_consts, carry = _split(primals, cond_nconsts, body_nconsts)
    _, const_tangents, carry_tangents = _split(tangents, cond_nconsts, body_nconsts)

    def nonzero(t, x):
        return type(t) is not Zero and is_differentiable(get_aval(x))

    consts_nz = [nonzero(t, x) for t, x in zip(const_tangents, body_consts, strict=True)]
    carry_nz = [nonzero(t, x) for t, x in zip(carry_tangents, carry, strict=True)]
    if not any(consts_nz) and not any(carry_nz):  # only the predicate's inputs move: no effect
        outs = while_p.bind(*primals, cond=cond, body=body, cond_nconsts=cond_nconsts, body_nconsts=body_nconsts)
        return outs, [Zero(get_aval(o)) for o in outs]
    carry_nz = _nonzero_carries(body, consts_nz, carry_nz)
    jvp_body = _jvp_body(body, tuple(consts_nz), tuple(carry_nz))
    live_consts = [t for t, nz in zip(const_tangents, consts_nz, strict=True) if nz]
    live_carry = [instantiate(t) for t, nz in zip(carry_tangents, carry_nz, strict=True) if nz]
    jvp_cond = _cond_ignoring(cond, tuple(get_aval(t).strip_weak() for t in live_carry))
    outs = while_p.bind(
        *cond_consts,
        *body_consts,
        *live_consts,
        *carry,
        *live_carry,
        cond=jvp_cond,
        body=jvp_body,
        cond_nconsts=cond_nconsts,
        body_nconsts=body_nconsts + len(live_consts),
    )
    primals_out, rest = outs[: len(carry)], iter(outs[len(carry) :])
    tangents_out = [next(rest) if nz else Zero(get_aval(p)) for p, nz in zip(primals_out, carry_nz, strict=True)]
    return primals_out, tangents_out


def _while_vjp(cts, primals, outs, *, cond, body, cond_nconsts, body_nconsts):
    needed = needed_cotangents()
    if needed is not None and not any(needed[cond_nconsts:]):
        # Only the predicate's inputs are differentiated: the result is piecewise constant in them.
        return [None] * len(primals)
    raise TypeError(with_user_line(NO_REVERSE_MODE))


jvp_rules[while_p] = _while_jvp
vjp_rules[while_p] = _while_vjp


# --- vmap ----------------------------------------------------------------------------------


def _mapped_carries(body: Function, const_dims: list, carry_mapped: list[bool], size: int) -> list[bool]:
    """The carries mapped in some iteration: a fixed point, since an unmapped carry becomes
    mapped once the body mixes a mapped value into it."""
    while True:
        _, out_dims = batch_function(body, [*const_dims, *(0 if m else None for m in carry_mapped)], size)
        new = [m or d is not None for m, d in zip(carry_mapped, out_dims, strict=True)]
        if new == carry_mapped:
            return carry_mapped
        carry_mapped = new


def _lanes(pred: Any, shape: tuple[int, ...]) -> Any:
    """A per-lane predicate of shape (size,) broadcast to a carry of ``shape`` (lane axis 0)."""
    if len(shape) == 1:
        return pred
    return broadcast_in_dim_p.bind(pred, shape=shape, broadcast_dimensions=(0,))


def _masked_loop(cond: Function, body: Function, cond_dims: tuple, body_dims: tuple, size: int):
    """(cond, body) for a mapped predicate, carries mapped on axis 0:
    cond' = any lane's predicate; body' = (cond consts, body consts, carry) ->
    select(predicate per lane, body(carry), carry)."""

    def build() -> tuple[Function, Function]:
        n = len(body.outvars)
        cond_b, _ = batch_function(cond, [*cond_dims, *[0] * n], size, [0])
        body_b, _ = batch_function(body, [*body_dims, *[0] * n], size, [0] * n)
        cond_avals = cond_b.in_avals[: len(cond_dims)]
        body_avals, carry_avals = body_b.in_avals[: len(body_dims)], body_b.in_avals[len(body_dims) :]

        def any_lane(*xs):
            return [reduce_max_p.bind(eval_ir(cond_b, xs)[0], axes=(0,))]

        def masked_body(*xs):
            cond_consts, body_consts, carry = _split(xs, len(cond_avals), len(body_avals))
            active = eval_ir(cond_b, [*cond_consts, *carry])[0]
            stepped = eval_ir(body_b, [*body_consts, *carry])
            return [
                select_p.bind(_lanes(active, get_aval(old).shape), new, old)
                for new, old in zip(stepped, carry, strict=True)
            ]

        new_cond = stage_transformed(any_lane, [*cond_avals, *carry_avals], "while_loop cond under vmap")
        new_body = stage_transformed(
            masked_body, [*cond_avals, *body_avals, *carry_avals], "while_loop body under vmap"
        )
        return new_cond, new_body

    return cached(body, ("while_masked", cond, cond_dims, body_dims, size), build)


def _while_batch(args, dims, *, cond, body, cond_nconsts, body_nconsts):
    size = mapped_size(args, dims)
    cond_consts, body_consts, carry = _split(args, cond_nconsts, body_nconsts)
    cond_dims, body_dims, carry_dims = _split(dims, cond_nconsts, body_nconsts)
    mapped = _mapped_carries(body, body_dims, [d is not None for d in carry_dims], size)
    loop_dims = [0 if m else None for m in mapped]
    _, (pred_dim,) = batch_function(cond, [*cond_dims, *loop_dims], size)
    if pred_dim is None:
        # Every lane runs the same number of steps: batch the body, keep the loop.
        new_cond, _ = batch_function(cond, [*cond_dims, *loop_dims], size, [None])
        new_body, _ = batch_function(body, [*body_dims, *loop_dims], size, loop_dims)
        carry = [move_axis(x, d, 0, size) if m else x for x, d, m in zip(carry, carry_dims, mapped, strict=True)]
        outs = while_p.bind(
            *cond_consts,
            *body_consts,
            *carry,
            cond=new_cond,
            body=new_body,
            cond_nconsts=cond_nconsts,
            body_nconsts=body_nconsts,
        )
        return outs, loop_dims
    # Lanes finish at different steps: loop while any is active, freeze the finished ones.
    new_cond, new_body = _masked_loop(cond, body, tuple(cond_dims), tuple(body_dims), size)
    carry = [move_axis(x, d, 0, size) for x, d in zip(carry, carry_dims, strict=True)]
    outs = while_p.bind(
        *cond_consts, *cond_consts, *body_consts, *carry, cond=new_cond, body=new_body,
        cond_nconsts=cond_nconsts, body_nconsts=cond_nconsts + body_nconsts,
    )  # fmt: skip
    return outs, [0] * len(outs)


batch_rules[while_p] = _while_batch


# --- public wrapper (functrace.lax) -----------------------------------------------------------


def _stage_body(body_fun: Callable, in_tree, avals: list[ShapedArray]) -> tuple[Function, list]:
    body, consts, out_tree = stage_closed(
        lambda *c: body_fun(tree_util.tree_unflatten(in_tree, c)), avals, "while_loop body"
    )
    if out_tree != in_tree:
        raise TypeError(
            with_user_line(
                f"while_loop: body_fun must return a carry with the structure of init_val, {in_tree}; got {out_tree}"
            )
        )
    return body, consts


def _carry_avals(body_fun: Callable, in_tree, flat: list) -> tuple[list[ShapedArray], Function, list]:
    """The carry types: the init's, except that a weakly typed init (a Python scalar) takes
    the type the body gives it, as in JAX (``while_loop(c, lambda i: i + 1.5, 0)`` is float)."""
    avals = [get_aval(x) for x in flat]
    body, consts = _stage_body(body_fun, in_tree, avals)
    promoted = [
        out if a.weak_type and (out.dtype != a.dtype or not out.weak_type) else a
        for a, out in zip(avals, body.out_avals, strict=True)
    ]
    if promoted != avals:
        avals = promoted
        body, consts = _stage_body(body_fun, in_tree, avals)
    check_same_types("while_loop: body_fun output", leaf_paths("carry", in_tree), body.out_avals, avals)
    return avals, body, consts


@api_boundary
def while_loop(cond_fun: Callable[[Any], Any], body_fun: Callable[[Any], Any], init_val: Any) -> Any:
    """``val = init_val; while cond_fun(val): val = body_fun(val); return val``, traced once.

    ``body_fun`` must return a carry with the structure and types of ``init_val``;
    ``cond_fun`` returns a bool scalar. Forward mode (``jvp``, ``jacfwd``) works through
    the loop; reverse mode (``grad``) does not, because the trip count is unknown ahead:
    use ``scan`` or ``fori_loop`` with static bounds. Under ``vmap`` with a per-example
    predicate the loop runs until every example is done, keeping finished examples'
    carries fixed (the body still runs on them, and its results there are discarded).

    >>> import numpy as np
    >>> from functrace import lax
    >>> lax.while_loop(lambda c: c[0] < 5, lambda c: (c[0] + 1, c[1] * 2.0), (0, np.float64(1.0)))
    (array(5), array(32.))
    """
    flat, in_tree = tree_util.tree_flatten(init_val)
    avals, body, body_consts = _carry_avals(body_fun, in_tree, flat)
    cond, cond_consts, _ = stage_closed(
        lambda *c: cond_fun(tree_util.tree_unflatten(in_tree, c)), avals, "while_loop cond"
    )
    _check_predicate(cond.out_avals)
    flat = [convert(x, a.dtype) for x, a in zip(flat, avals, strict=True)]
    outs = while_p.bind(
        *cond_consts,
        *body_consts,
        *flat,
        cond=cond,
        body=body,
        cond_nconsts=len(cond_consts),
        body_nconsts=len(body_consts),
    )
    return tree_util.tree_unflatten(in_tree, outs)


__all__ = ["while_loop"]
