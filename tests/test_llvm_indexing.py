"""The CPU backend on dynamic_slice, dynamic_update_slice, pad and concatenate, and on
indexing through the front end under jit(grad) and jit(vmap): compiled results equal
eager evaluation exactly, for hostile start indices too; operands placed against
inaccessible memory pages show that no index value makes compiled code read out of
bounds (a read past either end of a guarded input would crash the test run)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from reference import assert_equal, assert_same, guarded

import functrace as ft
import functrace.numpy as fnp
import lowering.llvm  # noqa: F401  (registers the backend)
from functrace import lax

RNG = np.random.default_rng(0)
DTYPES = [np.dtype(d) for d in ("float32", "float64", "int32", "int64", "uint32", "bool")]
INDEX_DTYPES = [np.dtype(d) for d in ("int32", "int64", "uint32")]
GDN = lax.GatherDimensionNumbers
SDN = lax.ScatterDimensionNumbers


def cpu(f, **kw):
    return ft.jit(f, backend="cpu", **kw)


def sample(dtype, shape) -> np.ndarray:
    """Distinct-looking values of ``dtype`` (NaN and -0.0 among the floats)."""
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return RNG.random(shape) < 0.5
    x = RNG.integers(0 if dtype.kind == "u" else -50, 50, shape).astype(dtype)
    if dtype.kind == "f" and x.size >= 3:
        x.reshape(-1)[:2] = [np.nan, -0.0]
    return x


def hostile(dtype) -> list[int]:
    """Start indices that ``dtype`` can hold: in range, just outside, and extreme."""
    info = np.iinfo(dtype)
    values = [-(2**63), -(2**31), -(2**31) + 1, -100, -1, 0, 1, 2, 3, 4, 7, 2**31 - 1, 2**31, 2**32 - 1, 2**63 - 1]
    return [v for v in values if info.min <= v <= info.max]


def start_tuples(dtype, rank: int) -> list[tuple]:
    """Tuples of start indices: every hostile value in every position, the others rotating."""
    values = [np.dtype(dtype).type(v) for v in hostile(dtype)]
    return [tuple(values[(k + 3 * j) % len(values)] for j in range(rank)) for k in range(len(values))]


# --- guarded memory: a read past either end of an input faults ----------------------------


# --- dynamic_slice and dynamic_update_slice ------------------------------------------------

# (operand shape, slice sizes)
SLICE_CASES = [
    ((5,), (2,)),
    ((5,), (0,)),
    ((5,), (5,)),
    ((3, 4), (2, 2)),
    ((3, 4), (1, 4)),
    ((3, 4), (3, 0)),
    ((2, 3, 4), (1, 2, 4)),
    ((2, 3, 4), (2, 1, 1)),
    ((0, 3), (0, 2)),
    ((), ()),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(("shape", "sizes"), SLICE_CASES)
def test_dynamic_slice_and_update_clamp_hostile_starts(shape, sizes, dtype):
    index_dtype = INDEX_DTYPES[(len(shape) + DTYPES.index(dtype)) % 3]
    x, update = sample(dtype, shape), sample(dtype, sizes)

    def window(x, *starts):
        return lax.dynamic_slice(x, starts, sizes)

    def put(x, update, *starts):
        return lax.dynamic_update_slice(x, update, starts)

    compiled_window, compiled_put = cpu(window), cpu(put)
    for starts in start_tuples(index_dtype, len(shape)):
        assert_equal(compiled_window(x, *starts), window(x, *starts))
        assert_equal(compiled_put(x, update, *starts), put(x, update, *starts))


LITERAL_STARTS = [(np.int32(-(2**31)), np.int64(2**63 - 1)), (np.uint32(2**32 - 1), np.int32(1))]


@pytest.mark.parametrize("starts", LITERAL_STARTS)
def test_dynamic_slices_with_literal_starts(starts):
    x, u = sample(np.float32, (4, 5)), np.ones((3, 2), np.float32)
    window = lambda x: lax.dynamic_slice(x, starts, (2, 3))  # noqa: E731
    put = lambda x: lax.dynamic_update_slice(x, u, starts)  # noqa: E731
    assert all(type(a).__name__ == "Literal" for a in ft.make_ir(window)(x).eqns[0].inputs[1:])
    assert_equal(cpu(window)(x), window(x))
    assert_equal(cpu(put)(x), put(x))


def test_scalar_literal_operands():
    put = lambda u: lax.dynamic_update_slice(np.float64(2.0), u, ())  # noqa: E731
    assert_equal(cpu(put)(np.float64(5.0)), put(np.float64(5.0)))
    pad = lambda v: lax.pad(np.int32(7), v, ())  # noqa: E731
    assert_equal(cpu(pad)(np.int32(3)), pad(np.int32(3)))
    ir = ft.make_ir(put)(np.float64(5.0))
    assert type(ir.eqns[0].inputs[0]).__name__ == "Literal"


# --- pad ----------------------------------------------------------------------------------

PAD_CASES = [
    ((4,), ((1, 2, 0),)),
    ((4,), ((-1, -2, 0),)),
    ((4,), ((0, 0, 2),)),
    ((4,), ((-3, 2, 1),)),
    ((4,), ((-5, -4, 2),)),
    ((4,), ((-10, 8, 0),)),
    ((3,), ((-7, 0, 3),)),
    ((1,), ((0, 0, 3),)),
    ((3, 4), ((1, -1, 1), (-2, 3, 0))),
    ((3, 4), ((0, 0, 0), (0, 0, 0))),
    ((0, 3), ((1, 1, 2), (0, 0, 0))),
    ((2, 3, 2), ((0, 0, 0), (1, 1, 1), (-1, 0, 2))),
    ((2, 5), ((0, -2, 0), (-4, -1, 0))),
    ((), ()),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(("shape", "config"), PAD_CASES)
def test_pad(shape, config, dtype):
    x, value = sample(dtype, shape), sample(dtype, (7,))[-1]
    traced_value = lambda x, v: lax.pad(x, v, config)  # noqa: E731
    literal_value = lambda x: lax.pad(x, value, config)  # noqa: E731
    assert_equal(cpu(traced_value)(x, value), traced_value(x, value))
    assert_equal(cpu(literal_value)(x), literal_value(x))


@given(data=st.data())
def test_pad_random_configs(data):
    shape = data.draw(st.lists(st.integers(0, 4), max_size=3).map(tuple))
    config = []
    for n in shape:
        interior = data.draw(st.integers(0, 2))
        spread = n + max(n - 1, 0) * interior
        lo = data.draw(st.integers(-spread - 1, 3))
        hi = data.draw(st.integers(max(-spread - lo, -4), 3))
        config.append((lo, hi, interior))
    x = sample(np.float64, shape)
    f = lambda x: lax.pad(x, np.float64(-7.5), tuple(config))  # noqa: E731
    assert_equal(cpu(f)(x), f(x))


# --- concatenate --------------------------------------------------------------------------

CONCAT_CASES = [
    ([(2, 3), (1, 3), (0, 3), (4, 3)], 0),
    ([(2, 3), (2, 0), (2, 1)], 1),
    ([(2, 3, 4), (2, 1, 4), (2, 2, 4)], 1),
    ([(2, 3, 4), (2, 3, 1)], 2),
    ([(5,)], 0),
    ([(0, 2), (0, 3)], 1),
    ([(1, 1), (1, 1)], 0),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(("shapes", "dimension"), CONCAT_CASES)
def test_concatenate(shapes, dimension, dtype):
    xs = [sample(dtype, s) for s in shapes]
    f = lambda *xs: lax.concatenate(xs, dimension)  # noqa: E731
    assert_equal(cpu(f)(*xs), f(*xs))


def test_concatenate_along_the_first_axis_is_one_memcpy_per_operand():
    xs = [np.ones((n, 64), np.float32) for n in (3, 5, 7)]
    text = cpu(lambda *xs: lax.concatenate(xs, 0)).lower(*xs).compile().compiled.llvm_ir(optimized=False)
    assert text.count('call void @"llvm.memcpy') == 3
    assert " br " not in text.split("define", 2)[1].split("ret void")[0].replace('br label %"body"', "")


# --- the front end under jit(grad) and jit(vmap) ------------------------------------------


def traced_indices(n: int) -> np.ndarray:
    return np.array([0, n - 1, -1, -n, n, -n - 1, 2**31 - 1, -(2**31), 2**62, -(2**62)], np.int64)


FRONT_END_GRADS = {
    "getitem": lambda x, i: (x[i] ** 2).sum(),
    "getitem_column": lambda x, i: (fnp.sin(x[:, i]) * x[:, i]).sum(),
    "get_fill": lambda x, i: (x.at[i].get(mode="fill", fill_value=0.5) ** 3).sum(),
    "at_add": lambda x, i: (x.at[i].add(x[0] * 2.0) ** 2).sum(),
    "at_set": lambda x, i: (fnp.sin(x.at[i].set(x[1] + 1.0))).sum(),
    "at_max": lambda x, i: (x.at[i].max(x[2] * 0.5) ** 2).sum(),
    "dynamic_slice": lambda x, i: (lax.dynamic_slice(x, (i[0], i[1] % 3), (2, 2)) ** 2).sum(),
    "dynamic_update_slice": lambda x, i: (lax.dynamic_update_slice(x, x[:2, :1] * 3.0, (i[2], i[3])) ** 2).sum(),
}


@pytest.mark.parametrize("name", list(FRONT_END_GRADS))
def test_jit_grad_through_indexing(name):
    x = RNG.normal(size=(4, 3))
    for i in (traced_indices(4), np.array([1, 1, 3, 0, 1, 2, 2, 2, 0, 1])):
        g = ft.grad(FRONT_END_GRADS[name])
        assert_same(cpu(g)(x, i), ft.jit(g, backend="interpret")(x, i))


FRONT_END_VMAPS = {
    "dynamic_slice_per_example": (lambda x, i: lax.dynamic_slice(x, (i, i - 1), (2, 2)), (0, 0)),
    "dynamic_slice_shared_x": (lambda x, i: lax.dynamic_slice(x, (i, np.int32(1)), (2, 2)), (None, 0)),
    "dynamic_update_slice_per_example": (lambda x, i: lax.dynamic_update_slice(x, x[:1, :2] * 2, (i, -i)), (0, 0)),
    "getitem": (lambda x, i: x[i], (0, 0)),
    "getitem_shared_x": (lambda x, i: x[:, i], (None, 0)),
    "at_add": (lambda x, i: x.at[i, 1].add(10.0), (0, 0)),
    "at_set_shared_x": (lambda x, i: x.at[i].set(-1.0), (None, 0)),
    "at_min_shared_i": (lambda x, i: x.at[i].min(0.0), (0, None)),
}


@pytest.mark.parametrize("name", list(FRONT_END_VMAPS))
def test_jit_vmap_of_indexing(name):
    f, in_axes = FRONT_END_VMAPS[name]
    batch = 10
    x = RNG.normal(size=(batch, 4, 3)) if in_axes[0] == 0 else RNG.normal(size=(4, 3))
    i = np.array([0, 1, 3, -1, -4, 4, 7, 2**31 - 1, -(2**31), 2], np.int32)
    if in_axes[1] is None:
        i = i[2]
    v = ft.vmap(f, in_axes=in_axes)
    assert_equal(cpu(v)(x, i), ft.jit(v, backend="interpret")(x, i))


def test_jit_grad_of_vmap_of_dynamic_slice():
    def loss(x, i):
        return (ft.vmap(lambda r, s: lax.dynamic_slice(r, (s,), (2,)))(x, i) ** 2).sum()

    x, i = RNG.normal(size=(5, 6)), np.array([-3, 0, 4, 5, 2**31 - 1], np.int32)
    g = ft.grad(loss)
    assert_same(cpu(g)(x, i), ft.jit(g, backend="interpret")(x, i))


# --- no out-of-bounds reads, whatever the indices -----------------------------------------

GUARDED_CASES = {
    "dynamic_slice": (lambda x, u, i: lax.dynamic_slice(x, (i[0], i[1]), (2, 3)), "starts"),
    "dynamic_update_slice": (lambda x, u, i: lax.dynamic_update_slice(x, u, (i[0], i[1])), "starts"),
    "gather_clip": (lambda x, u, i: lax.gather(x, i, GDN((1,), (0,), (0,)), (1, 4)), "rows"),
    "gather_fill": (lambda x, u, i: lax.gather(x, i, GDN((1,), (0,), (0,)), (1, 4), mode="fill"), "rows"),
    "gather_points": (lambda x, u, i: lax.gather(x, i, GDN((), (0, 1), (0, 1)), (1, 1)), "points"),
    "scatter_drop": (lambda x, u, i: lax.scatter(x, i, u, SDN((1,), (0,), (0,))), "rows"),
    "scatter_add_clip": (lambda x, u, i: lax.scatter_add(x, i, u, SDN((1,), (0,), (0,)), mode="clip"), "rows"),
    "scatter_max_points": (lambda x, u, i: lax.scatter_max(x, i, u[:, 0], SDN((), (0, 1), (0, 1))), "points"),
}


@pytest.mark.parametrize("at_end", [False, True])
@pytest.mark.parametrize("name", list(GUARDED_CASES))
def test_no_out_of_bounds_reads(name, at_end):
    f, kind = GUARDED_CASES[name]
    compiled = cpu(f)
    x, u = sample(np.float32, (5, 4)), sample(np.float32, (2, 3) if kind == "starts" else (6, 4))
    for dtype in INDEX_DTYPES:
        values = hostile(dtype)
        for k in range(0, len(values), 2):
            picks = [values[(k + j) % len(values)] for j in range(12)]
            shape = {"starts": (2,), "rows": (6, 1), "points": (6, 2)}[kind]
            i = np.array(picks[: np.prod(shape)]).astype(dtype).reshape(shape)
            args = [guarded(a, at_end) for a in (x, u, i)]
            with np.errstate(invalid="ignore"):
                assert_equal(compiled(*args), f(x, u, i))
