"""``functrace.random``: counter-based pseudo-random numbers (Threefry-2x32, as JAX).

A key is a ``uint32[2]`` array and nothing is stateful: the same key gives the same
numbers every time, eagerly, under ``jit`` and under ``vmap``, because everything here
is written with ``functrace.numpy``/``lax`` on uint32 (shifts, xor, wrapping adds), so a
transformation sees ordinary primitives. Derive new keys with ``split`` or ``fold_in``;
never use one key for two draws that should be independent.

How the bits are made (JAX's "partitionable" Threefry scheme): element ``i`` (row-major)
of a draw of ``shape`` encrypts the counter ``(0, i)`` with the key, giving two uint32
words ``threefry_2x32(key, 0, i)``. ``split(key, n)[i]`` and ``fold_in(key, i)`` are that
pair itself, 32-bit draws xor the two words, float64 draws use both. No draw may have
``2**32`` or more elements.

How bits become numbers (all exact integer-to-float arithmetic, no bit casts):

- ``uniform`` float32: ``(bits >> 9) * 2**-23``, the 23-bit mantissa trick, in ``[0, 1)``;
  float64: ``word0 * 2**-32 + (word1 >> 12) * 2**-52``, 52 random bits.
- ``normal``: ``sqrt(2) * erf_inv(u)`` with ``u`` uniform on ``(-1, 1)``. The sign comes
  from one bit and ``q = 1 - |u|`` from the others, at 2**-32 (float32) or 2**-64
  (float64) resolution near 0, and ``erf_inv`` is evaluated from ``q``, so the tails are
  as fine-grained and accurate as the body (draws reach about 6.3 sigma in float32 and
  9.1 in float64, where JAX's uniform-then-erf_inv stops near 5.3 in float32).
- ``erf_inv``: ``x * P(w)`` with ``w = -log((1 - x)(1 + x))`` and ``P`` a polynomial in
  ``w`` (centre) or ``sqrt(w)`` (tails), the form of Giles (2010), with our own
  least-squares fits to ``math.erf``/``math.erfc``; relative error below 1e-7 (float32)
  and 3e-15 (float64) before rounding.
- ``randint``: a 63-bit random integer modulo the span (int64 arithmetic); the bias is
  below ``span / 2**63``.
- ``permutation``: ranks random 64-bit keys by counting comparisons (ties broken by
  index): ``O(n**2)`` time and memory, fine for a few thousand elements.

>>> import functrace.random as random
>>> key = random.PRNGKey(0)
>>> key, subkey = random.split(key)
>>> random.uniform(subkey, (3,)).dtype
dtype('float32')
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

import functrace.numpy as fnp
from functrace import lax
from functrace.core import dtypes
from functrace.core.source_info import api_boundary, with_user_line
from functrace.numpy.promotion import aval_of, broadcast_shapes

__all__ = [
    "PRNGKey", "bernoulli", "bits", "categorical", "fold_in", "gumbel", "normal", "permutation",
    "randint", "split", "threefry_2x32", "truncated_normal", "uniform",
]  # fmt: skip

ArrayLike = Any
Shape = int | Sequence[int]

# --- the Threefry-2x32 block cipher ------------------------------------------------------
# Salmon et al., "Parallel random numbers: as easy as 1, 2, 3" (SC 2011): 20 rounds of
# add / rotate / xor on two 32-bit words, the key injected every 4 rounds.

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_KEY_PARITY = np.uint32(0x1BD11BDA)


def _rotate_left(x: Any, r: int) -> Any:
    return lax.bitwise_or(lax.shift_left(x, np.uint32(r)), lax.shift_right_logical(x, np.uint32(32 - r)))


def _threefry(k0: Any, k1: Any, x0: Any, x1: Any) -> tuple[Any, Any]:
    """Encrypt uint32 words ``(x0, x1)`` (equal shapes or rank 0) with key words ``(k0, k1)``."""
    ks = (k0, k1, lax.bitwise_xor(lax.bitwise_xor(k0, k1), _KEY_PARITY))
    x0, x1 = lax.add(x0, ks[0]), lax.add(x1, ks[1])
    for group in range(5):
        for r in _ROTATIONS[group % 2]:
            x0 = lax.add(x0, x1)
            x1 = lax.bitwise_xor(_rotate_left(x1, r), x0)
        x0 = lax.add(x0, ks[(group + 1) % 3])
        x1 = lax.add(x1, lax.add(ks[(group + 2) % 3], np.uint32(group + 1)))
    return x0, x1


def _check_key(name: str, key: Any) -> Any:
    aval = aval_of(key)
    if aval.dtype != dtypes.uint32 or aval.shape != (2,):
        hint = " (for a batch of keys, use vmap)" if aval.dtype == dtypes.uint32 and aval.shape[-1:] == (2,) else ""
        raise TypeError(
            with_user_line(
                f"{name} needs a key of type u32[2] from random.PRNGKey or random.split, got {aval.str_short()}{hint}"
            )
        )
    return key


def _as_uint32_words(name: str, x: ArrayLike) -> Any:
    if isinstance(x, int) and not isinstance(x, bool):
        return np.uint32(x % 2**32)
    if aval_of(x).dtype != dtypes.uint32:
        raise TypeError(with_user_line(f"{name} needs uint32 counter words, got {aval_of(x).str_short()}"))
    return x


@api_boundary
def threefry_2x32(key: ArrayLike, x0: ArrayLike, x1: ArrayLike) -> tuple[Any, Any]:
    """The Threefry-2x32 block cipher (20 rounds): encrypt the counter words ``(x0, x1)``.

    ``x0`` and ``x1`` are uint32 arrays of one shape (or rank 0, or Python ints); returns
    the two uint32 output words. Every draw in this module is built on it.

    >>> import numpy as np, functrace.random as random
    >>> y0, y1 = random.threefry_2x32(np.zeros(2, np.uint32), 0, 0)
    >>> hex(int(y0)), hex(int(y1))
    ('0x6b200159', '0x99ba4efe')
    """
    key = _check_key("threefry_2x32", key)
    x0, x1 = _as_uint32_words("threefry_2x32", x0), _as_uint32_words("threefry_2x32", x1)
    shapes = {aval_of(x).shape for x in (x0, x1)} - {()}
    if len(shapes) > 1:
        raise TypeError(
            with_user_line(f"threefry_2x32 got counter words of shapes {aval_of(x0).shape} and {aval_of(x1).shape}")
        )
    return _threefry(key[0], key[1], x0, x1)


# --- keys -----------------------------------------------------------------------------------


def _shape(name: str, shape: Shape) -> tuple[int, ...]:
    if isinstance(shape, int | np.integer):
        shape = (shape,)
    try:
        shape = tuple(operator.index(d) for d in shape)
    except TypeError:
        raise TypeError(with_user_line(f"{name}: shape must be a tuple of ints, got {shape!r}")) from None
    if any(d < 0 for d in shape):
        raise ValueError(with_user_line(f"{name}: negative dimensions are not allowed, got shape {shape}"))
    if math.prod(shape) >= 2**32:
        raise ValueError(with_user_line(f"{name}: a draw must have fewer than 2**32 elements, got shape {shape}"))
    return shape


def _counter_words(key: Any, shape: tuple[int, ...]) -> tuple[Any, Any]:
    """The two cipher words for each element of a draw of ``shape`` (counter ``(0, i)``)."""
    counters = lax.reshape(lax.iota(dtypes.uint32, math.prod(shape)), shape)
    return _threefry(key[0], key[1], np.uint32(0), counters)


@api_boundary
def PRNGKey(seed: ArrayLike) -> Any:
    """A key from an integer seed: the high and low 32 bits of the seed as a 64-bit integer.

    Negative seeds are taken in two's complement (``PRNGKey(-1)`` is ``[2**32 - 1] * 2``);
    a traced integer seed (under ``jit`` or ``vmap``) gives the same key as its value.

    >>> import functrace.random as random
    >>> random.PRNGKey(2**32 + 7)
    array([1, 7], dtype=uint32)
    """
    if isinstance(seed, int | np.integer) and not isinstance(seed, bool | np.bool_):
        seed = int(seed)
        if not -(2**63) <= seed < 2**64:
            raise OverflowError(with_user_line(f"PRNGKey: seed {seed} does not fit in 64 bits"))
        seed %= 2**64
        return np.array([seed >> 32, seed & 0xFFFFFFFF], dtype=np.uint32)
    aval = aval_of(seed)
    if aval.shape != () or aval.dtype.kind not in "iu":
        raise TypeError(with_user_line(f"PRNGKey needs an integer scalar seed, got {aval.str_short()}"))
    seed = lax.convert_element_type(seed, dtypes.int64)
    high = lax.convert_element_type(lax.shift_right_logical(seed, np.int64(32)), dtypes.uint32)
    low = lax.convert_element_type(seed, dtypes.uint32)  # keeps the low 32 bits
    return fnp.stack([high, low])


@api_boundary
def split(key: ArrayLike, num: Shape = 2) -> Any:
    """``num`` new independent keys, as a ``uint32[num, 2]`` array (``num`` may be a shape).

    >>> import functrace.random as random
    >>> random.split(random.PRNGKey(0), 3).shape
    (3, 2)
    """
    key = _check_key("split", key)
    words = _counter_words(key, _shape("split", num))
    return fnp.stack(words, axis=-1)


@api_boundary
def fold_in(key: ArrayLike, data: ArrayLike) -> Any:
    """A new key that depends on ``key`` and the integer ``data`` (taken modulo 2**32).

    ``fold_in(key, i)`` equals ``split(key, n)[i]``.

    >>> import functrace.random as random
    >>> key = random.PRNGKey(0)
    >>> bool((random.fold_in(key, 1) == random.split(key, 2)[1]).all())
    True
    """
    key = _check_key("fold_in", key)
    if isinstance(data, int | np.integer) and not isinstance(data, bool | np.bool_):
        data = np.uint32(int(data) % 2**32)
    else:
        aval = aval_of(data)
        if aval.shape != () or aval.dtype.kind not in "iu":
            raise TypeError(with_user_line(f"fold_in needs an integer scalar, got {aval.str_short()}"))
        data = lax.convert_element_type(data, dtypes.uint32)
    return fnp.stack(_threefry(key[0], key[1], np.uint32(0), data))


@api_boundary
def bits(key: ArrayLike, shape: Shape = ()) -> Any:
    """Uniformly random uint32 words of ``shape``.

    >>> import functrace.random as random
    >>> random.bits(random.PRNGKey(0), (2, 3)).dtype
    dtype('uint32')
    """
    key = _check_key("bits", key)
    return lax.bitwise_xor(*_counter_words(key, _shape("bits", shape)))


# --- floats -------------------------------------------------------------------------------


def _float_dtype(name: str, dtype: Any) -> np.dtype:
    dtype = dtypes.canonicalize(dtype)
    if dtype.kind != "f":
        raise TypeError(with_user_line(f"{name} needs a float dtype (float32 or float64), got {dtype.name}"))
    return dtype


def _broadcasts_to(small: tuple[int, ...], shape: tuple[int, ...]) -> bool:
    extra = len(shape) - len(small)
    return extra >= 0 and all(d in (1, n) for d, n in zip(small, shape[extra:], strict=True))


def _check_shapes(name: str, shape: tuple[int, ...], *params: ArrayLike) -> None:
    """Parameters must broadcast to ``shape`` (not the other way round)."""
    param_shapes = [aval_of(p).shape for p in params]
    if not all(_broadcasts_to(s, shape) for s in param_shapes):
        listed = ", ".join(str(s) for s in param_shapes)
        raise ValueError(with_user_line(f"{name}: shape {shape} is not a broadcast of the parameter shapes {listed}"))


def _unit_floats(key: Any, shape: tuple[int, ...], dtype: np.dtype, open_interval: bool = False) -> Any:
    """Uniform floats in ``[0, 1)``, or in ``(0, 1)`` at the same grid's midpoints."""
    word0, word1 = _counter_words(key, shape)
    if dtype == dtypes.float32:
        grid = lax.convert_element_type(lax.shift_right_logical(lax.bitwise_xor(word0, word1), np.uint32(9)), dtype)
        return ((grid + 0.5) if open_interval else grid) * 2.0**-23
    grid = lax.convert_element_type(lax.shift_right_logical(word1, np.uint32(12)), dtype)
    high = lax.convert_element_type(word0, dtype) * 2.0**-32
    return high + ((grid + 0.5) if open_interval else grid) * 2.0**-52


