"""Gradients of convolution and windowed reductions: finite-difference checks to order 2
(forward and reverse) over a table of convolution and pooling configurations, the
tie-breaking rule of max/min pooling, and the shape of the derivative IR."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import functrace as ft
import functrace.numpy as fnp
from functrace import lax
from functrace.testing.gradients import check_grads

ORDER2 = {"order": 2, "modes": ("fwd", "rev")}


def distinct(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Values at least 0.3 apart: no ties for max/min, even after a finite-difference step."""
    rng = np.random.default_rng(seed)
    size = int(np.prod(shape, dtype=np.int64))
    values = rng.permutation(size) * 0.5 - size / 4 + rng.uniform(-0.1, 0.1, size)
    return values.reshape(shape)


def dilate(size: int, dilation: int) -> int:
    return 0 if size == 0 else (size - 1) * dilation + 1


# --- convolution ---------------------------------------------------------------------------

# name: (dimension_numbers, lhs letters, rhs letters)
LAYOUTS = {
    "NCW": (None, "NCW", "OIW"),
    "NWC": (("NWC", "WIO", "NWC"), "NWC", "WIO"),
    "NCHW": (None, "NCHW", "OIHW"),
    "NHWC": (("NHWC", "HWIO", "NHWC"), "NHWC", "HWIO"),
    "mixed": (("NCHW", "HWIO", "NHWC"), "NCHW", "HWIO"),
}

# id, layout, strides, padding, lhs_dilation, rhs_dilation, feature groups ("C": depthwise), batch groups
CONV_CASES = [
    ("1d-valid", "NCW", (1,), "VALID", (1,), (1,), 1, 1),
    ("1d-stride2-same", "NWC", (2,), "SAME", (1,), (1,), 1, 1),
    ("1d-explicit-negative", "NCW", (1,), ((2, -1),), (1,), (1,), 1, 1),
    ("1d-lhs-dilation", "NWC", (1,), ((1, 1),), (2,), (1,), 1, 1),
    ("1d-rhs-dilation", "NCW", (2,), "SAME", (1,), (2,), 1, 1),
    ("1d-everything", "NWC", (2,), ((1, -1),), (2,), (2,), 2, 1),
    ("2d-nchw-valid", "NCHW", (1, 1), "VALID", (1, 1), (1, 1), 1, 1),
    ("2d-nhwc-stride2-same", "NHWC", (2, 2), "SAME", (1, 1), (1, 1), 1, 1),
    ("2d-nhwc-stride2-valid", "NHWC", (2, 2), "VALID", (1, 1), (1, 1), 1, 1),
    ("2d-nchw-explicit", "NCHW", (1, 2), ((1, 0), (-1, 2)), (1, 1), (1, 1), 1, 1),
    ("2d-nhwc-rhs-dilation", "NHWC", (1, 1), "SAME", (1, 1), (2, 1), 1, 1),
    ("2d-nchw-lhs-dilation", "NCHW", (1, 1), ((1, 1), (0, 1)), (2, 2), (1, 1), 1, 1),
    ("2d-nhwc-feature-groups", "NHWC", (1, 1), "SAME", (1, 1), (1, 1), 2, 1),
    ("2d-nhwc-depthwise", "NHWC", (2, 2), "SAME", (1, 1), (1, 1), "C", 1),
    ("2d-nchw-depthwise-dilated", "NCHW", (1, 1), "VALID", (1, 1), (2, 2), "C", 1),
    ("2d-mixed-layout", "mixed", (2, 1), ((0, 1), (1, 1)), (1, 1), (1, 2), 1, 1),
    ("2d-nchw-batch-groups", "NCHW", (1, 1), "VALID", (1, 1), (1, 1), 1, 2),
    ("1d-batch-groups-strided", "NWC", (2,), ((1, 0),), (1,), (2,), 1, 3),
]


def in_layout(letters: str, sizes: dict[str, int]) -> tuple[int, ...]:
    return tuple(sizes[c] for c in letters)


