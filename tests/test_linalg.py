"""dot_general and the fnp contractions (matmul, dot, einsum, ...) against NumPy."""

from __future__ import annotations

import re
import string

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from reference import check_against_numpy

import functrace as ft
import functrace.numpy as fnp
from functrace import lax
from functrace.testing import strategies as fts

ALL_DTYPES = ["float32", "float64", "int32", "int64", "uint32", "bool"]


def contraction_tolerance(dtype: np.dtype) -> dict[str, float]:
    """Sums in a different order than NumPy's: absolute slack for float32 cancellation."""
    if dtype == np.float32:
        return {"rtol": 1e-5, "atol": 1e-3}
    return {"rtol": 1e-12, "atol": 1e-9} if dtype == np.float64 else {}


def random_array(rng: np.random.Generator, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    if dtype == "bool":
        return rng.random(shape) < 0.5
    low = 0 if dtype == "uint32" else -5
    return rng.integers(low, 6, shape).astype(dtype) if "int" in dtype else rng.normal(size=shape).astype(dtype)


# --- dot_general ------------------------------------------------------------------------


@st.composite
def dot_general_case(draw):
    """Operands and dimension_numbers with batch, contracting and free dims in any order,
    and the equivalent einsum subscripts."""
    counts = [draw(st.integers(0, 2)) for _ in range(4)]  # batch, contract, lhs free, rhs free
    letters = iter(string.ascii_letters)
    groups = [[next(letters) for _ in range(n)] for n in counts]
    sizes = {c: draw(st.integers(0, 3)) for g in groups for c in g}
    batch, contract, lhs_free, rhs_free = groups
    lhs = draw(st.permutations(batch + contract + lhs_free))
    rhs = draw(st.permutations(batch + contract + rhs_free))
    dims = (
        (tuple(lhs.index(c) for c in contract), tuple(rhs.index(c) for c in contract)),
        (tuple(lhs.index(c) for c in batch), tuple(rhs.index(c) for c in batch)),
    )
    # Output: batch dims in dimension_numbers order, then free dims in operand order.
    out = batch + [c for c in lhs if c in lhs_free] + [c for c in rhs if c in rhs_free]
    subscripts = f"{''.join(lhs)},{''.join(rhs)}->{''.join(out)}"
    dtype = draw(fts.dtypes("fiu"))
    x = draw(fts.arrays(dtype, tuple(sizes[c] for c in lhs)))
    y = draw(fts.arrays(dtype, tuple(sizes[c] for c in rhs)))
    return x, y, dims, subscripts


@given(dot_general_case())
def test_dot_general_matches_einsum(case):
    x, y, dims, subscripts = case
    check_against_numpy(
        lambda a, b: lax.dot_general(a, b, dims),
        lambda a, b: np.einsum(subscripts, a, b),
        x,
        y,
        **contraction_tolerance(x.dtype),
    )


def test_dot_general_preferred_element_type():
    x = np.full((2, 70000), 70000, np.int32)  # the int32 sum would overflow
    dims = (((1,), (1,)), ((), ()))
    check_against_numpy(
        lambda a: lax.dot_general(a, a, dims, preferred_element_type=np.int64),
        lambda a: np.einsum("ik,jk->ij", a.astype(np.int64), a.astype(np.int64)),
        x,
    )
    ir = str(ft.make_ir(lambda a, b: lax.dot_general(a, b, dims, preferred_element_type=np.float64))(x, x * 1.0))
    assert ir.count("convert_element_type") == 1  # only the int32 operand is converted


def test_dot_general_errors():
    x, y = np.ones((2, 3), np.float32), np.ones((4, 5), np.float32)
    with pytest.raises(TypeError, match=r"dot_general got incompatible shapes \(2, 3\) and \(4, 5\)"):
        ft.make_ir(lambda a, b: lax.dot_general(a, b, (((1,), (0,)), ((), ()))))(x, y)
    with pytest.raises(TypeError, match=r"dot_general got different dtypes float32 and float64"):
        ft.make_ir(lambda a, b: lax.dot_general(a, b, (((1,), (1,)), ((), ()))))(x, y[:2, :3] * np.float64(1))


# --- matmul and friends --------------------------------------------------------------------


@st.composite
def matmul_shapes(draw):
    """NumPy matmul operands: broadcastable batch dims, or 1-D vectors on either side."""
    batch1, batch2 = draw(fts.broadcastable_shapes(2, max_dims=2, max_side=3))
    m, k, n = (draw(st.integers(0, 3)) for _ in range(3))
    s1 = (k,) if draw(st.booleans()) else (*batch1, m, k)
    s2 = (k,) if draw(st.booleans()) else (*batch2, k, n)
    return s1, s2


@given(shapes=matmul_shapes(), dtype=fts.dtypes(), seed=st.integers(0, 2**16))
def test_matmul(shapes, dtype, seed):
    rng = np.random.default_rng(seed)
    x, y = (random_array(rng, s, dtype.name) for s in shapes)
    tol = contraction_tolerance(dtype)
    check_against_numpy(fnp.matmul, np.matmul, x, y, **tol)
    check_against_numpy(lambda a, b: a @ fnp.asarray(b), lambda a, b: a @ b, x, y, **tol)


@st.composite
def dot_shapes(draw):
    """NumPy dot operands: scalars, vectors, N-d with M-d (last axis with second-to-last)."""
    k = draw(st.integers(0, 3))
    lead1, lead2 = draw(fts.shapes(max_dims=2, max_side=3)), draw(fts.shapes(max_dims=2, max_side=3))
    kind1, kind2 = (
        draw(st.sampled_from(["scalar", "vector", "array"])),
        draw(st.sampled_from(["scalar", "vector", "array"])),
    )
    s1 = {"scalar": (), "vector": (k,), "array": (*lead1, k)}[kind1]
    s2 = {"scalar": (), "vector": (k,), "array": (*lead2, k, draw(st.integers(0, 3)))}[kind2]
    return s1, s2


@pytest.mark.parametrize("name", ["dot", "inner"])
@given(shapes=dot_shapes(), dtype=fts.dtypes(), seed=st.integers(0, 2**16))
def test_dot_and_inner(name, shapes, dtype, seed):
    rng = np.random.default_rng(seed)
    x, y = (random_array(rng, s, dtype.name) for s in shapes)
    if name == "inner" and y.ndim >= 2:
        y = np.swapaxes(y, -1, -2)  # inner sums over the last axis of both
    check_against_numpy(getattr(fnp, name), getattr(np, name), x, y, **contraction_tolerance(dtype))


PAIRS = [((3,), (3,)), ((2, 3), (3, 2)), ((0,), (0,)), ((), ()), ((2, 2), (4,)), ((1, 4), (2, 2))]


@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("name", ["vdot", "outer"])
@pytest.mark.parametrize("shapes", PAIRS)
def test_vdot_and_outer(name, shapes, dtype):
    rng = np.random.default_rng(0)
    x, y = (random_array(rng, s, dtype) for s in shapes)
    check_against_numpy(getattr(fnp, name), getattr(np, name), x, y, **contraction_tolerance(np.dtype(dtype)))


TENSORDOT = [
    ((2, 3, 4), (3, 4, 5), 2),
    ((2, 3), (3, 4), 1),
    ((2, 3), (4, 5), 0),
    ((2, 3), (3, 2), ((0, 1), (1, 0))),
    ((2, 3, 4), (4, 2), ([0, -1], [1, 0])),
    ((3, 0), (0, 3), (1, 0)),
    ((), (2,), 0),
]


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "bool"])
@pytest.mark.parametrize("s1, s2, axes", TENSORDOT)
def test_tensordot(s1, s2, axes, dtype):
    rng = np.random.default_rng(1)
    x, y = random_array(rng, s1, dtype), random_array(rng, s2, dtype)
    check_against_numpy(
        lambda a, b: fnp.tensordot(a, b, axes),
        lambda a, b: np.tensordot(a, b, axes),
        x,
        y,
        **contraction_tolerance(np.dtype(dtype)),
    )


