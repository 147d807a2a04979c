"""Feed-forward stax layers: dense, convolution, pooling, reshaping, activations, dropout,
embedding.

Convolutions take NHWC inputs and HWIO kernels (``Conv1D``: NWC and WIO); pooling windows
slide over every dimension but the first (batch) and the last (channels). Padding is
``"VALID"``, ``"SAME"`` or explicit ``(lo, hi)`` pairs, one per spatial dimension.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

import functrace.numpy as fnp
from functrace import lax, nn, random
from functrace.core.source_info import with_user_line
from functrace.nn.initializers import glorot_normal, normal
from functrace.numpy.promotion import promote_inexact
from functrace.stax.layer import (
    Layer,
    arg_error,
    as_shape,
    check_mode,
    describe,
    positive_ints,
    require_known,
    resolve_mode,
    shape_error,
    split_keys,
)

Padding = str | tuple[tuple[int, int], ...]


# --- dense and embedding ----------------------------------------------------------------


def Dense(
    out_dim: int,
    W_init: Callable = glorot_normal(),  # noqa: B008 (JAX's signature; the init is pure)
    b_init: Callable = normal(),  # noqa: B008
) -> Layer:
    """A fully connected layer: ``inputs @ W + b`` over the last input dimension.

    Args:
      out_dim: the number of output features.
      W_init, b_init: initializers of the ``(in_dim, out_dim)`` kernel and the ``(out_dim,)`` bias.

    Returns:
      ``(init_fun, apply_fun)``; the params are ``(W, b)``.

    >>> from functrace import random, stax
    >>> init_fun, apply_fun = stax.Dense(3)
    >>> out_shape, (W, b) = init_fun(random.PRNGKey(0), (-1, 5))
    >>> out_shape, W.shape, b.shape
    ((-1, 3), (5, 3), (3,))
    """
    name = describe("Dense", out_dim)

    def init_fun(rng: Any, input_shape: Sequence[int]) -> tuple[tuple[int, ...], tuple]:
        shape = as_shape(name, input_shape, min_rank=1)
        require_known(name, shape, (-1,), "the last (feature) dimension")
        k1, k2 = split_keys(rng, 2)
        return (*shape[:-1], out_dim), (W_init(k1, (shape[-1], out_dim)), b_init(k2, (out_dim,)))

    def apply_fun(params: tuple, inputs: Any, *, rng: Any = None, mode: str | None = None) -> Any:
        W, b = params
        if fnp.ndim(inputs) < 1 or fnp.shape(inputs)[-1] != W.shape[0]:
            raise shape_error(
                name,
                f"inputs of shape {fnp.shape(inputs)} do not match the kernel of shape {W.shape}: "
                f"the last input dimension must be {W.shape[0]}",
            )
        return fnp.dot(inputs, W) + b

    return init_fun, apply_fun


def Embedding(vocab_size: int, dim: int, W_init: Callable = normal(1.0)) -> Layer:  # noqa: B008
    """A lookup table: integer inputs of any shape pick rows of a ``(vocab_size, dim)`` table.

    Args:
      vocab_size: the number of rows (valid inputs are ``0 .. vocab_size - 1``).
      dim: the size of each embedding vector.
      W_init: the initializer of the table (standard normal by default).

    Returns:
      ``(init_fun, apply_fun)``; the params are the table itself, one array.

    >>> import numpy as np
    >>> from functrace import random, stax
    >>> init_fun, apply_fun = stax.Embedding(10, 4)
    >>> out_shape, table = init_fun(random.PRNGKey(0), (-1, 7))
    >>> out_shape, table.shape
    ((-1, 7, 4), (10, 4))
    >>> bool(np.all(apply_fun(table, np.array([[3, 1]]))[0, 0] == table[3]))
    True
    """
    name = describe("Embedding", vocab_size, dim)

    def init_fun(rng: Any, input_shape: Sequence[int]) -> tuple[tuple[int, ...], Any]:
        shape = as_shape(name, input_shape)
        return (*shape, dim), W_init(rng, (vocab_size, dim))

    def apply_fun(params: Any, inputs: Any, *, rng: Any = None, mode: str | None = None) -> Any:
        dtype = np.dtype(fnp.asarray(inputs).dtype)
        if dtype.kind not in "iu":
            raise TypeError(with_user_line(f"{name}: inputs must be integer token ids, got dtype {dtype.name}"))
        return fnp.take(params, inputs, axis=0)

    return init_fun, apply_fun


# --- convolution ------------------------------------------------------------------------


def _check_padding(layer: str, padding: Any, n: int) -> Padding:
    if isinstance(padding, str):
        if padding.upper() not in ("VALID", "SAME"):
            raise arg_error(layer, f"padding must be 'VALID', 'SAME' or (lo, hi) pairs, got {padding!r}")
        return padding.upper()
    try:
        pairs = tuple((int(lo), int(hi)) for lo, hi in padding)
    except (TypeError, ValueError):
        raise arg_error(layer, f"padding must be 'VALID', 'SAME' or (lo, hi) pairs, got {padding!r}") from None
    if len(pairs) != n or any(lo < 0 or hi < 0 for lo, hi in pairs):
        raise arg_error(layer, f"padding needs {n} non-negative (lo, hi) pairs, one per spatial dimension")
    return pairs


def window_outputs(
    layer: str, what: str, in_sizes: Sequence[int], window: Sequence[int], strides: Sequence[int], padding: Padding
) -> tuple[tuple[tuple[int, int], ...], tuple[int, ...]]:
    """The explicit pads and the output sizes of a window sliding over ``in_sizes``."""
    in_sizes = tuple(int(d) for d in in_sizes)
    pads = lax.padtype_to_pads(in_sizes, window, strides, padding) if isinstance(padding, str) else padding
    out = []
    for size, w, s, (lo, hi) in zip(in_sizes, window, strides, pads, strict=True):
        if size + lo + hi < w:
            padded = "" if pads == ((0, 0),) * len(pads) else f" padded by {pads}"
            raise shape_error(
                layer, f"the {what} {tuple(window)} is larger than the spatial dimensions {in_sizes}{padded}"
            )
        out.append((size + lo + hi - w) // s + 1)
    return tuple(pads), tuple(out)


def GeneralConv(
    dimension_numbers: tuple[str, str, str],
    out_chan: int,
    filter_shape: Sequence[int],
    strides: Sequence[int] | None = None,
    padding: str | Sequence[tuple[int, int]] = "VALID",
    W_init: Callable | None = None,
    b_init: Callable = normal(1e-6),  # noqa: B008
) -> Layer:
    """A convolution with any layout, e.g. ``("NCHW", "OIHW", "NCHW")``.

    Args:
      dimension_numbers: the layouts of inputs, kernel and outputs (letters ``N``, ``C``;
        ``O``, ``I``; and the spatial letters, as ``lax.conv_general_dilated``).
      out_chan: the number of output channels.
      filter_shape: the kernel's spatial sizes, in the kernel layout's order.
      strides: one per spatial dimension (default all 1).
      padding: ``"VALID"``, ``"SAME"`` or ``(lo, hi)`` pairs.
      W_init, b_init: initializers of the kernel (default Glorot normal over its ``I`` and
        ``O`` axes) and of the ``(out_chan,)`` bias.

    Returns:
      ``(init_fun, apply_fun)``; the params are ``(W, b)``.

    >>> from functrace import random, stax
    >>> init_fun, apply_fun = stax.GeneralConv(("NCHW", "OIHW", "NCHW"), 4, (3, 3))
    >>> out_shape, (W, b) = init_fun(random.PRNGKey(0), (-1, 2, 8, 8))
    >>> out_shape, W.shape
    ((-1, 4, 6, 6), (4, 2, 3, 3))
    """
    name = describe("GeneralConv", dimension_numbers, out_chan, filter_shape, strides=strides, padding=padding)
    return _conv(name, dimension_numbers, out_chan, filter_shape, strides, padding, W_init, b_init)


def _conv(
    name: str,
    dimension_numbers: tuple[str, str, str],
    out_chan: int,
    filter_shape: Sequence[int],
    strides: Sequence[int] | None,
    padding: str | Sequence[tuple[int, int]],
    W_init: Callable | None,
    b_init: Callable,
) -> Layer:
    lhs_spec, rhs_spec, out_spec = dimension_numbers
    spatial = [c for c in rhs_spec if c not in "IO"]
    filter_shape = positive_ints(name, "filter_shape", filter_shape, len(spatial))
    strides = (1,) * len(spatial) if strides is None else positive_ints(name, "strides", strides, len(spatial))
    padding = _check_padding(name, padding, len(spatial))
    W_init = W_init or glorot_normal(rhs_spec.index("I"), rhs_spec.index("O"))
    lhs_spatial = [lhs_spec.index(c) for c in spatial]
    bias_shape = tuple(out_chan if c == "C" else 1 for c in out_spec)

    def init_fun(rng: Any, input_shape: Sequence[int]) -> tuple[tuple[int, ...], tuple]:
        shape = as_shape(name, input_shape, rank=len(lhs_spec))
        require_known(
            name, shape, (*lhs_spatial, lhs_spec.index("C")), f"the spatial and channel dimensions ({lhs_spec})"
        )
        _, out_sizes = window_outputs(name, "kernel", [shape[d] for d in lhs_spatial], filter_shape, strides, padding)
        sizes = dict(zip(spatial, filter_shape, strict=True)) | {"I": shape[lhs_spec.index("C")], "O": out_chan}
        kernel_shape = tuple(sizes[c] for c in rhs_spec)
        sizes = dict(zip(spatial, out_sizes, strict=True)) | {"N": shape[lhs_spec.index("N")], "C": out_chan}
        k1, k2 = split_keys(rng, 2)
        return tuple(sizes[c] for c in out_spec), (W_init(k1, kernel_shape), b_init(k2, (out_chan,)))

    def apply_fun(params: tuple, inputs: Any, *, rng: Any = None, mode: str | None = None) -> Any:
        W, b = params
        shape = fnp.shape(inputs)
        if len(shape) != len(lhs_spec) or shape[lhs_spec.index("C")] != W.shape[rhs_spec.index("I")]:
            raise shape_error(
                name,
                f"inputs of shape {shape} do not match the kernel of shape {W.shape} (layouts {dimension_numbers})",
            )
        pads, _ = window_outputs(name, "kernel", [shape[d] for d in lhs_spatial], filter_shape, strides, padding)
        inputs, W = promote_inexact(inputs, W)
        out = lax.conv_general_dilated(inputs, W, strides, pads, dimension_numbers=dimension_numbers)
        return out + fnp.reshape(b, bias_shape)

    return init_fun, apply_fun


def Conv(
    out_chan: int,
    filter_shape: Sequence[int],
    strides: Sequence[int] | None = None,
    padding: str | Sequence[tuple[int, int]] = "VALID",
    W_init: Callable | None = None,
    b_init: Callable = normal(1e-6),  # noqa: B008
) -> Layer:
    """A 2-D convolution of NHWC inputs with an HWIO kernel (see :func:`GeneralConv`).

    >>> import numpy as np
    >>> from functrace import random, stax
    >>> init_fun, apply_fun = stax.Conv(8, (3, 3), padding="SAME")
    >>> out_shape, params = init_fun(random.PRNGKey(0), (-1, 5, 5, 2))
    >>> out_shape, apply_fun(params, np.ones((4, 5, 5, 2), np.float32)).shape
    ((-1, 5, 5, 8), (4, 5, 5, 8))
    """
    name = describe("Conv", out_chan, filter_shape, strides=strides, padding=padding)
    _check_spatial_rank(name, filter_shape, 2)
    return _conv(name, ("NHWC", "HWIO", "NHWC"), out_chan, filter_shape, strides, padding, W_init, b_init)


def Conv1D(
    out_chan: int,
    filter_shape: Sequence[int],
    strides: Sequence[int] | None = None,
    padding: str | Sequence[tuple[int, int]] = "VALID",
    W_init: Callable | None = None,
    b_init: Callable = normal(1e-6),  # noqa: B008
) -> Layer:
    """A 1-D convolution of NWC inputs with a WIO kernel (see :func:`GeneralConv`).

    >>> from functrace import random, stax
    >>> init_fun, apply_fun = stax.Conv1D(6, (3,), strides=(2,))
    >>> init_fun(random.PRNGKey(0), (-1, 9, 4))[0]
    (-1, 4, 6)
    """
    name = describe("Conv1D", out_chan, filter_shape, strides=strides, padding=padding)
    _check_spatial_rank(name, filter_shape, 1)
    return _conv(name, ("NWC", "WIO", "NWC"), out_chan, filter_shape, strides, padding, W_init, b_init)


def _check_spatial_rank(layer: str, filter_shape: Any, n: int) -> None:
    if not isinstance(filter_shape, Sequence) or len(filter_shape) != n:
        raise arg_error(layer, f"filter_shape must hold {n} spatial size(s), got {filter_shape!r}")


# --- pooling ----------------------------------------------------------------------------


def _lowest(dtype: np.dtype) -> Any:
    return -np.inf if dtype.kind == "f" else np.iinfo(dtype).min


def _window_counts(in_sizes, window, strides, pads, out_sizes) -> np.ndarray:
    """How many input (not padding) elements each window covers: a product of 1-D counts."""
    counts = np.ones(())
    for size, w, s, (lo, _), out in zip(in_sizes, window, strides, pads, out_sizes, strict=True):
        starts = np.arange(out) * s - lo
        counts = np.multiply.outer(counts, np.minimum(starts + w, size) - np.maximum(starts, 0))
    return np.maximum(counts, 1)


def _max_pool(x, window, strides, pads, out_sizes):
    return lax.reduce_window(x, _lowest(np.dtype(x.dtype)), lax.max, window, strides, pads)


def _sum_pool(x, window, strides, pads, out_sizes):
    return lax.reduce_window(x, 0, lax.add, window, strides, pads)


def _avg_pool(x, window, strides, pads, out_sizes):
    (x,) = promote_inexact(x)
    sums = lax.reduce_window(x, 0, lax.add, window, strides, pads)
    counts = _window_counts(x.shape[1:-1], window[1:-1], strides[1:-1], pads[1:-1], out_sizes)
    return sums / counts.reshape(1, *out_sizes, 1).astype(x.dtype)


def _pooling_layer(kind: str, pool: Callable, summary: str, example: str) -> Callable[..., Layer]:
    def layer(
        window_shape: Sequence[int],
        strides: Sequence[int] | None = None,
        padding: str | Sequence[tuple[int, int]] = "VALID",
    ) -> Layer:
        name = describe(kind, window_shape, strides=strides, padding=padding)
        window = positive_ints(name, "window_shape", window_shape)
        n = len(window)
        strides = (1,) * n if strides is None else positive_ints(name, "strides", strides, n)
        padding = _check_padding(name, padding, n)

        def init_fun(rng: Any, input_shape: Sequence[int]) -> tuple[tuple[int, ...], tuple]:
            shape = as_shape(name, input_shape, rank=n + 2)
            require_known(name, shape, range(1, n + 1), "the spatial dimensions")
            _, out_sizes = window_outputs(name, "window", shape[1:-1], window, strides, padding)
            return (shape[0], *out_sizes, shape[-1]), ()

        def apply_fun(params: tuple, inputs: Any, *, rng: Any = None, mode: str | None = None) -> Any:
            shape = fnp.shape(inputs)
            if len(shape) != n + 2:
                raise shape_error(name, f"needs inputs of rank {n + 2} (batch, spatial..., channels), got {shape}")
            pads, out_sizes = window_outputs(name, "window", shape[1:-1], window, strides, padding)
            full = ((0, 0), *pads, (0, 0))
            return pool(fnp.asarray(inputs), (1, *window, 1), (1, *strides, 1), full, out_sizes)

        return init_fun, apply_fun

    layer.__name__ = layer.__qualname__ = kind
    layer.__doc__ = f"""{summary} over windows of the spatial dimensions of ``(batch, spatial..., channels)`` inputs.

    Args:
      window_shape: the window's size in each spatial dimension.
      strides: the step in each spatial dimension (default all 1, as JAX).
      padding: ``"VALID"``, ``"SAME"`` or ``(lo, hi)`` pairs.

    Returns:
      ``(init_fun, apply_fun)`` with no params.

    >>> import numpy as np
    >>> from functrace import random, stax
    >>> init_fun, apply_fun = stax.{kind}((2, 2), strides=(2, 2))
    >>> init_fun(random.PRNGKey(0), (-1, 4, 6, 3))[0]
    (-1, 2, 3, 3)
    >>> apply_fun((), np.arange(4.0).reshape(1, 2, 2, 1)).ravel()
    {example}
    """
    return layer


MaxPool = _pooling_layer("MaxPool", _max_pool, "The maximum", "array([3.])")
AvgPool = _pooling_layer("AvgPool", _avg_pool, "The mean (of the input elements, not the padding)", "array([1.5])")
SumPool = _pooling_layer("SumPool", _sum_pool, "The sum", "array([6.])")


# --- shape-only layers and activations ---------------------------------------------------


def _flatten() -> Layer:
    def init_fun(rng: Any, input_shape: Sequence[int]) -> tuple[tuple[int, ...], tuple]:
        shape = as_shape("Flatten", input_shape, min_rank=1)
        require_known("Flatten", shape, range(1, len(shape)), "the dimensions after the first")
        return (shape[0], int(np.prod(shape[1:], dtype=np.int64))), ()

    def apply_fun(params: tuple, inputs: Any, *, rng: Any = None, mode: str | None = None) -> Any:
        shape = fnp.shape(inputs)
        if len(shape) < 1:
            raise shape_error("Flatten", "needs inputs of rank >= 1 (batch first), got a scalar")
        return fnp.reshape(inputs, (shape[0], int(np.prod(shape[1:], dtype=np.int64))))

    return init_fun, apply_fun


def _identity() -> Layer:
    def init_fun(rng: Any, input_shape: Any) -> tuple[Any, tuple]:
        return input_shape, ()

    def apply_fun(params: tuple, inputs: Any, *, rng: Any = None, mode: str | None = None) -> Any:
        return inputs

    return init_fun, apply_fun


Flatten: Layer = _flatten()
"""Flatten all dimensions but the first: ``(batch, d1, d2, ...) -> (batch, d1 * d2 * ...)``."""

Identity: Layer = _identity()
"""The identity layer (no params)."""


def elementwise(fun: Callable, **fun_kwargs: Any) -> Layer:
    """A layer with no params applying ``fun(inputs, **fun_kwargs)``.

    >>> import numpy as np, functrace.numpy as fnp
    >>> from functrace import stax
    >>> init_fun, apply_fun = stax.elementwise(fnp.square)
    >>> apply_fun((), np.array([1.0, -2.0]))
    array([1., 4.])
    """

    def init_fun(rng: Any, input_shape: Any) -> tuple[Any, tuple]:
        return input_shape, ()

    def apply_fun(params: tuple, inputs: Any, *, rng: Any = None, mode: str | None = None) -> Any:
        return fun(inputs, **fun_kwargs)

    return init_fun, apply_fun


Relu = elementwise(nn.relu)
Tanh = elementwise(fnp.tanh)
Sigmoid = elementwise(nn.sigmoid)
Elu = elementwise(nn.elu)
LeakyRelu = elementwise(nn.leaky_relu)
Softplus = elementwise(nn.softplus)
Gelu = elementwise(nn.gelu)
Softmax = elementwise(nn.softmax, axis=-1)
LogSoftmax = elementwise(nn.log_softmax, axis=-1)


# --- dropout ----------------------------------------------------------------------------


def Dropout(rate: float, mode: str = "train") -> Layer:
    """Zero each unit with probability ``rate`` in train mode; the identity in test mode.

    ``rate`` is the probability of DROPPING a unit (as in Keras and PyTorch; JAX's stax
    passes the keep probability instead). Kept units are scaled by ``1 / (1 - rate)`` so
    that the expected output equals the input. Train mode needs ``rng``.

    Args:
      rate: the drop probability, in ``[0, 1]``.
      mode: ``"train"`` or ``"test"``; a ``mode`` given to ``apply_fun`` overrides it.

    Returns:
      ``(init_fun, apply_fun)`` with no params.

    >>> import numpy as np
    >>> from functrace import random, stax
    >>> init_fun, apply_fun = stax.Dropout(0.5)
    >>> y = apply_fun((), np.ones(8, np.float32), rng=random.PRNGKey(0))
    >>> sorted(set(y.tolist())) in ([0.0, 2.0], [0.0], [2.0])
    True
    >>> apply_fun((), np.ones(3, np.float32), mode="test")
    array([1., 1., 1.], dtype=float32)
    """
    name = describe("Dropout", rate)
    if not 0.0 <= float(rate) <= 1.0:
        raise arg_error(name, "rate is the probability of dropping a unit and must be in [0, 1]")
    check_mode(name, mode)
    default_mode = mode

    def init_fun(rng: Any, input_shape: Any) -> tuple[Any, tuple]:
        return input_shape, ()

    def apply_fun(params: tuple, inputs: Any, *, rng: Any = None, mode: str | None = None) -> Any:
        if resolve_mode(name, default_mode, mode) == "test" or rate == 0:
            return inputs
        if rng is None:
            raise ValueError(
                with_user_line(
                    f"{name} in train mode needs a PRNG key: call apply_fun(params, inputs, rng=key), "
                    "or pass mode='test'"
                )
            )
        if rate == 1:
            return fnp.zeros_like(inputs)
        keep = random.bernoulli(rng, 1.0 - rate, fnp.shape(inputs))
        return fnp.where(keep, inputs / (1.0 - rate), 0)

    return init_fun, apply_fun


__all__ = [
    "AvgPool",
    "Conv",
    "Conv1D",
    "Dense",
    "Dropout",
    "Elu",
    "Embedding",
    "Flatten",
    "Gelu",
    "GeneralConv",
    "Identity",
    "LeakyRelu",
    "LogSoftmax",
    "MaxPool",
    "Relu",
    "Sigmoid",
    "Softmax",
    "Softplus",
    "SumPool",
    "Tanh",
    "elementwise",
]
