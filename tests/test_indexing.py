"""Indexing: ``x[...]``, ``x.at[...]``, take/take_along_axis, and the lax slicing, gather
and scatter primitives, against NumPy and against loop references of XLA's semantics."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import functrace as ft
import functrace.numpy as fnp
from functrace import lax
from functrace.errors import ConcretizationError
from functrace.numpy.indexing import getitem
from functrace.testing import strategies as fts
from tests.reference import assert_same, check_against_numpy

ALL_DTYPES = fts.dtypes("fiub")
GDN = lax.GatherDimensionNumbers
SDN = lax.ScatterDimensionNumbers


def _raises_like_numpy(fn, reference, *args) -> bool:
    """True (after checking that functrace raises IndexError too) when NumPy raises IndexError."""
    try:
        reference(*args)
    except IndexError:
        with pytest.raises(IndexError):
            fn(*args)
        with pytest.raises(IndexError):
            ft.make_ir(fn)(*args)
        return True
    return False


def check_index(fn, reference, *args) -> None:
    if not _raises_like_numpy(fn, reference, *args):
        check_against_numpy(fn, reference, *args)


# --- x[index] with a table of index expressions ---------------------------------------------

INDEX_TABLE = [
    (1, 0),
    (1, -1),
    (2, (1, -2)),
    (1, slice(1, None)),
    (1, slice(None, None, -1)),
    (1, slice(-1, 0, -2)),
    (2, (slice(None, None, 2), slice(3, None, -3))),
    (1, (None, Ellipsis, None)),
    (2, (Ellipsis, 0)),
    (3, (0, Ellipsis, slice(1, 3), None)),
    (1, [0, -1, 0]),
    (2, ([0, 1], [1, 0])),
    (2, (np.array([[0], [1]]), np.array([0, 1, 1]))),
    (3, (slice(None), [0, 1], [1, 1])),
    (3, ([0, 1], slice(None), [1, 0])),  # separated: the advanced dimension goes first
    (3, (0, slice(None), [1, 0, 1])),  # an integer counts as advanced next to an array
    (3, (slice(None), [1], None, [0])),  # None separates too
    (3, (slice(None), [1], Ellipsis, [0])),  # even an empty Ellipsis separates
    (3, (slice(None, None, -1), [0, 1], slice(None, None, 2))),
    (2, ([],)),
    (2, (Ellipsis, np.array([], dtype=np.int32))),
    (2, (np.array(1), slice(None))),  # a 0-d array is an integer
    (3, (None, [[1], [0]], slice(None, None, -2), -1)),
]


@pytest.mark.parametrize(("min_dims", "index"), INDEX_TABLE, ids=[repr(i) for _, i in INDEX_TABLE])
@given(data=st.data())
def test_getitem_table(min_dims: int, index: Any, data) -> None:
    shape = data.draw(fts.shapes(min_dims=min_dims, max_dims=min_dims + 1, min_side=1, max_side=4))
    x = data.draw(fts.arrays(ALL_DTYPES, shape))
    check_index(lambda x: getitem(x, index), lambda x: x[index], x)


def _int_arrays(n: int, shape: tuple[int, ...]) -> st.SearchStrategy:
    return hnp.arrays(np.int64, shape, elements=st.integers(-n, n - 1)) if n else st.nothing()


@st.composite
def numpy_indices(draw, shape: tuple[int, ...]) -> tuple:
    """Mixed basic and advanced NumPy indices valid for ``shape`` (integers in range)."""
    advanced_shape = draw(fts.shapes(max_dims=2, min_side=1, max_side=3))
    items: list = []
    for n in shape:
        kinds = ["slice", "full"] + (["int", "array"] if n else [])
        kind = draw(st.sampled_from(kinds))
        if kind == "slice":
            bound = st.none() | st.integers(-n - 2, n + 2)
            step = st.none() | st.integers(-3, 3).filter(bool)
            items.append(slice(draw(bound), draw(bound), draw(step)))
        elif kind == "full":
            items.append(slice(None))
        elif kind == "int":
            items.append(draw(st.integers(-n, n - 1)))
        else:
            items.append(draw(_int_arrays(n, advanced_shape)))
    if draw(st.booleans()):  # an Ellipsis standing for a run of full slices (maybe none)
        start = draw(st.integers(0, len(items)))
        stop = start
        while stop < len(items) and isinstance(items[stop], slice) and items[stop] == slice(None):
            stop += 1
        items[start:stop] = [Ellipsis]
    for _ in range(draw(st.integers(0, 2))):
        items.insert(draw(st.integers(0, len(items))), None)
    return tuple(items)


def _split_index(index: tuple) -> tuple[list, list]:
    """The index with integers and arrays taken out (to pass them as traced arguments)."""
    template, values = [], []
    for item in index:
        if isinstance(item, int | np.ndarray):
            template.append(len(values))
            values.append(np.asarray(item))
        else:
            template.append(item)
    return template, values


def _rebuild(template: list, values: tuple) -> tuple:
    return tuple(values[t] if isinstance(t, int) else t for t in template)


@pytest.mark.parametrize("traced_index", [False, True])
@given(data=st.data())
def test_getitem_random_indices(traced_index: bool, data) -> None:
    shape = data.draw(fts.shapes(max_dims=4))
    x = data.draw(fts.arrays(fts.dtypes("fi"), shape))
    index = data.draw(numpy_indices(shape))
    if not traced_index:
        check_index(lambda x: fnp.at(x)[index].get(), lambda x: x[index], x)
        return
    template, values = _split_index(index)
    check_index(
        lambda x, *v: fnp.at(x)[_rebuild(template, v)].get(), lambda x, *v: x[_rebuild(template, v)], x, *values
    )


def test_concrete_boolean_masks_work_on_traced_values() -> None:
    x = np.arange(24.0).reshape(2, 3, 4)
    for index in [(x[:, :, 0] > 5), (slice(None), x[0] > 2), (x > 7), (x[:, 0, 0] > 0, Ellipsis, [1])]:
        check_against_numpy(lambda x, index=index: getitem(x, index), lambda x, index=index: x[index], x)


def test_eager_boolean_indexing_is_numpys() -> None:
    x = np.arange(6.0).reshape(2, 3)
    assert_same(getitem(x, True), x[True])
    assert_same(getitem(x, (x > 2, None)), x[x > 2, None])


@pytest.mark.parametrize("dtype", ["int32", "int64", "uint32"])
@pytest.mark.parametrize("i", [-9, -3, -1, 0, 2, 3, 1000])
def test_traced_integer_out_of_bounds_clamps(dtype: str, i: int) -> None:
    x = np.arange(12.0).reshape(3, 4)
    i = np.asarray(i).astype(dtype)
    n = 3
    normalized = int(i) + n if int(i) < 0 else int(i)
    expected_row = x[min(max(normalized, 0), n - 1)]

    def row(x, i):
        return x[i]

    def rows(x, i):
        return x[fnp.stack([i, i])]

    assert_same(ft.make_ir(row)(x, i).eval(x, i), expected_row)
    assert_same(ft.jit(rows, backend="interpret")(x, i), np.stack([expected_row] * 2))


def test_basic_indexing_needs_no_gather() -> None:
    x = np.zeros((3, 4, 5))
    text = str(ft.make_ir(lambda x: x[1, ::-2, None, 1:3])(x))
    assert "gather" not in text and "slice" in text and "rev" in text
    text = str(ft.make_ir(lambda x, i: x[i, 1:])(x, np.int32(1)))
    assert "dynamic_slice" in text and "gather" not in text
    assert "gather" in str(ft.make_ir(lambda x: x[[0, 2]])(x))


INDEX_ERRORS = [
    (lambda x: x[3], IndexError, "index 3 is out of bounds for axis 0 with size 3"),
    (lambda x: x[0, 0, 0], IndexError, "too many indices"),
    (lambda x: x[..., ...], IndexError, "single ellipsis"),
    (lambda x: x[1.5], IndexError, "only integers"),
    (lambda x: x[[0, 5]], IndexError, "index 5 is out of bounds for axis 0"),
    (lambda x: x[[0, 1], [0, 1, 1]], IndexError, "could not be broadcast"),
    (lambda x: x[x > 0], IndexError, "traced mask"),
    (lambda x: x[True], IndexError, "boolean scalar indices are only supported"),
    (lambda x: x[x[0, 0].astype("int32") :], IndexError, "dynamic_slice"),
]


@pytest.mark.parametrize(("fn", "error", "message"), INDEX_ERRORS)
def test_index_errors(fn, error, message: str) -> None:
    with pytest.raises(error, match=re.escape(message)):
        ft.make_ir(fn)(np.zeros((3, 2)))


def test_traced_value_as_python_int_is_a_concretization_error() -> None:
    with pytest.raises(ConcretizationError):
        ft.make_ir(lambda x, i: x[int(i)])(np.zeros(3), np.int32(1))


# --- x.at[index] ------------------------------------------------------------------------------

UPDATES = {
    "set": None,
    "add": np.add.at,
    "multiply": np.multiply.at,
    "min": np.minimum.at,
    "max": np.maximum.at,
}


def _numpy_update(method: str, x: np.ndarray, index: Any, values: np.ndarray) -> np.ndarray:
    out = x.copy()
    if method == "set":
        out[index] = values
    else:
        UPDATES[method](out, index, values)
    return out


def _check_set(x: np.ndarray, index: Any, values: np.ndarray, got: np.ndarray) -> None:
    """Where indices repeat, ``set`` may keep any one of the values written there."""
    ids = np.arange(x.size).reshape(x.shape)[index]
    values = np.broadcast_to(values, ids.shape)
    expected = x.copy().reshape(-1)
    counts = np.bincount(ids.reshape(-1), minlength=x.size)
    for position in np.flatnonzero(counts):
        candidates = values[ids == position]
        value = got.reshape(-1)[position]
        expected[position] = value if value in candidates else candidates[-1]
    assert_same(got, expected.reshape(x.shape))


@pytest.mark.parametrize("method", list(UPDATES))
@pytest.mark.parametrize("traced_index", [False, True])
@given(data=st.data())
def test_at_updates(method: str, traced_index: bool, data) -> None:
    shape = data.draw(fts.shapes(max_dims=3))
    x = data.draw(fts.arrays(fts.dtypes("fi"), shape))
    index = data.draw(numpy_indices(shape))
    try:
        indexed_shape = x[index].shape
    except IndexError:
        return
    value_shape = data.draw(st.sampled_from([(), indexed_shape, indexed_shape[1:]]))
    values = data.draw(fts.arrays(x.dtype, value_shape))
    template, index_values = _split_index(index) if traced_index else ([index], [])

    def update(x, values, *iv):
        where = _rebuild(template, iv) if traced_index else index
        return getattr(fnp.at(x)[where], method)(values)

    expected = _numpy_update(method, x, index, values)
    if method == "set":
        for got in (
            update(x, values, *index_values),
            ft.make_ir(update)(x, values, *index_values).eval(x, values, *index_values),
        ):
            _check_set(x, index, values, got)
    else:
        check_against_numpy(update, lambda *args: expected, x, values, *index_values)


def test_at_add_accumulates_duplicates_and_leaves_input_untouched() -> None:
    x = np.zeros((3, 2))
    before = x.copy()
    index = (np.array([0, 2, 0, 0]), slice(None))
    expected = before.copy()
    np.add.at(expected, index, 1.0)
    check_against_numpy(lambda x: fnp.at(x)[index].add(1.0), lambda x: expected, x)
    assert_same(x, before)


def test_at_on_tracer_and_mul_alias() -> None:
    x = np.arange(1.0, 5.0)
    cases = [
        (lambda x: x.at[1:3].mul(2.0), np.array([1.0, 4.0, 6.0, 4.0])),
        (lambda x: x.at[::2].set(0.0), np.array([0.0, 2.0, 0.0, 4.0])),
        (lambda x: x.at[-1].get(), np.float64(4.0)),
        (lambda x: x[::-1][fnp.array([0, 0])], np.array([4.0, 4.0])),
    ]
    for fn, expected in cases:
        assert_same(ft.make_ir(fn)(x).eval(x), expected)
        assert_same(ft.jit(fn, backend="interpret")(x), expected)


@pytest.mark.parametrize("i", [-5, -1, 3, 4, 100])
def test_traced_out_of_bounds_updates_drop(i: int) -> None:
    x = np.arange(4.0)
    i = np.int32(i)
    normalized = i + 4 if i < 0 else i
    expected = x.copy()
    if 0 <= normalized < 4:
        expected[normalized] = -1.0
    assert_same(ft.jit(lambda x, i: x.at[i].set(-1.0), backend="interpret")(x, i), expected)
    assert_same(ft.make_ir(lambda x, i: x.at[i].add(-1.0))(x, i).eval(x, i), np.where(expected == -1, x - 1, x))
    clipped = x.copy()
    clipped[min(max(normalized, 0), 3)] = -1.0
    assert_same(ft.jit(lambda x, i: x.at[i].set(-1.0, mode="clip"), backend="interpret")(x, i), clipped)


def test_at_get_fill_mode() -> None:
    x = np.arange(4.0)
    f = ft.jit(lambda x, i: x.at[i].get(mode="fill", fill_value=-7.0), backend="interpret")
    assert_same(f(x, np.int32(9)), np.float64(-7.0))
    assert_same(f(x, np.int32(-2)), np.float64(2.0))
    g = ft.jit(lambda x, i: x.at[i].get(mode="fill"), backend="interpret")
    assert np.isnan(g(x, np.array([5, 0]))[0])


def test_set_of_a_static_box_is_a_dynamic_update_slice() -> None:
    text = str(ft.make_ir(lambda x: x.at[1:3, 0].set(1.0))(np.zeros((4, 3))))
    assert "dynamic_update_slice" in text and "scatter" not in text


# --- dynamic_slice and dynamic_update_slice ------------------------------------------------------

HOSTILE_STARTS = [-(2**31), -100, -1, 0, 1, 3, 2**31 - 1]


def _clamp(start: int, dim: int, size: int) -> int:
    return min(max(start, 0), dim - size)


@pytest.mark.parametrize("dtype", ["int32", "int64", "uint32"])
@given(data=st.data())
def test_dynamic_slice_clamps(dtype: str, data) -> None:
    shape = data.draw(fts.shapes(min_dims=1, max_dims=3))
    x = data.draw(fts.arrays(ALL_DTYPES, shape))
    sizes = tuple(data.draw(st.integers(0, d)) for d in shape)
    starts = [np.asarray(data.draw(st.sampled_from(HOSTILE_STARTS))).astype(dtype) for _ in shape]
    update = data.draw(fts.arrays(x.dtype, sizes))

    def reference_slice(x, *s):
        begin = [_clamp(int(v), d, n) for v, d, n in zip(s, x.shape, sizes, strict=True)]
        return x[tuple(slice(b, b + n) for b, n in zip(begin, sizes, strict=True))]

    def reference_update(x, u, *s):
        out = x.copy()
        begin = [_clamp(int(v), d, n) for v, d, n in zip(s, x.shape, sizes, strict=True)]
        out[tuple(slice(b, b + n) for b, n in zip(begin, sizes, strict=True))] = u
        return out

    check_against_numpy(lambda x, *s: lax.dynamic_slice(x, s, sizes), reference_slice, x, *starts)
    check_against_numpy(lambda x, u, *s: lax.dynamic_update_slice(x, u, s), reference_update, x, update, *starts)


def test_dynamic_slice_helpers() -> None:
    x = np.arange(12).reshape(3, 4)
    check_against_numpy(
        lambda x, i: lax.dynamic_index_in_dim(x, i, 1, keepdims=False), lambda x, i: x[:, 3], x, np.int32(9)
    )
    check_against_numpy(lambda x, i: lax.dynamic_slice_in_dim(x, i, 2), lambda x, i: x[:2], x, np.int64(-4))
    check_against_numpy(
        lambda x, i: lax.dynamic_slice(x, i, (2, 2)), lambda x, i: x[1:3, 2:4], x, np.array([1, 7], dtype=np.int32)
    )
    expected = x.copy()
    expected[:, 1] = 0
    check_against_numpy(
        lambda x: lax.dynamic_update_slice_in_dim(x, np.zeros((3, 1), x.dtype), 1, axis=1), lambda x: expected, x
    )


@given(data=st.data())
def test_lax_slice(data) -> None:
    shape = data.draw(fts.shapes(min_dims=1, max_dims=3))
    x = data.draw(fts.arrays(ALL_DTYPES, shape))
    starts = [data.draw(st.integers(0, d)) for d in shape]
    limits = [data.draw(st.integers(s, d)) for s, d in zip(starts, shape, strict=True)]
    strides = [data.draw(st.integers(1, 3)) for _ in shape]
    index = tuple(slice(*b) for b in zip(starts, limits, strides, strict=True))
    check_against_numpy(lambda x: lax.slice(x, starts, limits, strides), lambda x: x[index], x)


LAX_ERRORS = [
    (lambda x: lax.slice(x, (0, 0), (4, 1)), TypeError, "slice: start_indices=(0, 0), limit_indices=(4, 1)"),
    (lambda x: lax.slice(x, (0,), (1,)), TypeError, "needs 2 bounds per argument"),
    (lambda x: lax.slice(x, (0, 0), (1, 1), (0, 1)), TypeError, "are invalid for shape (3, 2)"),
    (lambda x: lax.dynamic_slice(x, (0,), (1, 1)), TypeError, "dynamic_slice needs 2 start indices"),
    (lambda x: lax.dynamic_slice(x, (0, 0), (4, 1)), TypeError, "slice_sizes (4, 1) are invalid"),
    (lambda x: lax.dynamic_slice(x, (0.5, 0), (1, 1)), TypeError, "must be integer scalars"),
    (lambda x: lax.dynamic_update_slice(x, np.zeros((4, 1)), (0, 0)), TypeError, "does not fit operand (3, 2)"),
    (lambda x: lax.dynamic_update_slice(x, np.zeros((1, 1), np.float32), (0, 0)), TypeError, "update dtype float32"),
    (
        lambda x: lax.gather(x, np.zeros((2, 1), np.int32), lax.GatherDimensionNumbers((1,), (0,), (0,)), (2, 2)),
        TypeError,
        "gather: window size 2 is invalid for dimension 0",
    ),
    (
        lambda x: lax.gather(x, np.zeros((2, 2), np.int32), lax.GatherDimensionNumbers((1,), (0,), (0,)), (1, 2)),
        TypeError,
        "index vectors of length 2",
    ),
    (
        lambda x: lax.gather(x, np.zeros((2, 1)), lax.GatherDimensionNumbers((1,), (0,), (0,)), (1, 2)),
        TypeError,
        "gather needs integer indices",
    ),
    (
        lambda x: lax.gather(x, np.zeros((2, 1), np.int32), lax.GatherDimensionNumbers((2,), (0,), (0,)), (1, 2)),
        TypeError,
        "offset_dims",
    ),
    (
        lambda x: lax.gather(x, np.zeros((2, 1), np.int32), GDN((1,), (0,), (0,)), (1, 2), mode="x"),
        ValueError,
        "mode must be",
    ),
    (
        lambda x: lax.scatter_add(x, np.zeros((2, 1), np.int32), np.zeros((2, 2), np.float32),
                                  lax.ScatterDimensionNumbers((1,), (0,), (0,))),
        TypeError,
        "updates dtype float32 differs",
    ),
    (
        lambda x: lax.scatter_add(x, np.zeros((2, 1), np.int32), np.zeros((3, 2)), SDN((1,), (0,), (0,))),
        TypeError,
        "scatter_add: updates of shape (3, 2)",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("fn", "error", "message"), LAX_ERRORS)
def test_lax_errors(fn, error, message: str) -> None:
    with pytest.raises(error, match=re.escape(message)):
        ft.make_ir(fn)(np.zeros((3, 2)))
    with pytest.raises(error, match=re.escape(message)):
        fn(np.zeros((3, 2)))


# --- gather and scatter against loop references of XLA's semantics ----------------------------

# (operand shape, indices batch shape, dimension numbers, slice sizes)
GATHER_CONFIGS = {
    "rows": ((5, 3), (4,), GDN((1,), (0,), (0,)), (1, 3)),
    "points": ((4, 5), (2, 3), GDN((), (0, 1), (0, 1)), (1, 1)),
    "windows": ((6, 5, 4), (3,), GDN((0, 2, 3), (), (1,)), (2, 3, 4)),
    "batching": ((3, 5), (3, 4), GDN((), (1,), (1,), (0,), (0,)), (1, 1)),
    "no_index": ((3, 2), (4,), GDN((1, 2), (), ()), (3, 2)),
    "swapped_map": ((4, 5), (3,), GDN((1,), (0,), (1, 0)), (1, 2)),
    "batching_inner": ((2, 4, 3), (4, 3), GDN((2,), (0,), (0,), (2,), (1,)), (1, 2, 1)),
}


def _window_dims(rank: int, removed: tuple[int, ...]) -> list[int]:
    return [d for d in range(rank) if d not in removed]


def _window_start(operand_shape, window, index_vector, index_map, batching, batch_index) -> tuple[list[int], bool]:
    start, fits = [0] * len(operand_shape), True
    for k, d in enumerate(index_map):
        s, hi = int(index_vector[k]), operand_shape[d] - window[d]
        fits = fits and 0 <= s <= hi
        start[d] = min(max(s, 0), hi)
    for operand_dim, indices_dim in batching:
        start[operand_dim] = batch_index[indices_dim]
    return start, fits


def gather_reference(operand, indices, dn, slice_sizes, mode, fill):
    """XLA's gather, one output element at a time."""
    window_dims = _window_dims(operand.ndim, dn.collapsed_slice_dims + dn.operand_batching_dims)
    rank = indices.ndim - 1 + len(window_dims)
    batch_positions = [p for p in range(rank) if p not in dn.offset_dims]
    shape = [0] * rank
    for p, n in zip(batch_positions, indices.shape[:-1], strict=True):
        shape[p] = n
    for p, d in zip(dn.offset_dims, window_dims, strict=True):
        shape[p] = slice_sizes[d]
    out = np.zeros(shape, operand.dtype)
    batching = list(zip(dn.operand_batching_dims, dn.start_indices_batching_dims, strict=True))
    for out_index in np.ndindex(*shape):
        batch_index = tuple(out_index[p] for p in batch_positions)
        start, fits = _window_start(
            operand.shape, slice_sizes, indices[batch_index], dn.start_index_map, batching, batch_index
        )
        for p, d in zip(dn.offset_dims, window_dims, strict=True):
            start[d] += out_index[p]
        out[out_index] = operand[tuple(start)] if fits or mode == "clip" else fill
    return out


