"""The errors a user gets: clear types, messages naming the user's line, filtered tracebacks."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import traceback

import numpy as np
import pytest

import functrace as ft
import functrace.numpy as fnp
from functrace.errors import ConcretizationError, UnexpectedTracerError


@pytest.mark.parametrize("convert", [bool, int, float, np.asarray, lambda x: [1, 2][x]])
def test_concretization_errors_name_argument_and_suggest_fixes(convert):
    def f(x, y):
        return convert(x.sum() * 2)

    with pytest.raises(ConcretizationError) as info:
        ft.make_ir(f)(np.ones(3, np.int32), np.ones(2))
    message = str(info.value)
    assert "depends on the argument x" in message and "y" not in message.split("argument")[1].split(".")[0]
    assert "lax.cond" in message and "static_argnums" in message
    assert "test_errors.py" in message


def test_concretization_error_names_pytree_leaf():
    def loss(params, x):
        if params["scale"] > 0:
            return x
        return -x

    with pytest.raises(ConcretizationError, match=r"argument params\['scale'\]"):
        ft.make_ir(loss)({"scale": 1.0, "bias": 0.0}, np.ones(2))


def test_concretization_error_is_a_type_error():
    assert issubclass(ConcretizationError, TypeError)


def test_leaked_tracer_used_later():
    saved = []

    def f(x):
        saved.append(x)
        return x

    ft.make_ir(f)(np.ones(2))
    with pytest.raises(UnexpectedTracerError, match="was used after that transformation ended"):
        fnp.sin(saved[0])
    with pytest.raises(UnexpectedTracerError):
        saved[0] + 1


def test_leaked_tracer_used_inside_a_later_trace():
    saved = []
    ft.make_ir(lambda x: saved.append(x) or x)(np.ones(2))
    with pytest.raises(UnexpectedTracerError):
        ft.make_ir(lambda y: y + saved[0])(np.ones(2))


def test_tracebacks_hide_library_frames():
    def user_function(x):
        return x + np.ones(4)

    with pytest.raises(TypeError) as info:
        ft.make_ir(user_function)(np.ones(3))
    files = [frame.filename for frame in traceback.extract_tb(info.value.__traceback__)]
    library = [f for f in files if f"{os.sep}functrace{os.sep}" in f and "source_info.py" not in f]
    assert library == []
    assert any(f.endswith("test_errors.py") for f in files)


def test_environment_variable_shows_library_frames():
    script = textwrap.dedent(
        """
        import traceback, numpy as np, functrace as ft
        try:
            ft.make_ir(lambda x: x + np.ones(4))(np.ones(3))
        except TypeError as e:
            files = [f.filename for f in traceback.extract_tb(e.__traceback__)]
            print(any("promotion.py" in f for f in files))
        """
    )
    env = dict(os.environ)
    for value, expected in (("off", "True"), ("on", "False")):
        env["FUNCTRACE_TRACEBACK_FILTERING"] = value
        out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
        assert out.stdout.strip() == expected


def test_unsupported_argument_type():
    with pytest.raises(TypeError, match="cannot use a value of type str"):
        ft.make_ir(lambda x: x)("hello")
