"""``dot_general``: contractions with batch dimensions (matmul, einsum, tensordot)."""

from __future__ import annotations

import numpy as np

from functrace.core.abstract import ShapedArray
from functrace.core.primitive import Primitive
from functrace.core.source_info import with_user_line
from functrace.lax.elementwise import NUMERIC, _check_kinds

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


def dot_general(lhs, rhs, dimension_numbers, precision=None, preferred_element_type=None):
    """Contract ``lhs`` and ``rhs``: ``dimension_numbers = ((lhs_contract, rhs_contract),
    (lhs_batch, rhs_batch))``. The output has the batch, then lhs free, then rhs free dims.

    >>> import numpy as np
    >>> from functrace import lax
    >>> lax.dot_general(np.ones((2, 3)), np.ones((3, 4)), (((1,), (0,)), ((), ()))).shape
    (2, 4)
    """
    del precision  # accepted for JAX compatibility; NumPy and LLVM compute at full precision
    (lc, rc), (lb, rb) = dimension_numbers
    dims = ((tuple(map(int, lc)), tuple(map(int, rc))), (tuple(map(int, lb)), tuple(map(int, rb))))
    out = dot_general_p.bind(lhs, rhs, dimension_numbers=dims)
    if preferred_element_type is not None:
        from functrace.lax.elementwise import convert_element_type

        out = convert_element_type(out, preferred_element_type)
    return out


__all__ = ["dot_general"]
