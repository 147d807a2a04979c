"""Batch rules of the indexing primitives (slice, dynamic_slice, dynamic_update_slice,
gather and the scatters) and of fnp indexing under ``vmap``.

The reference is always a Python loop over the examples: the lax primitives run eagerly
(NumPy), the fnp forms through ``jit`` per example, so that their indices are traced
as they are under ``vmap`` (a traced index out of bounds clamps or drops; a concrete one
raises). Every combination of mapped and unmapped operand, indices and updates is a
test row; Hypothesis draws shapes, batch sizes, mapped axes and hostile (out-of-bounds)
per-example indices.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import assert_same

import functrace as ft
import functrace.numpy as fnp
from functrace import lax
from functrace.core.primitive import batch_rules
from functrace.lax import gather_scatter as gs
from functrace.lax import indexing as lx

GDN = lax.GatherDimensionNumbers
SDN = lax.ScatterDimensionNumbers
Example = Callable[[np.random.Generator], list]  # one example's arguments


class Spec(NamedTuple):
    """A row: ``make(data)`` draws the static configuration and returns the per-example
    function and a generator of one example's arguments; ``roles`` names each argument."""

    name: str
    roles: tuple[str, ...]
    make: Callable[[st.DataObject], tuple[Callable, Example]]
    traced_reference: bool = False  # loop over jit(f): indices traced per example


def _dims(data: st.DataObject, rank: int, low: int = 0, high: int = 3) -> tuple[int, ...]:
    return tuple(data.draw(st.integers(low, high)) for _ in range(rank))


def _values(rng: np.random.Generator, shape: tuple[int, ...], dtype: str = "float64") -> np.ndarray:
    # Small integers: sums, products and extrema are exact in every dtype.
    return rng.integers(-4, 5, size=shape).astype(dtype)


def _hostile(rng: np.random.Generator, n: int, shape: tuple[int, ...] = ()) -> np.ndarray:
    """Indices for an axis of size ``n``, often out of bounds on either side."""
    return rng.integers(-n - 3, n + 3, size=shape).astype(np.int64)


# --- lax primitives ------------------------------------------------------------------------


def _slice(data) -> tuple[Callable, Example]:
    shape = _dims(data, data.draw(st.integers(0, 3)))
    starts = [data.draw(st.integers(0, n)) for n in shape]
    limits = [data.draw(st.integers(s, n)) for s, n in zip(starts, shape, strict=True)]
    strides = [data.draw(st.integers(1, 3)) for _ in shape]
    return (lambda x: lax.slice(x, starts, limits, strides)), (lambda rng: [_values(rng, shape)])


def _dynamic_slice(data) -> tuple[Callable, Example]:
    shape = _dims(data, 2)
    sizes = [data.draw(st.integers(0, n)) for n in shape]
    dtypes = [data.draw(st.sampled_from(["int32", "int64", "uint32"])) for _ in shape]

    def example(rng):
        starts = [np.abs(_hostile(rng, n)).astype(d) if d == "uint32" else _hostile(rng, n).astype(d)
                  for n, d in zip(shape, dtypes, strict=True)]  # fmt: skip
        return [_values(rng, shape), *starts]

    return (lambda x, *s: lax.dynamic_slice(x, s, sizes)), example


def _dynamic_update_slice(data) -> tuple[Callable, Example]:
    shape = _dims(data, 2)
    sizes = tuple(data.draw(st.integers(0, n)) for n in shape)

    def example(rng):
        return [_values(rng, shape), _values(rng, sizes), *(_hostile(rng, n) for n in shape)]

    return (lambda x, u, *s: lax.dynamic_update_slice(x, u, s)), example