def _updates_shape(operand_shape, batch_shape, dn, slice_sizes) -> tuple[int, ...]:
    return gather_reference(
        np.zeros(operand_shape), np.zeros((*batch_shape, len(dn.start_index_map)), int), dn, slice_sizes, "clip", 0
    ).shape


def scatter_candidates(operand, indices, updates, dn, mode):
    """For each operand element, the updates XLA's scatter sends there (in a dict)."""
    window_dims = _window_dims(operand.ndim, dn.inserted_window_dims + dn.operand_batching_dims)
    window = [1] * operand.ndim
    for p, d in zip(dn.update_window_dims, window_dims, strict=True):
        window[d] = updates.shape[p]
    batch_positions = [p for p in range(updates.ndim) if p not in dn.update_window_dims]
    batching = list(zip(dn.operand_batching_dims, dn.scatter_indices_batching_dims, strict=True))
    sent: dict[tuple, list] = {}
    for u_index in np.ndindex(*updates.shape):
        batch_index = tuple(u_index[p] for p in batch_positions)
        start, fits = _window_start(
            operand.shape, window, indices[batch_index], dn.scatter_dims_to_operand_dims, batching, batch_index
        )
        if not fits and mode == "drop":
            continue
        for p, d in zip(dn.update_window_dims, window_dims, strict=True):
            start[d] += u_index[p]
        sent.setdefault(tuple(start), []).append(updates[u_index])
    return sent