def _scaled(floats: Any, minval: Any, maxval: Any) -> Any:
    return fnp.maximum(minval, floats * (maxval - minval) + minval)


@api_boundary
def uniform(
    key: ArrayLike, shape: Shape = (), dtype: Any = np.float32, minval: ArrayLike = 0.0, maxval: ArrayLike = 1.0
) -> Any:
    """Uniform floats in ``[minval, maxval)``; ``minval``/``maxval`` broadcast to ``shape``.

    >>> import functrace.random as random
    >>> u = random.uniform(random.PRNGKey(0), (1000,), minval=-1.0, maxval=1.0)
    >>> bool((u >= -1).all() and (u < 1).all()), u.dtype
    (True, dtype('float32'))
    """
    key = _check_key("uniform", key)
    shape, dtype = _shape("uniform", shape), _float_dtype("uniform", dtype)
    minval, maxval = fnp.asarray(minval, dtype), fnp.asarray(maxval, dtype)
    _check_shapes("uniform", shape, minval, maxval)
    return fnp.broadcast_to(_scaled(_unit_floats(key, shape, dtype), minval, maxval), shape)


@api_boundary
def normal(key: ArrayLike, shape: Shape = (), dtype: Any = np.float32) -> Any:
    """Standard normal floats (inverse CDF, accurate in the tails: see the module notes).

    >>> import functrace.random as random
    >>> z = random.normal(random.PRNGKey(0), (10000,))
    >>> bool(abs(z.mean()) < 0.05 and abs(z.std() - 1) < 0.05)
    True
    """
    key = _check_key("normal", key)
    shape, dtype = _shape("normal", shape), _float_dtype("normal", dtype)
    word0, word1 = _counter_words(key, shape)
    if dtype == dtypes.float32:
        word = lax.bitwise_xor(word0, word1)
        q = (lax.convert_element_type(lax.bitwise_and(word, np.uint32(0x7FFFFFFF)), dtype) + 0.5) * 2.0**-31
    else:
        word = word0
        high = lax.convert_element_type(lax.bitwise_and(word0, np.uint32(0x7FFFFFFF)), dtype) * 2.0**-31
        q = high + (lax.convert_element_type(word1, dtype) + 0.5) * 2.0**-63
    z = math.sqrt(2) * _erf_inv_abs(1.0 - q, q)  # q = 1 - |u| is uniform on (0, 1]
    return fnp.where(fnp.greater_equal(word, np.uint32(2**31)), -z, z)