def _gather_config(data) -> tuple[tuple[int, ...], tuple[int, ...], GDN, tuple[int, ...], list[int]]:
    """Operand shape, indices shape, dimension numbers, slice sizes, and the size of the
    operand dimension each index vector component indexes."""
    config = data.draw(st.sampled_from(["rows", "windows", "batching"]))
    if config == "rows":
        n, m, k = data.draw(st.integers(1, 4)), data.draw(st.integers(0, 3)), data.draw(st.integers(0, 3))
        return (n, m), (k, 1), GDN((1,), (0,), (0,)), (1, m), [n]
    if config == "windows":  # two window dims between the two batch dims of the output
        shape = (data.draw(st.integers(1, 3)), *_dims(data, 2, 1, 3))
        k, j = data.draw(st.integers(1, 3)), data.draw(st.integers(0, 2))
        sizes = (1, data.draw(st.integers(0, shape[1])), data.draw(st.integers(0, shape[2])))
        return shape, (k, j, 2), GDN((1, 3), (0,), (0, 2)), sizes, [shape[0], shape[2]]
    a, n, k = data.draw(st.integers(0, 3)), data.draw(st.integers(1, 4)), data.draw(st.integers(0, 3))
    return (a, n), (a, k, 1), GDN((), (1,), (1,), (0,), (0,)), (min(1, a), 1), [n]


def _indices(rng: np.random.Generator, shape: tuple[int, ...], bounds: list[int]) -> np.ndarray:
    columns = [_hostile(rng, n, (*shape[:-1], 1)) for n in bounds]
    return np.concatenate(columns, axis=-1)


def _gather(data) -> tuple[Callable, Example]:
    operand, indices, dn, sizes, bounds = _gather_config(data)
    mode = data.draw(st.sampled_from(["clip", "fill"]))
    dtype = data.draw(st.sampled_from(["float32", "float64", "int32"]))

    def example(rng):
        return [_values(rng, operand, dtype), _indices(rng, indices, bounds)]

    return (lambda x, i: lax.gather(x, i, dn, sizes, mode=mode)), example


SCATTERS = [lax.scatter, lax.scatter_add, lax.scatter_mul, lax.scatter_min, lax.scatter_max]


def _scatter_config(data) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], SDN, list[int]]:
    """Operand, indices and updates shapes, dimension numbers, and the index bounds."""
    config = data.draw(st.sampled_from(["rows", "windows", "batching"]))
    if config == "rows":
        n, m, k = data.draw(st.integers(1, 4)), data.draw(st.integers(0, 3)), data.draw(st.integers(0, 3))
        return (n, m), (k, 1), (k, m), SDN((1,), (0,), (0,)), [n]
    if config == "windows":  # the update window dims on either side of the scatter dim
        shape = (data.draw(st.integers(1, 3)), *_dims(data, 2, 1, 3))
        k, w1, w2 = (
            data.draw(st.integers(0, 3)),
            data.draw(st.integers(0, shape[1])),
            data.draw(st.integers(0, shape[2])),
        )
        return shape, (k, 2), (w1, k, w2), SDN((0, 2), (0,), (0, 2)), [shape[0], shape[2]]
    a, n, k = data.draw(st.integers(0, 3)), data.draw(st.integers(1, 4)), data.draw(st.integers(0, 3))
    return (a, n), (a, k, 1), (a, k), SDN((), (1,), (1,), (0,), (0,)), [n]


def _scatter(data) -> tuple[Callable, Example]:
    operand, indices, updates, dn, bounds = _scatter_config(data)
    scatter = data.draw(st.sampled_from(SCATTERS))
    mode = data.draw(st.sampled_from(["clip", "drop"]))
    dtype = data.draw(st.sampled_from(["float64", "int32"]))

    def example(rng):
        return [_values(rng, operand, dtype), _indices(rng, indices, bounds), _values(rng, updates, dtype)]

    return (lambda x, i, u: scatter(x, i, u, dn, mode=mode)), example


# --- fnp indexing ----------------------------------------------------------------------------


def _getitem_int(data) -> tuple[Callable, Example]:
    """``x[i]`` and ``x[1:, i]`` with a traced integer: dynamic_slice."""
    shape = (data.draw(st.integers(1, 4)), *_dims(data, data.draw(st.integers(0, 2)), 1, 3))
    form = data.draw(st.sampled_from(["x[i]", "x[1:, i]", "x[i, ::-1]"]))
    forms = {"x[i]": lambda x, i: x[i], "x[1:, i]": lambda x, i: x[1:, i], "x[i, ::-1]": lambda x, i: x[i, ::-1]}
    if form != "x[i]" and len(shape) < 2:
        shape = (*shape, 2)
    n = shape[1] if form == "x[1:, i]" else shape[0]
    return forms[form], (lambda rng: [_values(rng, shape), _hostile(rng, n)])


