"""Parameter initializers with JAX's signature ``init(key, shape, dtype=float32)``.

``glorot_normal()``, ``he_normal()``, ``normal(stddev)`` … are factories that return an
``init`` function; ``zeros`` and ``ones`` are ``init`` functions themselves.

The variance-scaling family computes fans as JAX does: ``fan_in = shape[in_axis] *
receptive_field`` and ``fan_out = shape[out_axis] * receptive_field``, where the receptive
field is the product of the other dimensions (``in_axis=-2``, ``out_axis=-1`` by default, so
a dense ``(in, out)`` matrix and an HWIO convolution kernel both work). The ``*_normal``
initializers draw from a normal truncated to two standard deviations, rescaled so that the
variance is the one asked for.

>>> import numpy as np
>>> from functrace import random
>>> from functrace.nn import initializers
>>> w = initializers.glorot_normal()(random.PRNGKey(0), (3, 4))
>>> w.shape, w.dtype
((3, 4), dtype('float32'))
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

import functrace.numpy as fnp
from functrace import random

Initializer = Callable[..., Any]

__all__ = [
    "glorot_normal",
    "glorot_uniform",
    "he_normal",
    "lecun_normal",
    "normal",
    "ones",
    "variance_scaling",
    "zeros",
]

# The standard deviation of a unit normal truncated to [-2, 2]; dividing by it restores
# unit variance after truncation.
_TRUNCATED_NORMAL_STDDEV = 0.87962566103423978

_MODES = ("fan_in", "fan_out", "fan_avg")
_DISTRIBUTIONS = ("truncated_normal", "normal", "uniform")


def zeros(key: Any, shape: Sequence[int], dtype: Any = np.float32) -> Any:
    """An array of zeros (``key`` is unused).

    >>> from functrace.nn import initializers
    >>> initializers.zeros(None, (2,))
    array([0., 0.], dtype=float32)
    """
    return fnp.zeros(tuple(shape), dtype)


def ones(key: Any, shape: Sequence[int], dtype: Any = np.float32) -> Any:
    """An array of ones (``key`` is unused).

    >>> from functrace.nn import initializers
    >>> initializers.ones(None, (2,))
    array([1., 1.], dtype=float32)
    """
    return fnp.ones(tuple(shape), dtype)


def normal(stddev: float = 1e-2, dtype: Any = np.float32) -> Initializer:
    """Normal with mean 0 and standard deviation ``stddev``.

    >>> from functrace import random
    >>> from functrace.nn import initializers
    >>> initializers.normal(0.1)(random.PRNGKey(0), (2, 3)).shape
    (2, 3)
    """

    def init(key: Any, shape: Sequence[int], dtype: Any = dtype) -> Any:
        return random.normal(key, tuple(shape), dtype) * stddev

    return init


def _compute_fans(shape: tuple[int, ...], in_axis: int, out_axis: int) -> tuple[float, float]:
    if len(shape) < 2:
        raise ValueError(f"variance scaling needs a weight shape of rank >= 2 to find fan_in and fan_out, got {shape}")
    in_size, out_size = shape[in_axis], shape[out_axis]
    receptive_field = math.prod(shape) / (in_size * out_size) if in_size * out_size else 0
    return in_size * receptive_field, out_size * receptive_field


def variance_scaling(
    scale: float,
    mode: str,
    distribution: str,
    in_axis: int = -2,
    out_axis: int = -1,
    dtype: Any = np.float32,
) -> Initializer:
    """Samples with variance ``scale / n``, ``n`` the fan selected by ``mode``.

    Args:
      scale: the variance numerator.
      mode: ``"fan_in"``, ``"fan_out"`` or ``"fan_avg"`` (the mean of the two).
      distribution: ``"truncated_normal"`` (within two standard deviations), ``"normal"``
        or ``"uniform"``.
      in_axis, out_axis: the input and output dimensions of the weight shape.
      dtype: the default dtype of the ``init`` function.

    Returns:
      ``init(key, shape, dtype=dtype)``.

    >>> import numpy as np
    >>> from functrace import random
    >>> from functrace.nn import initializers
    >>> init = initializers.variance_scaling(2.0, "fan_in", "uniform")
    >>> w = init(random.PRNGKey(0), (50, 10))
    >>> bool(np.all(np.abs(w) <= np.sqrt(3 * 2.0 / 50)))
    True
    """
    if mode not in _MODES:
        raise ValueError(f"variance_scaling: mode must be one of {_MODES}, got {mode!r}")
    if distribution not in _DISTRIBUTIONS:
        raise ValueError(f"variance_scaling: distribution must be one of {_DISTRIBUTIONS}, got {distribution!r}")

    def init(key: Any, shape: Sequence[int], dtype: Any = dtype) -> Any:
        shape = tuple(shape)
        fan_in, fan_out = _compute_fans(shape, in_axis, out_axis)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
        variance = scale / fan if fan else 0.0  # an empty shape has no fan
        if distribution == "truncated_normal":
            stddev = math.sqrt(variance) / _TRUNCATED_NORMAL_STDDEV
            return random.truncated_normal(key, -2.0, 2.0, shape, dtype) * stddev
        if distribution == "normal":
            return random.normal(key, shape, dtype) * math.sqrt(variance)
        limit = math.sqrt(3.0 * variance)
        return random.uniform(key, shape, dtype, -limit, limit)

    return init


def glorot_normal(in_axis: int = -2, out_axis: int = -1, dtype: Any = np.float32) -> Initializer:
    """Glorot (Xavier) normal: variance ``2 / (fan_in + fan_out)``, truncated normal.

    >>> from functrace import random
    >>> from functrace.nn import initializers
    >>> initializers.glorot_normal()(random.PRNGKey(0), (4, 5)).shape
    (4, 5)
    """
    return variance_scaling(1.0, "fan_avg", "truncated_normal", in_axis, out_axis, dtype)


def glorot_uniform(in_axis: int = -2, out_axis: int = -1, dtype: Any = np.float32) -> Initializer:
    """Glorot (Xavier) uniform: variance ``2 / (fan_in + fan_out)``, uniform.

    >>> from functrace import random
    >>> from functrace.nn import initializers
    >>> initializers.glorot_uniform()(random.PRNGKey(0), (4, 5)).dtype
    dtype('float32')
    """
    return variance_scaling(1.0, "fan_avg", "uniform", in_axis, out_axis, dtype)


def he_normal(in_axis: int = -2, out_axis: int = -1, dtype: Any = np.float32) -> Initializer:
    """He (Kaiming) normal: variance ``2 / fan_in``, truncated normal; suits ReLU layers.

    >>> import numpy as np
    >>> from functrace import random
    >>> from functrace.nn import initializers
    >>> initializers.he_normal()(random.PRNGKey(0), (3, 3, 4, 8), np.float64).dtype
    dtype('float64')
    """
    return variance_scaling(2.0, "fan_in", "truncated_normal", in_axis, out_axis, dtype)


def lecun_normal(in_axis: int = -2, out_axis: int = -1, dtype: Any = np.float32) -> Initializer:
    """LeCun normal: variance ``1 / fan_in``, truncated normal.

    >>> from functrace import random
    >>> from functrace.nn import initializers
    >>> initializers.lecun_normal()(random.PRNGKey(0), (6, 2)).shape
    (6, 2)
    """
    return variance_scaling(1.0, "fan_in", "truncated_normal", in_axis, out_axis, dtype)