@st.composite
def gather_case(draw, config: str, dtype=None):
    operand_shape, batch_shape, dn, slice_sizes = GATHER_CONFIGS[config]
    operand = draw(fts.arrays(dtype or fts.dtypes("fi"), operand_shape))
    bounds = [operand_shape[d] for d in dn.start_index_map]
    columns = [draw(hnp.arrays(np.int32, batch_shape, elements=st.integers(-3, n + 3))) for n in bounds]
    indices = np.stack(columns, axis=-1) if columns else np.zeros((*batch_shape, 0), np.int32)
    return operand, indices, dn, slice_sizes


@pytest.mark.parametrize("mode", ["clip", "fill"])
@pytest.mark.parametrize("config", list(GATHER_CONFIGS))
@given(data=st.data())
def test_gather_matches_xla_reference(config: str, mode: str, data) -> None:
    operand, indices, dn, slice_sizes = data.draw(gather_case(config))
    fill = np.nan if operand.dtype.kind == "f" else np.iinfo(operand.dtype).min
    check_against_numpy(
        lambda o, i: lax.gather(o, i, dn, slice_sizes, mode=mode),
        lambda o, i: gather_reference(o, i, dn, slice_sizes, mode, fill),
        operand,
        indices,
    )


COMBINE = {"scatter_add": sum, "scatter_mul": np.prod, "scatter_min": min, "scatter_max": max}