@api_boundary
def truncated_normal(
    key: ArrayLike, lower: ArrayLike, upper: ArrayLike, shape: Shape | None = None, dtype: Any = np.float32
) -> Any:
    """Standard normal floats conditioned on ``lower < x < upper`` (bounds broadcast).

    Inverse CDF: ``sqrt(2) * erf_inv(u)`` with ``u`` uniform strictly between
    ``erf(lower / sqrt(2))`` and ``erf(upper / sqrt(2))``; results are clipped to
    ``[lower, upper]`` against rounding. Intervals far out in one tail (beyond about
    4 sigma in float32, 8 in float64) lose accuracy, as ``erf`` rounds to +-1 there.

    >>> import functrace.random as random
    >>> x = random.truncated_normal(random.PRNGKey(0), -1.0, 2.0, (1000,))
    >>> bool((x >= -1).all() and (x <= 2).all())
    True
    """
    key = _check_key("truncated_normal", key)
    dtype = _float_dtype("truncated_normal", dtype)
    lower, upper = fnp.asarray(lower, dtype), fnp.asarray(upper, dtype)
    if shape is None:
        shape = broadcast_shapes("truncated_normal", aval_of(lower).shape, aval_of(upper).shape)
    shape = _shape("truncated_normal", shape)
    _check_shapes("truncated_normal", shape, lower, upper)
    a, b = lax.erf(lower * (1 / math.sqrt(2))), lax.erf(upper * (1 / math.sqrt(2)))
    u = _unit_floats(key, shape, dtype, open_interval=True) * (b - a) + a
    x = math.sqrt(2) * _erf_inv(u)
    return fnp.broadcast_to(fnp.clip(x, lower, upper), shape)


