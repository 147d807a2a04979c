"""Derivatives of the indexing primitives (functrace.lax.indexing) and of fnp indexing
(``x[...]``, ``x.at[...]``, ``take``, ``take_along_axis``): forward and reverse mode to
order 2 against finite differences, gradients written out with NumPy (duplicates
accumulate, out-of-bounds reads clamp), and the leanness of the derivative IR."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import functrace as ft
import functrace.numpy as fnp
from functrace import lax
from functrace.core.ad_util import Zero
from functrace.core.primitive import jvp_rules, vjp_rules
from functrace.core.trace import get_aval
from functrace.lax import gather_scatter, indexing
from functrace.testing import strategies as fts
from functrace.testing.gradients import check_grads

Case = tuple[Callable, tuple]
GDN = lax.GatherDimensionNumbers
SDN = lax.ScatterDimensionNumbers


def _array(data: st.DataObject, shape: tuple[int, ...]) -> np.ndarray:
    return data.draw(fts.arrays("float64", shape, elements=st.floats(-3, 3)))


def _shape(data: st.DataObject, min_dims: int = 0, max_dims: int = 3, min_side: int = 0) -> tuple[int, ...]:
    return data.draw(fts.shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=3))


def _index(data: st.DataObject, low: int, high: int, shape: tuple[int, ...] = ()) -> np.ndarray:
    return data.draw(fts.arrays("int64", shape, elements=st.integers(low, high)))


def _jit(fun: Callable) -> Callable:
    """``fun`` with its indices traced also when finite differences call it: a concrete
    index out of bounds raises, a traced one clamps (reads) or drops (writes)."""
    return ft.jit(fun, backend="interpret")


def _distinct(data: st.DataObject, *shapes: tuple[int, ...]) -> list[np.ndarray]:
    """Arrays whose elements are all distinct, far apart compared with the finite-difference
    step: scatter_min/max have no ties, so no kinks nearby."""
    sizes = [int(np.prod(s)) for s in shapes]
    values = data.draw(st.permutations(np.linspace(-3, 3, max(sum(sizes), 1))))
    splits = np.split(np.asarray(values[: sum(sizes)]), np.cumsum(sizes)[:-1])
    return [v.reshape(s) for v, s in zip(splits, shapes, strict=True)]


# --- lax primitives --------------------------------------------------------------------------


def _slice(data) -> Case:
    shape = _shape(data)
    starts, limits, strides = [], [], []
    for n in shape:
        start = data.draw(st.integers(0, n))
        starts.append(start)
        limits.append(data.draw(st.integers(start, n)))
        strides.append(data.draw(st.integers(1, 3)))
    return (lambda x: lax.slice(x, starts, limits, strides)), (_array(data, shape),)


def _dynamic_slice(data) -> Case:
    """Start indices are traced arguments, some out of bounds (clamped)."""
    shape = _shape(data, min_dims=1)
    sizes = [data.draw(st.integers(0, n)) for n in shape]
    starts = tuple(_index(data, -2, n + 1) for n in shape)
    return (lambda x, *s: lax.dynamic_slice(x, s, sizes)), (_array(data, shape), *starts)


def _dynamic_update_slice(data) -> Case:
    shape = _shape(data, min_dims=1)
    update = tuple(data.draw(st.integers(0, n)) for n in shape)
    starts = tuple(_index(data, -2, n + 1) for n in shape)
    args = (_array(data, shape), _array(data, update), *starts)
    return (lambda x, u, *s: lax.dynamic_update_slice(x, u * u, s)), args


def _windows(data) -> tuple:
    """A random gather/scatter layout: operand shape, the removed (collapsed / inserted)
    dims, the index map, window sizes, batch shape, where the window dims go, and indices
    (some out of bounds)."""
    shape = _shape(data, min_dims=1, min_side=1)
    rank = len(shape)
    index_map = tuple(data.draw(st.permutations(range(rank)))[: data.draw(st.integers(1, rank))])
    removed = tuple(sorted(data.draw(st.sets(st.sampled_from(range(rank))))))
    sizes = tuple(1 if d in removed else data.draw(st.integers(0, shape[d])) for d in range(rank))
    batch = tuple(data.draw(st.lists(st.integers(0, 3), max_size=2)))
    n_window = rank - len(removed)
    window_at = tuple(sorted(data.draw(st.permutations(range(len(batch) + n_window)))[:n_window]))
    indices = _index(data, -2, max(shape) + 1, (*batch, len(index_map)))
    window, batch_sizes = iter(s for d, s in enumerate(sizes) if d not in removed), iter(batch)
    out_shape = tuple(next(window) if p in window_at else next(batch_sizes) for p in range(len(batch) + n_window))
    return shape, removed, index_map, sizes, window_at, indices, out_shape


def _gather(data) -> Case:
    shape, removed, index_map, sizes, window_at, indices, _ = _windows(data)
    dn = GDN(window_at, removed, index_map)
    mode = data.draw(st.sampled_from(["clip", "fill"]))
    fill = 0.5 if mode == "fill" else None  # NaN, the default, defeats finite differences
    return (lambda x, i: lax.gather(x * x, i, dn, sizes, mode=mode, fill_value=fill)), (_array(data, shape), indices)


def _scatter_case(data, fn: Callable, distinct: bool = False) -> Case:
    shape, removed, index_map, _, window_at, indices, updates_shape = _windows(data)
    dn = SDN(window_at, removed, index_map)
    mode = data.draw(st.sampled_from(["clip", "drop"]))
    if distinct:
        x, u = _distinct(data, shape, updates_shape)
    else:
        x, u = _array(data, shape), _array(data, updates_shape)
    return (lambda x, i, u: fn(x, i, u, dn, mode=mode)), (x, indices, u)


def _batching_gather(data) -> Case:
    """Operand and indices batching dimensions (take_along_axis's form)."""
    b, n, k = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)), data.draw(st.integers(0, 3))
    indices = _index(data, -1, n, (b, k, 1))
    dn = GDN((), (1,), (1,), (0,), (0,))
    return (lambda x, i: lax.gather(x, i, dn, (1, 1))), (_array(data, (b, n)), indices)


