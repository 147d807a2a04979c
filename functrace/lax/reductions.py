"""Reductions over axes: sum, max, min, prod, argmax/argmin, cumulative sums.

Reductions take normalised (non-negative, distinct) axes and drop them. An empty
reduction gives the reduction's identity (0, 1, the lowest or the highest value),
as in XLA; ``functrace.numpy`` raises where NumPy does (``max`` of nothing).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from functrace.core import dtypes
from functrace.core.abstract import ShapedArray
from functrace.core.ad_util import Zero, deflinear, is_differentiable
from functrace.core.primitive import Primitive, batch_rules, jvp_rules, vjp_rules, zero_derivative
from functrace.core.source_info import with_user_line
from functrace.core.trace import get_aval
from functrace.lax.elementwise import (
    ANY,
    NUMERIC,
    _check_kinds,
    _const,
    convert_element_type_p,
    div_p,
    eq_p,
    mul_p,
    select_p,
    sub_p,
)
from functrace.lax.structural import broadcast_in_dim_p


def _check_axes(name: str, x: ShapedArray, axes: tuple[int, ...]) -> None:
    if len(set(axes)) != len(axes) or any(not 0 <= a < x.ndim for a in axes):
        raise TypeError(with_user_line(f"{name}: axes {axes} are invalid for shape {x.shape}"))


def _reduced_shape(shape: tuple[int, ...], axes: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def _reduction_batch(prim: Primitive) -> Callable:
    """The batch rule of a reduction over ``axes`` (other params pass through): the
    example axes shift past the mapped axis, which stays, less the reduced axes before it."""

    def batch(args: list, dims: list, *, axes: tuple[int, ...], **params) -> tuple[list, list]:
        (x,), (d,) = args, dims
        full = tuple(a if a < d else a + 1 for a in axes)
        return [prim.bind(x, axes=full, **params)], [d - sum(a < d for a in axes)]

    return batch


def reducer(name: str, impl: Callable, kinds: str = NUMERIC) -> Primitive:
    """A reduction over ``axes`` (normalised, non-negative) dropping those axes."""
    prim = Primitive(name)

    def abstract_eval(x: ShapedArray, *, axes: tuple[int, ...]) -> list[ShapedArray]:
        _check_kinds(name, x, kinds)
        _check_axes(name, x, axes)
        return [ShapedArray(_reduced_shape(x.shape, axes), x.dtype, x.weak_type)]

    prim.def_impl(lambda x, *, axes: [np.asarray(impl(np.asarray(x), axis=axes), dtype=np.result_type(x))])
    prim.def_abstract_eval(abstract_eval)
    batch_rules[prim] = _reduction_batch(prim)
    return prim


def lowest(dtype: np.dtype) -> float | int | bool:
    """The identity of ``max``: the lowest value of ``dtype``."""
    if dtype.kind == "f":
        return -np.inf
    return False if dtype.kind == "b" else int(np.iinfo(dtype).min)


def highest(dtype: np.dtype) -> float | int | bool:
    """The identity of ``min``: the highest value of ``dtype``."""
    if dtype.kind == "f":
        return np.inf
    return True if dtype.kind == "b" else int(np.iinfo(dtype).max)


def _expand(v, aval: ShapedArray, axes: tuple[int, ...]):
    """Broadcast a reduced value back over ``axes`` to the operand's shape."""
    if not axes:
        return v
    kept = tuple(i for i in range(aval.ndim) if i not in axes)
    return broadcast_in_dim_p.bind(v, shape=aval.shape, broadcast_dimensions=kept)


def _as_float(pred, dtype: np.dtype):
    return convert_element_type_p.bind(pred, new_dtype=dtype, weak_type=False)


def defreducer(prim: Primitive, partials: Callable) -> None:
    """Register jvp and vjp for a reduction from ``partials(x, ans, axes) -> (weights, scale)``:
    the derivative of an output element with respect to each of its inputs is
    ``weights / scale``, ``weights`` shaped like ``x`` and ``scale`` like the output (or
    None for 1). Dividing at the output's size keeps the work small."""

    def jvp(primals: list, tangents: list, *, axes: tuple[int, ...]) -> tuple[list, list]:
        (x,), (t,) = primals, tangents
        ans = prim.bind(x, axes=axes)
        if type(t) is Zero or not is_differentiable(get_aval(x)) or get_aval(x).size == 0:
            return [ans], [Zero(get_aval(ans))]
        if not axes:
            return [ans], [t]
        weights, scale = partials(x, ans, axes)
        t_out = reduce_sum_p.bind(mul_p.bind(t, weights), axes=axes)
        return [ans], [t_out if scale is None else div_p.bind(t_out, scale)]

    def vjp(cts: list, primals: list, outs: list, *, axes: tuple[int, ...]) -> list:
        (ct,), (x,) = cts, primals
        aval = get_aval(x)
        if aval.size == 0:
            return [None]
        if not axes:
            return [ct]
        weights, scale = partials(x, outs[0], axes)
        ct = ct if scale is None else div_p.bind(ct, scale)
        return [mul_p.bind(_expand(ct, aval, axes), weights)]

    jvp_rules[prim] = jvp
    vjp_rules[prim] = vjp