@api_boundary
def gumbel(key: ArrayLike, shape: Shape = (), dtype: Any = np.float32) -> Any:
    """Standard Gumbel floats, ``-log(-log(u))``.

    >>> import functrace.random as random
    >>> random.gumbel(random.PRNGKey(0), (2, 2)).shape
    (2, 2)
    """
    key = _check_key("gumbel", key)
    shape, dtype = _shape("gumbel", shape), _float_dtype("gumbel", dtype)
    tiny = np.finfo(dtype).tiny
    u = _scaled(_unit_floats(key, shape, dtype), fnp.asarray(tiny, dtype), fnp.asarray(1.0, dtype))
    return -fnp.log(-fnp.log(u))


# --- discrete -------------------------------------------------------------------------------


@api_boundary
def bernoulli(key: ArrayLike, p: ArrayLike = 0.5, shape: Shape | None = None) -> Any:
    """Random booleans, True with probability ``p`` (``shape`` defaults to ``p``'s).

    >>> import functrace.random as random
    >>> random.bernoulli(random.PRNGKey(0), 0.3, (4,)).dtype
    dtype('bool')
    """
    key = _check_key("bernoulli", key)
    aval = aval_of(p)
    if aval.dtype.kind not in "fiu":
        raise TypeError(with_user_line(f"bernoulli needs a numeric probability p, got {aval.str_short()}"))
    dtype = aval.dtype if aval.dtype.kind == "f" and not aval.weak_type else dtypes.float32
    p = fnp.asarray(p, dtype)
    shape = aval.shape if shape is None else _shape("bernoulli", shape)
    _check_shapes("bernoulli", shape, p)
    return fnp.broadcast_to(fnp.less(_unit_floats(key, shape, dtype), p), shape)


