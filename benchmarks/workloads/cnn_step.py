"""``cnn_step``: a small convolutional network on NHWC inputs 64x28x28x1, float32; one
step = the gradient of the cross-entropy and an SGD update.

The network is written once with the stax API, which functrace and
``jax.example_libraries.stax`` share name for name: Conv(32,(3,3),SAME) Relu
MaxPool((2,2),(2,2)) Conv(64,(3,3),SAME) Relu MaxPool((2,2),(2,2)) Flatten Dense(128) Relu
Dense(10) LogSoftmax. PyTorch runs the same layers with its NCHW ``nn.Sequential``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.harness import BACKEND, LEARNING_RATE, System, Workload, bar_best_peer
from benchmarks.workloads.training import sgd_step

BATCH, SIDE, CLASSES = 64, 28, 10
INPUT_SHAPE = (-1, SIDE, SIDE, 1)


def cnn_data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Inputs ``[64, 28, 28, 1]`` (NHWC) and one-hot labels ``[64, 10]``."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(BATCH, SIDE, SIDE, 1)).astype(np.float32)
    labels = np.eye(CLASSES, dtype=np.float32)[rng.integers(0, CLASSES, BATCH)]
    return x, labels


def cnn(stax: Any) -> tuple[Callable, Callable]:
    """The network as ``(init_fun, apply_fun)`` built from a stax module."""
    return stax.serial(
        stax.Conv(32, (3, 3), padding="SAME"),
        stax.Relu,
        stax.MaxPool((2, 2), strides=(2, 2)),
        stax.Conv(64, (3, 3), padding="SAME"),
        stax.Relu,
        stax.MaxPool((2, 2), strides=(2, 2)),
        stax.Flatten,
        stax.Dense(128),
        stax.Relu,
        stax.Dense(CLASSES),
        stax.LogSoftmax,
    )


def cnn_loss(np_module: Any, apply_fun: Callable) -> Callable:
    """Mean cross-entropy of the network's log-probabilities."""

    def loss(params, x, labels):
        return -np_module.mean(np_module.sum(apply_fun(params, x) * labels, axis=1))

    return loss


def functrace_cnn_step() -> Callable[[], Any]:
    """functrace: functrace.stax, the jitted step."""
    import functrace as ft
    import functrace.numpy as fnp
    from functrace import random, stax

    init_fun, apply_fun = cnn(stax)
    _, params = init_fun(random.PRNGKey(0), INPUT_SHAPE)
    step = ft.jit(sgd_step(ft, cnn_loss(fnp, apply_fun)), backend=BACKEND)
    x, labels = cnn_data()
    return lambda: step(params, x, labels)


def jax_cnn_step() -> Callable[[], Any]:
    """JAX: jax.example_libraries.stax, the jitted step."""
    import jax
    import jax.numpy as jnp
    from jax.example_libraries import stax

    init_fun, apply_fun = cnn(stax)
    _, params = init_fun(jax.random.PRNGKey(0), INPUT_SHAPE)
    step = jax.jit(sgd_step(jax, cnn_loss(jnp, apply_fun)))
    x, labels = jax.device_put(cnn_data())
    return lambda: jax.block_until_ready(step(params, x, labels))


def torch_cnn_step() -> Callable[[], Any]:
    """PyTorch: ``nn.Sequential`` on NCHW inputs, ``torch.optim.SGD``."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2, 2),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2, 2),
        nn.Flatten(),
        nn.Linear(64 * (SIDE // 4) ** 2, 128),
        nn.ReLU(),
        nn.Linear(128, CLASSES),
        nn.LogSoftmax(dim=1),
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)
    x, labels = cnn_data()
    x_t, labels_t = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()), torch.from_numpy(labels)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        (-(model(x_t) * labels_t).sum(dim=1).mean()).backward()
        optimizer.step()

    return step


WORKLOAD = Workload(
    name="cnn_step",
    description="stax CNN (2 conv + 2 dense), NHWC 64x28x28x1: jitted grad + SGD step",
    systems=(
        System("functrace", "functrace jit", functrace_cnn_step),
        System("jax", "JAX jit", jax_cnn_step),
        System("torch", "PyTorch eager", torch_cnn_step),
    ),
    bar=bar_best_peer(),
)
