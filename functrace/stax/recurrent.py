"""Recurrent layers: ``LSTM`` and ``GRU`` over ``[batch, time, features]`` inputs.

Both start from a zero state, run ``lax.scan`` over the time axis, and return the hidden
state at every step, ``[batch, time, hidden]`` (``return_sequences=True``), or only the last
one, ``[batch, hidden]``. The input projections of all steps are computed before the scan,
as one matrix product. Gates are stacked along the last axis of each weight, ``H`` =
``hidden_size`` columns per gate, in PyTorch's order.

LSTM, params ``(W_x [features, 4H], W_h [H, 4H], b [4H])``, gates ``i, f, g, o``::

    i, f, g, o = split(x_t @ W_x + h @ W_h + b, 4)
    c = sigmoid(f) * c + sigmoid(i) * tanh(g)
    h = sigmoid(o) * tanh(c)

``b`` starts at zero except the forget gate's block, which starts at one.

GRU, params ``(W_x [features, 3H], W_h [H, 3H], b_x [3H], b_h [3H])``, gates ``r, z, n``::

    xr, xz, xn = split(x_t @ W_x + b_x, 3)
    hr, hz, hn = split(h @ W_h + b_h, 3)
    r, z = sigmoid(xr + hr), sigmoid(xz + hz)
    n = tanh(xn + r * hn)
    h = (1 - z) * n + z * h
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import functrace.numpy as fnp
from functrace import nn
from functrace.control_flow.scan import scan
from functrace.nn.initializers import glorot_normal, zeros
from functrace.stax.layer import Layer, as_shape, describe, require_known, shape_error, split_keys


def _recurrent_shapes(name: str, input_shape: Sequence[int], hidden: int, return_sequences: bool):
    shape = as_shape(name, input_shape, rank=3)
    require_known(name, shape, (2,), "the feature dimension (the last)")
    batch, time, _ = shape
    return ((batch, time, hidden) if return_sequences else (batch, hidden)), shape[2]


def _run(name: str, step: Callable, inputs: Any, W_x: Any, bias: Any, hidden: int, return_sequences: bool) -> Any:
    """Scan ``step(h_or_state, projected_x_t)`` over time; returns hidden states."""
    shape = fnp.shape(inputs)
    if len(shape) != 3 or shape[2] != W_x.shape[0]:
        raise shape_error(
            name, f"needs inputs [batch, time, {W_x.shape[0]}] to match the input kernel {W_x.shape}, got {shape}"
        )
    projected = fnp.swapaxes(fnp.dot(inputs, W_x) + bias, 0, 1)  # [time, batch, gates]
    h0 = fnp.zeros((shape[0], hidden), projected.dtype)
    last, hs = step(h0, projected)
    return fnp.swapaxes(hs, 0, 1) if return_sequences else last


def LSTM(
    hidden_size: int,
    return_sequences: bool = True,
    W_init: Callable = glorot_normal(),  # noqa: B008 (JAX's signature; the init is pure)
) -> Layer:
    """A long short-term memory layer (gate layout in the module docstring).

    Args:
      hidden_size: the size ``H`` of the hidden and cell states.
      return_sequences: return every step's hidden state (``[batch, time, H]``) or the
        last one (``[batch, H]``).
      W_init: the initializer of both kernels.

    Returns:
      ``(init_fun, apply_fun)``; the params are ``(W_x, W_h, b)``.

    >>> import numpy as np
    >>> from functrace import random, stax
    >>> init_fun, apply_fun = stax.LSTM(5)
    >>> out_shape, (W_x, W_h, b) = init_fun(random.PRNGKey(0), (-1, 7, 3))
    >>> out_shape, W_x.shape, W_h.shape, b.shape
    ((-1, 7, 5), (3, 20), (5, 20), (20,))
    >>> apply_fun((W_x, W_h, b), np.ones((2, 7, 3), np.float32)).shape
    (2, 7, 5)
    """
    name = describe("LSTM", hidden_size, return_sequences=return_sequences)
    H = hidden_size

    def init_fun(rng: Any, input_shape: Sequence[int]) -> tuple[tuple[int, ...], tuple]:
        output_shape, features = _recurrent_shapes(name, input_shape, H, return_sequences)
        k1, k2 = split_keys(rng, 2)
        b = fnp.concatenate([zeros(None, (H,)), fnp.ones(H, "float32"), zeros(None, (2 * H,))])
        return output_shape, (W_init(k1, (features, 4 * H)), W_init(k2, (H, 4 * H)), b)

    def apply_fun(params: tuple, inputs: Any, *, rng: Any = None, mode: str | None = None) -> Any:
        W_x, W_h, b = params

        def cell(carry: tuple, x: Any) -> tuple[tuple, Any]:
            h, c = carry
            z = x + fnp.dot(h, W_h)
            i, f, g, o = (z[:, k * H : (k + 1) * H] for k in range(4))
            c = nn.sigmoid(f) * c + nn.sigmoid(i) * fnp.tanh(g)
            h = nn.sigmoid(o) * fnp.tanh(c)
            return (h, c), h

        def step(h0: Any, projected: Any) -> tuple[Any, Any]:
            (h, _), hs = scan(cell, (h0, h0), projected)
            return h, hs

        return _run(name, step, inputs, W_x, b, H, return_sequences)

    return init_fun, apply_fun


def GRU(
    hidden_size: int,
    return_sequences: bool = True,
    W_init: Callable = glorot_normal(),  # noqa: B008 (JAX's signature; the init is pure)
    b_init: Callable = zeros,
) -> Layer:
    """A gated recurrent unit layer (gate layout in the module docstring).

    Args:
      hidden_size: the size ``H`` of the hidden state.
      return_sequences: return every step's hidden state (``[batch, time, H]``) or the
        last one (``[batch, H]``).
      W_init, b_init: the initializers of both kernels and of both biases.

    Returns:
      ``(init_fun, apply_fun)``; the params are ``(W_x, W_h, b_x, b_h)``.

    >>> import numpy as np
    >>> from functrace import random, stax
    >>> init_fun, apply_fun = stax.GRU(4, return_sequences=False)
    >>> out_shape, params = init_fun(random.PRNGKey(0), (-1, 6, 3))
    >>> out_shape, [p.shape for p in params]
    ((-1, 4), [(3, 12), (4, 12), (12,), (12,)])
    >>> apply_fun(params, np.ones((2, 6, 3), np.float32)).shape
    (2, 4)
    """
    name = describe("GRU", hidden_size, return_sequences=return_sequences)
    H = hidden_size

    def init_fun(rng: Any, input_shape: Sequence[int]) -> tuple[tuple[int, ...], tuple]:
        output_shape, features = _recurrent_shapes(name, input_shape, H, return_sequences)
        k1, k2, k3, k4 = split_keys(rng, 4)
        params = (W_init(k1, (features, 3 * H)), W_init(k2, (H, 3 * H)), b_init(k3, (3 * H,)), b_init(k4, (3 * H,)))
        return output_shape, params

    def apply_fun(params: tuple, inputs: Any, *, rng: Any = None, mode: str | None = None) -> Any:
        W_x, W_h, b_x, b_h = params

        def cell(h: Any, x: Any) -> tuple[Any, Any]:
            hh = fnp.dot(h, W_h) + b_h
            xr, xz, xn = (x[:, k * H : (k + 1) * H] for k in range(3))
            hr, hz, hn = (hh[:, k * H : (k + 1) * H] for k in range(3))
            r, z = nn.sigmoid(xr + hr), nn.sigmoid(xz + hz)
            n = fnp.tanh(xn + r * hn)
            h = (1 - z) * n + z * h
            return h, h

        def step(h0: Any, projected: Any) -> tuple[Any, Any]:
            return scan(cell, h0, projected)

        return _run(name, step, inputs, W_x, b_x, H, return_sequences)

    return init_fun, apply_fun


__all__ = ["GRU", "LSTM"]