@api_boundary
def categorical(key: ArrayLike, logits: ArrayLike, axis: int = -1, shape: Shape | None = None) -> Any:
    """Samples (int32 indices along ``axis``) from unnormalised log-probabilities, by Gumbel-max.

    ``shape`` defaults to ``logits``' shape without ``axis``; if given, it must end with
    that shape (leading dimensions draw independent samples).

    >>> import numpy as np, functrace.random as random
    >>> random.categorical(random.PRNGKey(0), np.array([-np.inf, 0.0, -np.inf]), shape=(4,))
    array([1, 1, 1, 1], dtype=int32)
    """
    key = _check_key("categorical", key)
    logits = fnp.asarray(logits)
    aval = aval_of(logits)
    if aval.dtype.kind != "f":
        logits = fnp.asarray(logits, dtypes.float32)
    if aval.ndim == 0 or not -aval.ndim <= axis < aval.ndim:
        raise ValueError(with_user_line(f"categorical: axis {axis} is out of range for logits of shape {aval.shape}"))
    axis %= aval.ndim
    batch = aval.shape[:axis] + aval.shape[axis + 1 :]
    shape = batch if shape is None else _shape("categorical", shape)
    if len(shape) < len(batch) or shape[len(shape) - len(batch) :] != batch:
        raise ValueError(with_user_line(f"categorical: shape {shape} must end with the logits' batch shape {batch}"))
    prefix = shape[: len(shape) - len(batch)]
    noise = gumbel(key, prefix + aval.shape, aval_of(logits).dtype)
    return lax.argmax(noise + logits, len(prefix) + axis, dtypes.int32)


def _int_bound(name: str, value: ArrayLike, low: int, high: int) -> Any:
    """An integer bound as int64, clipped to ``[low, high]``."""
    if isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_):
        return np.int64(min(max(int(value), low), high))
    aval = aval_of(value)
    if aval.dtype.kind not in "iu":
        raise TypeError(with_user_line(f"{name} needs integer bounds, got {aval.str_short()}"))
    return fnp.clip(fnp.asarray(value, dtypes.int64), low, high)