def _batching_scatter_add(data) -> Case:
    b, n, k = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)), data.draw(st.integers(0, 3))
    indices = _index(data, -1, n, (b, k, 1))
    dn = SDN((), (1,), (1,), (0,), (0,))
    args = (_array(data, (b, n)), indices, _array(data, (b, k)))
    return (lambda x, i, u: lax.scatter_add(x, i, u * u, dn)), args


def _scatter_mul(data) -> Case:
    """Unique rows (one out of bounds, dropped), whole-row windows."""
    n, m = data.draw(st.integers(1, 4)), data.draw(st.integers(0, 3))
    rows = data.draw(st.permutations([*range(n), n + 1]))[: data.draw(st.integers(0, n + 1))]
    indices = np.array(rows, np.int64).reshape(-1, 1)
    dn = SDN((1,), (0,), (0,))
    args = (_array(data, (n, m)), indices, _array(data, (len(rows), m)))
    return (lambda x, i, u: lax.scatter_mul(x, i, u, dn)), args


LAX_CASES = {
    "slice": _slice,
    "dynamic_slice": _dynamic_slice,
    "dynamic_update_slice": _dynamic_update_slice,
    "gather": _gather,
    "gather_batching": _batching_gather,
    "scatter_add": lambda data: _scatter_case(
        data, lambda x, i, u, dn, mode: lax.scatter_add(x, i, u * u, dn, mode=mode)
    ),
    "scatter_add_batching": _batching_scatter_add,
    "scatter": lambda data: _scatter_case(data, lambda x, i, u, dn, mode: lax.scatter(x * x, i, u * u, dn, mode=mode)),
    "scatter_mul": _scatter_mul,
    "scatter_min": lambda data: _scatter_case(data, lax.scatter_min, distinct=True),
    "scatter_max": lambda data: _scatter_case(data, lax.scatter_max, distinct=True),
}


# --- fnp indexing ------------------------------------------------------------------------------

FNP_INDEX_TABLE = {
    "steps": (2, (slice(None, None, 2), slice(None, None, -1))),
    "negative_step": (1, slice(-1, 0, -2)),
    "int": (2, (1, -1)),
    "int_and_slice": (2, (Ellipsis, -1, None)),
    "array_duplicates": (1, np.array([0, -1, 0, 0])),
    "arrays_broadcast": (2, (np.array([[0], [1]]), np.array([1, 1, 0]))),
    "mixed": (3, (slice(None), np.array([1, 1]), slice(None, None, -1))),
    "mixed_separated": (3, (np.array([0, 0]), slice(1, None), -1)),
}


