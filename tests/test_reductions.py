"""Reductions (fnp and lax) against NumPy: values, shapes, dtypes, errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from reference import check_against_numpy

import functrace as ft
import functrace.numpy as fnp
from functrace import lax
from functrace.lax.reductions import argmax_p
from functrace.testing import strategies as fts

ALL_DTYPES = ["float32", "float64", "int32", "int64", "uint32", "bool"]


def small_elements(dtype: np.dtype) -> st.SearchStrategy:
    """Elements for products: small, so that float32 products stay well inside range."""
    if dtype.kind == "f":
        return st.floats(-2, 2, width=dtype.itemsize * 8)
    if dtype.kind == "i":
        return st.integers(-3, 3)
    return st.integers(0, 3) if dtype.kind == "u" else st.booleans()


@st.composite
def array_and_axis(draw, kinds: str = "fiub", single_axis: bool = False, small: bool = False):
    """An array (size-0 and size-1 dims included) and an axis: None, an int (maybe
    negative) or, unless ``single_axis``, a tuple of distinct axes."""
    dtype = draw(fts.dtypes(kinds))
    shape = draw(fts.shapes(max_dims=3))
    x = draw(fts.arrays(dtype, shape, small_elements(dtype) if small else None))
    ndim = len(shape)
    choices = [st.none()]
    if ndim:
        choices.append(st.integers(-ndim, ndim - 1))
        if not single_axis:
            axes = st.lists(st.integers(0, ndim - 1), unique=True)
            choices.append(axes.flatmap(lambda a: st.tuples(*[st.sampled_from([i, i - ndim]) for i in a])))
    return x, draw(st.one_of(*choices))


def as_functrace_dtype(reference):
    """NumPy accumulates uint32 in uint64, which functrace does not have (uint32 stays)."""

    def wrapped(*args, **kwargs):
        out = np.asarray(reference(*args, **kwargs))
        return out.astype(np.uint32) if out.dtype == np.uint64 else out

    return wrapped


def check_or_raises(fn, reference, *args) -> None:
    """As ``check_against_numpy``; where NumPy raises ValueError, so must fn (eager and traced)."""
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            reference(*args)
    except ValueError:
        with pytest.raises(ValueError):
            fn(*args)
        with pytest.raises(ValueError):
            ft.make_ir(fn)(*args)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NumPy warns about empty means and ddof >= N
        check_against_numpy(fn, reference, *args)


# name: (functrace function, NumPy reference, dtype kinds, small elements)
AXIS_REDUCTIONS = {
    "sum": (fnp.sum, as_functrace_dtype(np.sum), "fiub", False),
    "prod": (fnp.prod, as_functrace_dtype(np.prod), "fiub", True),
    "max": (fnp.max, np.max, "fiub", False),
    "min": (fnp.min, np.min, "fiub", False),
    "amax": (fnp.amax, np.amax, "fiub", False),
    "amin": (fnp.amin, np.amin, "fiub", False),
    "mean": (fnp.mean, np.mean, "fiub", False),
    "var": (fnp.var, np.var, "fiub", False),
    "std": (fnp.std, np.std, "fiub", False),
    "any": (fnp.any, np.any, "fiub", False),
    "all": (fnp.all, np.all, "fiub", False),
    "count_nonzero": (fnp.count_nonzero, np.count_nonzero, "fiub", False),
}


@pytest.mark.parametrize("name", sorted(AXIS_REDUCTIONS))
@given(data=st.data())
def test_axis_reductions(name, data):
    fn, reference, kinds, small = AXIS_REDUCTIONS[name]
    x, axis = data.draw(array_and_axis(kinds, small=small))
    keepdims = data.draw(st.booleans())
    check_or_raises(
        lambda a: fn(a, axis=axis, keepdims=keepdims), lambda a: reference(a, axis=axis, keepdims=keepdims), x
    )


@pytest.mark.parametrize("name", ["var", "std"])
@pytest.mark.parametrize("ddof", [1, 2, 1.5])
@given(data=st.data())
def test_ddof(name, ddof, data):
    fn, reference = AXIS_REDUCTIONS[name][:2]
    x, axis = data.draw(array_and_axis("fi"))
    check_or_raises(lambda a: fn(a, axis=axis, ddof=ddof), lambda a: reference(a, axis=axis, ddof=ddof), x)


# name: (functrace function, NumPy reference)
SINGLE_AXIS = {
    "argmax": (fnp.argmax, np.argmax),
    "argmin": (fnp.argmin, np.argmin),
    "cumsum": (fnp.cumsum, as_functrace_dtype(np.cumsum)),
}


@pytest.mark.parametrize("name", ["argmax", "argmin"])
@given(data=st.data())
def test_argmax_argmin(name, data):
    fn, reference = SINGLE_AXIS[name]
    x, axis = data.draw(array_and_axis(single_axis=True, small=True))  # small: many ties
    keepdims = data.draw(st.booleans())
    check_or_raises(
        lambda a: fn(a, axis=axis, keepdims=keepdims), lambda a: reference(a, axis=axis, keepdims=keepdims), x
    )


@given(data=st.data())
def test_cumsum(data):
    fn, reference = SINGLE_AXIS["cumsum"]
    x, axis = data.draw(array_and_axis(single_axis=True))
    check_or_raises(lambda a: fn(a, axis=axis), lambda a: reference(a, axis=axis), x)


ALL_FUNCTIONS = {**{k: v[:2] for k, v in AXIS_REDUCTIONS.items()}, **SINGLE_AXIS}


@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("name", sorted(ALL_FUNCTIONS))
def test_result_dtypes_match_numpy(name, dtype):
    fn, reference = ALL_FUNCTIONS[name]
    x = np.array([[3, 0, 2], [1, 2, 0]]).astype(dtype)
    check_against_numpy(fn, reference, x)
    check_against_numpy(lambda a: fn(a, axis=1), lambda a: reference(a, axis=1), x)


@pytest.mark.parametrize(
    "fn, reference, dtype",
    [
        (fnp.sum, np.sum, "float32"),
        (fnp.sum, np.sum, "int32"),
        (fnp.prod, np.prod, "float64"),
        (fnp.mean, np.mean, "float32"),
        (fnp.var, np.var, "float32"),
        (fnp.cumsum, np.cumsum, "float64"),
        (fnp.cumsum, np.cumsum, "int32"),
    ],
)
def test_dtype_argument(fn, reference, dtype):
    x = np.array([[True, False, True], [True, True, False]])
    check_against_numpy(lambda a: fn(a, axis=0, dtype=dtype), lambda a: reference(a, axis=0, dtype=dtype), x)


NAN_ROW = np.array([[1.0, np.nan, 5.0, np.nan], [2.0, 7.0, 7.0, -1.0]], np.float32)


@pytest.mark.parametrize("fn, reference", [(fnp.max, np.max), (fnp.min, np.min), (fnp.argmax, np.argmax),
                                           (fnp.argmin, np.argmin), (fnp.any, np.any), (fnp.all, np.all),
                                           (fnp.sum, np.sum), (fnp.cumsum, np.cumsum)])  # fmt: skip
@pytest.mark.parametrize("axis", [None, 0, 1, -1])
def test_nan_and_ties(fn, reference, axis):
    # max/min propagate NaN; argmax/argmin point at the first NaN, else the first extremum.
    check_against_numpy(lambda a: fn(a, axis=axis), lambda a: reference(a, axis=axis), NAN_ROW)


def test_methods_on_traced_values():
    x = np.arange(12.0).reshape(3, 4)
    check_against_numpy(
        lambda a: (a.max(0), a.min(axis=1), a.prod(), a.var(), a.std(1), a.argmax(), a.argmin(0), a.cumsum(1)),
        lambda a: (a.max(0), a.min(axis=1), a.prod(), a.var(), a.std(1), a.argmax(), a.argmin(0), a.cumsum(1)),
        x,
    )


def test_zero_dim_operands():
    x = np.float32(3.0)
    for fn, reference in [(fnp.argmax, np.argmax), (fnp.cumsum, np.cumsum)]:
        check_against_numpy(lambda a, f=fn: f(a, axis=0), lambda a, r=reference: r(a, axis=0), x)
    check_against_numpy(lambda a: fnp.max(a, keepdims=True), lambda a: np.max(a, keepdims=True), x)


# --- errors ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ALL_FUNCTIONS))
@pytest.mark.parametrize("axis", [2, -3])
def test_bad_axis_names_the_function(name, axis):
    fn = ALL_FUNCTIONS[name][0]
    x = np.ones((2, 3))
    with pytest.raises(ValueError, match=rf"{fn.__name__}: axis {axis} is out of bounds"):
        fn(x, axis=axis)
    with pytest.raises(ValueError, match=rf"{fn.__name__}: axis {axis} is out of bounds"):
        ft.make_ir(lambda a: fn(a, axis=axis))(x)


def test_repeated_axis_and_axis_types():
    with pytest.raises(ValueError, match=r"sum: repeated axis"):
        fnp.sum(np.ones((2, 3)), axis=(1, -1))
    with pytest.raises(TypeError, match=r"argmax: axis must be an integer"):
        fnp.argmax(np.ones((2, 3)), axis=(0,))
    with pytest.raises(TypeError, match=r"max: axis must be an integer"):
        fnp.max(np.ones((2, 3)), axis=1.0)


@pytest.mark.parametrize("fn, word", [(fnp.max, "maximum"), (fnp.min, "minimum"), (fnp.argmax, "argmax")])
def test_empty_reduction_without_identity(fn, word):
    x = np.ones((0, 3))
    with pytest.raises(ValueError, match=word):
        ft.make_ir(lambda a: fn(a, axis=0))(x)
    assert fn(x, axis=1).shape == (0,)  # nothing to reduce into: fine, as in NumPy


@pytest.mark.parametrize("fn, kwargs", [(fnp.max, {"initial": 0.0}), (fnp.sum, {"where": np.ones(3, bool)}),
                                        (fnp.mean, {"out": np.ones(())})])  # fmt: skip
def test_unsupported_arguments(fn, kwargs):
    with pytest.raises(NotImplementedError, match=next(iter(kwargs))):
        fn(np.ones(3), **kwargs)


# --- lax --------------------------------------------------------------------------------

LAX_REDUCTIONS = {
    "reduce_sum": (lax.reduce_sum, np.sum, "fiu"),
    "reduce_prod": (lax.reduce_prod, np.prod, "fiu"),
    "reduce_max": (lax.reduce_max, np.max, "fiub"),
    "reduce_min": (lax.reduce_min, np.min, "fiub"),
}
IDENTITIES = {
    "reduce_sum": lambda dt: 0,
    "reduce_prod": lambda dt: 1,
    "reduce_max": lambda dt: -np.inf if dt.kind == "f" else (False if dt.kind == "b" else np.iinfo(dt).min),
    "reduce_min": lambda dt: np.inf if dt.kind == "f" else (True if dt.kind == "b" else np.iinfo(dt).max),
}


@pytest.mark.parametrize("name", sorted(LAX_REDUCTIONS))
@given(data=st.data())
def test_lax_reductions_keep_dtype(name, data):
    fn, reference, kinds = LAX_REDUCTIONS[name]
    x, axis = data.draw(array_and_axis(kinds, small=True))
    axes = tuple(range(x.ndim)) if axis is None else (axis if isinstance(axis, tuple) else (axis,))
    ident = IDENTITIES[name](x.dtype)

    def expected(a):  # in the operand's dtype, the identity for empty reductions (XLA)
        return np.asarray(reference(a, axis=axes, initial=ident), dtype=a.dtype)

    check_against_numpy(lambda a: fn(a, axes), expected, x)


@pytest.mark.parametrize("name", ["argmax", "argmin"])
@pytest.mark.parametrize("index_dtype", ["int32", "int64"])
def test_lax_argmax(name, index_dtype):
    x = np.array([[1.0, 3.0, 3.0], [np.nan, 2.0, np.nan], [0.0, -1.0, -1.0]])
    fn = getattr(lax, name)
    for axis in (0, 1, -1):
        check_against_numpy(
            lambda a, ax=axis: fn(a, ax, index_dtype),
            lambda a, ax=axis: getattr(np, name)(a, axis=ax).astype(index_dtype),
            x,
        )
    ir = ft.make_ir(lambda a: fn(a, 1, index_dtype))(x)
    assert f"{name}[axes=(1,) index_dtype={index_dtype}]" in str(ir)
    assert fn(np.ones((0, 2)), 0, index_dtype).tolist() == [0, 0]  # empty axis: index 0


@pytest.mark.parametrize("reverse", [False, True])
@given(x=fts.arrays(fts.dtypes("fiu"), fts.shapes(min_dims=1)), data=st.data())
def test_lax_cumsum(reverse, x, data):
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1))

    def expected(a):
        if reverse:
            return np.flip(np.cumsum(np.flip(a, axis), axis=axis, dtype=a.dtype), axis)
        return np.cumsum(a, axis=axis, dtype=a.dtype)

    check_against_numpy(lambda a: lax.cumsum(a, axis, reverse=reverse), expected, x)


def test_lax_type_errors():
    x = np.ones((2, 3), np.float32)
    with pytest.raises(TypeError, match=r"reduce_max: axes \(2,\) are invalid for shape \(2, 3\)"):
        ft.make_ir(lambda a: lax.reduce_max(a, (2,)))(x)
    with pytest.raises(TypeError, match=r"argmax reduces exactly one axis"):
        ft.make_ir(lambda a: argmax_p.bind(a, axes=(0, 1), index_dtype=np.dtype("int32")))(x)
    with pytest.raises(TypeError, match=r"argmin needs an integer index_dtype"):
        ft.make_ir(lambda a: lax.argmin(a, 0, np.float32))(x)
    with pytest.raises(TypeError, match=r"cumsum needs .* operands, got bool"):
        ft.make_ir(lambda a: lax.cumsum(a > 0))(x)
    with pytest.raises(TypeError, match=r"reduce_sum needs .* operands, got bool"):
        ft.make_ir(lambda a: lax.reduce_sum(a > 0, (0,)))(x)
