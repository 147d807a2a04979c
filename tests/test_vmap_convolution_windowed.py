"""vmap of convolution and windowed reductions against a Python loop over examples: a
table of convolution configurations with the kernel, the input or both mapped at any
axis, pooling with mapped inputs, nested vmap, per-example gradients of a small CNN, and
IR checks (no per-example unrolling, no transposes where the mapped axis is already in
place)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import functrace as ft
import functrace.numpy as fnp
from functrace import lax
from functrace.tree_util import tree_map
from tests.reference import assert_same, check_against_numpy


def dilate(size: int, dilation: int) -> int:
    return 0 if size == 0 else (size - 1) * dilation + 1


def example(x: np.ndarray, axis: int | None, i: int) -> np.ndarray:
    return x if axis is None else np.take(x, i, axis=axis)


def batched(x: np.ndarray, axis: int | None) -> np.ndarray:
    """A batch stacked on axis 0, moved to ``axis`` (``None``: its first example only)."""
    return x[0] if axis is None else np.moveaxis(x, 0, axis)


def loop(f, in_axes: tuple, size: int, out_axis: int = 0):
    """The reference: ``f`` applied to each example, results stacked on ``out_axis``."""

    def run(*args):
        outs = [f(*(example(a, ax, i) for a, ax in zip(args, in_axes, strict=True))) for i in range(size)]
        return np.stack(outs, axis=out_axis)

    return run


def prim_names(ir) -> list[str]:
    return [e.primitive.name for e in ir.eqns]


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
    ("1d-dilations-groups", "NWC", (2,), ((1, -1),), (2,), (2,), 2, 1),
    ("2d-nchw-valid", "NCHW", (1, 1), "VALID", (1, 1), (1, 1), 1, 1),
    ("2d-nhwc-stride2-same", "NHWC", (2, 2), "SAME", (1, 1), (1, 1), 1, 1),
    ("2d-nchw-explicit", "NCHW", (1, 2), ((1, 0), (-1, 2)), (1, 1), (1, 1), 1, 1),
    ("2d-nhwc-rhs-dilation", "NHWC", (1, 1), "SAME", (1, 1), (2, 1), 1, 1),
    ("2d-nchw-lhs-dilation", "NCHW", (1, 1), ((1, 1), (0, 1)), (2, 2), (1, 1), 1, 1),
    ("2d-nhwc-feature-groups", "NHWC", (1, 1), "SAME", (1, 1), (1, 1), 2, 1),
    ("2d-nchw-feature-groups", "NCHW", (2, 1), "VALID", (1, 1), (1, 1), 3, 1),
    ("2d-nhwc-depthwise", "NHWC", (2, 2), "SAME", (1, 1), (1, 1), "C", 1),
    ("2d-nchw-depthwise-dilated", "NCHW", (1, 1), "VALID", (1, 1), (2, 2), "C", 1),
    ("2d-mixed-layout", "mixed", (2, 1), ((0, 1), (1, 1)), (1, 1), (1, 2), 1, 1),
    ("2d-nchw-batch-groups", "NCHW", (1, 1), "VALID", (1, 1), (1, 1), 1, 2),
    ("1d-batch-groups-strided", "NWC", (2,), ((1, 0),), (1,), (2,), 1, 3),
    ("2d-nhwc-batch-groups", "NHWC", (1, 1), "SAME", (1, 1), (1, 1), 1, 2),
]

# (lhs axis, rhs axis): lhs only, rhs only, both; axes of the batched operands
IN_AXES = st.sampled_from([0, 1, -1, None])


def in_layout(letters: str, sizes: dict[str, int]) -> tuple[int, ...]:
    return tuple(sizes[c] for c in letters)


def random_values(rng: np.random.Generator, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    if dtype.kind == "i":
        return rng.integers(-3, 4, size=shape).astype(dtype)
    return rng.normal(size=shape).astype(dtype)


@st.composite
def conv_batches(draw, layout, padding, lhs_dilation, rhs_dilation, feature_groups, batch_groups):
    """``size`` examples of each operand stacked on axis 0, the feature group count, and
    the dtype; each input side long enough for the (dilated) kernel after padding."""
    _, lhs_letters, rhs_letters = LAYOUTS[layout]
    spatial = [c for c in rhs_letters if c not in "OI"]
    if feature_groups == "C":  # depthwise: one input feature per group
        groups, per_group = draw(st.integers(2, 3)), 1
    else:
        groups, per_group = feature_groups, draw(st.integers(1, 2))
    lhs_sizes = {"N": batch_groups * draw(st.integers(1, 2)), "C": groups * per_group}
    rhs_sizes = {"O": groups * batch_groups * draw(st.integers(1, 2)), "I": per_group}
    for k, c in enumerate(spatial):
        taps = draw(st.integers(1, 3))
        lo_hi = 0 if isinstance(padding, str) else sum(padding[k])
        needed = max(1, dilate(taps, rhs_dilation[k]) - lo_hi)  # the dilated input's shortest length
        rhs_sizes[c] = taps
        lhs_sizes[c] = -(-(needed - 1) // lhs_dilation[k]) + 1 + draw(st.integers(0, 2))
    size = draw(st.integers(1, 4))
    dtype = np.dtype(draw(st.sampled_from(["float64", "float32", "int32"])))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    lhs = random_values(rng, (size, *in_layout(lhs_letters, lhs_sizes)), dtype)
    rhs = random_values(rng, (size, *in_layout(rhs_letters, rhs_sizes)), dtype)
    return lhs, rhs, groups


@pytest.mark.parametrize(
    "layout,strides,padding,lhs_dilation,rhs_dilation,feature_groups,batch_groups",
    [case[1:] for case in CONV_CASES],
    ids=[case[0] for case in CONV_CASES],
)
@settings(max_examples=8)
@given(data=st.data())
def test_vmap_conv_matches_loop(
    layout, strides, padding, lhs_dilation, rhs_dilation, feature_groups, batch_groups, data
):
    lhs, rhs, groups = data.draw(
        conv_batches(layout, padding, lhs_dilation, rhs_dilation, feature_groups, batch_groups)
    )
    in_axes = data.draw(st.tuples(IN_AXES, IN_AXES).filter(lambda axes: axes != (None, None)))
    out_axis = data.draw(st.sampled_from([0, 1, -1]))

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

    args = (batched(lhs, in_axes[0]), batched(rhs, in_axes[1]))
    reference = loop(conv, in_axes, lhs.shape[0], out_axis)
    check_against_numpy(ft.vmap(conv, in_axes=in_axes, out_axes=out_axis), reference, *args)


AXIS_PAIRS = [(a, b) for a in (None, *range(5)) for b in (None, *range(5)) if (a, b) != (None, None)]


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("groups", [(1, 1), (2, 1), (1, 2)], ids=["plain", "feature-groups", "batch-groups"])
def test_vmap_conv_at_every_axis(layout, groups):
    """Every position of the mapped axis in each operand (the folds differ by position)."""
    dn, lhs_letters, rhs_letters = LAYOUTS[layout]
    feature_groups, batch_groups = groups
    rng = np.random.default_rng(3)
    lhs = rng.normal(size=(3, *in_layout(lhs_letters, {"N": 2, "C": 4, "H": 4, "W": 3})))
    rhs = rng.normal(size=(3, *in_layout(rhs_letters, {"O": 4, "I": 4 // feature_groups, "H": 2, "W": 2})))

    def conv(x, w):
        return lax.conv_general_dilated(
            x, w, (1, 2), "SAME", None, None, dn, feature_group_count=feature_groups, batch_group_count=batch_groups
        )

    for in_axes in AXIS_PAIRS:
        args = (batched(lhs, in_axes[0]), batched(rhs, in_axes[1]))
        assert_same(ft.vmap(conv, in_axes=in_axes)(*args), loop(conv, in_axes, 3)(*args))


@pytest.mark.parametrize("in_axes", [(0, None), (None, 0), (0, 0)], ids=["lhs", "rhs", "both"])
@pytest.mark.parametrize("groups", [(1, 1), (2, 1), (1, 2)], ids=["plain", "feature-groups", "batch-groups"])
def test_vmap_conv_of_no_examples(in_axes, groups):
    dn = ("NHWC", "HWIO", "NHWC")
    lhs, rhs = np.ones((0, 2, 5, 5, 4)), np.ones((0, 3, 3, 4 // groups[0], 6))
    args = [x if axis == 0 else np.ones(x.shape[1:]) for x, axis in zip((lhs, rhs), in_axes, strict=True)]

    def conv(x, w):
        return lax.conv_general_dilated(
            x, w, (1, 1), "SAME", dimension_numbers=dn, feature_group_count=groups[0], batch_group_count=groups[1]
        )

    out = ft.vmap(conv, in_axes=in_axes, axis_size=0)(*args)
    assert out.shape == (0, 2 // groups[1], 5, 5, 6) and out.dtype == np.float64


def test_nested_vmap_conv_is_every_pair():
    """Outer map over kernels, inner over images: ``out[k, i] = conv(images[i], kernels[k])``."""
    rng = np.random.default_rng(0)
    images, kernels = rng.normal(size=(3, 2, 6, 6, 2)), rng.normal(size=(4, 3, 3, 2, 5))
    dn = ("NHWC", "HWIO", "NHWC")

    def conv(x, w):
        return lax.conv_general_dilated(x, w, (2, 1), "SAME", dimension_numbers=dn)

    pairs = ft.vmap(ft.vmap(conv, in_axes=(0, None)), in_axes=(None, 0))
    expected = np.stack([np.stack([conv(x, w) for x in images]) for w in kernels])
    check_against_numpy(pairs, lambda *_: expected, images, kernels)


def test_nested_vmap_conv_both_mapped_twice():
    """Both operands mapped by both maps, at different axes: ``out[a, b] = conv(x[a, b], w[a, b])``."""
    rng = np.random.default_rng(1)
    x, w = rng.normal(size=(2, 3, 1, 4, 7)), rng.normal(size=(2, 3, 6, 2, 3))  # NCW / OIW, groups of 2

    def conv(x, w):
        return lax.conv_general_dilated(x, w, (1,), ((1, 1),), feature_group_count=2)

    nested = ft.vmap(ft.vmap(conv, in_axes=(0, 2)), in_axes=(0, 1))
    expected = np.stack([np.stack([conv(x[a, b], w[a, b]) for b in range(3)]) for a in range(2)])
    check_against_numpy(nested, lambda *_: expected, x, np.moveaxis(w, (0, 1), (1, 3)))


@pytest.mark.parametrize(
    "layout,in_axes,out_axis",
    [
        *[("NHWC", (0, None), 0), ("NCHW", (0, None), 0)],
        *[("NHWC", (None, -1), -1), ("NHWC", (None, 3), 3), ("NCHW", (None, 0), 1)],
        *[("NHWC", (0, 3), 3), ("NCHW", (0, 0), 1)],
    ],
)
def test_vmap_conv_needs_no_transpose_when_the_axis_is_in_place(layout, in_axes, out_axis):
    """The mapped axis next to the dimension it folds into costs only reshapes (and the
    result's mapped axis is left where the convolution puts it: ``out_axis``)."""
    dn, lhs_letters, rhs_letters = LAYOUTS[layout]
    lhs = np.ones((3, *in_layout(lhs_letters, {"N": 2, "C": 2, "H": 5, "W": 4})))
    rhs = np.ones((3, *in_layout(rhs_letters, {"O": 4, "I": 2, "H": 3, "W": 2})))

    def conv(x, w):
        return lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=dn)

    args = (batched(lhs, in_axes[0]), batched(rhs, in_axes[1]))
    names = prim_names(ft.make_ir(ft.vmap(conv, in_axes=in_axes, out_axes=out_axis))(*args))
    assert names.count("conv_general_dilated") == 1 and "transpose" not in names, names


