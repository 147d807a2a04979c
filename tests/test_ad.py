"""Automatic differentiation: the API, composition, custom rules, remat and errors."""

from __future__ import annotations

import numpy as np
import pytest
from reference import assert_same

import functrace as ft
import functrace.numpy as fnp
from functrace.testing import check_grads, numerical_grad

X = np.array([0.3, -1.2, 2.0])


def f_scalar(x):
    return fnp.sum(fnp.tanh(x) * fnp.exp(x) / (1.0 + x * x))


def test_grad_matches_finite_differences():
    assert_same(ft.grad(f_scalar)(X), numerical_grad(f_scalar, (X,))[0], rtol=1e-7, atol=1e-8)


def test_value_and_grad_argnums_and_has_aux():
    def loss(w, b, x):
        y = x @ w + b
        return fnp.sum(y**2), {"y": y}

    w, b, x = np.ones((3, 2)), np.array([0.5, -0.5]), np.arange(6.0).reshape(2, 3)
    (value, aux), (gw, gb) = ft.value_and_grad(loss, argnums=(0, 1), has_aux=True)(w, b, x)
    y = x @ w + b
    assert_same(value, np.sum(y**2))
    assert_same(aux["y"], y)
    assert_same(gw, x.T @ (2 * y))
    assert_same(gb, np.sum(2 * y, axis=0))
    g, aux2 = ft.grad(loss, argnums=1, has_aux=True)(w, b, x)
    assert_same(g, gb)
    assert_same(aux2["y"], y)


def test_grad_of_pytree_argument():
    def loss(params):
        return fnp.sum(params["w"] ** 2) + params["b"][0] * 3.0

    g = ft.grad(loss)({"w": np.array([1.0, 2.0]), "b": (np.float64(1.0), np.float64(5.0))})
    assert_same(g["w"], np.array([2.0, 4.0]))
    assert_same(g["b"][0], np.float64(3.0))
    assert_same(g["b"][1], np.float64(0.0))


def test_higher_order_derivatives():
    f = lambda x: x**3 * fnp.sin(x)  # noqa: E731
    d1 = lambda x: 3 * x**2 * np.sin(x) + x**3 * np.cos(x)  # noqa: E731
    d2 = lambda x: 6 * x * np.sin(x) + 6 * x**2 * np.cos(x) - x**3 * np.sin(x)  # noqa: E731
    d3 = lambda x: 6 * np.sin(x) + 18 * x * np.cos(x) - 9 * x**2 * np.sin(x) - x**3 * np.cos(x)  # noqa: E731
    x = 1.3
    assert_same(ft.grad(f)(x), np.asarray(d1(x)))
    assert_same(ft.grad(ft.grad(f))(x), np.asarray(d2(x)))
    assert_same(ft.grad(ft.grad(ft.grad(f)))(x), np.asarray(d3(x)))
    # jvp of grad: a Hessian-vector product
    _, hvp = ft.jvp(ft.grad(f), (x,), (1.0,))
    assert_same(hvp, np.asarray(d2(x)))


def test_grad_composes_with_jit_and_make_ir():
    g = ft.grad(f_scalar)
    assert_same(ft.jit(g, backend="interpret")(X), g(X))
    ir = ft.make_ir(g)(X)
    ir.typecheck()
    assert_same(ir.eval(X), g(X))
    # grad of a jitted function too
    assert_same(ft.grad(ft.jit(f_scalar, backend="interpret"))(X), g(X))


def _literal_operands(eqn):
    from functrace.core.ir import Literal

    return [float(np.asarray(a.val)) for a in eqn.inputs if isinstance(a, Literal)]


def test_gradient_ir_is_lean():
    ir = ft.make_ir(ft.grad(lambda x: fnp.sum(fnp.tanh(x) * 2.0)))(X)
    names = [e.primitive.name for e in ir.eqns]
    for eqn in ir.eqns:
        if eqn.primitive.name == "mul":
            assert 1.0 not in _literal_operands(eqn), f"multiplication by one: {ir}"
        if eqn.primitive.name in ("add", "sub"):
            assert 0.0 not in _literal_operands(eqn), f"addition of zero: {ir}"
    assert "add" not in names  # one path to x: nothing to accumulate
    assert "reduce_sum" not in names  # the forward loss is dead in the gradient and not staged
    assert len(ir.eqns) <= 7


