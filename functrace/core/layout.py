"""Layout passes: ``transpose`` equations absorbed by the products and reductions around
them, run by ``jit`` before the backend (every backend).

A transpose that a backend materializes is a full read and write of its array, with one
side strided. Most transposes in traced programs sit next to a ``dot_general`` or a
reduction that can take the permutation in its own parameters instead:

- ``absorb_transposes`` rewrites *consumers*: ``dot_general(a, transpose(b))`` contracts
  ``b``'s dims directly, ``reduce_sum(transpose(x))`` reduces ``x``'s. The cotangent of a
  ``swapaxes`` in reverse mode is such a transpose.
- It also sinks a transpose into its *producer* when that producer is computed only for
  it: ``transpose(x @ w + b)`` (``swapaxes(inputs @ w_x + b, 0, 1)`` before a scan)
  becomes ``transpose(x) @ w + b'``, a transpose of the small operand and a broadcast in
  the new order.

Each rewrite keeps every value's dtype and result; only the order in which a product
sums its terms may change (float rounding).

>>> import numpy as np, functrace as ft, functrace.numpy as fnp
>>> f = lambda x, w: fnp.sum(fnp.swapaxes(x @ w, 0, 1), axis=0)
>>> fn = absorb_transposes(ft.make_ir(f)(np.ones((4, 5, 3)), np.ones((3, 6))))
>>> [e.primitive.name for e in fn.eqns]
['transpose', 'dot_general', 'reduce_sum']
"""

from __future__ import annotations

import math
from typing import Any

from functrace.core.abstract import ShapedArray
from functrace.core.ir import Eqn, Function, Literal, Var
from functrace.core.passes import eliminate_dead_code, map_bodies, use_counts

REDUCTIONS = frozenset(["reduce_sum", "reduce_max", "reduce_min", "reduce_prod"])
ELEMENTWISE_SINKS = frozenset(["add", "sub", "mul", "neg", "div", "max", "min", "convert_element_type"])


def absorb_transposes(fn: Function) -> Function:
    """``fn`` with transposes folded into neighbouring products and reductions (above),
    in loop bodies and branches too."""
    uses = use_counts(fn, output_uses=2)  # an output's producer is never rewritten away
    producer: dict[Var, Eqn] = {}
    env: dict[Var, Any] = {}
    eqns: list[Eqn] = []
    for eqn in fn.eqns:
        inputs = [env.get(a, a) if isinstance(a, Var) else a for a in eqn.inputs]
        eqn = Eqn(eqn.primitive, inputs, map_bodies(eqn.params, absorb_transposes), eqn.outvars, eqn.source)
        new = _absorb(eqn, producer)
        if new is None and eqn.primitive.name == "transpose":
            sunk = _Sink(producer, uses).transposed(inputs[0], eqn.params["permutation"])
            if sunk is not None and sunk[0]:
                new, result = sunk
                if new and new[-1].outvars == [result]:
                    last = new[-1]
                    new[-1] = Eqn(last.primitive, last.inputs, last.params, eqn.outvars, last.source)
                else:
                    env[eqn.outvars[0]] = result
        for e in new or [eqn]:
            producer.update((v, e) for v in e.outvars)
        eqns.extend(new or [eqn])
    outvars = [env.get(a, a) if isinstance(a, Var) else a for a in fn.outvars]
    out = Function(fn.invars, eqns, outvars, fn.constvars, fn.consts, fn.in_tree, fn.out_tree, fn.arg_names)
    return eliminate_dead_code(out)


def _transpose_of(a: Any, producer: dict) -> Eqn | None:
    e = producer.get(a) if isinstance(a, Var) else None
    return e if e is not None and e.primitive.name == "transpose" else None


def _absorb(eqn: Eqn, producer: dict) -> list[Eqn] | None:
    """A product or reduction that reads a transpose, reading the transpose's operand instead."""
    name = eqn.primitive.name
    if name == "dot_general":
        (lc, rc), (lb, rb) = eqn.params["dimension_numbers"]
        inputs = list(eqn.inputs)
        dims = [[lc, lb], [rc, rb]]
        changed = False
        for side in (0, 1):
            t = _transpose_of(inputs[side], producer)
            if t is None:
                continue
            perm = t.params["permutation"]
            contract, batch = dims[side]
            ndim = len(perm)
            free = [d for d in range(ndim) if d not in contract and d not in batch]
            mapped_free = [perm[d] for d in free]
            if mapped_free != sorted(mapped_free):
                continue  # the free dims would come out in another order
            dims[side] = [tuple(perm[d] for d in contract), tuple(perm[d] for d in batch)]
            inputs[side] = t.inputs[0]
            changed = True
        if not changed:
            return None
        (lc, lb), (rc, rb) = dims
        params = dict(eqn.params, dimension_numbers=((lc, rc), (lb, rb)))
        return [Eqn(eqn.primitive, inputs, params, eqn.outvars, eqn.source)]
    if name in REDUCTIONS:
        t = _transpose_of(eqn.inputs[0], producer)
        if t is None:
            return None
        perm = t.params["permutation"]
        axes = eqn.params["axes"]
        kept = [perm[d] for d in range(len(perm)) if d not in axes]
        if kept != sorted(kept):
            return None
        params = dict(eqn.params, axes=tuple(sorted(perm[a] for a in axes)))
        return [Eqn(eqn.primitive, [t.inputs[0], *eqn.inputs[1:]], params, eqn.outvars, eqn.source)]
    return None


