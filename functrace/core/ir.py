"""The IR: typed SSA over arrays.

A ``Function`` has input variables, equations ``outs = prim[params](ins)`` and
output atoms. Captured arrays are *constvars* whose values travel with the
function. Higher-order primitives carry a ``Function`` as a parameter (hashed by
identity, so parameters stay hashable).

>>> import numpy as np, functrace as ft, functrace.numpy as fnp
>>> f = ft.make_ir(lambda x: fnp.tanh(x * x))(np.ones(3, np.float32))
>>> print(f)
{ lambda ; a:f32[3]. let
    b:f32[3] = mul a a
    c:f32[3] = tanh b
  in (c,) }
>>> f.eval(np.zeros(3, np.float32))
array([0., 0., 0.], dtype=float32)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from functrace.core.abstract import ShapedArray
from functrace.core.primitive import Primitive


class Var:
    """A value defined once: a function input, a constant, or an equation output."""

    __slots__ = ("aval",)

    def __init__(self, aval: ShapedArray):
        self.aval = aval

    def __repr__(self) -> str:
        return f"Var({self.aval.str_short()})"


class Literal:
    """A scalar constant written inline in an equation."""

    __slots__ = ("val", "aval")

    def __init__(self, val: Any, aval: ShapedArray):
        self.val = val
        self.aval = aval

    def __repr__(self) -> str:
        return f"Literal({self.val!r}:{self.aval.str_short()})"


Atom = Var | Literal


class Eqn:
    """``outvars = primitive[params](inputs)``; ``source`` is the user's line."""

    __slots__ = ("primitive", "inputs", "params", "outvars", "source")

    def __init__(
        self,
        primitive: Primitive,
        inputs: Sequence[Atom],
        params: dict[str, Any],
        outvars: Sequence[Var],
        source: str | None = None,
    ):
        self.primitive = primitive
        self.inputs = list(inputs)
        self.params = params
        self.outvars = list(outvars)
        self.source = source

    def __repr__(self) -> str:
        return f"Eqn({self.primitive.name}, {len(self.inputs)} in, {len(self.outvars)} out)"


class Function:
    """A closed IR function.

    ``constvars`` are bound to ``consts`` (arrays captured while tracing);
    ``invars`` are the flat inputs. When made by ``make_ir`` it also remembers the
    pytree structure of the arguments and results, and ``eval`` takes and returns
    pytrees like the traced Python function did.
    """

    __slots__ = ("__weakref__", "arg_names", "consts", "constvars", "eqns", "in_tree", "invars", "out_tree", "outvars")

    def __init__(
        self,
        invars: Sequence[Var],
        eqns: Sequence[Eqn],
        outvars: Sequence[Atom],
        constvars: Sequence[Var] = (),
        consts: Sequence[Any] = (),
        in_tree=None,
        out_tree=None,
        arg_names: Sequence[str] = (),
    ):
        self.constvars = list(constvars)
        self.consts = list(consts)
        self.invars = list(invars)
        self.eqns = list(eqns)
        self.outvars = list(outvars)
        self.in_tree = in_tree
        self.out_tree = out_tree
        self.arg_names = tuple(arg_names)

    @property
    def in_avals(self) -> list[ShapedArray]:
        return [v.aval for v in self.invars]

    @property
    def out_avals(self) -> list[ShapedArray]:
        return [v.aval for v in self.outvars]

    def __str__(self) -> str:
        from functrace.core.pretty import pp_function

        return pp_function(self)

    def __repr__(self) -> str:
        return str(self)

    def to_dot(self) -> str:
        """Graphviz DOT text of the computation graph (render with ``dot -Tpng``)."""
        from functrace.core.dot import to_dot

        return to_dot(self)

    def typecheck(self) -> None:
        """Raise ``IRTypeError`` if the IR is malformed."""
        from functrace.core.typecheck import typecheck

        typecheck(self)

    def eval(self, *args: Any) -> Any:
        """Evaluate on arguments shaped like those it was traced with."""
        from functrace.core.eval import eval_function

        return eval_function(self, *args)

    def eval_flat(self, *flat_args: Any) -> list[Any]:
        """Evaluate on the flat list of inputs; returns the flat list of outputs."""
        from functrace.core.eval import eval_ir

        return eval_ir(self, flat_args)


def sub_functions(fn: Function) -> Iterator[Function]:
    """The functions held in ``fn``'s equation parameters (control-flow bodies, custom-rule
    and checkpoint calls), recursively, outermost first."""
    for eqn in fn.eqns:
        for value in eqn.params.values():
            for sub in value if isinstance(value, tuple | list) else (value,):
                if isinstance(sub, Function):
                    yield sub
                    yield from sub_functions(sub)


def is_scalar_literal_value(x: Any) -> bool:
    return isinstance(x, int | float | bool | np.generic) or (isinstance(x, np.ndarray) and x.ndim == 0)