def test_python_control_flow_on_concrete_values_under_grad():
    def f(x):
        if x > 0:
            return x * x
        return -3.0 * x

    assert_same(ft.grad(f)(2.0), np.asarray(4.0))
    assert_same(ft.grad(f)(-2.0), np.asarray(-3.0))
    with pytest.raises(ft.errors.ConcretizationError, match="depends on the argument x"):
        ft.jit(ft.grad(f), backend="interpret")(2.0)


def test_jvp_and_vjp_agree():
    def f(x, y):
        return fnp.sin(x) * y, x + y

    x, y = np.array([0.1, 0.2]), np.array([3.0, -1.0])
    tx, ty = np.array([1.0, 0.5]), np.array([-2.0, 0.25])
    (out, _), (t1, t2) = ft.jvp(f, (x, y), (tx, ty))
    assert_same(out, np.sin(x) * y)
    assert_same(t1, np.cos(x) * tx * y + np.sin(x) * ty)
    assert_same(t2, tx + ty)
    _, f_vjp = ft.vjp(f, x, y)
    ct = (np.array([1.0, 2.0]), np.array([0.5, 0.5]))
    gx, gy = f_vjp(ct)
    assert_same(gx, np.cos(x) * y * ct[0] + ct[1])
    assert_same(gy, np.sin(x) * ct[0] + ct[1])


def test_linearize_stages_only_tangent_work():
    y, f_jvp = ft.linearize(lambda x: fnp.sin(x) * x, X)
    assert_same(y, np.sin(X) * X)
    t = np.array([1.0, -1.0, 0.5])
    assert_same(f_jvp(t), (np.cos(X) * X + np.sin(X)) * t)
    assert {e.primitive.name for e in f_jvp.ir.eqns} <= {"mul", "add"}


def test_jacobians_and_hessian():
    f = lambda x: fnp.sin(x) * fnp.sum(x)  # noqa: E731
    expected = np.diag(np.cos(X) * X.sum()) + np.sin(X)[:, None]
    assert_same(ft.jacfwd(f)(X), expected)
    assert_same(ft.jacrev(f)(X), expected)
    h = ft.hessian(lambda x: fnp.sum(x**3) + x[0] * x[1])(X)
    assert_same(h, np.diag(6 * X) + np.array([[0, 1, 0], [1, 0, 0], [0, 0, 0.0]]))


def test_jacobian_pytrees_and_argnums():
    def f(a, b):
        return {"s": a * b, "t": fnp.sum(a)}

    a, b = np.array([1.0, 2.0]), np.array([3.0, 4.0])
    jac = ft.jacrev(f, argnums=(0, 1))(a, b)
    assert_same(jac["s"][0], np.diag(b))
    assert_same(jac["s"][1], np.diag(a))
    assert_same(jac["t"][0], np.ones(2))
    assert_same(ft.jacfwd(f, argnums=1)(a, b)["s"], np.diag(a))


def test_stop_gradient():
    assert_same(ft.grad(lambda x: x * ft.stop_gradient(x))(3.0), np.asarray(3.0))


def test_grad_errors():
    with pytest.raises(TypeError, match=r"grad requires a real scalar output, got f64\[3\]"):
        ft.grad(lambda x: x * 2)(X)
    with pytest.raises(TypeError, match="grad requires float inputs, but argument 0 has dtype int64"):
        ft.grad(lambda x: fnp.sum(x))(np.arange(3))
    with pytest.raises(TypeError, match="tangent must have its primal's shape and dtype"):
        ft.jvp(fnp.sin, (X,), (np.ones(2),))


# --- custom rules -----------------------------------------------------------------------------


def test_custom_jvp_both_modes_and_order_two():
    @ft.custom_jvp
    def softplus(x):
        return fnp.log1p(fnp.exp(x))

    @softplus.defjvp
    def softplus_jvp(primals, tangents):
        (x,), (t,) = primals, tangents
        return softplus(x), t * ft.lax.logistic(x)

    x = np.array([-2.0, 0.0, 100.0])
    assert_same(ft.grad(lambda x: fnp.sum(softplus(x)))(x), 1 / (1 + np.exp(-x)))
    check_grads(softplus, (np.array([-1.0, 0.5]),), order=2)
    assert_same(ft.jit(ft.grad(lambda x: fnp.sum(softplus(x))), backend="interpret")(x), 1 / (1 + np.exp(-x)))


