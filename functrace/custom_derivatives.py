"""User-defined derivatives (``custom_jvp``, ``custom_vjp``) and rematerialisation
(``checkpoint``), as higher-order primitives.

Each call traces the user's function into a closed IR whose captured values are
passed as leading operands (closure conversion), so no tracer hides inside a
parameter. The custom rules see only the function's own arguments: values the
function closes over are treated as constants by the custom rule.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from functrace import tree_util
from functrace.ad import tape_forward_rules
from functrace.core.abstract import ShapedArray
from functrace.core.ad_util import Zero, instantiate
from functrace.core.eval import eval_ir
from functrace.core.ir import Function
from functrace.core.primitive import Primitive, batch_rules, jvp_rules, vjp_rules
from functrace.core.source_info import api_boundary, with_user_line
from functrace.core.staging import stage_closed
from functrace.core.trace import get_aval


class Rule:
    """A user's Python rule as a hashable, printable primitive parameter."""

    __slots__ = ("fun", "in_tree", "out_tree", "nondiff")

    def __init__(self, fun: Callable, in_tree, out_tree, nondiff: tuple):
        self.fun, self.in_tree, self.out_tree, self.nondiff = fun, in_tree, out_tree, nondiff

    def __repr__(self) -> str:
        return getattr(self.fun, "__name__", "rule")


def _closure_converted(
    fun: Callable, flat_args: Sequence[Any], in_tree, description: str
) -> tuple[Function, list, Any]:
    """Trace ``fun`` (pytree args) to an IR whose captured values become leading inputs."""
    return stage_closed(
        lambda *xs: fun(*tree_util.tree_unflatten(in_tree, xs)), [get_aval(x) for x in flat_args], description
    )


def _batched_operands(call: Function, args: Sequence[Any], dims: Sequence[int | None]) -> tuple[Function, list]:
    """Every operand with its mapped axis first, and ``call`` batched that way (all of its
    outputs mapped on axis 0): the user's rules are vmapped over axis 0 to match."""
    from functrace.control_flow.common import batch_function
    from functrace.core.batching_util import mapped_size, move_axis

    size = mapped_size(args, dims)
    front = [move_axis(x, d, 0, size) for x, d in zip(args, dims, strict=True)]
    batched, _ = batch_function(call, [0] * len(front), size, [0] * len(call.outvars))
    return batched, front


def _call_abstract_eval(*avals: ShapedArray, call: Function, **params) -> list[ShapedArray]:
    return call.out_avals


def _call_impl(*args: Any, call: Function, **params) -> list:
    return eval_ir(call, args)


def _split_nondiff(args: tuple, nondiff_argnums: tuple[int, ...]) -> tuple[tuple, tuple]:
    nondiff = tuple(args[i] for i in nondiff_argnums)
    diff = tuple(a for i, a in enumerate(args) if i not in nondiff_argnums)
    return nondiff, diff


def _merge_nondiff(nondiff: tuple, diff: Sequence[Any], nondiff_argnums: tuple[int, ...]) -> list:
    diff_it, nondiff_it = iter(diff), iter(nondiff)
    total = len(nondiff) + len(diff)
    return [next(nondiff_it) if i in nondiff_argnums else next(diff_it) for i in range(total)]


# --- custom_jvp -----------------------------------------------------------------------------

custom_jvp_call_p = Primitive("custom_jvp_call", multiple_results=True)
custom_jvp_call_p.def_impl(_call_impl)
custom_jvp_call_p.def_abstract_eval(_call_abstract_eval)


def _user_jvp(rule: Rule, primals: Sequence[Any], tangents: Sequence[Any]) -> tuple[list, list]:
    """Call the user's jvp on pytree primals/tangents; flat results."""
    p_tree = tree_util.tree_unflatten(rule.in_tree, primals)
    t_tree = tree_util.tree_unflatten(rule.in_tree, tangents)
    out = rule.fun(*rule.nondiff, p_tree, t_tree)
    if not (isinstance(out, tuple | list) and len(out) == 2):
        raise TypeError(with_user_line("a custom_jvp rule must return a pair (primal_out, tangent_out)"))
    primal_out, tangent_out = out
    p_flat, p_tree_out = tree_util.tree_flatten(primal_out)
    t_flat, t_tree_out = tree_util.tree_flatten(tangent_out)
    if p_tree_out != rule.out_tree or t_tree_out != rule.out_tree:
        raise TypeError(
            with_user_line(
                f"custom_jvp rule outputs must match the function's output structure {rule.out_tree}; "
                f"got {p_tree_out} and {t_tree_out}"
            )
        )
    return p_flat, t_flat


