"""Linear algebra of ``functrace.numpy``: ``matmul``, ``dot``, ``einsum``, ``tensordot``, ``outer``.

Every contraction lowers to ``dot_general`` (plus ``reduce_sum``, ``reshape`` and
``transpose`` where needed). NumPy contracts bools as "or of ands"; here bool
operands are contracted as int64 and converted back (nonzero is True), which is the
same thing. Incompatible shapes are a ``TypeError`` naming the function and both shapes.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from typing import Any

import numpy as np

from functrace.core import dtypes
from functrace.core.source_info import api_boundary, with_user_line
from functrace.lax.linalg import dot_general_p
from functrace.lax.reductions import reduce_sum_p
from functrace.numpy.manipulation import reshape, transpose
from functrace.numpy.promotion import aval_of, broadcast_shapes, broadcast_to, convert, eager_fast_path

__all__ = ["dot", "einsum", "inner", "matmul", "outer", "tensordot", "vdot"]


def _operands(*args: Any) -> tuple[list[Any], bool]:
    """Convert to the promoted dtype, bools to int64 (the flag says to convert the result
    back). Python scalars are not weakly typed here: NumPy's ``dot(x_f32, 2.0)`` is float64."""
    dtype, _ = dtypes.result_type(*[aval_of(a).strip_weak() for a in args])
    is_bool = dtype == dtypes.bool_
    return [convert(a, dtypes.int64 if is_bool else dtype) for a in args], is_bool


def _result(out: Any, is_bool: bool) -> Any:
    return convert(out, dtypes.bool_) if is_bool else out


def _contract(name: str, x1: Any, x2: Any, contract: tuple, batch: tuple = ((), ())) -> Any:
    """``dot_general`` with the sizes checked first, so eager mode reports the same error."""
    s1, s2 = aval_of(x1).shape, aval_of(x2).shape
    pairs = [*zip(*contract, strict=True), *zip(*batch, strict=True)]
    if any(s1[i] != s2[j] for i, j in pairs):
        raise TypeError(with_user_line(f"{name} got incompatible shapes {s1} and {s2}"))
    return dot_general_p.bind(x1, x2, dimension_numbers=(contract, batch))


def _numpy_operands(*xs: Any) -> bool:
    return all(type(x) is np.ndarray and x.dtype in dtypes.SHORT_NAMES for x in xs)


@api_boundary
def matmul(x1: Any, x2: Any) -> Any:
    """NumPy's ``matmul`` (``x1 @ x2``), with broadcast batch dimensions; a 1-D operand
    is a vector whose dimension is dropped from the result.

    >>> import numpy as np, functrace.numpy as fnp
    >>> fnp.matmul(np.ones((5, 2, 3)), np.ones((3, 4))).shape
    (5, 2, 4)
    """
    if _numpy_operands(x1, x2) and eager_fast_path():
        try:
            return np.matmul(x1, x2)  # eager: NumPy's own, same promotion and result
        except ValueError:
            pass  # bad shapes: the general path raises our TypeError
    (x1, x2), is_bool = _operands(x1, x2)
    s1, s2 = aval_of(x1).shape, aval_of(x2).shape
    if not s1 or not s2:
        raise TypeError(
            with_user_line(f"matmul: operands must be at least 1-D, got shapes {s1} and {s2}; use multiply for scalars")
        )
    k2 = s2[0] if len(s2) == 1 else s2[-2]
    if s1[-1] != k2:
        raise TypeError(
            with_user_line(f"matmul got incompatible shapes {s1} and {s2}: contracted sizes {s1[-1]} and {k2} differ")
        )
    if len(s2) <= 2:
        # A vector or a matrix on the right: no batch, lhs's leading dims pass through.
        out = _contract("matmul", x1, x2, ((len(s1) - 1,), (0,)))
    elif len(s1) == 1:
        out = _contract("matmul", x1, x2, ((0,), (len(s2) - 2,)))
    else:
        out = _batched_matmul(x1, x2)
    return _result(out, is_bool)


