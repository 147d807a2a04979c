"""The CPU backend's jit machinery: dispatch, argument conversion, the in-memory and
persistent compile caches, compile logging, debug_nans, threads."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import functrace as ft
import functrace.numpy as fnp
import lowering.llvm  # noqa: F401
from lowering.llvm import cache


def cpu(f, **kw):
    return ft.jit(f, backend="cpu", **kw)


def test_fast_path_refuses_what_it_cannot_take():
    f = cpu(lambda a, b: a * b + 1.0)
    a = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(f(a, a), a * a + 1)
    # Non-contiguous, wrong dtype, Python scalars, 0-d arrays: converted, same results.
    np.testing.assert_array_equal(f(a.T.copy().T, a), a * a + 1)
    np.testing.assert_array_equal(f(a[:, ::2], a[:, ::2]), a[:, ::2] ** 2 + 1)
    np.testing.assert_array_equal(f(np.float64(2.0), a), 2 * a + 1)
    with pytest.raises(TypeError, match="dtype"):
        f(a.astype(">f8"), a)  # a clear error, never a misread buffer
    # Under another transformation the jitted function is traced, not called.
    g = ft.grad(lambda x: f(x, x).sum())(a)
    np.testing.assert_allclose(g, 2 * a)


def test_outputs_are_fresh_arrays_and_inputs_untouched():
    f = cpu(lambda x: (x, x * 2.0, x))
    x = np.ones(3, np.float32)
    a, b, c = f(x)
    assert isinstance(a, np.ndarray) and a is not x and a is not c
    a[0] = 5
    assert x[0] == 1 and c[0] == 1
    np.testing.assert_array_equal(b, 2 * x)


def test_literal_and_constant_outputs():
    w = np.arange(3.0)
    f = cpu(lambda x: (x.sum() * 0 + 1.0, w * x))
    one, y = f(np.ones(3))
    assert one == 1.0 and np.array_equal(y, w)


def test_cache_hits_and_misses_by_shape_dtype_static(caplog):
    calls = []

    def f(x, n):
        calls.append(1)
        return x * n

    jf = cpu(f, static_argnums=1)
    x = np.ones(3, np.float32)
    with caplog.at_level(logging.DEBUG, logger="functrace.jit"):
        jf(x, 2)
        jf(x, 2)
        jf(np.ones(4, np.float32), 2)
        jf(np.ones(4, np.float64), 2)
        jf(np.ones(4, np.float64), 3)
    assert len(calls) == 4
    messages = "\n".join(r.getMessage() for r in caplog.records if "compiling" in r.getMessage())
    assert "first call" in messages
    assert "new shape for x" in messages
    assert "new dtype for x" in messages
    assert "new static value" in messages


def test_persistent_cache_across_processes(tmp_path):
    script = textwrap.dedent(
        f"""
        import numpy as np, functrace as ft, functrace.numpy as fnp
        import lowering.llvm
        from lowering.llvm import compiler
        ft.config.update("jit_cache_dir", {str(tmp_path)!r})
        f = ft.jit(lambda x: fnp.tanh(x) * 3.0 + x.sum(), backend="cpu")
        exe = f.lower(np.ones(5, np.float32)).compile()
        print(exe.compiled.from_cache, float(f(np.ones(5, np.float32))[0]))
        """
    )
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    first = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
    entries = list(tmp_path.iterdir())
    assert len(entries) == 1 and entries[0].suffix == ".ftobj"
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o700 or tmp_path.exists()
    second = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
    assert first.stdout.split()[0] == "False"
    assert second.stdout.split()[0] == "True"
    assert first.stdout.split()[1] == second.stdout.split()[1]
    # A corrupt or truncated entry is a miss: compiled again, never a crash.
    for damage in (lambda b: b[: len(b) // 2], lambda b: b[:-10] + b"0123456789", lambda b: b""):
        entries[0].write_bytes(damage(entries[0].read_bytes()))
        again = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
        assert again.stdout.split() == ["False", first.stdout.split()[1]]


def test_cache_directory_is_private(tmp_path):
    directory = tmp_path / "new" / "cache"
    cache.put(str(directory), "k" * 64, {"entry": "e", "ws_size": 0}, b"obj")
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert cache.get(str(directory), "k" * 64) == ({"entry": "e", "ws_size": 0}, b"obj")
    assert cache.get(None, "k" * 64) is None


def test_debug_nans_under_jit_names_the_primitive():
    f = cpu(lambda x: fnp.log(x) * 2.0)
    x = np.array([1.0, -1.0], np.float32)
    assert np.isnan(f(x)[1])
    ft.config.update("debug_nans", True)
    try:
        with pytest.raises(FloatingPointError, match="log"):
            f(x)
    finally:
        ft.config.update("debug_nans", False)


def test_called_from_eight_threads():
    f = cpu(lambda x, y: fnp.tanh(x @ y).sum(axis=0) + fnp.exp(x).mean())
    rng = np.random.default_rng(1)
    inputs = [
        (rng.normal(size=(32, 16)).astype(np.float32), rng.normal(size=(16, 8)).astype(np.float32)) for _ in range(8)
    ]
    expected = [np.tanh(x @ y).sum(axis=0) + np.exp(x).mean() for x, y in inputs]
    results: dict[int, list] = {}
    barrier = threading.Barrier(8)

    def work(k):
        barrier.wait()
        results[k] = [f(*inputs[k]) for _ in range(50)]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in range(8):
        for r in results[k]:
            np.testing.assert_allclose(r, expected[k], rtol=1e-4, atol=1e-4)


def test_zero_size_and_scalar_shapes():
    f = cpu(lambda x: (x * 2.0, x.sum()))
    y, s = f(np.zeros((0, 3), np.float32))
    assert y.shape == (0, 3) and s == 0
    g = cpu(lambda x: x + 1)
    assert g(np.int32(3)) == 4 and g(np.int32(3)).dtype == np.int32


def test_donated_buffer_holds_the_output():
    step = cpu(lambda w, g: w - 0.1 * g, donate_argnums=0)
    w, g = np.ones(4, np.float32), np.arange(4, dtype=np.float32)
    expected = w - 0.1 * g
    out = step(w, g)
    assert out is w  # reused, not allocated
    np.testing.assert_allclose(out, expected)
    # Donation never changes results: an output read at other indices is not computed in place.
    h = cpu(lambda v: fnp.sum(v) + v[::-1], donate_argnums=0)
    v = np.arange(4, dtype=np.float32)
    np.testing.assert_array_equal(h(v), 6 + np.arange(4)[::-1])
    # The same array passed twice is not overwritten while it is read.
    x = np.arange(4, dtype=np.float32)
    np.testing.assert_allclose(step(x, x), np.arange(4) - 0.1 * np.arange(4), rtol=1e-6)


# --- programs compiled as several modules --------------------------------------------------


@pytest.fixture
def split_modules(monkeypatch):
    """Every program of two kernels or more is split into up to three modules, compiled on
    three threads; yields the module texts of each compile."""
    from lowering.llvm import codegen, engine

    monkeypatch.setattr(codegen, "PART_MIN_WEIGHT", 1)
    monkeypatch.setattr(engine, "compile_threads", lambda: 3)
    compiles: list[list[str]] = []
    compile_objects = engine.compile_objects

    def recorded(texts):
        compiles.append(texts)
        return compile_objects(texts)

    monkeypatch.setattr(engine, "compile_objects", recorded)
    return compiles


def test_split_program_matches_numpy(split_modules):
    from functrace.control_flow.scan import scan
    from lowering.llvm import runtime

    w = np.linspace(-1, 1, 6).reshape(2, 3).astype(np.float32)  # a constant
    big = runtime.PARALLEL_MIN_ELEMENTS * 2  # a kernel split across threads, inside a part

    def f(x, xs, v):
        h = fnp.tanh(x * w) + 1.0
        c, ys = scan(lambda c, r: (c * 0.5 + r.sum(), c + r), h.sum(), xs)
        return h, c, ys * 2.0, x, v * 3.0 + 1.0, h, 7.0

    x = np.linspace(0, 1, 6).reshape(2, 3).astype(np.float32)
    xs = np.arange(10, dtype=np.float32).reshape(5, 2)
    v = np.linspace(0, 1, big).astype(np.float32)
    h, c, ys, x_out, v_out, h2, seven = cpu(f)(x, xs, v)
    expected_h = np.tanh(x * w) + 1
    carry, rows = np.float32(expected_h.sum()), []
    for r in xs:
        rows.append(carry + r)
        carry = carry * np.float32(0.5) + r.sum()
    np.testing.assert_allclose(h, expected_h, rtol=1e-5)
    np.testing.assert_allclose(c, carry, rtol=1e-5)
    np.testing.assert_allclose(ys, 2 * np.array(rows), rtol=1e-5)
    np.testing.assert_array_equal(x_out, x)
    np.testing.assert_allclose(v_out, v * 3 + 1, rtol=1e-6)
    np.testing.assert_array_equal(h2, h)
    assert seven == 7.0
    (texts,) = split_modules
    assert len(texts) == 3
    if runtime.NUM_THREADS > 1:  # the threaded kernel is in one part
        from lowering.llvm import pool

        spawn = 'call void @"functrace_pool_run"' if pool.supported() else 'call i32 @"pthread_create"'
        assert sum(spawn in t for t in texts) == 1


def test_split_program_donation_and_threads(split_modules):
    step = cpu(lambda w, g: (w - 0.1 * fnp.tanh(g), fnp.exp(g).sum()), donate_argnums=0)
    w, g = np.ones(64, np.float32), np.linspace(-1, 1, 64, dtype=np.float32)
    expected = (w - 0.1 * np.tanh(g), np.exp(g).sum())
    out, total = step(w, g)
    assert out is w and len(split_modules[0]) >= 2
    np.testing.assert_allclose(out, expected[0], rtol=1e-6)
    np.testing.assert_allclose(total, expected[1], rtol=1e-5)
    # Programs compiled by several threads at once, each on several threads of its own.
    functions = [cpu(lambda x, k=k: fnp.exp(x * k).sum() + fnp.tanh(x).max() * k) for k in range(6)]
    x = np.linspace(0, 1, 100, dtype=np.float32)
    results: dict[int, float] = {}
    barrier = threading.Barrier(len(functions))

    def work(k):
        barrier.wait()
        results[k] = float(functions[k](x))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(functions))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in range(len(functions)):
        np.testing.assert_allclose(results[k], np.exp(x * k).sum() + np.tanh(x).max() * k, rtol=1e-5)


def test_split_program_in_the_persistent_cache(tmp_path):
    script = textwrap.dedent(
        f"""
        import numpy as np, functrace as ft, functrace.numpy as fnp
        import lowering.llvm
        from lowering.llvm import cache, codegen, engine
        codegen.PART_MIN_WEIGHT = 1
        engine.compile_threads = lambda: 3
        ft.config.update("jit_cache_dir", {str(tmp_path)!r})
        f = ft.jit(lambda x: (fnp.tanh(x) * 3.0).sum() + fnp.exp(x).max() + (x @ x.T).sum(), backend="cpu")
        x = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)
        exe = f.lower(x).compile()
        (entry,) = [p for p in __import__("pathlib").Path({str(tmp_path)!r}).iterdir()]
        meta, _ = cache.get({str(tmp_path)!r}, entry.stem)
        print(exe.compiled.from_cache, len(meta["objects"]), repr(float(f(x))))
        """
    )
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    first = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
    second = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
    assert first.stdout.split()[:2] == ["False", "3"]
    assert second.stdout.split()[:2] == ["True", "3"]
    assert first.stdout.split()[2] == second.stdout.split()[2]
    x = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)
    expected = (np.tanh(x) * 3).sum() + np.exp(x).max() + (x @ x.T).sum()
    np.testing.assert_allclose(float(first.stdout.split()[2]), expected, rtol=1e-5)


def test_long_program_is_cut_into_functions_on_one_core(monkeypatch):
    from lowering.llvm import codegen, engine

    monkeypatch.setattr(codegen, "PART_MAX_WEIGHT", 30)
    monkeypatch.setattr(engine, "compile_threads", lambda: 1)
    compiles: list[list[str]] = []
    compile_objects = engine.compile_objects
    monkeypatch.setattr(engine, "compile_objects", lambda texts: compiles.append(texts) or compile_objects(texts))

    def f(v):
        for _ in range(8):
            v = fnp.tanh(v) * 0.5 + v.mean()
        return v

    x = np.linspace(-1, 1, 64, dtype=np.float32)
    expected = x.astype(np.float64)
    for _ in range(8):
        expected = np.tanh(expected) * 0.5 + expected.mean()
    np.testing.assert_allclose(cpu(f)(x), expected, rtol=1e-5, atol=1e-6)
    ((text,),) = compiles  # one module, several functions
    assert text.count("define void @") >= 3
