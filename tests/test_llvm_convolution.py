"""The CPU backend on ``conv_general_dilated``: compiled results equal eager evaluation
for every layout, stride, padding (negative too), dilation and grouping, for empty
operands, and for the convolutions that gradients and batching bind (lhs dilation,
batch groups, swapped layouts) under jit(grad) and jit(vmap). Operands placed against
inaccessible pages show that the patch gathering never reads out of bounds.

Float operands hold small integers, so sums are exact in any order and results are
compared bit for bit; the stax network uses general floats and a tolerance."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from reference import assert_same, guarded

import functrace as ft
import functrace.numpy as fnp
import lowering.llvm  # noqa: F401  (registers the backend)
from functrace import lax, random, stax
from lowering.llvm.rules import convolution

RNG = np.random.default_rng(0)
DTYPES = [np.dtype(d) for d in ("float32", "float64", "int32", "int64", "uint32")]


def cpu(f):
    return ft.jit(f, backend="cpu")


def sample(dtype, shape) -> np.ndarray:
    return RNG.integers(0 if np.dtype(dtype).kind == "u" else -4, 5, shape).astype(dtype)


def conv(strides, padding, lhs_dilation=None, rhs_dilation=None, layout=None, groups=1, batch_groups=1):
    def f(x, w):
        return lax.conv_general_dilated(
            x, w, strides, padding, lhs_dilation, rhs_dilation, layout, groups, batch_groups
        )

    return f


# (lhs shape, rhs shape, conv)
CASES = [
    ((2, 3, 9, 8), (4, 3, 3, 2), conv((1, 1), "VALID")),  # NCHW / OIHW
    ((2, 3, 9, 8), (4, 3, 3, 3), conv((2, 3), "SAME")),
    ((2, 9, 8, 3), (3, 2, 3, 4), conv((2, 1), ((1, 2), (0, 1)), layout=("NHWC", "HWIO", "NHWC"))),
    ((2, 9, 8, 6), (3, 2, 3, 4), conv((2, 1), ((1, 2), (-1, 1)), (2, 1), (1, 2), ("NHWC", "HWIO", "NHWC"), 2)),
    ((2, 7, 7, 4), (3, 3, 1, 4), conv((1, 1), "SAME", layout=("NHWC", "HWIO", "NHWC"), groups=4)),  # depthwise
    ((4, 6, 7), (6, 6, 2), conv((1,), ((2, 2),), (3,), (2,), batch_groups=2)),
    ((4, 6, 7), (4, 6, 2), conv((2,), ((1, 0),), layout=("NCH", "OIH", "HNC"))),
    ((4, 6, 7, 5), (6, 3, 2, 2), conv((2, 1), ((1, 0), (0, 0)), layout=("NCHW", "OIHW", "HWNC"), groups=2)),
    ((4, 6, 7, 5), (2, 3, 2, 6), conv((2, 1), ((1, 0), (0, 0)), layout=("CHWN", "IHWO", "WNHC"), groups=2)),
    ((3, 2, 5, 4, 3), (2, 2, 2, 3, 2), conv((1, 2, 1), "SAME")),  # 3 spatial dims
    ((2, 3, 5), (4, 3, 1), conv((1,), "VALID")),  # 1x1 kernel
    ((2, 3, 5), (4, 3, 5), conv((1,), ((-2, -2),), (3,))),  # cropped lhs-dilated input
    ((2, 3, 4), (4, 3, 2), conv((1,), ((0, 0),), rhs_dilation=(3,))),
    ((0, 3, 5), (2, 3, 2), conv((1,), "VALID")),  # empty batch
    ((2, 3, 0), (2, 3, 2), conv((1,), ((1, 1),))),  # empty input, padded: zeros
    ((2, 0, 5), (2, 0, 2), conv((1,), ((1, 1),))),  # no input features: zeros
    ((2, 3, 5), (0, 3, 2), conv((1,), "VALID")),  # no output features
    ((16, 12, 12, 8), (3, 3, 8, 16), conv((1, 1), "SAME", layout=("NHWC", "HWIO", "NHWC"))),  # BLAS-sized
    ((4, 8, 12, 12), (16, 8, 3, 3), conv((1, 1), "SAME")),
    ((4, 8, 40), (16, 8, 3), conv((1,), "VALID", layout=("NCW", "OIW", "WCN"))),  # result via scratch
    ((2, 9, 8, 6), (3, 6, 2, 5), conv((1, 2), "SAME", layout=("NHWC", "HIWO", "NCHW"))),  # kernel copied
    ((1, 2, 3, 100), (2, 2, 2, 3), conv((1, 1), ((1, 1), (2, 1)))),  # long rows: memcpy runs
    ((3, 4), (5, 4), conv((), "VALID")),  # no spatial dims
]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(("lhs_shape", "rhs_shape", "f"), CASES)
def test_conv_matches_eager(lhs_shape, rhs_shape, f, dtype):
    x, w = sample(dtype, lhs_shape), sample(dtype, rhs_shape)
    assert_same(cpu(f)(x, w), f(x, w), rtol=0, atol=0)


@pytest.mark.parametrize(("lhs_shape", "rhs_shape", "f"), [c for c in CASES if 0 not in c[0] + c[1]])
def test_conv_reads_nothing_out_of_bounds(lhs_shape, rhs_shape, f):
    x, w = sample(np.float32, lhs_shape), sample(np.float32, rhs_shape)
    compiled = cpu(f)
    for at_end in (False, True):
        assert_same(compiled(guarded(x, at_end), guarded(w, at_end)), f(x, w), rtol=0, atol=0)


def test_conv_in_blocks(monkeypatch):
    """A tiny patch budget: one image per product, the depth in blocks accumulated."""
    monkeypatch.setattr(convolution, "PATCH_BUDGET", 64)
    for lhs_shape, rhs_shape, f in CASES:
        x, w = sample(np.float32, lhs_shape), sample(np.float32, rhs_shape)
        assert_same(cpu(f)(x, w), f(x, w), rtol=0, atol=0)
    x, w = sample(np.float64, (3, 7, 6, 4)), sample(np.float64, (3, 3, 4, 5))
    f = conv((2, 1), "SAME", layout=("NHWC", "HWIO", "NHWC"))
    grad = ft.grad(lambda x, w: fnp.sum(f(x, w) ** 2), argnums=(0, 1))
    assert_same(cpu(grad)(x, w), grad(x, w), rtol=0, atol=0)


@st.composite
def convolutions(draw):
    """Random 1-2 spatial-dim convolutions: layouts, strides, pads, dilations, groups."""
    nsp = draw(st.integers(1, 2))
    groups = draw(st.sampled_from([1, 1, 2]))
    batch_groups = 1 if groups > 1 else draw(st.sampled_from([1, 1, 2]))
    n = batch_groups * draw(st.integers(1, 2))
    i = draw(st.integers(1, 3))
    o = groups * batch_groups * draw(st.integers(1, 2))
    kernel = [draw(st.integers(1, 3)) for _ in range(nsp)]
    rhs_dilation = tuple(draw(st.integers(1, 2)) for _ in range(nsp))
    lhs_dilation = tuple(draw(st.integers(1, 2)) for _ in range(nsp))
    strides = tuple(draw(st.integers(1, 3)) for _ in range(nsp))
    spatial, padding = [], []
    for k, rd, ld in zip(kernel, rhs_dilation, lhs_dilation, strict=True):
        size = draw(st.integers(1, 6))
        lo, hi = draw(st.integers(-1, 2)), draw(st.integers(-1, 2))
        while (size - 1) * ld + 1 + lo + hi < (k - 1) * rd + 1:
            hi += 1
        spatial.append(size)
        padding.append((lo, hi))
    perms = [tuple(draw(st.permutations(range(nsp + 2)))) for _ in range(3)]
    lhs_logical, rhs_logical = (n, i * groups, *spatial), (o, i, *kernel)
    lhs_shape = tuple(lhs_logical[perms[0].index(d)] for d in range(nsp + 2))
    rhs_shape = tuple(rhs_logical[perms[1].index(d)] for d in range(nsp + 2))
    layout = lax.ConvDimensionNumbers(*perms)
    f = conv(strides, tuple(padding), lhs_dilation, rhs_dilation, layout, groups, batch_groups)
    return lhs_shape, rhs_shape, f, draw(st.sampled_from(DTYPES))


@given(convolutions())
def test_conv_random_parameters(case):
    lhs_shape, rhs_shape, f, dtype = case
    x, w = sample(dtype, lhs_shape), sample(dtype, rhs_shape)
    assert_same(cpu(f)(x, w), f(x, w), rtol=0, atol=0)


# --- the convolutions of gradients and batching ---------------------------------------------


@pytest.mark.parametrize(("lhs_shape", "rhs_shape", "f"), [c for c in CASES if 0 not in c[0] + c[1]][:12])
def test_jit_grad_of_conv(lhs_shape, rhs_shape, f):
    """Both transposes (lhs dilated by the strides; batch and feature dims swapped)."""
    x, w = sample(np.float64, lhs_shape), sample(np.float64, rhs_shape)
    ct = sample(np.float64, np.shape(f(x, w)))

    def loss(x, w):
        return fnp.sum(f(x, w) * ct)

    grad = ft.grad(loss, argnums=(0, 1))
    assert_same(cpu(grad)(x, w), grad(x, w), rtol=0, atol=0)


def test_jit_vmap_of_conv():
    f = conv((1, 2), "SAME", layout=("NHWC", "HWIO", "NHWC"))
    xs, ws = sample(np.float32, (3, 2, 6, 7, 4)), sample(np.float32, (3, 3, 2, 4, 5))
    for in_axes in [(0, None), (None, 0), (0, 0)]:
        g = ft.vmap(f, in_axes=in_axes)
        args = (xs if in_axes[0] == 0 else xs[0], ws if in_axes[1] == 0 else ws[0])
        assert_same(cpu(g)(*args), g(*args), rtol=0, atol=0)


def _cnn(pool):
    return stax.serial(
        stax.Conv(4, (3, 3), padding="SAME"),
        stax.Relu,
        pool((2, 2), strides=(2, 2)),
        stax.Conv(6, (3, 3), strides=(2, 1)),
        stax.Relu,
        stax.Flatten,
        stax.Dense(5),
        stax.LogSoftmax,
    )


@pytest.mark.parametrize("pool", [stax.AvgPool, stax.MaxPool], ids=["avg", "max"])
def test_jit_grad_of_a_small_cnn(pool):
    init_fun, apply_fun = _cnn(pool)
    _, params = init_fun(random.PRNGKey(0), (-1, 10, 9, 3))
    x = RNG.normal(size=(4, 10, 9, 3)).astype(np.float32)
    y = np.eye(5, dtype=np.float32)[[0, 1, 2, 3]]

    def loss(params, x, y):
        return -fnp.mean(fnp.sum(apply_fun(params, x) * y, axis=1))

    assert_same(cpu(ft.grad(loss))(params, x, y), ft.grad(loss)(params, x, y), rtol=1e-4, atol=1e-6)
