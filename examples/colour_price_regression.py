"""Colour -> price: the linear regression of the introduction, trained with functrace.

A colour b = (R, G, B) has a market price f(b) = w1*R + w2*G + w3*B + c. We fit w and
c to noisy synthetic prices by gradient descent on the mean squared error.

The gradient comes from ``functrace.value_and_grad``; the whole training step (loss,
gradient and update) is traced into one IR and run by ``jit``. The script prints
progress, saves the loss curve and the traced graph of one step.

    python examples/colour_price_regression.py [--steps 200] [--out examples/out]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess

import numpy as np

import functrace as ft
import functrace.numpy as fnp

TRUE_W = np.array([0.8, 1.5, 0.3], np.float32)
TRUE_C = np.float32(20.0)


def make_data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random colours scaled to [0, 1] and their noisy prices."""
    rng = np.random.default_rng(seed)
    colours = rng.integers(0, 256, size=(n, 3)).astype(np.float32) / 255.0
    prices = colours @ TRUE_W * 100 + TRUE_C + rng.normal(0, 2.0, n).astype(np.float32)
    return colours, prices.astype(np.float32)


def predict(params: dict, colours):
    return colours @ params["w"] + params["c"]


def mse(params: dict, colours, prices):
    return fnp.mean((predict(params, colours) - prices) ** 2)


@ft.jit
def train_step(params: dict, colours, prices, learning_rate):
    # The gradient is derived by functrace (symbol to symbol) and staged with the rest
    # of the step into one IR.
    loss, grads = ft.value_and_grad(mse)(params, colours, prices)
    new_params = ft.tree_util.tree_map(lambda p, g: p - learning_rate * g, params, grads)
    return new_params, loss


def save_loss_plot(losses: list[float], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.semilogy(losses)
    ax.set_xlabel("step")
    ax.set_ylabel("mean squared error")
    ax.set_title("colour -> price: linear regression")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def save_graph(params, colours, prices, out_dir: str) -> str:
    """The traced IR of one training step, as text and DOT (and PNG when Graphviz is installed)."""
    ir = ft.make_ir(train_step.__wrapped__)(params, colours, prices, np.float32(0.1))
    with open(os.path.join(out_dir, "train_step.ir.txt"), "w") as f:
        f.write(str(ir) + "\n")
    dot_path = os.path.join(out_dir, "train_step.dot")
    with open(dot_path, "w") as f:
        f.write(ir.to_dot())
    if shutil.which("dot"):
        subprocess.run(["dot", "-Tpng", dot_path, "-o", dot_path[:-4] + ".png"], check=True)
    return dot_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "out"))
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)

    colours, prices = make_data(256)
    params = {"w": np.zeros(3, np.float32), "c": np.float32(0.0)}
    learning_rate = np.float32(0.5)
    losses = []
    for step in range(args.steps):
        params, loss = train_step(params, colours, prices, learning_rate)
        losses.append(float(loss))
        if step % 20 == 0 or step == args.steps - 1:
            print(f"step {step:4d}  mse {loss:10.3f}  w={np.round(params['w'], 3)}  c={float(params['c']):.2f}")

    print(f"true   w={TRUE_W * 100}  c={TRUE_C}")
    plot = os.path.join(args.out, "colour_price_loss.png")
    save_loss_plot(losses, plot)
    dot = save_graph(params, colours, prices, args.out)
    print(f"saved {plot} and {dot}")


if __name__ == "__main__":
    main()