def _custom_jvp_call_jvp(primals, tangents, *, call, jvp, num_consts):
    args = primals[num_consts:]
    arg_tangents = [instantiate(t) for t in tangents[num_consts:]]
    primals_out, tangents_out = _user_jvp(jvp, args, arg_tangents)
    return primals_out, tangents_out


def _custom_jvp_call_vjp(cts, primals, outs, *, call, jvp, num_consts):
    # The user's jvp is linear in the tangents: its transpose (a vjp at zero tangents)
    # gives the cotangents.
    from functrace.ad import vjp

    args = primals[num_consts:]
    zeros = [instantiate(Zero(get_aval(a))) for a in args]
    _, tangent_vjp = vjp(lambda *ts: _user_jvp(jvp, args, ts)[1], *zeros)
    cts = [instantiate(Zero(get_aval(o))) if c is None else c for c, o in zip(cts, outs, strict=True)]
    return [None] * num_consts + list(tangent_vjp(cts))


def _batched_rule(rule: Rule, wrap: Callable) -> Rule:
    return Rule(wrap(rule), rule.in_tree, rule.out_tree, ())


def _vmapped(fun: Callable) -> Callable:
    from functrace.batching import vmap

    return vmap(fun)


def _custom_jvp_call_batch(args, dims, *, call, jvp, num_consts):
    # Every operand is given its mapped axis first; the user's rule is vmapped the same way.
    new_call, front = _batched_operands(call, args, dims)
    rule = _batched_rule(jvp, lambda r: _vmapped(lambda p, t: r.fun(*r.nondiff, p, t)))
    outs = custom_jvp_call_p.bind(*front, call=new_call, jvp=rule, num_consts=num_consts)
    return outs, [0] * len(outs)


jvp_rules[custom_jvp_call_p] = _custom_jvp_call_jvp
vjp_rules[custom_jvp_call_p] = _custom_jvp_call_vjp
batch_rules[custom_jvp_call_p] = _custom_jvp_call_batch


class custom_jvp:
    """A function with a user-defined forward-mode derivative (reverse mode derives from it).

    >>> import numpy as np, functrace as ft, functrace.numpy as fnp
    >>> @ft.custom_jvp
    ... def log1pexp(x):
    ...     return fnp.log1p(fnp.exp(x))
    >>> @log1pexp.defjvp
    ... def log1pexp_jvp(primals, tangents):
    ...     (x,), (t,) = primals, tangents
    ...     return log1pexp(x), t * (1 - 1 / (1 + fnp.exp(x)))
    >>> ft.grad(log1pexp)(100.0)
    array(1.)
    """

    def __init__(self, fun: Callable, nondiff_argnums: Sequence[int] = ()):
        functools.update_wrapper(self, fun)
        self.fun = fun
        self.nondiff_argnums = tuple(nondiff_argnums)
        self.jvp: Callable | None = None

    def defjvp(self, jvp: Callable) -> Callable:
        """Set the rule ``jvp(*nondiff_args, primals, tangents) -> (primal_out, tangent_out)``."""
        self.jvp = jvp
        return jvp

    @api_boundary
    def __call__(self, *args: Any) -> Any:
        if self.jvp is None:
            raise AttributeError(f"no jvp rule defined for custom_jvp function {self.__name__}; use .defjvp")
        nondiff, diff = _split_nondiff(args, self.nondiff_argnums)
        flat, in_tree = tree_util.tree_flatten(diff)

        def fun(*diff_args):
            return self.fun(*_merge_nondiff(nondiff, diff_args, self.nondiff_argnums))

        call, consts, out_tree = _closure_converted(fun, flat, in_tree, f"custom_jvp({self.__name__})")
        rule = Rule(self.jvp, in_tree, out_tree, nondiff)
        outs = custom_jvp_call_p.bind(*consts, *flat, call=call, jvp=rule, num_consts=len(consts))
        return tree_util.tree_unflatten(out_tree, outs)


