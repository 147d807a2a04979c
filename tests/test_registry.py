"""Every primitive has every rule its stage of the project promises.

Every primitive has an implementation, a shape/dtype rule, a batch rule, and a jvp and a
vjp rule unless it is declared zero-derivative. Lowering tables (backends) are filled by
their own issues.
"""

from __future__ import annotations

import pytest

import functrace  # noqa: F401  (registers every primitive)
from functrace.core.primitive import (
    MissingRule,
    all_primitives,
    has_rule,
    jvp_rules,
    vjp_rules,
    zero_derivative,
)

EXPECTED = {
    "neg", "sign", "abs", "add", "sub", "mul", "div", "rem", "max", "min", "pow", "integer_pow",
    "floor", "ceil", "round", "exp", "log", "log1p", "expm1", "tanh", "sin", "cos", "sqrt", "rsqrt",
    "logistic", "erf", "eq", "ne", "lt", "le", "gt", "ge", "is_finite", "not", "and", "or", "xor",
    "shift_left", "shift_right_logical", "shift_right_arithmetic", "select", "convert_element_type",
    "stop_gradient", "broadcast_in_dim", "reshape", "transpose", "squeeze", "expand_dims",
    "reduce_sum", "reduce_max", "reduce_min", "reduce_prod", "argmax", "argmin", "cumsum",
    "dot_general", "conv_general_dilated", "reduce_window_sum", "reduce_window_max", "pad",
    "concatenate", "slice", "dynamic_slice", "dynamic_update_slice", "gather", "scatter_add", "iota",
}  # fmt: skip


def test_the_foundation_primitive_set_is_complete():
    missing = EXPECTED - set(all_primitives)
    assert not missing, f"primitives not defined: {sorted(missing)}"


@pytest.mark.parametrize("name", sorted(all_primitives))
def test_every_primitive_has_impl_and_shape_rule(name):
    prim = all_primitives[name]
    assert has_rule(prim, "impl"), f"{name} has no impl"
    assert has_rule(prim, "abstract_eval"), f"{name} has no shape/dtype rule"


@pytest.mark.parametrize("name", sorted(all_primitives))
def test_every_primitive_is_differentiable_or_declared_zero_derivative(name):
    prim = all_primitives[name]
    if prim in zero_derivative:
        return
    assert prim in jvp_rules, f"{name} has no jvp rule and is not declared zero-derivative"
    assert prim in vjp_rules, f"{name} has no vjp rule and is not declared zero-derivative"


@pytest.mark.parametrize("name", sorted(all_primitives))
def test_every_primitive_has_a_batch_rule(name):
    assert has_rule(all_primitives[name], "batch"), f"{name} has no batch rule"


def test_missing_rule_names_transformation_and_primitive():
    with pytest.raises(NotImplementedError, match="primitive 'x' has no jvp rule"):
        MissingRule("x", "jvp")()


def test_the_frontend_never_imports_a_backend():
    import subprocess
    import sys

    code = "import sys, functrace; print(sorted(m for m in ('llvmlite', 'numba', 'lowering') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