class _Sink:
    """Builds ``transpose(atom, perm)`` by transposing what ``atom`` is computed from."""

    def __init__(self, producer: dict, uses: dict):
        self.producer = producer
        self.uses = uses
        self.eqns: list[Eqn] = []
        self.gain = False  # a product or broadcast absorbed the permutation

    def transposed(self, atom: Any, perm: tuple[int, ...]) -> tuple[list[Eqn], Any] | None:
        result = self._transposed(atom, tuple(perm), sink=True)
        if result is None or not self.gain:
            return None
        return self.eqns, result

    def _emit(self, prim, inputs, params, aval: ShapedArray, source) -> Var:
        v = Var(aval)
        self.eqns.append(Eqn(prim, inputs, params, [v], source))
        return v

    def _transposed(self, atom: Any, perm: tuple[int, ...], sink: bool) -> Any:
        from functrace.lax.structural import broadcast_in_dim_p, transpose_p

        if isinstance(atom, Literal) or not atom.aval.shape:
            return atom
        if perm == tuple(range(len(perm))):
            return atom
        aval = atom.aval
        shape = tuple(aval.shape[p] for p in perm)
        result = ShapedArray(shape, aval.dtype, aval.weak_type)
        e = self.producer.get(atom)
        name = e.primitive.name if e is not None else None
        single = self.uses.get(atom, 0) == 1
        if name == "broadcast_in_dim":
            inverse = {p: k for k, p in enumerate(perm)}
            dims = [inverse[d] for d in e.params["broadcast_dimensions"]]
            if dims == sorted(dims):
                self.gain = True
                params = {"shape": shape, "broadcast_dimensions": tuple(dims)}
                return self._emit(broadcast_in_dim_p, [e.inputs[0]], params, result, e.source)
        if name == "dot_general" and single and sink:
            out = self._dot(e, perm)
            if out is not None:
                return out
        if name in ELEMENTWISE_SINKS and single and sink and len(e.outvars) == 1:
            mark = len(self.eqns)
            args = []
            for a in e.inputs:
                t = self._transposed(a, perm, sink=True)
                if t is None:
                    del self.eqns[mark:]
                    break
                args.append(t)
            else:
                return self._emit(e.primitive, args, e.params, result, e.source)
        if name == "transpose":
            inner = e.params["permutation"]
            composed = tuple(inner[p] for p in perm)
            return self._transposed(e.inputs[0], composed, sink=False)
        return self._emit(transpose_p, [atom], {"permutation": perm}, result, e.source if e else None)

    def _dot(self, e: Eqn, perm: tuple[int, ...]) -> Var | None:
        """``transpose(dot_general(a, b), perm)`` as ``dot_general(transpose(a), b)`` (or of a
        transposed ``b``) when ``perm`` keeps the batch dims and reorders the free dims of
        one operand among themselves, and that operand is no bigger than the product."""
        from functrace.lax.linalg import dot_general_p

        (lc, rc), (lb, rb) = e.params["dimension_numbers"]
        lhs, rhs = e.inputs
        if not isinstance(lhs, Var) or not isinstance(rhs, Var):
            return None
        nb = len(lb)
        lf = [d for d in range(len(lhs.aval.shape)) if d not in lc and d not in lb]
        rf = [d for d in range(len(rhs.aval.shape)) if d not in rc and d not in rb]
        nl = len(lf)
        if perm[:nb] != tuple(range(nb)):
            return None
        lpart, rpart = perm[nb : nb + nl], perm[nb + nl :]
        out = e.outvars[0]
        size = math.prod(out.aval.shape)
        if sorted(lpart) == list(range(nb, nb + nl)) and rpart == tuple(range(nb + nl, len(perm))):
            side, operand, free, positions = 0, lhs, lf, lpart
        elif sorted(rpart) == list(range(nb + nl, len(perm))) and lpart == tuple(range(nb, nb + nl)):
            side, operand, free, positions = 1, rhs, rf, rpart
            positions = tuple(p - nl for p in positions)
        else:
            return None
        if math.prod(operand.aval.shape) > size:
            return None
        # The operand's free dims in the order the transposed output wants them.
        new_free = [free[p - nb] for p in positions]
        # Permute the operand so that its free dims (in their slots) come in that order.
        slots = sorted(free)
        order = list(range(len(operand.aval.shape)))
        for slot, d in zip(slots, new_free, strict=True):
            order[slot] = d
        transposed = self._transposed(operand, tuple(order), sink=False)
        self.gain = True
        inputs = [transposed, rhs] if side == 0 else [lhs, transposed]
        result = ShapedArray(tuple(out.aval.shape[p] for p in perm), out.aval.dtype, out.aval.weak_type)
        return self._emit(dot_general_p, inputs, e.params, result, e.source)
