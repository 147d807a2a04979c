"""Linear algebra of ``functrace.numpy``: ``matmul``, ``dot``, ``einsum``, ``tensordot``, ``outer``."""

from __future__ import annotations

from typing import Any

from functrace.core.source_info import api_boundary, with_user_line
from functrace.lax.linalg import dot_general_p
from functrace.numpy.promotion import aval_of, broadcast_to, promote_dtypes
from functrace.numpy.shape import reshape

__all__ = ["matmul"]


@api_boundary
def matmul(x1: Any, x2: Any) -> Any:
    """NumPy's ``matmul`` (``x1 @ x2``), with broadcast batch dimensions.

    >>> import numpy as np, functrace.numpy as fnp
    >>> fnp.matmul(np.ones((5, 2, 3)), np.ones((3, 4))).shape
    (5, 2, 4)
    """
    x1, x2 = promote_dtypes(x1, x2)
    a1, a2 = aval_of(x1), aval_of(x2)
    if a1.ndim == 0 or a2.ndim == 0:
        raise TypeError(with_user_line("matmul: operands must be at least 1-D; use multiply for scalars"))
    if a1.ndim == 1 and a2.ndim == 1:
        return _contract_last_first(x1, x2)
    vector_lhs, vector_rhs = a1.ndim == 1, a2.ndim == 1
    if vector_lhs:
        x1 = reshape(x1, (1, a1.shape[0]))
    if vector_rhs:
        x2 = reshape(x2, (a2.shape[0], 1))
    s1, s2 = aval_of(x1).shape, aval_of(x2).shape
    if s1[-1] != s2[-2]:
        raise TypeError(with_user_line(f"matmul got incompatible shapes {a1.shape} and {a2.shape}"))
    from functrace.numpy.promotion import broadcast_shapes

    batch = broadcast_shapes("matmul", s1[:-2], s2[:-2])
    x1 = broadcast_to(x1, (*batch, *s1[-2:])) if s1[:-2] != batch else x1
    x2 = broadcast_to(x2, (*batch, *s2[-2:])) if s2[:-2] != batch else x2
    nb = len(batch)
    out = dot_general_p.bind(x1, x2, dimension_numbers=(((nb + 1,), (nb,)), (tuple(range(nb)), tuple(range(nb)))))
    if vector_lhs or vector_rhs:
        shape = aval_of(out).shape
        drop = {nb} if vector_lhs else set()
        drop |= {len(shape) - 1} if vector_rhs else set()
        out = reshape(out, tuple(d for i, d in enumerate(shape) if i not in drop))
    return out


def _contract_last_first(x1: Any, x2: Any) -> Any:
    a1, a2 = aval_of(x1), aval_of(x2)
    if a1.shape[-1] != a2.shape[0]:
        raise TypeError(with_user_line(f"matmul got incompatible shapes {a1.shape} and {a2.shape}"))
    return dot_general_p.bind(x1, x2, dimension_numbers=(((a1.ndim - 1,), (0,)), ((), ())))
