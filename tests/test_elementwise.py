"""Elementwise fnp functions and lax primitives against NumPy, eagerly and through the IR."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from reference import assert_same, check_against_numpy

import functrace as ft
import functrace.numpy as fnp
from functrace import lax
from functrace.testing import strategies as fts

POSITIVE = st.floats(0.1, 10, allow_nan=False)

# name, NumPy reference, dtype kinds to draw, element strategy (None = default)
UNARY = [
    ("exp", np.exp, "fiu", None),
    ("log", np.log, "f", POSITIVE),
    ("log1p", np.log1p, "f", POSITIVE),
    ("expm1", np.expm1, "fi", None),
    ("tanh", np.tanh, "fiu", None),
    ("sin", np.sin, "fi", None),
    ("cos", np.cos, "fi", None),
    ("sqrt", np.sqrt, "fu", POSITIVE),
    ("abs", np.abs, "fi", None),
    ("sign", np.sign, "fi", None),
    ("negative", np.negative, "fi", None),
    ("positive", np.positive, "fi", None),
    ("square", np.square, "fiu", None),
    ("floor", np.floor, "fi", None),
    ("ceil", np.ceil, "fi", None),
    ("round", np.round, "fi", None),
    ("isfinite", np.isfinite, "fi", None),
    ("isnan", np.isnan, "f", None),
    ("isinf", np.isinf, "f", None),
    ("logical_not", np.logical_not, "fib", None),
    ("bitwise_not", np.bitwise_not, "iub", None),
    ("reciprocal", np.reciprocal, "f", POSITIVE),
]

BINARY = [
    ("add", np.add, "fiub"),
    ("subtract", np.subtract, "fiu"),
    ("multiply", np.multiply, "fiub"),
    ("divide", np.divide, "fi"),
    ("true_divide", np.true_divide, "fiu"),
    ("maximum", np.maximum, "fiub"),
    ("minimum", np.minimum, "fiub"),
    ("equal", np.equal, "fiub"),
    ("not_equal", np.not_equal, "fiub"),
    ("less", np.less, "fiu"),
    ("less_equal", np.less_equal, "fiu"),
    ("greater", np.greater, "fiu"),
    ("greater_equal", np.greater_equal, "fiu"),
    ("logical_and", np.logical_and, "fib"),
    ("logical_or", np.logical_or, "fib"),
    ("logical_xor", np.logical_xor, "fib"),
    ("bitwise_and", np.bitwise_and, "iub"),
    ("bitwise_or", np.bitwise_or, "iub"),
    ("bitwise_xor", np.bitwise_xor, "iub"),
    ("logaddexp", np.logaddexp, "f"),
    ("floor_divide", np.floor_divide, "fi"),
    ("remainder", np.remainder, "fi"),
]


@pytest.mark.parametrize("name,reference,kinds,elements", UNARY, ids=[u[0] for u in UNARY])
@given(data=st.data())
def test_unary_matches_numpy(name, reference, kinds, elements, data):
    dtype = data.draw(fts.dtypes(kinds))
    elems = elements if elements is not None and dtype.kind == "f" else None
    if dtype.kind == "u" and elements is POSITIVE:
        elems = st.integers(1, 100)
    x = data.draw(fts.arrays(dtype, fts.shapes(), elements=elems))
    check_against_numpy(getattr(fnp, name), reference, x)


@pytest.mark.parametrize("name,reference,kinds", BINARY, ids=[b[0] for b in BINARY])
@given(data=st.data())
def test_binary_broadcasting_matches_numpy(name, reference, kinds, data):
    shape_a, shape_b = data.draw(fts.broadcastable_shapes())
    dtype_a = data.draw(fts.dtypes(kinds))
    dtype_b = data.draw(fts.dtypes(kinds))
    nonzero = name in ("floor_divide", "remainder")
    a = data.draw(fts.arrays(dtype_a, shape_a))
    b = data.draw(fts.arrays(dtype_b, shape_b, elements=_nonzero(dtype_b) if nonzero else None))
    check_against_numpy(getattr(fnp, name), reference, a, b)


def _nonzero(dtype):
    if dtype.kind == "f":
        return st.floats(0.5, 10) | st.floats(-10, -0.5)
    return st.integers(1, 50) if dtype.kind == "u" else st.integers(1, 50) | st.integers(-50, -1)


@pytest.mark.parametrize("name", ["add", "multiply", "subtract", "maximum", "less", "divide", "power"])
@pytest.mark.parametrize("scalar", [2, 2.5, True])
@pytest.mark.parametrize("dtype", ["float32", "int32", "uint32", "float64"])
def test_weak_python_scalars_follow_numpy2(name, scalar, dtype):
    x = np.arange(1, 4).astype(dtype)
    if name == "power" and isinstance(scalar, float) and dtype.startswith(("int", "uint")):
        pass  # int ** float is float64 in NumPy too: still compared below
    check_against_numpy(lambda x: getattr(fnp, name)(x, scalar), lambda x: getattr(np, name)(x, scalar), x)
    check_against_numpy(lambda x: getattr(fnp, name)(scalar, x), lambda x: getattr(np, name)(scalar, x), x)


def test_float32_times_python_float_stays_float32_in_ir():
    ir = ft.make_ir(lambda x: x * 2.0)(np.ones(3, np.float32))
    assert str(ir).splitlines()[1].strip() == "b:f32[3] = mul a 2.0:f32[]"


@given(fts.arrays(fts.dtypes("f"), fts.shapes()), st.integers(-3, 4))
def test_integer_power(x, n):
    x = np.where(np.abs(x) < 0.5, 1.0, x).astype(x.dtype)
    check_against_numpy(lambda x: fnp.power(x, n), lambda x: np.power(x, float(n)).astype(x.dtype), x)
    check_against_numpy(lambda x: x**n, lambda x: np.power(x, float(n)).astype(x.dtype), x)


@given(fts.broadcastable_shapes(), fts.dtypes("f"))
def test_float_power(shapes, dtype):
    rng = np.random.default_rng(0)
    a = rng.uniform(0.1, 3, shapes[0]).astype(dtype)
    b = rng.uniform(-2, 2, shapes[1]).astype(dtype)
    check_against_numpy(fnp.power, np.power, a, b)


@given(fts.arrays(fts.dtypes("iu"), fts.shapes()), st.integers(0, 40))
def test_shifts(x, n):
    def numpy_left(x):
        bits = x.dtype.itemsize * 8
        return np.where(n < bits, np.left_shift(x, min(n, bits - 1)), 0).astype(x.dtype)

    check_against_numpy(lambda x: fnp.left_shift(x, np.asarray(n, x.dtype)), numpy_left, x)
    if n < x.dtype.itemsize * 8:
        check_against_numpy(
            lambda x: fnp.right_shift(x, np.asarray(n, x.dtype)), lambda x: np.right_shift(x, np.asarray(n, x.dtype)), x
        )


def test_uint32_logical_shift_of_high_bit():
    x = np.array([0x80000000, 0xFFFFFFFF], np.uint32)
    assert_same(lax.shift_right_logical(x, np.uint32(31)), np.array([1, 1], np.uint32))
    y = np.array([-8], np.int32)
    assert_same(lax.shift_right_logical(y, np.int32(28)), np.array([15], np.int32))
    assert_same(lax.shift_right_arithmetic(y, np.int32(1)), np.array([-4], np.int32))


@given(fts.broadcastable_shapes(3), fts.dtypes("fi"))
def test_where_and_clip(shapes, dtype):
    rng = np.random.default_rng(1)
    cond = rng.uniform(size=shapes[0]) > 0.5
    x = rng.normal(size=shapes[1]).astype(dtype)
    y = rng.normal(size=shapes[2]).astype(dtype)
    check_against_numpy(fnp.where, np.where, cond, x, y)
    check_against_numpy(lambda x: fnp.clip(x, -0.5, 0.5), lambda x: np.clip(x, -0.5, 0.5), x)


@given(fts.arrays(fts.dtypes("f"), fts.shapes()))
def test_lax_elementwise_primitives(x):
    with np.errstate(all="ignore"):
        check_against_numpy(lax.logistic, lambda x: (1 / (1 + np.exp(-x.astype(np.float64)))).astype(x.dtype), x)
        check_against_numpy(lax.rsqrt, lambda x: (1 / np.sqrt(x)).astype(x.dtype), np.abs(x) + 1)
    check_against_numpy(lambda x: lax.integer_pow(x, 3), lambda x: x**3, x)
    check_against_numpy(lambda x: lax.select(x > 0, x, -x), np.abs, x)
    check_against_numpy(lambda x: lax.convert_element_type(x, np.int32), lambda x: x.astype(np.int32), x)


def test_erf_matches_math_erf():
    import math

    x = np.linspace(-4, 4, 101)
    check_against_numpy(lax.erf, np.vectorize(math.erf), x)
    check_against_numpy(lax.erf, lambda x: np.vectorize(math.erf)(x).astype(np.float32), x.astype(np.float32))


def test_logistic_is_finite_at_extremes():
    out = lax.logistic(np.array([-1e4, 0.0, 1e4]))
    assert_same(out, np.array([0.0, 0.5, 1.0]))


def test_logaddexp_handles_infinities():
    a = np.array([-np.inf, np.inf, 1000.0, -np.inf])
    b = np.array([-np.inf, np.inf, 1000.0, 0.0])
    check_against_numpy(fnp.logaddexp, np.logaddexp, a, b)


def test_integer_division_by_zero_gives_zero_not_a_crash():
    out = lax.div(np.array([7, -7], np.int32), np.array([0, 2], np.int32))
    assert_same(out, np.array([0, -3], np.int32))


@pytest.mark.parametrize(
    "fn",
    [lambda: fnp.add(np.ones(3), np.ones(4)), lambda: fnp.multiply(np.ones((2, 3)), np.ones((3, 2)))],
)
def test_incompatible_shapes_name_the_operation_and_shapes(fn):
    with pytest.raises(TypeError, match=r"(add|multiply) got incompatible shapes .*\(\d, ?\d?\)"):
        fn()


def test_shape_error_inside_trace_names_user_line():
    def f(x):
        return x + np.ones(5)  # the line the message must name

    with pytest.raises(TypeError) as info:
        ft.make_ir(f)(np.ones(3))
    assert "add got incompatible shapes for broadcasting: (3,) and (5,)" in str(info.value)
    assert "test_elementwise.py" in str(info.value)


def test_lax_requires_equal_dtypes():
    with pytest.raises(TypeError, match="add got different dtypes float32 and float64"):
        lax.add(np.ones(2, np.float32), np.ones(2, np.float64))


def test_float_function_rejects_integer_in_lax():
    with pytest.raises(TypeError, match="sin needs floating operands, got int32"):
        lax.sin(np.ones(2, np.int32))


def test_unsupported_dtype_is_a_clear_error():
    with pytest.raises(TypeError, match="does not support dtype complex128"):
        fnp.sin(np.ones(2, np.complex128))


def test_narrow_integers_are_widened():
    out = fnp.add(np.ones(2, np.uint8), np.ones(2, np.uint8))
    assert out.dtype == np.int32 or out.dtype == np.uint8  # eager NumPy or widened; both exact
    ir = ft.make_ir(lambda x: x + 1)(np.ones(2, np.uint8))
    assert "i32[2]" in str(ir)


def test_operators_on_tracers_and_reflected_numpy_operands():
    c = np.arange(3.0)

    def f(x):
        return [c + x, c - x, c * x, c / (x + 1), x**2, -x, abs(x), x < c, c >= x, x @ c, c @ x, x % 2.0, x // 2.0]

    x = np.array([1.5, -2.0, 3.0])
    reference = [c + x, c - x, c * x, c / (x + 1), x**2, -x, abs(x), x < c, c >= x, x @ c, c @ x, x % 2.0, x // 2.0]
    assert_same(ft.make_ir(f)(x).eval(x), reference)
    assert_same(ft.jit(f, backend="interpret")(x), reference)
