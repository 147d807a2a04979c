"""``functrace.nn``: activation functions, softmax and friends, and ``nn.initializers``.

Everything here is written with ``functrace.numpy`` and ``functrace.lax``, so it works
eagerly and under ``jit``, ``grad`` and ``vmap``. Integer and bool inputs compute in
float64 (as NumPy's ``exp`` does); float32 stays float32.

>>> import numpy as np
>>> from functrace import nn
>>> nn.relu(np.array([-1.0, 2.0]))
array([0., 2.])
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

import functrace.numpy as fnp
from functrace import lax
from functrace.core.source_info import api_boundary, with_user_line
from functrace.nn import initializers
from functrace.numpy.promotion import promote_inexact

ArrayLike = Any
Axis = int | tuple[int, ...] | None

__all__ = [
    "elu",
    "gelu",
    "initializers",
    "leaky_relu",
    "log_softmax",
    "logsumexp",
    "one_hot",
    "relu",
    "sigmoid",
    "silu",
    "softmax",
    "softplus",
]


def _inexact(x: ArrayLike) -> Any:
    (x,) = promote_inexact(x)
    return x


# --- activations -----------------------------------------------------------------------------


@api_boundary
def relu(x: ArrayLike) -> Any:
    """``max(x, 0)``, with derivative 0 at ``x == 0`` (a select, so its gradient IR is one
    select too). Keeps the input's dtype, integers included.

    >>> import numpy as np
    >>> from functrace import nn
    >>> nn.relu(np.array([-2.0, 0.0, 3.0], np.float32))
    array([0., 0., 3.], dtype=float32)
    """
    return fnp.where(x > 0, x, 0)


@api_boundary
def sigmoid(x: ArrayLike) -> Any:
    """The logistic function ``1 / (1 + exp(-x))`` (``lax.logistic``).

    >>> import numpy as np
    >>> from functrace import nn
    >>> nn.sigmoid(np.array([0.0, 100.0]))
    array([0.5, 1. ])
    """
    return lax.logistic(_inexact(x))


@api_boundary
def softplus(x: ArrayLike) -> Any:
    """``log(1 + exp(x))``, computed as ``logaddexp(x, 0)`` so large inputs do not overflow.

    >>> import numpy as np
    >>> from functrace import nn
    >>> nn.softplus(np.array([0.0, 1000.0]))
    array([6.93147181e-01, 1.00000000e+03])
    """
    return fnp.logaddexp(_inexact(x), 0.0)


@api_boundary
def elu(x: ArrayLike, alpha: float = 1.0) -> Any:
    """``x`` for ``x > 0``, else ``alpha * (exp(x) - 1)``.

    >>> import numpy as np
    >>> from functrace import nn
    >>> nn.elu(np.array([-1.0, 2.0]))
    array([-0.63212056,  2.        ])
    """
    x = _inexact(x)
    positive = x > 0
    # expm1 only sees the non-positive side, so large inputs cannot overflow into the
    # unselected branch (whose inf would turn the gradient into nan).
    return fnp.where(positive, x, alpha * fnp.expm1(fnp.where(positive, 0.0, x)))


@api_boundary
def leaky_relu(x: ArrayLike, negative_slope: float = 0.01) -> Any:
    """``x`` for ``x >= 0``, else ``negative_slope * x``.

    >>> import numpy as np
    >>> from functrace import nn
    >>> nn.leaky_relu(np.array([-2.0, 3.0]), negative_slope=0.1)
    array([-0.2,  3. ])
    """
    x = _inexact(x)
    return fnp.where(x >= 0, x, negative_slope * x)


_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


@api_boundary
def gelu(x: ArrayLike, approximate: bool = True) -> Any:
    """The Gaussian error linear unit ``x * Phi(x)``.

    ``approximate=True`` (the default, as in JAX) uses the tanh approximation
    ``x/2 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x**3)))``; ``False`` the exact ``erf`` form.

    >>> import numpy as np
    >>> from functrace import nn
    >>> nn.gelu(np.array([-1.0, 0.0, 1.0]), approximate=False)
    array([-0.15865525,  0.        ,  0.84134475])
    """
    x = _inexact(x)
    if approximate:
        inner = _SQRT_2_OVER_PI * (x + 0.044715 * (x * x * x))
        return 0.5 * x * (1.0 + fnp.tanh(inner))
    return 0.5 * x * (1.0 + lax.erf(x * (1.0 / math.sqrt(2.0))))


@api_boundary
def silu(x: ArrayLike) -> Any:
    """``x * sigmoid(x)`` (also called swish).

    >>> import numpy as np
    >>> from functrace import nn
    >>> nn.silu(np.array([0.0, 1.0]))
    array([0.        , 0.73105858])
    """
    x = _inexact(x)
    return x * lax.logistic(x)


# --- normalisation over an axis -------------------------------------------------------------


def _stable_shift(x: Any, axis: Axis) -> Any:
    """The max over ``axis`` (kept dims), without gradient, 0 where it is not finite.

    Subtracting it before ``exp`` keeps values and gradients finite for huge inputs; it
    does not change the result, so its derivative is not needed.
    """
    m = fnp.max(x, axis=axis, keepdims=True)
    return lax.stop_gradient(fnp.where(fnp.isfinite(m), m, 0.0))


@api_boundary
def softmax(x: ArrayLike, axis: Axis = -1) -> Any:
    """``exp(x) / sum(exp(x), axis)``, stable for large inputs.

    >>> import numpy as np
    >>> from functrace import nn
    >>> nn.softmax(np.array([1e4, 1e4, -1e4]))
    array([0.5, 0.5, 0. ])
    """
    x = _inexact(x)
    unnormalized = fnp.exp(x - _stable_shift(x, axis))
    return unnormalized / fnp.sum(unnormalized, axis=axis, keepdims=True)


@api_boundary
def log_softmax(x: ArrayLike, axis: Axis = -1) -> Any:
    """``x - logsumexp(x, axis, keepdims=True)``, stable for large inputs.

    >>> import numpy as np
    >>> from functrace import nn
    >>> nn.log_softmax(np.array([0.0, 0.0]))
    array([-0.69314718, -0.69314718])
    """
    x = _inexact(x)
    shifted = x - _stable_shift(x, axis)
    return shifted - fnp.log(fnp.sum(fnp.exp(shifted), axis=axis, keepdims=True))


@api_boundary
def logsumexp(x: ArrayLike, axis: Axis = None, keepdims: bool = False) -> Any:
    """``log(sum(exp(x), axis))``, stable for large inputs; ``axis=None`` reduces all axes.

    >>> import numpy as np
    >>> from functrace import nn
    >>> float(nn.logsumexp(np.array([1e4, 1e4])))
    10000.69314718056
    """
    x = _inexact(x)
    shift = _stable_shift(x, axis)
    out = fnp.log(fnp.sum(fnp.exp(x - shift), axis=axis, keepdims=True)) + shift
    return out if keepdims else fnp.squeeze(out, axis=axis)


@api_boundary
def one_hot(x: ArrayLike, num_classes: int, dtype: Any = np.float32, axis: int = -1) -> Any:
    """One-hot encode integer ``x``: a new axis ``axis`` of length ``num_classes``.

    Entries outside ``[0, num_classes)`` encode as all zeros (as in JAX).

    >>> import numpy as np
    >>> from functrace import nn
    >>> nn.one_hot(np.array([0, 2]), 3)
    array([[1., 0., 0.],
           [0., 0., 1.]], dtype=float32)
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int | np.integer) or num_classes < 0:
        raise TypeError(with_user_line(f"one_hot: num_classes must be a non-negative int, got {num_classes!r}"))
    x = fnp.asarray(x)
    out_ndim = x.ndim + 1
    if not -out_ndim <= axis < out_ndim:
        raise ValueError(with_user_line(f"one_hot: axis {axis} is out of range for a result of rank {out_ndim}"))
    axis %= out_ndim
    classes_shape = tuple(int(num_classes) if d == axis else 1 for d in range(out_ndim))
    classes = np.arange(num_classes).reshape(classes_shape)
    return fnp.equal(fnp.expand_dims(x, axis), classes).astype(dtype)
