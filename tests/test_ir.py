"""The IR: pretty printer and DOT goldens, the type checker, eval, constants and closures."""

from __future__ import annotations

import numpy as np
import pytest
from reference import assert_same

import functrace as ft
import functrace.numpy as fnp
from functrace.core.abstract import ShapedArray
from functrace.core.ir import Eqn, Function, Literal, Var
from functrace.errors import IRTypeError
from functrace.lax import elementwise as ew

F32_3 = np.ones(3, np.float32)


def test_pretty_printer_golden():
    ir = ft.make_ir(lambda a, b: fnp.tanh(a * b))(F32_3, F32_3)
    assert str(ir) == ("{ lambda ; a:f32[3] b:f32[3]. let\n    c:f32[3] = mul a b\n    d:f32[3] = tanh c\n  in (d,) }")


def test_pretty_printer_constants_literals_params_and_several_outputs():
    w = np.arange(6.0, dtype=np.float32).reshape(2, 3)

    def f(x):
        y = w @ x + 1.0
        return y.sum(), y

    ir = ft.make_ir(f)(F32_3)
    assert str(ir) == (
        "{ lambda a:f32[2,3]; b:f32[3]. let\n"
        "    c:f32[2] = dot_general[dimension_numbers=(((1,), (0,)), ((), ()))] a b\n"
        "    d:f32[2] = add c 1.0:f32[]\n"
        "    e:f32[] = reduce_sum[axes=(0,)] d\n"
        "  in (e, d) }"
    )
    total, y = ir.eval(F32_3)
    assert_same(y, w @ F32_3 + np.float32(1))
    assert_same(total, (w @ F32_3 + np.float32(1)).sum())


def test_dot_golden():
    ir = ft.make_ir(lambda x: fnp.sin(x) * 2.0)(np.ones(2))
    assert ir.to_dot() == "\n".join(
        [
            "digraph functrace {",
            "  rankdir=TB;",
            '  node [fontname="Helvetica", fontsize=10];',
            '  edge [fontname="Helvetica", fontsize=9];',
            '  in0 [shape=ellipse, style=filled, fillcolor=lightblue, label="x\\nf64[2]"];',
            '  op0 [shape=box, label="sin\\nf64[2]"];',
            '  in0 -> op0 [label="f64[2]"];',
            '  op1 [shape=box, label="mul\\nf64[2]"];',
            '  op0 -> op1 [label="f64[2]"];',
            f'  op1_lit{id(ir.eqns[1].inputs[1])} [shape=plaintext, label="2.0:f64[]"];',
            f"  op1_lit{id(ir.eqns[1].inputs[1])} -> op1;",
            '  out0 [shape=ellipse, style=filled, fillcolor=palegreen, label="out0\\nf64[2]"];',
            "  op1 -> out0;",
            "}",
        ]
    )


def test_names_of_pytree_arguments_appear_in_dot():
    ir = ft.make_ir(lambda params, x: params["w"] * x)({"w": np.ones(2)}, np.ones(2))
    dot = ir.to_dot()
    assert "params['w']" in dot and 'label="x\\nf64[2]"' in dot


def test_pytree_inputs_and_outputs_round_trip_through_eval():
    def f(params, xs):
        w, b = params
        return {"out": [w * xs[0] + b, xs[1]], "n": None}

    args = ((np.float32(2), np.ones(2, np.float32)), (np.arange(2.0, dtype=np.float32), np.int32(7)))
    ir = ft.make_ir(f)(*args)
    out = ir.eval(*args)
    assert out["n"] is None
    assert_same(out["out"], [np.array([1.0, 3.0], np.float32), np.asarray(np.int32(7))])


def test_static_argnums_are_baked_in():
    ir = ft.make_ir(lambda x, n: x * n if n > 1 else x, static_argnums=1)(np.ones(2), 3)
    assert "mul a 3.0:f64[]" in str(ir)
    assert_same(ir.eval(np.full(2, 2.0)), np.full(2, 6.0))


