"""Array creation in ``functrace.numpy``: ``array``, ``zeros``, ``full``, ``arange``, ``eye``...

On concrete arguments outside any transformation these return NumPy arrays made
by NumPy. While a function is being staged they record the computation instead
(a broadcast scalar, an ``iota``), so that the IR holds no large constants and
``zeros_like`` of a traced value has its shape and dtype.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np

from functrace.core import dtypes
from functrace.core.source_info import api_boundary, with_user_line
from functrace.core.trace import Tracer
from functrace.lax import elementwise as ew
from functrace.lax.structural import iota_p
from functrace.numpy import elementwise as fnp_ew
from functrace.numpy import promotion
from functrace.numpy.manipulation import broadcast_to, moveaxis
from functrace.numpy.promotion import aval_of, convert, is_eager

__all__ = [
    "arange", "array", "asarray", "empty", "empty_like", "eye", "full", "full_like", "identity",
    "linspace", "ones", "ones_like", "tri", "tril", "triu", "zeros", "zeros_like",
]  # fmt: skip

ArrayLike = Any


@api_boundary
def asarray(a: Any, dtype: Any = None) -> Any:
    """NumPy's ``asarray``: tracers pass through (converted if ``dtype`` is given).

    >>> import functrace.numpy as fnp
    >>> fnp.asarray([1, 2]).dtype
    dtype('int64')
    """
    return promotion.asarray(a, dtype)


@api_boundary
def array(object: Any, dtype: Any = None, copy: bool = True) -> Any:  # noqa: A002  (NumPy's name)
    """NumPy's ``array``.

    >>> import functrace.numpy as fnp
    >>> fnp.array([1.0, 2.0])
    array([1., 2.])
    """
    out = promotion.asarray(object, dtype)
    return out.copy() if copy and isinstance(out, np.ndarray) else out


def _shape(name: str, shape: Any) -> tuple[int, ...]:
    """A static shape from an int or a sequence of ints (a traced size cannot be a shape)."""
    dims = (shape,) if isinstance(shape, int | np.integer | Tracer) else tuple(shape)
    out = tuple(operator.index(d) for d in dims)
    if any(d < 0 for d in out):
        raise ValueError(with_user_line(f"{name}: negative dimensions are not allowed in {out}"))
    return out


def _dtype(dtype: Any, default: Any) -> np.dtype:
    return dtypes.canonicalize(default if dtype is None else dtype)


def _full(name: str, shape: Any, fill_value: ArrayLike, dtype: Any) -> Any:
    shape = _shape(name, shape)
    fill_value = promotion.asarray(fill_value)
    aval = aval_of(fill_value)
    if promotion.broadcast_shapes(name, aval.shape, shape) != shape:
        raise TypeError(with_user_line(f"{name}: cannot broadcast a fill value of shape {aval.shape} to {shape}"))
    out = broadcast_to(convert(fill_value, _dtype(dtype, aval.dtype)), shape)
    return np.array(out) if is_eager(fill_value) else out  # eager: a fresh, writable array


@api_boundary
def full(shape: Any, fill_value: ArrayLike, dtype: Any = None) -> Any:
    """NumPy's ``full``; ``fill_value`` may be traced, or an array that broadcasts to ``shape``.

    >>> import functrace.numpy as fnp
    >>> fnp.full((2, 2), 7)
    array([[7, 7],
           [7, 7]])
    """
    return _full("full", shape, fill_value, dtype)


@api_boundary
def zeros(shape: Any, dtype: Any = None) -> Any:
    """NumPy's ``zeros`` (float64 by default).

    >>> import functrace.numpy as fnp
    >>> fnp.zeros(2)
    array([0., 0.])
    """
    return _full("zeros", shape, 0, _dtype(dtype, dtypes.float64))


@api_boundary
def ones(shape: Any, dtype: Any = None) -> Any:
    """NumPy's ``ones`` (float64 by default).

    >>> import functrace.numpy as fnp
    >>> fnp.ones(2, "int32")
    array([1, 1], dtype=int32)
    """
    return _full("ones", shape, 1, _dtype(dtype, dtypes.float64))


@api_boundary
def empty(shape: Any, dtype: Any = None) -> Any:
    """NumPy's ``empty``; the contents are zeros (nothing is left uninitialised).

    >>> import functrace.numpy as fnp
    >>> fnp.empty(2)
    array([0., 0.])
    """
    return _full("empty", shape, 0, _dtype(dtype, dtypes.float64))


def _full_like(name: str, a: ArrayLike, fill_value: ArrayLike, dtype: Any, shape: Any) -> Any:
    aval = aval_of(promotion.asarray(a))
    return _full(name, aval.shape if shape is None else shape, fill_value, _dtype(dtype, aval.dtype))


@api_boundary
def full_like(a: ArrayLike, fill_value: ArrayLike, dtype: Any = None, shape: Any = None) -> Any:
    """NumPy's ``full_like``: ``a``'s shape and dtype unless given; works on traced ``a``.

    >>> import numpy as np, functrace.numpy as fnp
    >>> fnp.full_like(np.zeros(2, np.float32), 3)
    array([3., 3.], dtype=float32)
    """
    return _full_like("full_like", a, fill_value, dtype, shape)


@api_boundary
def zeros_like(a: ArrayLike, dtype: Any = None, shape: Any = None) -> Any:
    """NumPy's ``zeros_like``; works on traced ``a``.

    >>> import numpy as np, functrace.numpy as fnp
    >>> fnp.zeros_like(np.array([1, 2]))
    array([0, 0])
    """
    return _full_like("zeros_like", a, 0, dtype, shape)


@api_boundary
def ones_like(a: ArrayLike, dtype: Any = None, shape: Any = None) -> Any:
    """NumPy's ``ones_like``; works on traced ``a``.

    >>> import numpy as np, functrace.numpy as fnp
    >>> fnp.ones_like(np.array([1.0, 2.0]))
    array([1., 1.])
    """
    return _full_like("ones_like", a, 1, dtype, shape)


@api_boundary
def empty_like(a: ArrayLike, dtype: Any = None, shape: Any = None) -> Any:
    """NumPy's ``empty_like``; the contents are zeros.

    >>> import numpy as np, functrace.numpy as fnp
    >>> fnp.empty_like(np.array([1.0, 2.0]))
    array([0., 0.])
    """
    return _full_like("empty_like", a, 0, dtype, shape)


def _concrete_scalar(name: str, what: str, x: Any) -> Any:
    if isinstance(x, Tracer):
        return x._concretize(f"{name}'s {what} argument").item()
    return x


def _iota(dtype: np.dtype, shape: tuple[int, ...], dimension: int) -> Any:
    return iota_p.bind(dtype=dtype, shape=shape, dimension=dimension)


@api_boundary
def arange(start: Any, stop: Any = None, step: Any = None, dtype: Any = None) -> Any:
    """NumPy's ``arange``; the arguments must be concrete (the length is part of the type).

    >>> import functrace.numpy as fnp
    >>> fnp.arange(3), fnp.arange(1.0, 2.0, 0.5)
    (array([0, 1, 2]), array([1. , 1.5]))
    """
    start, stop, step = (
        _concrete_scalar("arange", w, x) for w, x in (("start", start), ("stop", stop), ("step", step))
    )
    if step is not None and step == 0:
        raise ValueError(with_user_line("arange: step must not be zero"))
    values = np.arange(start, stop, step, dtype=None if dtype is None else dtypes.canonicalize(dtype))
    dtype = dtypes.canonicalize(values.dtype)
    values = values.astype(dtype, copy=False)
    if is_eager() or dtype == dtypes.bool_ or values.size < 2:
        return values
    # Staged: NumPy's own rule, first value plus i times the first difference, computed
    # in the result dtype (integer wrap-around included).
    out = _iota(dtype, values.shape, 0)
    delta, first = np.subtract(values[1:2], values[:1])[0], values[0]
    if delta != 1:
        out = ew.mul_p.bind(out, np.asarray(delta, dtype))
    return out if first == 0 else ew.add_p.bind(out, np.asarray(first, dtype))


def _sequence_as_array(x: Any) -> Any:
    # Python scalars stay as they are: they take part in promotion weakly.
    return promotion.asarray(x) if isinstance(x, list | tuple) else x


def _linspace_dtype(start: Any, stop: Any) -> tuple[np.dtype, bool]:
    dtype, weak = promotion.result_type(start, stop, 1.0)  # float(num) takes part, weakly
    return (dtype if dtype.kind == "f" else dtypes.float64), weak


@api_boundary
def linspace(
    start: ArrayLike,
    stop: ArrayLike,
    num: int = 50,
    endpoint: bool = True,
    retstep: bool = False,
    dtype: Any = None,
    axis: int = 0,
) -> Any:
    """NumPy's ``linspace``; ``start`` and ``stop`` may be traced, ``num`` is static.

    >>> import functrace.numpy as fnp
    >>> fnp.linspace(0.0, 1.0, 5)
    array([0.  , 0.25, 0.5 , 0.75, 1.  ])
    """
    num = operator.index(num)
    if num < 0:
        raise ValueError(with_user_line(f"linspace: the number of samples {num} must be non-negative"))
    start, stop = _sequence_as_array(start), _sequence_as_array(stop)
    if is_eager(start, stop):
        dtype = None if dtype is None else dtypes.canonicalize(dtype)
        out = np.linspace(start, stop, num, endpoint, retstep, dtype, axis)
        values = out[0] if retstep else out
        values = values.astype(dtypes.canonicalize(values.dtype), copy=False)
        return (values, np.asarray(out[1])) if retstep else values
    compute, _ = _linspace_dtype(start, stop)
    start, stop = convert(start, compute), convert(stop, compute)
    div = num - 1 if endpoint else num
    delta = fnp_ew.subtract(stop, start)
    step = fnp_ew.true_divide(delta, div) if div > 0 else np.asarray(np.nan)  # NumPy's step: a float nan
    index = _iota(compute, (num, *aval_of(delta).shape), 0)
    y = fnp_ew.add(fnp_ew.multiply(index, step if div > 0 else delta), start)
    if endpoint and num > 1:
        y = fnp_ew.where(fnp_ew.equal(index, num - 1), stop, y)
    if axis != 0:
        y = moveaxis(y, 0, axis)
    target = _dtype(dtype, compute)
    if target.kind != "f":
        y = fnp_ew.floor(y)  # NumPy 2 rounds down to integer dtypes
    y = convert(y, target)
    return (y, step) if retstep else y


def _index_compare(compare: Any, n: int, m: int, k: int) -> Any:
    """``compare(i + k, j)`` over the ``(n, m)`` grid of row and column indices, as bool."""
    rows = _iota(dtypes.int64, (n, m), 0)
    cols = _iota(dtypes.int64, (n, m), 1)
    if k:
        rows = ew.add_p.bind(rows, np.asarray(k, dtypes.int64))
    return compare.bind(rows, cols)


@api_boundary
def eye(N: int, M: int | None = None, k: int = 0, dtype: Any = None) -> Any:
    """NumPy's ``eye``: ones on the ``k``-th diagonal.

    >>> import functrace.numpy as fnp
    >>> fnp.eye(2, 3, k=1, dtype="int32")
    array([[0, 1, 0],
           [0, 0, 1]], dtype=int32)
    """
    n, m = _shape("eye", (N, N if M is None else M))
    dtype, k = _dtype(dtype, dtypes.float64), operator.index(k)
    if is_eager():
        return np.eye(n, m, k, dtype)
    return convert(_index_compare(ew.eq_p, n, m, k), dtype)


@api_boundary
def identity(n: int, dtype: Any = None) -> Any:
    """NumPy's ``identity``.

    >>> import functrace.numpy as fnp
    >>> fnp.identity(2)
    array([[1., 0.],
           [0., 1.]])
    """
    return eye(n, dtype=dtype)


@api_boundary
def tri(N: int, M: int | None = None, k: int = 0, dtype: Any = None) -> Any:
    """NumPy's ``tri``: ones at and below the ``k``-th diagonal.

    >>> import functrace.numpy as fnp
    >>> fnp.tri(2, dtype=bool)
    array([[ True, False],
           [ True,  True]])
    """
    n, m = _shape("tri", (N, N if M is None else M))
    dtype, k = _dtype(dtype, dtypes.float64), operator.index(k)
    if is_eager():
        return np.tri(n, m, k, dtype)
    return convert(_index_compare(ew.ge_p, n, m, k), dtype)


def _triangle(name: str, m: ArrayLike, k: int, lower: bool) -> Any:
    m = promotion.asarray(m)
    aval = aval_of(m)
    if aval.ndim == 0:
        raise ValueError(with_user_line(f"{name} needs an array of at least one dimension"))
    rows, cols = aval.shape[-2:] if aval.ndim > 1 else (aval.shape[-1],) * 2
    k = operator.index(k)
    mask = tri(rows, cols, k if lower else k - 1, dtype=dtypes.bool_)
    zero = np.zeros((), aval.dtype)
    return fnp_ew.where(mask, m, zero) if lower else fnp_ew.where(mask, zero, m)


@api_boundary
def tril(m: ArrayLike, k: int = 0) -> Any:
    """NumPy's ``tril``: zeros above the ``k``-th diagonal of the last two axes.

    >>> import numpy as np, functrace.numpy as fnp
    >>> fnp.tril(np.ones((2, 2)))
    array([[1., 0.],
           [1., 1.]])
    """
    return _triangle("tril", m, k, lower=True)


@api_boundary
def triu(m: ArrayLike, k: int = 0) -> Any:
    """NumPy's ``triu``: zeros below the ``k``-th diagonal of the last two axes.

    >>> import numpy as np, functrace.numpy as fnp
    >>> fnp.triu(np.ones((2, 2)))
    array([[1., 1.],
           [0., 1.]])
    """
    return _triangle("triu", m, k, lower=False)
