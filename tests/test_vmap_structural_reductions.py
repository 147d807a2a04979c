"""vmap of the shape, reduction and contraction primitives (functrace.lax.structural,
reductions, linalg) and of the fnp functions built on them, against a Python loop.

Each row of ``CASES`` draws a function and its examples' shapes; the test draws the
batch size and each argument's mapped axis (or ``None``), then checks that
``vmap(f)`` equals ``np.stack([f(*example) for each example])`` eagerly, through
``make_ir(...).eval`` and through ``jit(..., backend="interpret")``, and that the IR
does not grow with the batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from reference import assert_same, vmap_loop

import functrace as ft
import functrace.numpy as fnp
from functrace import lax
from functrace.core.primitive import batch_rules
from functrace.lax.indexing import slice_p
from functrace.testing import strategies as fts

Spec = tuple[tuple[int, ...], np.dtype]  # an example argument's shape and dtype
F64, F32, I32, BOOL = (np.dtype(d) for d in ("float64", "float32", "int32", "bool"))


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[st.DataObject], tuple[Callable, list[Spec]]]

    def __repr__(self) -> str:
        return self.name


# --- building examples and the loop reference ------------------------------------------------


def _values(rng: np.random.Generator, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    if dtype.kind == "f":
        return rng.uniform(-2, 2, shape).astype(dtype)
    if dtype.kind == "b":
        return rng.random(shape) < 0.5
    return rng.integers(-4 if dtype.kind == "i" else 0, 5, shape).astype(dtype)


def _batched(rng, specs: list[Spec], axes: tuple, size: int) -> list[np.ndarray]:
    """One array per argument: mapped ones with ``size`` examples stacked at their axis."""
    out = []
    for (shape, dtype), ax in zip(specs, axes, strict=True):
        if ax is None:
            out.append(_values(rng, shape, dtype))
        else:
            full = list(shape)
            full.insert(ax % (len(shape) + 1), size)
            out.append(_values(rng, tuple(full), dtype))
    return out


def _in_axes(data: st.DataObject, specs: list[Spec]) -> tuple:
    """A mapped axis (0, 1, -1) or None per argument, at least one mapped."""
    axes = tuple(
        data.draw(st.sampled_from([0, -1, None] + ([1] if shape else [])), label="in_axis") for shape, _ in specs
    )
    return axes if any(a is not None for a in axes) else (0, *axes[1:])


def _eqn_count(f: Callable, args: list) -> int:
    return len(ft.make_ir(f)(*args).eqns)


def _draw_shape(data, min_dims=0, max_dims=3, min_side=0) -> tuple[int, ...]:
    return data.draw(fts.shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=3))


def _subset(data, items) -> tuple[int, ...]:
    items = list(items)
    return tuple(sorted(data.draw(st.sets(st.sampled_from(items)) if items else st.just(set()))))


def _dtype(data, choices=(F64, F32, I32, BOOL)) -> np.dtype:
    return data.draw(st.sampled_from(choices))


# --- lax primitives --------------------------------------------------------------------------


def _broadcast_in_dim(data):
    shape = _draw_shape(data, max_dims=2)
    out, dims = [], []
    for n in shape:
        out += data.draw(st.lists(st.integers(0, 3), max_size=1))
        dims.append(len(out))
        out.append(data.draw(st.integers(0, 3)) if n == 1 else n)
    out += data.draw(st.lists(st.integers(0, 3), max_size=1))
    return (lambda x: lax.broadcast_in_dim(x, out, dims)), [(shape, _dtype(data))]


def _reshape(data):
    shape = _draw_shape(data)
    size = int(np.prod(shape))
    new = data.draw(st.sampled_from([(size,), shape[::-1], (1, *shape), (*shape, 1), (size, 1), ()]))
    if int(np.prod(new)) != size:
        new = (size,)
    return (lambda x: lax.reshape(x, new)), [(shape, _dtype(data))]


def _transpose(data):
    shape = _draw_shape(data)
    perm = data.draw(st.permutations(range(len(shape))))
    return (lambda x: lax.transpose(x, perm)), [(shape, _dtype(data))]


def _squeeze(data):
    shape = _draw_shape(data, max_dims=3)
    shape = tuple(1 if data.draw(st.booleans()) else n for n in shape)
    dims = _subset(data, [i for i, n in enumerate(shape) if n == 1])
    return (lambda x: lax.squeeze(x, dims)), [(shape, _dtype(data))]


def _expand_dims(data):
    shape = _draw_shape(data, max_dims=2)
    k = data.draw(st.integers(0, 2))
    dims = tuple(sorted(data.draw(st.sets(st.integers(0, len(shape) + k - 1), min_size=k, max_size=k)))) if k else ()
    return (lambda x: lax.expand_dims(x, dims)), [(shape, _dtype(data))]


def _rev(data):
    shape = _draw_shape(data)
    dims = _subset(data, range(len(shape)))
    return (lambda x: lax.rev(x, dims)), [(shape, _dtype(data))]


def _pad_config(data, shape: tuple[int, ...]) -> list[tuple[int, int, int]]:
    config = []
    for n in shape:
        lo, hi, interior = data.draw(st.tuples(st.integers(-2, 2), st.integers(-2, 2), st.integers(0, 2)))
        if lo + hi + n + max(n - 1, 0) * interior < 0:
            lo = hi = 0
        config.append((lo, hi, interior))
    return config


def _pad(data):
    shape = _draw_shape(data, max_dims=2)
    config, dtype = _pad_config(data, shape), _dtype(data)
    return (lambda x, v: lax.pad(x, v, config)), [(shape, dtype), ((), dtype)]


def _concatenate(data):
    shape = _draw_shape(data, min_dims=1)
    dim, dtype = data.draw(st.integers(0, len(shape) - 1)), _dtype(data)
    sizes = data.draw(st.lists(st.integers(0, 3), min_size=1, max_size=3))
    specs = [((*shape[:dim], n, *shape[dim + 1 :]), dtype) for n in sizes]
    return (lambda *xs: lax.concatenate(xs, dim)), specs


def _iota(data):
    shape = _draw_shape(data, min_dims=1)
    dim = data.draw(st.integers(0, len(shape) - 1))
    return (lambda x: x * lax.broadcasted_iota(np.int32, x.shape, dim)), [(shape, I32)]


def _reduction(reduce: Callable, dtypes=(F64, F32, I32)):
    def build(data):
        shape = _draw_shape(data)
        axes = _subset(data, range(len(shape)))
        return (lambda x: reduce(x, axes)), [(shape, _dtype(data, dtypes))]

    return build


def _index_reduction(reduce: Callable):
    def build(data):
        shape = _draw_shape(data, min_dims=1)
        axis = data.draw(st.integers(-len(shape), len(shape) - 1))
        return (lambda x: reduce(x, axis, np.int32)), [(shape, _dtype(data))]

    return build


def _cumsum(data):
    shape = _draw_shape(data, min_dims=1)
    axis, reverse = data.draw(st.integers(0, len(shape) - 1)), data.draw(st.booleans())
    return (lambda x: lax.cumsum(x, axis, reverse)), [(shape, _dtype(data, (F64, F32, I32)))]


def _dot_general(data):
    """Random dimension numbers: each operand's batch, contracting and free dims in a
    random order."""
    sizes = lambda n: data.draw(st.lists(st.integers(0, 3), max_size=n))  # noqa: E731
    batch, contract, lhs_free, rhs_free = sizes(2), sizes(2), sizes(2), sizes(2)

    def layout(free):
        kinds = [("b", i) for i in range(len(batch))] + [("c", i) for i in range(len(contract))]
        order = data.draw(st.permutations(kinds + [("f", i) for i in range(len(free))]))
        table = {"b": batch, "c": contract, "f": free}
        shape = tuple(table[k][i] for k, i in order)
        pos = {k: tuple(order.index((k, i)) for i in range(len(table[k]))) for k in "bc"}
        return shape, pos

    (ls, lp), (rs, rp) = layout(lhs_free), layout(rhs_free)
    numbers = ((lp["c"], rp["c"]), (lp["b"], rp["b"]))
    dtype = _dtype(data, (F64, F32, I32))
    return (lambda x, y: lax.dot_general(x, y, numbers)), [(ls, dtype), (rs, dtype)]


# --- fnp functions ---------------------------------------------------------------------------


def _fnp_reshape(data):
    shape = _draw_shape(data)
    new = data.draw(st.sampled_from([(-1,), (*shape[::-1], 1), (1, -1)]))
    return (lambda x: fnp.reshape(x, new)), [(shape, _dtype(data))]


def _fnp_transpose(data):
    shape = _draw_shape(data)
    axes = data.draw(st.none() | st.permutations(range(len(shape))).map(tuple))
    return (lambda x: fnp.transpose(x, axes)), [(shape, _dtype(data))]


def _fnp_swapaxes(data):
    shape = _draw_shape(data, min_dims=1)
    a, b = data.draw(st.tuples(*[st.integers(-len(shape), len(shape) - 1)] * 2))
    return (lambda x: fnp.swapaxes(x, a, b)), [(shape, _dtype(data))]


def _fnp_concatenate(data):
    shape = _draw_shape(data, min_dims=1)
    axis = data.draw(st.sampled_from([None, 0, -1]))
    ax = 0 if axis is None else axis % len(shape)
    sizes = data.draw(st.lists(st.integers(0, 3), min_size=1, max_size=3))
    specs = [((*shape[:ax], n, *shape[ax + 1 :]), _dtype(data, (F64, F32, I32))) for n in sizes]
    return (lambda *xs: fnp.concatenate(xs, axis=axis)), specs


def _fnp_stack(data):
    shape, dtype = _draw_shape(data), _dtype(data)
    n = data.draw(st.integers(1, 3))
    axis = data.draw(st.integers(-len(shape) - 1, len(shape)))
    return (lambda *xs: fnp.stack(xs, axis=axis)), [(shape, dtype)] * n


def _fnp_split(data):
    shape = _draw_shape(data, min_dims=1)
    axis = data.draw(st.integers(0, len(shape) - 1))
    n = shape[axis]
    sections = data.draw(st.sampled_from([d for d in (1, 2, 3) if n % d == 0] + [(1,), (0, 2)]))
    return (lambda x: fnp.split(x, sections, axis=axis)), [(shape, _dtype(data))]


def _fnp_pad(data):
    shape = _draw_shape(data, min_dims=1, max_dims=2)
    widths = [data.draw(st.tuples(st.integers(0, 2), st.integers(0, 2))) for _ in shape]
    value = data.draw(st.sampled_from([0, 1, 5]))
    return (lambda x: fnp.pad(x, widths, constant_values=value)), [(shape, _dtype(data, (F64, F32, I32)))]


def _fnp_reduction(reduce: Callable, dtypes=(F64, F32, I32, BOOL), min_side: int = 0):
    def build(data):
        shape = _draw_shape(data, min_side=min_side)
        axis = data.draw(st.none() | st.integers(-len(shape), len(shape) - 1) if shape else st.none())
        keepdims = data.draw(st.booleans())
        return (lambda x: reduce(x, axis=axis, keepdims=keepdims)), [(shape, _dtype(data, dtypes))]

    return build


def _fnp_cumsum(data):
    shape = _draw_shape(data)
    axis = data.draw(st.none() | st.integers(-len(shape), len(shape) - 1) if shape else st.none())
    return (lambda x: fnp.cumsum(x, axis=axis)), [(shape, _dtype(data))]


MATMUL_SHAPES = [
    ((3,), (3,)),
    ((2, 3), (3,)),
    ((3,), (3, 4)),
    ((2, 3), (3, 4)),
    ((2, 1, 3), (3, 4)),
    ((1, 2, 3), (2, 3, 4)),
    ((2, 3), (2, 3, 1)),
    ((3,), (2, 3, 4)),
    ((2, 1, 2, 3), (3, 3, 2)),
]


def _fnp_matmul(data):
    s1, s2 = data.draw(st.sampled_from(MATMUL_SHAPES))
    d1, d2 = _dtype(data, (F64, F32, I32, BOOL)), _dtype(data, (F64, F32, I32))
    return (lambda x, y: fnp.matmul(x, y)), [(s1, d1), (s2, d2)]


EINSUMS = [
    ("ij,jk->ik", (2, 3), (3, 4)),
    ("bij,bjk->bik", (2, 2, 3), (2, 3, 1)),
    ("i,i->", (3,), (3,)),
    ("i,j->ij", (2,), (3,)),
    ("...ij,...jk->...ik", (1, 2, 3), (4, 3, 2)),
    ("ij,kj", (2, 3), (4, 3)),
    ("ijk,kj->i", (2, 3, 4), (4, 3)),
]


def _fnp_einsum(data):
    spec, s1, s2 = data.draw(st.sampled_from(EINSUMS))
    dtype = _dtype(data, (F64, F32, I32))
    return (lambda x, y: fnp.einsum(spec, x, y)), [(s1, dtype), (s2, dtype)]


def _fnp_tensordot(data):
    axes, s1, s2 = data.draw(
        st.sampled_from([(1, (2, 3), (3, 4)), (2, (2, 3, 4), (3, 4)), (0, (2,), (3,)), (((0,), (1,)), (3, 2), (4, 3))])
    )
    return (lambda x, y: fnp.tensordot(x, y, axes)), [(s1, F64), (s2, _dtype(data, (F64, F32, I32)))]


def _fnp_outer(data):
    s1, s2 = _draw_shape(data, max_dims=2), _draw_shape(data, max_dims=2)
    return (lambda x, y: fnp.outer(x, y)), [(s1, _dtype(data)), (s2, _dtype(data))]


CASES = [
    Case("broadcast_in_dim", _broadcast_in_dim),
    Case("reshape", _reshape),
    Case("transpose", _transpose),
    Case("squeeze", _squeeze),
    Case("expand_dims", _expand_dims),
    Case("rev", _rev),
    Case("pad", _pad),
    Case("concatenate", _concatenate),
    Case("iota", _iota),
    Case("reduce_sum", _reduction(lax.reduce_sum)),
    Case("reduce_max", _reduction(lax.reduce_max, (F64, F32, I32, BOOL))),
    Case("reduce_min", _reduction(lax.reduce_min, (F64, F32, I32, BOOL))),
    Case("reduce_prod", _reduction(lax.reduce_prod)),
    Case("argmax", _index_reduction(lax.argmax)),
    Case("argmin", _index_reduction(lax.argmin)),
    Case("cumsum", _cumsum),
    Case("dot_general", _dot_general),
    Case("fnp.reshape", _fnp_reshape),
    Case("fnp.transpose", _fnp_transpose),
    Case("fnp.swapaxes", _fnp_swapaxes),
    Case("fnp.concatenate", _fnp_concatenate),
    Case("fnp.stack", _fnp_stack),
    Case("fnp.split", _fnp_split),
    Case("fnp.pad", _fnp_pad),
    Case("fnp.sum", _fnp_reduction(fnp.sum)),
    Case("fnp.mean", _fnp_reduction(fnp.mean, (F64, F32, I32), min_side=1)),
    Case("fnp.max", _fnp_reduction(fnp.max, min_side=1)),
    Case("fnp.var", _fnp_reduction(fnp.var, (F64, F32, I32), min_side=1)),
    Case("fnp.argmax", _fnp_reduction(fnp.argmax, min_side=1)),
    Case("fnp.cumsum", _fnp_cumsum),
    Case("fnp.matmul", _fnp_matmul),
    Case("fnp.einsum", _fnp_einsum),
    Case("fnp.tensordot", _fnp_tensordot),
    Case("fnp.outer", _fnp_outer),
]


def _needs_missing_rule(case: Case) -> bool:
    return case.name == "fnp.split" and slice_p not in batch_rules


@pytest.mark.parametrize("case", CASES, ids=repr)
@given(data=st.data())
def test_vmap_matches_a_loop(case, data):
    if _needs_missing_rule(case):
        pytest.skip("slice has no batch rule yet")
    fn, specs = case.build(data)
    axes = _in_axes(data, specs)
    size, out_axis = data.draw(st.integers(1, 4)), data.draw(st.sampled_from([0, -1]))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    args = _batched(rng, specs, axes, size)
    expected = vmap_loop(fn, axes, out_axis)(*args)
    vmapped = ft.vmap(fn, in_axes=axes, out_axes=out_axis)
    assert_same(vmapped(*args), expected)
    assert_same(ft.make_ir(vmapped)(*args).eval(*args), expected)
    assert_same(ft.jit(vmapped, backend="interpret")(*args), expected)
    # Vectorised, not unrolled: the IR is the same size for a bigger batch.
    bigger = _batched(rng, specs, axes, size + 5)
    assert _eqn_count(vmapped, args) == _eqn_count(vmapped, bigger)


NESTED = ["transpose", "expand_dims", "pad", "concatenate", "reduce_max", "argmin", "dot_general", "fnp.einsum"]


@pytest.mark.parametrize("case", [c for c in CASES if c.name in NESTED], ids=repr)
@given(data=st.data())
def test_nested_vmap_matches_a_double_loop(case, data):
    fn, specs = case.build(data)
    inner = _in_axes(data, specs)
    inner_specs = [
        (s if a is None else (*s[: a % (len(s) + 1)], 2, *s[a % (len(s) + 1) :]), d)
        for (s, d), a in zip(specs, inner, strict=True)
    ]
    outer = _in_axes(data, inner_specs)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    args = _batched(rng, inner_specs, outer, 3)
    expected = vmap_loop(vmap_loop(fn, inner), outer)(*args)
    assert_same(ft.vmap(ft.vmap(fn, in_axes=inner), in_axes=outer)(*args), expected)


def test_pad_with_a_mapped_padding_value():
    x = np.arange(6.0).reshape(2, 3)
    values = np.array([-1.0, -2.0, -3.0, -4.0])
    config = [(1, -1, 1), (-1, 2, 0)]
    f = lambda v: lax.pad(x, v, config)  # noqa: E731
    assert_same(ft.vmap(f)(values), np.stack([f(v) for v in values]))
    # Both mapped, on different axes; bool values too.
    xs = np.random.default_rng(1).random((3, 4, 2)) < 0.5
    vs = np.array([True, False, True, False])
    g = lambda x, v: lax.pad(x, v, [(2, 0, 1), (0, 1, 0)])  # noqa: E731
    assert_same(ft.vmap(g, in_axes=(1, 0))(xs, vs), np.stack([g(xs[:, i], vs[i]) for i in range(4)]))


def test_mapped_axes_stay_in_place_where_free():
    def names(f, *args, **kwargs):
        return [e.primitive.name for e in ft.make_ir(ft.vmap(f, **kwargs))(*args).eqns]

    x = np.zeros((3, 4, 5))
    assert names(lambda x: lax.reduce_sum(lax.transpose(x, (1, 0)), (0,)), x, in_axes=2, out_axes=1) == [
        "transpose",
        "reduce_sum",
    ]
    assert names(lambda w: np.ones(3) @ w, np.ones((3, 5, 2)), in_axes=1) == ["dot_general"]
    assert names(lambda x: lax.broadcast_in_dim(x, (2, 3, 4), (0, 2)), np.ones((2, 5, 4)), in_axes=1, out_axes=1) == [
        "broadcast_in_dim"
    ]
    assert names(lambda x: lax.expand_dims(lax.rev(x, (0,)), (0, 2)), x, in_axes=1, out_axes=2) == [
        "rev",
        "expand_dims",
    ]


# --- composition with differentiation --------------------------------------------------------

GRAD_CASES = [
    (
        "reshape_transpose",
        lambda x: fnp.sum(fnp.sin(fnp.reshape(fnp.swapaxes(x, 0, 1), -1)) * fnp.arange(6.0)),
        [(2, 3)],
    ),
    ("pad", lambda x, v: fnp.sum(lax.pad(x, v, [(1, -1, 1), (0, 2, 0)]) ** 2), [(2, 3), ()]),
    (
        "stack_concatenate",
        lambda x, y: fnp.sum(fnp.concatenate([fnp.stack([x, y * 2]), fnp.expand_dims(x, 0)]) ** 3),
        [(3,), (3,)],
    ),
    ("reductions", lambda x: fnp.sum(fnp.max(x, 1)) + fnp.var(x) + fnp.sum(lax.reduce_prod(x, (0,))), [(3, 2)]),
    ("cumsum_rev", lambda x: fnp.sum(lax.rev(fnp.cumsum(x, axis=1), (0,)) ** 2), [(2, 3)]),
    ("broadcast_squeeze", lambda x: fnp.sum(lax.squeeze(lax.broadcast_in_dim(x, (1, 3, 2), (1,)), (0,)) ** 2), [(3,)]),
    ("matmul", lambda w, x: fnp.sum(fnp.tanh(x @ w)), [(3, 2), (4, 3)]),
    ("einsum_tensordot", lambda a, b: fnp.einsum("ij,jk->", a, b) ** 2 + fnp.tensordot(a, a), [(2, 3), (3, 2)]),
]


@pytest.mark.parametrize(("name", "f", "shapes"), GRAD_CASES, ids=[c[0] for c in GRAD_CASES])
def test_per_example_gradients_and_gradient_of_vmap(name, f, shapes):
    rng = np.random.default_rng(len(name))
    argnums = tuple(range(len(shapes)))
    other = (None, *[-1] * (len(shapes) - 1)) if len(shapes) > 1 else (-1,)
    for axes in [(0,) * len(shapes), other]:
        args = _batched(rng, [(s, F64) for s in shapes], axes, 3)
        per_example = ft.vmap(ft.grad(f, argnums), in_axes=axes)(*args)
        assert_same(per_example, vmap_loop(ft.grad(f, argnums), axes)(*args))
        jitted = ft.jit(ft.vmap(ft.grad(f, argnums), in_axes=axes), backend="interpret")
        assert_same(jitted(*args), per_example)
    args = _batched(rng, [(s, F64) for s in shapes], (0,) * len(shapes), 3)
    total = lambda *a: fnp.sum(ft.vmap(f)(*a))  # noqa: E731
    assert_same(ft.grad(total, argnums)(*args), per_example_stack(f, argnums, args))


def per_example_stack(f: Callable, argnums: tuple, args: list) -> tuple:
    grads = [ft.grad(f, argnums)(*[a[i] for a in args]) for i in range(len(args[0]))]
    return tuple(np.stack(g) for g in zip(*grads, strict=True))


def test_jvp_of_vmap_of_dot_general():
    x, w, t = (np.random.default_rng(2).normal(size=s) for s in [(4, 3), (3, 2), (4, 3)])
    f = lambda x: fnp.tanh(x @ w).sum()  # noqa: E731
    _, out = ft.jvp(ft.vmap(f), (x,), (t,))
    assert_same(out, vmap_loop(lambda a, b: ft.jvp(f, (a,), (b,))[1], (0, 0))(x, t))


# --- errors ----------------------------------------------------------------------------------


def test_errors_under_vmap_name_the_operation():
    with pytest.raises(TypeError, match=r"matmul got incompatible shapes \(2, 4\) and \(5, 6\)"):
        ft.vmap(fnp.matmul)(np.ones((3, 2, 4)), np.ones((3, 5, 6)))
    with pytest.raises(TypeError, match="reshape cannot reshape"):
        ft.vmap(lambda x: lax.reshape(x, (5,)))(np.ones((3, 4)))
    with pytest.raises(TypeError, match=r"concatenate along dimension \d needs equal other dimensions"):
        ft.vmap(lambda x, y: lax.concatenate([x, y], 0))(np.ones((2, 3)), np.ones((2, 4, 1)))
    with pytest.raises(TypeError, match="pad: operand dtype float64 and padding value dtype float32 differ"):
        ft.vmap(lambda x: lax.pad(x, np.float32(0), [(1, 1, 0)]))(np.ones((2, 3)))
    with pytest.raises(TypeError, match="dot_general got incompatible shapes"):
        ft.vmap(lambda x: lax.dot_general(x, np.ones(4), (((0,), (0,)), ((), ()))))(np.ones((2, 3)))
    with pytest.raises(TypeError, match="reduce_sum: axes"):
        ft.vmap(lambda x: lax.reduce_sum(x, (0,)))(np.ones(3))