# --- windowed reductions --------------------------------------------------------------------

# id, window, strides, padding, base_dilation, window_dilation (of one example, NHWC unless rank 1)
POOL_CASES = [
    ("2x2-stride2-valid", (1, 2, 2, 1), (1, 2, 2, 1), "VALID", None, None),
    ("3x3-stride2-same", (1, 3, 3, 1), (1, 2, 2, 1), "SAME", None, None),
    ("explicit-negative", (1, 2, 2, 1), (1, 1, 2, 1), ((0, 0), (1, -1), (-1, 1), (0, 0)), None, None),
    ("window-dilation", (1, 2, 2, 1), (1, 1, 1, 1), "VALID", None, (1, 2, 1, 1)),
    ("base-dilation", (1, 2, 2, 1), (1, 1, 2, 1), ((0, 0), (1, 1), (0, 0), (0, 0)), (1, 2, 2, 1), None),
    ("over-batch-and-features", (2, 2, 1, 2), (1, 1, 1, 2), "SAME", None, None),
    ("1d-same", (3,), (2,), "SAME", None, None),
    ("1d-explicit", (2,), (1,), ((1, 2),), (2,), (2,)),
]


def identity(computation: str, dtype: np.dtype):
    if computation == "sum":
        return 0
    if dtype.kind == "f":
        return -np.inf if computation == "max" else np.inf
    return np.iinfo(dtype).min if computation == "max" else np.iinfo(dtype).max


