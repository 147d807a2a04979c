"""The CPU backend on gather and the scatters: compiled results equal eager evaluation
exactly, over a table of dimension numbers, both out-of-bounds modes, every dtype and
index dtype, hostile and repeated indices, empty index arrays and windows, NaN."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from reference import assert_equal
from test_indexing import GATHER_CONFIGS
from test_llvm_indexing import DTYPES, INDEX_DTYPES, cpu, hostile, sample

import functrace as ft
import functrace.numpy as fnp
import lowering.llvm  # noqa: F401  (registers the backend)
from functrace import lax

GDN = lax.GatherDimensionNumbers
SDN = lax.ScatterDimensionNumbers
SCATTERS = ("scatter", "scatter_add", "scatter_mul", "scatter_min", "scatter_max")

# (operand shape, indices batch shape, dimension numbers, slice sizes); the scatters use
# the same numbers, with updates shaped like the gather's output.
CONFIGS = {
    **GATHER_CONFIGS,  # the eager tests' configurations (tests/test_indexing.py), and:
    "elements": ((7,), (3, 2), GDN((), (0,), (0,)), (1,)),
    "columns_first": ((4, 6), (5,), GDN((0,), (1,), (1,)), (4, 1)),
    "empty_batch": ((5, 3), (0,), GDN((1,), (0,), (0,)), (1, 3)),
    "empty_window": ((5, 3), (4,), GDN((1,), (0,), (0,)), (1, 0)),
    "empty_operand_batching": ((0, 5), (0, 2), GDN((), (1,), (1,), (0,), (0,)), (0, 1)),
    "scalar_operand": ((), (4,), GDN((), (), ()), ()),
}


def index_arrays(config: str, dtype) -> list[np.ndarray]:
    """Index arrays for a config: random ones near the bounds, and ones made of hostile values."""
    _, batch_shape, dn, _ = CONFIGS[config]
    n = len(dn.start_index_map)
    rng = np.random.default_rng(len(config))
    values = np.array(hostile(dtype), dtype=object)
    shape = (*batch_shape, n)
    low = 0 if np.dtype(dtype).kind == "u" else -3
    arrays = [rng.integers(low, 9, shape).astype(dtype) for _ in range(3)]
    for k in range(0, len(values), 3):
        picks = np.resize(np.roll(values, k), int(np.prod(shape)))
        arrays.append(np.array(picks.tolist(), dtype=dtype).reshape(shape))
    return arrays


def gather_fn(config: str, mode: str, fill_value=None):
    _, _, dn, sizes = CONFIGS[config]
    return lambda x, i: lax.gather(x, i, dn, sizes, mode=mode, fill_value=fill_value)


def updates_shape(config: str) -> tuple[int, ...]:
    operand_shape, batch_shape, dn, _ = CONFIGS[config]
    index = np.zeros((*batch_shape, len(dn.start_index_map)), np.int32)
    return gather_fn(config, "clip")(np.zeros(operand_shape), index).shape


def scatter_fn(config: str, name: str, mode: str):
    dn = SDN(*CONFIGS[config][2])
    return lambda x, i, u: getattr(lax, name)(x, i, u, dn, mode=mode)


def check(f, *args) -> None:
    with np.errstate(all="ignore"):
        expected = f(*args)
    assert_equal(cpu(f)(*args), expected)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("mode", ["clip", "fill"])
@pytest.mark.parametrize("config", list(CONFIGS))
def test_gather(config, mode, dtype):
    operand_shape = CONFIGS[config][0]
    index_dtype = INDEX_DTYPES[(len(config) + DTYPES.index(dtype)) % 3]
    x = sample(dtype, operand_shape)
    for fill_value in [None, 3] if mode == "fill" else [None]:
        f = gather_fn(config, mode, fill_value)
        compiled = cpu(f)
        for i in index_arrays(config, index_dtype):
            assert_equal(compiled(x, i), f(x, i))


@pytest.mark.parametrize("mode", ["drop", "clip"])
@pytest.mark.parametrize("name", SCATTERS)
@pytest.mark.parametrize("config", list(CONFIGS))
def test_scatter(config, name, mode):
    k = list(CONFIGS).index(config) + SCATTERS.index(name)
    dtype, index_dtype = DTYPES[k % len(DTYPES)], INDEX_DTYPES[k % 3]
    x, u = sample(dtype, CONFIGS[config][0]), sample(dtype, updates_shape(config))
    f = scatter_fn(config, name, mode)
    compiled = cpu(f)
    for i in index_arrays(config, index_dtype):
        with np.errstate(all="ignore"):
            expected = f(x, i, u)
        assert_equal(compiled(x, i, u), expected)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", SCATTERS)
def test_repeated_indices_apply_in_order(name, dtype):
    """``scatter`` keeps the last update; the others combine every update, in index order
    (float sums and products round as NumPy's sequential ``ufunc.at``)."""
    x = sample(dtype, (6, 3))
    u = (np.random.default_rng(1).normal(size=(40, 3)) * 1e3).astype(dtype)
    u[0, 0] = 1e30 if dtype.kind == "f" else u[0, 0]
    u[1, 0] = -1e30 if dtype.kind == "f" else u[1, 0]
    i = np.array([0, 0, 3, 5, 3, 3, 1, 0, 7, -1] * 4, np.int64)[:, None]
    for mode in ("drop", "clip"):
        check(scatter_fn("rows", name, mode), x, i, u)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["scatter_min", "scatter_max"])
