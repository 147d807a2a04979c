"""Every primitive has a lowering rule in the CPU backend, and the frontend never imports it."""

from __future__ import annotations

import subprocess
import sys

import pytest

import functrace  # noqa: F401
import lowering.llvm  # noqa: F401
from functrace.core.primitive import all_primitives
from lowering.llvm.registry import has_lowering


@pytest.mark.parametrize("name", sorted(all_primitives))
def test_every_primitive_is_lowered(name):
    assert has_lowering(all_primitives[name]), f"the cpu backend has no lowering rule for '{name}'"


def test_importing_functrace_does_not_load_llvm():
    code = (
        "import sys, functrace, functrace.numpy; "
        "print(any(m.startswith(('llvmlite', 'lowering')) for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