@pytest.mark.parametrize("mode", ["drop", "clip"])
@pytest.mark.parametrize("name", ["scatter", *COMBINE])
@pytest.mark.parametrize("config", list(GATHER_CONFIGS))
@given(data=st.data())
def test_scatter_matches_xla_reference(config: str, name: str, mode: str, data) -> None:
    operand, indices, gdn, slice_sizes = data.draw(gather_case(config, dtype=np.dtype("int64")))
    dn = lax.ScatterDimensionNumbers(*gdn)
    updates = data.draw(fts.arrays(np.int64, _updates_shape(operand.shape, indices.shape[:-1], gdn, slice_sizes)))
    fn = getattr(lax, name)
    sent = scatter_candidates(operand, indices, updates, dn, mode)
    results = [fn(operand, indices, updates, dn, mode=mode)]
    results.append(
        ft.make_ir(lambda *a: fn(*a, dn, mode=mode))(operand, indices, updates).eval(operand, indices, updates)
    )
    for got in results:
        assert got.dtype == operand.dtype and got.shape == operand.shape
        for position in np.ndindex(*operand.shape):
            values = sent.get(position)
            if values is None:
                assert got[position] == operand[position]
            elif name == "scatter":
                assert got[position] in values
            else:
                assert got[position] == COMBINE[name]([operand[position], *values])


