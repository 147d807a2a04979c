"""Shape primitives (``lax``) and shape functions (``fnp``) against NumPy.

Each table row draws its own arguments from Hypothesis (shapes with size-0 and
size-1 dimensions, every supported dtype) and returns ``(fn, reference, args)``;
``check_against_numpy`` runs ``fn`` eagerly, through ``make_ir(...).eval`` and
through ``jit(backend="interpret")``.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from reference import check_against_numpy

import functrace as ft
import functrace.numpy as fnp
from functrace import lax
from functrace.testing import strategies as fts

SHAPES = fts.shapes(max_dims=3, max_side=3)


ALL_DTYPES = fts.dtypes()


def _array(data, shape=SHAPES, dtypes=ALL_DTYPES):
    return data.draw(fts.arrays(dtypes, shape))


def _axis(data, ndim: int) -> int:
    return data.draw(st.integers(-ndim, ndim - 1))


def _some_axes(data, ndim: int) -> tuple[int, ...]:
    return tuple(data.draw(st.sets(st.integers(0, ndim - 1), max_size=ndim))) if ndim else ()


# --- lax primitives -------------------------------------------------------------------


def _pad_reference(x, padding_value, config):
    """XLA pad, element by element: input index i lands at lo + i * (interior + 1)."""
    out_shape = [lo + hi + n + max(n - 1, 0) * interior for n, (lo, hi, interior) in zip(x.shape, config, strict=True)]
    out = np.full(out_shape, padding_value, x.dtype)
    for index in np.ndindex(*x.shape):
        target = tuple(lo + i * (interior + 1) for i, (lo, _, interior) in zip(index, config, strict=True))
        if all(0 <= t < n for t, n in zip(target, out_shape, strict=True)):
            out[target] = x[index]
    return out


def lax_squeeze(data):
    shape = data.draw(SHAPES)
    dims = tuple(i for i, d in enumerate(shape) if d == 1 and data.draw(st.booleans()))
    return (lambda x: lax.squeeze(x, dims)), (lambda x: np.squeeze(x, dims)), [_array(data, shape)]


def lax_expand_dims(data):
    x = _array(data)
    count = data.draw(st.integers(0, 2))
    dims = tuple(data.draw(st.permutations(range(x.ndim + count)))[:count])
    return (lambda x: lax.expand_dims(x, dims)), (lambda x: np.expand_dims(x, dims)), [x]


def lax_rev(data):
    x = _array(data)
    dims = _some_axes(data, x.ndim)
    return (
        (lambda x: lax.rev(x, dims)),
        (lambda x: x[tuple(slice(None, None, -1 if i in dims else 1) for i in range(x.ndim))]),
        [x],
    )


def lax_pad(data):
    x = _array(data)
    config = tuple(
        (data.draw(st.integers(-2, 2)), data.draw(st.integers(-2, 2)), data.draw(st.integers(0, 2))) for _ in x.shape
    )
    config = tuple(
        (lo, hi, interior) if lo + hi + n + max(n - 1, 0) * interior >= 0 else (0, 0, interior)
        for (lo, hi, interior), n in zip(config, x.shape, strict=True)
    )
    value = np.asarray(data.draw(fts.arrays(x.dtype, ())))
    return (lambda x, v: lax.pad(x, v, config)), (lambda x, v: _pad_reference(x, v, config)), [x, value]


def lax_concatenate(data):
    shape = data.draw(fts.shapes(min_dims=1, max_dims=3, max_side=3))
    dim = data.draw(st.integers(0, len(shape) - 1))
    dtype = data.draw(fts.dtypes())
    sizes = data.draw(st.lists(st.integers(0, 3), min_size=1, max_size=3))
    xs = [_array(data, (*shape[:dim], n, *shape[dim + 1 :]), dtype) for n in sizes]
    return (lambda *xs: lax.concatenate(xs, dim)), (lambda *xs: np.concatenate(xs, dim)), xs


def lax_broadcasted_iota(data):
    shape = data.draw(fts.shapes(min_dims=1, max_dims=3, max_side=3))
    dim = data.draw(st.integers(0, len(shape) - 1))
    dtype = data.draw(fts.dtypes("fiu"))
    return (lambda: lax.broadcasted_iota(dtype, shape, dim)), (lambda: np.indices(shape)[dim].astype(dtype)), []


def lax_iota(data):
    n, dtype = data.draw(st.integers(0, 5)), data.draw(fts.dtypes("fiu"))
    return (lambda: lax.iota(dtype, n)), (lambda: np.array(list(range(n)), dtype)), []


LAX_CASES = [lax_squeeze, lax_expand_dims, lax_rev, lax_pad, lax_concatenate, lax_broadcasted_iota, lax_iota]


@pytest.mark.parametrize("case", LAX_CASES, ids=lambda c: c.__name__)
@given(data=st.data())
def test_lax_matches_numpy(case, data):
    fn, reference, args = case(data)
    check_against_numpy(fn, reference, *args)


# --- fnp functions --------------------------------------------------------------------


def fnp_reshape(data):
    x = _array(data)
    shape = data.draw(st.sampled_from([(-1,), (x.size,), (1, -1), (*x.shape, 1)]))
    return (lambda x: fnp.reshape(x, shape)), (lambda x: np.reshape(x, shape)), [x]


def fnp_transpose(data):
    x = _array(data)
    axes = data.draw(st.permutations(range(x.ndim))) if data.draw(st.booleans()) else None
    axes = None if axes is None else tuple(a - x.ndim if data.draw(st.booleans()) else a for a in axes)
    return (lambda x: fnp.transpose(x, axes)), (lambda x: np.transpose(x, axes)), [x]


def fnp_swapaxes(data):
    x = _array(data, fts.shapes(min_dims=1))
    i, j = _axis(data, x.ndim), _axis(data, x.ndim)
    return (lambda x: fnp.swapaxes(x, i, j)), (lambda x: np.swapaxes(x, i, j)), [x]


def fnp_moveaxis(data):
    x = _array(data, fts.shapes(min_dims=1))
    src = data.draw(st.permutations(range(x.ndim)))[: data.draw(st.integers(1, x.ndim))]
    dst = data.draw(st.permutations(range(x.ndim)))[: len(src)]
    if len(src) == 1 and data.draw(st.booleans()):
        src, dst = src[0], dst[0] - x.ndim
    return (lambda x: fnp.moveaxis(x, src, dst)), (lambda x: np.moveaxis(x, src, dst)), [x]


def fnp_squeeze(data):
    x = _array(data)
    ones = [i for i, d in enumerate(x.shape) if d == 1]
    axis = data.draw(st.sampled_from([None, tuple(ones)] + [i - x.ndim for i in ones]))
    return (lambda x: fnp.squeeze(x, axis)), (lambda x: np.squeeze(x, axis)), [x]


def fnp_expand_dims(data):
    x = _array(data)
    axis = data.draw(st.one_of(st.integers(-x.ndim - 1, x.ndim), st.just((0, -1))))
    return (lambda x: fnp.expand_dims(x, axis)), (lambda x: np.expand_dims(x, axis)), [x]


def fnp_broadcast_to(data):
    shape, target = data.draw(fts.broadcastable_shapes(2))
    target = np.broadcast_shapes(shape, target)
    return (lambda x: fnp.broadcast_to(x, target)), (lambda x: np.broadcast_to(x, target)), [_array(data, shape)]


def fnp_broadcast_arrays(data):
    shapes = data.draw(fts.broadcastable_shapes(3))
    xs = [_array(data, s) for s in shapes]
    return (lambda *xs: fnp.broadcast_arrays(*xs)), (lambda *xs: np.broadcast_arrays(*xs)), xs


def _joinable(data, min_dims=1):
    """Arrays of mixed dtypes whose shapes differ only at one axis."""
    shape = data.draw(fts.shapes(min_dims=min_dims, max_dims=3, max_side=3))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1)) if shape else 0
    sizes = data.draw(st.lists(st.integers(0, 3), min_size=1, max_size=3))
    at = axis % len(shape) if shape else 0
    return [_array(data, (*shape[:at], n, *shape[at + 1 :])) for n in sizes], axis


def fnp_concatenate(data):
    xs, axis = _joinable(data)
    return (lambda *xs: fnp.concatenate(xs, axis)), (lambda *xs: np.concatenate(xs, axis)), xs


def fnp_concatenate_flat(data):
    xs = [_array(data) for _ in range(data.draw(st.integers(1, 3)))]
    return (lambda *xs: fnp.concatenate(xs, axis=None)), (lambda *xs: np.concatenate(xs, axis=None)), xs


def fnp_stack(data):
    shape = data.draw(SHAPES)
    xs = [_array(data, shape) for _ in range(data.draw(st.integers(1, 3)))]
    axis = _axis(data, len(shape) + 1)
    return (lambda *xs: fnp.stack(xs, axis)), (lambda *xs: np.stack(xs, axis)), xs


def fnp_hstack(data):
    shape = data.draw(fts.shapes(max_dims=3, max_side=3))
    xs = [_array(data, (*shape[:1], n, *shape[2:]) if len(shape) > 1 else shape) for n in (1, 2)]
    return (lambda *xs: fnp.hstack(xs)), (lambda *xs: np.hstack(xs)), xs


def fnp_vstack(data):
    shape = data.draw(fts.shapes(max_dims=3, max_side=3))
    xs = [_array(data, shape if len(shape) < 2 else (n, *shape[1:])) for n in (1, 2)]
    return (lambda *xs: fnp.vstack(xs)), (lambda *xs: np.vstack(xs)), xs


def fnp_split(data):
    x = _array(data, fts.shapes(min_dims=1, max_side=4))
    axis = _axis(data, x.ndim)
    n = x.shape[axis]
    sections = data.draw(st.sampled_from([d for d in range(1, 5) if n % d == 0] or [1]))
    indices = data.draw(st.lists(st.integers(-5, 5), max_size=3))
    how = data.draw(st.sampled_from([sections, indices]))
    return (lambda x: fnp.split(x, how, axis)), (lambda x: np.split(x, how, axis)), [x]


def fnp_array_split(data):
    x = _array(data, fts.shapes(min_dims=1, max_side=4))
    sections = data.draw(st.integers(1, 4))
    return (lambda x: fnp.array_split(x, sections)), (lambda x: np.array_split(x, sections)), [x]


def fnp_tile(data):
    x = _array(data)
    reps = data.draw(st.one_of(st.integers(0, 3), st.lists(st.integers(0, 3), max_size=4).map(tuple)))
    return (lambda x: fnp.tile(x, reps)), (lambda x: np.tile(x, reps)), [x]


def fnp_repeat(data):
    x = _array(data)
    axis = _axis(data, x.ndim) if x.ndim and data.draw(st.booleans()) else None
    n = x.size if axis is None else x.shape[axis]
    repeats = data.draw(st.one_of(st.integers(0, 3), st.lists(st.integers(0, 3), min_size=n, max_size=n)))
    return (lambda x: fnp.repeat(x, repeats, axis)), (lambda x: np.repeat(x, repeats, axis)), [x]


def fnp_flip(data):
    x = _array(data)
    axis = data.draw(st.sampled_from([None, *range(-x.ndim, x.ndim), tuple(_some_axes(data, x.ndim))]))
    return (lambda x: fnp.flip(x, axis)), (lambda x: np.flip(x, axis)), [x]


def fnp_pad_constant(data):
    x = _array(data)
    width = data.draw(st.sampled_from([1, (0, 2), tuple((i % 3, 1) for i in range(x.ndim))]))
    values = data.draw(st.sampled_from([0, 3, (1, 2), tuple((i, i + 5) for i in range(x.ndim))]))
    if x.ndim == 0:
        width, values = 1, 3
    return (
        (lambda x: fnp.pad(x, width, constant_values=values)),
        (lambda x: np.pad(x, width, constant_values=values)),
        [x],
    )


def fnp_pad_modes(data):
    shape = data.draw(fts.shapes(min_dims=1, max_dims=3, min_side=1, max_side=3))
    x = _array(data, shape)
    mode = data.draw(st.sampled_from(["edge", "reflect", "symmetric", "wrap"]))
    width = tuple((data.draw(st.integers(0, 7)), data.draw(st.integers(0, 7))) for _ in shape)
    return (lambda x: fnp.pad(x, width, mode)), (lambda x: np.pad(x, width, mode)), [x]


def fnp_atleast(data):
    xs = [_array(data, fts.shapes(max_dims=3, max_side=2)) for _ in range(data.draw(st.integers(1, 2)))]
    name = data.draw(st.sampled_from(["atleast_1d", "atleast_2d", "atleast_3d"]))
    return (lambda *xs: getattr(fnp, name)(*xs)), (lambda *xs: getattr(np, name)(*xs)), xs


def fnp_ravel(data):
    return fnp.ravel, np.ravel, [_array(data)]


FNP_CASES = [
    fnp_reshape, fnp_ravel, fnp_transpose, fnp_swapaxes, fnp_moveaxis, fnp_squeeze, fnp_expand_dims,
    fnp_broadcast_to, fnp_broadcast_arrays, fnp_concatenate, fnp_concatenate_flat, fnp_stack, fnp_hstack,
    fnp_vstack, fnp_split, fnp_array_split, fnp_tile, fnp_repeat, fnp_flip, fnp_pad_constant, fnp_pad_modes,
    fnp_atleast,
]  # fmt: skip


@pytest.mark.parametrize("case", FNP_CASES, ids=lambda c: c.__name__)
@given(data=st.data())
def test_fnp_matches_numpy(case, data):
    fn, reference, args = case(data)
    check_against_numpy(fn, reference, *args)


def test_static_queries_on_traced_values():
    def f(x):
        assert fnp.shape(x) == (2, 3) and fnp.ndim(x) == 2 and fnp.size(x) == 6 and fnp.size(x, -1) == 3
        return x

    ft.make_ir(f)(np.zeros((2, 3)))
    assert fnp.shape([[1, 2, 3]]) == (1, 3) and fnp.ndim(1.0) == 0 and fnp.size([1, 2]) == 2


def test_lists_and_scalars_are_accepted():
    assert fnp.concatenate([[1, 2], np.array([3.0])]).tolist() == [1.0, 2.0, 3.0]
    assert fnp.stack([1.0, 2.0]).dtype == np.float64
    np.testing.assert_array_equal(fnp.pad([1, 2], 1), np.pad([1, 2], 1))


def test_pad_with_traced_constant():
    x, c = np.arange(3.0, dtype=np.float32), np.float32(7.0)
    check_against_numpy(
        lambda x, c: fnp.pad(x, (1, 2), constant_values=c), lambda x, c: np.pad(x, (1, 2), constant_values=c), x, c
    )


# --- the IR ---------------------------------------------------------------------------

IR_CASES = [
    ("squeeze", lambda x: fnp.squeeze(x[None])),
    ("expand_dims", lambda x: fnp.expand_dims(x, 0)),
    ("rev", lambda x: fnp.flip(x)),
    ("pad", lambda x: fnp.pad(x, 1)),
    ("concatenate", lambda x: fnp.concatenate([x, x])),
    ("slice", lambda x: fnp.split(x, 2)[1]),
    ("iota", lambda x: x + lax.iota(np.float64, 4)),
    ("transpose", lambda x: fnp.swapaxes(fnp.atleast_2d(x), 0, 1)),
    ("broadcast_in_dim", lambda x: fnp.tile(x, 2)),
]


@pytest.mark.parametrize("primitive, fn", IR_CASES, ids=[c[0] for c in IR_CASES])
def test_ir_names_the_primitive(primitive, fn):
    x = np.arange(4.0)
    ir = ft.make_ir(fn)(x)  # make_ir type-checks the IR
    ir.typecheck()
    assert f"= {primitive}" in str(ir)
    np.testing.assert_array_equal(ir.eval(x), fn(x))


# --- errors ---------------------------------------------------------------------------

ERROR_CASES = [
    ("reshape", TypeError, lambda: fnp.reshape(np.ones(6), (4,))),
    ("reshape", TypeError, lambda: fnp.reshape(np.ones(6), (4, -1))),
    ("concatenate", TypeError, lambda: fnp.concatenate([np.ones((2, 3)), np.ones((3, 2))])),
    ("concatenate", ValueError, lambda: fnp.concatenate([np.float64(1.0)])),
    ("concatenate", ValueError, lambda: fnp.concatenate([np.ones(2)], axis=1)),
    ("stack", TypeError, lambda: fnp.stack([np.ones(2), np.ones(3)])),
    ("swapaxes", ValueError, lambda: fnp.swapaxes(np.ones(2), 0, 3)),
    ("transpose", ValueError, lambda: fnp.transpose(np.ones((2, 3)), (0, 5))),
    ("transpose", ValueError, lambda: fnp.transpose(np.ones((2, 3)), (0,))),
    ("moveaxis", ValueError, lambda: fnp.moveaxis(np.ones((2, 3)), (0, 1), 0)),
    ("squeeze", ValueError, lambda: fnp.squeeze(np.ones((2, 1)), 0)),
    ("expand_dims", ValueError, lambda: fnp.expand_dims(np.ones(2), 3)),
    ("expand_dims", ValueError, lambda: fnp.expand_dims(np.ones(2), (0, 0))),
    ("broadcast_to", TypeError, lambda: fnp.broadcast_to(np.ones(3), (4,))),
    ("broadcast_arrays", TypeError, lambda: fnp.broadcast_arrays(np.ones(3), np.ones(2))),
    ("split", ValueError, lambda: fnp.split(np.arange(5), 2)),
    ("split", ValueError, lambda: fnp.split(np.arange(5), 0)),
    ("tile", ValueError, lambda: fnp.tile(np.ones(2), -1)),
    ("repeat", ValueError, lambda: fnp.repeat(np.ones(2), -1)),
    ("repeat", TypeError, lambda: fnp.repeat(np.ones(3), [1, 2])),
    ("pad", ValueError, lambda: fnp.pad(np.ones(2), -1)),
    ("pad", TypeError, lambda: fnp.pad(np.ones(2), 1.5)),
    ("pad", ValueError, lambda: fnp.pad(np.ones(0), 1, mode="edge")),
    ("pad", NotImplementedError, lambda: fnp.pad(np.ones(2), 1, mode="linear_ramp")),
    ("flip", ValueError, lambda: fnp.flip(np.ones(2), 1)),
    ("squeeze", TypeError, lambda: lax.squeeze(np.ones(2), (0,))),
    ("expand_dims", TypeError, lambda: lax.expand_dims(np.ones(2), (5,))),
    ("rev", TypeError, lambda: lax.rev(np.ones(2), (0, 0))),
    ("pad", TypeError, lambda: lax.pad(np.ones(2), 0.0, [(0, 0, -1)])),
    ("pad", TypeError, lambda: lax.pad(np.ones(2), np.float32(0), [(0, 0, 0)])),
    ("pad", TypeError, lambda: lax.pad(np.ones(2), 0.0, [(-3, 0, 0)])),
    ("pad", TypeError, lambda: lax.pad(np.ones(2), 0.0, [(0, 0, 0), (0, 0, 0)])),
    ("concatenate", TypeError, lambda: lax.concatenate([np.ones(2), np.ones(2, np.int32)], 0)),
    ("concatenate", TypeError, lambda: lax.concatenate([np.ones(2)], 1)),
    ("concatenate", TypeError, lambda: lax.concatenate([], 0)),
    ("iota", TypeError, lambda: lax.iota(np.bool_, 3)),
    ("iota", TypeError, lambda: lax.broadcasted_iota(np.int32, (2, 3), 2)),
]


@pytest.mark.parametrize("name, error, thunk", ERROR_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(ERROR_CASES)])
def test_errors_name_the_operation(name, error, thunk):
    with pytest.raises(error, match=name):
        thunk()


def test_traced_errors_name_the_operation_and_the_user_line():
    with pytest.raises(TypeError, match=r"concatenate(.|\n)*test_shape.py"):
        ft.make_ir(lambda x: fnp.concatenate([x, np.ones((3, 2))]))(np.ones((2, 3)))
    with pytest.raises(ValueError, match="squeeze"):
        ft.make_ir(lambda x: fnp.squeeze(x, 0))(np.ones((2, 3)))
    with pytest.raises(ft.errors.ConcretizationError, match="repeat"):
        ft.make_ir(lambda x, r: fnp.repeat(x, r))(np.ones(3), np.array([1, 2, 3]))
