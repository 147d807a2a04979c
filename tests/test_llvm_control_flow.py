"""The CPU backend's control flow (``cond``, ``scan``, ``while``, custom-derivative calls)
against eager evaluation: values, hostile branch indices, loop trip counts of 0, 1, odd
and even (the carries ping-pong between two buffers), nesting, and the primitives as
they appear inside ``jit(grad(...))`` and ``jit(vmap(...))``."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import functrace as ft
import functrace.numpy as fnp
import lowering.llvm  # noqa: F401  (registers the cpu backend)
from functrace import lax
from functrace.control_flow.scan import fori_loop, scan, scan_p
from functrace.testing.strategies import shapes
from tests.reference import assert_same

RNG = np.random.default_rng(0)


def cpu(f, **kw):
    return ft.jit(f, backend="cpu", **kw)


def check(f, *args, **tol):
    """``jit(f, backend="cpu")(*args)`` equals ``f(*args)`` evaluated eagerly."""
    assert_same(cpu(f)(*args), f(*args), **tol)


def rand(shape, dtype=np.float64):
    return RNG.standard_normal(shape).astype(dtype)


# --- cond -----------------------------------------------------------------------------------

INDICES = [-(2**31), -5, -1, 0, 1, 2, 3, 100, 2**31 - 1]


def _branches(n):
    fns = [
        lambda x, y: (x + y, x * 2),
        lambda x, y: (x * y, y),  # an operand returned unchanged
        lambda x, y: (x - y, fnp.ones_like(x)),  # a constant result
    ]
    return fns[:n]


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32])
def test_switch_clamps_index(n, dtype):
    x, y = (np.arange(6).reshape(2, 3) + 1).astype(dtype), np.full((2, 3), 3, dtype)
    f = cpu(lambda i, x, y: lax.switch(i, _branches(n), x, y))
    for i in INDICES:
        assert_same(f(np.int32(i), x, y), lax.switch(np.int32(i), _branches(n), x, y))


@pytest.mark.parametrize("i", [-7, 1, 9])
def test_switch_static_index(i):
    """An index known at compile time (a folded literal) picks its branch statically."""
    x = rand((4,))
    check(lambda x: lax.switch(i, _branches(3), x, x + 1.0), x)


@pytest.mark.parametrize("pred", [True, False])
def test_cond_bool_and_scalar_operands(pred):
    def f(p, x, s):
        return lax.cond(p, lambda a, b: {"v": a * b, "n": b}, lambda a, b: {"v": a - b, "n": b + 1.0}, x, s)

    check(f, np.bool_(pred), rand((3, 2), np.float32), np.float32(2.5))
    check(lambda x: lax.cond(x[0] > 0, lambda v: v * 2.0, lambda v: -v, x), rand((5,)) * (1 if pred else -1) + 0.1)


def test_cond_literal_operand():
    """A Python-scalar operand is a literal in the IR: stored to a stack slot for the call."""
    check(lambda i: lax.switch(i, [lambda v: v + 1.0, lambda v: v * 3.0], 2.0), np.int32(1))


def test_cond_integer_predicate():
    f = lambda k, x: lax.cond(k, lambda v: v + 1, lambda v: v - 1, x)  # noqa: E731
    for k in [0, 3, -2]:
        check(f, np.int32(k), np.arange(4, dtype=np.int32))


# --- scan -----------------------------------------------------------------------------------


def _cumulative(c, x):
    return c + x, c * 2


@pytest.mark.parametrize("length", [0, 1, 2, 3, 8])
@pytest.mark.parametrize("reverse", [False, True])
def test_scan_lengths(length, reverse):
    xs = rand((length, 3))
    check(lambda c, xs: scan(_cumulative, c, xs, reverse=reverse), rand((3,)), xs)


@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.int64, np.uint32])
def test_scan_dtypes(dtype):
    xs = (np.arange(15) % 7).reshape(5, 3).astype(dtype)
    check(lambda c, xs: scan(lambda c, x: (c * 3 + x, c ^ x if dtype != np.float32 else c - x), c, xs), xs[0], xs)


@pytest.mark.parametrize("reverse", [False, True])
def test_scan_consts_pytrees_and_stacking(reverse):
    w, b = rand((3, 4)), rand((4,))

    def f(init, xs):
        def cell(carry, x):
            h, (acc, count) = carry["h"], carry["stats"]
            h = fnp.tanh(fnp.sum(w * h[:, None], axis=0)[:3] * x["a"] + b[:3] + x["b"])
            return {"h": h, "stats": (acc + fnp.sum(h), count + 1)}, (h, {"s": fnp.sin(h), "k": count})

        return scan(cell, init, xs, reverse=reverse)

    init = {"h": rand((3,)), "stats": (np.float64(0.0), np.int32(0))}
    xs = {"a": rand((7, 3)), "b": rand((7, 1))}
    check(f, init, xs)


@settings(max_examples=10)
@given(shape=shapes(max_dims=2), length=st.integers(0, 5), reverse=st.booleans(), dtype=st.sampled_from(["f4", "f8"]))
def test_scan_shapes(shape, length, reverse, dtype):
    def step(carry, x):
        c, flag = carry
        return (c * 0.5 + x, flag | (fnp.sum(x) > 0)), (fnp.exp(x) - c, flag)

    init = (rand(shape, dtype), np.bool_(False))
    check(lambda init, xs: scan(step, init, xs, reverse=reverse), init, rand((length, *shape), dtype))


def test_scan_literal_and_passthrough_carries():
    """Python-scalar init (a literal operand), a carry returned unchanged, no xs."""

    def f(x):
        def step(carry, _):
            k, v, same = carry
            return (k + 1, v * 0.5 + k, same), v

        return scan(step, (0, x, x * 2.0), None, length=5)

    check(f, rand((2, 2)))


def test_scan_size_zero_dims():
    check(lambda c, xs: scan(lambda c, x: (c + fnp.sum(x), x * 2.0), c, xs), np.float64(1.0), np.ones((4, 0)))
    check(lambda c, xs: scan(lambda c, x: (c * x, c), c, xs), np.ones((0,)), np.ones((3, 0)))


@pytest.mark.parametrize("lengths", [(3, 4), (1, 2), (2, 0), (5, 1)])
def test_scan_inside_scan(lengths):
    outer, inner = lengths

    def f(c, xs):
        def row(c, x_row):
            c, ys = scan(lambda d, x: (d * 0.9 + x, d + c), c, x_row, reverse=True)
            return c + 1.0, ys

        return scan(row, c, xs)

    check(f, rand((2,)), rand((outer, inner, 2)))


@pytest.mark.parametrize("bounds", [(0, 5), (2, 3), (4, 4), (5, 2)])
def test_fori_loop(bounds):
    lo, hi = bounds
    check(lambda x: fori_loop(lo, hi, lambda i, v: v * 1.5 + i, x), rand((3,)))


def test_fori_loop_traced_bounds():
    f = lambda lo, hi, x: fori_loop(lo, hi, lambda i, v: v * 0.5 + i, x)  # noqa: E731
    for lo, hi in [(0, 6), (3, 3), (7, 2)]:
        check(f, np.int32(lo), np.int32(hi), rand((2,)))


def test_sub_function_constants():
    """Constants embedded in a body IR become module globals, passed to the body."""
    table = np.array([1.0, -2.0, 3.0])
    body = ft.make_ir(lambda c, x: (c * table + x, c - table))(np.zeros(3), np.zeros(3))
    assert body.consts, "the body must carry an embedded constant"

    def f(c, xs):
        return scan_p.bind(c, xs, body=body, num_consts=0, num_carry=1, length=4, reverse=False)

    check(f, rand((3,)), rand((4, 3)))


# --- while ----------------------------------------------------------------------------------


@pytest.mark.parametrize("limit", [0, 1, 2, 7])
def test_while_trip_counts(limit):
    scale = rand((3,))

    def f(lim, x):
        def body(s):
            k, v, w = s
            return k + 1, v * scale + 1.0, w

        return lax.while_loop(lambda s: s[0] < lim, body, (np.int32(0), x, x - 1.0))

    check(f, np.int32(limit), rand((3,)))


def test_while_consts_and_dtypes():
    def collatz(n):
        def body(s):
            m, steps = s
            return fnp.where(m % 2 == 0, m // 2, 3 * m + 1), steps + 1

        return lax.while_loop(lambda s: s[0] > 1, body, (n, np.int64(0)))

    for n in [1, 6, 27]:
        check(collatz, np.int64(n))
    threshold = np.float32(10.0)
    check(lambda x: lax.while_loop(lambda v: fnp.sum(v) < threshold, lambda v: v * 1.5, x), np.ones(4, np.float32))
    check(lambda x: lax.while_loop(lambda v: fnp.sum(v) < 0.0, lambda v: v * 1.5, x), np.ones(4, np.float32))


# --- inside jit(grad(...)) and jit(vmap(...)) ----------------------------------------------


def _rnn_loss(params, xs):
    w, u, b = params

    def step(h, x):
        h = fnp.tanh(fnp.sum(w * h[None, :], axis=1) + fnp.sum(u * x[None, :], axis=1) + b)
        return h, fnp.sum(h * h)

    h, ys = scan(step, fnp.zeros(w.shape[0], w.dtype), xs)
    return fnp.sum(ys) + fnp.sum(h)


def _lstm_loss(params, xs):
    (wi, ui), (wf, uf), (wo, uo), (wg, ug) = params

    def gate(w, u, h, x):
        return fnp.sum(w * h[None, :], axis=1) + fnp.sum(u * x[None, :], axis=1)

    def step(carry, x):
        h, c = carry
        i, f, o = (ft.nn.sigmoid(gate(w, u, h, x)) for w, u in ((wi, ui), (wf, uf), (wo, uo)))
        c = f * c + i * fnp.tanh(gate(wg, ug, h, x))
        h = o * fnp.tanh(c)
        return (h, c), h

    n = wi.shape[0]
    (_, c), hs = scan(step, (fnp.zeros(n, wi.dtype), fnp.zeros(n, wi.dtype)), xs, reverse=True)
    return fnp.sum(hs**2) + fnp.sum(c)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_grad_through_rnn_scan(dtype):
    params = (rand((4, 4), dtype) * 0.5, rand((4, 3), dtype) * 0.5, rand((4,), dtype))
    xs = rand((12, 3), dtype)
    # float32 sums over 12 steps of accumulated gradients: a few ulps of the result
    tol = {"rtol": 1e-4, "atol": 1e-5} if dtype == np.float32 else {}
    assert_same(cpu(ft.grad(_rnn_loss))(params, xs), ft.grad(_rnn_loss)(params, xs), **tol)


def test_grad_through_lstm_scan():
    params = tuple((rand((3, 3)) * 0.5, rand((3, 2)) * 0.5) for _ in range(4))
    xs = rand((16, 2))
    assert_same(cpu(ft.grad(_lstm_loss))(params, xs), ft.grad(_lstm_loss)(params, xs))


def test_grad_through_cond_and_fori_loop():
    def f(x, k):
        y = lax.switch(k, [fnp.sin, lambda v: v**2, fnp.exp], x)
        return fnp.sum(fori_loop(0, 4, lambda i, v: fnp.cos(v) * y + i, y))

    x = rand((3,))
    for k in [-1, 1, 5]:
        assert_same(cpu(ft.grad(f))(x, np.int32(k)), ft.grad(f)(x, np.int32(k)))


def test_vmap_cond_mapped_and_unmapped_index():
    branches = [lambda v: v * 2.0, lambda v: v - 1.0, fnp.sin]
    xs = rand((5, 3))
    mapped = ft.vmap(lambda i, v: lax.switch(i, branches, v))
    check(mapped, np.array([0, 2, -1, 9, 1], np.int32), xs)
    unmapped = ft.vmap(lambda v, i: lax.switch(i, branches, v), in_axes=(0, None))
    check(unmapped, xs, np.int32(2))


def test_vmap_while_mapped_predicate():
    def f(limit, x):
        return lax.while_loop(lambda s: s[0] < limit, lambda s: (s[0] + 1, s[1] * 2.0), (np.int32(0), x))

    check(ft.vmap(f), np.array([0, 3, 1, 5], np.int32), rand((4, 2)))
    check(ft.vmap(f, in_axes=(None, 0)), np.int32(3), rand((4, 2)))


def test_vmap_scan():
    f = ft.vmap(lambda c, xs: scan(_cumulative, c, xs, reverse=True), in_axes=(0, 1))
    check(f, rand((3, 2)), rand((5, 3, 2)))


# --- custom derivatives and checkpoint ------------------------------------------------------


@ft.custom_jvp
def _softplus(x):
    return fnp.log1p(fnp.exp(x))


@_softplus.defjvp
def _softplus_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return _softplus(x), t * ft.nn.sigmoid(x)


@ft.custom_vjp
def _clip_gradient(x, lo):
    return x


def _clip_fwd(x, lo):
    return x, lo


def _clip_bwd(lo, g):
    return fnp.clip(g, lo, -lo), None


_clip_gradient.defvjp(_clip_fwd, _clip_bwd)


def _custom_loss(x):
    scale = np.array([1.0, 3.0, -2.0])  # captured: a leading operand of the call
    y = _clip_gradient(_softplus(x) * scale, -1.5)
    z = ft.checkpoint(lambda v: fnp.sin(fnp.sin(v)) * scale)(y)
    return fnp.sum(z * x)


def test_custom_derivatives_and_checkpoint():
    x = rand((3,))
    check(_custom_loss, x)
    check(ft.grad(_custom_loss), x)
    check(ft.vmap(ft.grad(_custom_loss)), rand((4, 3)))


def test_checkpoint_inside_scan_grad():
    def loss(w, xs):
        step = ft.checkpoint(lambda h, x: (fnp.tanh(h * w + x), fnp.sum(h)))
        h, ys = scan(step, fnp.zeros_like(w), xs)
        return fnp.sum(ys) + fnp.sum(h**2)

    w, xs = rand((3,)), rand((9, 3))
    assert_same(cpu(ft.grad(loss))(w, xs), ft.grad(loss)(w, xs))