def _getitem_array(data) -> tuple[Callable, Example]:
    """Integer-array indexing: ``x[idx]``, ``x[:, idx]``, ``x[idx, :, jdx]`` (a gather)."""
    n0, n1, n2 = _dims(data, 3, 1, 3)
    k = data.draw(st.integers(0, 3))
    form = data.draw(st.sampled_from(["x[idx]", "x[:, idx]", "x[idx, :, jdx]"]))
    forms = {
        "x[idx]": lambda x, i, j: x[i],
        "x[:, idx]": lambda x, i, j: x[:, j],
        "x[idx, :, jdx]": lambda x, i, j: x[i, :, j],
    }
    return forms[form], (lambda rng: [_values(rng, (n0, n1, n2)), _hostile(rng, n0, (k,)), _hostile(rng, n1, (k,))])


def _at_update(data) -> tuple[Callable, Example]:
    """``x.at[idx].op(v)`` for every op, with an index array or a traced integer."""
    n, m = data.draw(st.integers(1, 4)), data.draw(st.integers(0, 3))
    op = data.draw(st.sampled_from(["set", "add", "multiply", "min", "max"]))
    scalar_index = data.draw(st.booleans())
    k = data.draw(st.integers(0, 3))
    index_shape, update_shape = ((), (m,)) if scalar_index else ((k,), (k, m))

    def fn(x, i, v):
        return getattr(fnp.at(x)[i], op)(v)

    return fn, (lambda rng: [_values(rng, (n, m)), _hostile(rng, n, index_shape), _values(rng, update_shape)])


def _at_box(data) -> tuple[Callable, Example]:
    """``x.at[1:3, 0].set(v)``: static indices, a dynamic_update_slice."""
    n, m = data.draw(st.integers(3, 4)), data.draw(st.integers(1, 3))
    return (lambda x, v: fnp.at(x)[1:3, 0].set(v)), (lambda rng: [_values(rng, (n, m)), _values(rng, (2,))])


def _take(data) -> tuple[Callable, Example]:
    shape = _dims(data, 2, 1, 3)
    axis = data.draw(st.sampled_from([0, 1, -1, None]))
    mode = data.draw(st.sampled_from([None, "wrap", "clip", "fill"]))
    n = int(np.prod(shape)) if axis is None else shape[axis]
    k = data.draw(st.integers(0, 3))

    def example(rng):
        return [_values(rng, shape), _hostile(rng, n, (k,))]

    return (lambda a, i: fnp.take(a, i, axis=axis, mode=mode)), example


def _along_axis(data) -> tuple[Callable, Example]:
    """take_along_axis and put_along_axis (a gather / scatter with batching dims)."""
    shape = _dims(data, 2, 1, 3)
    axis = data.draw(st.sampled_from([0, 1]))
    k = data.draw(st.integers(0, 3))
    index_shape = tuple(k if d == axis else n for d, n in enumerate(shape))
    if data.draw(st.booleans()):
        return (lambda a, i: fnp.take_along_axis(a, i, axis)), (
            lambda rng: [_values(rng, shape), _hostile(rng, shape[axis], index_shape)]
        )

    def example(rng):
        return [_values(rng, shape), _hostile(rng, shape[axis], index_shape), _values(rng, index_shape)]

    return (lambda a, i, v: fnp.put_along_axis(a, i, v, axis)), example


