"""Shape primitives: broadcasting, reshaping, transposing, slicing, padding..."""

from __future__ import annotations

import numpy as np

from functrace.core.abstract import ShapedArray
from functrace.core.primitive import Primitive
from functrace.core.source_info import with_user_line

# --- broadcast_in_dim ---------------------------------------------------------------

broadcast_in_dim_p = Primitive("broadcast_in_dim")


def _broadcast_in_dim_impl(x, *, shape: tuple[int, ...], broadcast_dimensions: tuple[int, ...]):
    x = np.asarray(x)
    expanded = [1] * len(shape)
    for src, dst in enumerate(broadcast_dimensions):
        expanded[dst] = x.shape[src]
    return [np.broadcast_to(x.reshape(expanded), shape)]


def _broadcast_in_dim_abstract_eval(x: ShapedArray, *, shape, broadcast_dimensions):
    ok = len(broadcast_dimensions) == x.ndim and all(
        0 <= d < len(shape) and x.shape[i] in (1, shape[d]) for i, d in enumerate(broadcast_dimensions)
    )
    ok = ok and list(broadcast_dimensions) == sorted(set(broadcast_dimensions))
    if not ok:
        raise TypeError(
            with_user_line(
                f"broadcast_in_dim cannot broadcast shape {x.shape} to {tuple(shape)} "
                f"with broadcast_dimensions={tuple(broadcast_dimensions)}"
            )
        )
    return [ShapedArray(shape, x.dtype, x.weak_type)]


broadcast_in_dim_p.def_impl(_broadcast_in_dim_impl)
broadcast_in_dim_p.def_abstract_eval(_broadcast_in_dim_abstract_eval)

# --- reshape ------------------------------------------------------------------------

reshape_p = Primitive("reshape")


def _reshape_abstract_eval(x: ShapedArray, *, new_sizes: tuple[int, ...]):
    if int(np.prod(new_sizes, dtype=np.int64)) != x.size or any(d < 0 for d in new_sizes):
        raise TypeError(with_user_line(f"reshape cannot reshape an array of shape {x.shape} into {tuple(new_sizes)}"))
    return [ShapedArray(new_sizes, x.dtype, x.weak_type)]


reshape_p.def_impl(lambda x, *, new_sizes: [np.reshape(x, new_sizes)])
reshape_p.def_abstract_eval(_reshape_abstract_eval)

# --- transpose ----------------------------------------------------------------------

transpose_p = Primitive("transpose")


def _transpose_abstract_eval(x: ShapedArray, *, permutation: tuple[int, ...]):
    if sorted(permutation) != list(range(x.ndim)):
        raise TypeError(with_user_line(f"transpose permutation {permutation} is invalid for shape {x.shape}"))
    return [ShapedArray(tuple(x.shape[p] for p in permutation), x.dtype, x.weak_type)]


transpose_p.def_impl(lambda x, *, permutation: [np.transpose(x, permutation)])
transpose_p.def_abstract_eval(_transpose_abstract_eval)


# --- public wrappers (functrace.lax) --------------------------------------------------


def broadcast_in_dim(operand, shape, broadcast_dimensions):
    """Broadcast ``operand`` to ``shape``; its dimension ``i`` becomes ``broadcast_dimensions[i]``.

    >>> import numpy as np
    >>> from functrace import lax
    >>> lax.broadcast_in_dim(np.array([1.0, 2.0]), (3, 2), (1,)).shape
    (3, 2)
    """
    return broadcast_in_dim_p.bind(
        operand, shape=tuple(int(d) for d in shape), broadcast_dimensions=tuple(int(d) for d in broadcast_dimensions)
    )


def reshape(operand, new_sizes):
    """Reshape (row-major) to ``new_sizes``.

    >>> import numpy as np
    >>> from functrace import lax
    >>> lax.reshape(np.arange(6.0), (2, 3)).shape
    (2, 3)
    """
    return reshape_p.bind(operand, new_sizes=tuple(int(d) for d in new_sizes))


def transpose(operand, permutation):
    """Permute the dimensions: output dimension ``i`` is input dimension ``permutation[i]``.

    >>> import numpy as np
    >>> from functrace import lax
    >>> lax.transpose(np.zeros((2, 3, 4)), (2, 0, 1)).shape
    (4, 2, 3)
    """
    return transpose_p.bind(operand, permutation=tuple(int(p) for p in permutation))


__all__ = ["broadcast_in_dim", "reshape", "transpose"]
