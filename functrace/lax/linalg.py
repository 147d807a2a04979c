"""``dot_general``: contractions with batch dimensions (matmul, einsum, tensordot)."""

from __future__ import annotations

import numpy as np

from functrace.core import dtypes
from functrace.core.abstract import ShapedArray
from functrace.core.ad_util import defbilinear
from functrace.core.primitive import Primitive, batch_rules
from functrace.core.source_info import with_user_line
from functrace.core.trace import get_aval
from functrace.lax.elementwise import NUMERIC, _check_kinds
from functrace.lax.structural import transpose_p

# dimension_numbers = ((lhs_contract, rhs_contract), (lhs_batch, rhs_batch)), as in XLA.
# Output dimensions: batch, then lhs free, then rhs free.
DimensionNumbers = tuple[tuple[tuple[int, ...], tuple[int, ...]], tuple[tuple[int, ...], tuple[int, ...]]]

dot_general_p = Primitive("dot_general")


def _free_dims(ndim: int, contract: tuple[int, ...], batch: tuple[int, ...]) -> list[int]:
    return [d for d in range(ndim) if d not in contract and d not in batch]


def _dot_general_impl(lhs, rhs, *, dimension_numbers: DimensionNumbers):
    (lc, rc), (lb, rb) = dimension_numbers
    lhs, rhs = np.asarray(lhs), np.asarray(rhs)
    lf, rf = _free_dims(lhs.ndim, lc, lb), _free_dims(rhs.ndim, rc, rb)

    def size(x, dims):
        return int(np.prod([x.shape[d] for d in dims], dtype=np.int64))

    # Bring both to [batch, free, contract] and use matmul (BLAS for float types).
    batch = [lhs.shape[d] for d in lb]
    a = np.transpose(lhs, (*lb, *lf, *lc)).reshape(*batch, size(lhs, lf), size(lhs, lc))
    b = np.transpose(rhs, (*rb, *rc, *rf)).reshape(*batch, size(rhs, rc), size(rhs, rf))
    out_shape = (*batch, *[lhs.shape[d] for d in lf], *[rhs.shape[d] for d in rf])
    return [np.asarray(np.matmul(a, b), dtype=lhs.dtype).reshape(out_shape)]


def _dot_general_abstract_eval(lhs: ShapedArray, rhs: ShapedArray, *, dimension_numbers: DimensionNumbers):
    (lc, rc), (lb, rb) = dimension_numbers
    _check_kinds("dot_general", lhs, NUMERIC)
    bad = (
        len(lc) != len(rc)
        or len(lb) != len(rb)
        or any(not 0 <= d < lhs.ndim for d in (*lc, *lb))
        or any(not 0 <= d < rhs.ndim for d in (*rc, *rb))
        or len(set((*lc, *lb))) != len(lc) + len(lb)
        or len(set((*rc, *rb))) != len(rc) + len(rb)
        or any(lhs.shape[a] != rhs.shape[b] for a, b in zip(lc, rc, strict=True))
        or any(lhs.shape[a] != rhs.shape[b] for a, b in zip(lb, rb, strict=True))
    )
    if bad:
        raise TypeError(
            with_user_line(
                f"dot_general got incompatible shapes {lhs.shape} and {rhs.shape} "
                f"for dimension_numbers={dimension_numbers}"
            )
        )
    if lhs.dtype != rhs.dtype:
        raise TypeError(with_user_line(f"dot_general got different dtypes {lhs.dtype.name} and {rhs.dtype.name}"))
    shape = (
        *[lhs.shape[d] for d in lb],
        *[lhs.shape[d] for d in _free_dims(lhs.ndim, lc, lb)],
        *[rhs.shape[d] for d in _free_dims(rhs.ndim, rc, rb)],
    )
    return [ShapedArray(shape, lhs.dtype, lhs.weak_type and rhs.weak_type)]


dot_general_p.def_impl(_dot_general_impl)
dot_general_p.def_abstract_eval(_dot_general_abstract_eval)


def _operand_cotangent(ct, x_aval: ShapedArray, y, x_dims: tuple, y_dims: tuple, y_free_in_ct: tuple):
    """The cotangent of operand ``x`` of a contraction with ``y``, where ``x_dims`` and
    ``y_dims`` are each operand's (contracting, batch) dims and ``y_free_in_ct`` the
    positions of ``y``'s free dims in ``ct``.

    Contract ``ct`` with ``y`` over ``y``'s free dims (batch dims stay batch): the result
    has x's batch dims, x's free dims, then y's contracting dims in y's order, each
    standing for its partner in x. A transpose puts them back in x's order.
    """
    (x_contract, x_batch), (y_contract, y_batch) = x_dims, y_dims
    y_free = tuple(_free_dims(get_aval(y).ndim, y_contract, y_batch))
    batch = tuple(range(len(x_batch)))
    partners = [x for _, x in sorted(zip(y_contract, x_contract, strict=True))]
    x_free = _free_dims(x_aval.ndim, x_contract, x_batch)
    identity = tuple(range(x_aval.ndim))
    order = [*x_batch, *partners, *x_free]
    if tuple(order) == identity and x_batch == tuple(batch):
        # Contracting y with ct (in that order) lands in x's layout: no transpose needed
        # (e.g. the weight gradient x^T @ ct of x @ w).
        return dot_general_p.bind(y, ct, dimension_numbers=((y_free, y_free_in_ct), (y_batch, batch)))
    out = dot_general_p.bind(ct, y, dimension_numbers=((y_free_in_ct, y_free), (batch, y_batch)))
    order = [*x_batch, *x_free, *partners]
    permutation = tuple(order.index(d) for d in range(x_aval.ndim))
    if permutation == identity:
        return out
    return transpose_p.bind(out, permutation=permutation)


