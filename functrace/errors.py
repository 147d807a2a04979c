"""The errors functrace raises for mistakes in user code.

Each message names the operation and the user's own line; tracebacks are filtered
of library frames (set ``FUNCTRACE_TRACEBACK_FILTERING=off`` to see them all).
"""

from __future__ import annotations


class ConcretizationError(TypeError):
    """A traced value was used where Python needs a concrete one.

    Raised by ``bool()``, ``int()``, ``float()``, ``if``/``while`` on a traced value,
    or by converting it to a NumPy array. Use ``lax.cond``/``lax.while_loop`` for
    value-dependent control flow, or mark the argument static with
    ``static_argnums``.
    """


class UnexpectedTracerError(Exception):
    """A traced value escaped the transformation that created it (e.g. stored in a
    global or a closure) and was used after that transformation ended."""


class IRTypeError(TypeError):
    """The IR failed type checking: a bug in a transformation or a hand-built IR."""
