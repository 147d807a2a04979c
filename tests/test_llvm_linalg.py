"""The CPU backend on ``dot_general``: compiled results equal eager evaluation for every
kind of dimension numbers (operands read in place, transposed by gemm's flags, or
copied), every dtype, BLAS and the loop nest, empty dims, and under jit(grad) and
jit(vmap).

Float operands hold small integers, so every product and partial sum is exact and any
summation order (BLAS blocking, the loop nest) gives the eager result bit for bit; one
test uses general floats with a tolerance that grows with the contraction length."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from reference import assert_same

import functrace as ft
import functrace.numpy as fnp
import lowering.llvm  # noqa: F401  (registers the backend)
from functrace import lax
from lowering.llvm import engine

RNG = np.random.default_rng(0)
DTYPES = [np.dtype(d) for d in ("float32", "float64", "int32", "int64", "uint32")]


def cpu(f):
    return ft.jit(f, backend="cpu")


def sample(dtype, shape) -> np.ndarray:
    """Small integers of ``dtype``: float sums of their products are exact."""
    return RNG.integers(0 if np.dtype(dtype).kind == "u" else -8, 8, shape).astype(dtype)


def dims(contract, batch=((), ())):
    return (tuple(map(tuple, contract)), tuple(map(tuple, batch)))


# (lhs shape, rhs shape, dimension numbers); sizes large enough that float32 goes through BLAS
CASES = [
    ((24, 20), (20, 16), dims(((1,), (0,)))),  # A @ B, both in place
    ((20, 24), (20, 16), dims(((0,), (0,)))),  # A.T @ B: transpose flag
    ((24, 20), (16, 20), dims(((1,), (1,)))),  # A @ B.T
    ((20, 24), (16, 20), dims(((0,), (1,)))),  # A.T @ B.T
    ((3, 5), (5, 4), dims(((1,), (0,)))),  # tiny: the loop nest
    ((20,), (20,), dims(((0,), (0,)))),  # inner product
    ((7,), (9,), dims(((), ()))),  # outer product
    ((), (), dims(((), ()))),  # scalars
    ((24, 20), (), dims(((), ()))),  # by a scalar
    ((4, 6, 20), (20, 16), dims(((2,), (0,)))),  # lhs free dims flatten
    ((4, 20, 6), (20, 16), dims(((1,), (0,)))),  # lhs free dims do not flatten: copied
    ((6, 4, 5, 8), (8, 5, 16), dims(((2, 3), (1, 0)))),  # two contracting dims, reversed in rhs: copied
    ((6, 4, 5, 8), (5, 8, 16), dims(((2, 3), (0, 1)))),  # two contracting dims, in place
    ((3, 24, 20), (3, 20, 16), dims(((2,), (1,)), ((0,), (0,)))),  # batched matmul
    ((24, 3, 20), (20, 16, 3), dims(((2,), (0,)), ((1,), (2,)))),  # batch dims inside: strided views
    ((2, 24, 3, 20), (3, 16, 2, 20), dims(((3,), (3,)), ((0, 2), (2, 0)))),  # two batch dims
    ((24, 20, 3), (3, 20, 16), dims(((1,), (1,)), ((2,), (0,)))),  # batch innermost: copied for BLAS
    ((0, 20), (20, 16), dims(((1,), (0,)))),  # M = 0
    ((24, 0), (0, 16), dims(((1,), (0,)))),  # K = 0: zeros
    ((2, 24, 0), (2, 0, 16), dims(((2,), (1,)), ((0,), (0,)))),  # K = 0, batched
    ((0, 5, 3), (0, 3, 4), dims(((2,), (1,)), ((0,), (0,)))),  # empty batch
    ((1, 20), (20, 1), dims(((1,), (0,)))),  # 1 x 1 result
]


def _dot(numbers):
    return lambda a, b: lax.dot_general(a, b, numbers)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(("lhs_shape", "rhs_shape", "numbers"), CASES)
def test_dot_general_matches_eager(lhs_shape, rhs_shape, numbers, dtype):
    a, b = sample(dtype, lhs_shape), sample(dtype, rhs_shape)
    f = _dot(numbers)
    assert_same(cpu(f)(a, b), f(a, b), rtol=0, atol=0)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dot_general_general_floats(dtype):
    """Random floats: equal within rounding of a length-K sum (the summation orders differ)."""
    k = 300
    a, b = RNG.normal(size=(3, 40, k)).astype(dtype), RNG.normal(size=(3, k, 50)).astype(dtype)
    f = _dot(dims(((2,), (1,)), ((0,), (0,))))
    eps = np.finfo(dtype).eps
    assert_same(cpu(f)(a, b), f(a, b), rtol=0, atol=float(4 * np.sqrt(k) * eps * np.abs(f(a, b)).max()))


def test_dot_general_with_a_literal_operand():
    y = sample(np.float32, (3, 4))
    f = _dot(dims(((), ())))
    assert_same(cpu(lambda y: f(np.float32(2.0), y))(y), f(np.float32(2.0), y), rtol=0, atol=0)


def test_dot_general_nan_and_inf_propagate():
    a, b = sample(np.float32, (24, 20)), sample(np.float32, (20, 16))
    a[3, 5], b[7, 2], b[0, 9] = np.nan, np.inf, -np.inf
    with np.errstate(invalid="ignore"):
        assert_same(cpu(fnp.matmul)(a, b), fnp.matmul(a, b), rtol=0, atol=0)


def test_dot_general_uses_blas_for_floats_only():
    if engine.blas() is None:
        pytest.skip("no BLAS in this process")
    a = sample(np.float32, (64, 64))
    f32 = cpu(fnp.matmul).lower(a, a).compile().compiled.llvm_ir()
    i32 = cpu(fnp.matmul).lower(a.astype(np.int32), a.astype(np.int32)).compile().compiled.llvm_ir()
    assert "functrace_sgemm" in f32
    assert "functrace_sgemm" not in i32 and "functrace_dgemm" not in i32


def test_dot_general_without_blas(monkeypatch):
    """The loop nest for floats too when the process has no BLAS."""
    monkeypatch.setenv("FUNCTRACE_NO_BLAS", "1")
    engine.blas.cache_clear()
    try:
        for lhs_shape, rhs_shape, numbers in CASES[:4] + CASES[13:17]:
            a, b = sample(np.float64, lhs_shape), sample(np.float64, rhs_shape)
            f = _dot(numbers)
            compiled = cpu(f).lower(a, b).compile()
            assert "gemm" not in compiled.compiled.llvm_ir()
            assert_same(compiled(a, b), f(a, b), rtol=0, atol=0)
    finally:
        monkeypatch.delenv("FUNCTRACE_NO_BLAS")
        engine.blas.cache_clear()
        engine.blas()


@st.composite
def contractions(draw):
    """Random dimension numbers: a permutation of batch, free and contracting dims per operand."""
    n_batch, n_contract = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    n_lfree, n_rfree = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    size = st.integers(0, 5)
    batch = [draw(size) for _ in range(n_batch)]
    contract = [draw(size) for _ in range(n_contract)]
    lhs_roles = [("b", i) for i in range(n_batch)] + [("c", i) for i in range(n_contract)]
    rhs_roles = list(lhs_roles)
    lhs_roles += [("f", draw(size)) for _ in range(n_lfree)]
    rhs_roles += [("f", draw(size)) for _ in range(n_rfree)]
    lhs_roles, rhs_roles = draw(st.permutations(lhs_roles)), draw(st.permutations(rhs_roles))

    def layout(roles):
        shape = [batch[i] if r == "b" else contract[i] if r == "c" else i for r, i in roles]
        where = {(r, i): d for d, (r, i) in enumerate(roles) if r != "f"}
        return shape, where

    (lshape, lw), (rshape, rw) = layout(lhs_roles), layout(rhs_roles)
    numbers = dims(
        ([lw["c", i] for i in range(n_contract)], [rw["c", i] for i in range(n_contract)]),
        ([lw["b", i] for i in range(n_batch)], [rw["b", i] for i in range(n_batch)]),
    )
    return tuple(lshape), tuple(rshape), numbers, draw(st.sampled_from(DTYPES))


@given(contractions())
def test_dot_general_random_dimension_numbers(case):
    lhs_shape, rhs_shape, numbers, dtype = case
    a, b = sample(dtype, lhs_shape), sample(dtype, rhs_shape)
    f = _dot(numbers)
    assert_same(cpu(f)(a, b), f(a, b), rtol=0, atol=0)


# --- under transformations ------------------------------------------------------------------


def _mlp_loss(params, x, y):
    for w, b in params[:-1]:
        x = fnp.tanh(x @ w + b)
    w, b = params[-1]
    logits = x @ w + b
    return -fnp.mean(fnp.sum(ft.nn.log_softmax(logits) * y, axis=1))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_jit_grad_of_an_mlp(dtype):
    sizes = [30, 64, 48, 10]
    params = [
        (RNG.normal(size=(m, n)).astype(dtype) / np.sqrt(m), RNG.normal(size=n).astype(dtype))
        for m, n in itertools.pairwise(sizes)
    ]
    x = RNG.normal(size=(32, 30)).astype(dtype)
    y = np.eye(10, dtype=dtype)[RNG.integers(0, 10, 32)]
    tol = {"rtol": 1e-4, "atol": 1e-6} if dtype == "float32" else {"rtol": 1e-10, "atol": 1e-12}
    assert_same(cpu(ft.grad(_mlp_loss))(params, x, y), ft.grad(_mlp_loss)(params, x, y), **tol)


def test_jit_vmap_of_matmul_and_per_example_grads():
    w = sample(np.float32, (20, 16))
    xs = sample(np.float32, (8, 5, 20))
    f = ft.vmap(lambda x: x @ w)
    assert_same(cpu(f)(xs), f(xs), rtol=0, atol=0)
    both = ft.vmap(lambda x, v: fnp.einsum("ij,jk,k->i", x, w, v))
    vs = sample(np.float32, (8, 16))
    assert_same(cpu(both)(xs, vs), both(xs, vs), rtol=0, atol=0)
    per_example = ft.vmap(ft.grad(lambda w, x: fnp.sum(fnp.tanh(x @ w))), in_axes=(None, 0))
    xs = RNG.normal(size=(8, 5, 20)).astype(np.float32)
    assert_same(cpu(per_example)(w / 20, xs), per_example(w / 20, xs), rtol=1e-5, atol=1e-6)
