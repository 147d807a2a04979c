"""scan and fori_loop: forward values against Python loops, derivatives against finite
differences, vmap against a loop over examples, the IR size, residual storage."""

from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import functrace as ft
import functrace.numpy as fnp
from functrace.control_flow.scan import fori_loop, scan
from functrace.testing import check_grads, numerical_grad
from functrace.testing.strategies import shapes
from tests.reference import assert_same, check_against_numpy

RNG = np.random.default_rng(0)


def python_scan(f, init, xs, length=None, reverse=False):
    """The reference: a plain Python loop over NumPy values (no functrace)."""
    leaves, treedef = ft.tree_util.tree_flatten(xs)
    n = length if length is not None else leaves[0].shape[0]
    carry, ys = init, [None] * n
    for i in reversed(range(n)) if reverse else range(n):
        x = ft.tree_util.tree_unflatten(treedef, [leaf[i] for leaf in leaves])
        carry, ys[i] = f(carry, x)
    if n == 0:  # call f once on zeros only to learn the type of y
        x = ft.tree_util.tree_unflatten(treedef, [np.zeros(leaf.shape[1:], leaf.dtype) for leaf in leaves])
        y = f(init, x)[1]
        return carry, ft.tree_util.tree_map(lambda y: np.zeros((0, *np.shape(y)), np.asarray(y).dtype), y)
    return carry, ft.tree_util.tree_map(lambda *ys: np.stack(ys), *ys)


def ref_loop(lower, upper, body, init):
    val = init
    for i in range(lower, upper):
        val = body(i, val)
    return val


# --- forward values -------------------------------------------------------------------------


def _cumsum(np_):
    return lambda c, x: (c + x, c * 2)


def _pytree_cell(np_):
    def cell(carry, x):
        h, (acc, count) = carry["h"], carry["stats"]
        h = np_.tanh(h * x["a"] + x["b"])
        return {"h": h, "stats": (acc + np_.sum(h), count + 1)}, (h, np_.sin(h))

    return cell


def _no_xs(np_):
    return lambda c, _: (c * 0.5 + 1.0, c)


def _no_ys(np_):
    return lambda c, x: (np_.maximum(c, x), None)


def _pytree_args(n):
    init = {"h": RNG.normal(size=3), "stats": (np.float64(0.0), np.int64(0))}
    xs = {"a": RNG.normal(size=(n, 3)), "b": RNG.normal(size=(n, 3))}
    return init, xs


FORWARD_CASES = [
    # (name, body family, init, xs, length)
    ("cumsum", _cumsum, RNG.normal(size=(2, 3)), RNG.normal(size=(5, 2, 3)), None),
    ("cumsum_f32", _cumsum, np.ones(4, np.float32), RNG.normal(size=(3, 4)).astype(np.float32), None),
    ("int", _cumsum, np.int32(1), np.arange(6, dtype=np.int32), None),
    ("pytree", _pytree_cell, *_pytree_args(4), None),
    ("no_xs", _no_xs, np.array([1.0, -2.0]), None, 6),
    ("no_ys", _no_ys, np.zeros(3), RNG.normal(size=(4, 3)), None),
    ("length_0", _cumsum, np.ones(3), np.zeros((0, 3)), None),
    ("length_0_no_xs", _no_xs, np.ones(2), None, 0),
    ("length_1", _pytree_cell, *_pytree_args(1), None),
]


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize(("name", "family", "init", "xs", "length"), FORWARD_CASES, ids=[c[0] for c in FORWARD_CASES])
def test_scan_forward_matches_python_loop(name, family, init, xs, length, reverse):
    def fn(init, xs):
        return scan(family(fnp), init, xs, length=length, reverse=reverse)

    def reference(init, xs):
        return python_scan(family(np), init, xs, length=length, reverse=reverse)

    check_against_numpy(fn, reference, init, xs)


