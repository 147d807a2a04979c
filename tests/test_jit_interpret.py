"""jit with the interpreter backend: caching by abstract signature and static arguments."""

from __future__ import annotations

import functools
import threading

import numpy as np
import pytest
from reference import assert_same

import functrace as ft
import functrace.numpy as fnp


def interpret(fun=None, **kw):
    return (
        ft.jit(fun, backend="interpret", **kw)
        if fun is not None
        else functools.partial(ft.jit, backend="interpret", **kw)
    )


def test_results_equal_eager_and_are_ndarrays():
    def f(x, y):
        return fnp.tanh(x @ y).sum(axis=0), x.T

    x, y = np.random.default_rng(0).normal(size=(2, 3, 3)).astype(np.float32)
    out = interpret(f)(x, y)
    assert all(isinstance(o, np.ndarray | np.generic) for o in out)
    assert_same(out, f(x, y))


def test_cache_is_keyed_by_shape_dtype_and_weak_type():
    traces = []

    def f(x):
        traces.append(1)
        return x * 2

    g = interpret(f)
    g(np.ones(3, np.float32))
    g(np.zeros(3, np.float32))
    assert len(traces) == 1
    g(np.ones(4, np.float32))
    g(np.ones(3, np.float64))
    assert len(traces) == 3
    g(1.0)  # weak float64 scalar
    g(np.float64(1.0))  # strong float64 scalar: a different signature
    assert len(traces) == 5 and g.cache_size() == 5


def test_static_argnums_and_argnames_are_cache_keys():
    traces = []

    @functools.partial(ft.jit, static_argnums=1, static_argnames="mode", backend="interpret")
    def f(x, n, mode="add"):
        traces.append((n, mode))
        return x + n if mode == "add" else x * n

    x = np.ones(2)
    assert_same(f(x, 2), np.full(2, 3.0))
    assert_same(f(x, 2), np.full(2, 3.0))
    assert_same(f(x, 3, mode="mul"), np.full(2, 3.0))
    assert traces == [(2, "add"), (3, "mul")]


def test_unhashable_static_argument_is_a_value_error():
    f = interpret(lambda x, shape: x.reshape(shape), static_argnums=1)
    with pytest.raises(ValueError, match=r"static argument 1 .* unhashable type list"):
        f(np.ones(4), [2, 2])
    assert_same(f(np.ones(4), (2, 2)), np.ones((2, 2)))


def test_python_control_flow_on_traced_value_is_a_concretization_error():
    @interpret
    def f(x):
        if x.sum() > 0:
            return x
        return -x

    with pytest.raises(ft.errors.ConcretizationError, match=r"depends on the argument x.*lax.cond.*static_argnums"):
        f(np.ones(2))


def test_jit_inside_make_ir_is_inlined_and_typechecks():
    inner = interpret(lambda x: fnp.sin(x) + 1)
    ir = ft.make_ir(lambda x: inner(x) * 2)(np.ones(2))
    assert [e.primitive.name for e in ir.eqns] == ["sin", "add", "mul"]


def test_pytree_arguments_and_outputs():
    @interpret
    def step(params, batch):
        w, b = params["w"], params["b"]
        return {"loss": ((batch @ w + b) ** 2).mean(), "w": w}

    params = {"w": np.ones((3, 2)), "b": np.zeros(2)}
    out = step(params, np.ones((4, 3)))
    assert set(out) == {"loss", "w"} and out["loss"].shape == ()
    assert_same(out["loss"], np.asarray(9.0))


def test_lower_as_text():
    lowered = interpret(lambda x: fnp.exp(x)).lower(np.ones(2, np.float32))
    assert "exp a" in lowered.as_text()
    assert_same(lowered.compile()(np.zeros(2, np.float32))[0], np.ones(2, np.float32))


def test_unknown_backend_is_a_value_error():
    with pytest.raises(ValueError, match="unknown backend 'tpu'"):
        ft.jit(lambda x: x, backend="tpu")


def test_concurrent_calls_from_threads():
    f = interpret(lambda x: fnp.tanh(x) * 3.0)
    errors, results = [], {}

    def worker(i):
        try:
            results[i] = f(np.full(5, float(i)))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for i in range(8):
        assert_same(results[i], np.tanh(np.full(5, float(i))) * 3.0)


def test_devices_and_device_put():
    assert [d.platform for d in ft.devices()] == ["cpu"]
    out = ft.device_put({"a": [1, 2.5], "b": np.float32(3)})
    assert out["a"][0].dtype == np.int64 and isinstance(out["b"], np.ndarray) and out["b"].dtype == np.float32
    with pytest.raises(RuntimeError, match="no CUDA backend yet"):
        ft.device_put(np.ones(2), "cuda")
    with pytest.raises(RuntimeError, match="no CUDA backend yet"):
        ft.devices("cuda")


def test_arguments_take_the_traced_dtype():
    # An int8 array is traced as int32 (functrace's integer types): every backend returns int32.
    x = np.arange(4, dtype=np.int8)
    for backend in ("interpret", "cpu"):
        out = ft.jit(lambda v: v * 2, backend=backend)(x)
        assert out.dtype == np.int32 and out.tolist() == [0, 2, 4, 6]
