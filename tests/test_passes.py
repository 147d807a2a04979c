"""The shared IR passes: dead code, constant folding, algebraic identities, CSE."""

from __future__ import annotations

import numpy as np
from reference import assert_same

import functrace as ft
import functrace.numpy as fnp
from functrace.core.passes import simplify


def _names(fn):
    return [e.primitive.name for e in fn.eqns]


def test_scalar_constants_fold_into_literals_of_the_right_dtype():
    ir = simplify(ft.make_ir(lambda x: x * (fnp.float32(2.0) / 8.0 + 1.0))(np.ones(3, np.float32)))
    assert _names(ir) == ["mul"]
    literal = ir.eqns[0].inputs[1]
    assert literal.aval.dtype == np.float32 and float(literal.val) == 1.25


def test_identities_disappear_only_when_types_match():
    ir = simplify(ft.make_ir(lambda x: ((x * 1.0) + 0.0 - 0.0) / 1.0)(np.ones(3)))
    assert _names(ir) == []
    # x (rank 0) * ones broadcast is not an identity: the output has another shape
    ir = simplify(ft.make_ir(lambda s: s * np.ones(3))(2.0))
    assert _names(ir)


def test_common_subexpressions_merge_and_reshapes_collapse():
    def f(x):
        a = fnp.sin(x) * fnp.sin(x)
        return fnp.reshape(fnp.reshape(a, (6,)), (3, 2)) + fnp.transpose(x)

    x = np.arange(6.0).reshape(2, 3)
    ir = simplify(ft.make_ir(f)(x))
    assert _names(ir).count("sin") == 1
    assert _names(ir).count("reshape") == 1
    assert_same(ir.eval(x), f(x))


def test_jit_runs_the_passes_and_agrees_with_eager():
    def f(x):
        return fnp.tanh(x * 1.0) + fnp.tanh(x) * (3.0 - 2.0)

    x = np.linspace(-2, 2, 5)
    jitted = ft.jit(f, backend="interpret")
    assert_same(jitted(x), f(x))
    assert _names_text(jitted.lower(x).as_text()) == ["tanh", "add"]


def _names_text(text):
    return [line.split("=")[1].split()[0] for line in text.splitlines()[1:-1]]


def test_outer_product_dot_general_becomes_a_fusible_multiply():
    from functrace import lax

    rng = np.random.default_rng(0)
    cases = [
        ((5, 3, 1), (5, 1, 4), (((2,), (1,)), ((0,), (0,)))),
        ((1, 3, 5), (4, 5, 1), (((0,), (2,)), ((2,), (1,)))),
        ((3, 1), (1, 4), (((1,), (0,)), ((), ()))),
    ]
    for ls, rs, dn in cases:
        a, b = rng.normal(size=ls), rng.normal(size=rs)
        f = lambda x, y, dn=dn: lax.dot_general(x, y, dn)  # noqa: E731
        fn = simplify(ft.make_ir(f)(a, b))
        assert "dot_general" not in [e.primitive.name for e in fn.eqns]
        fn.typecheck()
        np.testing.assert_allclose(fn.eval(a, b), f(a, b), rtol=1e-12)
        np.testing.assert_allclose(ft.jit(f)(a, b), f(a, b), rtol=1e-12)


def test_split_cotangent_becomes_one_concatenate():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 8))

    def f(v):
        parts = fnp.split(fnp.tanh(v), 4, axis=1)
        return sum((p * (k + 2.0)).sum() for k, p in enumerate(parts))

    grad = ft.grad(f)
    fn = simplify(ft.make_ir(grad)(x))
    names = [e.primitive.name for e in fn.eqns]
    assert "concatenate" in names and "pad" not in names
    fn.typecheck()
    np.testing.assert_allclose(fn.eval(x), grad(x), rtol=1e-12)
    # Pieces that do not tile the axis (a gap) stay pads and adds.
    g = lambda v: lax_pad(v[:, :2], (0, 6)) + lax_pad(v[:, 3:5], (3, 3))  # noqa: E731
    fn = simplify(ft.make_ir(g)(x))
    assert "concatenate" not in [e.primitive.name for e in fn.eqns]
    np.testing.assert_allclose(fn.eval(x), g(x))