def _fnp_getitem(name: str) -> Callable:
    min_dims, index = FNP_INDEX_TABLE[name]

    def case(data) -> Case:
        shape = _shape(data, min_dims=min_dims, max_dims=min_dims + 1, min_side=2)
        return (lambda x: fnp.sin(x[index])), (_array(data, shape),)

    return case


def _fnp_traced_int(data) -> Case:
    """A traced integer index: the dynamic_slice path (indices may be negative)."""
    shape = _shape(data, min_dims=3, max_dims=3, min_side=1)
    i, j = _index(data, -shape[0], shape[0] - 1), _index(data, -shape[2], shape[2] - 1)
    return (lambda x, i, j: x[i, :, j] * x[i, :, 0]), (_array(data, shape), i, j)


def _fnp_traced_array(data) -> Case:
    shape = _shape(data, min_dims=2, min_side=1)
    i = _index(data, -shape[0], shape[0] - 1, (data.draw(st.integers(0, 4)),))
    return (lambda x, i: x[i, ::-1] ** 2), (_array(data, shape), i)


def _fnp_at(method: str) -> Callable:
    def case(data) -> Case:
        shape = _shape(data, min_dims=2, max_dims=2, min_side=1)
        index = (_index(data, 0, shape[0] - 1, (data.draw(st.integers(0, 4)),)), slice(1, None))
        values = _array(data, (len(index[0]), shape[1] - 1))
        return (lambda x, v: getattr(fnp.at(x)[index], method)(v * v)), (_array(data, shape), values)

    return case


def _fnp_at_get_fill(data) -> Case:
    """Traced indices out of bounds read the fill value: no derivative there."""
    n = data.draw(st.integers(1, 4))
    i = _index(data, -n - 2, n + 1, (data.draw(st.integers(0, 4)),))
    return _jit(lambda x, i: fnp.at(x)[i].get(mode="fill", fill_value=0.5) ** 2), (_array(data, (n, 2)), i)


def _fnp_at_box(data) -> Case:
    """A static box: ``set`` becomes one dynamic_update_slice."""
    shape = _shape(data, min_dims=2, max_dims=2, min_side=2)
    return (lambda x, v: fnp.at(x)[1:, 0].set(v)), (_array(data, shape), _array(data, (shape[0] - 1,)))


def _fnp_at_traced(data) -> Case:
    shape = _shape(data, min_dims=1, min_side=1)
    i = _index(data, -shape[0] - 1, shape[0], (data.draw(st.integers(0, 3)),))  # out of bounds: dropped
    return _jit(lambda x, i, v: fnp.at(x)[i].add(v) + fnp.at(x)[i].set(2 * v)), (
        _array(data, shape),
        i,
        _array(data, i.shape + shape[1:]),
    )


def _fnp_at_extrema(data) -> Case:
    n = data.draw(st.integers(1, 4))
    index = _index(data, 0, n - 1, (data.draw(st.integers(0, 5)),))
    x, v = _distinct(data, (n,), index.shape)  # 0.75 apart or more: v + 0.01 ties with nothing

    def f(x, v):
        return fnp.at(x)[index].max(v) - fnp.at(x)[index].min(v + 0.01)

    return f, (x, v)


def _fnp_at_multiply(data) -> Case:
    n = data.draw(st.integers(1, 4))
    index = np.array(data.draw(st.permutations(range(n))))[: data.draw(st.integers(0, n))]
    return (lambda x, v: fnp.at(x)[index].multiply(v)), (_array(data, (n, 2)), _array(data, (len(index), 2)))


def _fnp_take(data) -> Case:
    shape = _shape(data, min_dims=1, min_side=1)
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    n = shape[axis]
    mode = data.draw(st.sampled_from([None, "wrap", "clip"]))
    low, high = (-n, n - 1) if mode is None else (-2 * n, 2 * n)
    indices = _index(data, low, high, _shape(data, max_dims=2))
    return (lambda x: fnp.take(x, indices, axis=axis, mode=mode)), (_array(data, shape),)