@api_boundary
def randint(key: ArrayLike, shape: Shape, minval: ArrayLike, maxval: ArrayLike, dtype: Any = np.int32) -> Any:
    """Uniform integers in ``[minval, maxval)`` (``minval`` where ``maxval <= minval``).

    A 63-bit random integer modulo the span (which must fit in int64): bias below
    ``span / 2**63``. Bounds broadcast to ``shape`` and are clipped to ``dtype``'s range.

    >>> import functrace.random as random
    >>> x = random.randint(random.PRNGKey(0), (1000,), 3, 7)
    >>> sorted(set(x.tolist())), x.dtype
    ([3, 4, 5, 6], dtype('int32'))
    """
    key = _check_key("randint", key)
    shape, dtype = _shape("randint", shape), dtypes.canonicalize(dtype)
    if dtype.kind not in "iu":
        raise TypeError(with_user_line(f"randint needs an integer dtype, got {dtype.name}"))
    info = np.iinfo(dtype)
    low = _int_bound("randint", minval, int(info.min), int(info.max))
    high = _int_bound("randint", maxval, int(info.min), min(int(info.max) + 1, 2**63 - 1))
    _check_shapes("randint", shape, low, high)
    word0, word1 = _counter_words(key, shape)
    word0 = lax.shift_right_logical(word0, np.uint32(1))
    random63 = lax.convert_element_type(word0, dtypes.int64) * 2**32 + lax.convert_element_type(word1, dtypes.int64)
    offset = fnp.remainder(random63, fnp.maximum(high - low, 1))
    return fnp.broadcast_to(fnp.asarray(low + offset, dtype), shape)


def _random_ranks(key: Any, n: int) -> Any:
    """A uniformly random permutation of ``range(n)`` (int32): each element's rank among
    random 64-bit sort keys, ties broken by position."""
    word0, word1 = _counter_words(key, (n,))
    index = lax.iota(dtypes.int32, n)

    def pairs(x: Any) -> tuple[Any, Any]:  # (x[j], x[i]) for row i, column j
        return fnp.expand_dims(x, 0), fnp.expand_dims(x, 1)

    (a_j, a_i), (b_j, b_i), (j, i) = pairs(word0), pairs(word1), pairs(index)
    ties = fnp.logical_or(fnp.less(b_j, b_i), fnp.logical_and(fnp.equal(b_j, b_i), fnp.less(j, i)))
    before = fnp.logical_or(fnp.less(a_j, a_i), fnp.logical_and(fnp.equal(a_j, a_i), ties))
    return fnp.sum(before, axis=1, dtype=dtypes.int32)


@api_boundary
def permutation(key: ArrayLike, x: ArrayLike, axis: int = 0) -> Any:
    """A random permutation of ``range(x)`` (int32) for an int ``x``, else of ``x`` along ``axis``.

    Costs ``O(n**2)`` time and memory in the length ``n`` (see the module notes).

    >>> import functrace.random as random
    >>> sorted(random.permutation(random.PRNGKey(0), 5).tolist())
    [0, 1, 2, 3, 4]
    """
    key = _check_key("permutation", key)
    if isinstance(x, int | np.integer) and not isinstance(x, bool | np.bool_):
        if x < 0:
            raise ValueError(with_user_line(f"permutation: the length must be non-negative, got {x}"))
        return _random_ranks(key, int(x))
    aval = aval_of(x)
    if aval.ndim == 0:
        raise TypeError(
            with_user_line(
                f"permutation needs a Python int or an array with at least one dimension, got {aval.str_short()} "
                "(a traced length cannot set a shape: pass it as a static int)"
            )
        )
    if not -aval.ndim <= axis < aval.ndim:
        raise ValueError(with_user_line(f"permutation: axis {axis} is out of range for shape {aval.shape}"))
    return fnp.take(x, _random_ranks(key, aval.shape[axis]), axis=axis)


# --- erf_inv ----------------------------------------------------------------------------------


class _Polynomial(NamedTuple):
    """``sum(c[k] * (t - centre) ** (n - k))``: coefficients from the highest degree."""

    centre: float
    coefficients: tuple[float, ...]

    def __call__(self, t: Any) -> Any:
        s = t - self.centre
        p = self.coefficients[0]
        for c in self.coefficients[1:]:
            p = p * s + c
        return p


