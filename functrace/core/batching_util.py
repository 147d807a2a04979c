"""Batching rules: the signature and the helpers primitives register with.

A batch rule has one signature:

    batch(args: list, dims: list[int | None], **params) -> (outs: list, out_dims: list[int | None])

``dims[i]`` is the axis of ``args[i]`` that is mapped (``None``: not mapped; the
value is the same for every example). Every rule is vectorised: one application of
primitives for the whole batch, never a loop over examples. Rules bind primitives, so
they compose with every other transformation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from functrace.core.trace import get_aval


def move_axis(x: Any, src: int | None, dst: int, size: int | None = None) -> Any:
    """Move the mapped axis ``src`` of ``x`` to position ``dst``; an unmapped value
    (``src is None``) is broadcast to have a mapped axis of ``size`` there."""
    from functrace.lax.structural import broadcast_in_dim_p, transpose_p

    aval = get_aval(x)
    if src is None:
        if size is None:
            raise ValueError("move_axis of an unmapped value needs the axis size")
        shape = (*aval.shape[:dst], size, *aval.shape[dst:])
        dims = tuple(d if d < dst else d + 1 for d in range(aval.ndim))
        return broadcast_in_dim_p.bind(x, shape=shape, broadcast_dimensions=dims)
    if src == dst:
        return x
    perm = [d for d in range(aval.ndim) if d != src]
    perm.insert(dst, src)
    return transpose_p.bind(x, permutation=tuple(perm))


def mapped_size(args: Sequence[Any], dims: Sequence[int | None]) -> int:
    for x, d in zip(args, dims, strict=True):
        if d is not None:
            return get_aval(x).shape[d]
    raise ValueError("no mapped argument")


def bdim_at_front(x: Any, d: int | None, size: int) -> Any:
    """``x`` with its mapped axis first (broadcasting an unmapped ``x``)."""
    return move_axis(x, d, 0, size)


def elementwise_batch_rule(prim: Any) -> Any:
    """The batch rule of an elementwise primitive: operands line up on one mapped axis.

    Operands of one shape keep a shared mapped axis where it is; otherwise mapped axes
    move to the front, rank-0 examples are broadcast, and unmapped non-scalar operands
    get a mapped axis (rank-0 unmapped operands broadcast in the primitive itself).
    """

    def rule(args: list, dims: list, **params: Any) -> tuple[list, list]:
        from functrace.lax.structural import broadcast_in_dim_p

        size = mapped_size(args, dims)
        examples = [_example_shape(x, d) for x, d in zip(args, dims, strict=True)]
        out_shape = max(examples, key=len)
        mapped = {d for d in dims if d is not None}
        if len(mapped) == 1 and all(
            (d is None and e == ()) or (d is not None and e == out_shape) for d, e in zip(dims, examples, strict=True)
        ):
            out = prim.bind(*args, **params)
            return (list(out) if prim.multiple_results else [out]), [mapped.pop()] * (
                len(out) if prim.multiple_results else 1
            )
        new = []
        for x, d, e in zip(args, dims, examples, strict=True):
            if d is None:
                new.append(x if e == () else move_axis(x, None, 0, size))
                continue
            x = move_axis(x, d, 0)
            if e != out_shape:
                x = broadcast_in_dim_p.bind(x, shape=(size, *out_shape), broadcast_dimensions=(0,))
            new.append(x)
        out = prim.bind(*new, **params)
        return (list(out) if prim.multiple_results else [out]), [0] * (len(out) if prim.multiple_results else 1)

    return rule


def _example_shape(x: Any, d: int | None) -> tuple[int, ...]:
    shape = get_aval(x).shape
    return shape if d is None else shape[:d] + shape[d + 1 :]