def pool_fn(computation: str, window, strides, padding, base_dilation, window_dilation):
    op = {"sum": lax.add, "max": lax.max, "min": lax.min}[computation]

    def pool(x):
        start = identity(computation, x.dtype)
        return lax.reduce_window(x, start, op, window, strides, padding, base_dilation, window_dilation)

    return pool


@pytest.mark.parametrize(
    "window,strides,padding,base_dilation,window_dilation",
    [case[1:] for case in POOL_CASES],
    ids=[case[0] for case in POOL_CASES],
)
@pytest.mark.parametrize("computation", ["sum", "max", "min"])
@settings(max_examples=6)
@given(data=st.data())
def test_vmap_pooling_matches_loop(computation, window, strides, padding, base_dilation, window_dilation, data):
    rank = len(window)
    dilations = window_dilation or (1,) * rank
    shape = tuple(
        data.draw(st.integers(dilate(w, d), dilate(w, d) + 2)) for w, d in zip(window, dilations, strict=True)
    )
    size = data.draw(st.integers(1, 4))
    axis = data.draw(st.integers(-rank - 1, rank))
    dtype = np.dtype(data.draw(st.sampled_from(["float64", "float32", "int32"])))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    x = batched(random_values(rng, (size, *shape), dtype), axis)
    pool = pool_fn(computation, window, strides, padding, base_dilation, window_dilation)
    check_against_numpy(ft.vmap(pool, in_axes=axis), loop(pool, (axis,), size), x)


