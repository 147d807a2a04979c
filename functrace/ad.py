"""Automatic differentiation: forward mode, reverse mode, and the ``grad`` family.

Forward mode is a JVP trace: each tracer carries a primal and a tangent (possibly a
symbolic ``Zero``) and every primitive applies its jvp rule.

Reverse mode records a *tape* of the primitive applications that depend on the
inputs (a tape trace whose tracers carry their primal values, so Python control flow
on concrete values works as in autograd) and then runs an adjoint pass over the tape,
applying each primitive's vjp rule. The adjoint pass binds primitives like any other
code, so under ``jit`` or ``make_ir`` the gradient is staged into IR — symbol-to-symbol
differentiation — and it can be differentiated, vmapped and jitted again.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from functrace import tree_util
from functrace.core.abstract import ShapedArray
from functrace.core.ad_util import Zero, add_tangents, instantiate, is_differentiable, set_needed_cotangents
from functrace.core.primitive import get_rule, jvp_rules, vjp_rules, zero_derivative
from functrace.core.source_info import api_boundary, with_user_line
from functrace.core.trace import Trace, Tracer, get_aval, new_main

# --- forward mode --------------------------------------------------------------------


class JVPTracer(Tracer):
    __slots__ = ("primal", "tangent")

    def __init__(self, trace: JVPTrace, primal: Any, tangent: Any):
        self._trace = trace
        self.primal = primal
        self.tangent = tangent

    @property
    def aval(self) -> ShapedArray:
        return get_aval(self.primal)

    def inner(self) -> Any:
        return self.primal


class JVPTrace(Trace):
    __slots__ = ()

    def pure(self, val: Any) -> JVPTracer:
        return JVPTracer(self, val, Zero(get_aval(val)))

    lift = pure

    def process_primitive(self, primitive, tracers, params):
        primals = [t.primal for t in tracers]
        tangents = [t.tangent for t in tracers]
        if primitive in zero_derivative or all(type(t) is Zero for t in tangents):
            outs = primitive.bind(*primals, **params)
            outs = outs if primitive.multiple_results else [outs]
            return [JVPTracer(self, o, Zero(get_aval(o))) for o in outs]
        rule = get_rule(jvp_rules, primitive, "jvp")
        primals_out, tangents_out = rule(primals, tangents, **params)
        return [JVPTracer(self, p, t) for p, t in zip(primals_out, tangents_out, strict=True)]


def _check_tangent(primal: Any, tangent: Any) -> Any:
    p_aval = get_aval(primal)
    if type(tangent) is Zero or not is_differentiable(p_aval):
        return Zero(p_aval)  # integer and bool inputs have no tangent space
    t_aval = get_aval(tangent)
    if p_aval.shape != t_aval.shape or p_aval.dtype != t_aval.dtype:
        raise TypeError(
            with_user_line(
                f"jvp: a tangent must have its primal's shape and dtype: primal {p_aval.str_short()}, "
                f"tangent {t_aval.str_short()}"
            )
        )
    return tangent


def jvp_flat(fun: Callable, primals: Sequence[Any], tangents: Sequence[Any], in_tree) -> tuple[list, list, Any]:
    with new_main(JVPTrace, description="jvp") as main:
        trace = JVPTrace(main)
        tracers = [JVPTracer(trace, p, _check_tangent(p, t)) for p, t in zip(primals, tangents, strict=True)]
        out = fun(*tree_util.tree_unflatten(in_tree, tracers))
        out_flat, out_tree = tree_util.tree_flatten(out)
        out_tracers = [trace.full_raise(o) for o in out_flat]
        primals_out = [t.primal for t in out_tracers]
        tangents_out = [t.tangent for t in out_tracers]
    return primals_out, tangents_out, out_tree


@api_boundary
def jvp(fun: Callable, primals: Sequence[Any], tangents: Sequence[Any]) -> tuple[Any, Any]:
    """Forward mode: ``(fun(*primals), J(primals) @ tangents)``.

    >>> import numpy as np, functrace as ft, functrace.numpy as fnp
    >>> ft.jvp(fnp.sin, (np.array([0.0, 1.0]),), (np.array([1.0, 1.0]),))
    (array([0.        , 0.84147098]), array([1.        , 0.54030231]))
    """
    if not isinstance(primals, tuple | list) or not isinstance(tangents, tuple | list):
        raise TypeError("jvp: primals and tangents must be tuples (or lists) of arguments")
    flat_p, tree_p = tree_util.tree_flatten(tuple(primals))
    flat_t, tree_t = tree_util.tree_flatten(tuple(tangents))
    if tree_p != tree_t:
        raise TypeError(f"jvp: primals and tangents have different structures: {tree_p} and {tree_t}")
    primals_out, tangents_out, out_tree = jvp_flat(fun, flat_p, flat_t, tree_p)
    tangents_out = [instantiate(t) for t in tangents_out]
    return tree_util.tree_unflatten(out_tree, primals_out), tree_util.tree_unflatten(out_tree, tangents_out)


# --- reverse mode: the tape ------------------------------------------------------------


class TapeEntry:
    """One recorded primitive application whose inputs depend on the differentiated inputs."""

    __slots__ = ("primitive", "params", "in_nodes", "primals_in", "out_nodes", "primals_out")

    def __init__(self, primitive, params, in_nodes, primals_in, out_nodes, primals_out):
        self.primitive = primitive
        self.params = params
        self.in_nodes = in_nodes
        self.primals_in = primals_in
        self.out_nodes = out_nodes
        self.primals_out = primals_out


class Tape:
    def __init__(self) -> None:
        self.entries: list[TapeEntry] = []
        self._next = 0

    def new_node(self) -> int:
        self._next += 1
        return self._next


class TapeTracer(Tracer):
    """A value on the tape: its primal value and its node (None for constants)."""

    __slots__ = ("primal", "node")

    def __init__(self, trace: TapeTrace, primal: Any, node: int | None):
        self._trace = trace
        self.primal = primal
        self.node = node

    @property
    def aval(self) -> ShapedArray:
        return get_aval(self.primal)

    def inner(self) -> Any:
        return self.primal


# Primitives whose forward pass on the tape differs from ``bind`` (custom_vjp runs the
# user's fwd): ``rule(primals, **params) -> (outputs, extra params for the vjp rule)``.
tape_forward_rules: dict[Any, Callable] = {}


class TapeTrace(Trace):
    __slots__ = ()

    def pure(self, val: Any) -> TapeTracer:
        return TapeTracer(self, val, None)

    lift = pure

    def process_primitive(self, primitive, tracers, params):
        primals = [t.primal for t in tracers]
        if primitive in zero_derivative or all(t.node is None for t in tracers):
            outs = primitive.bind(*primals, **params)
            outs = outs if primitive.multiple_results else [outs]
            return [TapeTracer(self, o, None) for o in outs]
        forward = tape_forward_rules.get(primitive)
        if forward is None:
            outs = primitive.bind(*primals, **params)
            outs = outs if primitive.multiple_results else [outs]
        else:
            outs, extra = forward(primals, **params)
            params = {**params, **extra}
        tape: Tape = self.main.global_data
        out_nodes = [tape.new_node() if is_differentiable(get_aval(o)) else None for o in outs]
        in_nodes = [t.node for t in tracers]
        tape.entries.append(TapeEntry(primitive, params, in_nodes, primals, out_nodes, outs))
        return [TapeTracer(self, o, n) for o, n in zip(outs, out_nodes, strict=True)]


def backward_pass(tape: Tape, out_nodes: Sequence[int | None], cts: Sequence[Any], in_nodes: Sequence[int | None]):
    """Propagate output cotangents back through the tape; ``None`` means zero."""
    ct_env: dict[int, Any] = {}
    for node, ct in zip(out_nodes, cts, strict=True):
        if node is not None and ct is not None:
            ct_env[node] = add_tangents(ct_env.get(node), ct)
    for entry in reversed(tape.entries):
        cts_out = [ct_env.pop(n, None) if n is not None else None for n in entry.out_nodes]
        if all(c is None for c in cts_out):
            continue
        rule = get_rule(vjp_rules, entry.primitive, "vjp")
        previous = set_needed_cotangents(tuple(n is not None for n in entry.in_nodes))
        try:
            cts_in = rule(cts_out, entry.primals_in, entry.primals_out, **entry.params)
        finally:
            set_needed_cotangents(previous)
        for node, ct in zip(entry.in_nodes, cts_in, strict=True):
            if node is not None and ct is not None:
                ct_env[node] = add_tangents(ct_env.get(node), ct)
    return [ct_env.get(n) if n is not None else None for n in in_nodes]


def _lower_aux(trace: TapeTrace, x: Any) -> Any:
    return x.primal if isinstance(x, TapeTracer) and x._trace.main is trace.main else x


def vjp_flat(fun: Callable, flat_primals: Sequence[Any], in_tree, has_aux: bool = False):
    """Run ``fun`` on the tape; returns outputs, their nodes, the input nodes, the tape and aux."""
    tape = Tape()
    with new_main(TapeTrace, tape, description="vjp") as main:
        trace = TapeTrace(main)
        ins = [TapeTracer(trace, p, tape.new_node() if is_differentiable(get_aval(p)) else None) for p in flat_primals]
        out = fun(*tree_util.tree_unflatten(in_tree, ins))
        aux = None
        if has_aux:
            if not (isinstance(out, tuple) and len(out) == 2):
                raise TypeError(with_user_line("with has_aux=True the function must return a pair (output, aux)"))
            out, aux = out
            aux = tree_util.tree_map(lambda x: _lower_aux(trace, x), aux)
        out_flat, out_tree = tree_util.tree_flatten(out)
        out_tracers = [trace.full_raise(o) for o in out_flat]
    primals_out = [t.primal for t in out_tracers]
    out_nodes = [t.node for t in out_tracers]
    in_nodes = [t.node for t in ins]
    return primals_out, out_tree, out_nodes, in_nodes, tape, aux


def _zeros_like(x: Any) -> Any:
    from functrace.core.ad_util import zeros

    return zeros(get_aval(x))


@api_boundary
def vjp(fun: Callable, *primals: Any, has_aux: bool = False):
    """Reverse mode: ``(fun(*primals), vjp_fun)``; ``vjp_fun(ct)`` returns a tuple of
    cotangents, one per primal (``((out, vjp_fun, aux))`` with ``has_aux``).

    >>> import numpy as np, functrace as ft, functrace.numpy as fnp
    >>> out, f_vjp = ft.vjp(lambda x: x * x, np.array([3.0]))
    >>> f_vjp(np.array([1.0]))
    (array([6.]),)
    """
    flat, in_tree = tree_util.tree_flatten(primals)
    primals_out, out_tree, out_nodes, in_nodes, tape, aux = vjp_flat(fun, flat, in_tree, has_aux)
    out_avals = [get_aval(p) for p in primals_out]

    def vjp_fun(cotangent: Any) -> tuple:
        ct_flat, ct_tree = tree_util.tree_flatten(cotangent)
        if ct_tree != out_tree:
            raise TypeError(f"vjp: cotangent structure {ct_tree} does not match the output structure {out_tree}")
        for aval, ct in zip(out_avals, ct_flat, strict=True):
            ct_aval = get_aval(ct)
            if ct_aval.shape != aval.shape:
                raise TypeError(f"vjp: cotangent of shape {ct_aval.shape} for an output of shape {aval.shape}")
        cts = [None if not is_differentiable(a) else _cast_ct(ct, a) for ct, a in zip(ct_flat, out_avals, strict=True)]
        cts_in = backward_pass(tape, out_nodes, cts, in_nodes)
        filled = [_zeros_like(p) if ct is None else ct for ct, p in zip(cts_in, flat, strict=True)]
        return tree_util.tree_unflatten(in_tree, filled)

    out = tree_util.tree_unflatten(out_tree, primals_out)
    return (out, vjp_fun, aux) if has_aux else (out, vjp_fun)


def _cast_ct(ct: Any, aval: ShapedArray) -> Any:
    from functrace.numpy.promotion import convert

    return convert(ct, aval.dtype)


# --- the grad family ---------------------------------------------------------------------


def _argnums_tuple(argnums: int | Sequence[int]) -> tuple[int, ...]:
    return (argnums,) if isinstance(argnums, int) else tuple(argnums)


def _check_differentiable_args(fun_name: str, args: tuple, argnums: tuple[int, ...]) -> None:
    for i in argnums:
        if i >= len(args) or i < -len(args):
            raise ValueError(f"{fun_name}: argnums {i} is out of range for {len(args)} positional arguments")
        for leaf in tree_util.tree_leaves(args[i]):
            aval = get_aval(leaf)
            if not is_differentiable(aval):
                raise TypeError(
                    with_user_line(
                        f"{fun_name} requires float inputs, but argument {i} has dtype {aval.dtype.name}; "
                        "convert it with .astype(float32) or leave it out of argnums"
                    )
                )


def value_and_grad(fun: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False) -> Callable:
    """``(fun(*args), grad(fun)(*args))`` in one pass; with ``has_aux``: ``((value, aux), grad)``.

    >>> import numpy as np, functrace as ft, functrace.numpy as fnp
    >>> ft.value_and_grad(lambda x: fnp.sum(x ** 2))(np.array([1.0, 2.0]))
    (array(5.), array([2., 4.]))
    """
    nums = _argnums_tuple(argnums)

    @api_boundary
    @functools.wraps(fun)
    def value_and_grad_fun(*args: Any, **kwargs: Any) -> Any:
        _check_differentiable_args("grad", args, nums)
        positions = tuple(n % len(args) for n in nums)
        partial_fun = _partial_argnums(fun, args, positions, kwargs)
        diff_args = tuple(args[p] for p in positions)
        flat, in_tree = tree_util.tree_flatten(diff_args)
        primals_out, out_tree, out_nodes, in_nodes, tape, aux = vjp_flat(partial_fun, flat, in_tree, has_aux)
        if out_tree != tree_util.tree_structure(0) or len(primals_out) != 1:
            raise TypeError(with_user_line(f"grad requires a function returning one scalar, got structure {out_tree}"))
        (value,) = primals_out
        aval = get_aval(value)
        if aval.shape != () or not is_differentiable(aval):
            raise TypeError(
                with_user_line(
                    f"grad requires a real scalar output, got {aval.str_short()}; use jacrev / vjp for "
                    "non-scalar outputs, or reduce the output (e.g. .sum())"
                )
            )
        cts = backward_pass(tape, out_nodes, [np.ones((), aval.dtype)], in_nodes)
        grads = [_zeros_like(p) if ct is None else ct for ct, p in zip(cts, flat, strict=True)]
        g = tree_util.tree_unflatten(in_tree, grads)
        g = g[0] if isinstance(argnums, int) else g
        return ((value, aux), g) if has_aux else (value, g)

    return value_and_grad_fun


def grad(fun: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False) -> Callable:
    """The gradient of a scalar function with respect to argument(s) ``argnums``.

    The gradient is computed by primitives like any other code: ``grad(grad(f))``,
    ``jit(grad(f))`` and ``make_ir(grad(f))`` all work.

    >>> import numpy as np, functrace as ft, functrace.numpy as fnp
    >>> ft.grad(lambda x: fnp.sum(fnp.sin(x)))(np.array([0.0, np.pi]))
    array([ 1., -1.])
    >>> ft.grad(ft.grad(lambda x: x ** 3))(2.0)
    array(12.)
    """
    value_and_grad_fun = value_and_grad(fun, argnums, has_aux)

    @api_boundary
    @functools.wraps(fun)
    def grad_fun(*args: Any, **kwargs: Any) -> Any:
        out = value_and_grad_fun(*args, **kwargs)
        if has_aux:
            (_, aux), g = out
            return g, aux
        return out[1]

    grad_fun.__name__ = f"grad({getattr(fun, '__name__', 'fun')})"
    return grad_fun


# --- linearize and Jacobians ----------------------------------------------------------------


@api_boundary
def linearize(fun: Callable, *primals: Any) -> tuple[Any, Callable]:
    """``(fun(*primals), jvp_fun)`` where ``jvp_fun(*tangents)`` evaluates the linear map.

    The primal computation runs once; the tangent computation is staged into a linear IR
    (``jvp_fun.ir``) that each call evaluates.

    >>> import numpy as np, functrace as ft, functrace.numpy as fnp
    >>> y, f_jvp = ft.linearize(fnp.sin, np.array([0.0, np.pi]))
    >>> f_jvp(np.array([1.0, 1.0]))
    array([ 1., -1.])
    """
    from functrace.core.staging import IRBuilder, StagingTrace

    flat, in_tree = tree_util.tree_flatten(primals)
    builder = IRBuilder([f"t{i}" for i in range(len(flat))])
    # The tangent staging is not the dynamic trace: primal operations run eagerly (or in
    # whatever encloses us) and only tangent operations are recorded.
    with new_main(StagingTrace, builder, description="linearize") as main:
        trace = StagingTrace(main)
        tangents = [builder.new_arg(trace, get_aval(p).strip_weak()) for p in flat]
        primals_out, tangents_out, out_tree = jvp_flat(fun, flat, tangents, in_tree)
        ir = builder.build([instantiate(t) for t in tangents_out], trace)
    ir.in_tree, ir.out_tree = in_tree, out_tree
    ir.typecheck()

    def jvp_fun(*tangents: Any) -> Any:
        return ir.eval(*tangents)

    jvp_fun.ir = ir  # type: ignore[attr-defined]
    return tree_util.tree_unflatten(out_tree, primals_out), jvp_fun


def _partial_argnums(fun: Callable, args: tuple, argnums: tuple[int, ...], kwargs: dict) -> Callable:
    def partial_fun(*diff_args):
        full = list(args)
        for pos, a in zip(argnums, diff_args, strict=True):
            full[pos] = a
        return fun(*full, **kwargs)

    return partial_fun


def _standard_basis(leaves: list) -> list[np.ndarray]:
    """The identity over the flattened leaves, split per leaf: leaf i gets shape (n, *shape_i)."""
    avals = [get_aval(x) for x in leaves]
    n = sum(a.size for a in avals)
    eye = np.eye(n, dtype=avals[0].dtype if avals else np.float64)
    out, offset = [], 0
    for a in avals:
        out.append(eye[:, offset : offset + a.size].reshape(n, *a.shape).astype(a.dtype))
        offset += a.size
    return out


def _block(stacked: Any, start: int, count: int, row_shape: tuple, col_shape: tuple, forward: bool) -> Any:
    """Rows ``start:start+count`` of a stacked Jacobian, shaped ``out.shape + in.shape``."""
    import functrace.numpy as fnp

    rows = stacked[start : start + count]
    if forward:  # rows are columns of the Jacobian: (in elements, *out_shape)
        return fnp.reshape(fnp.moveaxis(rows, 0, -1), (*row_shape, *col_shape))
    return fnp.reshape(rows, (*row_shape, *col_shape))


def _jacobian(fun: Callable, argnums: int | Sequence[int], forward: bool) -> Callable:
    """Dense Jacobians, vectorised: ``vmap`` of ``jvp`` over the input basis (forward) or
    of the backward pass over the output basis (reverse)."""
    from functrace.batching import vmap

    nums = _argnums_tuple(argnums)
    name = "jacfwd" if forward else "jacrev"

    @api_boundary
    @functools.wraps(fun)
    def jac_fun(*args: Any, **kwargs: Any) -> Any:
        _check_differentiable_args(name, args, nums)
        positions = tuple(n % len(args) for n in nums)
        partial_fun = _partial_argnums(fun, args, positions, kwargs)
        in_leaves, in_tree = tree_util.tree_flatten(tuple(args[p] for p in positions))
        if forward:
            out_leaves, out_tree = tree_util.tree_flatten(partial_fun(*tree_util.tree_unflatten(in_tree, in_leaves)))

            def column(*tangents):
                return [instantiate(t) for t in jvp_flat(partial_fun, in_leaves, list(tangents), in_tree)[1]]

            stacked = vmap(column)(*_standard_basis(in_leaves)) if in_leaves else []
            sizes = [get_aval(x).size for x in in_leaves]
        else:
            out_leaves, out_tree, out_nodes, in_nodes, tape, _ = vjp_flat(partial_fun, in_leaves, in_tree)

            def row(*cts):
                cts_in = backward_pass(tape, out_nodes, list(cts), in_nodes)
                return [_zeros_like(p) if c is None else c for c, p in zip(cts_in, in_leaves, strict=True)]

            stacked = vmap(row)(*_standard_basis(out_leaves)) if out_leaves else []
            sizes = [get_aval(x).size for x in out_leaves]
        starts = np.cumsum([0, *sizes])
        blocks = []
        for j, out_leaf in enumerate(out_leaves):
            row_blocks = []
            for i, in_leaf in enumerate(in_leaves):
                shapes = (get_aval(out_leaf).shape, get_aval(in_leaf).shape)
                if forward:
                    row_blocks.append(_block(stacked[j], int(starts[i]), sizes[i], *shapes, forward=True))
                else:
                    row_blocks.append(_block(stacked[i], int(starts[j]), sizes[j], *shapes, forward=False))
            blocks.append(tree_util.tree_unflatten(in_tree, row_blocks))
        if isinstance(argnums, int):
            blocks = [b[0] for b in blocks]
        return tree_util.tree_unflatten(out_tree, blocks)

    jac_fun.__name__ = f"{name}({getattr(fun, '__name__', 'fun')})"
    return jac_fun


def jacfwd(fun: Callable, argnums: int | Sequence[int] = 0) -> Callable:
    """The Jacobian by forward mode (``vmap`` of ``jvp`` over the input basis); shape
    out.shape + in.shape.

    >>> import numpy as np, functrace as ft, functrace.numpy as fnp
    >>> ft.jacfwd(lambda x: x * x)(np.array([1.0, 2.0]))
    array([[2., 0.],
           [0., 4.]])
    """
    return _jacobian(fun, argnums, forward=True)


def jacrev(fun: Callable, argnums: int | Sequence[int] = 0) -> Callable:
    """The Jacobian by reverse mode (``vmap`` of the backward pass over the output basis);
    shape out.shape + in.shape.

    >>> import numpy as np, functrace as ft, functrace.numpy as fnp
    >>> ft.jacrev(lambda x: fnp.sum(x) * x)(np.array([1.0, 2.0]))
    array([[4., 1.],
           [2., 5.]])
    """
    return _jacobian(fun, argnums, forward=False)


def hessian(fun: Callable, argnums: int | Sequence[int] = 0) -> Callable:
    """The Hessian of a scalar function: ``jacfwd(jacrev(fun))``.

    >>> import numpy as np, functrace as ft, functrace.numpy as fnp
    >>> ft.hessian(lambda x: fnp.sum(x ** 3))(np.array([1.0, 2.0]))
    array([[ 6.,  0.],
           [ 0., 12.]])
    """
    return jacfwd(jacrev(fun, argnums), argnums)
