"""The training step that functrace and JAX share: ``grad`` of a loss and an SGD update."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from benchmarks.harness import LEARNING_RATE


def sgd_step(lib: Any, loss: Callable) -> Callable:
    """``(params, *data) -> new params``, un-jitted; ``lib`` is ``functrace`` or ``jax``
    (both have ``grad`` and ``tree_util.tree_map``)."""
    grad_loss = lib.grad(loss)

    def step(params, *data):
        grads = grad_loss(params, *data)
        return lib.tree_util.tree_map(lambda p, g: p - LEARNING_RATE * g, params, grads)

    return step