@settings(max_examples=15)
@given(shape=shapes(max_dims=2), length=st.integers(0, 4), reverse=st.booleans(), dtype=st.sampled_from(["f4", "f8"]))
def test_scan_forward_hypothesis_shapes(shape, length, reverse, dtype):
    rng = np.random.default_rng(length)
    init = rng.normal(size=shape).astype(dtype)
    xs = (rng.normal(size=(length, *shape)).astype(dtype), rng.normal(size=(length, *shape)).astype(dtype))

    def family(np_):
        return lambda c, x: (c * x[0] + np_.cos(x[1]), (c, x[0] - c))

    check_against_numpy(
        lambda i, x: scan(family(fnp), i, x, reverse=reverse),
        lambda i, x: python_scan(family(np), i, x, reverse=reverse),
        init,
        xs,
    )


FORI_CASES = [
    (0, 5, lambda i, v: v * 2.0 + i),
    (3, 7, lambda i, v: (v[0] + i, v[1] * v[0][0])),
    (4, 2, lambda i, v: v + 1.0),  # empty range
    (np.int32(-2), np.int32(3), lambda i, v: v - i),
]


@pytest.mark.parametrize(("lower", "upper", "body"), FORI_CASES)
def test_fori_loop_static_bounds_matches_python_loop(lower, upper, body):
    init = (np.array([1.0, 2.0]), np.array(0.5)) if lower == 3 else np.array([1.0, 2.0])
    check_against_numpy(
        lambda v: fori_loop(lower, upper, body, v),
        lambda v: ref_loop(int(lower), int(upper), body, v),
        init,
    )


def test_fori_loop_index_dtype_follows_bounds():
    got = fori_loop(np.int32(0), np.int32(3), lambda i, v: v + i, np.int32(0))
    assert got.dtype == np.int32 and int(got) == 3


def test_fori_loop_traced_bounds_uses_while_loop():
    def f(n, x):
        return fori_loop(0, n, lambda i, v: v * 1.5 + i, x)

    x = np.array([1.0, -1.0])
    for n in (0, 1, 4):
        want = ref_loop(0, n, lambda i, v: v * 1.5 + i, x)
        assert_same(ft.jit(f, backend="interpret")(n, x), want)
        assert_same(ft.make_ir(f)(n, x).eval(n, x), want)
    ir = ft.make_ir(f)(3, x)
    assert "while" in str(ir) and "scan" not in str(ir)


# --- derivatives ------------------------------------------------------------------------------

W = RNG.normal(size=(3, 3)) * 0.5


def _rnn(h, xs, w):
    def cell(h, x):
        h = fnp.tanh(h @ w + x)
        return h, fnp.sin(h) * h

    return scan(cell, h, xs)


def _pytree_carry(c, xs, w):
    def cell(carry, x):
        h, acc = carry
        h = fnp.tanh(h @ w + x["in"]) * x["gate"]
        return (h, acc + fnp.sum(h**2)), None

    return scan(cell, (c, 0.0), xs)[0]


def _closed_over_consts(c, xs, w):
    # w is a closure constant of the body: its cotangent accumulates over the steps.
    return scan(lambda h, x: (fnp.sin(h * w[0]) + x * w[1], fnp.exp(-h * h)), c, xs, reverse=True)


def _int_carry(c, xs, w):
    def cell(carry, x):
        h, k = carry
        return (h * fnp.cos(x * k) + w[0], k + 1), h * k

    return scan(cell, (c, np.int64(0)), xs)


def _nested(c, xss, w):
    def outer(c, xs):
        c2, ys = scan(lambda d, x: (fnp.sin(d) * x + d * w[0], d * x), c, xs)
        return c2 * 0.9, fnp.sum(ys)

    return scan(outer, c, xss)


def _fori(c, xs, w):
    return fori_loop(1, 4, lambda i, v: fnp.sin(v * w[0]) * i + v * fnp.take(xs, i, axis=0), c)


GRAD_CASES = [
    ("rnn", _rnn, (3,), (5, 3), W),
    ("pytree_carry", _pytree_carry, (3,), {"in": (4, 3), "gate": (4, 3)}, W),
    ("closed_over_consts", _closed_over_consts, (2,), (4, 2), RNG.normal(size=(2, 2))),
    ("int_carry", _int_carry, (2,), (3, 2), RNG.normal(size=(1, 2))),
    ("nested", _nested, (2,), (3, 4, 2), RNG.normal(size=(1, 2))),
    ("fori_loop", _fori, (2,), (5, 2), RNG.normal(size=(1, 2))),
    ("length_0", _rnn, (3,), (0, 3), W),
]