# --- take, take_along_axis, put_along_axis ------------------------------------------------------


@pytest.mark.parametrize("mode", [None, "wrap", "clip"])
@given(data=st.data())
def test_take(mode: str | None, data) -> None:
    shape = data.draw(fts.shapes(min_dims=1, max_dims=3, min_side=1))
    x = data.draw(fts.arrays(ALL_DTYPES, shape))
    axis = data.draw(st.sampled_from([None, *range(-len(shape), len(shape))]))
    n = x.size if axis is None else shape[axis]
    spread = 3 * n if mode else n
    index_shape = data.draw(fts.shapes(max_dims=2))
    indices = data.draw(
        hnp.arrays(np.int64, index_shape, elements=st.integers(-spread, n - 1 + (spread - n) * bool(mode)))
    )
    check_against_numpy(
        lambda x, i: fnp.take(x, i, axis=axis, mode=mode),
        lambda x, i: np.take(x, i, axis=axis, mode=mode or "raise"),
        x,
        indices,
    )


@given(data=st.data())
def test_take_along_and_put_along_axis(data) -> None:
    shape = data.draw(fts.shapes(min_dims=1, max_dims=3, min_side=1))
    x = data.draw(fts.arrays(ALL_DTYPES, shape))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    n = shape[axis]
    index_shape = [data.draw(st.sampled_from([1, d])) for d in shape]
    index_shape[axis] = data.draw(st.integers(0, 4))
    indices = data.draw(hnp.arrays(np.int32, tuple(index_shape), elements=st.integers(-n, n - 1)))
    check_against_numpy(
        lambda x, i: fnp.take_along_axis(x, i, axis), lambda x, i: np.take_along_axis(x, i, axis), x, indices
    )
    values = data.draw(fts.arrays(x.dtype, tuple(index_shape)))

    def put_reference(x, i, v):
        out = x.copy()
        np.put_along_axis(out, i, v, axis)
        return out

    unique = np.sort(indices % n, axis=axis)
    if np.all(np.diff(unique, axis=axis) != 0):  # no duplicates: the result is determined
        check_against_numpy(lambda x, i, v: fnp.put_along_axis(x, i, v, axis), put_reference, x, indices, values)