@st.composite
def conv_operands(draw, layout, padding, lhs_dilation, rhs_dilation, feature_groups, batch_groups):
    """Operands in ``layout``: small batch and feature counts, each input side long enough
    for the (dilated) kernel after explicit (possibly negative) padding."""
    _, lhs_letters, rhs_letters = LAYOUTS[layout]
    spatial = [c for c in rhs_letters if c not in "OI"]
    if feature_groups == "C":  # depthwise: one input feature per group
        groups, per_group = draw(st.integers(2, 3)), 1
    else:
        groups, per_group = feature_groups, draw(st.integers(1, 2))
    in_features = groups * per_group
    out_groups = groups * batch_groups
    lhs_sizes = {"N": batch_groups * draw(st.integers(1, 2)), "C": in_features}
    rhs_sizes = {"O": out_groups * draw(st.integers(1, 2)), "I": per_group}
    for k, c in enumerate(spatial):
        taps = draw(st.integers(1, 3))
        lo_hi = 0 if isinstance(padding, str) else sum(padding[k])
        needed = max(1, dilate(taps, rhs_dilation[k]) - lo_hi)  # the dilated input's shortest length
        rhs_sizes[c] = taps
        lhs_sizes[c] = -(-(needed - 1) // lhs_dilation[k]) + 1 + draw(st.integers(0, 2))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    lhs = rng.normal(size=in_layout(lhs_letters, lhs_sizes))
    rhs = rng.normal(size=in_layout(rhs_letters, rhs_sizes))
    return lhs, rhs, groups


@pytest.mark.parametrize(
    "layout,strides,padding,lhs_dilation,rhs_dilation,feature_groups,batch_groups",
    [case[1:] for case in CONV_CASES],
    ids=[case[0] for case in CONV_CASES],
)
@settings(max_examples=6)
@given(data=st.data())
def test_conv_grads(layout, strides, padding, lhs_dilation, rhs_dilation, feature_groups, batch_groups, data):
    lhs, rhs, groups = data.draw(
        conv_operands(layout, padding, lhs_dilation, rhs_dilation, feature_groups, batch_groups)
    )

    def conv(x, w):
        return lax.conv_general_dilated(
            x,
            w,
            strides,
            padding,
            lhs_dilation,
            rhs_dilation,
            LAYOUTS[layout][0],
            feature_group_count=groups,
            batch_group_count=batch_groups,
        )

    check_grads(conv, (lhs, rhs), **ORDER2)


def test_conv_grads_through_a_small_cnn():
    """Two NHWC convolutions with a nonlinearity between: second derivatives mix both kernels."""
    rng = np.random.default_rng(0)
    x, w1, w2 = rng.normal(size=(2, 5, 5, 2)), rng.normal(size=(3, 3, 2, 3)), rng.normal(size=(2, 2, 3, 2))
    dn = ("NHWC", "HWIO", "NHWC")

    def net(x, w1, w2):
        h = fnp.tanh(lax.conv_general_dilated(x, w1, (1, 1), "SAME", dimension_numbers=dn))
        return fnp.sum(lax.conv_general_dilated(h, w2, (2, 2), "VALID", dimension_numbers=dn) ** 2)

    check_grads(net, (x, w1, w2), **ORDER2)


def test_conv_grad_of_empty_batch_is_zero():
    x, w = np.zeros((0, 4, 4, 2)), np.ones((3, 3, 2, 5))
    dn = ("NHWC", "HWIO", "NHWC")
    gx, gw = ft.grad(
        lambda x, w: fnp.sum(lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=dn)), (0, 1)
    )(x, w)
    assert gx.shape == x.shape and gw.shape == w.shape
    np.testing.assert_array_equal(gw, np.zeros_like(w))
    check_grads(lambda x, w: lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=dn), (x, w), **ORDER2)


def prim_names(ir) -> list[str]:
    return [e.primitive.name for e in ir.eqns]


