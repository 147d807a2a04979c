"""Hypothesis strategies for arrays and pytrees, for property-based tests.

>>> from hypothesis import given
>>> from functrace.testing import strategies as fts
>>> @given(fts.arrays("float32", fts.shapes(max_dims=2)))
... def test_finite(x):
...     assert x.dtype == "float32"
>>> test_finite()
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

__all__ = ["arrays", "broadcastable_shapes", "dtypes", "pytrees", "shapes"]


def shapes(min_dims: int = 0, max_dims: int = 3, min_side: int = 0, max_side: int = 4) -> st.SearchStrategy:
    """Array shapes, including size-0 and size-1 dimensions by default."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side)


def broadcastable_shapes(
    num_shapes: int = 2, min_dims: int = 0, max_dims: int = 3, min_side: int = 0, max_side: int = 4
) -> st.SearchStrategy:
    """Tuples of ``num_shapes`` shapes that broadcast together (NumPy rules)."""
    return hnp.mutually_broadcastable_shapes(
        num_shapes=num_shapes, min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side
    ).map(lambda bs: bs.input_shapes)


def dtypes(kinds: str = "fiub") -> st.SearchStrategy:
    """Supported dtypes of the given kinds (f float, i signed, u unsigned, b bool)."""
    table = {"f": ["float32", "float64"], "i": ["int32", "int64"], "u": ["uint32"], "b": ["bool"]}
    return st.sampled_from([np.dtype(d) for k in kinds for d in table[k]])


def _default_elements(dtype: np.dtype) -> st.SearchStrategy:
    if dtype.kind == "f":
        return st.floats(-10, 10, width=dtype.itemsize * 8, allow_nan=False, allow_infinity=False)
    if dtype.kind == "i":
        return st.integers(-100, 100)
    if dtype.kind == "u":
        return st.integers(0, 200)
    return st.booleans()


def arrays(dtype: Any, shape: Any, elements: st.SearchStrategy | None = None) -> st.SearchStrategy:
    """Arrays of ``dtype`` (or a strategy of dtypes) and ``shape`` (or a strategy of shapes).

    By default elements are small and finite: floats in [-10, 10], integers in [-100, 100].
    """
    if isinstance(dtype, st.SearchStrategy):
        return dtype.flatmap(lambda d: arrays(d, shape, elements))
    dtype = np.dtype(dtype)
    return hnp.arrays(dtype, shape, elements=elements if elements is not None else _default_elements(dtype))


def pytrees(leaves: st.SearchStrategy | None = None, max_leaves: int = 8) -> st.SearchStrategy:
    """Nested tuples, lists and dicts (string keys) of ``leaves``, ``None`` included."""
    if leaves is None:
        leaves = arrays("float64", shapes(max_dims=2, max_side=3))
    return st.recursive(
        st.one_of(leaves, st.none()),
        lambda children: st.one_of(
            st.lists(children, max_size=3),
            st.lists(children, max_size=3).map(tuple),
            st.dictionaries(st.text("abcdefgh", min_size=1, max_size=3), children, max_size=3),
        ),
        max_leaves=max_leaves,
    )