reduce_sum_p = reducer("reduce_sum", np.sum)


def _reduce_sum_transpose(ct, aval: ShapedArray, *, axes: tuple[int, ...]) -> list:
    return [_expand(ct, aval, axes)]


deflinear(reduce_sum_p, _reduce_sum_transpose)

reduce_prod_p = reducer("reduce_prod", np.prod)


def _reduce_prod_partials(x, ans, axes: tuple[int, ...]):
    # d ans / d x_i is the product of the other elements. Dividing ans by x_i fails at
    # zeros, so divide the product of the nonzero elements instead, and give 0 where
    # another element of the group is zero. First derivatives are exact everywhere;
    # higher ones wherever no element is zero (the zero pattern is held constant).
    aval = get_aval(x)
    zero = eq_p.bind(x, _const(0, x))
    safe = select_p.bind(zero, _const(1, x), x)
    safe_prod = _expand(reduce_prod_p.bind(safe, axes=axes), aval, axes)
    is_zero = _as_float(zero, aval.dtype)
    zeros_in_group = _expand(reduce_sum_p.bind(is_zero, axes=axes), aval, axes)
    no_other_zero = eq_p.bind(sub_p.bind(zeros_in_group, is_zero), _const(0, x))
    return select_p.bind(no_other_zero, div_p.bind(safe_prod, safe), _const(0, x)), None


defreducer(reduce_prod_p, _reduce_prod_partials)

# On bool, max is "any" and min is "all". NaN propagates, as in NumPy.
reduce_max_p = reducer("reduce_max", lambda x, axis: np.max(x, axis=axis, initial=lowest(x.dtype)), ANY)
reduce_min_p = reducer("reduce_min", lambda x, axis: np.min(x, axis=axis, initial=highest(x.dtype)), ANY)


def _extremum_partials(x, ans, axes: tuple[int, ...]):
    # The derivative goes to the elements equal to the extremum, split evenly among
    # ties (JAX's rule): a subgradient that keeps max(x) == -min(-x) under differentiation.
    aval = get_aval(x)
    at_extremum = _as_float(eq_p.bind(x, _expand(ans, aval, axes)), aval.dtype)
    return at_extremum, reduce_sum_p.bind(at_extremum, axes=axes)


defreducer(reduce_max_p, _extremum_partials)
defreducer(reduce_min_p, _extremum_partials)


def index_reducer(name: str, np_fn: Callable) -> Primitive:
    """``argmax``/``argmin`` over one axis: the first index of the extremum (of the first NaN
    if there is one, as NumPy); an empty axis gives index 0. Zero derivative."""
    prim = Primitive(name)

    def impl(x, *, axes: tuple[int, ...], index_dtype: np.dtype) -> list[np.ndarray]:
        x = np.asarray(x)
        (axis,) = axes
        if x.shape[axis] == 0:
            return [np.zeros(_reduced_shape(x.shape, axes), index_dtype)]
        return [np.asarray(np_fn(x, axis=axis), dtype=index_dtype)]

    def abstract_eval(x: ShapedArray, *, axes: tuple[int, ...], index_dtype: np.dtype) -> list[ShapedArray]:
        _check_kinds(name, x, ANY)
        if len(axes) != 1:
            raise TypeError(with_user_line(f"{name} reduces exactly one axis, got axes={axes}"))
        _check_axes(name, x, axes)
        if np.dtype(index_dtype).kind not in "iu":
            raise TypeError(with_user_line(f"{name} needs an integer index_dtype, got {np.dtype(index_dtype).name}"))
        return [ShapedArray(_reduced_shape(x.shape, axes), index_dtype)]

    prim.def_impl(impl)
    prim.def_abstract_eval(abstract_eval)
    zero_derivative.add(prim)
    batch_rules[prim] = _reduction_batch(prim)  # index_dtype passes through
    return prim


argmax_p = index_reducer("argmax", np.argmax)
argmin_p = index_reducer("argmin", np.argmin)

# --- cumulative sum -------------------------------------------------------------------

cumsum_p = Primitive("cumsum")


def _cumsum_impl(x, *, axis: int, reverse: bool) -> list[np.ndarray]:
    x = np.asarray(x)
    if reverse:
        return [np.flip(np.cumsum(np.flip(x, axis), axis=axis, dtype=x.dtype), axis)]
    return [np.cumsum(x, axis=axis, dtype=x.dtype)]


