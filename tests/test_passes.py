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