def _fnp_take_along_axis(data) -> Case:
    shape = _shape(data, min_dims=1, min_side=1)
    axis = data.draw(st.integers(0, len(shape) - 1))
    index_shape = tuple(data.draw(st.integers(0, 4)) if d == axis else n for d, n in enumerate(shape))
    indices = _index(data, -shape[axis], shape[axis] - 1, index_shape)
    traced = data.draw(st.booleans())
    if traced:
        return (lambda x, i: fnp.take_along_axis(x, i, axis) ** 2), (_array(data, shape), indices)
    return (lambda x: fnp.take_along_axis(x, indices, axis) ** 2), (_array(data, shape),)


FNP_CASES = {
    **{f"getitem_{name}": _fnp_getitem(name) for name in FNP_INDEX_TABLE},
    "getitem_traced_int": _fnp_traced_int,
    "getitem_traced_array": _fnp_traced_array,
    "at_set": _fnp_at("set"),
    "at_add": _fnp_at("add"),
    "at_get_fill": _fnp_at_get_fill,
    "at_set_box": _fnp_at_box,
    "at_traced": _fnp_at_traced,
    "at_max_min": _fnp_at_extrema,
    "at_multiply": _fnp_at_multiply,
    "take": _fnp_take,
    "take_along_axis": _fnp_take_along_axis,
}
CASES = {**LAX_CASES, **{f"fnp.{k}": v for k, v in FNP_CASES.items()}}


@pytest.mark.parametrize("name", sorted(CASES))
@given(data=st.data())
def test_grads_order_2(name, data):
    fun, args = CASES[name](data)
    check_grads(fun, args, order=2, modes=("fwd", "rev"))


# --- gradients written out with NumPy ---------------------------------------------------------


def test_integer_array_gradient_accumulates_duplicates():
    x = np.arange(8.0).reshape(4, 2)
    index = np.array([0, 3, 0, 0, 2])
    w = np.arange(10.0).reshape(5, 2)
    expected = np.zeros_like(x)
    np.add.at(expected, index, w)
    np.testing.assert_array_equal(ft.grad(lambda x: fnp.sum(x[index] * w))(x), expected)
    np.testing.assert_array_equal(ft.grad(lambda x: fnp.sum(fnp.take(x, index, axis=0) * w))(x), expected)


def _clamped(index: np.ndarray, n: int) -> np.ndarray:
    """Where a traced index reads: negatives count from the end, then it clamps into bounds."""
    return np.clip(np.where(index < 0, index + n, index), 0, n - 1)


@pytest.mark.parametrize("index", [np.int64(7), np.int64(-9), np.int64(-2), np.array([-9, 7, 1, 1, 2])])
def test_out_of_bounds_traced_reads_clamp_in_gradients(index):
    x = np.arange(10.0).reshape(5, 2)
    w = np.arange(1.0, 1.0 + 2 * np.size(index)).reshape((*np.shape(index), 2))

    def f(x, i):
        return fnp.sum(x[i] * w) + fnp.sum(fnp.take(x, i, axis=0) * w)

    expected = np.zeros_like(x)
    np.add.at(expected, _clamped(np.asarray(index), 5), 2 * w)
    for run in (ft.jit(ft.grad(f), backend="interpret"), lambda x, i: ft.make_ir(ft.grad(f))(x, i).eval(x, i)):
        np.testing.assert_array_equal(run(x, index), expected)


def test_clip_gather_sends_cotangent_to_clamped_window():
    x = np.arange(5.0)
    dn = GDN((1,), (), (0,))
    i = np.array([[-3], [4], [1]])  # windows of 2 start at 0, 3 (clamped) and 1
    w = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    g = ft.grad(lambda x: fnp.sum(lax.gather(x, i, dn, (2,)) * w))(x)
    np.testing.assert_array_equal(g, [1.0, 2.0 + 5.0, 6.0, 3.0, 4.0])
    g = ft.grad(lambda x: fnp.sum(lax.gather(x, i, dn, (2,), mode="fill", fill_value=0.0) * w))(x)
    np.testing.assert_array_equal(g, [0.0, 5.0, 6.0, 0.0, 0.0])


def test_fill_gather_tangent_is_zero_out_of_bounds_even_with_nan_fill():
    dn = GDN((), (0,), (0,))
    i = np.array([[1], [7], [-1]])
    out, t = ft.jvp(lambda x: lax.gather(x, i, dn, (1,), mode="fill"), (np.arange(3.0),), (np.ones(3),))
    np.testing.assert_array_equal(np.isnan(out), [False, True, True])
    np.testing.assert_array_equal(t, [1.0, 0.0, 0.0])


