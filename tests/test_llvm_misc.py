"""The CPU backend on ``cumsum`` and ``argmax``/``argmin``: compiled results equal eager
evaluation bit for bit on every axis of every dtype (NaN first wins, ties go to the
first index, an empty axis gives 0), and under jit(grad) and jit(vmap)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from reference import assert_equal, assert_same

import functrace as ft
import functrace.numpy as fnp
import lowering.llvm  # noqa: F401  (registers the backend)
from functrace import lax

RNG = np.random.default_rng(0)
NUMERIC = [np.dtype(d) for d in ("float32", "float64", "int32", "int64", "uint32")]
INDEX_DTYPES = [np.dtype(d) for d in ("int32", "int64", "uint32")]
SHAPES = [(5,), (3, 4), (3, 4, 5), (2, 1, 1), (4, 1, 3), (1,), (0, 3), (3, 0), (2, 0, 2)]


def cpu(f):
    return ft.jit(f, backend="cpu")


def sample(dtype, shape, special: bool = True) -> np.ndarray:
    """Few distinct values (ties), integer extremes, and NaN / infinities / -0.0 among floats."""
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return RNG.random(shape) < 0.5
    x = RNG.integers(0 if dtype.kind == "u" else -3, 4, shape).astype(dtype)
    flat = x.reshape(-1)
    if special and flat.size >= 6:
        picks = RNG.choice(flat.size, 3, replace=False)
        if dtype.kind == "f":
            flat[picks] = [np.nan, -np.inf, -0.0]
        else:
            flat[picks] = [np.iinfo(dtype).max, np.iinfo(dtype).min, np.iinfo(dtype).max]
    return x


@pytest.mark.parametrize("dtype", NUMERIC, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_cumsum_matches_eager(shape, dtype):
    x = sample(dtype, shape)
    for axis in range(len(shape)):
        for reverse in (False, True):

            def f(x, axis=axis, reverse=reverse):
                return lax.cumsum(x, axis, reverse)

            with np.errstate(invalid="ignore", over="ignore"):
                assert_equal(cpu(f)(x), f(x))


def test_cumsum_of_general_floats_is_bit_exact():
    """Sequential sums in NumPy's order: equal bit for bit, not only within rounding."""
    x = RNG.normal(size=(3, 200, 5)).astype(np.float32)
    for axis in range(3):
        for reverse in (False, True):
            f = cpu(lambda x, axis=axis, reverse=reverse: lax.cumsum(x, axis, reverse))
            assert_equal(f(x), lax.cumsum(x, axis, reverse))


@pytest.mark.parametrize("dtype", [*NUMERIC, np.dtype("bool")], ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("op", [lax.argmax, lax.argmin], ids=["argmax", "argmin"])
def test_argmax_argmin_match_eager(op, shape, dtype):
    x = sample(dtype, shape)
    for axis in range(len(shape)):
        index_dtype = INDEX_DTYPES[axis % 3]

        def f(x, axis=axis, index_dtype=index_dtype):
            return op(x, axis, index_dtype)

        assert_equal(cpu(f)(x), f(x))


@pytest.mark.parametrize("op", [lax.argmax, lax.argmin], ids=["argmax", "argmin"])
def test_first_nan_wins(op):
    x = np.array([[1.0, np.nan, 5.0, np.nan], [np.nan, 0.0, -1.0, 9.0], [2.0, 2.0, 7.0, 7.0]], np.float32)
    for axis in (0, 1):
        f = cpu(lambda x, axis=axis: op(x, axis, np.int32))
        assert_equal(f(x), op(x, axis, np.int32))
        assert_equal(f(np.ascontiguousarray(x.T.T)), op(x, axis, np.int32))


@given(
    st.lists(st.integers(0, 5), min_size=1, max_size=3),
    st.sampled_from([*NUMERIC, np.dtype("bool")]),
    st.integers(0, 2),
)
def test_scans_random_shapes(shape, dtype, axis):
    axis %= len(shape)
    x = sample(dtype, tuple(shape))
    index_dtype = INDEX_DTYPES[axis]

    def f(x):
        outs = [lax.argmax(x, axis, index_dtype), lax.argmin(x, axis, index_dtype)]
        if dtype.kind != "b":
            outs += [lax.cumsum(x, axis), lax.cumsum(x, axis, reverse=True)]
        return outs

    with np.errstate(invalid="ignore", over="ignore"):
        for actual, expected in zip(cpu(f)(x), f(x), strict=True):
            assert_equal(actual, expected)


# --- under transformations ------------------------------------------------------------------


def test_jit_grad_and_vmap_of_scans():
    x = RNG.normal(size=(4, 6))

    def loss(x):
        c = fnp.cumsum(x * x, axis=1) + lax.cumsum(x, 0, reverse=True)
        best = fnp.argmax(x, axis=1)
        return fnp.sum(fnp.tanh(c)) + fnp.sum(best * 0.5)

    assert_same(cpu(ft.grad(loss))(x), ft.grad(loss)(x), rtol=1e-12, atol=1e-12)

    def per_row(r):
        return fnp.cumsum(r), fnp.argmin(r), fnp.argmax(r)

    for in_axes in (0, 1):
        g = ft.vmap(per_row, in_axes=in_axes)
        for actual, expected in zip(cpu(g)(x), g(x), strict=True):
            assert_equal(actual, expected)
