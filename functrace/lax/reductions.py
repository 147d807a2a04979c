"""Reductions over axes: sum, max, min, prod, argmax/argmin, cumulative sums."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from functrace.core.abstract import ShapedArray
from functrace.core.primitive import Primitive
from functrace.core.source_info import with_user_line
from functrace.lax.elementwise import NUMERIC, _check_kinds


def _check_axes(name: str, x: ShapedArray, axes: tuple[int, ...]) -> None:
    if len(set(axes)) != len(axes) or any(not 0 <= a < x.ndim for a in axes):
        raise TypeError(with_user_line(f"{name}: axes {axes} are invalid for shape {x.shape}"))


def reducer(name: str, impl: Callable, kinds: str = NUMERIC) -> Primitive:
    """A reduction over ``axes`` (normalised, non-negative) dropping those axes."""
    prim = Primitive(name)

    def abstract_eval(x: ShapedArray, *, axes: tuple[int, ...]) -> list[ShapedArray]:
        _check_kinds(name, x, kinds)
        _check_axes(name, x, axes)
        shape = tuple(d for i, d in enumerate(x.shape) if i not in axes)
        return [ShapedArray(shape, x.dtype, x.weak_type)]

    prim.def_impl(lambda x, *, axes: [np.asarray(impl(x, axis=axes), dtype=np.result_type(x))])
    prim.def_abstract_eval(abstract_eval)
    return prim


reduce_sum_p = reducer("reduce_sum", np.sum)


# --- public wrappers (functrace.lax) --------------------------------------------------


def reduce_sum(operand, axes):
    """Sum over ``axes``.

    >>> import numpy as np
    >>> from functrace import lax
    >>> lax.reduce_sum(np.ones((2, 3)), (1,))
    array([3., 3.])
    """
    return reduce_sum_p.bind(operand, axes=tuple(int(a) for a in axes))


__all__ = ["reduce_sum"]
