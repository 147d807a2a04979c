"""``vmap``: vectorising map, by a batch trace.

Each batch tracer carries a value with one extra (mapped) axis and the position of
that axis; each primitive applies its batch rule, which computes the whole batch with
one application of primitives. Nothing is unrolled per example, so ``make_ir(vmap(f))``
has as many equations for a batch of 1000 as for a batch of 2.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from functrace import tree_util
from functrace.core.abstract import ShapedArray
from functrace.core.batching_util import move_axis
from functrace.core.primitive import batch_rules, get_rule
from functrace.core.source_info import api_boundary, with_user_line
from functrace.core.staging import leaf_names
from functrace.core.trace import Trace, Tracer, get_aval, new_main


class BatchTracer(Tracer):
    __slots__ = ("val", "batch_dim")

    def __init__(self, trace: BatchTrace, val: Any, batch_dim: int | None):
        self._trace = trace
        self.val = val
        self.batch_dim = batch_dim

    @property
    def aval(self) -> ShapedArray:
        aval = get_aval(self.val)
        if self.batch_dim is None:
            return aval
        shape = aval.shape[: self.batch_dim] + aval.shape[self.batch_dim + 1 :]
        return ShapedArray(shape, aval.dtype, aval.weak_type)

    def inner(self) -> Any:
        # An unmapped value is the same for every example: it can be concrete.
        return self.val if self.batch_dim is None else None

    def full_lower(self) -> Any:
        return self.val if self.batch_dim is None else self


class BatchTrace(Trace):
    __slots__ = ()

    @property
    def axis_size(self) -> int:
        return self.main.global_data

    def pure(self, val: Any) -> BatchTracer:
        return BatchTracer(self, val, None)

    lift = pure

    def process_primitive(self, primitive, tracers, params):
        vals = [t.val for t in tracers]
        dims = [t.batch_dim for t in tracers]
        if all(d is None for d in dims):
            outs = primitive.bind(*vals, **params)
            outs = outs if primitive.multiple_results else [outs]
            return [BatchTracer(self, o, None) for o in outs]
        # Type-check the per-example operation first, so errors describe the user's shapes
        # rather than the batched ones.
        primitive.abstract_eval(*[t.aval for t in tracers], **params)
        rule = get_rule(batch_rules, primitive, "batch")
        outs, out_dims = rule(vals, dims, **params)
        return [BatchTracer(self, o, d) for o, d in zip(outs, out_dims, strict=True)]


def _normalize_axis(axis: int | None, ndim: int, what: str) -> int | None:
    if axis is None:
        return None
    if not isinstance(axis, int):
        raise ValueError(with_user_line(f"vmap: {what} must be an int or None, got {axis!r}"))
    if not -ndim <= axis < ndim:
        raise ValueError(with_user_line(f"vmap: {what}={axis} is out of range for a value of rank {ndim}"))
    return axis % ndim


def _broadcast_prefix(prefix: Any, tree: Any, what: str) -> list:
    """One axis spec per leaf of ``tree``, from a pytree-prefix spec (``None`` = not mapped)."""
    leaves, treedef = tree_util.tree_flatten(tree)
    if prefix is None or isinstance(prefix, int):
        return [prefix] * len(leaves)
    prefix_def = tree_util.tree_structure(prefix, is_leaf=lambda x: x is None)
    try:
        subtrees = tree_util.flatten_up_to(prefix_def, tree)
    except ValueError:
        raise ValueError(
            with_user_line(
                f"vmap {what} must be an int, None, or a pytree prefix of the arguments: "
                f"got {prefix!r} for arguments structured as {treedef}"
            )
        ) from None
    specs = tree_util.tree_leaves(prefix, is_leaf=lambda x: x is None)
    return [s for s, sub in zip(specs, subtrees, strict=True) for _ in tree_util.tree_leaves(sub)]


def _axis_size(leaves: list, axes: list, axis_size: int | None, names: list[str]) -> int:
    sizes = {get_aval(x).shape[a] for x, a in zip(leaves, axes, strict=True) if a is not None}
    if len(sizes) > 1:
        listed = "; ".join(
            f"{n}: shape {get_aval(x).shape}, axis {a}"
            for x, a, n in zip(leaves, axes, names, strict=True)
            if a is not None
        )
        raise ValueError(with_user_line(f"vmap got mapped axes of different sizes: {listed}"))
    if sizes:
        size = sizes.pop()
        if axis_size is not None and axis_size != size:
            raise ValueError(with_user_line(f"vmap: axis_size={axis_size} but the mapped axes have size {size}"))
        return size
    if axis_size is None:
        raise ValueError(with_user_line("vmap needs axis_size when no argument is mapped (all in_axes are None)"))
    return axis_size


def vmap(fun: Callable, in_axes: Any = 0, out_axes: Any = 0, axis_size: int | None = None) -> Callable:
    """Vectorise ``fun`` over a mapped axis of its arguments.

    ``in_axes``/``out_axes``: an int, ``None`` (not mapped), or a pytree prefix of the
    arguments/results; negative axes count from the end.

    >>> import numpy as np, functrace as ft, functrace.numpy as fnp
    >>> ft.vmap(lambda x, y: x @ y, in_axes=(0, None))(np.ones((5, 3)), np.ones(3))
    array([3., 3., 3., 3., 3.])
    """

    @api_boundary
    @functools.wraps(fun)
    def vmapped(*args: Any) -> Any:
        if isinstance(in_axes, list):
            raise ValueError(with_user_line("vmap in_axes must be a tuple, not a list (lists are pytree nodes)"))
        spec = in_axes
        if isinstance(spec, tuple) and len(spec) != len(args):
            raise ValueError(
                with_user_line(f"vmap in_axes has {len(spec)} entries but the function got {len(args)} arguments")
            )
        leaves, in_tree = tree_util.tree_flatten(args)
        axes = _broadcast_prefix(spec, args, "in_axes")
        axes = [_normalize_axis(a, get_aval(x).ndim, "in_axes") for a, x in zip(axes, leaves, strict=True)]
        names = leaf_names(args, fun)
        if len(names) != len(leaves):
            names = [f"argument leaf {i}" for i in range(len(leaves))]
        size = _axis_size(leaves, axes, axis_size, names)
        out_leaves, out_tree, out_dims = vmap_flat(fun, leaves, axes, size, in_tree)
        out = tree_util.tree_unflatten(out_tree, out_leaves)
        out_spec = _broadcast_prefix(out_axes, out, "out_axes")
        moved = []
        for x, d, target in zip(out_leaves, out_dims, out_spec, strict=True):
            if target is None:
                if d is not None:
                    raise ValueError(with_user_line("vmap: out_axes is None for an output that is mapped"))
                moved.append(x)
                continue
            target = _normalize_axis(target, get_aval(x).ndim + (1 if d is None else 0), "out_axes")
            moved.append(move_axis(x, d, target, size))
        return tree_util.tree_unflatten(out_tree, moved)

    return vmapped


def vmap_flat(
    fun: Callable, leaves: Sequence[Any], axes: Sequence[int | None], size: int, in_tree
) -> tuple[list, Any, list]:
    """Run ``fun`` on batch tracers; returns the output values, structure and mapped axes."""
    with new_main(BatchTrace, size, description="vmap") as main:
        trace = BatchTrace(main)
        tracers = [BatchTracer(trace, x, a) for x, a in zip(leaves, axes, strict=True)]
        out = fun(*tree_util.tree_unflatten(in_tree, tracers))
        out_flat, out_tree = tree_util.tree_flatten(out)
        out_tracers = [trace.full_raise(o) for o in out_flat]
        vals = [t.val for t in out_tracers]
        dims = [t.batch_dim for t in out_tracers]
    return vals, out_tree, dims
