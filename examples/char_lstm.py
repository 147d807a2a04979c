"""A character-level LSTM that learns to write, as in the introduction's "what can LSTMs do?".

The model reads a one-hot character sequence, runs an ``stax.LSTM`` over time (a
``lax.scan``) and predicts the next character; ``jit`` compiles the whole training step
(loss, gradient through the scan, Adam update). Every so often it samples text with
``random.categorical``, so you can watch it go from noise to words.

    python examples/char_lstm.py [--steps 400] [--out examples/out]
"""

from __future__ import annotations

import argparse
import os

import numpy as np

import functrace as ft
import functrace.numpy as fnp
from functrace import optimizers, random, stax

# A small public-domain text (Tolstoy's opening lines, in translation) is enough to see
# the model learn spelling and spacing in a few hundred steps.
CORPUS = (
    "Happy families are all alike; every unhappy family is unhappy in its own way. "
    "Everything was in confusion in the Oblonskys' house. The wife had discovered that the "
    "husband was carrying on an intrigue with a French girl, who had been a governess in their "
    "family, and she had announced to her husband that she could not go on living in the same "
    "house with him. This position of affairs had now lasted three days, and not only the "
    "husband and wife themselves, but all the members of their family and household, were "
    "painfully conscious of it. "
) * 4

CHARS = sorted(set(CORPUS))
VOCAB = len(CHARS)
INDEX = {c: i for i, c in enumerate(CHARS)}
SEQ, BATCH, HIDDEN = 32, 16, 96

init_fun, apply_fun = stax.serial(stax.LSTM(HIDDEN), stax.Dense(VOCAB), stax.LogSoftmax)
opt_init, opt_update, get_params = optimizers.adam(0.01)


def batches(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random windows of the corpus: one-hot inputs and next-character targets."""
    codes = np.array([INDEX[c] for c in CORPUS])
    starts = rng.integers(0, len(codes) - SEQ - 1, BATCH)
    windows = np.stack([codes[s : s + SEQ + 1] for s in starts])
    eye = np.eye(VOCAB, dtype=np.float32)
    return eye[windows[:, :-1]], eye[windows[:, 1:]]


def loss(params, inputs, targets):
    return -fnp.mean(fnp.sum(apply_fun(params, inputs) * targets, axis=-1))


@ft.jit
def train_step(step, opt_state, inputs, targets):
    value, grads = ft.value_and_grad(loss)(get_params(opt_state), inputs, targets)
    grads = optimizers.clip_grads(grads, 5.0)
    return opt_update(step, grads, opt_state), value


def sample(params, key, prompt: str = "The ", length: int = 80) -> str:
    """Feed the prompt, then sample one character at a time from the predicted distribution."""
    text = prompt
    eye = np.eye(VOCAB, dtype=np.float32)
    for i in range(length):
        window = text[-SEQ:]
        inputs = eye[[INDEX[c] for c in window]][None]
        log_probs = apply_fun(params, inputs)[0, -1]
        choice = int(random.categorical(random.fold_in(key, i), log_probs))
        text += CHARS[choice]
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "out"))
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)

    rng = np.random.default_rng(0)
    key = random.PRNGKey(0)
    _, params = init_fun(key, (-1, SEQ, VOCAB))
    opt_state = opt_init(params)
    samples = []
    for step in range(args.steps):
        opt_state, value = train_step(step, opt_state, *batches(rng))
        if step % 100 == 0 or step == args.steps - 1:
            text = sample(get_params(opt_state), random.fold_in(key, 10_000 + step))
            samples.append(f"Iteration {step} (loss {float(value):.3f}):\n{text}\n")
            print(samples[-1])
    path = os.path.join(args.out, "char_lstm_samples.txt")
    with open(path, "w") as f:
        f.write("\n".join(samples))
    print(f"saved {path}")


if __name__ == "__main__":
    main()