def test_nested_vmap_pooling():
    x = np.random.default_rng(2).normal(size=(3, 6, 2, 5))  # mapped axes 0 and 2
    pool = pool_fn("max", (2, 2), (2, 1), "SAME", None, None)
    nested = ft.vmap(ft.vmap(pool, in_axes=1), in_axes=0)
    expected = np.stack([np.stack([pool(x[a, :, b]) for b in range(2)]) for a in range(3)])
    check_against_numpy(nested, lambda _: expected, x)


def test_vmap_pooling_needs_one_reduction_and_no_transpose():
    x = np.ones((4, 6, 6, 3, 5))  # NHWC examples, mapped on the last axis
    pool = pool_fn("sum", (1, 2, 2, 1), (1, 2, 2, 1), "VALID", None, None)
    names = prim_names(ft.make_ir(ft.vmap(pool, in_axes=-1, out_axes=-1))(x))
    assert names == ["reduce_window_sum"], names


# --- per-example gradients ------------------------------------------------------------------

DN = ("NHWC", "HWIO", "NHWC")


def cnn_loss(params, x, y):
    """Conv, tanh, max pool, depthwise conv, average pool, squared error; ``x`` a
    mini-batch ``(2, 6, 6, 2)``, ``y`` its targets ``(2, 2, 2, 4)``."""
    w1, w2 = params
    h = fnp.tanh(lax.conv_general_dilated(x, w1, (1, 1), "SAME", dimension_numbers=DN))
    h = lax.reduce_window(h, -np.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
    h = lax.conv_general_dilated(h, w2, (1, 1), "SAME", dimension_numbers=DN, feature_group_count=4)
    h = lax.reduce_window(h, 0.0, lax.add, (1, 2, 2, 1), (1, 1, 1, 1), ((0, 0), (0, 1), (0, 1), (0, 0))) / 4.0
    h = lax.reduce_window(h, 0.0, lax.add, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
    return fnp.sum((h - y) ** 2)


def cnn_batch(size: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    params = (rng.normal(size=(3, 3, 2, 4)) * 0.5, rng.normal(size=(2, 2, 1, 4)))
    return params, rng.normal(size=(size, 2, 6, 6, 2)), rng.normal(size=(size, 2, 2, 2, 4))


def stack_trees(trees: list):
    return tree_map(lambda *leaves: np.stack(leaves), *trees)


@pytest.mark.parametrize("argnums", [0, 1, (0, 1)], ids=["params", "inputs", "both"])
def test_per_example_gradients_of_a_cnn(argnums):
    params, xs, ys = cnn_batch(3)
    grad = ft.grad(cnn_loss, argnums=argnums)
    per_example = ft.vmap(grad, in_axes=(None, 0, 0))
    expected = stack_trees([grad(params, xs[i], ys[i]) for i in range(3)])
    check_against_numpy(per_example, lambda *_: expected, params, xs, ys, rtol=1e-10, atol=1e-10)


def test_per_example_gradients_with_per_example_params():
    """Params mapped too: every convolution and its transposes have both operands mapped."""
    params, xs, ys = cnn_batch(2, seed=1)
    stacked = tree_map(lambda p: np.stack([p, 2.0 * p]), params)
    grad = ft.grad(cnn_loss, argnums=(0, 1))
    expected = stack_trees([grad(tree_map(lambda p, i=i: p[i], stacked), xs[i], ys[i]) for i in range(2)])
    assert_same(ft.vmap(grad)(stacked, xs, ys), expected, rtol=1e-10, atol=1e-10)


def test_grad_of_vmapped_loss_is_sum_of_per_example_grads():
    params, xs, ys = cnn_batch(3, seed=2)

    def total(params):
        return fnp.sum(ft.vmap(cnn_loss, in_axes=(None, 0, 0))(params, xs, ys))

    expected = tree_map(lambda *g: sum(g), *[ft.grad(cnn_loss)(params, xs[i], ys[i]) for i in range(3)])
    assert_same(ft.grad(total)(params), expected, rtol=1e-10, atol=1e-10)


# --- no unrolling ---------------------------------------------------------------------------


def _conv_nchw(x, w):
    return lax.conv_general_dilated(x, w, (1, 2), ((1, 0), (0, 1)), feature_group_count=2)


def _conv_batch_groups(x, w):
    return lax.conv_general_dilated(x, w, (1,), "SAME", dimension_numbers=("NWC", "WIO", "NWC"), batch_group_count=2)


def _pools(x):
    big = lax.reduce_window(x, -np.inf, lax.max, (2, 2, 1), (1, 2, 1), "SAME")
    return lax.reduce_window(big, np.inf, lax.min, (1, 2, 2), (1, 1, 1), "VALID") + lax.reduce_window(
        big, 0.0, lax.add, (1, 2, 2), (1, 1, 1), "VALID", window_dilation=(1, 1, 1)
    )


def _cnn_grads(x, y):
    params, _, _ = cnn_batch(1)
    return ft.grad(cnn_loss, argnums=(0, 1))(params, x, y)


# id, function, example shapes, in_axes
UNROLL_CASES = [
    ("conv-lhs", _conv_nchw, [(2, 4, 5, 5), (6, 2, 2, 3)], (0, None)),
    ("conv-rhs", _conv_nchw, [(2, 4, 5, 5), (6, 2, 2, 3)], (None, 1)),
    ("conv-both", _conv_nchw, [(2, 4, 5, 5), (6, 2, 2, 3)], (-1, 0)),
    ("conv-batch-groups-both", _conv_batch_groups, [(4, 5, 3), (2, 3, 4)], (1, 2)),
    ("pools", _pools, [(4, 6, 3)], (2,)),
    ("cnn-grads", _cnn_grads, [(2, 6, 6, 2), (2, 2, 2, 4)], (0, 0)),
]


@pytest.mark.parametrize("fn,shapes,in_axes", [c[1:] for c in UNROLL_CASES], ids=[c[0] for c in UNROLL_CASES])
def test_equation_count_does_not_depend_on_batch_size(fn, shapes, in_axes):
    def count(size: int) -> int:
        args = [batched(np.ones((size, *s)), a) for s, a in zip(shapes, in_axes, strict=True)]
        return len(ft.make_ir(ft.vmap(fn, in_axes=in_axes))(*args).eqns)

    assert count(2) == count(7)
