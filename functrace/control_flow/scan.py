"""``scan`` and ``fori_loop``: a loop over the leading axis, as one higher-order primitive.

``scan_p`` carries the loop body as a closed IR ``body(consts, carry, x) -> (carry, y)``.
Its operands are flat: consts first (values the body closed over), then the carries,
then the scanned arrays ``xs``; its results are the final carries, then the ``ys``
stacked along a new leading axis. The body is traced once, so tracing cost does not
depend on the trip count.

Reverse mode stores residuals per step: the tape's forward pass runs a scan of the
body extended with the values its equations' vjp rules need (stacked as extra ``ys``),
and the vjp rule runs a reverse scan whose body is the adjoint pass over the body's IR
on that step's residuals (``scan_adjoint.py``): the body's forward is never re-run.
A ``checkpoint`` inside the body is one ``remat_call`` equation: only its inputs and
outputs are stored, and it recomputes its inside during the backward step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from functrace import tree_util
from functrace.ad import tape_forward_rules
from functrace.control_flow.common import (
    batch_function,
    cached,
    check_same_types,
    jvp_function,
    leaf_paths,
    stage_transformed,
)
from functrace.control_flow.scan_adjoint import adjoint_pass, residual_vars
from functrace.core.abstract import ShapedArray, as_array
from functrace.core.ad_util import Zero, add_tangents, instantiate, is_differentiable, needed_cotangents, zeros
from functrace.core.batching_util import mapped_size, move_axis
from functrace.core.eval import eval_ir
from functrace.core.ir import Function
from functrace.core.primitive import Primitive, batch_rules, jvp_rules, vjp_rules
from functrace.core.source_info import api_boundary, with_user_line
from functrace.core.staging import stage_closed
from functrace.core.trace import Tracer, get_aval

__all__ = ["fori_loop", "scan"]


def _split(values: Sequence[Any], num_consts: int, num_carry: int) -> tuple[list, list, list]:
    values = list(values)
    return values[:num_consts], values[num_consts : num_consts + num_carry], values[num_consts + num_carry :]


def _stacked(aval: ShapedArray, length: int) -> ShapedArray:
    return ShapedArray((length, *aval.shape), aval.dtype, aval.weak_type)


def _unstacked(aval: ShapedArray) -> ShapedArray:
    return ShapedArray(aval.shape[1:], aval.dtype, aval.weak_type)


def _permuted(fn: Function, in_order: Sequence[int], out_order: Sequence[int]) -> Function:
    """``fn`` with its inputs and outputs reordered (the same equations)."""
    out = Function(
        [fn.invars[i] for i in in_order], fn.eqns, [fn.outvars[i] for i in out_order], fn.constvars, fn.consts
    )
    out.typecheck()
    return out


# --- the primitive ----------------------------------------------------------------------------

scan_p = Primitive("scan", multiple_results=True)


def _scan_impl(*args: Any, body: Function, num_consts: int, num_carry: int, length: int, reverse: bool) -> list:
    consts, carry, xs = _split(args, num_consts, num_carry)
    xs = [np.asarray(x) for x in xs]
    steps: list[list] = []
    for i in reversed(range(length)) if reverse else range(length):
        outs = eval_ir(body, [*consts, *carry, *(x[i] for x in xs)])
        carry = outs[:num_carry]
        steps.append(outs[num_carry:])
    if reverse:
        steps.reverse()
    out_avals = body.out_avals
    carry = [as_array(c, a.dtype) for c, a in zip(carry, out_avals, strict=False)]
    ys = []
    for j, aval in enumerate(out_avals[num_carry:]):
        if length == 0:
            ys.append(np.zeros((0, *aval.shape), aval.dtype))
        else:
            ys.append(np.stack([as_array(s[j], aval.dtype) for s in steps]))
    return [*carry, *ys]


def _scan_abstract_eval(
    *avals: ShapedArray, body: Function, num_consts: int, num_carry: int, length: int, reverse: bool
) -> list[ShapedArray]:
    if len(avals) != len(body.invars):
        raise TypeError(with_user_line(f"scan: {len(avals)} operands for a body of {len(body.invars)} inputs"))
    consts, carry, xs = _split(avals, num_consts, num_carry)
    for x in xs:
        if x.ndim == 0 or x.shape[0] != length:
            raise TypeError(with_user_line(f"scan: scanned operand {x.str_short()} must have leading axis {length}"))
    want = body.in_avals
    got = [*consts, *carry, *(_unstacked(x) for x in xs)]
    names = [f"operand {i}" for i in range(len(got))]
    check_same_types("scan", names, got, want)
    out_avals = body.out_avals
    carry_names = [f"carry {i} output" for i in range(num_carry)]
    check_same_types("scan body", carry_names, out_avals[:num_carry], want[num_consts : num_consts + num_carry])
    return [*out_avals[:num_carry], *(_stacked(a, length) for a in out_avals[num_carry:])]


scan_p.def_impl(_scan_impl)
scan_p.def_abstract_eval(_scan_abstract_eval)


# jvp: the body's jvp, with carry tangents the fixed point of which ones are nonzero.


def _scan_jvp(primals: list, tangents: list, *, body, num_consts, num_carry, length, reverse):
    nonzero = [type(t) is not Zero and is_differentiable(get_aval(p)) for p, t in zip(primals, tangents, strict=True)]
    nz_consts, nz_carry, nz_xs = _split(nonzero, num_consts, num_carry)
    num_ys = len(body.outvars) - num_carry
    while True:
        jvp_ir, out_nz = jvp_function(body, [*nz_consts, *nz_carry, *nz_xs], [*nz_carry, *[False] * num_ys])
        grown = [a or b for a, b in zip(nz_carry, out_nz[:num_carry], strict=True)]
        if grown == nz_carry:
            break
        nz_carry = grown
    nz_ys = list(out_nz[num_carry:])
    layout = (num_consts, num_carry, len(primals), sum(nz_consts), sum(nz_carry), sum(nz_xs), sum(nz_ys))
    jvp_body = cached(jvp_ir, ("scan_jvp_layout", layout), lambda: _jvp_scan_body(jvp_ir, *layout))
    consts, carry, xs = _split(primals, num_consts, num_carry)
    t_consts, t_carry, t_xs = _split(tangents, num_consts, num_carry)
    outs = scan_p.bind(
        *consts,
        *[t for t, nz in zip(t_consts, nz_consts, strict=True) if nz],
        *carry,
        *[instantiate(t) for t, nz in zip(t_carry, nz_carry, strict=True) if nz],
        *xs,
        *[t for t, nz in zip(t_xs, nz_xs, strict=True) if nz],
        body=jvp_body,
        num_consts=num_consts + sum(nz_consts),
        num_carry=num_carry + sum(nz_carry),
        length=length,
        reverse=reverse,
    )
    k = num_carry + sum(nz_carry)
    carry_out, t_carry_out, ys, t_ys = (
        outs[:num_carry],
        iter(outs[num_carry:k]),
        outs[k : k + num_ys],
        iter(outs[k + num_ys :]),
    )
    tangents_out = [next(t_carry_out) if nz else Zero(get_aval(c)) for c, nz in zip(carry_out, nz_carry, strict=True)]
    tangents_out += [next(t_ys) if nz else Zero(get_aval(y)) for y, nz in zip(ys, nz_ys, strict=True)]
    return [*carry_out, *ys], tangents_out


def _jvp_scan_body(jvp_ir: Function, nc: int, ncarry: int, n: int, tc: int, tcarry: int, tx: int, ty: int) -> Function:
    """Reorder the jvp IR ``(primals, tangents) -> (outs, tangents)`` into the scan layout
    ``(consts, const tangents, carry, carry tangents, xs, x tangents)``."""
    consts, carry, xs = range(nc), range(nc, nc + ncarry), range(nc + ncarry, n)
    t_consts, t_carry, t_xs = (
        range(n, n + tc),
        range(n + tc, n + tc + tcarry),
        range(n + tc + tcarry, n + tc + tcarry + tx),
    )
    in_order = [*consts, *t_consts, *carry, *t_carry, *xs, *t_xs]
    num_ys = len(jvp_ir.outvars) - ncarry - tcarry - ty
    m = ncarry + num_ys
    out_order = [*range(ncarry), *range(m, m + tcarry), *range(ncarry, m), *range(m + tcarry, m + tcarry + ty)]
    return _permuted(jvp_ir, in_order, out_order)


jvp_rules[scan_p] = _scan_jvp


# Reverse mode: the forward pass stacks residuals per step, the backward pass is a reverse scan.


class _ResidualPlan:
    """What the forward pass saves for the backward steps.

    ``saved``: body values stacked as extra ``ys`` of ``forward_body`` (carries read by
    the adjoint pass, intermediate values). ``from_ys``: values that already are ys of
    the body, as ``(var, index of the y)``. ``read_consts``/``read_xs``: the positions of
    the consts and xs the adjoint pass reads (from the scan's operands).
    """

    __slots__ = ("forward_body", "saved", "from_ys", "read_consts", "read_xs")

    def __init__(self, body: Function, num_consts: int, num_carry: int):
        const_in, _, xs_in = _split(body.invars, num_consts, num_carry)
        needed = residual_vars(body, [True] * len(body.invars))
        self.read_consts = [i for i, v in enumerate(const_in) if v in needed]
        self.read_xs = [i for i, v in enumerate(xs_in) if v in needed]
        y_index = {}
        for j, v in enumerate(body.outvars[num_carry:]):
            y_index.setdefault(v, j)
        self.saved, self.from_ys = [], []
        for v in needed:
            if v in const_in or v in xs_in or v in body.constvars:
                continue
            if v in y_index:
                self.from_ys.append((v, y_index[v]))
            else:
                self.saved.append(v)
        self.forward_body = Function(body.invars, body.eqns, [*body.outvars, *self.saved], body.constvars, body.consts)
        self.forward_body.typecheck()


def _residual_plan(body: Function, num_consts: int, num_carry: int) -> _ResidualPlan:
    return cached(body, ("scan_residuals", num_consts, num_carry), lambda: _ResidualPlan(body, num_consts, num_carry))


def _scan_tape_forward(primals: list, *, body, num_consts, num_carry, length, reverse) -> tuple[list, dict]:
    plan = _residual_plan(body, num_consts, num_carry)
    outs = scan_p.bind(
        *primals, body=plan.forward_body, num_consts=num_consts, num_carry=num_carry, length=length, reverse=reverse
    )
    n = len(body.outvars)
    return outs[:n], {"residuals": tuple(outs[n:])}


def _scan_vjp(cts_out, primals_in, primals_out, *, body, num_consts, num_carry, length, reverse, residuals=None):
    if residuals is None:
        _, extra = _scan_tape_forward(
            primals_in, body=body, num_consts=num_consts, num_carry=num_carry, length=length, reverse=reverse
        )
        residuals = extra["residuals"]
    plan = _residual_plan(body, num_consts, num_carry)
    mask = needed_cotangents() or (True,) * len(primals_in)
    wanted = [m and is_differentiable(get_aval(p)) for m, p in zip(mask, primals_in, strict=True)]
    need_consts, _, need_xs = _split(wanted, num_consts, num_carry)
    consts, carry, xs = _split(primals_in, num_consts, num_carry)
    ct_carry, ct_ys = cts_out[:num_carry], cts_out[num_carry:]
    ys_present = tuple(c is not None for c in ct_ys)
    key = ("scan_backward", num_consts, num_carry, tuple(need_consts), tuple(need_xs), ys_present)
    backward = cached(body, key, lambda: _backward_body(body, num_consts, num_carry, key[3], key[4], ys_present))
    float_carry = [is_differentiable(get_aval(c)) for c in carry]
    init = [
        instantiate(Zero(get_aval(c))) if ct is None else ct
        for c, ct, f in zip(carry, ct_carry, float_carry, strict=True)
        if f
    ]
    init += [zeros(get_aval(c).strip_weak()) for c, need in zip(consts, need_consts, strict=True) if need]
    scanned = [ct for ct in ct_ys if ct is not None]
    scanned += [*residuals, *(primals_out[num_carry + j] for _, j in plan.from_ys), *(xs[i] for i in plan.read_xs)]
    outs = scan_p.bind(
        *(consts[i] for i in plan.read_consts),
        *init,
        *scanned,
        body=backward,
        num_consts=len(plan.read_consts),
        num_carry=len(init),
        length=length,
        reverse=not reverse,
    )
    carry_cts, const_cts, xs_cts = (
        iter(outs[: sum(float_carry)]),
        iter(outs[sum(float_carry) : len(init)]),
        iter(outs[len(init) :]),
    )
    return (
        [next(const_cts) if need else None for need in need_consts]
        + [next(carry_cts) if f else None for f in float_carry]
        + [next(xs_cts) if need else None for need in need_xs]
    )


def _backward_body(body: Function, num_consts: int, num_carry: int, need_consts, need_xs, ys_present) -> Function:
    """The backward step ``(consts, carry cts, const ct sums, y cts, residuals, xs) ->
    (carry cts, const ct sums, x cts)``: the adjoint pass over ``body``."""
    plan = _residual_plan(body, num_consts, num_carry)
    const_in, carry_in, xs_in = _split(body.invars, num_consts, num_carry)
    float_carry = [v for v in carry_in if is_differentiable(v.aval)]
    needed_consts = [v for v, need in zip(const_in, need_consts, strict=True) if need]
    y_outs = body.outvars[num_carry:]
    read_consts, read_xs = [const_in[i] for i in plan.read_consts], [xs_in[i] for i in plan.read_xs]
    avals = [v.aval for v in read_consts]
    avals += [v.aval.strip_weak() for v in [*float_carry, *needed_consts]]
    avals += [v.aval.strip_weak() for v, present in zip(y_outs, ys_present, strict=True) if present]
    avals += [v.aval for v in [*plan.saved, *(v for v, _ in plan.from_ys), *read_xs]]
    active_in = [*need_consts, *(is_differentiable(v.aval) for v in carry_in), *need_xs]

    def backward_step(*args: Any) -> list:
        it = iter(args)
        env = {v: next(it) for v in read_consts}
        ct_carry = [next(it) if is_differentiable(v.aval) else None for v in carry_in]
        sums = [next(it) for _ in needed_consts]
        ct_ys = [next(it) if present else None for present in ys_present]
        env.update((v, next(it)) for v in [*plan.saved, *(v for v, _ in plan.from_ys), *read_xs])
        cts_in = adjoint_pass(body, active_in, env, [*ct_carry, *ct_ys])
        ct_consts, ct_carry_in, ct_xs = _split(cts_in, num_consts, num_carry)
        outs = [_filled(ct, v) for ct, v in zip(ct_carry_in, carry_in, strict=True) if is_differentiable(v.aval)]
        const_cts = [ct for ct, need in zip(ct_consts, need_consts, strict=True) if need]
        outs += [add_tangents(s, ct) for s, ct in zip(sums, const_cts, strict=True)]
        outs += [_filled(ct, v) for ct, v, need in zip(ct_xs, xs_in, need_xs, strict=True) if need]
        return outs

    return stage_transformed(backward_step, avals, "scan transpose")


def _filled(ct: Any, v) -> Any:
    return zeros(v.aval.strip_weak()) if ct is None else ct


tape_forward_rules[scan_p] = _scan_tape_forward
vjp_rules[scan_p] = _scan_vjp


# vmap: carries mapped on axis 0 (the fixed point of which ones are mapped), xs and ys on
# axis 1 (axis 0 is the scan axis); consts keep their mapped axis.


def _scan_batch(args: list, dims: list, *, body, num_consts, num_carry, length, reverse):
    size = mapped_size(args, dims)
    const_dims, carry_dims, xs_dims = _split(dims, num_consts, num_carry)
    x_body_dims = [None if d is None else 0 for d in xs_dims]
    carry_mapped = [d is not None for d in carry_dims]
    while True:
        in_dims = [*const_dims, *(0 if m else None for m in carry_mapped), *x_body_dims]
        _, free_dims = batch_function(body, in_dims, size)
        grown = [m or d is not None for m, d in zip(carry_mapped, free_dims[:num_carry], strict=True)]
        if grown == carry_mapped:
            break
        carry_mapped = grown
    out_dims = [*(0 if m else None for m in carry_mapped), *free_dims[num_carry:]]
    batched_body, _ = batch_function(body, in_dims, size, out_dims)
    consts, carry, xs = _split(args, num_consts, num_carry)
    carry = [move_axis(c, d, 0, size) if m else c for c, d, m in zip(carry, carry_dims, carry_mapped, strict=True)]
    xs = [x if d is None else move_axis(x, d, 1) for x, d in zip(xs, xs_dims, strict=True)]
    outs = scan_p.bind(
        *consts,
        *carry,
        *xs,
        body=batched_body,
        num_consts=num_consts,
        num_carry=num_carry,
        length=length,
        reverse=reverse,
    )
    ys_dims = [None if d is None else 1 for d in out_dims[num_carry:]]
    return outs, [*out_dims[:num_carry], *ys_dims]


batch_rules[scan_p] = _scan_batch


# --- public API -------------------------------------------------------------------------------


def _scan_length(xs_flat: list, length: int | None) -> int:
    lengths = set()
    for x in xs_flat:
        aval = get_aval(x)
        if aval.ndim == 0:
            raise ValueError(
                with_user_line(f"scan: every leaf of xs needs a leading axis to scan over, got {aval.str_short()}")
            )
        lengths.add(aval.shape[0])
    if length is not None:
        if not isinstance(length, int | np.integer) or length < 0:
            raise ValueError(with_user_line(f"scan: length must be a non-negative int, got {length!r}"))
        lengths.add(int(length))
    if len(lengths) > 1:
        shapes = ", ".join(get_aval(x).str_short() for x in xs_flat)
        raise ValueError(with_user_line(f"scan: xs leading axes and length disagree: {shapes}, length={length}"))
    if not lengths:
        raise ValueError(with_user_line("scan: with no xs to scan over, pass length="))
    return lengths.pop()


def _trace_body(f: Callable, carry_avals: list, x_avals: list, init_tree, xs_tree):
    """Trace ``f(carry, x) -> (carry, y)`` to a closed IR; returns it, its consts and the y tree."""
    trees: list = []
    n = len(carry_avals)

    def flat_body(*args: Any) -> list:
        out = f(tree_util.tree_unflatten(init_tree, args[:n]), tree_util.tree_unflatten(xs_tree, args[n:]))
        if not (isinstance(out, tuple) and len(out) == 2):
            what = "an array" if isinstance(out, Tracer) else type(out).__name__
            raise TypeError(with_user_line(f"scan body must return a pair (carry, y), got {what}"))
        carry_flat, carry_tree = tree_util.tree_flatten(out[0])
        if carry_tree != init_tree:
            raise TypeError(
                with_user_line(
                    f"scan body carry output structure {carry_tree} differs from the init structure {init_tree}"
                )
            )
        y_flat, y_tree = tree_util.tree_flatten(out[1])
        trees.append(y_tree)
        return [*carry_flat, *y_flat]

    body, consts, _ = stage_closed(flat_body, [*carry_avals, *x_avals], "scan body")
    return body, consts, trees[0]


def _promote_weak_carry(init_flat: list, carry_avals: list, out_avals: list) -> tuple[list, list] | None:
    """A weakly typed init (a Python scalar) takes the dtype the body gives its carry, as in JAX."""
    from functrace.numpy.promotion import convert

    def promotable(a: ShapedArray, o: ShapedArray) -> bool:
        return a.weak_type and a.dtype != o.dtype and a.dtype.kind == o.dtype.kind and a.shape == o.shape

    if not any(promotable(a, o) for a, o in zip(carry_avals, out_avals, strict=True)):
        return None
    new_init, new_avals = [], []
    for x, a, o in zip(init_flat, carry_avals, out_avals, strict=True):
        if promotable(a, o):
            x, a = convert(x, o.dtype), ShapedArray(a.shape, o.dtype)
        new_init.append(x)
        new_avals.append(a)
    return new_init, new_avals


@api_boundary
def scan(f: Callable, init: Any, xs: Any = None, length: int | None = None, reverse: bool = False) -> tuple[Any, Any]:
    """Loop ``f(carry, x) -> (carry, y)`` over the leading axis of ``xs``; returns the final
    carry and the ``y``'s stacked. ``init``, ``xs`` and ``y`` are pytrees; with ``xs=None``
    pass ``length``; ``reverse=True`` runs from the last element to the first.

    >>> import numpy as np, functrace.numpy as fnp
    >>> from functrace.control_flow.scan import scan
    >>> total, running = scan(lambda c, x: (c + x, c + x), 0.0, np.array([1.0, 2.0, 3.0]))
    >>> total, running
    (array(6.), array([1., 3., 6.]))
    """
    init_flat, init_tree = tree_util.tree_flatten(init)
    xs_flat, xs_tree = tree_util.tree_flatten(xs)
    length = _scan_length(xs_flat, length)
    carry_avals = [get_aval(c) for c in init_flat]
    x_avals = [_unstacked(get_aval(x)) for x in xs_flat]
    body, consts, y_tree = _trace_body(f, carry_avals, x_avals, init_tree, xs_tree)
    promoted = _promote_weak_carry(init_flat, carry_avals, body.out_avals[: len(init_flat)])
    if promoted is not None:
        init_flat, carry_avals = promoted
        body, consts, y_tree = _trace_body(f, carry_avals, x_avals, init_tree, xs_tree)
    check_same_types(
        "scan body", leaf_paths("carry", init_tree), body.out_avals[: len(init_flat)], [a for a in carry_avals]
    )
    outs = scan_p.bind(
        *consts,
        *init_flat,
        *xs_flat,
        body=body,
        num_consts=len(consts),
        num_carry=len(init_flat),
        length=length,
        reverse=bool(reverse),
    )
    carry_out = tree_util.tree_unflatten(init_tree, outs[: len(init_flat)])
    return carry_out, tree_util.tree_unflatten(y_tree, outs[len(init_flat) :])


def _static_int(x: Any) -> bool:
    if isinstance(x, Tracer | bool | np.bool_):
        return False
    return isinstance(x, int | np.integer) or (isinstance(x, np.ndarray) and x.ndim == 0 and x.dtype.kind in "iu")


def _index_dtype(lower: Any, upper: Any) -> np.dtype:
    from functrace.core import dtypes

    typed = [get_aval(b).dtype for b in (lower, upper) if not isinstance(b, int)]
    return dtypes.canonicalize(np.result_type(*typed)) if typed else np.dtype(np.int64)


@api_boundary
def fori_loop(lower: Any, upper: Any, body_fun: Callable, init_val: Any) -> Any:
    """``val = body_fun(i, val)`` for ``i`` in ``range(lower, upper)``; returns ``val``.

    With concrete integer bounds this is a ``scan`` (reverse-mode differentiable); with
    traced bounds it is a ``while_loop`` (forward mode only).

    >>> import numpy as np
    >>> from functrace.control_flow.scan import fori_loop
    >>> fori_loop(0, 4, lambda i, x: x * 2.0 + i, np.array(1.0))
    array(27.)
    """
    dtype = _index_dtype(lower, upper)
    if _static_int(lower) and _static_int(upper):

        def step(carry: tuple, _: Any) -> tuple:
            i, val = carry
            return (i + 1, body_fun(i, val)), None

        start = np.asarray(lower, dtype)
        (_, out), _ = scan(step, (start, init_val), None, length=max(int(upper) - int(lower), 0))
        return out
    from functrace.control_flow.while_loop import while_loop
    from functrace.numpy.promotion import convert

    lower, upper = convert(lower, dtype), convert(upper, dtype)

    def loop_body(carry: tuple) -> tuple:
        i, val = carry
        return i + 1, body_fun(i, val)

    _, out = while_loop(lambda carry: carry[0] < upper, loop_body, (lower, init_val))
    return out