def test_conv_grad_ir_needs_no_layout_transposes():
    """NHWC/HWIO without groups: each cotangent is one convolution (the kernel reversed for
    the input's), layouts carried by dimension numbers rather than transposes."""
    rng = np.random.default_rng(1)
    x, w = rng.normal(size=(2, 6, 6, 3)), rng.normal(size=(3, 3, 3, 4))
    dn = ("NHWC", "HWIO", "NHWC")

    def loss(x, w):
        return fnp.sum(lax.conv_general_dilated(x, w, (2, 2), "SAME", dimension_numbers=dn))

    names = prim_names(ft.make_ir(ft.grad(loss, argnums=(0, 1)))(x, w))
    assert names.count("conv_general_dilated") in (2, 3), names  # (forward), input, kernel
    assert names.count("rev") == 1 and "transpose" not in names and "reshape" not in names, names


def test_conv_grad_staged_matches_eager():
    rng = np.random.default_rng(2)
    x, w = rng.normal(size=(2, 4, 7)), rng.normal(size=(6, 2, 3))

    def loss(x, w):
        y = lax.conv_general_dilated(x, w, (2,), ((1, 2),), (1,), (2,), feature_group_count=2)
        return fnp.sum(fnp.sin(y))

    grad = ft.grad(loss, argnums=(0, 1))
    eager = grad(x, w)
    for staged in (ft.jit(grad, backend="interpret")(x, w), ft.make_ir(grad)(x, w).eval(x, w)):
        for s, e in zip(staged, eager, strict=True):
            np.testing.assert_allclose(s, e, rtol=1e-12, atol=1e-12)


# --- windowed reductions --------------------------------------------------------------------

COMPUTATIONS = {"sum": (lax.add, 0.0), "max": (lax.max, -np.inf), "min": (lax.min, np.inf)}

# id, window, strides, padding, base_dilation, window_dilation (NHWC unless rank 1)
POOL_CASES = [
    ("2x2-stride2-valid", (1, 2, 2, 1), (1, 2, 2, 1), "VALID", None, None),
    ("3x3-stride2-same", (1, 3, 3, 1), (1, 2, 2, 1), "SAME", None, None),
    ("3x3-stride1-same", (1, 3, 3, 1), (1, 1, 1, 1), "SAME", None, None),
    ("2x2-stride1-valid", (1, 2, 2, 1), (1, 1, 1, 1), "VALID", None, None),
    ("explicit-negative", (1, 2, 2, 1), (1, 1, 2, 1), ((0, 0), (1, -1), (-1, 1), (0, 0)), None, None),
    ("window-dilation", (1, 2, 2, 1), (1, 1, 1, 1), "VALID", None, (1, 2, 1, 1)),
    ("base-dilation", (1, 2, 2, 1), (1, 1, 2, 1), ((0, 0), (1, 1), (0, 0), (0, 0)), (1, 2, 2, 1), None),
    ("1d-same", (3,), (2,), "SAME", None, None),
]


def pool(x, computation: str, window, strides, padding, base_dilation=None, window_dilation=None):
    fn, init = COMPUTATIONS[computation]
    return lax.reduce_window(x, init, fn, window, strides, padding, base_dilation, window_dilation)


@pytest.mark.parametrize("computation", ["sum", "max", "min"])
@pytest.mark.parametrize(
    "window,strides,padding,base_dilation,window_dilation",
    [case[1:] for case in POOL_CASES],
    ids=[case[0] for case in POOL_CASES],
)
@settings(max_examples=5)
@given(data=st.data(), seed=st.integers(0, 2**16))
def test_pool_grads(computation, window, strides, padding, base_dilation, window_dilation, data, seed):
    if len(window) == 1:
        shape = (data.draw(st.integers(1, 6)),)
    else:
        sides = st.integers(max(window[1:3]) + 1, 5)
        shape = (data.draw(st.integers(1, 2)), data.draw(sides), data.draw(sides), data.draw(st.integers(1, 2)))
    x = distinct(shape, seed)
    params = (computation, window, strides, padding, base_dilation, window_dilation)
    # A window of nothing but padding has no element to differentiate.
    assume(np.isfinite(pool(x, *params)).all())

    def f(x):
        p = pool(x, *params)
        return p * fnp.sin(p)  # nonlinear, so the second derivative is not zero

    check_grads(f, (x,), **ORDER2)