def _normal(shape_tree):
    return ft.tree_util.tree_map(lambda s: RNG.normal(size=s), shape_tree, is_leaf=lambda s: isinstance(s, tuple))


@pytest.mark.parametrize(("name", "fn", "c_shape", "xs_shape", "w"), GRAD_CASES, ids=[c[0] for c in GRAD_CASES])
def test_check_grads_order_2(name, fn, c_shape, xs_shape, w):
    check_grads(fn, (RNG.normal(size=c_shape), _normal(xs_shape), w), order=2, modes=("fwd", "rev"))


@settings(max_examples=10)
@given(shape=shapes(max_dims=2, min_side=1, max_side=3), length=st.integers(1, 3), reverse=st.booleans())
def test_check_grads_hypothesis_shapes(shape, length, reverse):
    rng = np.random.default_rng(sum(shape) + length)

    def f(c, xs):
        return scan(lambda c, x: (fnp.sin(c) * x + c, fnp.tanh(c * x)), c, xs, reverse=reverse)

    check_grads(f, (rng.normal(size=shape), rng.normal(size=(length, *shape))), order=2, modes=("fwd", "rev"))


def test_scan_inside_cond_inside_scan():
    from functrace.control_flow.cond import cond

    def f(c, xs):
        def outer(c, x):
            def inner(c):
                return scan(lambda d, y: (fnp.sin(d) * y, d + y), c, fnp.stack([x, x * 2.0]))[0]

            return cond(fnp.sum(x) > 0, inner, lambda c: c * 0.5, c), fnp.sum(c)

        return scan(outer, c, xs)

    def reference(c, xs):
        def outer(c, x):
            if np.sum(x) > 0:
                return python_scan(lambda d, y: (np.sin(d) * y, d + y), c, np.stack([x, x * 2.0]))[0], np.sum(c)
            return c * 0.5, np.sum(c)

        return python_scan(outer, c, xs)

    c, xs = RNG.normal(size=2), RNG.normal(size=(5, 2))
    check_against_numpy(f, reference, c, xs)
    check_grads(f, (c, xs), order=2, modes=("fwd", "rev"))
    cs, xss = np.stack([c, -c]), np.stack([xs, -xs])
    assert_same(ft.vmap(f)(cs, xss), _loop_reference(reference, (0, 0), (cs, xss), 2))


def test_second_derivative_of_scan_is_exact():
    # d/dc of c -> c * x0 * x1 * x2 is a product; its second derivative is zero, the third c-free.
    xs = np.array([1.5, -2.0, 0.5])

    def f(c):
        return scan(lambda c, x: (c * c * x, None), c, xs)[0]

    # f(c) = c^8 * x0^4 * x1^2 * x2
    coef = xs[0] ** 4 * xs[1] ** 2 * xs[2]
    np.testing.assert_allclose(ft.grad(f)(1.1), 8 * coef * 1.1**7)
    np.testing.assert_allclose(ft.grad(ft.grad(f))(1.1), 56 * coef * 1.1**6)
    np.testing.assert_allclose(ft.jit(ft.grad(ft.grad(f)), backend="interpret")(1.1), 56 * coef * 1.1**6)


def test_rnn_gradient_matches_finite_differences():
    rng = np.random.default_rng(1)
    params = {"w_h": rng.normal(size=(4, 4)) * 0.4, "w_x": rng.normal(size=(2, 4)), "b": rng.normal(size=4)}
    xs = rng.normal(size=(6, 2))
    target = rng.normal(size=4)

    def loss(params):
        def cell(h, x):
            return fnp.tanh(h @ params["w_h"] + x @ params["w_x"] + params["b"]), None

        h, _ = scan(cell, np.zeros(4), xs)
        return fnp.sum((h - target) ** 2)

    got = ft.grad(loss)(params)
    want = numerical_grad(loss, (params,))[0]
    for k in params:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-6, atol=1e-8)
    assert_same(ft.jit(ft.grad(loss), backend="interpret")(params), got)