def test_mixed_dtypes_promote():
    x, y = np.ones((2, 3), np.int32), np.ones((3,), np.float32)
    for fn, reference in [(fnp.matmul, np.matmul), (fnp.dot, np.dot), (fnp.inner, np.inner)]:
        check_against_numpy(fn, reference, x, y)
    check_against_numpy(lambda a: fnp.dot(a, 2.0), lambda a: np.dot(a, 2.0), y)
    # NumPy's dot/einsum/outer take Python scalars as float64 arrays, traced or not.
    check_against_numpy(fnp.dot, np.dot, y, 2.0)
    check_against_numpy(lambda a, s: fnp.einsum("i,->i", a, s), lambda a, s: np.einsum("i,->i", a, s), y, 2.0)


# --- einsum -------------------------------------------------------------------------------

EINSUM = [
    ("ij,jk->ik", [(2, 3), (3, 4)]),
    ("ij,jk", [(2, 3), (3, 4)]),
    ("bij,bjk->bik", [(2, 2, 3), (2, 3, 4)]),
    ("i,i->", [(3,), (3,)]),
    ("i,i", [(3,), (3,)]),
    ("i,j->ij", [(2,), (3,)]),
    ("i,j->ji", [(2,), (3,)]),
    ("ij->ji", [(2, 3)]),
    ("ij->", [(2, 3)]),
    ("ij->j", [(2, 3)]),
    ("ij", [(2, 3)]),
    ("ji", [(2, 3)]),
    ("ba,ab", [(2, 3), (3, 2)]),
    ("Ab,bA->", [(2, 3), (3, 2)]),
    ("aB,c", [(2, 3), (4,)]),
    ("ijk,ikl,lm->jm", [(2, 3, 4), (2, 4, 5), (5, 2)]),
    ("ab,bc,cd,de->ae", [(2, 3), (3, 4), (4, 2), (2, 3)]),
    ("i,i,i->i", [(4,), (4,), (4,)]),
    ("ij,k->", [(2, 3), (4,)]),
    ("abc,cd->", [(2, 3, 4), (4, 5)]),
    ("a,b,c->abc", [(2,), (3,), (1,)]),
    ("ij,ij->ij", [(1, 3), (2, 3)]),
    ("i,i", [(3,), (1,)]),
    ("...ij,...jk->...ik", [(2, 1, 3, 4), (5, 4, 2)]),
    ("...ij,...jk", [(1, 2, 3), (5, 3, 4)]),
    ("...i,...i->...", [(2, 3), (3,)]),
    ("i...->...", [(2, 3, 4)]),
    ("i...", [(2, 3)]),
    ("...,...", [(2, 3), (3,)]),
    ("i->i...", [(2,)]),
    ("... i j , ... j", [(2, 3, 4), (4,)]),
    ("i->", [(0,)]),
    ("ij,jk->ik", [(2, 0), (0, 3)]),
    ("ij,jk->ik", [(0, 2), (2, 3)]),
    ("", [()]),
    (",i->i", [(), (3,)]),
]


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "uint32", "bool"])
@pytest.mark.parametrize("subscripts, shapes", EINSUM)
def test_einsum(subscripts, shapes, dtype):
    rng = np.random.default_rng(2)
    args = [random_array(rng, s, dtype) for s in shapes]
    check_against_numpy(
        lambda *a: fnp.einsum(subscripts, *a),
        lambda *a: np.einsum(subscripts, *a),
        *args,
        **contraction_tolerance(np.dtype(dtype)),
    )


