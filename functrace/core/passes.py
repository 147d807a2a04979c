"""Passes over the IR shared by every backend. Each is a small read/write
interpreter that returns a new ``Function`` (the input is not modified).

- ``eliminate_dead_code``: drop equations whose results nothing uses (every
  primitive is pure, so this is always valid). Staging runs it on every IR it builds.
- ``simplify``: one forward walk that folds scalar constant arithmetic into literals,
  removes algebraic identities (``x * 1``, ``x + 0``, a reshape or conversion to the
  same type, reshape of a reshape), turns a sum of zero pads that tile an axis (the
  cotangent of a split) into one ``concatenate``, turns a ``dot_general`` whose contraction has one
  element (an outer product, as in per-example gradients) into a broadcast multiply that
  fuses, and merges equations that compute the same thing (common subexpressions); then
  dead code goes. ``jit`` runs it before the backend.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from functrace.core.ir import Eqn, Function, Literal, Var


def eliminate_dead_code(fn: Function) -> Function:
    """``fn`` without equations whose outputs are unused, and without unused constants.

    >>> import numpy as np, functrace as ft, functrace.numpy as fnp
    >>> def f(x):
    ...     unused = fnp.exp(x)
    ...     return x * 2.0
    >>> [e.primitive.name for e in ft.make_ir(f)(np.ones(2)).eqns]
    ['mul']
    """
    live: set[Var] = {a for a in fn.outvars if isinstance(a, Var)}
    kept = []
    for eqn in reversed(fn.eqns):
        if any(v in live for v in eqn.outvars):
            kept.append(eqn)
            live.update(a for a in eqn.inputs if isinstance(a, Var))
    if len(kept) == len(fn.eqns) and all(v in live for v in fn.constvars):
        return fn
    pairs = [(v, c) for v, c in zip(fn.constvars, fn.consts, strict=True) if v in live]
    return Function(
        fn.invars,
        list(reversed(kept)),
        fn.outvars,
        [v for v, _ in pairs],
        [c for _, c in pairs],
        fn.in_tree,
        fn.out_tree,
        fn.arg_names,
    )


# Primitives and the literal operand values that leave the other operand unchanged.
_IDENTITIES = {"mul": (1, (0, 1)), "add": (0, (0, 1)), "sub": (0, (1,)), "div": (1, (1,)), "or": (0, (0, 1))}


def _literal_value(atom: Any) -> Any:
    return np.asarray(atom.val).item() if isinstance(atom, Literal) else None


def _identity_operand(eqn: Eqn) -> Any:
    """The input that ``eqn`` returns unchanged, if it is an algebraic identity."""
    if len(eqn.outvars) != 1:
        return None
    out = eqn.outvars[0].aval
    name = eqn.primitive.name
    if name in _IDENTITIES and len(eqn.inputs) == 2:
        neutral, positions = _IDENTITIES[name]
        for pos in positions:
            other = eqn.inputs[1 - pos]
            if _literal_value(eqn.inputs[pos]) == neutral and other.aval.same_type(out):
                return other
    same_type = len(eqn.inputs) == 1 and eqn.inputs[0].aval.same_type(out)
    if same_type and name in ("reshape", "convert_element_type", "broadcast_in_dim"):
        return eqn.inputs[0]
    if same_type and name == "transpose" and eqn.params["permutation"] == tuple(range(out.ndim)):
        return eqn.inputs[0]
    return None


def _fold(eqn: Eqn) -> Literal | None:
    """A scalar equation on literals only, evaluated now."""
    if len(eqn.outvars) != 1 or eqn.outvars[0].aval.shape != () or not eqn.inputs:
        return None
    if not all(isinstance(a, Literal) for a in eqn.inputs) or eqn.primitive.multiple_results:
        return None
    with np.errstate(all="ignore"):
        (value,) = eqn.primitive.impl(*[a.val for a in eqn.inputs], **eqn.params)
    aval = eqn.outvars[0].aval
    return Literal(np.asarray(value, dtype=aval.dtype)[()], aval)


def _key(eqn: Eqn, inputs: list) -> Any:
    atoms = tuple(
        ("lit", _literal_value(a), a.aval.dtype) if isinstance(a, Literal) else ("var", id(a)) for a in inputs
    )
    try:
        params = tuple(sorted(eqn.params.items()))
        hash(params)
    except TypeError:
        return None
    return (eqn.primitive, params, atoms)


def _outer_product(eqn: Eqn) -> list[Eqn] | None:
    """``dot_general`` contracting only size-1 dims, as reshape / transpose /
    broadcast_in_dim / mul equations (elementwise: the backends fuse them), or None."""
    from functrace.core.abstract import ShapedArray
    from functrace.lax.elementwise import mul_p
    from functrace.lax.structural import broadcast_in_dim_p, reshape_p, transpose_p

    if eqn.primitive.name != "dot_general" or not all(isinstance(a, Var) for a in eqn.inputs):
        return None
    (lc, rc), (lb, rb) = eqn.params["dimension_numbers"]
    lhs, rhs = eqn.inputs
    (out,) = eqn.outvars
    if any(lhs.aval.shape[d] != 1 for d in lc) or not (lhs.aval.dtype == rhs.aval.dtype == out.aval.dtype):
        return None
    nb = len(lb)
    lfree = [d for d in range(lhs.aval.ndim) if d not in lc and d not in lb]
    rfree = [d for d in range(rhs.aval.ndim) if d not in rc and d not in rb]
    eqns: list[Eqn] = []

    def place(x: Var, batch: tuple, free: list, offset: int) -> Var:
        # Output position of each kept operand dim; drop the contracted ones; sort by position.
        target = {d: k for k, d in enumerate(batch)} | {d: offset + k for k, d in enumerate(free)}
        kept = sorted(target, key=target.get)
        if kept != sorted(target):
            perm = tuple(kept + [d for d in range(x.aval.ndim) if d not in target])
            t = Var(ShapedArray(tuple(x.aval.shape[d] for d in perm), x.aval.dtype, x.aval.weak_type))
            eqns.append(Eqn(transpose_p, [x], {"permutation": perm}, [t], eqn.source))
            x, target = t, {i: target[d] for i, d in enumerate(kept)}
            kept = list(range(len(kept)))
        shape = tuple(x.aval.shape[d] for d in kept)
        if shape != x.aval.shape:
            r = Var(ShapedArray(shape, x.aval.dtype, x.aval.weak_type))
            eqns.append(Eqn(reshape_p, [x], {"new_sizes": shape}, [r], eqn.source))
            x = r
        b = Var(ShapedArray(out.aval.shape, x.aval.dtype, x.aval.weak_type))
        dims = tuple(target[d] for d in kept)
        eqns.append(
            Eqn(broadcast_in_dim_p, [x], {"shape": out.aval.shape, "broadcast_dimensions": dims}, [b], eqn.source)
        )
        return b

    a = place(lhs, lb, lfree, nb)
    b = place(rhs, rb, rfree, nb + len(lfree))
    eqns.append(Eqn(mul_p, [a, b], {}, [out], eqn.source))
    return eqns


def _split_cotangent(eqn: Eqn, producer: dict) -> Eqn | None:
    """A sum of zero-padded pieces that tile one axis (reverse mode's cotangent of a split:
    ``pad(a) + pad(b) + ...``) as one ``concatenate`` of the pieces, or None."""
    from functrace.lax.structural import concatenate_p

    if eqn.primitive.name != "add":
        return None
    leaves, todo = [], list(eqn.inputs)
    while todo:
        a = todo.pop()
        e = producer.get(a) if isinstance(a, Var) else None
        if e is None:
            return None
        if e.primitive.name == "add":
            todo.extend(e.inputs)
        elif e.primitive.name == "pad" and _literal_value(e.inputs[1]) == 0:
            leaves.append(e)
        else:
            return None
    if len(leaves) < 2:
        return None
    axes = set()
    pieces = []
    for pad in leaves:
        padded = [d for d, c in enumerate(pad.params["padding_config"]) if tuple(c) != (0, 0, 0)]
        if len(padded) != 1:
            return None
        (axis,) = padded
        lo, hi, interior = pad.params["padding_config"][axis]
        if interior or lo < 0 or hi < 0:
            return None
        axes.add(axis)
        pieces.append((lo, pad.inputs[0]))
    if len(axes) != 1:
        return None
    (axis,) = axes
    pieces.sort(key=lambda piece: piece[0])
    at = 0
    for lo, x in pieces:
        if lo != at:
            return None  # a gap or an overlap: not a tiling
        at += x.aval.shape[axis]
    if at != eqn.outvars[0].aval.shape[axis]:
        return None
    return Eqn(concatenate_p, [x for _, x in pieces], {"dimension": axis}, eqn.outvars, eqn.source)


def use_counts(fn: Function, output_uses: int = 1) -> dict[Var, int]:
    """How many times each var of ``fn`` is read by its equations, plus ``output_uses`` for
    each time it is an output."""
    count: dict[Var, int] = {}
    for e in fn.eqns:
        for a in e.inputs:
            if isinstance(a, Var):
                count[a] = count.get(a, 0) + 1
    for a in fn.outvars:
        if isinstance(a, Var):
            count[a] = count.get(a, 0) + output_uses
    return count


def map_bodies(params: dict, transform: Callable[[Function], Function]) -> dict:
    """``params`` with ``transform`` applied to the functions in them (loop bodies, branches)."""

    def one(value: Any) -> Any:
        if isinstance(value, Function):
            return transform(value)
        if isinstance(value, tuple | list) and any(isinstance(v, Function) for v in value):
            return type(value)(one(v) for v in value)
        return value

    if not any(isinstance(v, Function | tuple | list) for v in params.values()):
        return params
    return {k: one(v) for k, v in params.items()}


def simplify(fn: Function) -> Function:
    """Constant folding, algebraic identities and common subexpressions, then DCE.

    >>> import numpy as np, functrace as ft, functrace.numpy as fnp
    >>> f = ft.jit(lambda x: (x * 1.0 + fnp.sin(x)) * (fnp.sin(x) + 0.0), backend="interpret")
    >>> print(f.lower(np.ones(2)).as_text())
    { lambda ; a:f64[2]. let
        b:f64[2] = sin a
        c:f64[2] = add a b
        d:f64[2] = mul c b
      in (d,) }
    """
    env: dict[Var, Any] = {}

    def read(a: Any) -> Any:
        return env.get(a, a) if isinstance(a, Var) else a

    seen: dict[Any, list] = {}
    producer: dict[Var, Eqn] = {}
    eqns = []
    for eqn in fn.eqns:
        inputs = [read(a) for a in eqn.inputs]
        params = map_bodies(eqn.params, simplify)
        if (
            eqn.primitive.name == "reshape"
            and inputs[0] in producer
            and producer[inputs[0]].primitive.name == "reshape"
        ):
            inputs = [producer[inputs[0]].inputs[0]]  # reshape of a reshape: one reshape
        new = Eqn(eqn.primitive, inputs, params, eqn.outvars, eqn.source)
        expanded = _outer_product(new)
        if expanded is not None:
            producer.update((v, e) for e in expanded for v in e.outvars)
            eqns.extend(expanded)
            continue
        tiled = _split_cotangent(new, producer)
        if tiled is not None:
            new = tiled
        replacement = _fold(new) or _identity_operand(new)
        if replacement is not None:
            env[eqn.outvars[0]] = replacement
            continue
        key = _key(new, new.inputs)
        if key is not None and key in seen:
            for old, var in zip(seen[key], eqn.outvars, strict=True):
                env[var] = old
            continue
        if key is not None:
            seen[key] = eqn.outvars
        producer.update((v, new) for v in new.outvars)
        eqns.append(new)
    outvars = [read(a) for a in fn.outvars]
    out = Function(fn.invars, eqns, outvars, fn.constvars, fn.consts, fn.in_tree, fn.out_tree, fn.arg_names)
    return eliminate_dead_code(out)
