"""Fusion across slices and concatenations, products read through transposes, and the
kernel profiler: the CPU backend against eager evaluation (NumPy)."""

from __future__ import annotations

import numpy as np
from reference import assert_same

import functrace as ft
import functrace.numpy as fnp
import lowering.llvm  # noqa: F401  (registers the backend)
from functrace import lax, tree_util
from lowering import fusion
from lowering.llvm.compiler import profile_kernels

RNG = np.random.default_rng(7)


def cpu(f, **kw):
    return ft.jit(f, backend="cpu", **kw)


def kernels_of(f, *args):
    fn = cpu(f).lower(*args).compile().fn
    return [[e.primitive.name for e in k.eqns] for k in fusion.fuse(fn).kernels]


def gates(x, y):
    """An LSTM cell's gate nonlinearities on the four quarters of ``x + y``."""
    i, f, g, o = fnp.split(x + y, 4, axis=-1)
    return ft.nn.sigmoid(i) * fnp.tanh(g), ft.nn.sigmoid(f) - ft.nn.sigmoid(o)


def test_a_split_array_is_computed_in_its_pieces_kernels():
    x, y = RNG.normal(size=(6, 40)).astype(np.float32), RNG.normal(size=(6, 40)).astype(np.float32)
    names = kernels_of(gates, x, y)
    # x + y is never stored: each kernel adds the quarter it reads
    assert all("add" in k for k in names), names
    assert not any(k == ["add"] for k in names)
    assert_same(cpu(gates)(x, y), gates(x, y), rtol=2e-6, atol=2e-6)


def test_overlapping_or_broadcast_reads_keep_the_producer_stored():
    x = RNG.normal(size=(8, 8))
    # two slices that overlap read 12 of 8 columns: exp would run twice for some
    f = lambda v: (fnp.exp(v)[:, :6] * 2.0, fnp.exp(v)[:, 2:] * 3.0)  # noqa: E731
    assert ["exp"] in kernels_of(f, x)
    assert_same(cpu(f)(x), f(x), rtol=1e-12)
    g = lambda v: fnp.exp(v[0]) + v  # noqa: E731  (a row broadcast over 8 rows)
    assert any(k[-1] == "exp" for k in kernels_of(g, x))
    assert_same(cpu(g)(x), g(x), rtol=1e-12)


def test_concatenate_computes_its_pieces_in_place():
    a, b = RNG.normal(size=(5, 3)), RNG.normal(size=(5, 4))

    def f(a, b):
        return fnp.concatenate([fnp.tanh(a), b * 2.0, a[:, :1] + 1.0, b], axis=1), fnp.concatenate([a.T, b.T])

    names = kernels_of(f, a, b)
    assert any(k[-1] == "concatenate" and "tanh" in k and "mul" in k for k in names), names
    assert not any(k == ["tanh"] for k in names)
    assert_same(cpu(f)(a, b), f(a, b), rtol=1e-12)
    # integer pieces, rank 1 and 3
    i, j = np.arange(6, dtype=np.int32), np.arange(4, dtype=np.int32)
    h = lambda i, j: fnp.concatenate([i * 2, j - 1, i])  # noqa: E731
    assert_same(cpu(h)(i, j), h(i, j))
    c = RNG.normal(size=(2, 3, 4)).astype(np.float32)
    k = lambda c: fnp.concatenate([fnp.exp(c), c[:, :1] * 3.0], axis=1)  # noqa: E731
    assert_same(cpu(k)(c), k(c), rtol=2e-6)


def test_split_cotangent_in_a_loop_body_is_one_kernel():
    w = RNG.normal(size=(8, 32)).astype(np.float32) * 0.3
    xs = RNG.normal(size=(5, 3, 32)).astype(np.float32)

    def loss(w, xs):
        def step(h, x):
            a, b = gates(x, h @ w)
            return a + b, (a * b).sum()

        return lax.scan(step, np.zeros((3, 8), np.float32), xs)[1].sum()

    grad = ft.grad(loss)
    fn = cpu(grad).lower(w, xs).compile().fn
    (backward,) = [e for e in fn.eqns if e.primitive.name == "scan" and e.params["reverse"]]
    body_kernels = [[e.primitive.name for e in k.eqns] for k in fusion.fuse(backward.params["body"]).kernels]
    assert not any("pad" in k for k in body_kernels)
    assert any(k[-1] == "concatenate" and len(k) > 1 for k in body_kernels), body_kernels
    with np.errstate(all="ignore"):
        assert_same(cpu(grad)(w, xs), ft.jit(grad, backend="interpret")(w, xs), rtol=1e-4, atol=1e-5)


def test_products_contract_transposed_operands_without_copying_the_big_one():
    x = RNG.normal(size=(6, 5, 3)).astype(np.float32)
    g = RNG.normal(size=(5, 6, 40)).astype(np.float32)
    # dW = sum over both axes of x[b, t] ⊗ g[t, b]: reads g in place
    f = lambda x, g: lax.dot_general(x, fnp.swapaxes(g, 0, 1), (((0, 1), (0, 1)), ((), ())))  # noqa: E731
    fn = cpu(f).lower(x, g).compile().fn
    assert [e.primitive.name for e in fn.eqns] == ["dot_general"]
    assert_same(cpu(f)(x, g), f(x, g), rtol=1e-4, atol=1e-5)
    # and the forward projection: transpose(x @ w + b)
    w, b = RNG.normal(size=(3, 40)).astype(np.float32), RNG.normal(size=40).astype(np.float32)
    h = lambda x, w, b: fnp.swapaxes(x @ w + b, 0, 1)  # noqa: E731
    assert_same(cpu(h)(x, w, b), h(x, w, b), rtol=1e-5, atol=1e-5)
    for dtype in (np.float64, np.int32):
        xi, gi = (x * 4).astype(dtype), (g * 4).astype(dtype)
        assert_same(cpu(f)(xi, gi), f(xi, gi), rtol=1e-12)


def test_profile_kernels_times_loop_bodies_too():
    w = RNG.normal(size=(8, 8)).astype(np.float32)
    xs = RNG.normal(size=(4, 2, 8)).astype(np.float32)

    def f(w, xs):
        return lax.scan(lambda h, x: (fnp.tanh(h @ w + x), None), np.zeros((2, 8), np.float32), xs)[0]

    fn = cpu(f).lower(w, xs).compile().fn
    rows = profile_kernels(fn, tree_util.tree_leaves((w, xs)), repeat=3)
    top = [share for share, name in rows if not name.startswith("[")]
    inner = [name for share, name in rows if name.startswith("[")]
    assert abs(sum(top) - 1.0) < 1e-9
    assert any("dot_general" in name for name in inner) and any("tanh" in name for name in inner)
