"""Array creation in ``functrace.numpy``: ``array``, ``zeros``, ``arange``, ``eye``..."""

from __future__ import annotations

from typing import Any

import numpy as np

from functrace.core import dtypes
from functrace.core.source_info import api_boundary
from functrace.numpy import promotion

__all__ = ["array", "asarray", "zeros", "ones"]


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


@api_boundary
def zeros(shape: Any, dtype: Any = None) -> np.ndarray:
    """NumPy's ``zeros`` (float64 by default).

    >>> import functrace.numpy as fnp
    >>> fnp.zeros(2)
    array([0., 0.])
    """
    return np.zeros(shape, dtypes.canonicalize(dtype or np.float64))


@api_boundary
def ones(shape: Any, dtype: Any = None) -> np.ndarray:
    """NumPy's ``ones`` (float64 by default).

    >>> import functrace.numpy as fnp
    >>> fnp.ones(2, "int32")
    array([1, 1], dtype=int32)
    """
    return np.ones(shape, dtypes.canonicalize(dtype or np.float64))
