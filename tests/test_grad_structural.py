"""Derivatives of the shape primitives (functrace.lax.structural) and the fnp shape
functions built on them: forward and reverse mode to order 2 against finite
differences, plus the leanness of the derivative IR (symbolic zeros, no multiplies by one)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import functrace as ft
import functrace.numpy as fnp
from functrace import lax
from functrace.core.ad_util import Zero
from functrace.core.ir import Literal
from functrace.core.primitive import jvp_rules, vjp_rules, zero_derivative
from functrace.core.trace import get_aval
from functrace.lax import structural
from functrace.testing import strategies as fts
from functrace.testing.gradients import check_grads

Case = tuple[Callable, tuple]


def _array(data: st.DataObject, shape: tuple[int, ...]) -> np.ndarray:
    return data.draw(fts.arrays("float64", shape, elements=st.floats(-3, 3)))


def _shape(data: st.DataObject, min_dims: int = 0, max_dims: int = 3, min_side: int = 0) -> tuple[int, ...]:
    return data.draw(fts.shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=3))


def _subset(data: st.DataObject, items) -> tuple[int, ...]:
    return tuple(sorted(data.draw(st.sets(st.sampled_from(list(items))) if items else st.just(set()))))


# --- lax primitives ----------------------------------------------------------------------


def _broadcast_in_dim(data) -> Case:
    shape = _shape(data, max_dims=2)
    out, dims = [], []
    for n in shape:
        out += data.draw(st.lists(st.integers(0, 3), max_size=1))  # a new dimension before it
        dims.append(len(out))
        out.append(data.draw(st.integers(0, 3)) if n == 1 else n)  # size 1 may stretch
    out += data.draw(st.lists(st.integers(0, 3), max_size=1))
    return (lambda x: lax.broadcast_in_dim(x, out, dims)), (_array(data, shape),)


def _reshape(data) -> Case:
    shape = _shape(data)
    size = int(np.prod(shape))
    new = data.draw(st.sampled_from([(size,), shape[::-1], (1, *shape), (*shape, 1), (size, 1)]))
    return (lambda x: lax.reshape(x, new)), (_array(data, shape),)


def _transpose(data) -> Case:
    shape = _shape(data)
    perm = data.draw(st.permutations(range(len(shape))))
    return (lambda x: lax.transpose(x, perm)), (_array(data, shape),)


def _squeeze(data) -> Case:
    shape = tuple(data.draw(st.lists(st.sampled_from([1, 1, 2, 3]), max_size=4)))
    dims = _subset(data, [i for i, n in enumerate(shape) if n == 1])
    return (lambda x: lax.squeeze(x, dims)), (_array(data, shape),)


def _expand_dims(data) -> Case:
    shape = _shape(data)
    k = data.draw(st.integers(0, 2))
    dims = tuple(sorted(data.draw(st.permutations(range(len(shape) + k)))[:k]))
    return (lambda x: lax.expand_dims(x, dims)), (_array(data, shape),)


def _rev(data) -> Case:
    shape = _shape(data)
    dims = _subset(data, range(len(shape)))
    return (lambda x: lax.rev(x, dims)), (_array(data, shape),)


def _pad_config(data, n: int) -> tuple[int, int, int]:
    interior = data.draw(st.integers(0, 2))
    spread = n + max(n - 1, 0) * interior
    lo = data.draw(st.integers(-spread, 3))
    hi = data.draw(st.integers(-(spread + lo) if spread + lo > 0 else 0, 3))
    return lo, hi, interior


def _pad(data) -> Case:
    shape = _shape(data)
    config = [_pad_config(data, n) for n in shape]
    value = _array(data, ())
    return (lambda x, v: lax.pad(x, v, config)), (_array(data, shape), value)


def _concatenate(data) -> Case:
    shape = _shape(data, min_dims=1)
    dim = data.draw(st.integers(0, len(shape) - 1))
    sizes = data.draw(st.lists(st.integers(0, 3), min_size=1, max_size=3))
    args = tuple(_array(data, (*shape[:dim], n, *shape[dim + 1 :])) for n in sizes)
    return (lambda *xs: lax.concatenate(xs, dim)), args


def _concatenate_with_constants(data) -> Case:
    """Some operands constant: their tangents are symbolic zeros."""
    shape = _shape(data, min_dims=1, min_side=1)
    dim = data.draw(st.integers(0, len(shape) - 1))
    const = _array(data, shape)
    pattern = data.draw(st.lists(st.booleans(), min_size=1, max_size=4))

    def f(x):
        return lax.concatenate([x if live else const for live in pattern], dim)

    return f, (_array(data, shape),)


def _iota(data) -> Case:
    shape = _shape(data, min_dims=1)
    dim = data.draw(st.integers(0, len(shape) - 1))
    return (lambda x: x * lax.broadcasted_iota(np.float64, shape, dim)), (_array(data, shape),)


# --- fnp shape functions -------------------------------------------------------------------


def _fnp_reshape(data) -> Case:
    shape = _shape(data)
    return (lambda x: fnp.reshape(x, (-1, 1))), (_array(data, shape),)


def _fnp_transpose(data) -> Case:
    shape = _shape(data)
    perm = data.draw(st.permutations(range(len(shape))))
    return (lambda x: fnp.transpose(x, perm)), (_array(data, shape),)


def _fnp_swapaxes(data) -> Case:
    shape = _shape(data, min_dims=1)
    a, b = data.draw(st.tuples(*[st.integers(-len(shape), len(shape) - 1)] * 2))
    return (lambda x: fnp.swapaxes(x, a, b)), (_array(data, shape),)


def _fnp_moveaxis(data) -> Case:
    shape = _shape(data, min_dims=1)
    src, dst = data.draw(st.tuples(*[st.integers(0, len(shape) - 1)] * 2))
    return (lambda x: fnp.moveaxis(x, src, dst)), (_array(data, shape),)


def _fnp_squeeze(data) -> Case:
    shape = tuple(data.draw(st.lists(st.sampled_from([1, 2]), max_size=3)))
    return (lambda x: fnp.squeeze(x) * 2.0), (_array(data, shape),)


def _fnp_expand_dims(data) -> Case:
    shape = _shape(data)
    axis = data.draw(st.integers(-len(shape) - 1, len(shape)))
    return (lambda x: fnp.expand_dims(x, axis)), (_array(data, shape),)


def _fnp_broadcast_to(data) -> Case:
    shape = _shape(data, max_dims=2)
    target = (data.draw(st.integers(1, 3)), *(data.draw(st.integers(1, 3)) if n == 1 else n for n in shape))
    return (lambda x: fnp.sin(fnp.broadcast_to(x, target))), (_array(data, shape),)


def _fnp_concatenate(data) -> Case:
    shape = _shape(data, min_dims=1, max_dims=2)
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    args = tuple(_array(data, shape) for _ in range(data.draw(st.integers(1, 3))))
    return (lambda *xs: fnp.concatenate([x * x for x in xs], axis)), args


def _fnp_stack(data) -> Case:
    shape = _shape(data, max_dims=2)
    axis = data.draw(st.integers(0, len(shape)))
    args = tuple(_array(data, shape) for _ in range(data.draw(st.integers(1, 3))))
    return (lambda *xs: fnp.stack(xs, axis)), args


def _fnp_split(data) -> Case:
    shape = _shape(data, min_dims=1, max_dims=2, min_side=1)
    axis = data.draw(st.integers(0, len(shape) - 1))
    sections = data.draw(st.sampled_from([d for d in (1, 2, 3) if shape[axis] % d == 0]))
    return (lambda x: fnp.split(x * x, sections, axis)), (_array(data, shape),)


def _fnp_tile(data) -> Case:
    shape = _shape(data, max_dims=2)
    reps = tuple(data.draw(st.lists(st.integers(0, 3), max_size=3)))
    return (lambda x: fnp.tile(x, reps)), (_array(data, shape),)


def _fnp_repeat(data) -> Case:
    shape = _shape(data, min_dims=1, max_dims=2)
    axis = data.draw(st.integers(0, len(shape) - 1))
    counts = data.draw(
        st.one_of(st.integers(0, 3), st.lists(st.integers(0, 3), min_size=shape[axis], max_size=shape[axis]))
    )
    return (lambda x: fnp.repeat(x, counts, axis)), (_array(data, shape),)


def _fnp_pad(data) -> Case:
    mode = data.draw(st.sampled_from(["constant", "edge", "reflect"]))
    shape = _shape(data, min_dims=1, max_dims=2, min_side=1)
    widths = [data.draw(st.tuples(st.integers(0, 3), st.integers(0, 3))) for _ in shape]
    kwargs = {"constant_values": 1.5} if mode == "constant" else {}
    return (lambda x: fnp.pad(x, widths, mode=mode, **kwargs)), (_array(data, shape),)


def _fnp_pad_traced_value(data) -> Case:
    shape = _shape(data, min_dims=1, max_dims=2)
    widths = [data.draw(st.tuples(st.integers(0, 2), st.integers(0, 2))) for _ in shape]
    return (lambda x, v: fnp.pad(x, widths, constant_values=v)), (_array(data, shape), _array(data, ()))


def _fnp_flip(data) -> Case:
    shape = _shape(data)
    axis = data.draw(st.one_of(st.none(), st.just(_subset(data, range(len(shape))))))
    return (lambda x: fnp.flip(x, axis)), (_array(data, shape),)


def _fnp_broadcasting_binop(data) -> Case:
    xs, ys = data.draw(fts.broadcastable_shapes(max_dims=3, max_side=3))
    return (lambda x, y: x * y - y), (_array(data, xs), _array(data, ys))


def _fnp_outer_product(data) -> Case:
    m, n = data.draw(st.integers(0, 3)), data.draw(st.integers(0, 3))
    return (lambda x, y: x[:, None] * fnp.broadcast_to(y, (m, n))), (_array(data, (m,)), _array(data, (n,)))


CASES = {
    "broadcast_in_dim": _broadcast_in_dim,
    "reshape": _reshape,
    "transpose": _transpose,
    "squeeze": _squeeze,
    "expand_dims": _expand_dims,
    "rev": _rev,
    "pad": _pad,
    "concatenate": _concatenate,
    "concatenate_with_constants": _concatenate_with_constants,
    "iota": _iota,
    "fnp.reshape": _fnp_reshape,
    "fnp.transpose": _fnp_transpose,
    "fnp.swapaxes": _fnp_swapaxes,
    "fnp.moveaxis": _fnp_moveaxis,
    "fnp.squeeze": _fnp_squeeze,
    "fnp.expand_dims": _fnp_expand_dims,
    "fnp.broadcast_to": _fnp_broadcast_to,
    "fnp.concatenate": _fnp_concatenate,
    "fnp.stack": _fnp_stack,
    "fnp.split": _fnp_split,
    "fnp.tile": _fnp_tile,
    "fnp.repeat": _fnp_repeat,
    "fnp.pad": _fnp_pad,
    "fnp.pad_traced_value": _fnp_pad_traced_value,
    "fnp.flip": _fnp_flip,
    "fnp.broadcasting_binop": _fnp_broadcasting_binop,
    "fnp.outer_product": _fnp_outer_product,
}


@pytest.mark.parametrize("name", sorted(CASES))
@given(data=st.data())
def test_grads_order_2(name, data):
    fun, args = CASES[name](data)
    check_grads(fun, args, order=2, modes=("fwd", "rev"))


def test_known_gradients():
    """Independent of finite differences: gradients written out by hand."""
    x = np.arange(6.0).reshape(2, 3)
    ones = np.ones((2, 3))
    np.testing.assert_array_equal(ft.grad(lambda x: fnp.sum(fnp.broadcast_to(x, (4, 2, 3))))(x), 4 * ones)
    np.testing.assert_array_equal(ft.grad(lambda x: fnp.sum(fnp.tile(x, (2, 3)) * 2.0))(x), 12 * ones)
    np.testing.assert_array_equal(
        ft.grad(lambda x: fnp.sum(fnp.pad(x, ((1, 1), (0, 2)), mode="edge")))(x), [[2, 2, 6], [2, 2, 6]]
    )
    w = np.arange(6.0).reshape(3, 2)
    np.testing.assert_array_equal(ft.grad(lambda x: fnp.sum(fnp.transpose(x) * w))(x), w.T)
    # lax.pad: a crop, interior padding and the padding value's share.
    gx, gv = ft.grad(lambda x, v: fnp.sum(lax.pad(x, v, [(-1, 2, 1)]) * np.arange(6.0)), (0, 1))(np.ones(3), 0.0)
    np.testing.assert_array_equal(gx, [0.0, 1.0, 3.0])
    assert gv == 0.0 + 2.0 + 4.0 + 5.0


def test_rules_registered():
    for prim in (
        structural.broadcast_in_dim_p, structural.reshape_p, structural.transpose_p, structural.squeeze_p,
        structural.expand_dims_p, structural.rev_p, structural.pad_p, structural.concatenate_p,
    ):  # fmt: skip
        assert prim in jvp_rules and prim in vjp_rules, prim
    assert structural.iota_p in zero_derivative


# --- leanness of the derivative IR -------------------------------------------------------------


def _prims(fn) -> list[str]:
    return [e.primitive.name for e in fn.eqns]


def _mul_by_one(fn) -> bool:
    return any(
        e.primitive.name == "mul" and any(isinstance(a, Literal) and np.all(a.val == 1) for a in e.inputs)
        for e in fn.eqns
    )


def test_grad_of_broadcast_is_lean():
    ir = ft.make_ir(ft.grad(lambda x: fnp.sum(fnp.broadcast_to(x, (3, 4)))))(np.ones(4))
    assert not _mul_by_one(ir)
    assert set(_prims(ir)) <= {"broadcast_in_dim", "reduce_sum"}, ir
    np.testing.assert_array_equal(ir.eval(np.ones(4)), np.full(4, 3.0))


def test_grad_of_reshape_transpose_chain_is_lean():
    def f(x):
        y = fnp.transpose(fnp.reshape(x, (3, 2, 2)), (2, 0, 1))
        return fnp.sum(fnp.expand_dims(fnp.swapaxes(y, 0, 2), 1).reshape(-1))

    ir = ft.make_ir(ft.grad(f))(np.ones((4, 3)))
    assert not _mul_by_one(ir)
    assert set(_prims(ir)) <= {"reshape", "transpose", "broadcast_in_dim", "reduce_sum", "expand_dims", "squeeze"}, ir
    np.testing.assert_array_equal(ir.eval(np.ones((4, 3))), np.ones((4, 3)))


def test_broadcast_from_size_one_sums_back():
    ir = ft.make_ir(ft.grad(lambda x: fnp.sum(fnp.broadcast_to(x, (2, 3, 4)))))(np.ones((3, 1)))
    assert set(_prims(ir)) <= {"broadcast_in_dim", "reduce_sum", "reshape"}, ir
    np.testing.assert_array_equal(ir.eval(np.ones((3, 1))), np.full((3, 1), 8.0))


def _jvp_ir(fun, x: np.ndarray):
    return ft.make_ir(lambda x, t: ft.jvp(fun, (x,), (t,))[1])(x, x)


def test_concatenate_jvp_pads_symbolic_zeros():
    c = np.ones(3)
    ir = _jvp_ir(lambda x: fnp.concatenate([c, x, c]), np.ones(2))
    # One concatenate of the primals, one pad of the tangent: no zeros materialised.
    assert _prims(ir).count("broadcast_in_dim") == 0, ir
    assert _prims(ir).count("pad") == 1, ir
    np.testing.assert_array_equal(ir.eval(np.ones(2), np.array([2.0, 3.0])), [0, 0, 0, 2, 3, 0, 0, 0])
    ir = _jvp_ir(lambda x: fnp.concatenate([x, c, c, x]), np.ones(2))
    assert _prims(ir).count("broadcast_in_dim") == 1, ir  # one zero block for the run of two
    np.testing.assert_array_equal(ir.eval(np.ones(2), np.array([2.0, 3.0])), [2, 3, 0, 0, 0, 0, 0, 0, 2, 3])


def test_constant_pad_jvp_has_no_zeros():
    ir = _jvp_ir(lambda x: fnp.pad(x, 1, constant_values=5.0), np.ones(2))
    assert "broadcast_in_dim" not in _prims(ir), ir
    np.testing.assert_array_equal(ir.eval(np.ones(2), np.array([2.0, 3.0])), [0, 2, 3, 0])


ZERO_CASES = [
    (structural.broadcast_in_dim_p, [np.ones(2)], {"shape": (3, 2), "broadcast_dimensions": (1,)}),
    (structural.reshape_p, [np.ones((2, 3))], {"new_sizes": (6,)}),
    (structural.transpose_p, [np.ones((2, 3))], {"permutation": (1, 0)}),
    (structural.squeeze_p, [np.ones((1, 3))], {"dimensions": (0,)}),
    (structural.expand_dims_p, [np.ones(3)], {"dimensions": (1,)}),
    (structural.rev_p, [np.ones(3)], {"dimensions": (0,)}),
    (structural.pad_p, [np.ones(3), np.float64(0)], {"padding_config": ((1, 1, 1),)}),
    (structural.concatenate_p, [np.ones(3), np.ones(2)], {"dimension": 0}),
]


@pytest.mark.parametrize(("prim", "primals", "params"), ZERO_CASES, ids=lambda c: getattr(c, "name", ""))
def test_zero_tangents_stay_symbolic(prim, primals, params):
    tangents = [Zero(get_aval(p)) for p in primals]
    outs, t_outs = jvp_rules[prim](primals, tangents, **params)
    np.testing.assert_array_equal(outs[0], prim.bind(*primals, **params))
    assert type(t_outs[0]) is Zero and t_outs[0].aval.shape == np.shape(outs[0])


def test_grad_of_int_shape_ops_is_none():
    idx = np.arange(3)

    def f(x):
        return fnp.sum(x * fnp.concatenate([idx, idx]).astype(np.float64))

    np.testing.assert_array_equal(ft.grad(f)(np.ones(6)), [0, 1, 2, 0, 1, 2])


def test_jit_and_make_ir_of_grad_agree():
    def f(x, v):
        y = lax.pad(fnp.flip(x, 0), v, [(1, -1, 1), (0, 3, 0)])
        return fnp.sum(fnp.sin(fnp.concatenate([y, fnp.tile(x, (1, 2))], 0)))

    x, v = np.arange(6.0).reshape(2, 3) / 5, 0.3
    expected = ft.grad(f, (0, 1))(x, v)
    staged = ft.make_ir(ft.grad(f, (0, 1)))(x, v).eval(x, v)
    jitted = ft.jit(ft.grad(f, (0, 1)), backend="interpret")(x, v)
    for got in (staged, jitted):
        for a, b in zip(got, expected, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-12)