SPECS = [
    Spec("slice", ("operand",), _slice),
    Spec("dynamic_slice", ("operand", "indices", "indices"), _dynamic_slice),
    Spec("dynamic_update_slice", ("operand", "updates", "indices", "indices"), _dynamic_update_slice),
    Spec("gather", ("operand", "indices"), _gather),
    Spec("scatter", ("operand", "indices", "updates"), _scatter),
    Spec("x[i]", ("operand", "indices"), _getitem_int, traced_reference=True),
    Spec("x[idx]", ("operand", "indices", "indices"), _getitem_array, traced_reference=True),
    Spec("x.at[i].op", ("operand", "indices", "updates"), _at_update, traced_reference=True),
    Spec("x.at[box].set", ("operand", "updates"), _at_box, traced_reference=True),
    Spec("take", ("operand", "indices"), _take, traced_reference=True),
    Spec("along_axis", ("operand", "indices", "updates"), _along_axis, traced_reference=True),
]


def _patterns(roles: tuple[str, ...]) -> list[frozenset[str]]:
    """Every non-empty set of mapped roles."""
    unique = sorted(set(roles))
    return [frozenset(c) for r in range(1, len(unique) + 1) for c in itertools.combinations(unique, r)]


ROWS = [
    pytest.param(spec, pattern, id=f"{spec.name}-{'+'.join(sorted(pattern))}")
    for spec in SPECS
    for pattern in _patterns(spec.roles)
]


def _mapped(data, roles: tuple[str, ...], pattern: frozenset[str], arity: int) -> list[bool]:
    """Which arguments are mapped: every argument of a mapped role, except that of several
    start indices some may stay shared (at least one is mapped)."""
    mapped = [role in pattern for role in roles[:arity]]
    starts = [p for p, role in enumerate(roles[:arity]) if role == "indices" and role in pattern]
    if len(starts) > 1:
        chosen = data.draw(st.lists(st.sampled_from(starts), min_size=1, unique=True))
        mapped = [m and (p not in starts or p in chosen) for p, m in enumerate(mapped)]
    return mapped


def _axis(data, ndim: int) -> int:
    """A mapped axis for an example of rank ``ndim``: first, last, second, negative."""
    return data.draw(st.sampled_from(sorted({0, ndim, min(1, ndim), -1})))