# --- custom_vjp -----------------------------------------------------------------------------

custom_vjp_call_p = Primitive("custom_vjp_call", multiple_results=True)
custom_vjp_call_p.def_impl(_call_impl)
custom_vjp_call_p.def_abstract_eval(_call_abstract_eval)


def _custom_vjp_call_jvp(primals, tangents, **params):
    raise TypeError(
        with_user_line(
            "forward-mode differentiation (jvp, jacfwd, hessian) of a custom_vjp function is not "
            "supported: a vjp rule cannot give a jvp. Define the derivative with custom_jvp instead, "
            "which supports both modes."
        )
    )


def custom_vjp_forward(primals: list, *, call, fwd, bwd, num_consts) -> tuple[list, dict]:
    """Run the user's ``fwd`` on the tape's forward pass: outputs and the residuals."""
    args = primals[num_consts:]
    out = fwd.fun(*fwd.nondiff, *tree_util.tree_unflatten(fwd.in_tree, args))
    if not (isinstance(out, tuple | list) and len(out) == 2):
        raise TypeError(with_user_line("a custom_vjp fwd rule must return a pair (output, residuals)"))
    primal_out, residuals = out
    out_flat, out_tree = tree_util.tree_flatten(primal_out)
    if out_tree != fwd.out_tree:
        raise TypeError(
            with_user_line(f"custom_vjp fwd output structure {out_tree} differs from the function's {fwd.out_tree}")
        )
    return out_flat, {"residuals": residuals}


def _custom_vjp_call_vjp(cts, primals, outs, *, call, fwd, bwd, num_consts, residuals=None):
    cts = [instantiate(Zero(get_aval(o))) if c is None else c for c, o in zip(cts, outs, strict=True)]
    result = bwd.fun(*bwd.nondiff, residuals, tree_util.tree_unflatten(bwd.out_tree, cts))
    args_tree = tree_util.tree_unflatten(bwd.in_tree, primals[num_consts:])
    if not isinstance(result, tuple) or len(result) != len(args_tree):
        raise TypeError(
            with_user_line(
                f"a custom_vjp bwd rule must return a tuple with one cotangent per differentiable "
                f"argument ({len(args_tree)}), got {type(result).__name__}"
            )
        )
    flat = tree_util.tree_leaves(tuple(result), is_leaf=lambda x: x is None)
    return [None] * num_consts + list(flat)


def _custom_vjp_call_batch(args, dims, *, call, fwd, bwd, num_consts):
    new_call, front = _batched_operands(call, args, dims)
    new_fwd = _batched_rule(fwd, lambda r: _vmapped(r.fun))
    new_bwd = _batched_rule(bwd, lambda r: _vmapped(lambda res, ct: r.fun(*r.nondiff, res, ct)))
    outs = custom_vjp_call_p.bind(*front, call=new_call, fwd=new_fwd, bwd=new_bwd, num_consts=num_consts)
    return outs, [0] * len(outs)


jvp_rules[custom_vjp_call_p] = _custom_vjp_call_jvp
batch_rules[custom_vjp_call_p] = _custom_vjp_call_batch
vjp_rules[custom_vjp_call_p] = _custom_vjp_call_vjp
tape_forward_rules[custom_vjp_call_p] = custom_vjp_forward


