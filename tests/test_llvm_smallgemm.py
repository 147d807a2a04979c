"""Loop bodies' products by a packed loop-invariant weight (``rules/smallgemm.py``) and the
thread pool that runs them (``lowering/llvm/pool.py``), against NumPy."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest
from reference import assert_same

import functrace as ft
import functrace.numpy as fnp
import lowering.llvm  # noqa: F401  (registers the backend)
from functrace import lax
from lowering.llvm import engine, pool
from lowering.llvm.rules import smallgemm

RNG = np.random.default_rng(11)
needs_avx512 = pytest.mark.skipif(not smallgemm.available(), reason="the packed kernel needs AVX-512")


def recurrence(w, u, h0, xs):
    """``h = tanh(h @ w + x)``, stacking ``h @ u`` too: two weights, one of them used twice."""

    def step(h, x):
        g = h @ w
        h = fnp.tanh(g[:, : h.shape[1]] + x)
        return h, (h @ u, g)

    return lax.scan(step, h0, xs)


def loop_reference(w, u, h0, xs):
    h, hs, gs = h0, [], []
    for x in xs:
        g = h @ w
        h = np.tanh(g[:, : h.shape[1]] + x)
        hs.append(h @ u)
        gs.append(g)
    return h, (np.stack(hs), np.stack(gs))


@needs_avx512
@pytest.mark.parametrize(
    ("m", "k", "n", "dtype"),
    [
        (32, 24, 64, np.float32),  # whole panels, whole row tiles
        (5, 7, 9, np.float32),  # one partial panel, one partial row tile
        (19, 40, 71, np.float32),  # full and partial tiles and panels
        (8, 16, 40, np.float64),
        (3, 33, 17, np.float64),
        (4, 300, 320, np.float32),  # contraction blocks (KC = 256) accumulate
        (9, 270, 280, np.float64),
    ],
)
def test_packed_products_in_a_loop_match_numpy(m, k, n, dtype):
    w = (RNG.normal(size=(k, n)) / np.sqrt(k)).astype(dtype)
    u = RNG.normal(size=(k, 3)).astype(dtype)
    h0 = RNG.normal(size=(m, k)).astype(dtype)
    xs = RNG.normal(size=(4, m, k)).astype(dtype) if n >= k else None
    if xs is None:
        pytest.skip("the recurrence needs n >= k")
    f = ft.jit(recurrence)
    fn = f.lower(w, u, h0, xs).compile().fn
    (scan,) = [e for e in fn.eqns if e.primitive.name == "scan"]
    assert smallgemm.packed_weights(scan.params["body"], scan.params["num_consts"], 4) == {0, 1}
    tol = 2e-5 if dtype == np.float32 else 1e-12
    assert_same(f(w, u, h0, xs), loop_reference(w, u, h0, xs), rtol=tol, atol=tol)


@needs_avx512
def test_only_weights_used_as_the_right_operand_of_thin_products_are_packed():
    w = RNG.normal(size=(6, 6)).astype(np.float32)
    h0 = RNG.normal(size=(2, 6)).astype(np.float32)

    def f(w, h0):
        # w is also added elementwise: stays as it is
        return lax.scan(lambda h, _: (fnp.tanh(h @ w) + w[0], None), h0, None, length=3)[0]

    fn = ft.jit(f).lower(w, h0).compile().fn
    (scan,) = [e for e in fn.eqns if e.primitive.name == "scan"]
    assert not smallgemm.packed_weights(scan.params["body"], scan.params["num_consts"], 3)
    expected = h0
    for _ in range(3):
        expected = np.tanh(expected @ w) + w[0]
    assert_same(ft.jit(f)(w, h0), expected, rtol=2e-5, atol=2e-5)


@needs_avx512
def test_packed_products_from_many_threads_at_once():
    w = RNG.normal(size=(64, 128)).astype(np.float32) / 8
    u = RNG.normal(size=(64, 3)).astype(np.float32)
    h0 = RNG.normal(size=(32, 64)).astype(np.float32)
    xs = RNG.normal(size=(6, 32, 64)).astype(np.float32)
    f = ft.jit(recurrence)
    expected = loop_reference(w, u, h0, xs)
    errors = []

    def work():
        try:
            for _ in range(20):
                assert_same(f(w, u, h0, xs), expected, rtol=2e-5, atol=2e-5)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]


# --- the pool --------------------------------------------------------------------------------

_DRIVER = """
declare void @functrace_pool_run(ptr, ptr, i64)
define internal void @chunk(ptr %ctx, i64 %c) {
  %p = getelementptr i64, ptr %ctx, i64 %c
  %v = load i64, ptr %p
  %c1 = add i64 %c, 1
  %w = add i64 %v, %c1
  store i64 %w, ptr %p
  ret void
}
define void @drive(ptr %ctx, i64 %chunks, i64 %runs) {
entry:
  br label %l
l:
  %r = phi i64 [0, %entry], [%r1, %l]
  call void @functrace_pool_run(ptr @chunk, ptr %ctx, i64 %chunks)
  %r1 = add i64 %r, 1
  %d = icmp eq i64 %r1, %runs
  br i1 %d, label %x, label %l
x:
  ret void
}
"""


def _driver():
    import llvmlite.binding as llvm

    pool.bind()
    tm = engine._new_target_machine()  # the driver's engine owns it
    mod = llvm.parse_assembly(_DRIVER)
    mod.triple = tm.triple
    ee = llvm.create_mcjit_compiler(mod, tm)
    ee.finalize_object()
    fn = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64)(ee.get_function_address("drive"))
    return fn, ee


def test_pool_runs_every_chunk_exactly_once():
    drive, _keep = _driver()
    for chunks in (0, 1, 2, 3, 7, 16):
        counts = np.zeros(16, np.int64)
        drive(counts.ctypes.data, chunks, 500)
        assert counts.tolist() == [500 * (c + 1) if c < chunks else 0 for c in range(16)]
    # several threads running tasks at once: the pool serves one, the others run alone
    arrays = [np.zeros(4, np.int64) for _ in range(6)]
    threads = [threading.Thread(target=drive, args=(a.ctypes.data, 4, 3000)) for a in arrays]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(a.tolist() == [3000, 6000, 9000, 12000] for a in arrays)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_pool_works_in_a_forked_child():
    code = textwrap.dedent(
        """
        import os, sys, numpy as np
        sys.path.insert(0, "tests")
        from test_llvm_smallgemm import _driver
        drive, keep = _driver()
        a = np.zeros(4, np.int64)
        drive(a.ctypes.data, 4, 100)
        pid = os.fork()
        if pid == 0:
            b = np.zeros(4, np.int64)
            drive(b.ctypes.data, 4, 100)
            os._exit(0 if b.tolist() == [100, 200, 300, 400] else 1)
        _, status = os.waitpid(pid, 0)
        sys.exit(os.waitstatus_to_exitcode(status))
        """
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root)
    done = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, timeout=120, check=False)
    assert done.returncode == 0


@needs_avx512
def test_a_program_that_packs_makes_all_its_products_without_blas():
    """OpenBLAS's idle workers would spin on the cores the pool needs: a program with
    packed loop products does its other products with the same kernel."""
    from functrace import lax as flax

    w = RNG.normal(size=(64, 128)).astype(np.float32) / 8
    u = RNG.normal(size=(64, 3)).astype(np.float32)
    h0 = RNG.normal(size=(32, 64)).astype(np.float32)
    xs = RNG.normal(size=(6, 32, 64)).astype(np.float32)
    big = RNG.normal(size=(300, 40)).astype(np.float32)
    p, q = RNG.normal(size=(300, 250)).astype(np.float32), RNG.normal(size=(250, 270)).astype(np.float32)

    def with_products(w, u, h0, xs, big, p, q):
        h, (_, gs) = recurrence(w, u, h0 @ (w[:, :64] * 0.5), xs)
        # a transposed left operand, a strided right one, a contraction longer than KC,
        # a partial panel, a batch of products
        return (
            h,
            flax.dot_general(big, big, (((0,), (0,)), ((), ()))),
            flax.dot_general(gs, w, (((2,), (1,)), ((), ()))),
            fnp.einsum("tbk,tbn->kn", gs, gs[:, :, :37]),
            fnp.matmul(gs, fnp.transpose(gs, (0, 2, 1))),
            p @ q,  # packed on the pool (300 rows, 67,500 elements, a partial panel)
            p @ q.T[:, :250].T,  # the same from a strided view
        )

    def reference(w, u, h0, xs, big, p, q):
        h, (_, gs) = loop_reference(w, u, h0 @ (w[:, :64] * 0.5), xs)
        gs64 = gs.astype(np.float64)
        return (
            h,
            big.T.astype(np.float64) @ big,
            gs64 @ w.T,
            np.einsum("tbk,tbn->kn", gs64, gs64[:, :, :37]),
            gs64 @ gs64.transpose(0, 2, 1),
            p.astype(np.float64) @ q,
            p.astype(np.float64) @ q,
        )

    args = (w, u, h0, xs, big, p, q)
    text = ft.jit(with_products).lower(*args).as_llvm()
    assert "functrace_sgemm" not in text
    assert (pool.SYMBOL in text) == pool.supported()
    got = ft.jit(with_products)(*args)
    for g, e in zip(got, reference(*args), strict=True):
        np.testing.assert_allclose(g, e, rtol=2e-4, atol=1e-4 * max(1.0, np.abs(e).max()))
    # without a packed loop product, BLAS does them
    plain = ft.jit(lambda a, b: a @ b).lower(big.T.copy(), big).as_llvm()
    assert "functrace_sgemm" in plain and pool.SYMBOL not in plain


@needs_avx512
def test_loop_body_kernels_of_a_program_that_packs_run_on_the_pool():

    k = 128
    w = (RNG.normal(size=(k, 2 * k)) / np.sqrt(k)).astype(np.float32)
    u = RNG.normal(size=(k, 3)).astype(np.float32)
    h0 = RNG.normal(size=(64, k)).astype(np.float32)  # 64 x 128 = 2^13 elements per kernel
    xs = RNG.normal(size=(5, 64, k)).astype(np.float32)
    text = ft.jit(recurrence).lower(w, u, h0, xs).as_llvm()
    assert ("_task(" in text) == pool.supported()  # a body kernel split into chunks
    assert_same(ft.jit(recurrence)(w, u, h0, xs), loop_reference(w, u, h0, xs), rtol=2e-5, atol=2e-5)
