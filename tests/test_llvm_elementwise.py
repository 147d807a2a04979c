"""The CPU backend on elementwise, index-remapping and reduction primitives, and fusion:
compiled results against eager evaluation (NumPy)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from reference import assert_same

import functrace as ft
import functrace.numpy as fnp
import lowering.llvm  # noqa: F401  (registers the backend)
from functrace import lax
from lowering import fusion
from lowering.llvm import engine

RNG = np.random.default_rng(0)
FLOATS = (np.float32, np.float64)
INTS = (np.int32, np.int64, np.uint32)


def cpu(f, **kw):
    return ft.jit(f, backend="cpu", **kw)


def sample(dtype, shape=(37,), low=-4.0, high=4.0):
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        x = RNG.uniform(low, high, shape).astype(dtype)
        flat = x.reshape(-1)
        specials = np.array([0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan], dtype)[: flat.size]
        flat[: specials.size] = specials
        return x
    if dtype.kind == "b":
        return RNG.random(shape) < 0.5
    info = np.iinfo(dtype)
    x = RNG.integers(max(info.min, -50), min(info.max, 50), shape).astype(dtype)
    flat = x.reshape(-1)
    edges = np.array([0, 1, info.max, info.min], dtype)
    flat[: edges.size] = edges
    return x


def eager_and_compiled(f, *args):
    with np.errstate(all="ignore"):
        return f(*args), cpu(f)(*args)


# Math functions against a reference computed in wider precision (float64 for float32,
# long double for float64) and rounded: the error bound in ULP of each (docs/jit.md).
# libmvec documents at most 4 ULP; sqrt is IEEE (the 1 allows the reference's double rounding).
ULP_BOUNDS = {
    "exp": 4, "log": 4, "log1p": 4, "expm1": 4, "tanh": 4, "sin": 4, "cos": 4, "erf": 4,
    "logistic": 4, "sqrt": 1, "rsqrt": 2,
}  # fmt: skip
EXACT_FLOAT_UNARY = ("neg", "abs", "sign", "floor", "ceil", "round", "is_finite")


def ulp_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """How many representable floats lie between ``a`` and ``b``."""
    ints = np.int32 if a.dtype == np.float32 else np.int64
    low = np.iinfo(ints).min

    def ordered(x):
        bits = x.view(ints).astype(np.int64)
        return np.where(bits < 0, low - bits, bits)

    return np.abs(ordered(a) - ordered(b))


def _math_reference(name: str, x: np.ndarray) -> np.ndarray:
    import math

    wide = x.astype(np.float64 if x.dtype == np.float32 else np.longdouble)
    functions = {
        "logistic": lambda v: 1 / (1 + np.exp(-v)),
        "rsqrt": lambda v: 1 / np.sqrt(v),
        "erf": lambda v: np.vectorize(math.erf)(v.astype(np.float64)),
    }
    function = functions[name] if name in functions else getattr(np, name)
    return np.asarray(function(wide)).astype(x.dtype)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", sorted(ULP_BOUNDS))
def test_math_functions_within_ulp_bounds(name, dtype):
    x = np.concatenate([RNG.uniform(-1, 1, 4000), RNG.uniform(-10, 10, 4000), RNG.uniform(-80, 80, 1000)])
    x = x.astype(dtype)
    if name in ("log", "sqrt", "rsqrt"):
        x = np.abs(x) + np.finfo(dtype).tiny
    if name == "log1p":
        x = np.abs(x) - 0.5
    actual = cpu(getattr(lax, name))(x)
    with np.errstate(all="ignore"):
        expected = _math_reference(name, x)
    assert actual.dtype == dtype
    np.testing.assert_array_equal(np.isfinite(actual), np.isfinite(expected))
    finite = np.isfinite(expected)
    assert ulp_distance(actual[finite], expected[finite]).max() <= ULP_BOUNDS[name]
    # Special values as NumPy: NaN in, NaN out; infinities where the function has a limit.
    special = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0], dtype)
    if name not in ("log", "log1p", "sqrt", "rsqrt"):
        with np.errstate(all="ignore"):
            np.testing.assert_allclose(cpu(getattr(lax, name))(special), getattr(lax, name)(special), equal_nan=True)


# float32 exp, tanh and logistic are inline polynomials (lowering/llvm/mathlib.py): their
# branch-free range reduction, clamps and scaling are checked where they could go wrong.
INLINE_F32 = ("exp", "tanh", "logistic")


def _around(points, ulps: int = 4) -> np.ndarray:
    """Each float32 point and its ``ulps`` neighbours on either side, both signs."""
    bits = np.asarray(points, np.float32).view(np.int32).astype(np.int64)
    near = (bits[:, None] + np.arange(-ulps, ulps + 1)).reshape(-1)
    near = near[(near >= 0) & (near < 0x7F800000)].astype(np.int32).view(np.float32)
    return np.concatenate([near, -near])


def _f32_edges() -> np.ndarray:
    ln2 = np.log(2.0)
    points = [
        # zeros, denormals, tiny, around 1, huge
        1e-45, 1e-40, 1.1754944e-38, 1e-30, 1e-10, 2.0**-25, 2.0**-24, 1e-4, 0.1, 0.5, 1.0, 2.0,
        1e10, 1e30, 3.4028235e38,
        # the overflow threshold (ln FLT_MAX), the smallest normal result (ln 2^-126), the
        # smallest nonzero result (ln 2^-150) and the clamps of exp
        88.72283935546875, 87.33654, 103.97208, 89.0, 104.0, 126 * ln2, 149 * ln2, 150 * ln2,
        # logistic and tanh round to 1
        16.635532, 17.0, 9.010913, 10.0,
        # where n = round(y / ln2) steps (tanh: 2|x| = (k + 1/2) ln2; below ln2 / 4, n = 0 and
        # tanh takes its correction)
        *[(k + 0.5) * ln2 for k in range(0, 150, 7)], *[(k + 0.5) * ln2 / 2 for k in range(30)],
    ]  # fmt: skip
    specials = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan], np.float32)
    return np.concatenate([specials, _around(points)])


def _check_f32_math(name: str, x: np.ndarray) -> None:
    actual = cpu(getattr(lax, name))(x)
    with np.errstate(all="ignore"):
        expected = _math_reference(name, x)
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected))
    ok = ~np.isnan(expected)
    # An infinity counts as one ULP past the largest float, so a result at the overflow
    # threshold may round either way within the bound.
    errors = ulp_distance(actual[ok], expected[ok])
    worst = int(np.argmax(errors))
    assert errors[worst] <= ULP_BOUNDS[name], (x[ok][worst], actual[ok][worst], expected[ok][worst])
    zeros = ok & (expected == 0)
    np.testing.assert_array_equal(np.signbit(actual[zeros]), np.signbit(expected[zeros]))


@pytest.mark.parametrize("name", INLINE_F32)
def test_inline_f32_math_at_edges(name):
    x = _f32_edges()
    _check_f32_math(name, x)
    if name == "tanh":
        assert np.signbit(cpu(lax.tanh)(np.array([-0.0], np.float32))[0])


@pytest.mark.parametrize("name", INLINE_F32)
def test_inline_f32_math_on_a_dense_sample_of_all_floats(name):
    # Every 1021st bit pattern (4,206,629 floats: both signs, every binade, NaNs, infinities).
    x = np.arange(0, 2**32, 1021, dtype=np.uint64).astype(np.uint32).view(np.float32)
    _check_f32_math(name, x)


def test_inline_f32_math_scaling_without_avx512_gives_the_same_bits(monkeypatch):
    # Without AVX-512, 2^n is two multiplies in the exponent bits instead of vscalefps: both
    # round once, so the results are identical (on a host without AVX-512 both runs take it).
    from lowering.llvm import mathlib

    x = np.concatenate([_f32_edges(), RNG.uniform(-110, 110, 10_000).astype(np.float32)])
    functions = (lax.exp, lax.logistic)
    with np.errstate(all="ignore"):
        default = [cpu(f)(x) for f in functions]
    monkeypatch.setattr(mathlib, "_scalef_available", lambda: False)
    cache = ft.config.jit_cache_dir
    ft.config.update("jit_cache_dir", None)  # the cache key does not see the switch
    try:
        with np.errstate(all="ignore"):
            for f, expected in zip(functions, default, strict=True):
                exe = cpu(f).lower(x).compile()
                assert "vscalefps" not in exe.compiled.assembly()
                assert_same(exe(x), expected, rtol=0, atol=0)
    finally:
        ft.config.update("jit_cache_dir", cache)


def test_logistic_float64_keeps_tiny_values():
    # exp(-|x|) never overflows: sigmoid(-740) is a denormal, not 0.
    x = np.array([-740.0, -745.0, -800.0, -40.0, 0.0, -0.0, 40.0, 800.0, np.inf, -np.inf, np.nan])
    actual = cpu(lax.logistic)(x)
    with np.errstate(all="ignore"):
        expected = _math_reference("logistic", x)
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected))
    assert ulp_distance(actual[:-1], expected[:-1]).max() <= ULP_BOUNDS["logistic"]
    assert actual[0] > 0


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", EXACT_FLOAT_UNARY)
def test_exact_float_unary(name, dtype):
    x = sample(dtype, (64,)) * 3.3
    x[10:14] = [0.5, 1.5, 2.5, -2.5]  # round: half to even
    expected, actual = eager_and_compiled(getattr(lax, name), x)
    assert_same(actual, expected, rtol=0, atol=0)


BINARY = ("add", "sub", "mul", "div", "rem", "max", "min", "pow", "eq", "ne", "lt", "le", "gt", "ge")


@pytest.mark.parametrize("dtype", (*FLOATS, *INTS))
@pytest.mark.parametrize("name", BINARY)
def test_binary(name, dtype):
    x, y = sample(dtype, (41,)), sample(dtype, (41,))
    y[5] = 0
    if name == "pow" and np.dtype(dtype).kind != "f":
        y = np.clip(y, 0 if np.dtype(dtype).kind == "u" else -3, 5).astype(dtype)
        x = np.clip(x, -9, 9).astype(dtype)
    expected, actual = eager_and_compiled(getattr(lax, name), x, y)
    if np.dtype(dtype).kind == "f" and name == "pow":
        eps = np.finfo(dtype).eps
        np.testing.assert_allclose(actual, expected, rtol=8 * eps, equal_nan=True)
    else:
        assert_same(actual, expected, rtol=0, atol=0)


def test_integer_division_edge_cases():
    x = np.array([7, -7, 7, -7, np.iinfo(np.int32).min, 5], np.int32)
    y = np.array([2, 2, -2, -2, -1, 0], np.int32)
    for name in ("div", "rem"):
        expected, actual = eager_and_compiled(getattr(lax, name), x, y)
        assert_same(actual, expected)


@pytest.mark.parametrize("dtype", (np.int32, np.int64, np.uint32))
@pytest.mark.parametrize("name", ("shift_left", "shift_right_logical", "shift_right_arithmetic"))
def test_shifts_out_of_range(name, dtype):
    x = sample(dtype, (16,))
    y = np.array([0, 1, 5, 31, 32, 33, 63, 64, 100, 2, 3, 4, 7, 8, 9, 1], dtype)
    if np.dtype(dtype).kind == "i":
        y[-1] = -1
    expected, actual = eager_and_compiled(getattr(lax, name), x, y)
    assert_same(actual, expected)


@pytest.mark.parametrize("name", ("bitwise_and", "bitwise_or", "bitwise_xor"))
@pytest.mark.parametrize("dtype", (np.int32, np.uint32, np.bool_))
def test_bitwise(name, dtype):
    x, y = sample(dtype, (20,)), sample(dtype, (20,))
    expected, actual = eager_and_compiled(getattr(lax, name), x, y)
    assert_same(actual, expected)
    expected, actual = eager_and_compiled(lax.bitwise_not, x)
    assert_same(actual, expected)


@pytest.mark.parametrize("src", (np.float32, np.float64, np.int32, np.int64, np.uint32, np.bool_))
@pytest.mark.parametrize("dst", (np.float32, np.float64, np.int32, np.int64, np.uint32, np.bool_))
def test_convert_element_type(src, dst):
    x = sample(src, (30,))
    if np.dtype(src).kind == "f" and np.dtype(dst).kind in "iu":
        x = np.nan_to_num(x, nan=1.0, posinf=3.0, neginf=-3.0)  # in range: NumPy is undefined outside
        if np.dtype(dst).kind == "u":
            x = np.abs(x)
    if np.dtype(src).kind == "i" and np.dtype(dst).kind == "u":
        x = np.abs(x)  # negative to unsigned differs only in NumPy's C casting of wraparound
        x[x < 0] = 0
    expected, actual = eager_and_compiled(lambda v: lax.convert_element_type(v, dst), x)
    assert_same(actual, expected)


def test_select_and_integer_pow():
    x = sample(np.float32, (33,))
    f = lambda v: lax.select(v > 0, lax.integer_pow(v, 3), lax.integer_pow(v, -2))  # noqa: E731
    expected, actual = eager_and_compiled(f, x)
    assert_same(actual, expected, rtol=1e-6, atol=0)


# --- structure and reductions ---------------------------------------------------------------


STRUCTURAL = [
    lambda x: fnp.transpose(x, (2, 0, 1)) * 2.0,
    lambda x: fnp.broadcast_to(x[:, :1, :], (3, 4, 5)) + x,
    lambda x: x[::-1, 1:3, ::2] + 1.0,
    lambda x: fnp.reshape(x, (12, 5)).T @ np.ones((12,), np.float32),
    lambda x: lax.rev(x, (0, 2)),
    lambda x: fnp.expand_dims(x, 1)[:, 0] * fnp.arange(5, dtype=np.float32),
    lambda x: fnp.squeeze(x[:1], 0) - 1.0,
    lambda x: fnp.reshape(x, (-1,)),
]


@pytest.mark.parametrize("k", range(len(STRUCTURAL)))
def test_structural(k):
    x = RNG.normal(size=(3, 4, 5)).astype(np.float32)
    expected, actual = eager_and_compiled(STRUCTURAL[k], x)
    assert_same(actual, expected, rtol=1e-6, atol=1e-6)


@given(
    shape=st.lists(st.integers(0, 4), min_size=1, max_size=3),
    name=st.sampled_from(["sum", "max", "min", "prod"]),
    data=st.data(),
)
def test_reductions(shape, name, data):
    ndim = len(shape)
    axes = tuple(sorted(data.draw(st.sets(st.integers(0, ndim - 1)))))
    dtype = data.draw(st.sampled_from([np.float32, np.float64, np.int32]))
    x = (
        sample(dtype, tuple(shape), -2.0, 2.0)
        if np.dtype(dtype).kind == "f"
        else RNG.integers(-3, 4, shape).astype(dtype)
    )
    if name in ("max", "min") and 0 in [shape[a] for a in axes]:
        return  # NumPy raises on an empty max
    f = lambda v: getattr(fnp, name)(v, axis=axes)  # noqa: E731
    expected, actual = eager_and_compiled(f, x)
    assert_same(actual, expected, rtol=1e-5, atol=1e-5)


def test_max_propagates_nan():
    x = np.array([[1.0, np.nan, 3.0], [1.0, 2.0, 3.0]], np.float32)
    for axis in (0, 1, None):
        assert_same(cpu(lambda v, a=axis: fnp.max(v, axis=a))(x), np.max(x, axis=axis))


# --- fusion -----------------------------------------------------------------------------------


def elementwise_10m(x):
    return fnp.tanh(x * 1.5 + 0.5) * ft.nn.sigmoid(x) + x * x


def test_elementwise_chain_is_one_kernel_without_intermediates():
    x = sample(np.float32, (1000,), -3, 3)
    fn = ft.make_ir(elementwise_10m)(x)
    plan = fusion.fuse(fn)
    assert len(plan.kernels) == 1
    exe = cpu(elementwise_10m).lower(x).compile()
    assert exe.compiled.ws_size == 0  # no intermediate buffer at all
    expected, actual = eager_and_compiled(elementwise_10m, x)
    np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-6)


def test_reduction_fuses_its_producers():
    x = sample(np.float32, (8, 16), -1, 1)
    f = lambda v: fnp.sum(fnp.exp(v) * v, axis=1) + fnp.sum(v * 2.0, axis=0).sum()  # noqa: E731
    exe = cpu(f).lower(x).compile()
    names = [[e.primitive.name for e in k.eqns] for k in fusion.fuse(exe.fn).kernels]
    assert ["exp", "mul", "reduce_sum"] in names
    expected, actual = eager_and_compiled(f, x)
    assert_same(actual, expected, rtol=1e-5, atol=1e-5)


def test_broadcast_producer_is_not_recomputed():
    # exp of a small vector broadcast into a big loop: computed once, in its own kernel.
    x, y = sample(np.float32, (16,)), sample(np.float32, (64, 16))
    fn = ft.make_ir(lambda a, b: fnp.exp(a) + b)(x, y)
    kernels = fusion.fuse(fn).kernels
    assert kernels[0].eqns[-1].primitive.name == "exp"


@pytest.mark.skipif("e" not in engine.libmvec_isa(), reason="needs libmvec and AVX-512")
def test_math_loop_vectorizes_to_zmm_and_libmvec():
    # float32 exp, tanh and logistic are inline: the loop is 16-lane code with no call at all.
    x = sample(np.float32, (4096,))
    asm = cpu(elementwise_10m).lower(x).compile().compiled.assembly()
    assert "zmm" in asm and "vscalefps" in asm and "vdivps" in asm
    main = asm[asm.index("_main:") :]  # the program's function (the entry point calls it)
    assert "call" not in main[: main.index(".Lfunc_end")]
    # The other functions, and float64, call libmvec's 16- (8-) lane versions.
    asm = cpu(lambda v: fnp.log(v) + fnp.sin(v)).lower(x).compile().compiled.assembly()
    assert "zmm" in asm and "_ZGVeN16v_logf" in asm and "_ZGVeN16v_sinf" in asm
    asm = cpu(fnp.exp).lower(x.astype(np.float64)).compile().compiled.assembly()
    assert "_ZGVeN8v_exp" in asm


def test_as_llvm_shows_the_module():
    text = cpu(lambda a: a * 2.0).lower(np.ones(4, np.float32)).as_llvm()
    assert "define" in text and "fmul" in text


def test_large_kernels_split_across_threads_give_the_same_results():
    from lowering.llvm import runtime

    n = runtime.PARALLEL_MIN_ELEMENTS + 4099  # not a multiple of the chunking
    x = RNG.normal(size=(n // 129, 129)).astype(np.float32)
    b = RNG.normal(size=(129,)).astype(np.float32)
    f = lambda v, w: (fnp.tanh(v * 1.5) + w, fnp.sum(fnp.exp(v * 0.1), axis=1), fnp.transpose(v)[3])  # noqa: E731
    expected, actual = eager_and_compiled(f, x, b)
    for a, e in zip(actual, expected, strict=True):
        np.testing.assert_allclose(a, e, rtol=2e-6, atol=2e-6)
    text = cpu(f).lower(x, b).as_llvm()
    from lowering.llvm import pool

    threaded = ("functrace_pool_run" if pool.supported() else "pthread_create") in text
    assert threaded == (runtime.NUM_THREADS > 1)


def test_cheap_producer_is_recomputed_in_each_consumer_instead_of_stored():
    x, b = sample(np.float32, (64, 32)), sample(np.float32, (32,))

    def f(v, w):
        n = v + w  # used by two kernels: recomputed in both, never stored
        return fnp.exp(n) * 2.0, fnp.where(n > 0, n, 0.0).sum(axis=0)

    plan = fusion.fuse(ft.make_ir(f)(x, b))
    assert not any(k.root.primitive.name == "add" for k in plan.kernels)
    expected, actual = eager_and_compiled(f, x, b)
    for a, e in zip(actual, expected, strict=True):
        np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-5)


def test_pad_fuses_into_its_consumer():
    parts = [sample(np.float32, (4, 8)) for _ in range(4)]

    def f(a, b, c, d):
        # The transpose of a split: pads summed, as reverse mode makes them.
        cfg = lambda k: ((4 * k, 12 - 4 * k, 0), (0, 0, 0))  # noqa: E731
        return sum(lax.pad(p, np.float32(0), cfg(k)) for k, p in enumerate((a, b, c, d))) * 2.0

    plan = fusion.fuse(ft.make_ir(f)(*parts))
    assert len(plan.kernels) == 1
    expected, actual = eager_and_compiled(f, *parts)
    assert_same(actual, expected)

    # Padding the last axis stays a block copy of its own (fused, it would not vectorize).
    def g(a, b):
        return lax.pad(a, np.float32(0), ((0, 0, 0), (0, 8, 0))) + lax.pad(b, np.float32(0), ((0, 0, 0), (8, 0, 0)))

    plan = fusion.fuse(ft.make_ir(g)(parts[0], parts[1]))
    assert [k.root.primitive.name for k in plan.kernels] == ["pad", "pad", "add"]
    expected, actual = eager_and_compiled(g, parts[0], parts[1])
    assert_same(actual, expected)
    # Interior padding and cropping, fused with an elementwise consumer.
    x = sample(np.float32, (5, 6))
    g = lambda v: lax.pad(v, np.float32(-1), ((1, -2, 1), (-1, 3, 2))) + 1.0  # noqa: E731
    expected, actual = eager_and_compiled(g, x)
    assert_same(actual, expected)


def test_a_very_long_elementwise_chain_compiles():
    # 1,200 equations: fusion cuts the chain into loops of bounded depth (no recursion limit).
    def f(v):
        for _ in range(600):
            v = v * 1.001 + 0.1
        return v

    x = sample(np.float32, (100,), -1, 1)
    expected, actual = eager_and_compiled(f, x)
    np.testing.assert_allclose(actual, expected, rtol=1e-5)
    depth = max(len(k.eqns) for k in fusion.fuse(ft.make_ir(f)(x)).kernels)
    assert depth <= fusion.MAX_DEPTH + 1