def _cumsum_abstract_eval(x: ShapedArray, *, axis: int, reverse: bool) -> list[ShapedArray]:
    _check_kinds("cumsum", x, NUMERIC)
    _check_axes("cumsum", x, (axis,))
    return [x]


cumsum_p.def_impl(_cumsum_impl)
cumsum_p.def_abstract_eval(_cumsum_abstract_eval)


def _cumsum_transpose(ct, aval: ShapedArray, *, axis: int, reverse: bool) -> list:
    # Input i reaches the outputs at and after it: sum the cotangent from the other end.
    return [cumsum_p.bind(ct, axis=axis, reverse=not reverse)]


deflinear(cumsum_p, _cumsum_transpose)


def _cumsum_batch(args: list, dims: list, *, axis: int, reverse: bool) -> tuple[list, list]:
    (x,), (d,) = args, dims
    return [cumsum_p.bind(x, axis=axis if axis < d else axis + 1, reverse=reverse)], [d]


batch_rules[cumsum_p] = _cumsum_batch


# --- public wrappers (functrace.lax) --------------------------------------------------


def _canonical_axis(operand, axis) -> int:
    """A negative axis counts from the end; out-of-range axes are left for the rule to reject."""
    ndim = get_aval(operand).ndim
    axis = int(axis)
    return axis + ndim if -ndim <= axis < 0 else axis


def _canonical_axes(operand, axes) -> tuple[int, ...]:
    return tuple(_canonical_axis(operand, a) for a in axes)


def reduce_sum(operand, axes):
    """Sum over ``axes``.

    >>> import numpy as np
    >>> from functrace import lax
    >>> lax.reduce_sum(np.ones((2, 3)), (1,))
    array([3., 3.])
    """
    return reduce_sum_p.bind(operand, axes=_canonical_axes(operand, axes))


def reduce_prod(operand, axes):
    """Product over ``axes`` (in the operand's dtype; integers wrap).

    >>> import numpy as np
    >>> from functrace import lax
    >>> lax.reduce_prod(np.array([[1, 2], [3, 4]], np.int32), (0,))
    array([3, 8], dtype=int32)
    """
    return reduce_prod_p.bind(operand, axes=_canonical_axes(operand, axes))


def reduce_max(operand, axes):
    """Maximum over ``axes`` ("any" on bool); an empty reduction gives the lowest value.

    >>> import numpy as np
    >>> from functrace import lax
    >>> lax.reduce_max(np.array([[1.0, 5.0], [3.0, 4.0]]), (1,))
    array([5., 4.])
    """
    return reduce_max_p.bind(operand, axes=_canonical_axes(operand, axes))


def reduce_min(operand, axes):
    """Minimum over ``axes`` ("all" on bool); an empty reduction gives the highest value.

    >>> import numpy as np
    >>> from functrace import lax
    >>> lax.reduce_min(np.array([[1.0, 5.0], [3.0, 4.0]]), (0,))
    array([1., 4.])
    """
    return reduce_min_p.bind(operand, axes=_canonical_axes(operand, axes))


def argmax(operand, axis: int, index_dtype):
    """Index of the first maximum along ``axis`` (of the first NaN, if any).

    >>> import numpy as np
    >>> from functrace import lax
    >>> lax.argmax(np.array([[1.0, 5.0, 5.0], [3.0, 0.0, 2.0]]), 1, np.int32)
    array([1, 0], dtype=int32)
    """
    return argmax_p.bind(operand, axes=(_canonical_axis(operand, axis),), index_dtype=dtypes.canonicalize(index_dtype))


def argmin(operand, axis: int, index_dtype):
    """Index of the first minimum along ``axis`` (of the first NaN, if any).

    >>> import numpy as np
    >>> from functrace import lax
    >>> lax.argmin(np.array([[1.0, 5.0, 1.0], [3.0, 0.0, 2.0]]), 1, np.int32)
    array([0, 1], dtype=int32)
    """
    return argmin_p.bind(operand, axes=(_canonical_axis(operand, axis),), index_dtype=dtypes.canonicalize(index_dtype))


def cumsum(operand, axis: int = 0, reverse: bool = False):
    """Cumulative sum along ``axis``, from the end when ``reverse``.

    >>> import numpy as np
    >>> from functrace import lax
    >>> lax.cumsum(np.array([1.0, 2.0, 3.0]), reverse=True)
    array([6., 5., 3.])
    """
    return cumsum_p.bind(operand, axis=_canonical_axis(operand, axis), reverse=bool(reverse))


__all__ = ["argmax", "argmin", "cumsum", "reduce_max", "reduce_min", "reduce_prod", "reduce_sum"]