def _batched_matmul(x1: Any, x2: Any) -> Any:
    """``[..., m, k] @ [..., k, n]`` with at least one batch dimension on the right."""
    s1, s2 = aval_of(x1).shape, aval_of(x2).shape
    try:
        batch = broadcast_shapes("matmul", s1[:-2], s2[:-2])
    except TypeError:
        raise TypeError(
            with_user_line(f"matmul got incompatible shapes {s1} and {s2}: the batch dimensions do not broadcast")
        ) from None
    nb = len(batch)
    if len(s1) == 2:
        # [m, k] @ [B..., k, n]: contract without broadcasting, then move m behind the batch.
        out = _contract("matmul", x1, x2, ((1,), (len(s2) - 2,)))
        return transpose(out, (*range(1, nb + 1), 0, nb + 1))
    x1 = broadcast_to(x1, (*batch, *s1[-2:]))
    x2 = broadcast_to(x2, (*batch, *s2[-2:]))
    return _contract("matmul", x1, x2, ((nb + 1,), (nb,)), (tuple(range(nb)), tuple(range(nb))))


@api_boundary
def dot(a: Any, b: Any) -> Any:
    """NumPy's ``dot``: a product with a scalar, else a sum over the last axis of ``a``
    and the second-to-last of ``b`` (the only one, if ``b`` is 1-D).

    >>> import numpy as np, functrace.numpy as fnp
    >>> fnp.dot(np.ones((2, 3)), np.ones((4, 3, 5))).shape
    (2, 4, 5)
    """
    (a, b), is_bool = _operands(a, b)
    nd1, nd2 = aval_of(a).ndim, aval_of(b).ndim
    contract = ((), ()) if nd1 == 0 or nd2 == 0 else ((nd1 - 1,), (max(nd2 - 2, 0),))
    return _result(_contract("dot", a, b, contract), is_bool)


@api_boundary
def inner(a: Any, b: Any) -> Any:
    """NumPy's ``inner``: a sum over the last axes of both (a product with a scalar).

    >>> import numpy as np, functrace.numpy as fnp
    >>> fnp.inner(np.ones((2, 3)), np.ones((4, 3))).shape
    (2, 4)
    """
    (a, b), is_bool = _operands(a, b)
    nd1, nd2 = aval_of(a).ndim, aval_of(b).ndim
    contract = ((), ()) if nd1 == 0 or nd2 == 0 else ((nd1 - 1,), (nd2 - 1,))
    return _result(_contract("inner", a, b, contract), is_bool)


@api_boundary
def vdot(a: Any, b: Any) -> Any:
    """NumPy's ``vdot``: the dot product of the flattened arrays (equal sizes).

    >>> import numpy as np, functrace.numpy as fnp
    >>> fnp.vdot(np.ones((2, 3)), np.ones((3, 2)))
    array(6.)
    """
    (a, b), is_bool = _operands(a, b)
    s1, s2 = aval_of(a).shape, aval_of(b).shape
    if aval_of(a).size != aval_of(b).size:
        raise TypeError(with_user_line(f"vdot got incompatible shapes {s1} and {s2} (sizes differ)"))
    return _result(_contract("vdot", reshape(a, (-1,)), reshape(b, (-1,)), ((0,), (0,))), is_bool)


@api_boundary
def outer(a: Any, b: Any) -> Any:
    """NumPy's ``outer``: ``out[i, j] = a.ravel()[i] * b.ravel()[j]``.

    >>> import numpy as np, functrace.numpy as fnp
    >>> fnp.outer(np.array([1, 2]), np.array([1, 10, 100]))
    array([[  1,  10, 100],
           [  2,  20, 200]])
    """
    (a, b), is_bool = _operands(a, b)
    return _result(_contract("outer", reshape(a, (-1,)), reshape(b, (-1,)), ((), ())), is_bool)