def test_reverse_mode_does_not_recompute_the_body():
    def f(c, xs):
        return fnp.sum(scan(lambda c, x: (fnp.sin(c) * x, fnp.exp(c)), c, xs)[1])

    ir = ft.make_ir(ft.grad(f))(np.ones(2), np.ones((3, 2)))
    scans = [e for e in ir.eqns if e.primitive.name == "scan"]
    backward = [e for e in scans if e.params["reverse"]]
    assert len(scans) == 2 and len(backward) == 1
    backward_prims = {e.primitive.name for e in backward[0].params["body"].eqns}
    assert "sin" not in backward_prims and "exp" not in backward_prims and "cos" in backward_prims


def test_fori_loop_traced_bounds_reverse_mode_error():
    f = ft.jit(lambda x, n: fori_loop(0, n, lambda i, v: v * 2.0, x), backend="interpret")
    with pytest.raises(TypeError, match="scan"):
        ft.grad(f)(1.0, 3)
    # forward mode works through the while_loop
    _, t = ft.jvp(lambda x: f(x, 3), (np.array(1.0),), (np.array(1.0),))
    np.testing.assert_allclose(t, 8.0)


def _residual_size(f, *args):
    """Elements stored by the forward scans of ``grad(f)``: the stacked ys (residuals included)."""
    ir = ft.make_ir(ft.grad(f))(*args)
    forward = [e for e in ir.eqns if e.primitive.name == "scan" and not e.params["reverse"]]
    assert forward
    return sum(v.aval.size for e in forward for v in e.outvars[e.params["num_carry"] :])


def test_checkpoint_inside_scan_stores_fewer_residuals():
    def block(c, x):
        return fnp.sin(fnp.sin(fnp.sin(fnp.sin(c * x)))) + c

    def make_loss(cell):
        return lambda c, xs: fnp.sum(scan(lambda c, x: (cell(c, x), None), c, xs)[0])

    c, xs = RNG.normal(size=50), RNG.normal(size=(8, 50))
    plain, remat = make_loss(block), make_loss(ft.checkpoint(block))
    stored_plain, stored_remat = _residual_size(plain, c, xs), _residual_size(remat, c, xs)
    assert stored_remat < stored_plain / 2, (stored_remat, stored_plain)
    np.testing.assert_allclose(ft.grad(remat)(c, xs), ft.grad(plain)(c, xs), rtol=1e-12)
    check_grads(remat, (c[:3], xs[:, :3]), order=2, modes=("rev",))


# --- vmap ---------------------------------------------------------------------------------------


def _loop_reference(f, in_axes, args, size):
    outs = []
    for b in range(size):
        example = [
            x if a is None else ft.tree_util.tree_map(lambda v, a=a, b=b: np.take(v, b, axis=a), x)
            for x, a in zip(args, in_axes, strict=True)
        ]
        outs.append(f(*example))
    return ft.tree_util.tree_map(lambda *o: np.stack(o), *outs)


def _vmap_fn(c, xs, w):
    def cell(carry, x):
        h, k = carry
        h = fnp.tanh(h @ w + x) + k
        return (h, k + 1.0), fnp.sin(h)

    return scan(cell, (c, 0.0), xs)


B = 3
VMAP_CASES = [
    ("init", (0, None, None), (RNG.normal(size=(B, 3)), RNG.normal(size=(4, 3)), W)),
    ("xs", (None, 0, None), (RNG.normal(size=3), RNG.normal(size=(B, 4, 3)), W)),
    ("xs_axis_1", (None, 1, None), (RNG.normal(size=3), RNG.normal(size=(4, B, 3)), W)),
    ("init_and_xs", (0, 0, None), (RNG.normal(size=(B, 3)), RNG.normal(size=(B, 4, 3)), W)),
    ("const_only", (None, None, 2), (RNG.normal(size=3), RNG.normal(size=(4, 3)), RNG.normal(size=(3, 3, B)))),
    ("all_last_axis", (-1, -1, 0), (RNG.normal(size=(3, B)), RNG.normal(size=(4, 3, B)), RNG.normal(size=(B, 3, 3)))),
]


