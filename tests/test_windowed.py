"""``lax.reduce_window`` (sum, max and min pooling) against a plain-loop NumPy reference."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from reference import check_against_numpy

import functrace as ft
from functrace import lax
from functrace.testing import strategies as fts

# computation: (Python reduction over a list, identity for a dtype)
REDUCTIONS = {
    lax.add: (sum, lambda dtype: 0),
    lax.max: (max, lambda dtype: -np.inf if dtype.kind == "f" else np.iinfo(dtype).min),
    lax.min: (min, lambda dtype: np.inf if dtype.kind == "f" else np.iinfo(dtype).max),
}


def loop_reduce_window(x, computation, window, strides, padding, base_dilation, window_dilation):
    """One output element at a time: for every window tap, find the operand element it
    lands on in the dilated and padded operand, or the identity for holes and pads."""
    reduce, identity = REDUCTIONS[computation]
    fill = identity(x.dtype)
    wide = x.astype(np.float64 if x.dtype.kind == "f" else np.int64)
    out_shape = []
    for size, w, s, (lo, hi), bd, wd in zip(
        x.shape, window, strides, padding, base_dilation, window_dilation, strict=True
    ):
        padded = ((size - 1) * bd + 1 if size else 0) + lo + hi
        out_shape.append((padded - ((w - 1) * wd + 1)) // s + 1)
    out = np.zeros(out_shape, wide.dtype)
    for position in itertools.product(*map(range, out_shape)):
        values = []
        for tap in itertools.product(*map(range, window)):
            index = []
            for p, t, s, (lo, _), bd, wd, size in zip(
                position, tap, strides, padding, base_dilation, window_dilation, x.shape, strict=True
            ):
                q = p * s + t * wd - lo  # coordinate in the dilated operand
                if q < 0 or q % bd or q // bd >= size:
                    break
                index.append(q // bd)
            values.append(wide[tuple(index)] if len(index) == x.ndim else fill)
        out[position] = reduce(values)
    return out.astype(x.dtype)


def same_pads(in_shape, window, strides, lower=False):
    """``"SAME"``: ceil(size / stride) windows, the odd pad at the end (start if lower)."""
    pads = []
    for size, w, s in zip(in_shape, window, strides, strict=True):
        total = max(0, ((size + s - 1) // s - 1) * s + w - size)
        pads.append((total - total // 2, total // 2) if lower else (total // 2, total - total // 2))
    return tuple(pads)


@st.composite
def window_cases(draw):
    """An operand (size-0 and size-1 dims included) and window parameters; the high pad
    is raised where needed so that every window fits."""
    dtype = draw(fts.dtypes("fiu"))
    shape = draw(fts.shapes(min_dims=1, max_dims=3, max_side=5))
    x = draw(fts.arrays(dtype, shape))
    n = len(shape)
    ints = lambda lo, hi: draw(st.tuples(*[st.integers(lo, hi)] * n))  # noqa: E731
    window, strides, base_dilation, window_dilation = ints(1, 3), ints(1, 3), ints(1, 2), ints(1, 2)
    padding = []
    for size, w, bd, wd, lo, hi in zip(
        shape, window, base_dilation, window_dilation, ints(-1, 2), ints(-1, 2), strict=True
    ):
        dilated = (size - 1) * bd + 1 if size else 0
        padding.append((lo, max(hi, (w - 1) * wd + 1 - dilated - lo)))
    return x, window, strides, tuple(padding), base_dilation, window_dilation


@pytest.mark.parametrize("computation", [lax.add, lax.max, lax.min], ids=["add", "max", "min"])
@given(case=window_cases())
def test_reduce_window_matches_loop(computation, case):
    x, window, strides, padding, base_dilation, window_dilation = case
    init = REDUCTIONS[computation][1](x.dtype)

    def fn(a):
        return lax.reduce_window(a, init, computation, window, strides, padding, base_dilation, window_dilation)

    check_against_numpy(
        fn, lambda a: loop_reduce_window(a, computation, window, strides, padding, base_dilation, window_dilation), x
    )


POOLING = [  # NHWC input shape, window, strides, padding
    ((2, 6, 6, 3), (1, 2, 2, 1), (1, 2, 2, 1), "VALID"),
    ((2, 7, 5, 3), (1, 3, 3, 1), (1, 2, 2, 1), "SAME"),
    ((1, 5, 5, 2), (1, 3, 3, 1), (1, 1, 1, 1), "SAME"),
    ((1, 5, 4, 2), (1, 2, 3, 1), (1, 3, 2, 1), "SAME_LOWER"),
    ((1, 4, 4, 1), (1, 2, 2, 1), (1, 1, 1, 1), ((0, 0), (1, 0), (0, 2), (0, 0))),
]


@pytest.mark.parametrize("shape, window, strides, padding", POOLING)
@pytest.mark.parametrize("computation", [lax.add, lax.max], ids=["sum_pool", "max_pool"])
@pytest.mark.parametrize("dtype", ["float32", "int32"])
def test_pooling_nhwc(shape, window, strides, padding, computation, dtype):
    x = np.random.default_rng(0).integers(-50, 50, shape).astype(dtype)
    init = REDUCTIONS[computation][1](x.dtype)
    pads = padding
    if isinstance(padding, str):
        pads = ((0, 0),) * 4 if padding == "VALID" else same_pads(shape, window, strides, padding == "SAME_LOWER")
    ones = (1,) * 4
    check_against_numpy(
        lambda a: lax.reduce_window(a, init, computation, window, strides, padding),
        lambda a: loop_reduce_window(a, computation, window, strides, pads, ones, ones),
        x,
    )


def test_average_pooling_through_the_ir():
    x = np.arange(32.0, dtype=np.float32).reshape(1, 4, 4, 2)

    def avg_pool(a):
        window = (1, 2, 2, 1)
        total = lax.reduce_window(a, 0.0, lax.add, window, window, "VALID")
        return total / 4.0

    expected = x.reshape(1, 2, 2, 2, 2, 2).mean(axis=(2, 4))
    check_against_numpy(avg_pool, lambda a: expected, x)
    text = str(ft.make_ir(avg_pool)(x))
    assert "reduce_window_sum" in text and "window_dimensions=(1, 2, 2, 1)" in text


def test_dilations_by_hand():
    x = np.arange(1.0, 6.0)
    # window dilation 2: taps (i, i + 2)
    out = lax.reduce_window(x, 0.0, lax.add, (2,), (1,), "VALID", window_dilation=(2,))
    np.testing.assert_array_equal(out, [4.0, 6.0, 8.0])
    # base dilation 2: [1, _, 2, _, 3, _, 4, _, 5], holes hold the identity
    out = lax.reduce_window(x, -np.inf, lax.max, (2,), (1,), "VALID", base_dilation=(2,))
    np.testing.assert_array_equal(out, [1.0, 2.0, 2.0, 3.0, 3.0, 4.0, 4.0, 5.0])


def test_empty_input_has_no_windows():
    x = np.ones((2, 0, 3), np.float32)
    out = lax.reduce_window(x, -np.inf, lax.max, (1, 3, 2), (1, 1, 1), "SAME")
    assert out.shape == (2, 0, 3) and out.dtype == np.float32
    check_against_numpy(lambda a: lax.reduce_window(a, 0.0, lax.add, (1, 3, 1), (1, 1, 1), "VALID"),
                        lambda a: np.zeros((2, 0, 3), np.float32), x)  # fmt: skip


def test_zero_dim_operand_and_integer_identities():
    check_against_numpy(lambda a: lax.reduce_window(a, 0.0, lax.add, (), (), "VALID"), lambda a: a, np.float64(2.0))
    x = np.array([3, 7, 1], np.uint32)
    out = lax.reduce_window(x, 0, lax.max, (2,), (1,), ((1, 1),))
    np.testing.assert_array_equal(out, np.array([3, 7, 7, 1], np.uint32))
    out = lax.reduce_window(x.astype(np.int32), np.iinfo(np.int32).max, lax.min, (2,), (1,), "SAME")
    assert out.dtype == np.int32 and list(out) == [3, 1, 1]


@pytest.mark.parametrize(
    "in_shape, window, strides, padding, expected",
    [
        ((5, 4), (3, 2), (2, 1), "SAME", ((1, 1), (0, 1))),
        ((5, 4), (3, 2), (2, 1), "SAME_LOWER", ((1, 1), (1, 0))),
        ((6,), (3,), (2,), "SAME", ((0, 1),)),
        ((6,), (3,), (2,), "VALID", ((0, 0),)),
        ((2,), (5,), (1,), "SAME", ((2, 2),)),
        ((0,), (3,), (1,), "same", ((1, 1),)),
    ],
)
def test_padtype_to_pads(in_shape, window, strides, padding, expected):
    assert lax.padtype_to_pads(in_shape, window, strides, padding) == expected


# --- errors ---------------------------------------------------------------------------

X = np.ones((4, 4), np.float32)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: lax.reduce_window(X, 1.0, lax.add, (2, 2), (1, 1), "VALID"), NotImplementedError, "identity 0"),
        (lambda: lax.reduce_window(X, 0.0, lax.max, (2, 2), (1, 1), "VALID"), NotImplementedError, "-inf"),
        (lambda: lax.reduce_window(X, 0.0, lax.mul, (2, 2), (1, 1), "VALID"), NotImplementedError, "lax.add"),
        (lambda: lax.reduce_window(X, 0.0, lax.add, (2,), (1, 1), "VALID"), TypeError, r"needs 2 entries"),
        (lambda: lax.reduce_window(X, 0.0, lax.add, (2, 0), (1, 1), "VALID"), TypeError, "must be positive"),
        (lambda: lax.reduce_window(X, 0.0, lax.add, (2, 2), (1, -1), "VALID"), TypeError, "must be positive"),
        (lambda: lax.reduce_window(X, 0.0, lax.add, (5, 2), (1, 1), "VALID"), TypeError, r"larger than the input"),
        (lambda: lax.reduce_window(X, 0.0, lax.add, (2, 2), (1, 1), ((0, 0),)), TypeError, r"padding .* 2 entries"),
        (lambda: lax.reduce_window(X, 0.0, lax.add, (2, 2), (1, 1), "FULL"), ValueError, "'VALID', 'SAME'"),
        (lambda: lax.reduce_window(X, 0.0, lax.add, (2, 2), (1, 1), 3), ValueError, r"\(lo, hi\) pairs"),
        (lambda: lax.reduce_window(X > 0, False, lax.add, (2, 2), (1, 1), "VALID"), TypeError, "got bool"),
    ],
)
def test_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_error_names_shapes_and_user_line():
    with pytest.raises(TypeError) as info:
        ft.make_ir(lambda a: lax.reduce_window(a, 0.0, lax.add, (3, 9), (1, 1), "VALID"))(X)
    message = str(info.value)
    assert "reduce_window_sum" in message and "(3, 9)" in message and "(4, 4)" in message
    assert "test_windowed.py" in message


def test_traced_init_value_is_rejected():
    with pytest.raises(NotImplementedError, match="concrete init_value"):
        ft.make_ir(lambda a, init: lax.reduce_window(a, init, lax.add, (2, 2), (1, 1), "VALID"))(X, np.float32(0))