def _tensordot_axes(axes: Any, nd1: int, nd2: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    if isinstance(axes, int):
        if not 0 <= axes <= min(nd1, nd2):
            raise ValueError(with_user_line(f"tensordot: axes={axes} is invalid for operands of {nd1} and {nd2} dims"))
        return tuple(range(nd1 - axes, nd1)), tuple(range(axes))
    try:
        axes1, axes2 = ((a,) if isinstance(a, int) else tuple(a) for a in axes)
    except (TypeError, ValueError):
        raise ValueError(
            with_user_line(f"tensordot: axes must be an int or a pair of sequences, got {axes!r}")
        ) from None
    if len(axes1) != len(axes2):
        raise ValueError(with_user_line(f"tensordot: axes {axes1} and {axes2} have different lengths"))

    def normalize(axs: tuple, ndim: int) -> tuple[int, ...]:
        if any(not -ndim <= a < ndim for a in axs) or len({a % ndim for a in axs}) != len(axs):
            raise ValueError(with_user_line(f"tensordot: axes {axs} are invalid for an operand of {ndim} dims"))
        return tuple(int(a) % ndim for a in axs)

    return normalize(axes1, nd1), normalize(axes2, nd2)


@api_boundary
def tensordot(a: Any, b: Any, axes: int | Sequence[Any] = 2) -> Any:
    """NumPy's ``tensordot``: sum over the last ``axes`` dims of ``a`` and the first of ``b``,
    or over the pairs ``axes = (a_axes, b_axes)``; the result has ``a``'s free dims, then ``b``'s.

    >>> import numpy as np, functrace.numpy as fnp
    >>> fnp.tensordot(np.ones((2, 3, 4)), np.ones((3, 4, 5))).shape
    (2, 5)
    """
    (a, b), is_bool = _operands(a, b)
    contract = _tensordot_axes(axes, aval_of(a).ndim, aval_of(b).ndim)
    return _result(_contract("tensordot", a, b, contract), is_bool)


# --- einsum ----------------------------------------------------------------------------
# Labels are letters; the dims that "..." stands for get integer labels 0..E-1, aligned
# from the right across operands (NumPy broadcasting).

Label = str | int


def _split_spec(spec: str, ndim: int | None) -> tuple[str, int | None, str]:
    """``(letters before "...", dims "..." covers or None if absent, letters after)``;
    with ``ndim=None`` (the output) "..." present is reported as covering 0 dims."""
    head, dots, tail = spec.partition("...")
    for c in head + tail:
        if c not in string.ascii_letters:
            raise ValueError(with_user_line(f"einsum: invalid subscript {c!r} in {spec!r}; subscripts must be letters"))
    if not dots:
        if ndim is not None and len(head) != ndim:
            raise ValueError(
                with_user_line(f"einsum: subscripts {spec!r} name {len(head)} dimensions, the operand has {ndim}")
            )
        return head, None, ""
    covered = 0 if ndim is None else ndim - len(head) - len(tail)
    if covered < 0:
        raise ValueError(with_user_line(f"einsum: subscripts {spec!r} name more dimensions than the operand's {ndim}"))
    return head, covered, tail


def _parse_einsum(subscripts: str, ndims: list[int]) -> tuple[list[list[Label]], list[Label]]:
    """Each operand's labels and the output's labels."""
    spec = subscripts.replace(" ", "")
    inputs, arrow, output = spec.partition("->")
    specs = inputs.split(",")
    if len(specs) != len(ndims):
        raise ValueError(with_user_line(f"einsum: {subscripts!r} names {len(specs)} operands, got {len(ndims)}"))
    parts = [_split_spec(s, n) for s, n in zip(specs, ndims, strict=True)]
    n_ellipsis = max((covered or 0 for _, covered, _ in parts), default=0)
    labels = []
    for (head, covered, tail), s in zip(parts, specs, strict=True):
        repeated = sorted({c for c in head + tail if (head + tail).count(c) > 1})
        if repeated:
            raise NotImplementedError(
                f"einsum: subscript {repeated[0]!r} repeats within operand {s!r} (a diagonal); not supported"
            )
        labels.append([*head, *range(n_ellipsis - (covered or 0), n_ellipsis), *tail])
    letters = [c for head, _, tail in parts for c in head + tail]
    if not arrow:
        return labels, [*range(n_ellipsis), *sorted(c for c in set(letters) if letters.count(c) == 1)]
    head, covered, tail = _split_spec(output, None)
    if covered is None and n_ellipsis:
        raise ValueError(with_user_line(f"einsum: the output of {subscripts!r} needs '...' for the broadcast dims"))
    for c in head + tail:
        if (head + tail).count(c) > 1 or c not in letters:
            raise ValueError(with_user_line(f"einsum: output subscript {c!r} repeats or is in no input"))
    return labels, [*head, *(range(n_ellipsis) if covered is not None else ()), *tail]


def _label_sizes(operands: list[Any], labels: list[list[Label]]) -> dict[Label, int]:
    """Each label's size; size-1 dims broadcast, other sizes must agree."""
    sizes: dict[Label, int] = {}
    for x, labs in zip(operands, labels, strict=True):
        for label, d in zip(labs, aval_of(x).shape, strict=True):
            if sizes.get(label, 1) not in (1, d) and d != 1:
                shapes = " and ".join(str(aval_of(y).shape) for y in operands)
                where = repr(label) if isinstance(label, str) else "'...'"
                raise TypeError(with_user_line(f"einsum got incompatible shapes {shapes} at subscript {where}"))
            sizes[label] = d if d != 1 else sizes.get(label, 1)
    return sizes


def _drop_broadcast_dims(x: Any, labs: list[Label], sizes: dict[Label, int]) -> tuple[Any, list[Label]]:
    """Remove size-1 dims whose label is longer elsewhere: they broadcast, so they may go."""
    shape = aval_of(x).shape
    keep = [i for i, (label, d) in enumerate(zip(labs, shape, strict=True)) if d == sizes[label]]
    if len(keep) == len(labs):
        return x, labs
    return reshape(x, tuple(shape[i] for i in keep)), [labs[i] for i in keep]


def _sum_unneeded(x: Any, labs: list[Label], keep: set[Label]) -> tuple[Any, list[Label]]:
    axes = tuple(i for i, label in enumerate(labs) if label not in keep)
    if not axes:
        return x, labs
    return reduce_sum_p.bind(x, axes=axes), [label for label in labs if label in keep]


def _contract_pair(x: Any, xl: list[Label], y: Any, yl: list[Label], needed: set[Label]) -> tuple[Any, list[Label]]:
    """Shared labels needed later are batch dims; the other shared labels are summed."""
    shared = [label for label in xl if label in yl]
    batch = [label for label in shared if label in needed]
    summed = [label for label in shared if label not in needed]
    dims = (
        (tuple(xl.index(s) for s in summed), tuple(yl.index(s) for s in summed)),
        (tuple(xl.index(s) for s in batch), tuple(yl.index(s) for s in batch)),
    )
    out = dot_general_p.bind(x, y, dimension_numbers=dims)
    return out, [
        *batch,
        *(label for label in xl if label not in shared),
        *(label for label in yl if label not in shared),
    ]


@api_boundary
def einsum(subscripts: str, *operands: Any, optimize: Any = False) -> Any:
    """NumPy's ``einsum`` with explicit (``->``) or implicit output and ``...``; operands
    are contracted left to right (``optimize`` is accepted and ignored). A subscript
    repeated within one operand (a diagonal) raises ``NotImplementedError``.

    >>> import numpy as np, functrace.numpy as fnp
    >>> fnp.einsum("bij,bjk->bk", np.ones((2, 3, 4)), np.ones((2, 4, 5))).shape
    (2, 5)
    """
    del optimize
    if not isinstance(subscripts, str):
        raise NotImplementedError("einsum: only the subscripts-string form is supported")
    if not operands:
        raise ValueError(with_user_line("einsum needs at least one operand"))
    operands, is_bool = _operands(*operands)
    labels, out_labels = _parse_einsum(subscripts, [aval_of(x).ndim for x in operands])
    sizes = _label_sizes(operands, labels)
    pairs = [_drop_broadcast_dims(x, labs, sizes) for x, labs in zip(operands, labels, strict=True)]
    acc, acc_labels = pairs[0]
    for i, (y, y_labels) in enumerate(pairs[1:], start=1):
        needed = set(out_labels).union(*(labs for _, labs in pairs[i + 1 :]))
        acc, acc_labels = _sum_unneeded(acc, acc_labels, needed | set(y_labels))
        y, y_labels = _sum_unneeded(y, y_labels, needed | set(acc_labels))
        acc, acc_labels = _contract_pair(acc, acc_labels, y, y_labels, needed)
    acc, acc_labels = _sum_unneeded(acc, acc_labels, set(out_labels))
    acc = transpose(acc, tuple(acc_labels.index(label) for label in out_labels))
    return _result(acc, is_bool)