def _dot_general_transpose_lhs(ct, lhs_aval: ShapedArray, rhs, *, dimension_numbers: DimensionNumbers):
    (lc, rc), (lb, rb) = dimension_numbers
    n_lhs_free = len(_free_dims(lhs_aval.ndim, lc, lb))
    rhs_free_in_ct = tuple(range(len(lb) + n_lhs_free, get_aval(ct).ndim))
    return _operand_cotangent(ct, lhs_aval, rhs, (lc, lb), (rc, rb), rhs_free_in_ct)


def _dot_general_transpose_rhs(ct, lhs, rhs_aval: ShapedArray, *, dimension_numbers: DimensionNumbers):
    (lc, rc), (lb, rb) = dimension_numbers
    n_lhs_free = len(_free_dims(get_aval(lhs).ndim, lc, lb))
    lhs_free_in_ct = tuple(range(len(lb), len(lb) + n_lhs_free))
    return _operand_cotangent(ct, rhs_aval, lhs, (rc, rb), (lc, lb), lhs_free_in_ct)


defbilinear(dot_general_p, _dot_general_transpose_lhs, _dot_general_transpose_rhs)


def _shift(dims: tuple[int, ...], d: int | None) -> tuple[int, ...]:
    """An example's dimensions as dimensions of the batched operand mapped at ``d``."""
    return dims if d is None else tuple(e if e < d else e + 1 for e in dims)


def _dot_general_batch(args: list, dims: list, *, dimension_numbers: DimensionNumbers) -> tuple[list, list]:
    # Both mapped: the mapped axes are one more batch pair, first in the output. One
    # mapped: its mapped axis is just one more free dimension of that operand; the
    # output keeps it among the free dimensions, in order.
    (lhs, rhs), (ld, rd) = args, dims
    (lc, rc), (lb, rb) = dimension_numbers
    lc, lb, rc, rb = _shift(lc, ld), _shift(lb, ld), _shift(rc, rd), _shift(rb, rd)
    if ld is not None and rd is not None:
        numbers = ((lc, rc), ((ld, *lb), (rd, *rb)))
        return [dot_general_p.bind(lhs, rhs, dimension_numbers=numbers)], [0]
    out = dot_general_p.bind(lhs, rhs, dimension_numbers=((lc, rc), (lb, rb)))
    lhs_free = _free_dims(get_aval(lhs).ndim, lc, lb)
    if ld is not None:
        return [out], [len(lb) + lhs_free.index(ld)]
    rhs_free = _free_dims(get_aval(rhs).ndim, rc, rb)
    return [out], [len(lb) + len(lhs_free) + rhs_free.index(rd)]


batch_rules[dot_general_p] = _dot_general_batch


def dot_general(lhs, rhs, dimension_numbers, precision=None, preferred_element_type=None):
    """Contract ``lhs`` and ``rhs``: ``dimension_numbers = ((lhs_contract, rhs_contract),
    (lhs_batch, rhs_batch))``. The output has the batch, then lhs free, then rhs free dims.

    Both operands have one dtype, unless ``preferred_element_type`` is given: then both are
    converted to it first, so that products and sums are computed in it (int32 operands
    accumulate in int64 with ``preferred_element_type=np.int64``).

    >>> import numpy as np
    >>> from functrace import lax
    >>> lax.dot_general(np.ones((2, 3)), np.ones((3, 4)), (((1,), (0,)), ((), ()))).shape
    (2, 4)
    """
    del precision  # accepted for JAX compatibility; NumPy and LLVM compute at full precision
    (lc, rc), (lb, rb) = dimension_numbers
    dims = ((tuple(map(int, lc)), tuple(map(int, rc))), (tuple(map(int, lb)), tuple(map(int, rb))))
    if preferred_element_type is not None:
        from functrace.core.trace import get_aval
        from functrace.lax.elementwise import convert_element_type

        dtype = dtypes.canonicalize(preferred_element_type)
        lhs, rhs = (x if get_aval(x).dtype == dtype else convert_element_type(x, dtype) for x in (lhs, rhs))
    return dot_general_p.bind(lhs, rhs, dimension_numbers=dims)


__all__ = ["dot_general"]