def lax_pad(v, lo_hi):
    from functrace import lax

    return lax.pad(v, np.float64(0), ((0, 0, 0), (*lo_hi, 0)))


def test_simplify_reaches_into_loop_bodies():
    from functrace import lax

    rng = np.random.default_rng(2)
    xs = rng.normal(size=(5, 3, 8))

    def f(xs):
        def step(c, x):
            parts = fnp.split(fnp.tanh(x + c), 4, axis=1)
            return c * 0.5, sum((p * (k + 2.0)).sum() for k, p in enumerate(parts))

        return lax.scan(step, fnp.zeros((3, 8)), xs)[1].sum()

    grad = ft.grad(f)
    fn = simplify(ft.make_ir(grad)(xs))
    bodies = [e.params["body"] for e in fn.eqns if e.primitive.name == "scan"]
    names = [e.primitive.name for body in bodies for e in body.eqns]
    assert "concatenate" in names and "pad" not in names
    fn.typecheck()
    np.testing.assert_allclose(fn.eval(xs), grad(xs), rtol=1e-12)


# --- layout: transposes absorbed by products and reductions ------------------------------------


def _check_layout(f, *args, transposes_left=0):
    from functrace.core.layout import absorb_transposes

    fn = absorb_transposes(simplify(ft.make_ir(f)(*args)))
    fn.typecheck()
    assert _names(fn).count("transpose") == transposes_left, _names(fn)
    assert_same(fn.eval(*args), f(*args), rtol=1e-12)
    return fn


def test_products_and_reductions_read_through_transposes():
    from functrace import lax

    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(4, 5, 3)), rng.normal(size=(5, 4, 6))
    # dot_general contracts the transposed operand's own dims, in either position
    dn = (((0, 1), (0, 1)), ((), ()))
    _check_layout(lambda a, b: lax.dot_general(a, fnp.transpose(b, (1, 0, 2)), dn), a, b)
    _check_layout(lambda a, b: lax.dot_general(fnp.transpose(b, (1, 0, 2)), a, dn), a, b)
    # batch dims too
    dn_batch = (((2,), (0,)), ((0,), (2,)))
    c = rng.normal(size=(3, 6, 5))
    _check_layout(lambda a, c: lax.dot_general(fnp.transpose(a, (1, 0, 2)), c, dn_batch), a, c)
    # reductions: sum/max over the transposed axes
    _check_layout(lambda b: fnp.sum(fnp.transpose(b, (1, 0, 2)), axis=(0, 1)), b)
    _check_layout(lambda b: fnp.max(fnp.transpose(b, (2, 0, 1)), axis=0), b)
    # a transpose that reorders the free dims of the result stays
    _check_layout(lambda b: fnp.sum(fnp.transpose(b, (1, 0, 2)), axis=2), b, transposes_left=1)
    d = rng.normal(size=(6, 3))
    _check_layout(lambda a, d: lax.dot_general(a, fnp.transpose(d), (((2,), (0,)), ((), ()))), a, d)
    e = rng.normal(size=(3, 5, 6))
    dn_free = (((2,), (0,)), ((), ()))
    _check_layout(lambda a, e: lax.dot_general(a, fnp.transpose(e, (0, 2, 1)), dn_free), a, e, transposes_left=1)


