"""Gradient checking against finite differences, JAX's method.

For each check, one random direction per input leaf: forward mode compares ``jvp``
with central differences; reverse mode checks the adjoint identity
``<c, J t> == <J^T c, t>`` with ``J t`` from central differences and ``J^T c`` from
``vjp``. Higher orders recurse on the directional derivative. Inputs are converted to
float64, so differences are accurate; default tolerances are 1e-5 (step 1e-4), or 2e-3
(step 1e-2) for a function whose outputs are float32 even so.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from functrace import tree_util
from functrace.ad import jvp, vjp

_DEFAULT_EPS = 1e-4
_DEFAULT_TOL = 1e-5
# (tolerance, finite-difference step) by whether the function computes in float32.
_DEFAULT_TOLERANCES = {False: (_DEFAULT_TOL, _DEFAULT_EPS), True: (2e-3, 1e-2)}


def _to_float64(x: Any) -> Any:
    arr = np.asarray(x)
    return arr.astype(np.float64) if arr.dtype.kind == "f" else arr


def _is_float(x: Any) -> bool:
    return np.asarray(x).dtype.kind == "f"


def _random_like(rng: np.random.Generator, x: Any) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind != "f":
        return np.zeros(arr.shape, arr.dtype)
    return rng.normal(size=arr.shape).astype(arr.dtype)


def _add_scaled(xs: list, ts: list, scale: float) -> list:
    return [x + scale * t if _is_float(x) else x for x, t in zip(xs, ts, strict=True)]


def _inner(xs: list, ys: list) -> float:
    return float(
        sum(np.vdot(np.asarray(x, np.float64), np.asarray(y, np.float64)) for x, y in zip(xs, ys, strict=True))
    )


def _flat_call(fun: Callable, in_tree) -> Callable:
    def call(*flat_args):
        out = fun(*tree_util.tree_unflatten(in_tree, flat_args))
        return [np.asarray(o) for o in tree_util.tree_leaves(out)]

    return call


def numerical_jvp(fun: Callable, args: Sequence[Any], tangents: Sequence[Any], eps: float = _DEFAULT_EPS) -> list:
    """Central differences ``(f(x + eps t) - f(x - eps t)) / (2 eps)``, flat outputs."""
    flat, in_tree = tree_util.tree_flatten(tuple(args))
    flat_t = tree_util.tree_leaves(tuple(tangents))
    call = _flat_call(fun, in_tree)
    plus = call(*_add_scaled(flat, flat_t, eps))
    minus = call(*_add_scaled(flat, flat_t, -eps))
    return [(p - m) / (2 * eps) if p.dtype.kind == "f" else np.zeros_like(p) for p, m in zip(plus, minus, strict=True)]


def numerical_grad(fun: Callable, args: Sequence[Any], eps: float = _DEFAULT_EPS) -> tuple:
    """The gradient of scalar ``fun`` at ``args`` by central differences, one entry per argument.

    >>> import numpy as np
    >>> numerical_grad(lambda x, y: np.sum(x * y), (np.array([1.0, 2.0]), np.array([3.0, 4.0])))
    (array([3., 4.]), array([1., 2.]))
    """
    args = tuple(tree_util.tree_map(_to_float64, tuple(args)))
    flat, in_tree = tree_util.tree_flatten(args)
    call = _flat_call(fun, in_tree)
    grads = []
    for i, leaf in enumerate(flat):
        leaf = np.asarray(leaf)
        g = np.zeros(leaf.shape, np.float64)
        for k in range(leaf.size):
            step = np.zeros(leaf.size)
            step[k] = eps
            plus = list(flat)
            minus = list(flat)
            plus[i] = leaf + step.reshape(leaf.shape)
            minus[i] = leaf - step.reshape(leaf.shape)
            g.flat[k] = (float(call(*plus)[0]) - float(call(*minus)[0])) / (2 * eps)
        grads.append(g)
    return tuple(tree_util.tree_unflatten(in_tree, grads))


def _assert_close(actual: list, expected: list, what: str, atol: float, rtol: float) -> None:
    for k, (a, e) in enumerate(zip(actual, expected, strict=True)):
        a, e = np.asarray(a, np.float64), np.asarray(e, np.float64)
        if a.shape != e.shape:
            raise AssertionError(f"{what}: output {k} has shape {a.shape}, expected {e.shape}")
        err = np.abs(a - e) - (atol + rtol * np.abs(e))
        if err.size and (np.max(err) > 0 or np.isnan(err).any()):
            worst = np.unravel_index(int(np.nanargmax(np.where(np.isnan(err), np.inf, err))), a.shape)
            raise AssertionError(
                f"{what}: output {k} differs at index {tuple(int(i) for i in worst)}: "
                f"got {a[worst]!r}, expected {e[worst]!r} (atol={atol}, rtol={rtol})"
            )


def check_jvp(fun: Callable, args: Sequence[Any], *, atol: float, rtol: float, eps: float, seed: int = 0) -> None:
    """``jvp`` agrees with central differences along a random direction."""
    rng = np.random.default_rng(seed)
    tangents = tree_util.tree_map(lambda x: _random_like(rng, x), tuple(args))
    _, t_out = jvp(fun, tuple(args), tangents)
    expected = numerical_jvp(fun, args, tangents, eps)
    _assert_close(tree_util.tree_leaves(t_out), expected, "jvp vs finite differences", atol, rtol)


def check_vjp(fun: Callable, args: Sequence[Any], *, atol: float, rtol: float, eps: float, seed: int = 0) -> None:
    """The adjoint identity ``<c, J t> == <J^T c, t>``, ``J t`` by central differences."""
    rng = np.random.default_rng(seed + 1)
    out, f_vjp = vjp(fun, *args)
    cts = tree_util.tree_map(lambda x: _random_like(rng, x), out)
    tangents = tree_util.tree_map(lambda x: _random_like(rng, x), tuple(args))
    ct_in = f_vjp(cts)
    jt = numerical_jvp(fun, args, tangents, eps)
    lhs = _inner(tree_util.tree_leaves(cts), jt)
    rhs = _inner(tree_util.tree_leaves(ct_in), tree_util.tree_leaves(tangents))
    _assert_close([rhs], [lhs], "vjp adjoint identity <J^T c, t> vs <c, J t>", atol, rtol)


def check_grads(
    fun: Callable,
    args: Sequence[Any],
    order: int = 1,
    modes: Sequence[str] = ("fwd", "rev"),
    atol: float | None = None,
    rtol: float | None = None,
    eps: float | None = None,
) -> None:
    """Check ``fun``'s derivatives to ``order`` in ``modes`` against finite differences.

    Raises ``AssertionError`` naming the mode, the order and the worst element.

    >>> import numpy as np, functrace.numpy as fnp
    >>> check_grads(lambda x: fnp.sin(x) * x, (np.array([0.5, 1.5]),), order=2)
    """
    unknown = set(modes) - {"fwd", "rev"}
    if unknown:
        raise ValueError(f"check_grads: unknown modes {sorted(unknown)}; use 'fwd' and/or 'rev'")
    args = tuple(tree_util.tree_map(_to_float64, tuple(args)))
    # Inputs are float64; a function that computes in float32 anyway gets float32 defaults.
    low_precision = any(np.asarray(o).dtype == np.float32 for o in tree_util.tree_leaves(fun(*args)))
    default_tol, default_eps = _DEFAULT_TOLERANCES[low_precision]
    atol = default_tol if atol is None else atol
    rtol = default_tol if rtol is None else rtol
    eps = default_eps if eps is None else eps
    _check_order(fun, args, order, tuple(modes), atol, rtol, eps, seed=0)


def _check_order(fun, args, order, modes, atol, rtol, eps, seed) -> None:
    if "fwd" in modes:
        try:
            check_jvp(fun, args, atol=atol, rtol=rtol, eps=eps, seed=seed)
        except AssertionError as e:
            raise AssertionError(f"order {order} forward mode: {e}") from None
    if "rev" in modes:
        try:
            check_vjp(fun, args, atol=atol, rtol=rtol, eps=eps, seed=seed)
        except AssertionError as e:
            raise AssertionError(f"order {order} reverse mode: {e}") from None
    if order <= 1:
        return
    rng = np.random.default_rng(seed + 7)
    if "fwd" in modes:
        tangents = tree_util.tree_map(lambda x: _random_like(rng, x), args)

        def directional(*primals):
            return jvp(fun, primals, tangents)[1]

        _check_order(directional, args, order - 1, ("fwd",), atol, rtol, eps, seed + 1)
    if "rev" in modes:
        out = fun(*args)
        cts = tree_util.tree_map(lambda x: _random_like(rng, x), out)

        def pullback(*primals):
            return vjp(fun, *primals)[1](cts)

        _check_order(pullback, args, order - 1, ("rev",), atol, rtol, eps, seed + 1)
