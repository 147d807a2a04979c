"""First-order optimizers, with JAX's ``example_libraries.optimizers`` conventions.

An optimizer is a triple ``(init_fun, update_fun, get_params)``:

- ``opt_state = init_fun(params)``;
- ``opt_state = update_fun(step, grads, opt_state)`` (``grads`` shaped like ``params``);
- ``params = get_params(opt_state)``.

``opt_state`` is a plain pytree, a tuple of trees shaped like ``params``: the parameters
first, then the optimizer's statistics (``adam``: ``(params, m, v)``). So it can cross
``jit``, be saved with ``functrace.save`` and loaded back. ``step_size`` is a number or a
schedule ``step -> step size``; the step may be a traced integer (under ``jit``), and the
step size is converted to each parameter's dtype so float32 parameters stay float32.

>>> import numpy as np, functrace as ft
>>> from functrace import optimizers
>>> init_fun, update_fun, get_params = optimizers.sgd(0.1)
>>> state = init_fun({"w": np.array([1.0, -2.0])})
>>> for i in range(3):
...     grads = ft.grad(lambda p: (p["w"] ** 2).sum())(get_params(state))
...     state = update_fun(i, grads, state)
>>> get_params(state)["w"]
array([ 0.512, -1.024])
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

import functrace.numpy as fnp
from functrace.tree_util import tree_flatten, tree_leaves, tree_map, tree_unflatten

Schedule = Callable[[Any], Any]
StepSize = float | Schedule
Optimizer = tuple[Callable, Callable, Callable]

__all__ = [
    "adagrad",
    "adam",
    "clip_grads",
    "constant",
    "exponential_decay",
    "inverse_time_decay",
    "l2_norm",
    "make_schedule",
    "momentum",
    "nesterov",
    "optimizer",
    "piecewise_constant",
    "polynomial_decay",
    "rmsprop",
    "sgd",
]


# --- lifting per-array optimizers over pytrees ----------------------------------------------


def optimizer(opt_maker: Callable[..., Optimizer]) -> Callable[..., Optimizer]:
    """Decorator: lift an optimizer written for one array to pytrees of arrays.

    ``opt_maker(*args)`` returns ``(init, update, get_params)`` on single arrays, where the
    per-array state is a tuple of arrays. The lifted optimizer's state is a tuple with one
    tree (shaped like ``params``) per entry of that per-array tuple.

    >>> import numpy as np
    >>> @optimizer
    ... def halve():
    ...     return (lambda x: (x,)), (lambda i, g, s: (s[0] / 2,)), (lambda s: s[0])
    >>> init_fun, update_fun, get_params = halve()
    >>> get_params(update_fun(0, [np.ones(2)], init_fun([np.ones(2)])))
    [array([0.5, 0.5])]
    """

    @functools.wraps(opt_maker)
    def tree_opt_maker(*args: Any, **kwargs: Any) -> Optimizer:
        init, update, get_params = opt_maker(*args, **kwargs)
        num_slots = len(init(np.zeros((), np.float32)))

        def tree_init(params: Any) -> tuple:
            leaves, treedef = tree_flatten(params)
            return _transpose_states(treedef, [init(x) for x in leaves], num_slots)

        def tree_update(step: Any, grads: Any, opt_state: tuple) -> tuple:
            slots, treedef = _slot_leaves(opt_state, num_slots)
            grad_leaves, grad_def = tree_flatten(grads)
            if grad_def != treedef:
                raise ValueError(f"update_fun: gradients of structure {grad_def} for parameters of structure {treedef}")
            new = [update(step, g, tuple(s[j] for s in slots)) for j, g in enumerate(grad_leaves)]
            return _transpose_states(treedef, new, num_slots)

        def tree_get_params(opt_state: tuple) -> Any:
            slots, treedef = _slot_leaves(opt_state, num_slots)
            return tree_unflatten(treedef, [get_params(per_leaf) for per_leaf in zip(*slots, strict=True)])

        return tree_init, tree_update, tree_get_params

    return tree_opt_maker


def _transpose_states(treedef: Any, states: list[tuple], num_slots: int) -> tuple:
    """Per-leaf state tuples -> a tuple of trees, one per state entry."""
    return tuple(tree_unflatten(treedef, [s[k] for s in states]) for k in range(num_slots))


def _slot_leaves(opt_state: Any, num_slots: int) -> tuple[list[list], Any]:
    """The leaves of each tree in ``opt_state``, and their common structure."""
    if not isinstance(opt_state, tuple) or len(opt_state) != num_slots:
        length = f" of length {len(opt_state)}" if isinstance(opt_state, tuple | list) else ""
        raise ValueError(
            f"optimizer state must be a tuple of {num_slots} trees (as init_fun returns), "
            f"got {type(opt_state).__name__}{length}"
        )
    flat = [tree_flatten(slot) for slot in opt_state]
    treedef = flat[0][1]
    for _, slot_def in flat[1:]:
        if slot_def != treedef:
            raise ValueError(f"optimizer state trees differ in structure: {treedef} and {slot_def}")
    return [leaves for leaves, _ in flat], treedef


def _like(value: Any, x: Any) -> Any:
    """A step-dependent scalar in ``x``'s float dtype: under ``jit`` the step is a traced
    integer, and ``0.9 ** step`` would otherwise be float64 and promote float32 parameters."""
    dtype = fnp.asarray(x).dtype
    return fnp.asarray(value, dtype) if dtype.kind == "f" else value


# --- optimizers -------------------------------------------------------------------------------


@optimizer
def sgd(step_size: StepSize) -> Optimizer:
    """Stochastic gradient descent: ``x -= step_size(i) * g``.

    >>> import numpy as np
    >>> from functrace import optimizers
    >>> init_fun, update_fun, get_params = optimizers.sgd(0.5)
    >>> get_params(update_fun(0, np.array([2.0]), init_fun(np.array([1.0]))))
    array([0.])
    """
    step_size = make_schedule(step_size)

    def init(x0: Any) -> tuple:
        return (x0,)

    def update(i: Any, g: Any, state: tuple) -> tuple:
        (x,) = state
        return (x - _like(step_size(i), x) * g,)

    return init, update, lambda state: state[0]


@optimizer
def momentum(step_size: StepSize, mass: float) -> Optimizer:
    """Heavy-ball momentum: ``v = mass * v + g``; ``x -= step_size(i) * v``.

    >>> import numpy as np
    >>> from functrace import optimizers
    >>> init_fun, update_fun, get_params = optimizers.momentum(0.1, mass=0.9)
    >>> state = init_fun(np.array([1.0]))
    >>> state = update_fun(0, np.array([1.0]), state)
    >>> get_params(update_fun(1, np.array([1.0]), state))
    array([0.71])
    """
    step_size = make_schedule(step_size)

    def init(x0: Any) -> tuple:
        return x0, fnp.zeros_like(x0)

    def update(i: Any, g: Any, state: tuple) -> tuple:
        x, velocity = state
        velocity = mass * velocity + g
        return x - _like(step_size(i), x) * velocity, velocity

    return init, update, lambda state: state[0]


@optimizer
def nesterov(step_size: StepSize, mass: float) -> Optimizer:
    """Nesterov momentum: ``v = mass * v + g``; ``x -= step_size(i) * (mass * v + g)``.

    >>> import numpy as np
    >>> from functrace import optimizers
    >>> init_fun, update_fun, get_params = optimizers.nesterov(0.1, mass=0.9)
    >>> get_params(update_fun(0, np.array([1.0]), init_fun(np.array([1.0]))))
    array([0.81])
    """
    step_size = make_schedule(step_size)

    def init(x0: Any) -> tuple:
        return x0, fnp.zeros_like(x0)

    def update(i: Any, g: Any, state: tuple) -> tuple:
        x, velocity = state
        velocity = mass * velocity + g
        return x - _like(step_size(i), x) * (mass * velocity + g), velocity

    return init, update, lambda state: state[0]


@optimizer
def adagrad(step_size: StepSize, momentum: float = 0.9) -> Optimizer:
    """Adagrad with momentum: ``s += g**2``; ``m = (1 - momentum) * g / sqrt(s) + momentum * m``;
    ``x -= step_size(i) * m`` (entries with ``s == 0`` take no step).

    >>> import numpy as np
    >>> from functrace import optimizers
    >>> init_fun, update_fun, get_params = optimizers.adagrad(1.0, momentum=0.0)
    >>> get_params(update_fun(0, np.array([4.0, 0.0]), init_fun(np.array([1.0, 1.0]))))
    array([0., 1.])
    """
    step_size = make_schedule(step_size)

    def init(x0: Any) -> tuple:
        return x0, fnp.zeros_like(x0), fnp.zeros_like(x0)

    def update(i: Any, g: Any, state: tuple) -> tuple:
        x, g_sq, m = state
        g_sq = g_sq + g * g
        seen = g_sq > 0
        # The inner where keeps sqrt away from 0, so no inf is ever computed.
        inv_sqrt = fnp.where(seen, 1.0 / fnp.sqrt(fnp.where(seen, g_sq, 1.0)), 0.0)
        m = (1.0 - momentum) * (g * inv_sqrt) + momentum * m
        return x - _like(step_size(i), x) * m, g_sq, m

    return init, update, lambda state: state[0]


@optimizer
def rmsprop(step_size: StepSize, gamma: float = 0.9, eps: float = 1e-8) -> Optimizer:
    """RMSProp: ``s = gamma * s + (1 - gamma) * g**2``; ``x -= step_size(i) * g / sqrt(s + eps)``.

    >>> import numpy as np
    >>> from functrace import optimizers
    >>> init_fun, update_fun, get_params = optimizers.rmsprop(0.1, gamma=0.0, eps=0.0)
    >>> get_params(update_fun(0, np.array([-3.0]), init_fun(np.array([1.0]))))
    array([1.1])
    """
    step_size = make_schedule(step_size)

    def init(x0: Any) -> tuple:
        return x0, fnp.zeros_like(x0)

    def update(i: Any, g: Any, state: tuple) -> tuple:
        x, avg_sq_grad = state
        avg_sq_grad = gamma * avg_sq_grad + (1.0 - gamma) * (g * g)
        return x - _like(step_size(i), x) * g / fnp.sqrt(avg_sq_grad + eps), avg_sq_grad

    return init, update, lambda state: state[0]


@optimizer
def adam(step_size: StepSize, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> Optimizer:
    """Adam: bias-corrected first and second moment estimates ``m`` and ``v``;
    ``x -= step_size(i) * m_hat / (sqrt(v_hat) + eps)``. The first step is ``i = 0``.

    >>> import numpy as np
    >>> from functrace import optimizers
    >>> init_fun, update_fun, get_params = optimizers.adam(0.1)
    >>> get_params(update_fun(0, np.array([5.0, -5.0]), init_fun(np.array([1.0, 1.0]))))
    array([0.9, 1.1])
    """
    step_size = make_schedule(step_size)

    def init(x0: Any) -> tuple:
        return x0, fnp.zeros_like(x0), fnp.zeros_like(x0)

    def update(i: Any, g: Any, state: tuple) -> tuple:
        x, m, v = state
        m = (1.0 - b1) * g + b1 * m
        v = (1.0 - b2) * (g * g) + b2 * v
        m_hat = m / _like(1.0 - b1 ** (i + 1), x)
        v_hat = v / _like(1.0 - b2 ** (i + 1), x)
        return x - _like(step_size(i), x) * m_hat / (fnp.sqrt(v_hat) + eps), m, v

    return init, update, lambda state: state[0]


# --- schedules --------------------------------------------------------------------------------


def constant(step_size: float) -> Schedule:
    """The schedule that is always ``step_size``.

    >>> from functrace import optimizers
    >>> optimizers.constant(0.1)(1000)
    0.1
    """

    def schedule(i: Any) -> Any:
        return step_size

    return schedule


def exponential_decay(step_size: float, decay_steps: float, decay_rate: float) -> Schedule:
    """``step_size * decay_rate ** (i / decay_steps)``.

    >>> from functrace import optimizers
    >>> optimizers.exponential_decay(1.0, decay_steps=10, decay_rate=0.5)(20)
    0.25
    """

    def schedule(i: Any) -> Any:
        return step_size * decay_rate ** (i / decay_steps)

    return schedule


def inverse_time_decay(step_size: float, decay_steps: float, decay_rate: float, staircase: bool = False) -> Schedule:
    """``step_size / (1 + decay_rate * i / decay_steps)``; with ``staircase`` the ratio
    ``i / decay_steps`` is floored.

    >>> from functrace import optimizers
    >>> optimizers.inverse_time_decay(1.0, decay_steps=10, decay_rate=1.0, staircase=True)(15)
    np.float64(0.5)
    """

    def schedule(i: Any) -> Any:
        ratio = fnp.floor(i / decay_steps) if staircase else i / decay_steps
        return step_size / (1 + decay_rate * ratio)

    return schedule


def polynomial_decay(step_size: float, decay_steps: int, final_step_size: float, power: float = 1.0) -> Schedule:
    """From ``step_size`` to ``final_step_size`` over ``decay_steps`` steps along
    ``(1 - i / decay_steps) ** power``, then constant.

    >>> from functrace import optimizers
    >>> schedule = optimizers.polynomial_decay(1.0, decay_steps=4, final_step_size=0.5)
    >>> [float(schedule(i)) for i in (0, 2, 4, 8)]
    [1.0, 0.75, 0.5, 0.5]
    """

    def schedule(i: Any) -> Any:
        step_num = fnp.minimum(i, decay_steps)
        step_mult = (1 - step_num / decay_steps) ** power
        return step_mult * (step_size - final_step_size) + final_step_size

    return schedule


def piecewise_constant(boundaries: Sequence[float], values: Sequence[float]) -> Schedule:
    """``values[k]`` where ``k`` counts the boundaries that ``i`` exceeds:
    ``values[0]`` for ``i <= boundaries[0]``, ``values[1]`` up to ``boundaries[1]`` …

    >>> from functrace import optimizers
    >>> schedule = optimizers.piecewise_constant([10, 20], [1.0, 0.5, 0.1])
    >>> [float(schedule(i)) for i in (0, 10, 11, 21)]
    [1.0, 1.0, 0.5, 0.1]
    """
    boundaries, values = np.asarray(boundaries), np.asarray(values)
    if boundaries.ndim != 1 or values.ndim != 1 or values.shape[0] != boundaries.shape[0] + 1:
        raise ValueError(
            "piecewise_constant needs one more value than boundaries (both 1-D), "
            f"got {values.shape[0] if values.ndim == 1 else values.shape} values "
            f"and {boundaries.shape[0] if boundaries.ndim == 1 else boundaries.shape} boundaries"
        )

    def schedule(i: Any) -> Any:
        return fnp.take(values, fnp.sum(fnp.greater(i, boundaries)))

    return schedule


def make_schedule(scalar_or_schedule: StepSize) -> Schedule:
    """A schedule as is; a number as the ``constant`` schedule.

    >>> from functrace import optimizers
    >>> optimizers.make_schedule(0.5)(3)
    0.5
    """
    if callable(scalar_or_schedule):
        return scalar_or_schedule
    if np.ndim(scalar_or_schedule) == 0 and np.asarray(scalar_or_schedule).dtype.kind in "iuf":
        return constant(scalar_or_schedule)
    raise TypeError(f"step_size must be a number or a schedule (a function of the step), got {scalar_or_schedule!r}")


# --- gradient utilities -----------------------------------------------------------------------


def l2_norm(tree: Any) -> Any:
    """The L2 norm of all the leaves of ``tree`` together.

    >>> import numpy as np
    >>> from functrace import optimizers
    >>> float(optimizers.l2_norm({"a": np.array([3.0]), "b": np.array([[4.0]])}))
    5.0
    """
    return fnp.sqrt(sum(fnp.sum(x * x) for x in tree_leaves(tree)))


def clip_grads(grad_tree: Any, max_norm: float) -> Any:
    """Scale ``grad_tree`` down so that its ``l2_norm`` is at most ``max_norm``.

    >>> import numpy as np
    >>> from functrace import optimizers
    >>> optimizers.clip_grads([np.array([3.0, 4.0])], 1.0)
    [array([0.6, 0.8])]
    """
    norm = l2_norm(grad_tree)
    # max_norm / max(norm, max_norm) is 1 below the limit and never divides by zero.
    scale = max_norm / fnp.maximum(norm, max_norm)
    return tree_map(lambda g: g * _like(scale, g), grad_tree)