@settings(max_examples=10)
@given(seed=st.integers(0, 2**16), same=st.booleans())
def test_avg_pool_grads(seed, same):
    """Average pooling as a sum pool divided by the count of real elements in each window."""
    x = np.random.default_rng(seed).normal(size=(2, 5, 4, 3))
    padding = "SAME" if same else "VALID"
    window, strides = (1, 3, 3, 1), (1, 2, 2, 1)

    def avg_pool(x):
        counts = pool(np.ones(x.shape), "sum", window, strides, padding)
        return fnp.tanh(pool(x, "sum", window, strides, padding) / counts)

    check_grads(avg_pool, (x,), **ORDER2)
    if same:  # pads (1, 1) along H and (0, 1) along W: the first window holds 2 x 3 elements
        first = ft.grad(lambda x: pool(x, "sum", window, strides, padding)[0, 0, 0, 0])(x)
        expected = np.zeros(x.shape)
        expected[0, :2, :3, 0] = 1.0
        np.testing.assert_array_equal(first, expected)


@pytest.mark.parametrize("computation", ["max", "min"])
def test_pool_ties_go_to_the_first_tap(computation):
    """Every window of a constant input ties; the first tap (row-major) takes the cotangent."""
    x = np.ones((4, 3))
    grad = ft.grad(lambda x: fnp.sum(pool(x, computation, (2, 2), (1, 1), "VALID")))(x)
    np.testing.assert_array_equal(grad, [[1, 1, 0], [1, 1, 0], [1, 1, 0], [0, 0, 0]])
    _, tangent = ft.jvp(lambda x: pool(x, computation, (2, 2), (1, 1), "VALID"), (x,), (np.arange(12.0).reshape(4, 3),))
    np.testing.assert_array_equal(tangent, [[0, 1], [3, 4], [6, 7]])


def test_max_pool_grad_matches_argmax_reference():
    """Non-overlapping 2x2 max pooling: the gradient is the one-hot of each block's argmax."""
    x = distinct((2, 4, 6, 3), 3)
    grad = ft.grad(lambda x: fnp.sum(pool(x, "max", (1, 2, 2, 1), (1, 2, 2, 1), "VALID")))(x)
    blocks = x.reshape(2, 2, 2, 3, 2, 3).transpose(0, 1, 3, 5, 2, 4).reshape(2, 2, 3, 3, 4)
    onehot = (blocks == blocks.max(axis=-1, keepdims=True)).astype(float)
    expected = onehot.reshape(2, 2, 3, 3, 2, 2).transpose(0, 1, 4, 2, 5, 3).reshape(x.shape)
    np.testing.assert_array_equal(grad, expected)


@pytest.mark.parametrize("computation", ["sum", "max"])
def test_pool_grad_of_empty_input_is_empty(computation):
    x = np.zeros((0, 4, 4, 2))
    grad = ft.grad(lambda x: fnp.sum(pool(x, computation, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")))(x)
    assert grad.shape == x.shape


def test_pool_grad_ir_is_lean():
    """Sum pooling's gradient is one more sum pooling; max pooling's binds no multiplications."""
    x = distinct((1, 4, 4, 2), 4)
    sum_ir = ft.make_ir(ft.grad(lambda x: fnp.sum(pool(x, "sum", (1, 2, 2, 1), (1, 1, 1, 1), "SAME") ** 2)))(x)
    assert prim_names(sum_ir).count("reduce_window_sum") == 2, sum_ir
    max_ir = ft.make_ir(ft.grad(lambda x: fnp.sum(pool(x, "max", (1, 2, 2, 1), (1, 2, 2, 1), "VALID"))))(x)
    assert "mul" not in prim_names(max_ir), max_ir
    max_ir.typecheck()
    grad = ft.grad(lambda x: fnp.sum(pool(x, "max", (1, 2, 2, 1), (1, 2, 2, 1), "VALID")))
    np.testing.assert_array_equal(max_ir.eval(x), grad(x))
    np.testing.assert_array_equal(ft.jit(grad, backend="interpret")(x), grad(x))