# erf_inv(x) = x * P(w), w = -log((1 - x)(1 + x)): P fitted (weighted least squares on
# 10**6 points from math.erf/math.erfc) in w on the centre, in sqrt(w) on the tails.
# float32: w <= 5 | sqrt(w) in [2.2, 4.7]; float64: w <= 6.25 | sqrt(w) in [2.5, 4] |
# [4, 6.7]. The tails reach 1 - x = 2**-32 and 2**-64, the smallest q that normal draws.
_F32_CENTRAL = _Polynomial(2.5, (
    -9.074704742847177e-09, 2.322852698400765e-08, 4.7012696654169636e-07, -3.462638690957176e-06,
    -4.98171199804413e-06, 0.00021834410277807423, -0.0012527103769663713, -0.0041773862231846,
    0.24664027160710256, 1.5014093591353586,
))  # fmt: skip
_F32_TAIL = _Polynomial(3.45, (
    -2.2011878563776756e-05, 3.6818587179604125e-05, 8.107531851576733e-05, -0.0003020279654240371,
    0.0005133465354291344, -0.0007935553584362484, 0.0012818953820030524, -0.002307220178577935,
    0.0036032999510154477, 1.0070256162753723, 3.2851257463788217,
))  # fmt: skip
_F64_CENTRAL = _Polynomial(3.125, (
    1.5365037507566547e-22, -4.772887466949348e-22, -9.65611487666235e-21, 3.166729079484294e-20,
    2.657741295145267e-19, -1.0962097673387966e-18, -3.1004298494275345e-18, 2.6966788798679537e-17,
    -8.724111392751839e-17, -1.5263046164124618e-16, 6.311222063089107e-15, -3.926142857385718e-14,
    -7.993217601946969e-14, 2.6270209739253393e-12, -1.298044595891422e-11, -5.4131933955889123e-11,
    1.0512244535924096e-09, -4.1126837033763505e-09, -2.907038882103058e-08, 4.234788469323875e-07,
    -1.365469181393872e-06, -1.3882523415397523e-05, 0.00018673420802465515, -0.0007407025341466131,
    -0.0060336708714296946, 0.2401581824255855, 1.6536545626831023,
))  # fmt: skip
_F64_TAIL = _Polynomial(3.25, (
    1.3638357179645923e-08, 1.0373051243825999e-07, -3.000162893694767e-07, -1.2389118481139181e-08,
    1.5245161961630852e-06, -3.9840031873060365e-06, 2.91357343485027e-06, 1.2459781861519627e-05,
    -4.731573597285185e-05, 6.8289476035237e-05, 2.4030743538957602e-05, -0.00035503830731477986,
    0.0009532894162087857, -0.0016882754850209131, 0.0024914420930494206, -0.0037512085103418367,
    0.005370914553735595, 1.005258967694187, 3.08388561049222,
))  # fmt: skip
_F64_FAR_TAIL = _Polynomial(5.35, (
    -2.8671518652884014e-12, -7.833806971036372e-13, 5.0702208683287264e-11, -1.1908842075092163e-10,
    1.4557141779990186e-10, -3.500623269976588e-10, 9.380694670258183e-10, -1.88187580198172e-09,
    5.066444392079617e-09, -2.1706367083317467e-08, 1.0870328862926543e-07, -5.519437967003907e-07,
    2.7000760552143208e-06, -1.228079158394943e-05, 4.8583209230603436e-05, -0.00012932864454789507,
    -0.0003161632503581346, 1.0101360251279898, 5.203486396338187,
))  # fmt: skip


def _erf_inv_abs(a: Any, q: Any) -> Any:
    """``erf_inv(a)`` for ``a`` in ``[0, 1]``, given ``q = 1 - a`` exactly (which keeps
    the tails accurate when ``q`` is tiny); ``inf`` at ``q == 0``, NaN outside."""
    with np.errstate(divide="ignore", invalid="ignore"):
        w = -fnp.log(q * (1.0 + a))
        r = fnp.sqrt(w)
        if aval_of(a).dtype == dtypes.float32:
            p = fnp.where(w <= 5.0, _F32_CENTRAL(w), _F32_TAIL(r))
        else:
            p = fnp.where(w <= 6.25, _F64_CENTRAL(w), fnp.where(r <= 4.0, _F64_TAIL(r), _F64_FAR_TAIL(r)))
        return fnp.where(fnp.equal(q, 0.0), np.inf, a * p)


def _erf_inv(x: Any) -> Any:
    """The inverse of ``erf`` on ``[-1, 1]`` (``+-inf`` at ``+-1``, NaN outside)."""
    a = fnp.abs(x)
    y = _erf_inv_abs(a, 1.0 - a)
    return fnp.where(fnp.less(x, 0.0), -y, y)