@pytest.mark.parametrize(("name", "in_axes", "args"), VMAP_CASES, ids=[c[0] for c in VMAP_CASES])
def test_vmap_scan_matches_loop(name, in_axes, args):
    axes = tuple(None if a is None else a % np.ndim(x) for a, x in zip(in_axes, args, strict=True))
    want = _loop_reference(_vmap_fn, axes, args, B)
    batched = ft.vmap(_vmap_fn, in_axes=in_axes)
    assert_same(batched(*args), want, rtol=1e-12, atol=1e-12)
    assert_same(ft.jit(batched, backend="interpret")(*args), want, rtol=1e-12, atol=1e-12)
    assert_same(ft.make_ir(batched)(*args).eval(*args), want, rtol=1e-12, atol=1e-12)


def test_vmap_of_vmap_of_scan():
    cs, xss = RNG.normal(size=(2, B, 3)), RNG.normal(size=(2, B, 4, 3))
    f = ft.vmap(ft.vmap(lambda c, xs: _vmap_fn(c, xs, W)))
    want = [[_vmap_fn(cs[i, j], xss[i, j], W) for j in range(B)] for i in range(2)]
    want = ft.tree_util.tree_map(lambda *o: np.stack(o).reshape(2, B, *o[0].shape), *[w for row in want for w in row])
    assert_same(f(cs, xss), want, rtol=1e-12, atol=1e-12)


def test_vmap_unmapped_carry_becomes_mapped():
    # The carry starts unmapped; adding a mapped x makes it mapped (fixed point).
    xs = RNG.normal(size=(B, 5))
    f = ft.vmap(lambda xs: scan(lambda c, x: (c + x, c), 0.0, xs), in_axes=0)
    assert_same(f(xs), _loop_reference(lambda xs: python_scan(lambda c, x: (c + x, c), 0.0, xs), (0,), (xs,), B))


def _count_eqns(fn) -> int:
    total = 0
    for e in fn.eqns:
        total += 1
        for p in e.params.values():
            if isinstance(p, ft.core.ir.Function):
                total += _count_eqns(p)
    return total


def test_vmap_ir_size_independent_of_batch_size():
    def count(size):
        args = (RNG.normal(size=(size, 3)), RNG.normal(size=(size, 4, 3)), W)
        return _count_eqns(ft.make_ir(ft.vmap(_vmap_fn, in_axes=(0, 0, None)))(*args))

    assert count(2) == count(7)


def test_vmap_of_grad_and_grad_of_vmap():
    cs, xss = RNG.normal(size=(B, 3)), RNG.normal(size=(B, 4, 3))

    def loss(c, xs):
        (h, k), ys = _vmap_fn(c, xs, W)
        return fnp.sum(h) + fnp.sum(ys**2) * k

    per_example = ft.vmap(ft.grad(loss, argnums=(0, 1)))(cs, xss)
    want = _loop_reference(ft.grad(loss, argnums=(0, 1)), (0, 0), (cs, xss), B)
    assert_same(per_example, want, rtol=1e-10, atol=1e-12)

    total = ft.grad(lambda cs, xss: fnp.sum(ft.vmap(loss)(cs, xss)), argnums=(0, 1))(cs, xss)
    assert_same(total, want, rtol=1e-10, atol=1e-12)
    check_grads(lambda c, x: ft.vmap(loss)(c, x), (cs, xss), order=2, modes=("fwd", "rev"))


# --- IR size, errors --------------------------------------------------------------------------


def test_long_fori_loop_traces_to_constant_size_ir():
    def f(n):
        return lambda x: fori_loop(0, n, lambda i, v: fnp.sin(v) + i, x)

    sizes = {n: _count_eqns(ft.make_ir(f(n))(np.zeros(3))) for n in (10, 10_000)}
    assert sizes[10] == sizes[10_000] < 12
    grad_sizes = {
        n: _count_eqns(ft.make_ir(ft.grad(lambda x, n=n: fnp.sum(f(n)(x))))(np.zeros(3))) for n in (10, 10_000)
    }
    assert grad_sizes[10] == grad_sizes[10_000] < 40
    start = time.perf_counter()
    out = ft.jit(f(10_000), backend="interpret")(np.zeros(3))
    assert time.perf_counter() - start < 10
    assert_same(out, ref_loop(0, 10_000, lambda i, v: np.sin(v) + i, np.zeros(3)), rtol=1e-9, atol=1e-9)