def test_closure_over_array_becomes_constvar():
    table = np.arange(4.0)
    ir = ft.make_ir(lambda x: x + table)(np.ones(4))
    assert len(ir.constvars) == 1 and np.array_equal(ir.consts[0], table)


def test_constant_only_computation_is_staged():
    ir = ft.make_ir(lambda x: x + fnp.exp(np.zeros(3)))(np.ones(3))
    assert [e.primitive.name for e in ir.eqns] == ["exp", "add"]


def test_eval_rejects_wrong_argument_types():
    ir = ft.make_ir(lambda x: x + 1)(np.ones(3, np.float32))
    with pytest.raises(TypeError, match="traced as f32\\[3\\] but got f64\\[3\\]"):
        ir.eval(np.ones(3))


def test_equations_record_the_users_line():
    ir = ft.make_ir(lambda x: fnp.sin(x))(np.ones(2))
    assert "test_ir.py" in ir.eqns[0].source


# --- the type checker ------------------------------------------------------------------


def _var(shape=(3,), dtype=np.float32):
    return Var(ShapedArray(shape, np.dtype(dtype)))


def test_typecheck_accepts_traced_ir():
    ft.make_ir(lambda x: (x * x).sum())(F32_3).typecheck()


def test_typecheck_rejects_wrong_output_type():
    a, b = _var(), _var((4,))
    fn = Function([a], [Eqn(ew.sin_p, [a], {}, [b])], [b])
    with pytest.raises(IRTypeError, match=r"equation 0 \(sin\): output declared f32\[4\], the rule gives f32\[3\]"):
        fn.typecheck()


def test_typecheck_rejects_use_before_definition():
    a, b, c = _var(), _var(), _var()
    fn = Function([a], [Eqn(ew.add_p, [a, b], {}, [c])], [c])
    with pytest.raises(IRTypeError, match="used before it is defined"):
        fn.typecheck()


def test_typecheck_rejects_double_definition():
    a, b = _var(), _var()
    fn = Function([a], [Eqn(ew.sin_p, [a], {}, [b]), Eqn(ew.cos_p, [a], {}, [b])], [b])
    with pytest.raises(IRTypeError, match="defined twice"):
        fn.typecheck()


def test_typecheck_rejects_ill_typed_inputs():
    a, b, c = _var(), _var(dtype=np.int32), _var()
    fn = Function([a, b], [Eqn(ew.add_p, [a, b], {}, [c])], [c])
    with pytest.raises(IRTypeError, match="different dtypes"):
        fn.typecheck()


def test_typecheck_rejects_bad_literal():
    a, c = _var(), _var()
    lit = Literal(np.float64(1.0), ShapedArray((), np.dtype(np.float32)))
    fn = Function([a], [Eqn(ew.add_p, [a, lit], {}, [c])], [c])
    with pytest.raises(IRTypeError, match="literal value float64 does not match"):
        fn.typecheck()


def test_typecheck_rejects_undefined_output():
    a, b = _var(), _var()
    with pytest.raises(IRTypeError, match="used before it is defined"):
        Function([a], [], [b]).typecheck()


def test_typecheck_rejects_wrong_number_of_outputs():
    a, b, c = _var(), _var(), _var()
    fn = Function([a], [Eqn(ew.sin_p, [a], {}, [b, c])], [b])
    with pytest.raises(IRTypeError, match="2 outputs, the rule gives 1"):
        fn.typecheck()


def test_nested_staging_closes_over_outer_tracers():
    def outer(x):
        inner = ft.make_ir(lambda y: fnp.sin(y) * x)(x)
        # The inner IR captured the outer tracer x as a constant...
        assert len(inner.constvars) == 1
        # ...and evaluating it inside the outer trace records its equations there.
        return inner.eval(x) + 1.0

    ir = ft.make_ir(outer)(np.ones(2))
    assert [e.primitive.name for e in ir.eqns] == ["sin", "mul", "add"]
    assert_same(ir.eval(np.full(2, 0.5)), np.sin(0.5) * 0.5 + np.ones(2))
