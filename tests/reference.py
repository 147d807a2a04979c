"""Shared test helpers: run a functrace function eagerly and through ``make_ir(...).eval``
and compare with an independent NumPy reference."""

from __future__ import annotations

import ctypes
import mmap
from collections.abc import Callable
from typing import Any

import numpy as np

import functrace as ft
from functrace.tree_util import tree_leaves

PAGE = mmap.PAGESIZE
_libc = ctypes.CDLL(None, use_errno=True)
_libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]


def tolerance(dtype: np.dtype) -> dict[str, float]:
    if dtype == np.float32:
        return {"rtol": 2e-5, "atol": 2e-5}
    if dtype == np.float64:
        return {"rtol": 1e-12, "atol": 1e-12}
    return {"rtol": 0, "atol": 0}


def assert_same(actual: Any, expected: Any, *, check_dtype: bool = True, **tol: float) -> None:
    """Values, shapes and (by default) dtypes agree; tolerance chosen by dtype unless given."""
    a_leaves, e_leaves = tree_leaves(actual), tree_leaves(expected)
    assert len(a_leaves) == len(e_leaves), f"{len(a_leaves)} outputs, expected {len(e_leaves)}"
    for a, e in zip(a_leaves, e_leaves, strict=True):
        a, e = np.asarray(a), np.asarray(e)
        assert a.shape == e.shape, f"shape {a.shape}, expected {e.shape}"
        if check_dtype:
            assert a.dtype == e.dtype, f"dtype {a.dtype}, expected {e.dtype}"
        np.testing.assert_allclose(a, e, **(tol or tolerance(e.dtype)), equal_nan=True)


def check_against_numpy(fn: Callable, reference: Callable, *args: Any, check_dtype: bool = True, **tol: float) -> None:
    """``fn(*args)`` eagerly, via ``make_ir(fn)(*args).eval(*args)`` and via
    ``jit(fn, backend="interpret")`` all equal ``reference(*args)``."""
    with np.errstate(all="ignore"):
        expected = reference(*args)
        eager = fn(*args)
        for leaf in tree_leaves(eager):
            assert isinstance(leaf, np.ndarray | np.generic), f"eager result is {type(leaf).__name__}"
        assert_same(eager, expected, check_dtype=check_dtype, **tol)
        ir = ft.make_ir(fn)(*args)
        assert_same(ir.eval(*args), expected, check_dtype=check_dtype, **tol)
        assert_same(ft.jit(fn, backend="interpret")(*args), expected, check_dtype=check_dtype, **tol)


def vmap_loop(f: Callable, in_axes: tuple, out_axis: int = 0) -> Callable:
    """The reference for ``vmap``: ``f`` on each example in a Python loop, results stacked
    on ``out_axis`` (``in_axes`` has one entry per positional argument)."""

    def run(*args):
        size = next(np.shape(a)[ax] for a, ax in zip(args, in_axes, strict=True) if ax is not None)
        outs = [
            f(*[a if ax is None else np.take(a, i, axis=ax) for a, ax in zip(args, in_axes, strict=True)])
            for i in range(size)
        ]
        return ft.tree_util.tree_map(lambda *xs: np.stack([np.asarray(x) for x in xs], axis=out_axis), *outs)

    return run


def guarded(a: np.ndarray, at_end: bool) -> np.ndarray:
    """A copy of ``a`` placed right after (or right before, ``at_end``) a page that may not
    be read or written: compiled code that strays out of the array crashes the test."""
    a = np.ascontiguousarray(a)
    pages = -(-max(a.nbytes, 1) // PAGE)
    raw = np.frombuffer(mmap.mmap(-1, (pages + 2) * PAGE), np.uint8)
    base = raw.ctypes.data
    for page in (base, base + (pages + 1) * PAGE):
        assert _libc.mprotect(page, PAGE, 0) == 0  # PROT_NONE
    start = (pages + 1) * PAGE - a.nbytes if at_end else PAGE
    out = raw[start : start + a.nbytes].view(a.dtype).reshape(a.shape)
    out[...] = a
    return out


def assert_equal(actual: Any, expected: Any) -> None:
    """Same dtype, shape and values, bit for bit (NaN equals NaN; -0.0 differs from 0.0)."""
    assert_same(actual, expected, rtol=0, atol=0)
    a, e = np.asarray(actual), np.asarray(expected)
    if e.dtype.kind == "f":
        np.testing.assert_array_equal(np.signbit(a), np.signbit(e))
