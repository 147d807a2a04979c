"""``lax.conv_general_dilated`` against a plain-loop NumPy reference: strides, padding
(negative too), input and kernel dilation, feature and batch groups, layouts, 1-3 D."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from reference import check_against_numpy

import functrace as ft
from functrace import lax


def loop_conv(x, w, strides, padding, lhs_dilation, rhs_dilation, feature_groups=1, batch_groups=1):
    """``x (N, C, *S)`` and ``w (O, I, *K)`` to ``(N / batch_groups, O, *P)``, one output
    element and one kernel tap at a time, in 64-bit arithmetic."""
    wide = np.float64 if x.dtype.kind == "f" else np.int64
    n, _, *space = x.shape
    o, i, *taps = w.shape
    out_space = []
    for size, k, s, (lo, hi), ld, rd in zip(space, taps, strides, padding, lhs_dilation, rhs_dilation, strict=True):
        padded = ((size - 1) * ld + 1 if size else 0) + lo + hi
        out_space.append(max(0, (padded - ((k - 1) * rd + 1)) // s + 1))
    batch = n // batch_groups
    per_group = o // (feature_groups * batch_groups)
    out = np.zeros((batch, o, *out_space), wide)
    for b, f, p in itertools.product(range(batch), range(o), itertools.product(*map(range, out_space))):
        group = f // per_group
        source_batch = (group % batch_groups) * batch + b
        total = wide(0)
        for feature, tap in itertools.product(range(i), itertools.product(*map(range, taps))):
            index = []
            for pos, t, s, (lo, _), ld, rd, size in zip(
                p, tap, strides, padding, lhs_dilation, rhs_dilation, space, strict=True
            ):
                q = pos * s + t * rd - lo  # coordinate in the dilated input
                if q < 0 or q % ld or q // ld >= size:
                    break
                index.append(q // ld)
            if len(index) == len(space):
                source_feature = (group % feature_groups) * i + feature
                total += wide(x[(source_batch, source_feature, *index)]) * wide(w[(f, feature, *tap)])
        out[(b, f, *p)] = total
    return out.astype(x.dtype)


# layout: (dimension_numbers, lhs, rhs, out letters), spatial letters in one order.
LAYOUTS = {
    "NCW": (None, "NCW", "OIW", "NCW"),
    "NWC": (("NWC", "WIO", "NWC"), "NWC", "WIO", "NWC"),
    "NCHW": (None, "NCHW", "OIHW", "NCHW"),
    "NHWC": (("NHWC", "HWIO", "NHWC"), "NHWC", "HWIO", "NHWC"),
    "mixed": (("NCHW", "HWIO", "NHWC"), "NCHW", "HWIO", "NHWC"),
    "NDHWC": (("NDHWC", "DHWIO", "NDHWC"), "NDHWC", "DHWIO", "NDHWC"),
}


def canonical(layout: str, first: str, second: str) -> str:
    return first + second + "".join(c for c in layout if c not in first + second)


def loop_conv_in_layout(layout, x, w, *args):
    """The loop reference for operands and results in a named layout (moved by einsum)."""
    _, lhs, rhs, out = LAYOUTS[layout]
    x = np.einsum(f"{lhs}->{canonical(lhs, 'N', 'C')}", x)
    w = np.einsum(f"{rhs}->{canonical(rhs, 'O', 'I')}", w)
    result = loop_conv(x, w, *args)
    return np.einsum(f"{canonical(out, 'N', 'C')}->{out}", result)


def to_layout(layout: str, canonical_shape: tuple[int, ...], which: int, first: str, second: str):
    letters = LAYOUTS[layout][which]
    sizes = dict(zip(canonical(letters, first, second), canonical_shape, strict=True))
    return tuple(sizes[c] for c in letters)


@st.composite
def conv_cases(draw, layouts=("NCW", "NWC", "NCHW", "NHWC", "mixed")):
    """Operands (size-0 batch, features and outputs included) and conv parameters; the
    high pad is raised where needed so that the kernel fits."""
    layout = draw(st.sampled_from(layouts))
    ns = len(LAYOUTS[layout][1]) - 2
    ints = lambda lo, hi: draw(st.tuples(*[st.integers(lo, hi)] * ns))  # noqa: E731
    feature_groups, batch_groups = draw(st.sampled_from([(1, 1), (1, 1), (2, 1), (3, 1), (1, 2)]))
    n = batch_groups * draw(st.integers(0, 2))
    i, o = draw(st.integers(0, 2)), feature_groups * batch_groups * draw(st.integers(0, 2))
    space, taps = ints(1, 6 if ns == 1 else 4), ints(1, 3)
    strides, lhs_dilation, rhs_dilation = ints(1, 3), ints(1, 2), ints(1, 2)
    padding = []
    for size, k, ld, rd, lo, hi in zip(space, taps, lhs_dilation, rhs_dilation, ints(-1, 2), ints(-1, 2), strict=True):
        padding.append((lo, max(hi, (k - 1) * rd + 1 - ((size - 1) * ld + 1) - lo)))
    dtype = draw(st.sampled_from([np.float32, np.float64, np.int32]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    # Small integer values: every dtype computes the sums exactly.
    x = rng.integers(-3, 4, to_layout(layout, (n, i * feature_groups, *space), 1, "N", "C")).astype(dtype)
    w = rng.integers(-3, 4, to_layout(layout, (o, i, *taps), 2, "O", "I")).astype(dtype)
    params = (strides, tuple(padding), lhs_dilation, rhs_dilation, feature_groups, batch_groups)
    return layout, x, w, params


def check_conv(layout, x, w, params):
    strides, padding, lhs_dilation, rhs_dilation, feature_groups, batch_groups = params
    dimension_numbers = LAYOUTS[layout][0]

    def fn(lhs, rhs):
        return lax.conv_general_dilated(
            lhs,
            rhs,
            strides,
            padding,
            lhs_dilation,
            rhs_dilation,
            dimension_numbers,
            feature_group_count=feature_groups,
            batch_group_count=batch_groups,
        )

    check_against_numpy(fn, lambda lhs, rhs: loop_conv_in_layout(layout, lhs, rhs, *params), x, w)


@given(case=conv_cases())
def test_conv_matches_loop(case):
    check_conv(*case)


# layout, lhs shape, rhs shape, (strides, padding, lhs_dilation, rhs_dilation, feature groups, batch groups)
CASES = [
    ("NCHW", (2, 3, 6, 5), (4, 3, 3, 2), ((1, 1), ((0, 0), (0, 0)), (1, 1), (1, 1), 1, 1)),
    ("NHWC", (2, 7, 6, 4), (3, 3, 2, 6), ((2, 1), ((1, 2), (-1, 1)), (1, 1), (2, 1), 2, 1)),
    ("NHWC", (1, 5, 5, 4), (2, 2, 1, 4), ((1, 2), ((1, 1), (0, 1)), (2, 2), (1, 1), 4, 1)),  # depthwise
    ("NCHW", (4, 2, 5, 4), (6, 2, 2, 3), ((1, 1), ((0, 1), (1, 0)), (1, 2), (2, 1), 1, 2)),
    ("NWC", (6, 9, 2), (3, 2, 6), ((2,), ((-2, 1),), (1,), (3,), 1, 3)),
    ("mixed", (2, 6, 5, 5), (2, 3, 2, 9), ((3, 2), ((2, -1), (0, 0)), (3, 1), (1, 2), 3, 1)),
    ("NDHWC", (2, 5, 4, 6, 2), (2, 3, 2, 2, 3), ((1, 2, 2), ((0, 1), (1, 1), (-1, 2)), (1, 1, 2), (2, 1, 1), 1, 1)),
]


@pytest.mark.parametrize("layout, lhs_shape, rhs_shape, params", CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.int64])
def test_conv_cases(layout, lhs_shape, rhs_shape, params, dtype):
    rng = np.random.default_rng(1)
    x = rng.integers(-3, 4, lhs_shape).astype(dtype)
    w = rng.integers(-3, 4, rhs_shape).astype(dtype)
    check_conv(layout, x, w, params)


def same_pads(in_space, kernel, strides):
    pads = []
    for size, k, s in zip(in_space, kernel, strides, strict=True):
        total = max(0, (-(-size // s) - 1) * s + k - size)
        pads.append((total // 2, total - total // 2))
    return tuple(pads)


@pytest.mark.parametrize("padding", ["VALID", "SAME", "SAME_LOWER"])
@pytest.mark.parametrize("strides", [(1, 1), (2, 3)])
def test_string_padding_nhwc(padding, strides):
    rng = np.random.default_rng(2)
    x = rng.integers(-3, 4, (2, 7, 6, 3)).astype(np.float64)
    w = rng.integers(-3, 4, (3, 2, 3, 4)).astype(np.float64)
    rhs_dilation = (1, 2)
    pads = same_pads((7, 6), (3, 3), strides)  # the dilated kernel is 3 x 3
    pads = {"VALID": ((0, 0), (0, 0)), "SAME": pads, "SAME_LOWER": tuple((hi, lo) for lo, hi in pads)}[padding]
    check_against_numpy(
        lambda a, b: lax.conv_general_dilated(a, b, strides, padding, None, rhs_dilation, ("NHWC", "HWIO", "NHWC")),
        lambda a, b: loop_conv_in_layout("NHWC", a, b, strides, pads, (1, 1), rhs_dilation),
        x,
        w,
    )
    if padding != "VALID":
        out = lax.conv_general_dilated(x, w, strides, padding, None, rhs_dilation, ("NHWC", "HWIO", "NHWC"))
        assert out.shape == (2, -(-7 // strides[0]), -(-6 // strides[1]), 4)


def test_depthwise_and_transposed_by_hand():
    x = np.arange(1.0, 4.0).reshape(1, 1, 3)
    # lhs_dilation 2 (a transposed conv): [1, 0, 2, 0, 3] with a kernel of ones (2,)
    out = lax.conv_general_dilated(x, np.ones((1, 1, 2)), (1,), ((0, 0),), lhs_dilation=(2,))
    np.testing.assert_array_equal(out, [[[1.0, 2.0, 2.0, 3.0]]])
    # depthwise: every feature its own kernel
    x = np.stack([np.ones(4), 2 * np.ones(4)])[None]  # (1, 2, 4)
    w = np.array([[[1.0, 1.0]], [[10.0, 10.0]]])  # (2, 1, 2)
    out = lax.conv_general_dilated(x, w, (2,), "VALID", feature_group_count=2)
    np.testing.assert_array_equal(out, [[[2.0, 2.0], [40.0, 40.0]]])


def test_conv_wrapper_and_preferred_element_type():
    x = np.ones((1, 2, 4, 4), np.int32)
    w = np.ones((3, 2, 2, 2), np.int32)
    check_against_numpy(
        lambda a, b: lax.conv(a, b, (2, 2), "VALID", preferred_element_type=np.float32),
        lambda a, b: loop_conv(a, b, (2, 2), ((0, 0), (0, 0)), (1, 1), (1, 1)).astype(np.float32),
        x,
        w,
    )


def test_no_spatial_dimensions_is_a_matmul():
    x, w = np.arange(6.0).reshape(2, 3), np.arange(12.0).reshape(4, 3)
    check_against_numpy(lambda a, b: lax.conv_general_dilated(a, b, (), ()), lambda a, b: a @ b.T, x, w)


def test_empty_spatial_input_gives_empty_output():
    x, w = np.ones((2, 3, 0), np.float32), np.ones((4, 3, 3), np.float32)
    out = lax.conv_general_dilated(x, w, (1,), "SAME")
    assert out.shape == (2, 4, 0) and out.dtype == np.float32


@pytest.mark.parametrize(
    "dimension_numbers, expected",
    [
        (None, ((0, 1, 2, 3), (0, 1, 2, 3), (0, 1, 2, 3))),
        (("NHWC", "HWIO", "NHWC"), ((0, 3, 1, 2), (3, 2, 0, 1), (0, 3, 1, 2))),
        (("NCHW", "OIHW", "NHWC"), ((0, 1, 2, 3), (0, 1, 2, 3), (0, 3, 1, 2))),
        (("NHWC", "WHIO", "NCHW"), ((0, 3, 2, 1), (3, 2, 0, 1), (0, 1, 3, 2))),  # spatial order from rhs
        (((0, 3, 1, 2), (3, 2, 0, 1), (0, 3, 1, 2)), ((0, 3, 1, 2), (3, 2, 0, 1), (0, 3, 1, 2))),
    ],
)
def test_conv_dimension_numbers(dimension_numbers, expected):
    dnums = lax.conv_dimension_numbers((1, 5, 5, 3), (3, 3, 3, 8), dimension_numbers)
    assert dnums == lax.ConvDimensionNumbers(*expected) and hash(dnums) == hash(dnums)


def test_params_are_hashable_and_printed():
    x, w = np.ones((1, 6, 6, 2), np.float32), np.ones((3, 3, 2, 4), np.float32)

    def f(a, b):
        return lax.conv_general_dilated(a, b, (2, 2), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))

    ir = ft.make_ir(f)(x, w)
    (eqn,) = ir.eqns
    hash(tuple(sorted(eqn.params.items())))
    assert eqn.params["padding"] == ((0, 1), (0, 1))
    assert "conv_general_dilated" in str(ir) and "f32[1,3,3,4]" in str(ir)


# --- errors ---------------------------------------------------------------------------

X = np.ones((1, 3, 5, 5), np.float32)
W = np.ones((4, 3, 3, 3), np.float32)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: lax.conv(X, np.ones((4, 2, 3, 3), np.float32), (1, 1), "VALID"), TypeError, "3 input features"),
        (lambda: lax.conv(X, np.ones((4, 3, 7, 3), np.float32), (1, 1), "VALID"), TypeError, "larger than the input"),
        (lambda: lax.conv(X, W, (1, 0), "VALID"), TypeError, "strides must be positive"),
        (lambda: lax.conv(X, W, (1,), "VALID"), TypeError, "needs 2 entries"),
        (lambda: lax.conv(X, W, (1, 1), ((0, 0),)), TypeError, r"padding .* 2 entries"),
        (lambda: lax.conv(X, W, (1, 1), "FULL"), ValueError, "'VALID', 'SAME'"),
        (lambda: lax.conv(X, W.astype(np.float64), (1, 1), "VALID"), TypeError, "different dtypes"),
        (lambda: lax.conv(X > 0, W > 0, (1, 1), "VALID"), TypeError, "got bool"),
        (lambda: lax.conv(X, W[0], (1, 1), "VALID"), TypeError, "one rank"),
        (lambda: lax.conv_general_dilated(X, W, (1, 1), "VALID", rhs_dilation=(0, 1)), TypeError, "positive"),
        (lambda: lax.conv_general_dilated(X, W, (1, 1), "VALID", feature_group_count=2), TypeError, "feature groups"),
        (
            lambda: lax.conv_general_dilated(X, W[:, :1], (1, 1), "VALID", feature_group_count=3),
            TypeError,
            "4 output features do not split",
        ),
        (lambda: lax.conv_general_dilated(X, W, (1, 1), "VALID", batch_group_count=2), TypeError, "batch size 1"),
        (
            lambda: lax.conv_general_dilated(X, W, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO")),
            ValueError,
            "3 entries",
        ),
        (
            lambda: lax.conv_general_dilated(X, W, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHW")),
            TypeError,
            "do not match the ranks",
        ),
        (
            lambda: lax.conv_general_dilated(X, W, (1, 1), "VALID", dimension_numbers=("NHWC", "HWOO", "NHWC")),
            ValueError,
            "one 'O', one 'I'",
        ),
        (
            lambda: lax.conv_general_dilated(X, W, (1, 1), "VALID", dimension_numbers=("NHWC", "HDIO", "NHWC")),
            ValueError,
            "different spatial",
        ),
        (
            lambda: lax.conv_general_dilated(
                X,
                W,
                (1, 1),
                "VALID",
                dimension_numbers=lax.ConvDimensionNumbers((0, 1, 2, 2), (0, 1, 2, 3), (0, 1, 2, 3)),
            ),
            TypeError,
            "not a permutation",
        ),
    ],
)
def test_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_error_names_shapes_and_user_line():
    with pytest.raises(TypeError) as info:
        ft.make_ir(lambda a, b: lax.conv(a, b, (1, 1), "VALID"))(X, np.ones((4, 2, 3, 3), np.float32))
    message = str(info.value)
    assert "conv_general_dilated" in message and "test_convolution.py" in message
