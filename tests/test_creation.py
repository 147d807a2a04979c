"""Array creation (``fnp.zeros``, ``full``, ``arange``, ``linspace``, ``eye``...) against NumPy.

Creation functions with only static arguments are checked as zero-argument
functions: eagerly they return NumPy's arrays, and staged they must record an
IR (broadcasts, ``iota``) that evaluates to the same values and dtypes.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from reference import check_against_numpy

import functrace as ft
import functrace.numpy as fnp
from functrace.errors import ConcretizationError
from functrace.testing import strategies as fts

SHAPES = fts.shapes(max_dims=3, max_side=3)
DTYPES = fts.dtypes()
SHAPE_ARGS = st.one_of(st.integers(0, 4), SHAPES)


def _maybe_dtype(data):
    return data.draw(st.one_of(st.none(), DTYPES))


def zeros_ones_empty(data):
    shape, dtype = data.draw(SHAPE_ARGS), _maybe_dtype(data)
    name = data.draw(st.sampled_from(["zeros", "ones", "empty"]))
    reference = np.zeros if name == "empty" else getattr(np, name)
    return (lambda: getattr(fnp, name)(shape, dtype)), (lambda: reference(shape, dtype)), []


def full_static(data):
    shape, dtype = data.draw(SHAPES), _maybe_dtype(data)
    fill = data.draw(st.one_of(st.integers(-5, 5), st.floats(-5, 5), st.booleans()))
    return (lambda: fnp.full(shape, fill, dtype)), (lambda: np.full(shape, fill, dtype)), []


def full_traced(data):
    shape, extra = data.draw(fts.broadcastable_shapes(2))
    shape = np.broadcast_shapes(shape, extra)
    fill = data.draw(fts.arrays(DTYPES, data.draw(st.sampled_from([(), shape[len(shape) // 2 :]]))))
    dtype = _maybe_dtype(data)
    return (lambda f: fnp.full(shape, f, dtype)), (lambda f: np.full(shape, f, dtype or f.dtype)), [fill]


def like(data):
    x = data.draw(fts.arrays(DTYPES, SHAPES))
    dtype, shape = _maybe_dtype(data), data.draw(st.one_of(st.none(), SHAPES))
    name = data.draw(st.sampled_from(["zeros_like", "ones_like", "empty_like"]))
    reference = np.zeros_like if name == "empty_like" else getattr(np, name)
    return (lambda x: getattr(fnp, name)(x, dtype, shape=shape)), (lambda x: reference(x, dtype, shape=shape)), [x]


def full_like(data):
    x, fill = data.draw(fts.arrays(DTYPES, SHAPES)), data.draw(fts.arrays(DTYPES, ()))
    dtype = _maybe_dtype(data)
    return (lambda x, f: fnp.full_like(x, f, dtype)), (lambda x, f: np.full_like(x, f, dtype)), [x, fill]


def arange(data):
    numbers = st.one_of(st.integers(-6, 6), st.sampled_from([0.5, -1.5, 2.25]))
    args = data.draw(st.lists(numbers, min_size=1, max_size=3).filter(lambda a: len(a) < 3 or a[2] != 0))
    dtype = data.draw(st.sampled_from([None, np.float32, np.float64, np.int32, np.int64]))
    return (lambda: fnp.arange(*args, dtype=dtype)), (lambda: np.arange(*args, dtype=dtype)), []


def linspace_static(data):
    start, stop = data.draw(st.floats(-5, 5)), data.draw(st.integers(-5, 5))
    num, endpoint = data.draw(st.integers(0, 6)), data.draw(st.booleans())
    dtype = data.draw(st.sampled_from([None, np.float32, np.int64]))
    return (
        (lambda: fnp.linspace(start, stop, num, endpoint, dtype=dtype)),
        (lambda: np.linspace(start, stop, num, endpoint, dtype=dtype)),
        [],
    )


def linspace_traced(data):
    shape = data.draw(fts.shapes(max_dims=2, max_side=3))
    start, stop = (data.draw(fts.arrays(fts.dtypes("fi"), shape)) for _ in range(2))
    num, endpoint = data.draw(st.integers(0, 6)), data.draw(st.booleans())
    axis = data.draw(st.integers(-len(shape) - 1, len(shape)))
    return (
        (lambda a, b: fnp.linspace(a, b, num, endpoint, retstep=True, axis=axis)),
        (lambda a, b: np.linspace(a, b, num, endpoint, retstep=True, axis=axis)),
        [start, stop],
    )


def eye_tri(data):
    n, m, k = (
        data.draw(st.integers(0, 4)),
        data.draw(st.one_of(st.none(), st.integers(0, 4))),
        data.draw(st.integers(-3, 3)),
    )
    dtype, name = _maybe_dtype(data), data.draw(st.sampled_from(["eye", "tri"]))
    return (lambda: getattr(fnp, name)(n, m, k, dtype)), (lambda: getattr(np, name)(n, m, k, dtype or float)), []


def identity(data):
    n, dtype = data.draw(st.integers(0, 4)), _maybe_dtype(data)
    return (lambda: fnp.identity(n, dtype)), (lambda: np.identity(n, dtype or float)), []


def triangles(data):
    x = data.draw(fts.arrays(DTYPES, fts.shapes(min_dims=1, max_dims=3, max_side=3)))
    k, name = data.draw(st.integers(-3, 3)), data.draw(st.sampled_from(["tril", "triu"]))
    return (lambda x: getattr(fnp, name)(x, k)), (lambda x: getattr(np, name)(x, k)), [x]


CASES = [
    zeros_ones_empty, full_static, full_traced, like, full_like, arange, linspace_static, linspace_traced,
    eye_tri, identity, triangles,
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.__name__)
@given(data=st.data())
def test_creation_matches_numpy(case, data):
    fn, reference, args = case(data)
    check_against_numpy(fn, reference, *args)


def test_eager_results_are_numpy_arrays():
    for out in (fnp.zeros(3), fnp.full(2, 1.5), fnp.arange(4), fnp.linspace(0, 1), fnp.eye(2), fnp.zeros_like([1])):
        assert type(out) is np.ndarray


def test_like_functions_follow_the_traced_value():
    def f(x):
        z = fnp.zeros_like(x)
        assert isinstance(z, ft.core.trace.Tracer) and z.shape == x.shape and z.dtype == x.dtype
        return z, fnp.ones_like(x, dtype=np.int32), fnp.full_like(x, x[()] if x.ndim == 0 else 2.0)

    x = np.ones((2, 3), np.float32)
    ir = ft.make_ir(f)(x)
    assert "broadcast_in_dim" in str(ir)
    z, o, h = ir.eval(x)
    assert z.dtype == np.float32 and o.dtype == np.int32 and h.tolist() == np.full((2, 3), 2.0).tolist()


STAGED_IR = [
    ("iota", lambda x: x + fnp.arange(3.0)),
    ("iota", lambda x: x + fnp.eye(3)),
    ("iota", lambda x: x * fnp.linspace(0.0, 1.0, 3)),
    ("broadcast_in_dim", lambda x: x + fnp.zeros(3)),
    ("select", lambda x: fnp.tril(x)),
]


@pytest.mark.parametrize("primitive, fn", STAGED_IR, ids=[f"{p}-{i}" for i, (p, _) in enumerate(STAGED_IR)])
def test_staged_creation_is_an_ir_not_a_constant(primitive, fn):
    x = np.ones((3, 3))
    ir = ft.make_ir(fn)(x)
    assert f"= {primitive}" in str(ir) and not ir.consts
    np.testing.assert_allclose(ir.eval(x), fn(x))


ERROR_CASES = [
    ("zeros", ValueError, lambda: fnp.zeros(-1)),
    ("full", ValueError, lambda: fnp.full((2, -3), 1.0)),
    ("arange", ValueError, lambda: fnp.arange(0, 5, 0)),
    ("linspace", ValueError, lambda: fnp.linspace(0, 1, -1)),
    ("eye", ValueError, lambda: fnp.eye(-2)),
    ("tril", ValueError, lambda: fnp.tril(np.float64(1.0))),
    ("full", TypeError, lambda: fnp.full((2,), np.ones(3))),
    ("full", TypeError, lambda: fnp.full((2,), np.ones((2, 2)))),
]


@pytest.mark.parametrize("name, error, thunk", ERROR_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(ERROR_CASES)])
def test_errors_name_the_operation(name, error, thunk):
    with pytest.raises(error, match=name):
        thunk()


@pytest.mark.parametrize("fn", [lambda n: fnp.arange(n), lambda n: fnp.arange(0, n, 1), lambda n: fnp.zeros(n)])
def test_traced_sizes_are_concretization_errors(fn):
    with pytest.raises(ConcretizationError, match="concrete value"):
        ft.make_ir(fn)(3)


def test_arange_names_the_traced_argument():
    with pytest.raises(ConcretizationError, match="arange's stop argument"):
        ft.make_ir(lambda n: fnp.arange(0, n))(3)
    assert ft.make_ir(lambda n: n + fnp.arange(3), static_argnums=())(1).eval(1).tolist() == [1, 2, 3]