def test_carry_type_mismatch_names_the_leaf():
    init = (1.0, {"h": np.zeros(3)})
    with pytest.raises(TypeError, match=r"scan body: carry\[1\]\['h'\] has type f32\[3\] but must be f64\[3\]"):
        scan(lambda c, x: ((c[0], {"h": c[1]["h"].astype(np.float32)}), None), init, np.ones(2))
    with pytest.raises(TypeError, match=r"scan body: carry\[0\] has type f64\[2\] but must be f64\[\]"):
        scan(lambda c, x: ((c[0] * np.ones(2), c[1]), None), init, np.ones(2))
    with pytest.raises(TypeError, match=r"carry output structure"):
        scan(lambda c, x: ((c, c), None), 0.0, None, length=2)
    with pytest.raises(TypeError, match=r"must return a pair \(carry, y\)"):
        scan(lambda c, x: c, 0.0, None, length=2)
    with pytest.raises(TypeError, match=r"carry has type f64\[\] but must be i64\[\]"):
        scan(lambda c, x: (c + 0.5, None), 0, None, length=2)


def test_weak_init_takes_the_carry_dtype():
    carry, _ = scan(lambda c, x: (c + x, None), 0.0, np.ones(3, np.float32))
    assert carry.dtype == np.float32 and float(carry) == 3.0


@pytest.mark.parametrize(
    ("xs", "length", "message"),
    [
        (None, None, "pass length="),
        ((np.ones(3), np.ones(4)), None, "disagree"),
        (np.ones(3), 4, "disagree"),
        (np.float64(1.0), None, "leading axis"),
        (None, -1, "non-negative"),
    ],
)
def test_bad_xs_and_length(xs, length, message):
    with pytest.raises(ValueError, match=message):
        scan(lambda c, x: (c, None), 0.0, xs, length=length)


def test_jit_hoists_accumulating_carries_out_of_the_loop():
    from functrace.control_flow.scan_passes import hoist_accumulations

    rng = np.random.default_rng(3)
    w = rng.normal(size=(4, 4)) * 0.5
    xs = rng.normal(size=(6, 3, 4))

    def loss(w, xs):
        def cell(h, x):
            h = fnp.tanh(x + h @ w)
            return h, h.sum()

        h, ys = ft.lax.scan(cell, fnp.zeros((3, 4)), xs)
        return (h**2).sum() + ys.sum()

    grad = ft.grad(loss)
    fn = hoist_accumulations(ft.make_ir(grad)(w, xs))
    scans = [e for e in fn.eqns if e.primitive.name == "scan"]
    backward = scans[-1]
    assert backward.params["num_carry"] == 1  # the w accumulator left the reverse loop
    fn.typecheck()
    expected = grad(w, xs)
    np.testing.assert_allclose(fn.eval(w, xs), expected, rtol=1e-10)
    np.testing.assert_allclose(ft.jit(grad)(w, xs), expected, rtol=1e-10)
    np.testing.assert_allclose(ft.jit(grad, backend="interpret")(w, xs), expected, rtol=1e-10)
    # Length 0: the hoisted product is over no steps.
    empty = np.zeros((0, 3, 4))
    np.testing.assert_allclose(ft.jit(grad)(w, empty), grad(w, empty))


def test_jit_prunes_residuals_the_backward_loop_never_reads():
    from functrace.control_flow.scan_passes import prune_scans

    rng = np.random.default_rng(4)
    w, xs = rng.normal(size=(4, 4)) * 0.5, rng.normal(size=(6, 3, 4))

    def loss(w, xs):
        def cell(h, x):
            z = x + h @ w
            h = fnp.tanh(z) * ft.nn.sigmoid(z)
            return h, h

        _, hs = ft.lax.scan(cell, fnp.zeros((3, 4)), xs)
        return (hs**2).sum()

    grad = ft.grad(loss)
    fn = ft.make_ir(grad)(w, xs)
    pruned = prune_scans(fn)
    forward = lambda f: next(e for e in f.eqns if e.primitive.name == "scan")  # noqa: E731
    assert len(forward(pruned).outvars) < len(forward(fn).outvars)  # fewer stacked residuals
    pruned.typecheck()
    expected = grad(w, xs)
    np.testing.assert_allclose(pruned.eval(w, xs), expected, rtol=1e-10)
    np.testing.assert_allclose(ft.jit(grad)(w, xs), expected, rtol=1e-10)
