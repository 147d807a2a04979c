"""The programmer classifier of the introduction: l33t h4x0r or n00b?

Two features per programmer — the most successive pointers to pointers they keep in
their head, and litres of coffee per year — and one-hot labels. A small MLP built with
``stax`` is trained with Adam (``optimizers``), ``value_and_grad`` and ``jit``, with an
L2 penalty and dropout; the script prints progress and saves the loss curve and the
decision boundary.

    python examples/programmer_classifier.py [--steps 300] [--out examples/out]
"""

from __future__ import annotations

import argparse
import os

import numpy as np

import functrace as ft
import functrace.numpy as fnp
from functrace import optimizers, random, stax

CLASSES = ("l33t h4x0r", "n00b")


def make_data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic programmers: hackers juggle more pointers and drink less coffee."""
    rng = np.random.default_rng(seed)
    hacker = rng.uniform(size=n) < 0.5
    pointers = np.where(hacker, rng.normal(6, 2, n), rng.normal(1.5, 1.2, n)).clip(0, None)
    coffee = np.where(hacker, rng.normal(300, 120, n), rng.normal(700, 200, n)).clip(0, None)
    features = np.stack([pointers / 10.0, coffee / 1000.0], axis=1).astype(np.float32)
    labels = np.eye(2, dtype=np.float32)[np.where(hacker, 0, 1)]
    return features, labels


init_fun, apply_fun = stax.serial(
    stax.Dense(16), stax.Relu, stax.Dropout(0.1), stax.Dense(16), stax.Relu, stax.Dense(2), stax.LogSoftmax
)


def loss(params, features, labels, rng, l2=1e-4):
    log_probs = apply_fun(params, features, rng=rng, mode="train")
    cross_entropy = -fnp.mean(fnp.sum(log_probs * labels, axis=1))
    return cross_entropy + l2 * optimizers.l2_norm(params) ** 2


opt_init, opt_update, get_params = optimizers.adam(optimizers.exponential_decay(0.05, 100, 0.5))


@ft.jit
def train_step(step, opt_state, features, labels, rng):
    value, grads = ft.value_and_grad(loss)(get_params(opt_state), features, labels, rng)
    return opt_update(step, grads, opt_state), value


def accuracy(params, features, labels) -> float:
    predictions = np.argmax(apply_fun(params, features, mode="test"), axis=1)
    return float(np.mean(predictions == np.argmax(labels, axis=1)))


def save_plots(losses, params, features, labels, out_dir: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_map) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(losses)
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("training loss")
    grid_p, grid_c = np.meshgrid(np.linspace(0, 1.2, 120), np.linspace(0, 1.4, 120))
    grid = np.stack([grid_p.ravel(), grid_c.ravel()], axis=1).astype(np.float32)
    hacker_prob = np.exp(apply_fun(params, grid, mode="test")[:, 0]).reshape(grid_p.shape)
    ax_map.contourf(grid_p * 10, grid_c * 1000, hacker_prob, levels=20, cmap="RdBu")
    for k, name in enumerate(CLASSES):
        chosen = labels[:, k] == 1
        ax_map.scatter(features[chosen, 0] * 10, features[chosen, 1] * 1000, s=8, label=name)
    ax_map.set_xlabel("successive pointers to pointers")
    ax_map.set_ylabel("litres of coffee per year")
    ax_map.legend()
    fig.tight_layout()
    path = os.path.join(out_dir, "programmer_classifier.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "out"))
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)

    features, labels = make_data(512)
    test_features, test_labels = make_data(256, seed=1)
    key = random.PRNGKey(0)
    _, params = init_fun(key, (-1, 2))
    opt_state = opt_init(params)
    losses = []
    for step in range(args.steps):
        opt_state, value = train_step(step, opt_state, features, labels, random.fold_in(key, step))
        losses.append(float(value))
        if step % 50 == 0 or step == args.steps - 1:
            params = get_params(opt_state)
            print(f"step {step:4d}  loss {value:.4f}  test accuracy {accuracy(params, test_features, test_labels):.3f}")
    params = get_params(opt_state)
    print(f"saved {save_plots(losses, params, features, labels, args.out)}")
    print("a programmer with 8 pointers to pointers and 200 l of coffee is a", end=" ")
    probs = np.exp(apply_fun(params, np.array([[0.8, 0.2]], np.float32), mode="test"))[0]
    print(f"{CLASSES[int(np.argmax(probs))]} (p={probs.max():.2f})")


if __name__ == "__main__":
    main()
