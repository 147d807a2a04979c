"""``BatchNorm`` and how its running statistics travel through a training loop.

A ``BatchNorm`` layer's params are ``(beta, gamma, (running_mean, running_var))``. In
train mode the layer normalises with the statistics of the batch and leaves the running
statistics alone; in test mode it normalises with the running statistics. The running
statistics never receive a gradient (they are read through ``stop_gradient``), so an
optimizer leaves them where they are.

The running statistics move only through :func:`stateful`, which runs a network's
``apply_fun`` and returns, next to the outputs, a *state update*: a tree shaped like the
params that holds the new ``(running_mean, running_var)`` of every ``BatchNorm`` that ran
in train mode and ``None`` everywhere else (``new = momentum * old + (1 - momentum) *
batch``, with the biased batch variance). :func:`merge_state` writes an update into
params. A training loop carries them like this::

    init_fun, apply_fun = stax.serial(stax.Conv(8, (3, 3)), stax.BatchNorm(), stax.Relu, ...)
    _, params = init_fun(key, (-1, 28, 28, 1))
    opt_init, opt_update, get_params = optimizers.adam(1e-3)
    opt_state = opt_init(params)
    train_apply = stax.stateful(apply_fun)

    def loss(params, x, y, rng):
        logits, state = train_apply(params, x, rng=rng)
        return cross_entropy(logits, y), state

    @jit
    def step(i, opt_state, params, x, y, rng):
        (value, state), grads = value_and_grad(loss, has_aux=True)(params, x, y, rng)
        opt_state = opt_update(i, grads, opt_state)
        return opt_state, stax.merge_state(get_params(opt_state), state)

    for i, (x, y) in enumerate(batches):
        opt_state, params = step(i, opt_state, params, x, y, random.fold_in(key, i))
    predictions = apply_fun(params, x_test, mode="test")

The optimizer's own copy of the running statistics stays at its initial value; the loop
carries ``params`` (the optimizer's params with the latest statistics merged in) and passes
them to the next step and to test-mode prediction. Call ``stateful`` on the whole network
inside the function being transformed (``jit``, ``grad``), not around a jitted
``apply_fun``.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Sequence
from typing import Any

import functrace.numpy as fnp
from functrace import tree_util
from functrace.core.source_info import with_user_line
from functrace.lax.elementwise import stop_gradient
from functrace.nn.initializers import ones, zeros
from functrace.stax.layer import (
    Layer,
    arg_error,
    as_shape,
    check_mode,
    describe,
    require_known,
    resolve_mode,
    shape_error,
    split_keys,
)

# While ``stateful`` runs: id(running statistics tuple) -> (that tuple, its update).
_UPDATES: contextvars.ContextVar[dict[int, tuple] | None] = contextvars.ContextVar("stax_updates", default=None)


def _normalized_axes(layer: str, axis: Sequence[int], ndim: int) -> tuple[int, ...]:
    axes = tuple(int(a) + ndim if int(a) < 0 else int(a) for a in axis)
    if any(not 0 <= a < ndim for a in axes) or len(set(axes)) != len(axes):
        raise shape_error(layer, f"axis {tuple(axis)} must name distinct dimensions of inputs of rank {ndim}")
    return axes


def BatchNorm(
    axis: Sequence[int] = (0, 1, 2),
    epsilon: float = 1e-5,
    center: bool = True,
    scale: bool = True,
    beta_init: Callable = zeros,
    gamma_init: Callable = ones,
    momentum: float = 0.99,
    mode: str = "train",
) -> Layer:
    """Batch normalisation over the dimensions ``axis`` (default: all but the channels of NHWC).

    Train mode normalises with the batch's mean and (biased) variance; test mode with the
    running statistics. ``y = gamma * (x - mean) / sqrt(var + epsilon) + beta``, with
    ``beta``, ``gamma`` and the statistics shaped like the input without ``axis``. See the
    module docstring for how a training loop updates the running statistics.

    Args:
      axis: the dimensions to normalise over (the statistics are per remaining position).
      epsilon: added to the variance.
      center, scale: whether to learn ``beta`` and ``gamma`` (``()`` in params otherwise).
      beta_init, gamma_init: their initializers.
      momentum: the running statistics' decay per :func:`stateful` update.
      mode: ``"train"`` or ``"test"``; a ``mode`` given to ``apply_fun`` overrides it.

    Returns:
      ``(init_fun, apply_fun)``; params ``(beta, gamma, (running_mean, running_var))``.

    >>> import numpy as np
    >>> from functrace import random, stax
    >>> init_fun, apply_fun = stax.BatchNorm(axis=(0,))
    >>> _, params = init_fun(random.PRNGKey(0), (-1, 3))
    >>> x = np.array([[1.0, 2.0, 3.0], [3.0, 6.0, 9.0]], np.float32)
    >>> apply_fun(params, x).round(3)
    array([[-1., -1., -1.],
           [ 1.,  1.,  1.]], dtype=float32)
    >>> _, state = stax.stateful(apply_fun)(params, x)
    >>> state[2][0]  # running mean: 0.99 * 0 + 0.01 * batch mean
    array([0.02, 0.04, 0.06], dtype=float32)
    """
    axis = (axis,) if isinstance(axis, int) else tuple(axis)
    name = describe("BatchNorm", axis=axis, momentum=momentum)
    check_mode(name, mode)
    if not 0.0 <= momentum <= 1.0:
        raise arg_error(name, f"momentum must be in [0, 1], got {momentum}")
    default_mode = mode

    def init_fun(rng: Any, input_shape: Sequence[int]) -> tuple[tuple[int, ...], tuple]:
        shape = as_shape(name, input_shape)
        axes = _normalized_axes(name, axis, len(shape))
        kept = [d for d in range(len(shape)) if d not in axes]
        require_known(name, shape, kept, "the dimensions not normalised over")
        feature_shape = tuple(shape[d] for d in kept)
        k1, k2 = split_keys(rng, 2)
        beta = beta_init(k1, feature_shape) if center else ()
        gamma = gamma_init(k2, feature_shape) if scale else ()
        stats = (zeros(None, feature_shape), ones(None, feature_shape))
        return shape, (beta, gamma, stats)

    def apply_fun(params: tuple, inputs: Any, *, rng: Any = None, mode: str | None = None) -> Any:
        beta, gamma, stats = params
        shape = fnp.shape(inputs)
        axes = _normalized_axes(name, axis, len(shape))
        broadcast = tuple(1 if d in axes else shape[d] for d in range(len(shape)))
        if tuple(shape[d] for d in range(len(shape)) if d not in axes) != tuple(stats[0].shape):
            raise shape_error(name, f"inputs of shape {shape} do not match the statistics of shape {stats[0].shape}")
        train = resolve_mode(name, default_mode, mode) == "train"
        mean, var = _statistics(inputs, axes, broadcast, stats, train, momentum)
        y = (inputs - mean) / fnp.sqrt(var + epsilon)
        if scale:
            y = y * fnp.reshape(gamma, broadcast)
        if center:
            y = y + fnp.reshape(beta, broadcast)
        return y

    return init_fun, apply_fun


def _statistics(
    inputs: Any, axes: tuple[int, ...], broadcast: tuple[int, ...], stats: tuple, train: bool, momentum: float
) -> tuple[Any, Any]:
    """The mean and variance to normalise with, shaped to broadcast against ``inputs``."""
    if not train:
        return tuple(fnp.reshape(stop_gradient(s), broadcast) for s in stats)
    mean = fnp.mean(inputs, axis=axes, keepdims=True)
    var = fnp.mean(fnp.square(inputs - mean), axis=axes, keepdims=True)
    updates = _UPDATES.get()
    if updates is not None:
        _record_update(updates, stats, mean, var, momentum)
    return mean, var


def _record_update(updates: dict[int, tuple], stats: tuple, mean: Any, var: Any, momentum: float) -> None:
    new = tuple(
        (momentum * old + (1 - momentum) * fnp.reshape(stop_gradient(batch), old.shape)).astype(old.dtype)
        for old, batch in zip(stats, (mean, var), strict=True)
    )
    updates[id(stats)] = (stats, new)


def stateful(apply_fun: Callable) -> Callable:
    """``apply_fun`` that also returns the state update of its ``BatchNorm`` layers.

    Returns:
      ``fun(params, inputs, **kwargs) -> (outputs, state)`` where ``state`` has the
      structure of ``params``, with the new ``(running_mean, running_var)`` of each
      ``BatchNorm`` that ran in train mode and ``None`` elsewhere; see :func:`merge_state`.

    >>> import numpy as np
    >>> from functrace import random, stax
    >>> init_fun, apply_fun = stax.serial(stax.Dense(2), stax.BatchNorm(axis=(0,)))
    >>> _, params = init_fun(random.PRNGKey(0), (-1, 3))
    >>> y, state = stax.stateful(apply_fun)(params, np.ones((4, 3), np.float32))
    >>> state[0], state[1][2][1].shape
    ((None, None), (2,))
    """

    from functrace.api import JittedFunction

    if isinstance(apply_fun, JittedFunction):
        # A cached call would not run the BatchNorm layers' Python code, so no update
        # could be seen: refuse rather than silently return no state.
        raise ValueError(
            with_user_line(
                "stateful must wrap the un-jitted apply_fun; put jit around the stateful function "
                "(or the whole training step) instead"
            )
        )

    def apply_with_state(params: Any, inputs: Any, **kwargs: Any) -> tuple[Any, Any]:
        updates: dict[int, tuple] = {}
        token = _UPDATES.set(updates)
        try:
            outputs = apply_fun(params, inputs, **kwargs)
        finally:
            _UPDATES.reset(token)
        return outputs, _state_tree(params, updates)

    return apply_with_state


def _state_tree(params: Any, updates: dict[int, tuple]) -> Any:
    found: set[int] = set()

    def update_of(node: Any) -> Any:
        if id(node) in updates and updates[id(node)][0] is node:
            found.add(id(node))
            return updates[id(node)][1]
        return None

    state = tree_util.tree_map(update_of, params, is_leaf=lambda node: id(node) in updates)
    if found != set(updates):
        raise ValueError(
            with_user_line(
                "stateful: a BatchNorm ran in train mode with running statistics that are not in the params "
                "passed to the stateful function; pass the params unchanged and call stateful inside jit, "
                "not around a jitted apply_fun"
            )
        )
    return state


def merge_state(params: Any, state: Any) -> Any:
    """``params`` with the running statistics in ``state`` (from :func:`stateful`) written in.

    >>> import numpy as np
    >>> from functrace import random, stax
    >>> init_fun, apply_fun = stax.BatchNorm(axis=(0,))
    >>> _, params = init_fun(random.PRNGKey(0), (-1, 2))
    >>> _, state = stax.stateful(apply_fun)(params, np.array([[1.0, 3.0]], np.float32))
    >>> stax.merge_state(params, state)[2][0]
    array([0.01, 0.03], dtype=float32)
    """
    state_leaves, structure = tree_util.tree_flatten(state, is_leaf=lambda node: node is None)
    try:
        params_parts = tree_util.flatten_up_to(structure, params)
    except ValueError:
        raise ValueError(with_user_line("merge_state: the state does not have the structure of the params")) from None
    merged = [p if s is None else s for p, s in zip(params_parts, state_leaves, strict=True)]
    return tree_util.tree_unflatten(structure, merged)


__all__ = ["BatchNorm", "merge_state", "stateful"]