def test_scatter_min_max_nan_and_signed_zeros(name, dtype):
    x = np.array([np.nan, 1.0, 0.0, -0.0, 2.0, 5.0, 0.0], dtype)
    u = np.array([1.0, np.nan, -0.0, 0.0, np.nan, 1.0, -0.0, 0.0], dtype)
    i = np.array([[0], [1], [2], [3], [4], [4], [6], [6]])
    check(scatter_fn("elements", name, "drop"), x, i, u)


@pytest.mark.parametrize("name", SCATTERS)
def test_empty_index_arrays(name):
    x = sample(np.float32, (5, 3))
    check(scatter_fn("rows", name, "drop"), x, np.zeros((0, 1), np.int32), np.zeros((0, 3), np.float32))
    check(scatter_fn("rows", name, "clip"), x, np.zeros((0, 1), np.int64), np.zeros((0, 3), np.float32))
    check(gather_fn("rows", "fill"), x, np.zeros((0, 1), np.uint32))


def test_literal_scalar_operand():
    dn = SDN((), (), ())
    f = lambda u: lax.scatter_add(np.float32(3.0), np.zeros((4, 0), np.int32), u, dn)  # noqa: E731
    check(f, np.array([1.0, 2.0, 0.5, 0.25], np.float32))
    g = lambda i: lax.gather(np.float32(3.0), i, GDN((), (), ()), ())  # noqa: E731
    check(g, np.zeros((4, 0), np.int32))


# --- the front end: x[idx] and x.at[idx] with traced index arrays ---------------------------

METHODS = ("get", "set", "add", "multiply", "min", "max")


@given(data=st.data())
def test_front_end_indexing(data):
    shape = data.draw(st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple))
    dtype = data.draw(st.sampled_from(DTYPES))
    method = data.draw(st.sampled_from(METHODS))
    axis = data.draw(st.integers(0, len(shape) - 1))
    n = shape[axis]
    idx = data.draw(st.lists(st.sampled_from([0, n - 1, -1, -n, n, -n - 1, 2**31 - 1]), max_size=5))
    i = np.array(idx, np.int32)
    lead = (slice(None),) * axis

    def f(x, i, v):
        ref = x.at[(*lead, i)]
        return ref.get() if method == "get" else getattr(ref, method)(v)

    x, v = sample(dtype, shape), sample(dtype, (1,))[0]
    with np.errstate(all="ignore"):
        expected = ft.jit(f, backend="interpret")(x, i, v)
    assert_equal(cpu(f)(x, i, v), expected)


def test_take_along_axis_and_put_along_axis():
    x = sample(np.float64, (4, 5))
    i = np.array([[0, 4, -1, 9, -9]] * 4)
    for f in (lambda x, i: fnp.take_along_axis(x, i, axis=1), lambda x, i: fnp.put_along_axis(x, i, -x, axis=1)):
        assert_equal(cpu(f)(x, i), ft.jit(f, backend="interpret")(x, i))