def test_custom_jvp_with_nondiff_argnums_and_closure():
    scale = np.float64(3.0)

    @ft.custom_jvp
    def power(n, x):
        return x**n * scale

    power.nondiff_argnums = (0,)

    @power.defjvp
    def power_jvp(n, primals, tangents):
        (x,), (t,) = primals, tangents
        return power(n, x), n * x ** (n - 1) * scale * t

    assert_same(ft.grad(lambda x: power(3, x))(2.0), np.asarray(36.0))

    def outer(y):  # the custom function closes over a traced value
        @ft.custom_jvp
        def f(x):
            return x * y

        f.defjvp(lambda p, t: (f(p[0]), t[0] * y))
        return fnp.sum(f(np.array([1.0, 2.0])))

    assert_same(ft.jit(outer, backend="interpret")(2.0), np.asarray(6.0))


def test_custom_vjp_and_forward_mode_error():
    @ft.custom_vjp
    def clip_gradient(x):
        return x

    clip_gradient.defvjp(lambda x: (x, None), lambda res, g: (fnp.clip(g, -1.0, 1.0),))
    assert_same(ft.grad(lambda x: fnp.sum(5.0 * clip_gradient(x)))(X), np.ones(3))
    assert_same(ft.jit(ft.grad(lambda x: 0.5 * clip_gradient(x)), backend="interpret")(1.0), np.asarray(0.5))
    with pytest.raises(TypeError, match=r"custom_vjp function is not supported.*custom_jvp"):
        ft.jvp(clip_gradient, (X,), (X,))


def test_custom_vjp_residuals_and_nondiff():
    @ft.custom_vjp
    def scaled_sin(k, x):
        return fnp.sin(x) * k

    def fwd(k, x):
        return scaled_sin(k, x), fnp.cos(x)

    def bwd(k, cos_x, g):
        return (g * cos_x * k,)

    scaled_sin.nondiff_argnums = (0,)
    scaled_sin.defvjp(fwd, bwd)
    assert_same(ft.grad(lambda x: fnp.sum(scaled_sin(2.0, x)))(X), 2 * np.cos(X))


def test_check_grads_catches_a_wrong_rule():
    @ft.custom_vjp
    def wrong(x):
        return fnp.sin(x)

    wrong.defvjp(lambda x: (fnp.sin(x), x), lambda x, g: (g * fnp.sin(x),))  # should be cos
    check_grads(fnp.sin, (X,), order=2)
    with pytest.raises(AssertionError, match="reverse mode"):
        check_grads(wrong, (X,), modes=("rev",))


def test_checkpoint_recomputes_instead_of_storing():
    from functrace.ad import vjp_flat

    def block(x):
        return fnp.sin(fnp.sin(fnp.sin(x)))

    def tape_length(f):
        _, _, _, _, tape, _ = vjp_flat(f, [X], ft.tree_util.tree_structure((X,)))
        return len(tape.entries)

    assert tape_length(block) == 3
    assert tape_length(ft.checkpoint(block)) == 1
    assert_same(ft.grad(lambda x: fnp.sum(ft.checkpoint(block)(x)))(X), ft.grad(lambda x: fnp.sum(block(x)))(X))
    check_grads(ft.checkpoint(block), (X,), order=2)


def test_debug_nans_names_the_primitive():
    ft.config.update("debug_nans", True)
    try:

        def f(x):
            return fnp.sqrt(fnp.log(x))

        with pytest.raises(FloatingPointError, match="'sqrt' produced a NaN"):
            f(np.array([0.5, 2.0]))
        with pytest.raises(FloatingPointError, match=r"'sqrt' produced a NaN[\s\S]*traced at .*test_ad.py"):
            ft.jit(f, backend="interpret")(np.array([0.5, 2.0]))
        with pytest.raises(FloatingPointError, match="'div' produced a NaN"):  # in the backward pass
            ft.grad(lambda x: fnp.sum(fnp.sqrt(x) * 0.0))(np.array([0.0, 1.0]))
    finally:
        ft.config.update("debug_nans", False)


def test_check_grads_tolerances_follow_the_computing_dtype():
    def f32_inside(x):
        return fnp.sin(x.astype(np.float32)) * 3.0

    check_grads(f32_inside, (X,), order=1)  # float32 defaults
    with pytest.raises(AssertionError):
        check_grads(f32_inside, (X,), order=1, atol=1e-9, rtol=1e-9, eps=1e-4)


def test_vjp_with_aux_and_cotangent_checks():
    out, f_vjp, aux = ft.vjp(lambda x: (fnp.sin(x), {"n": x.shape[0]}), X, has_aux=True)
    assert aux == {"n": 3}
    assert_same(out, np.sin(X))
    assert_same(f_vjp(np.ones(3))[0], np.cos(X))
    with pytest.raises(TypeError, match="cotangent of shape"):
        f_vjp(np.ones(2))