def test_set_with_duplicates_gives_the_cotangent_to_the_kept_update():
    # NumPy's order: the last of the updates landing on one position stays.
    index = np.array([1, 0, 1, 1])
    w = np.array([1.0, 2.0, 3.0])

    def f(x, v, i):
        return fnp.sum(x.at[i].set(v) * w)

    x, v = np.zeros(3), np.arange(4.0)
    expected = (np.array([0.0, 0.0, 3.0]), np.array([0.0, 1.0, 0.0, 2.0]))
    for run in (
        lambda x, v: ft.grad(lambda x, v: f(x, v, index), (0, 1))(x, v),
        lambda x, v: ft.jit(ft.grad(f, (0, 1)), backend="interpret")(x, v, index),  # traced indices
    ):
        for got, want in zip(run(x, v), expected, strict=True):
            np.testing.assert_array_equal(got, want)


def test_add_with_duplicates_accumulates_both_ways():
    index = np.array([1, 0, 1, 1])
    gx, gv = ft.grad(lambda x, v: fnp.sum(fnp.at(x)[index].add(v) * np.array([1.0, 2.0, 3.0])), (0, 1))(
        np.zeros(3), np.ones(4)
    )
    np.testing.assert_array_equal(gx, [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(gv, [2.0, 1.0, 2.0, 2.0])


def test_scatter_max_splits_ties_evenly():
    gx, gv = ft.grad(lambda x, v: fnp.sum(fnp.at(x)[np.array([0, 0, 1])].max(v)), (0, 1))(
        np.array([1.0, 5.0]), np.array([1.0, 1.0, 2.0])
    )
    np.testing.assert_allclose(gx, [1 / 3, 1.0])
    np.testing.assert_allclose(gv, [1 / 3, 1 / 3, 0.0])


def test_scatter_mul_with_repeated_concrete_indices_raises():
    def f(x, v):
        return fnp.sum(fnp.at(x)[np.array([0, 0])].multiply(v))

    with pytest.raises(NotImplementedError, match=r"scatter_mul.*unique indices"):
        ft.grad(f, 1)(np.ones(2), np.ones(2))
    np.testing.assert_array_equal(ft.grad(f, 0)(np.ones(2), np.array([2.0, 3.0])), [6.0, 1.0])


@given(data=st.data())
@settings(max_examples=10)
def test_jit_and_make_ir_of_grad_agree(data):
    """Traced indices, some out of bounds (reads clamp, writes drop): staged and jitted
    gradients agree, and with indices in bounds they equal the eager gradient."""
    shape = _shape(data, min_dims=2, max_dims=2, min_side=1)
    i = _index(data, -shape[0] - 2, shape[0] + 1, (data.draw(st.integers(0, 4)),))
    j = _index(data, -shape[1] - 2, shape[1] + 1)

    def f(x, i, j):
        y = fnp.at(x)[i].set(x[i] * 2.0)
        y = fnp.at(y)[i, j].add(1.5)
        return fnp.sum(fnp.sin(y[::-1, 1:])) * fnp.take(x, i, axis=0).sum() + x[:, j].sum()

    x = _array(data, shape)
    staged = ft.make_ir(ft.grad(f))(x, i, j)
    jitted = ft.jit(ft.grad(f), backend="interpret")
    np.testing.assert_allclose(staged.eval(x, i, j), jitted(x, i, j), rtol=1e-12)
    i, j = _clamped(i, shape[0]), _clamped(j, shape[1])
    np.testing.assert_allclose(staged.eval(x, i, j), ft.grad(f)(x, i, j), rtol=1e-12)


# --- registry, symbolic zeros and leanness ------------------------------------------------------

PRIMITIVES = [
    indexing.slice_p, indexing.dynamic_slice_p, indexing.dynamic_update_slice_p, gather_scatter.gather_p,
    gather_scatter.scatter_p, gather_scatter.scatter_add_p, gather_scatter.scatter_mul_p, gather_scatter.scatter_min_p,
    gather_scatter.scatter_max_p,
]  # fmt: skip


def test_rules_registered():
    for prim in PRIMITIVES:
        assert prim in jvp_rules and prim in vjp_rules, prim


_POINT = {"dimension_numbers": SDN((), (0,), (0,)), "mode": "drop"}
ZERO_CASES = [
    (indexing.slice_p, [np.ones(4)], {"start_indices": (1,), "limit_indices": (4,), "strides": (2,)}),
    (indexing.dynamic_slice_p, [np.ones(4), np.int64(1)], {"slice_sizes": (2,)}),
    (indexing.dynamic_update_slice_p, [np.ones(4), np.ones(2), np.int64(1)], {}),
    (
        gather_scatter.gather_p,
        [np.ones(4), np.array([[1], [5]])],
        {"dimension_numbers": GDN((), (0,), (0,)), "slice_sizes": (1,), "mode": "fill", "fill_value": None},
    ),
    *[(p, [np.ones(4), np.array([[1], [2]]), np.ones(2)], _POINT) for p in PRIMITIVES[4:]],
]


@pytest.mark.parametrize(("prim", "primals", "params"), ZERO_CASES, ids=lambda c: getattr(c, "name", ""))
def test_zero_tangents_stay_symbolic(prim, primals, params):
    tangents = [Zero(get_aval(p)) for p in primals]
    outs, t_outs = jvp_rules[prim](primals, tangents, **params)
    np.testing.assert_array_equal(outs[0], prim.bind(*primals, **params))
    assert type(t_outs[0]) is Zero and t_outs[0].aval.shape == np.shape(outs[0])


def test_scatter_add_jvp_passes_the_operand_tangent_through():
    primals = [np.ones(4), np.array([[1], [2]]), np.ones(2)]
    t = np.arange(4.0)
    tangents = [t, Zero(get_aval(primals[1])), Zero(get_aval(primals[2]))]
    _, (t_out,) = jvp_rules[gather_scatter.scatter_add_p](primals, tangents, **_POINT)
    assert t_out is t


def _prims(fn) -> list[str]:
    return [e.primitive.name for e in fn.eqns]


def test_grad_of_static_slicing_is_one_pad():
    ir = ft.make_ir(ft.grad(lambda x: fnp.sum(x[1::2, ::-1] * 3.0)))(np.ones((5, 3)))
    assert _prims(ir).count("pad") == 1 and not {"scatter_add", "gather", "dynamic_update_slice"} & set(_prims(ir))
    np.testing.assert_array_equal(ir.eval(np.ones((5, 3))), np.repeat([[0.0], [3.0], [0.0], [3.0], [0.0]], 3, 1))


def test_grad_of_set_with_unique_concrete_indices_skips_the_duplicate_check():
    index = np.array([2, 0])
    ir = ft.make_ir(ft.grad(lambda x, v: fnp.sum(x.at[index].set(v) ** 2), (0, 1)))(np.ones(3), np.ones(2))
    assert "iota" not in _prims(ir) and "eq" not in _prims(ir), ir
    ir = ft.make_ir(ft.grad(lambda x, v, i: fnp.sum(x.at[i].set(v) ** 2), (0, 1)))(np.ones(3), np.ones(2), index)
    assert "iota" in _prims(ir), ir  # traced indices may repeat


def test_grad_of_dynamic_slice_is_one_update():
    ir = ft.make_ir(ft.grad(lambda x, i: fnp.sum(lax.dynamic_slice(x, (i,), (2,)))))(np.ones(5), np.int64(1))
    assert _prims(ir).count("dynamic_update_slice") == 1 and "scatter_add" not in _prims(ir), ir
    np.testing.assert_array_equal(ir.eval(np.ones(5), np.int64(9)), [0, 0, 0, 1, 1])


def test_grad_through_integer_operands_is_zero():
    index = np.array([2, 0])
    g = ft.grad(lambda x: fnp.sum(fnp.arange(3)[index] * x))(np.array([1.0, 2.0]))
    np.testing.assert_array_equal(g, [2.0, 0.0])


def test_scatter_mul_update_derivative_refuses_traced_indices():
    def f(x, i, v):
        return fnp.sum(fnp.at(x)[i].multiply(v))

    x, v = np.ones((3, 2)), np.full((2, 2), 2.0)
    with pytest.raises(NotImplementedError, match=r"concrete, unique indices; these indices are traced"):
        ft.jit(ft.grad(f, argnums=2), backend="interpret")(x, np.array([0, 2]), v)
    # the derivative with respect to the operand does not need unique indices
    np.testing.assert_allclose(ft.jit(ft.grad(f), backend="interpret")(x, np.array([0, 0]), v)[0], [4.0, 4.0])