def test_einsum_lowers_to_dot_general():
    x, y = np.ones((2, 3, 4)), np.ones((2, 4, 5))
    ir = str(ft.make_ir(lambda a, b: fnp.einsum("bij,bjk->bk", a, b))(x, y))
    assert "reduce_sum[axes=(1,)] a" in ir  # i appears once: summed before the contraction
    assert "dot_general[dimension_numbers=(((1,), (1,)), ((0,), (0,)))]" in ir


def test_einsum_mixed_dtypes():
    x, y = np.ones((2, 3), np.int32), np.ones((3,), np.float32)
    check_against_numpy(lambda a, b: fnp.einsum("ij,j", a, b), lambda a, b: np.einsum("ij,j", a, b), x, y)


@pytest.mark.parametrize(
    "subscripts, shapes, error, match",
    [
        ("ii->i", [(2, 2)], NotImplementedError, "'i' repeats within operand 'ii'"),
        (
            "ij,jk",
            [(2, 3), (4, 5)],
            TypeError,
            r"einsum got incompatible shapes \(2, 3\) and \(4, 5\) at subscript 'j'",
        ),
        ("...i,...i", [(2, 3), (4, 3)], TypeError, r"at subscript '...'"),
        ("i1", [(2, 3)], ValueError, "invalid subscript '1'"),
        ("i.j", [(2, 3)], ValueError, "invalid subscript '.'"),
        ("ij", [(2, 3, 4)], ValueError, "name 2 dimensions, the operand has 3"),
        ("i,j", [(2,)], ValueError, "names 2 operands, got 1"),
        ("ij->k", [(2, 3)], ValueError, "output subscript 'k'"),
        ("ij->ii", [(2, 3)], ValueError, "output subscript 'i' repeats"),
        ("...i->i", [(2, 3)], ValueError, r"needs '\.\.\.'"),
    ],
)
def test_einsum_errors(subscripts, shapes, error, match):
    args = [np.ones(s) for s in shapes]
    with pytest.raises(error, match=match):
        fnp.einsum(subscripts, *args)
    with pytest.raises(error, match=match):
        ft.make_ir(lambda *a: fnp.einsum(subscripts, *a))(*args)