def _batch(data, example: Example, mapped: list[bool]) -> tuple[list[list], tuple, list]:
    """Per-example arguments (the unmapped ones shared), in_axes and the batched arguments."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    size = data.draw(st.integers(1, 4))
    first = example(rng)
    examples = [first] + [[a if m else s for a, m, s in zip(example(rng), mapped, first, strict=True)]
                          for _ in range(size - 1)]  # fmt: skip
    axes = tuple(_axis(data, np.ndim(a)) if m else None for a, m in zip(first, mapped, strict=True))
    batched = [
        a if ax is None else np.stack([ex[p] for ex in examples], axis=ax)
        for p, (a, ax) in enumerate(zip(first, axes, strict=True))
    ]
    return examples, axes, batched


def check_vmap(fn: Callable, examples: list[list], axes: tuple, batched: list, reference: Callable, out_axis=0) -> None:
    """``vmap(fn)`` eagerly, staged and jitted equals the loop of ``reference`` over the examples."""
    expected = np.stack([np.asarray(reference(*ex)) for ex in examples], axis=out_axis)
    vf = ft.vmap(fn, in_axes=axes, out_axes=out_axis)
    assert_same(vf(*batched), expected)
    assert_same(ft.make_ir(vf)(*batched).eval(*batched), expected)
    assert_same(ft.jit(vf, backend="interpret")(*batched), expected)


@pytest.mark.parametrize(("spec", "pattern"), ROWS)
@settings(max_examples=15)
@given(data=st.data())
def test_vmap_matches_loop(spec: Spec, pattern: frozenset[str], data) -> None:
    fn, example = spec.make(data)
    arity = len(example(np.random.default_rng(0)))
    mapped = _mapped(data, spec.roles, pattern, arity)
    if not any(mapped):  # this form has no argument of the role (put_along_axis updates...)
        return
    examples, axes, batched = _batch(data, example, mapped)
    reference = ft.jit(fn, backend="interpret") if spec.traced_reference else fn
    out_axis = data.draw(st.sampled_from([0, -1]))
    check_vmap(fn, examples, axes, batched, reference, out_axis)


# --- nested vmap -------------------------------------------------------------------------------


NESTED = [  # (name, f, inner in_axes, outer in_axes, shape of one example's index, its bound)
    ("x[i]", lambda x, i: x[i], (0, None), (None, 0), (), 3),
    ("x[i] both", lambda x, i: x[i], (1, 0), (0, 0), (), 3),
    ("take", lambda x, i: fnp.take(x, i, axis=1), (None, 0), (1, 0), (2,), 4),
    ("at.add", lambda x, i: fnp.at(x)[i].add(1.0), (0, None), (None, 0), (2,), 3),
    ("dynamic_slice", lambda x, i: lax.dynamic_slice_in_dim(x, i, 2, axis=1), (1, 0), (0, None), (), 4),
]


def _nested_arg(base: np.ndarray, inner: int | None, outer: int | None) -> tuple[Callable, np.ndarray]:
    """From ``base[a, b]`` (outer example a, inner example b): the value each example sees
    and the argument to pass (mapped by the inner / outer vmap where their axes say so)."""

    def example(a: int, b: int) -> np.ndarray:
        return base[a if outer is not None else 0, b if inner is not None else 0]

    def level(a: int) -> np.ndarray:
        return example(a, 0) if inner is None else np.stack([example(a, b) for b in range(3)], axis=inner)

    return example, level(0) if outer is None else np.stack([level(a) for a in range(2)], axis=outer)


@pytest.mark.parametrize(
    ("fn", "inner", "outer", "index_shape", "n"), [pytest.param(*row[1:], id=row[0]) for row in NESTED]
)
def test_nested_vmap(fn: Callable, inner: tuple, outer: tuple, index_shape: tuple, n: int) -> None:
    """vmap(vmap(f)) over two batch axes equals the double loop."""
    rng = np.random.default_rng(1)
    x_of, x = _nested_arg(_values(rng, (2, 3, 3, 4)), inner[0], outer[0])
    i_of, i = _nested_arg(_hostile(rng, n, (2, 3, *index_shape)), inner[1], outer[1])
    traced = ft.jit(fn, backend="interpret")
    expected = np.stack([np.stack([traced(x_of(a, b), i_of(a, b)) for b in range(3)]) for a in range(2)])
    vv = ft.vmap(ft.vmap(fn, in_axes=inner), in_axes=outer)
    assert_same(vv(x, i), expected)
    assert_same(ft.jit(vv, backend="interpret")(x, i), expected)


# --- hostile indices against NumPy written out ---------------------------------------------------


def _normalized(i: np.ndarray, n: int) -> np.ndarray:
    return np.where(i < 0, i + n, i)


def test_traced_int_index_clamps_per_example() -> None:
    x = np.arange(15.0).reshape(5, 3)
    i = np.array([-9, -1, 0, 2, 9])
    rows = np.clip(_normalized(i, 3), 0, 2)
    expected = x[np.arange(5), rows]
    assert_same(ft.vmap(lambda r, j: r[j])(x, i), expected)
    assert_same(ft.vmap(lambda j: fnp.take(x[0], j))(i), x[0, rows])


def test_dynamic_slice_and_update_clamp_per_example() -> None:
    x = np.arange(20.0).reshape(4, 5)
    starts = np.array([-3, 1, 4, 10])
    clamped = np.clip(starts, 0, 3)
    expected = np.stack([x[b, s : s + 2] for b, s in enumerate(clamped)])
    assert_same(ft.vmap(lambda r, s: lax.dynamic_slice(r, (s,), (2,)))(x, starts), expected)
    updated = x.copy()
    for b, s in enumerate(clamped):
        updated[b, s : s + 2] = -1.0
    dus = ft.vmap(lambda r, s: lax.dynamic_update_slice(r, -np.ones(2), (s,)))
    assert_same(dus(x, starts), updated)


def test_at_set_drops_out_of_bounds_per_example() -> None:
    x = np.zeros((4, 3))
    i = np.array([-4, -1, 3, 1])  # -4 and 3 are out of bounds for size 3
    expected = x.copy()
    for b, j in enumerate(i):
        if -3 <= j < 3:
            expected[b, j] = 7.0
    assert_same(ft.vmap(lambda r, j: fnp.at(r)[j].set(7.0))(x, i), expected)


def test_gather_fill_per_example() -> None:
    x = np.arange(6.0).reshape(2, 3)
    i = np.array([[[1], [3]], [[-1], [0]]])  # example 0 reads 1 and (out of bounds) 3
    dn = GDN((), (0,), (0,))
    out = ft.vmap(lambda r, j: lax.gather(r, j, dn, (1,), mode="fill"))(x, i)
    assert_same(out, np.array([[1.0, np.nan], [np.nan, 3.0]]))


# --- per-example gradients ------------------------------------------------------------------------

GRADS = [  # (name, loss, in_axes, shape of one example's indices and their axis size)
    ("x[i]", lambda x, i: fnp.sum(x[i] ** 2), (0, 0), (), 4),
    ("x[i] shared x", lambda x, i: fnp.sum(x[i] ** 2), (None, 0), (), 4),
    ("take", lambda x, i: fnp.sum(fnp.take(x, i, axis=1) * fnp.arange(3.0)), (0, None), (3,), 3),
    ("at.add", lambda x, i: fnp.sum(fnp.at(x)[i].add(x[0]) ** 2), (0, 0), (), 4),
    ("at.set", lambda x, i: fnp.sum(fnp.at(x)[i].set(2.0 * x[1]) ** 3), (0, 0), (2,), 4),
    ("dynamic_slice", lambda x, i: fnp.sum(lax.dynamic_slice_in_dim(x, i, 2, axis=1) ** 2), (1, 0), (), 3),
    ("take_along_axis", lambda x, i: fnp.sum(fnp.take_along_axis(x, i, axis=1) ** 2), (0, 0), (4, 2), 3),
]


@pytest.mark.parametrize(("fn", "in_axes", "index_shape", "n"), [pytest.param(*row[1:], id=row[0]) for row in GRADS])
def test_per_example_gradients(fn: Callable, in_axes: tuple, index_shape: tuple, n: int) -> None:
    """vmap(grad(f)) and grad of the sum of vmap(f) equal the loop of grad(f)."""
    rng = np.random.default_rng(2)
    size = 3
    xs = rng.normal(size=(size, 4, 3))
    x_examples = [xs[0]] * size if in_axes[0] is None else list(xs)
    i_examples = [_hostile(rng, n, index_shape) for _ in range(size)]
    i_examples = [i_examples[0]] * size if in_axes[1] is None else i_examples
    batched_x = xs[0] if in_axes[0] is None else np.stack(x_examples, axis=in_axes[0])
    batched_i = i_examples[0] if in_axes[1] is None else np.stack(i_examples, axis=in_axes[1])
    per_example = ft.jit(ft.grad(fn), backend="interpret")
    expected = np.stack([per_example(x, i) for x, i in zip(x_examples, i_examples, strict=True)])
    assert_same(ft.vmap(ft.grad(fn), in_axes=in_axes)(batched_x, batched_i), expected, rtol=1e-10, atol=1e-10)
    if in_axes[0] is not None:
        total = ft.grad(lambda x: fnp.sum(ft.vmap(fn, in_axes=in_axes)(x, batched_i)))(batched_x)
        assert_same(total, np.moveaxis(expected, 0, in_axes[0]), rtol=1e-10, atol=1e-10)


# --- vectorised: the IR does not grow with the batch -------------------------------------------------

SIZES = [
    ("x[i]", lambda x, i: x[i], ((4, 3), ()), (0, 0)),
    ("x[idx, :, jdx]", lambda x, i: x[i, :, i], ((3, 2, 3), (2,)), (0, 0)),
    ("at.set", lambda x, i: fnp.at(x)[i].set(1.0), ((4, 3), (2,)), (None, 0)),
    ("at.max", lambda x, i: fnp.at(x)[i].max(x[0]), ((4, 3), ()), (0, 0)),
    ("take_along_axis", lambda x, i: fnp.take_along_axis(x, i, 0), ((4, 3), (2, 3)), (1, 0)),
    ("dynamic_update_slice", lambda x, i: lax.dynamic_update_slice(x, x[:2], (i, i)), ((4, 3), ()), (0, 0)),
    ("grad x[i]", ft.grad(lambda x, i: fnp.sum(x[i] ** 2)), ((4, 3), ()), (0, 0)),
]


@pytest.mark.parametrize(("fn", "shapes", "in_axes"), [pytest.param(*row[1:], id=row[0]) for row in SIZES])
def test_equation_count_independent_of_batch_size(fn: Callable, shapes: tuple, in_axes: tuple) -> None:
    def count(size: int) -> int:
        args = [
            (np.zeros(s) if p == 0 else np.zeros(s, np.int64))
            if ax is None
            else np.moveaxis(np.zeros((size, *s), np.float64 if p == 0 else np.int64), 0, ax)
            for p, (s, ax) in enumerate(zip(shapes, in_axes, strict=True))
        ]
        return len(ft.make_ir(ft.vmap(fn, in_axes=in_axes))(*args).eqns)

    assert count(2) == count(7)


def _primitives(fn: Callable, *args: Any, in_axes: Any = 0) -> list[str]:
    """The primitives of vmap(fn) with the mapped axis of the result left where the rules put it."""
    out_axes = 1 if in_axes == 1 or in_axes[0] == 1 else 0
    vf = ft.vmap(fn, in_axes=in_axes, out_axes=out_axes)
    return [eqn.primitive.name for eqn in ft.make_ir(vf)(*args).eqns]


def test_cheap_forms_stay_cheap() -> None:
    """Shared starts keep dynamic_slice (no gather); a mapped axis stays where it is
    (no transpose); per-example starts become exactly one gather / scatter."""
    x = np.zeros((4, 5, 3))
    assert _primitives(lambda r: lax.slice(r, (1, 0), (3, 2)), x, in_axes=1) == ["slice"]
    shared = _primitives(lambda r: lax.dynamic_slice(r, (np.int64(1), np.int64(9)), (2, 1)), x, in_axes=1)
    assert shared == ["dynamic_slice"]
    starts = np.arange(5)
    per_example = _primitives(lambda r, s: lax.dynamic_slice(r, (s, np.int64(0)), (2, 1)), x, starts, in_axes=(1, 0))
    assert per_example.count("gather") == 1 and "transpose" not in per_example
    update = _primitives(lambda r, s: lax.dynamic_update_slice(r, r[:2], (s, s)), x, starts, in_axes=(1, 0))
    assert update.count("scatter") == 1 and "transpose" not in update


def test_registered() -> None:
    prims = [lx.slice_p, lx.dynamic_slice_p, lx.dynamic_update_slice_p, gs.gather_p, gs.scatter_p]
    prims += [gs.scatter_add_p, gs.scatter_mul_p, gs.scatter_min_p, gs.scatter_max_p]
    assert all(p in batch_rules for p in prims)


def test_traced_mask_under_vmap_is_an_error() -> None:
    with pytest.raises(IndexError, match="traced mask"):
        ft.vmap(lambda r, m: r[m])(np.zeros((2, 3)), np.ones((2, 3), bool))


def test_empty_batch() -> None:
    """A batch of no examples: a batching dimension of size 0 has a window of 0."""
    x, i = np.zeros((0, 3)), np.zeros(0, np.int64)
    assert_same(ft.vmap(lambda r, j: r[j])(x, i), np.zeros(0))
    assert_same(ft.vmap(lambda r, j: fnp.at(r)[j].add(1.0))(x, i), x)
    assert_same(ft.vmap(lambda r, j: lax.dynamic_update_slice(r, r[:1], (j,)))(x, i), x)


def test_batching_dimension_window_errors() -> None:
    dn = GDN((), (1,), (1,), (0,), (0,))
    with pytest.raises(TypeError, match=r"gather: window size 2 is invalid for dimension 0 of operand \(2, 3\)"):
        lax.gather(np.zeros((2, 3)), np.zeros((2, 1, 1), np.int64), dn, (2, 1))
    with pytest.raises(TypeError, match=r"window size 1 is invalid for dimension 0 of operand \(0, 3\)"):
        lax.gather(np.zeros((0, 3)), np.zeros((0, 1, 1), np.int64), dn, (1, 1))
