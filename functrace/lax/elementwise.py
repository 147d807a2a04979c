"""Elementwise primitives: arithmetic, math functions, comparisons, logic, bits.

Elementwise primitives are strict: operands have equal shapes and dtypes
(``functrace.numpy`` does broadcasting and promotion). Each primitive is made by
a family helper and its rules follow directly under it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from functrace.core import dtypes
from functrace.core.abstract import ShapedArray
from functrace.core.ad_util import Zero, defelementwise, is_differentiable
from functrace.core.batching_util import elementwise_batch_rule
from functrace.core.primitive import Primitive, batch_rules, jvp_rules, vjp_rules, zero_derivative
from functrace.core.source_info import with_user_line
from functrace.core.trace import get_aval

# Which dtype kinds a primitive accepts: f float, i signed, u unsigned, b bool.
FLOAT = "f"
NUMERIC = "fiu"
INTEGER = "iu"
INT_OR_BOOL = "iub"
ANY = "fiub"

_KIND_NAMES = {"f": "floating", "i": "signed integer", "u": "unsigned integer", "b": "bool"}


def _check_kinds(name: str, aval: ShapedArray, kinds: str) -> None:
    if aval.dtype.kind not in kinds:
        allowed = " or ".join(_KIND_NAMES[k] for k in kinds)
        raise TypeError(with_user_line(f"{name} needs {allowed} operands, got {aval.dtype.name}"))


def unop(name: str, impl: Callable, kinds: str) -> Primitive:
    """A unary primitive whose output has its input's type."""
    prim = Primitive(name)

    def abstract_eval(x: ShapedArray) -> list[ShapedArray]:
        _check_kinds(name, x, kinds)
        return [x]

    prim.def_impl(lambda x: [np.asarray(impl(x), dtype=np.result_type(x))])
    prim.def_abstract_eval(abstract_eval)
    batch_rules[prim] = elementwise_batch_rule(prim)
    return prim


def elementwise_shape(name: str, *avals: ShapedArray) -> tuple[int, ...]:
    """Operands have one shape, except that rank-0 operands broadcast (as in XLA's
    scalar operands), which keeps constants like ``x * 2.0`` lean in the IR."""
    shapes = {a.shape for a in avals if a.shape != ()}
    if len(shapes) > 1:
        listed = " and ".join(str(a.shape) for a in avals)
        raise TypeError(with_user_line(f"{name} got incompatible shapes {listed}"))
    return shapes.pop() if shapes else ()


def binary_out_aval(name: str, x: ShapedArray, y: ShapedArray, kinds: str) -> ShapedArray:
    _check_kinds(name, x, kinds)
    shape = elementwise_shape(name, x, y)
    if x.dtype != y.dtype:
        raise TypeError(with_user_line(f"{name} got different dtypes {x.dtype.name} and {y.dtype.name}"))
    return ShapedArray(shape, x.dtype, x.weak_type and y.weak_type)


def binop(name: str, impl: Callable, kinds: str) -> Primitive:
    """A binary primitive on equal shapes and dtypes, output of the same type."""
    prim = Primitive(name)
    prim.def_impl(lambda x, y: [np.asarray(impl(x, y), dtype=np.result_type(x))])
    prim.def_abstract_eval(lambda x, y: [binary_out_aval(name, x, y, kinds)])
    batch_rules[prim] = elementwise_batch_rule(prim)
    return prim


def compare(name: str, impl: Callable, kinds: str = ANY) -> Primitive:
    """A comparison: equal shapes and dtypes in, bool out; zero derivative."""
    prim = Primitive(name)
    prim.def_impl(lambda x, y: [np.asarray(impl(x, y))])
    prim.def_abstract_eval(
        lambda x, y: [binary_out_aval(name, x, y, kinds).update(dtype=dtypes.bool_, weak_type=False)]
    )
    zero_derivative.add(prim)
    batch_rules[prim] = elementwise_batch_rule(prim)
    return prim


# --- arithmetic ---------------------------------------------------------------------