# --- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fn, s1, s2",
    [
        (fnp.matmul, (2, 3), (4, 5)),
        (fnp.matmul, (3,), (4,)),
        (fnp.matmul, (2, 3), (2,)),
        (fnp.matmul, (2, 2, 3), (3, 3, 4)),
        (fnp.dot, (2, 3), (2, 3)),
        (fnp.dot, (2, 3), (4, 2, 5)),
        (fnp.inner, (2, 3), (2,)),
        (fnp.vdot, (2, 3), (5,)),
        (lambda a, b: fnp.tensordot(a, b, 1), (2, 3), (2, 3)),
    ],
)
def test_shape_mismatch_names_both_shapes(fn, s1, s2):
    x, y = np.ones(s1), np.ones(s2)
    pattern = rf"got incompatible shapes {re.escape(str(s1))} and {re.escape(str(s2))}"
    with pytest.raises(TypeError, match=pattern):
        fn(x, y)
    with pytest.raises(TypeError, match=pattern):
        ft.make_ir(fn)(x, y)


def test_matmul_scalar_and_tensordot_axes_errors():
    with pytest.raises(TypeError, match=r"matmul: operands must be at least 1-D, got shapes \(\) and \(3,\)"):
        fnp.matmul(np.float64(2.0), np.ones(3))
    with pytest.raises(ValueError, match="tensordot: axes=3 is invalid"):
        fnp.tensordot(np.ones((2, 3)), np.ones((3, 2)), 3)
    with pytest.raises(ValueError, match=r"tensordot: axes .* have different lengths"):
        fnp.tensordot(np.ones((2, 3)), np.ones((3, 2)), ((1, 0), (0,)))
    with pytest.raises(ValueError, match=r"tensordot: axes .* are invalid for an operand of 2 dims"):
        fnp.tensordot(np.ones((2, 3)), np.ones((3, 2)), ((2,), (0,)))