class custom_vjp:
    """A function with a user-defined reverse-mode derivative.

    >>> import numpy as np, functrace as ft, functrace.numpy as fnp
    >>> @ft.custom_vjp
    ... def clip_gradient(x):
    ...     return x
    >>> def fwd(x):
    ...     return x, None
    >>> def bwd(res, g):
    ...     return (fnp.clip(g, -1.0, 1.0),)
    >>> clip_gradient.defvjp(fwd, bwd)
    >>> ft.grad(lambda x: 5.0 * clip_gradient(x))(2.0)
    array(1.)
    """

    def __init__(self, fun: Callable, nondiff_argnums: Sequence[int] = ()):
        functools.update_wrapper(self, fun)
        self.fun = fun
        self.nondiff_argnums = tuple(nondiff_argnums)
        self.fwd: Callable | None = None
        self.bwd: Callable | None = None

    def defvjp(self, fwd: Callable, bwd: Callable) -> None:
        """``fwd(*args) -> (out, residuals)``; ``bwd(*nondiff_args, residuals, ct) -> tuple of cts``."""
        self.fwd, self.bwd = fwd, bwd

    @api_boundary
    def __call__(self, *args: Any) -> Any:
        if self.fwd is None or self.bwd is None:
            raise AttributeError(f"no vjp rule defined for custom_vjp function {self.__name__}; use .defvjp")
        nondiff, diff = _split_nondiff(args, self.nondiff_argnums)
        flat, in_tree = tree_util.tree_flatten(diff)

        def fun(*diff_args):
            return self.fun(*_merge_nondiff(nondiff, diff_args, self.nondiff_argnums))

        call, consts, out_tree = _closure_converted(fun, flat, in_tree, f"custom_vjp({self.__name__})")
        fwd = Rule(self.fwd, in_tree, out_tree, tuple(a for i, a in enumerate(args) if i in self.nondiff_argnums))
        fwd.nondiff = ()  # fwd takes every argument, as in JAX
        fwd.fun = functools.partial(_call_with_all_args, self.fwd, nondiff, self.nondiff_argnums)
        bwd = Rule(self.bwd, in_tree, out_tree, nondiff)
        outs = custom_vjp_call_p.bind(*consts, *flat, call=call, fwd=fwd, bwd=bwd, num_consts=len(consts))
        return tree_util.tree_unflatten(out_tree, outs)


def _call_with_all_args(fwd: Callable, nondiff: tuple, nondiff_argnums: tuple[int, ...], *diff_args: Any) -> Any:
    return fwd(*_merge_nondiff(nondiff, diff_args, nondiff_argnums))


# --- checkpoint -------------------------------------------------------------------------------

remat_call_p = Primitive("remat_call", multiple_results=True)
remat_call_p.def_impl(_call_impl)
remat_call_p.def_abstract_eval(_call_abstract_eval)


def _remat_call_jvp(primals, tangents, *, call):
    from functrace.ad import jvp_flat

    in_tree = tree_util.tree_structure(tuple(primals))
    outs, t_outs, _ = jvp_flat(lambda *xs: eval_ir(call, xs), primals, [instantiate(t) for t in tangents], in_tree)
    return outs, t_outs


def _remat_call_vjp(cts, primals, outs, *, call):
    # Recompute the forward pass of the block now, in the backward pass.
    from functrace.ad import vjp

    _, f_vjp = vjp(lambda *xs: eval_ir(call, xs), *primals)
    cts = [instantiate(Zero(get_aval(o))) if c is None else c for c, o in zip(cts, outs, strict=True)]
    return list(f_vjp(cts))


def _remat_call_batch(args, dims, *, call):
    new_call, front = _batched_operands(call, args, dims)
    outs = remat_call_p.bind(*front, call=new_call)
    return outs, [0] * len(outs)


jvp_rules[remat_call_p] = _remat_call_jvp
batch_rules[remat_call_p] = _remat_call_batch
vjp_rules[remat_call_p] = _remat_call_vjp


def checkpoint(fun: Callable) -> Callable:
    """Don't store ``fun``'s intermediate values for reverse mode; recompute them in the
    backward pass (less memory, more compute). Alias: ``remat``.

    >>> import numpy as np, functrace as ft, functrace.numpy as fnp
    >>> f = ft.checkpoint(lambda x: fnp.sin(fnp.sin(x)))
    >>> float(ft.grad(f)(0.0))
    1.0
    """

    @api_boundary
    @functools.wraps(fun)
    def remat_fun(*args: Any) -> Any:
        flat, in_tree = tree_util.tree_flatten(args)
        call, consts, out_tree = _closure_converted(
            fun, flat, in_tree, f"checkpoint({getattr(fun, '__name__', 'fun')})"
        )
        outs = remat_call_p.bind(*consts, *flat, call=call)
        return tree_util.tree_unflatten(out_tree, outs)

    return remat_fun


remat = checkpoint