def test_transpose_of_a_product_and_bias_moves_to_the_small_operand():
    rng = np.random.default_rng(4)
    x, w, bias = rng.normal(size=(6, 7, 3)), rng.normal(size=(3, 20)), rng.normal(size=20)
    fn = _check_layout(lambda x, w, b: fnp.swapaxes(x @ w + b, 0, 1), x, w, bias, transposes_left=1)
    (t,) = [e for e in fn.eqns if e.primitive.name == "transpose"]
    assert t.inputs[0] is fn.invars[0]  # the input is transposed, not the product
    # rhs free dims reordered: the weight is transposed instead
    from functrace import lax

    v = rng.normal(size=(3, 5, 4))
    dn = (((2,), (0,)), ((), ()))
    fn = _check_layout(lambda x, v: fnp.transpose(lax.dot_general(x, v, dn), (0, 1, 3, 2)), x, v, transposes_left=1)
    (t,) = [e for e in fn.eqns if e.primitive.name == "transpose"]
    assert t.inputs[0] is fn.invars[1]
    # the product used elsewhere too: left alone, the transpose stays
    g = lambda x, w: (fnp.swapaxes(x @ w, 0, 1), x @ w)  # noqa: E731
    _check_layout(g, x, w, transposes_left=1)


def test_loop_weights_used_transposed_are_transposed_once_before_the_loop():
    from functrace import lax
    from functrace.control_flow.scan_passes import pretranspose_loop_weights
    from functrace.core.layout import absorb_transposes

    rng = np.random.default_rng(5)
    w, u, h0, xs = rng.normal(size=(4, 6)), rng.normal(size=(4, 6)), rng.normal(size=(2, 6)), rng.normal(size=(3, 2, 6))

    def f(w, u, h0, xs):
        def step(h, x):
            h = fnp.tanh(h @ w.T @ u + x)  # w.T in the body: a product by the transpose
            return h, h.sum()

        return lax.scan(step, h0, xs)

    fn = pretranspose_loop_weights(absorb_transposes(simplify(ft.make_ir(f)(w, u, h0, xs))))
    fn.typecheck()
    (scan,) = [e for e in fn.eqns if e.primitive.name == "scan"]
    body = scan.params["body"]
    dots = [e for e in body.eqns if e.primitive.name == "dot_general"]
    assert {e.params["dimension_numbers"][0][1] for e in dots} == {(0,)}
    assert "transpose" in _names(fn)
    assert_same(fn.eval(w, u, h0, xs), f(w, u, h0, xs))
    assert_same(ft.jit(f)(w, u, h0, xs), f(w, u, h0, xs), rtol=1e-12)


def test_bias_of_a_scanned_input_is_added_in_the_loop_body():
    from functrace import lax
    from functrace.control_flow.scan_passes import sink_input_biases

    rng = np.random.default_rng(6)
    x, w, b = rng.normal(size=(5, 3, 4)), rng.normal(size=(4, 6)), rng.normal(size=6)
    u = rng.normal(size=(5, 6))

    def f(x, w, b, u):
        def step(h, xt):
            h = fnp.tanh(xt[0] + h)
            return h, h * xt[1]

        # the first input's bias is the same at every step: sunk; the second varies: stays
        return lax.scan(step, fnp.zeros((3, 6)), (x @ w + b, x @ w + u[:, None, :]))

    fn = sink_input_biases(simplify(ft.make_ir(f)(x, w, b, u)))
    fn.typecheck()
    (scan,) = [e for e in fn.eqns if e.primitive.name == "scan"]
    assert scan.params["num_consts"] == 1 and scan.inputs[0] is fn.invars[2]
    assert _names(fn).count("add") == 1  # only the varying one is added before the loop
    assert_same(fn.eval(x, w, b, u), f(x, w, b, u), rtol=1e-12)
    assert_same(ft.jit(f)(x, w, b, u), f(x, w, b, u), rtol=1e-12)
    grad = ft.grad(lambda *a: f(*a)[1].sum(), argnums=(1, 2))
    assert_same(ft.jit(grad)(x, w, b, u), grad(x, w, b, u), rtol=1e-10)  # eager: no passes