def test_take_along_axis_none_and_errors() -> None:
    x = np.arange(6.0).reshape(2, 3)
    i = np.array([5, 0, -1])
    check_against_numpy(lambda x: fnp.take_along_axis(x, i, None), lambda x: np.take_along_axis(x, i, None), x)
    with pytest.raises(ValueError, match="same number of dims"):
        fnp.take_along_axis(x, i, 0)
    with pytest.raises(IndexError, match="out of bounds"):
        fnp.take_along_axis(x, np.array([[3]]), 0)
    with pytest.raises(IndexError, match="out of bounds"):
        fnp.take(x, np.array([6]))
    with pytest.raises(ValueError, match="mode must be"):
        fnp.take(x, 0, mode="bad")


def test_traced_take_clamps_and_fills() -> None:
    x = np.arange(4.0)
    i = np.array([-1, 7, 2])
    take = ft.jit(lambda x, i: fnp.take(x, i), backend="interpret")
    assert_same(take(x, i), np.array([3.0, 3.0, 2.0]))
    fill = ft.jit(lambda x, i: fnp.take(x, i, mode="fill"), backend="interpret")
    assert_same(fill(x, i), np.array([3.0, np.nan, 2.0]))
    along = ft.jit(lambda x, i: fnp.take_along_axis(x, i, 0), backend="interpret")
    assert_same(along(x, i), np.array([3.0, 3.0, 2.0]))