neg_p = unop("neg", np.negative, NUMERIC)
defelementwise(neg_p, lambda g, ans, x: neg_p.bind(g))
sign_p = unop("sign", np.sign, NUMERIC)
abs_p = unop("abs", np.abs, NUMERIC)
defelementwise(abs_p, lambda g, ans, x: mul_p.bind(g, sign_p.bind(x)))  # 0 at the kink, as JAX

add_p = binop("add", np.add, NUMERIC)
sub_p = binop("sub", np.subtract, NUMERIC)
mul_p = binop("mul", np.multiply, NUMERIC)


def _const(value: float, like) -> np.ndarray:
    """A rank-0 constant of ``like``'s dtype (a literal when staged)."""
    return np.asarray(value, dtype=get_aval(like).dtype)


defelementwise(add_p, lambda g, ans, x, y: g, lambda g, ans, x, y: g)
defelementwise(sub_p, lambda g, ans, x, y: g, lambda g, ans, x, y: neg_p.bind(g))
defelementwise(mul_p, lambda g, ans, x, y: mul_p.bind(g, y), lambda g, ans, x, y: mul_p.bind(g, x))


def _div_impl(x, y):
    if np.result_type(x).kind == "f":
        return np.true_divide(x, y)
    # C semantics (round toward zero); division by zero gives 0 instead of a warning.
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(y == 0, 0, np.abs(x) // np.where(y == 0, 1, np.abs(y)))
    return np.where((x < 0) != (y < 0), -q, q)


div_p = binop("div", _div_impl, NUMERIC)
defelementwise(
    div_p,
    lambda g, ans, x, y: div_p.bind(g, y),
    lambda g, ans, x, y: neg_p.bind(mul_p.bind(g, div_p.bind(ans, y))),
)


def _rem_impl(x, y):
    if np.result_type(x).kind == "f":
        return np.fmod(x, y)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(y == 0, 0, np.fmod(x, np.where(y == 0, 1, y)))


rem_p = binop("rem", _rem_impl, NUMERIC)


def _trunc(x):
    return mul_p.bind(sign_p.bind(x), floor_p.bind(abs_p.bind(x)))


defelementwise(rem_p, lambda g, ans, x, y: g, lambda g, ans, x, y: neg_p.bind(mul_p.bind(g, _trunc(div_p.bind(x, y)))))
max_p = binop("max", np.maximum, NUMERIC)
min_p = binop("min", np.minimum, NUMERIC)


def _choose(g, x, y, wins: Primitive):
    # Where x wins the gradient goes to x; on ties it is split evenly, as in JAX.
    dtype = get_aval(g).dtype
    share = add_p.bind(
        convert_element_type_p.bind(wins.bind(x, y), new_dtype=dtype, weak_type=False),
        mul_p.bind(convert_element_type_p.bind(eq_p.bind(x, y), new_dtype=dtype, weak_type=False), _const(0.5, g)),
    )
    return mul_p.bind(g, share)


defelementwise(max_p, lambda g, ans, x, y: _choose(g, x, y, gt_p), lambda g, ans, x, y: _choose(g, y, x, gt_p))
defelementwise(min_p, lambda g, ans, x, y: _choose(g, x, y, lt_p), lambda g, ans, x, y: _choose(g, y, x, lt_p))


def _pow_impl(x, y):
    if np.result_type(x).kind == "f":
        return np.power(x, y)
    # Integer powers: negative exponents give 1/x**n truncated (0 except for bases 1 and -1).
    y = np.asarray(y)
    positive = np.power(x, np.where(y < 0, 0, y))
    odd = (np.abs(y) % 2) == 1
    negative = np.where(x == 1, 1, np.where(x == -1, np.where(odd, -1, 1), 0))
    return np.where(y < 0, negative, positive)


pow_p = binop("pow", _pow_impl, NUMERIC)


def _pow_base_term(g, ans, x, y):
    # y * x**(y-1), defined as 0 where y == 0 (so x = 0 is not a NaN).
    d = mul_p.bind(y, pow_p.bind(x, sub_p.bind(y, _const(1, y))))
    return mul_p.bind(g, select_p.bind(eq_p.bind(y, _const(0, y)), _const(0, d), d))


def _pow_exponent_term(g, ans, x, y):
    # log(x) * x**y, defined as 0 where x == 0 (the limit for y > 0).
    zero = eq_p.bind(x, _const(0, x))
    safe_x = select_p.bind(zero, _const(1, x), x)
    d = mul_p.bind(log_p.bind(safe_x), ans)
    return mul_p.bind(g, select_p.bind(zero, _const(0, d), d))


defelementwise(pow_p, _pow_base_term, _pow_exponent_term)

integer_pow_p = Primitive("integer_pow")


def _integer_pow_impl(x, *, y: int):
    dtype = np.result_type(x)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        out = np.power(x, np.asarray(abs(y), dtype=dtype))
        return [np.asarray(out if y >= 0 else 1 / out, dtype=dtype)]


def _integer_pow_abstract_eval(x: ShapedArray, *, y: int) -> list[ShapedArray]:
    _check_kinds("integer_pow", x, NUMERIC)
    if y < 0 and x.dtype.kind != "f":
        raise TypeError(with_user_line(f"integer_pow with a negative exponent {y} needs a float operand"))
    return [x]


integer_pow_p.def_impl(_integer_pow_impl)
integer_pow_p.def_abstract_eval(_integer_pow_abstract_eval)


def _integer_pow_term(g, ans, x, *, y: int):
    if y == 0:
        return mul_p.bind(g, _const(0, g))
    if y == 1:
        return g
    d = x if y == 2 else integer_pow_p.bind(x, y=y - 1)
    return mul_p.bind(g, mul_p.bind(_const(y, x), d))


defelementwise(integer_pow_p, _integer_pow_term)
batch_rules[integer_pow_p] = elementwise_batch_rule(integer_pow_p)

# --- rounding -----------------------------------------------------------------------

floor_p = unop("floor", np.floor, FLOAT)
ceil_p = unop("ceil", np.ceil, FLOAT)
round_p = unop("round", np.round, FLOAT)  # half to even, as NumPy
for _p in (sign_p, floor_p, ceil_p, round_p):
    zero_derivative.add(_p)

# --- transcendental -----------------------------------------------------------------

exp_p = unop("exp", np.exp, FLOAT)
defelementwise(exp_p, lambda g, ans, x: mul_p.bind(g, ans))
log_p = unop("log", np.log, FLOAT)
defelementwise(log_p, lambda g, ans, x: div_p.bind(g, x))
log1p_p = unop("log1p", np.log1p, FLOAT)
defelementwise(log1p_p, lambda g, ans, x: div_p.bind(g, add_p.bind(x, _const(1, x))))
expm1_p = unop("expm1", np.expm1, FLOAT)
defelementwise(expm1_p, lambda g, ans, x: mul_p.bind(g, add_p.bind(ans, _const(1, ans))))
tanh_p = unop("tanh", np.tanh, FLOAT)
defelementwise(tanh_p, lambda g, ans, x: mul_p.bind(g, sub_p.bind(_const(1, ans), mul_p.bind(ans, ans))))
sin_p = unop("sin", np.sin, FLOAT)
defelementwise(sin_p, lambda g, ans, x: mul_p.bind(g, cos_p.bind(x)))
cos_p = unop("cos", np.cos, FLOAT)
defelementwise(cos_p, lambda g, ans, x: neg_p.bind(mul_p.bind(g, sin_p.bind(x))))
sqrt_p = unop("sqrt", np.sqrt, FLOAT)
defelementwise(sqrt_p, lambda g, ans, x: div_p.bind(g, mul_p.bind(_const(2, ans), ans)))


def _rsqrt(x):
    with np.errstate(divide="ignore"):
        return 1 / np.sqrt(x)


rsqrt_p = unop("rsqrt", _rsqrt, FLOAT)
defelementwise(rsqrt_p, lambda g, ans, x: mul_p.bind(g, mul_p.bind(_const(-0.5, x), div_p.bind(ans, x))))


def _logistic(x):
    # exp of a non-positive number only: no overflow warnings at either end.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


logistic_p = unop("logistic", _logistic, FLOAT)
defelementwise(logistic_p, lambda g, ans, x: mul_p.bind(g, mul_p.bind(ans, sub_p.bind(_const(1, ans), ans))))

_erf_vectorized = np.vectorize(math.erf, otypes=[np.float64])


def _erf(x):
    # NumPy has no erf; math.erf is correctly rounded in float64.
    return _erf_vectorized(x) if np.size(x) else np.zeros(np.shape(x))


erf_p = unop("erf", _erf, FLOAT)
defelementwise(
    erf_p,
    lambda g, ans, x: mul_p.bind(
        g, mul_p.bind(_const(2 / np.sqrt(np.pi), x), exp_p.bind(neg_p.bind(mul_p.bind(x, x))))
    ),
)

# --- predicates, logic and bits ------------------------------------------------------

eq_p = compare("eq", np.equal)
ne_p = compare("ne", np.not_equal)
lt_p = compare("lt", np.less, NUMERIC)
le_p = compare("le", np.less_equal, NUMERIC)
gt_p = compare("gt", np.greater, NUMERIC)
ge_p = compare("ge", np.greater_equal, NUMERIC)

is_finite_p = Primitive("is_finite")
is_finite_p.def_impl(lambda x: [np.asarray(np.isfinite(x))])


def _is_finite_abstract_eval(x: ShapedArray) -> list[ShapedArray]:
    _check_kinds("is_finite", x, FLOAT)
    return [ShapedArray(x.shape, dtypes.bool_)]


is_finite_p.def_abstract_eval(_is_finite_abstract_eval)
zero_derivative.add(is_finite_p)
batch_rules[is_finite_p] = elementwise_batch_rule(is_finite_p)

# On bool these are logical, on integers bitwise, as in NumPy and XLA.
not_p = unop("not", np.invert, INT_OR_BOOL)
and_p = binop("and", np.bitwise_and, INT_OR_BOOL)
or_p = binop("or", np.bitwise_or, INT_OR_BOOL)
xor_p = binop("xor", np.bitwise_xor, INT_OR_BOOL)


def _shift(np_shift: Callable) -> Callable:
    # Shifts by the bit width or more give 0 (XLA's rule); NumPy leaves them undefined.
    def impl(x, y):
        bits = np.result_type(x).itemsize * 8
        in_range = (y >= 0) & (y < bits)
        return np.where(in_range, np_shift(x, np.where(in_range, y, 0)), 0)

    return impl


def _shift_right_arithmetic(x, y):
    bits = np.result_type(x).itemsize * 8
    return np.right_shift(x, np.clip(y, 0, bits - 1))


def _shift_right_logical(x, y):
    # Shift the bits as unsigned, whatever the signedness of the type.
    x = np.asarray(x)
    unsigned = x.view(np.dtype(f"u{x.dtype.itemsize}"))
    out = _shift(np.right_shift)(unsigned, np.asarray(y).astype(unsigned.dtype))
    return np.asarray(out, dtype=unsigned.dtype).view(x.dtype)


shift_left_p = binop("shift_left", _shift(np.left_shift), INTEGER)
shift_right_logical_p = binop("shift_right_logical", _shift_right_logical, INTEGER)
shift_right_arithmetic_p = binop("shift_right_arithmetic", _shift_right_arithmetic, INTEGER)
for _p in (not_p, and_p, or_p, xor_p, shift_left_p, shift_right_logical_p, shift_right_arithmetic_p):
    zero_derivative.add(_p)

# --- select and conversion -----------------------------------------------------------

select_p = Primitive("select")
select_p.def_impl(
    lambda pred, on_true, on_false: [np.asarray(np.where(pred, on_true, on_false), dtype=np.result_type(on_true))]
)


def _select_abstract_eval(pred: ShapedArray, on_true: ShapedArray, on_false: ShapedArray) -> list[ShapedArray]:
    if pred.dtype != dtypes.bool_:
        raise TypeError(with_user_line(f"select needs a bool predicate, got {pred.dtype.name}"))
    out = binary_out_aval("select", on_true, on_false, ANY)
    return [out.update(shape=elementwise_shape("select", pred, on_true, on_false))]


select_p.def_abstract_eval(_select_abstract_eval)
defelementwise(
    select_p,
    None,
    lambda g, ans, pred, on_true, on_false: select_p.bind(pred, g, _const(0, g)),
    lambda g, ans, pred, on_true, on_false: select_p.bind(pred, _const(0, g), g),
)
batch_rules[select_p] = elementwise_batch_rule(select_p)

convert_element_type_p = Primitive("convert_element_type")


def _convert_element_type_impl(x, *, new_dtype: np.dtype, weak_type: bool):
    with np.errstate(invalid="ignore", over="ignore"):
        return [np.asarray(x).astype(new_dtype)]


def _convert_element_type_abstract_eval(x: ShapedArray, *, new_dtype: np.dtype, weak_type: bool):
    return [ShapedArray(x.shape, dtypes.canonicalize(new_dtype), weak_type)]


convert_element_type_p.def_impl(_convert_element_type_impl)
convert_element_type_p.def_abstract_eval(_convert_element_type_abstract_eval)


def _convert_element_type_jvp(primals, tangents, *, new_dtype, weak_type):
    (x,), (t,) = primals, tangents
    ans = convert_element_type_p.bind(x, new_dtype=new_dtype, weak_type=weak_type)
    if type(t) is Zero or not is_differentiable(get_aval(ans)):
        return [ans], [Zero(get_aval(ans))]
    return [ans], [convert_element_type_p.bind(t, new_dtype=new_dtype, weak_type=weak_type)]


def _convert_element_type_vjp(cts, primals, outs, *, new_dtype, weak_type):
    aval = get_aval(primals[0])
    if not is_differentiable(aval) or not is_differentiable(get_aval(outs[0])):
        return [None]
    return [convert_element_type_p.bind(cts[0], new_dtype=aval.dtype, weak_type=aval.weak_type)]


batch_rules[convert_element_type_p] = elementwise_batch_rule(convert_element_type_p)
jvp_rules[convert_element_type_p] = _convert_element_type_jvp
vjp_rules[convert_element_type_p] = _convert_element_type_vjp

stop_gradient_p = unop("stop_gradient", lambda x: x, ANY)
zero_derivative.add(stop_gradient_p)


# --- public wrappers (functrace.lax) --------------------------------------------------
# Defined last: several carry NumPy/XLA names that shadow builtins in this module.


def _lax_operands(*args):
    """Python scalars take the dtype of the array operands (weak typing); nothing broadcasts."""
    from functrace.core.abstract import is_python_scalar
    from functrace.core.trace import get_aval

    arrays = [get_aval(a) for a in args if not is_python_scalar(a)]
    if not arrays:
        return args
    dtype = arrays[0].dtype
    return tuple(np.asarray(a, dtype=dtype) if is_python_scalar(a) else a for a in args)


_UNARY_EXAMPLE = np.float64(0.5)
_BINARY_EXAMPLE = (np.int32(6), np.int32(3))


def _lax_unary(prim: Primitive, name: str | None = None, example=_UNARY_EXAMPLE) -> Callable:
    def fn(x):
        return prim.bind(*_lax_operands(x))

    fn.__name__ = fn.__qualname__ = name = name or prim.name
    fn.__doc__ = (
        f"The ``{prim.name}`` primitive.\n\n>>> import numpy as np\n>>> from functrace import lax\n"
        f">>> lax.{name}({example!r})\n{prim.impl(example)[0]!r}\n"
    )
    return fn


def _lax_binary(prim: Primitive, name: str | None = None, example=_BINARY_EXAMPLE) -> Callable:
    def fn(x, y):
        return prim.bind(*_lax_operands(x, y))

    fn.__name__ = fn.__qualname__ = name = name or prim.name
    a, b = example
    fn.__doc__ = (
        f"The ``{prim.name}`` primitive: equal shapes and dtypes (Python scalars adapt).\n\n"
        f">>> import numpy as np\n>>> from functrace import lax\n"
        f">>> lax.{name}({a!r}, {b!r})\n{prim.impl(a, b)[0]!r}\n"
    )
    return fn


neg = _lax_unary(neg_p)
sign = _lax_unary(sign_p)
abs = _lax_unary(abs_p)  # noqa: A001
floor = _lax_unary(floor_p)
ceil = _lax_unary(ceil_p)
round = _lax_unary(round_p)  # noqa: A001
exp = _lax_unary(exp_p)
log = _lax_unary(log_p)
log1p = _lax_unary(log1p_p)
expm1 = _lax_unary(expm1_p)
tanh = _lax_unary(tanh_p)
logistic = _lax_unary(logistic_p)
sin = _lax_unary(sin_p)
cos = _lax_unary(cos_p)
sqrt = _lax_unary(sqrt_p)
rsqrt = _lax_unary(rsqrt_p)
erf = _lax_unary(erf_p)
is_finite = _lax_unary(is_finite_p)
bitwise_not = _lax_unary(not_p, "bitwise_not", np.True_)

add = _lax_binary(add_p)
sub = _lax_binary(sub_p)
mul = _lax_binary(mul_p)
div = _lax_binary(div_p)
rem = _lax_binary(rem_p)
max = _lax_binary(max_p)  # noqa: A001
min = _lax_binary(min_p)  # noqa: A001
pow = _lax_binary(pow_p, example=(np.float64(2.0), np.float64(0.5)))  # noqa: A001
eq = _lax_binary(eq_p)
ne = _lax_binary(ne_p)
lt = _lax_binary(lt_p)
le = _lax_binary(le_p)
gt = _lax_binary(gt_p)
ge = _lax_binary(ge_p)
bitwise_and = _lax_binary(and_p, "bitwise_and")
bitwise_or = _lax_binary(or_p, "bitwise_or")
bitwise_xor = _lax_binary(xor_p, "bitwise_xor")
shift_left = _lax_binary(shift_left_p)
shift_right_logical = _lax_binary(shift_right_logical_p)
shift_right_arithmetic = _lax_binary(shift_right_arithmetic_p)


def integer_pow(x, y: int):
    """``x ** y`` for a static integer ``y``.

    >>> import numpy as np
    >>> from functrace import lax
    >>> lax.integer_pow(np.array([2.0, 3.0]), 3)
    array([ 8., 27.])
    """
    return integer_pow_p.bind(x, y=int(y))


def select(pred, on_true, on_false):
    """``on_true`` where ``pred`` else ``on_false`` (equal shapes).

    >>> import numpy as np
    >>> from functrace import lax
    >>> lax.select(np.array([True, False]), np.array([1.0, 2.0]), np.array([3.0, 4.0]))
    array([1., 4.])
    """
    on_true, on_false = _lax_operands(on_true, on_false)
    return select_p.bind(pred, on_true, on_false)


def convert_element_type(x, new_dtype):
    """Convert to ``new_dtype`` (float to int truncates toward zero, as C).

    >>> import numpy as np
    >>> from functrace import lax
    >>> lax.convert_element_type(np.array([1.7, -1.7]), np.int32)
    array([ 1, -1], dtype=int32)
    """
    return convert_element_type_p.bind(x, new_dtype=dtypes.canonicalize(new_dtype), weak_type=False)


def stop_gradient(x):
    """The identity, whose derivative is zero; applies to every leaf of a pytree.

    >>> import numpy as np
    >>> from functrace import lax
    >>> lax.stop_gradient(np.array([1.0]))
    array([1.])
    """
    from functrace.tree_util import tree_map

    return tree_map(lambda leaf: stop_gradient_p.bind(leaf), x)


__all__ = [
    "abs", "add", "bitwise_and", "bitwise_not", "bitwise_or", "bitwise_xor", "ceil",
    "convert_element_type", "cos", "div", "eq", "erf", "exp", "expm1", "floor", "ge", "gt",
    "integer_pow", "is_finite", "le", "log", "log1p", "logistic", "lt", "max", "min", "mul", "ne",
    "neg", "pow", "rem", "round", "rsqrt", "select", "shift_left", "shift_right_arithmetic",
    "shift_right_logical", "sign", "sin", "sqrt", "stop_gradient", "sub", "tanh",
]  # fmt: skip
