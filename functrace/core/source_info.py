"""Where in the user's code something happened, and library-free tracebacks."""

from __future__ import annotations

import functools
import os
import sys
import types
from collections.abc import Callable
from typing import Any, TypeVar

# functrace/ and lowering/ (the parent of core/ is functrace/).
_FUNCTRACE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_LIBRARY_DIRS = (
    _FUNCTRACE_DIR + os.sep,
    os.path.join(os.path.dirname(_FUNCTRACE_DIR), "lowering") + os.sep,
)
_INTERNAL_MODULES = ("functools.py", "contextlib.py")


def _is_library_file(filename: str) -> bool:
    return filename.startswith(_LIBRARY_DIRS) or filename.endswith(_INTERNAL_MODULES)


def user_frame() -> str | None:
    """``file:line (function)`` of the innermost stack frame outside functrace."""
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not _is_library_file(filename):
            return f"{filename}:{frame.f_lineno} ({frame.f_code.co_name})"
        frame = frame.f_back
    return None


def with_user_line(message: str) -> str:
    where = user_frame()
    return message if where is None else f"{message}\n  at {where}"


def filtering_enabled() -> bool:
    return os.environ.get("FUNCTRACE_TRACEBACK_FILTERING", "on").lower() not in ("off", "0", "false")


def filter_traceback(tb: types.TracebackType | None) -> types.TracebackType | None:
    """The traceback without library frames."""
    kept = []
    while tb is not None:
        if not _is_library_file(tb.tb_frame.f_code.co_filename):
            kept.append(tb)
        tb = tb.tb_next
    out = None
    for entry in reversed(kept):
        out = types.TracebackType(out, entry.tb_frame, entry.tb_lasti, entry.tb_lineno)
    return out


F = TypeVar("F", bound=Callable[..., Any])


def api_boundary(fun: F) -> F:
    """Decorate a public entry point so that errors show only the user's frames."""

    @functools.wraps(fun)
    def wrapper(*args, **kwargs):
        try:
            return fun(*args, **kwargs)
        except Exception as e:
            if not filtering_enabled():
                raise
            raise e.with_traceback(filter_traceback(e.__traceback__)) from e.__cause__

    return wrapper  # type: ignore[return-value]
