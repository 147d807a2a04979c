"""The CPU backend on ``reduce_window_sum/max/min``: compiled results equal eager
evaluation bit for bit (the sign of zero included) for strides, pads (negative too),
base and window dilations, NaN, integer extremes and empty operands, under jit(grad) and
jit(vmap); operands placed against inaccessible pages show that no window reads out of
bounds."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from reference import assert_equal, assert_same, guarded

import functrace as ft
import functrace.numpy as fnp
import lowering.llvm  # noqa: F401  (registers the backend)
from functrace import lax

RNG = np.random.default_rng(0)
DTYPES = [np.dtype(d) for d in ("float32", "float64", "int32", "int64", "uint32")]
COMPUTATIONS = {"sum": lax.add, "max": lax.max, "min": lax.min}


def cpu(f):
    return ft.jit(f, backend="cpu")


def sample(dtype, shape) -> np.ndarray:
    """Integers of ``dtype`` with its extremes; NaN, -0.0 and infinities among floats."""
    dtype = np.dtype(dtype)
    x = RNG.integers(0 if dtype.kind == "u" else -50, 50, shape).astype(dtype)
    flat = x.reshape(-1)
    if dtype.kind == "f" and flat.size >= 8:
        flat[RNG.choice(flat.size, 4, replace=False)] = [np.nan, -0.0, np.inf, -np.inf]
    elif dtype.kind in "iu" and flat.size >= 2:
        flat[RNG.choice(flat.size, 2, replace=False)] = [np.iinfo(dtype).min, np.iinfo(dtype).max]
    return x


def reduce_window(kind, window, strides, padding, base_dilation=None, window_dilation=None):
    def f(x):
        init = {"sum": 0, "max": -np.inf, "min": np.inf}[kind]
        if x.dtype.kind in "iu" and kind != "sum":
            info = np.iinfo(x.dtype)
            init = info.min if kind == "max" else info.max
        init = np.asarray(init, x.dtype)
        return lax.reduce_window(x, init, COMPUTATIONS[kind], window, strides, padding, base_dilation, window_dilation)

    return f


# (operand shape, window, strides, padding, base dilation, window dilation)
CASES = [
    ((6, 7), (2, 3), (1, 2), "VALID", None, None),
    ((6, 7), (2, 3), (2, 2), "SAME", None, None),
    ((6, 7), (2, 3), (2, 1), ((1, 2), (-1, 3)), (2, 1), (1, 2)),
    ((3, 5, 4), (1, 2, 2), (1, 2, 2), ((0, 0), (1, 0), (0, 1)), (1, 1, 3), (1, 2, 1)),
    ((2, 8, 8, 3), (1, 2, 2, 1), (1, 2, 2, 1), "VALID", None, None),  # pooling
    ((5,), (3,), (1,), ((4, 4),), None, None),  # windows of only pads
    ((5,), (2,), (3,), ((-2, -1),), (2,), None),  # cropped dilated operand
    ((0, 4), (1, 2), (1, 1), ((1, 1), (0, 0)), None, None),  # empty operand, padded
    ((0, 4), (1, 2), (1, 1), "VALID", None, None),  # empty result
    ((), (), (), (), None, None),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("kind", COMPUTATIONS)
@pytest.mark.parametrize(("shape", "window", "strides", "padding", "base", "dilation"), CASES)
def test_reduce_window_matches_eager(shape, window, strides, padding, base, dilation, kind, dtype):
    x = sample(dtype, shape)
    f = reduce_window(kind, window, strides, padding, base, dilation)
    with np.errstate(invalid="ignore"):
        assert_equal(cpu(f)(x), f(x))


@pytest.mark.parametrize("kind", COMPUTATIONS)
@pytest.mark.parametrize(("shape", "window", "strides", "padding", "base", "dilation"), CASES[:7])
def test_reduce_window_reads_nothing_out_of_bounds(shape, window, strides, padding, base, dilation, kind):
    x = sample(np.float32, shape)
    f = reduce_window(kind, window, strides, padding, base, dilation)
    compiled = cpu(f)
    with np.errstate(invalid="ignore"):
        for at_end in (False, True):
            assert_equal(compiled(guarded(x, at_end)), f(x))


def test_literal_operand():
    """A rank-0 literal operand: one window of one tap."""
    for kind in COMPUTATIONS:
        f = reduce_window(kind, (), (), ())
        g = lambda y, f=f: f(np.float32(3.5)) + y  # noqa: E731
        assert_equal(cpu(g)(np.float32(1)), g(np.float32(1)))


def test_sum_of_negative_zeros_keeps_the_sign():
    x = np.full((4,), -0.0, np.float32)
    for padding in ["VALID", ((1, 0),)]:
        f = reduce_window("sum", (2,), (1,), padding)
        assert_equal(cpu(f)(x), f(x))


@given(
    st.lists(st.integers(0, 6), min_size=1, max_size=3).flatmap(
        lambda shape: st.tuples(
            st.just(tuple(shape)),
            st.tuples(*[st.integers(1, 3) for _ in shape]),
            st.tuples(*[st.integers(1, 3) for _ in shape]),
            st.tuples(*[st.tuples(st.integers(-1, 2), st.integers(-1, 2)) for _ in shape]),
            st.tuples(*[st.integers(1, 2) for _ in shape]),
            st.tuples(*[st.integers(1, 2) for _ in shape]),
        )
    ),
    st.sampled_from(list(COMPUTATIONS)),
    st.sampled_from(DTYPES),
)
def test_reduce_window_random_parameters(params, kind, dtype):
    shape, window, strides, padding, base, dilation = params
    padding = tuple(
        (lo, max(hi, (w - 1) * d + 1 - (n - 1) * b - 1 - lo if n else hi))
        for n, w, (lo, hi), b, d in zip(shape, window, padding, base, dilation, strict=True)
    )
    x = sample(dtype, shape)
    f = reduce_window(kind, window, strides, padding, base, dilation)
    with np.errstate(invalid="ignore"):
        assert_equal(cpu(f)(x), f(x))


# --- under transformations ------------------------------------------------------------------


@pytest.mark.parametrize("kind", COMPUTATIONS)
def test_jit_grad_and_vmap_of_pooling(kind):
    x = RNG.normal(size=(2, 7, 6, 3))
    ct = RNG.normal(size=(2, 4, 3, 3))
    f = reduce_window(kind, (1, 3, 2, 1), (1, 2, 2, 1), ((0, 0), (1, 1), (0, 1), (0, 0)), None, (1, 1, 2, 1))

    def loss(x):
        return fnp.sum(f(x) * ct)

    assert_same(cpu(ft.grad(loss))(x), ft.grad(loss)(x), rtol=1e-12, atol=1e-12)
    g = ft.vmap(reduce_window(kind, (3, 2, 1), (2, 2, 1), ((1, 1), (0, 1), (0, 0)), None, (1, 2, 1)), in_axes=1)
    assert_equal(cpu(g)(x), g(x))
