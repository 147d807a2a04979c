"""Derivative rules: symbolic zeros and the rule families primitives register with.

Two rule kinds per differentiable primitive, each with one signature:

- ``jvp(primals, tangents, **params) -> (primals_out, tangents_out)``; a tangent may be
  a symbolic ``Zero``.
- ``vjp(cts_out, primals_in, primals_out, **params) -> cts_in``; a cotangent may be
  ``None`` (zero). Every operation in a rule goes through ``bind``, so derivatives are
  themselves traced: they can be staged, jitted, vmapped and differentiated again.

The families below write both rules from one description, as JAX's ``defjvp`` and
``deflinear`` do.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from functrace.core.abstract import ShapedArray
from functrace.core.primitive import Primitive, jvp_rules, vjp_rules
from functrace.core.trace import get_aval

_needed = threading.local()


def needed_cotangents() -> tuple[bool, ...] | None:
    """Which inputs of the primitive being differentiated need a cotangent (the adjoint
    pass sets this); rules may skip the others. ``None`` means all of them."""
    return getattr(_needed, "mask", None)


def set_needed_cotangents(mask: tuple[bool, ...] | None) -> tuple[bool, ...] | None:
    previous = getattr(_needed, "mask", None)
    _needed.mask = mask
    return previous


def _skip(i: int, mask: tuple[bool, ...] | None) -> bool:
    return mask is not None and not mask[i]


class Zero:
    """A tangent known to be zero, carrying only its type."""

    __slots__ = ("aval",)

    def __init__(self, aval: ShapedArray):
        self.aval = aval

    def __repr__(self) -> str:
        return f"Zero({self.aval.str_short()})"


def is_differentiable(aval: ShapedArray) -> bool:
    return aval.dtype.kind == "f"


def zeros(aval: ShapedArray) -> Any:
    """A zero array of ``aval``'s type, as one broadcast of a scalar (one equation when staged)."""
    from functrace.lax.structural import broadcast_in_dim_p

    scalar = np.zeros((), aval.dtype)
    if aval.shape == ():
        return scalar
    return broadcast_in_dim_p.bind(scalar, shape=aval.shape, broadcast_dimensions=())


def instantiate(t: Any) -> Any:
    return zeros(t.aval) if type(t) is Zero else t


def add_tangents(a: Any, b: Any) -> Any:
    """Sum of two tangents or cotangents, either of which may be a symbolic zero."""
    from functrace.lax.elementwise import add_p

    if a is None or type(a) is Zero:
        return b
    if b is None or type(b) is Zero:
        return a
    return add_p.bind(a, b)


def broadcast_to_shape(x: Any, shape: tuple[int, ...]) -> Any:
    """Broadcast a rank-0 value to ``shape`` (elementwise primitives allow rank-0 operands)."""
    from functrace.lax.structural import broadcast_in_dim_p

    if get_aval(x).shape == shape:
        return x
    return broadcast_in_dim_p.bind(x, shape=shape, broadcast_dimensions=())


def unbroadcast(ct: Any, aval: ShapedArray) -> Any:
    """The cotangent of a rank-0 operand that was broadcast: sum it back to a scalar."""
    from functrace.lax.reductions import reduce_sum_p

    ct_shape = get_aval(ct).shape
    if ct_shape == aval.shape:
        return ct
    return reduce_sum_p.bind(ct, axes=tuple(range(len(ct_shape))))


Term = Callable[..., Any] | None


def defelementwise(prim: Primitive, *terms: Term) -> None:
    """Register jvp and vjp for an elementwise primitive.

    ``terms[i](g, ans, *primals, **params)`` multiplies ``g`` by the partial derivative
    d ans / d primals[i] (None: not differentiable in that input). An elementwise
    Jacobian is diagonal, so the same term serves forward mode (``g`` a tangent) and
    reverse mode (``g`` a cotangent). Rank-0 operands broadcast, so the rules do too.
    """

    def jvp(primals: list, tangents: list, **params) -> tuple[list, list]:
        ans = prim.bind(*primals, **params)
        aval = get_aval(ans)
        out = None
        for term, t in zip(terms, tangents, strict=True):
            if term is not None and type(t) is not Zero:
                out = add_tangents(out, term(t, ans, *primals, **params))
        if out is None or not is_differentiable(aval):
            return [ans], [Zero(aval)]
        return [ans], [broadcast_to_shape(out, aval.shape)]

    def vjp(cts: list, primals: list, outs: list, **params) -> list:
        (ct,) = cts
        mask = needed_cotangents()
        result = []
        for i, (term, x) in enumerate(zip(terms, primals, strict=True)):
            aval = get_aval(x)
            if term is None or not is_differentiable(aval) or _skip(i, mask):
                result.append(None)
            else:
                result.append(unbroadcast(term(ct, outs[0], *primals, **params), aval))
        return result

    jvp_rules[prim] = jvp
    vjp_rules[prim] = vjp


def deflinear(prim: Primitive, transpose: Callable[..., Sequence[Any]]) -> None:
    """Register jvp and vjp for a primitive linear in all its operands.

    ``transpose(ct, *avals_in, **params) -> cts_in`` maps an output cotangent to the
    input cotangents (None for an input that gets none).
    """

    def jvp(primals: list, tangents: list, **params) -> tuple[list, list]:
        outs = prim.bind(*primals, **params)
        outs = outs if prim.multiple_results else [outs]
        if all(type(t) is Zero for t in tangents):
            return outs, [Zero(get_aval(o)) for o in outs]
        t_outs = prim.bind(*map(instantiate, tangents), **params)
        return outs, list(t_outs) if prim.multiple_results else [t_outs]

    def vjp(cts: list, primals: list, outs: list, **params) -> list:
        ct = cts if prim.multiple_results else cts[0]
        return list(transpose(ct, *[get_aval(p) for p in primals], **params))

    jvp_rules[prim] = jvp
    vjp_rules[prim] = vjp


def defbilinear(prim: Primitive, lhs_transpose: Callable, rhs_transpose: Callable) -> None:
    """Register jvp and vjp for a primitive linear in each of two operands (dot, conv, mul).

    ``lhs_transpose(ct, lhs_aval, rhs, **params)`` is the cotangent of the left operand
    given the right one; ``rhs_transpose(ct, lhs, rhs_aval, **params)`` likewise.
    """

    def jvp(primals: list, tangents: list, **params) -> tuple[list, list]:
        lhs, rhs = primals
        t_lhs, t_rhs = tangents
        ans = prim.bind(lhs, rhs, **params)
        out = None
        if type(t_lhs) is not Zero:
            out = prim.bind(t_lhs, rhs, **params)
        if type(t_rhs) is not Zero:
            out = add_tangents(out, prim.bind(lhs, t_rhs, **params))
        return [ans], [Zero(get_aval(ans)) if out is None else out]

    def vjp(cts: list, primals: list, outs: list, **params) -> list:
        (ct,) = cts
        lhs, rhs = primals
        mask = needed_cotangents()
        ct_lhs = ct_rhs = None
        if is_differentiable(get_aval(lhs)) and not _skip(0, mask):
            ct_lhs = lhs_transpose(ct, get_aval(lhs), rhs, **params)
        if is_differentiable(get_aval(rhs)) and not _skip(1, mask):
            ct_rhs = rhs_transpose(ct, lhs, get_aval(rhs), **params)
        return [ct_lhs, ct_rhs]

    jvp_rules[prim] = jvp
    vjp_rules[prim] = vjp
