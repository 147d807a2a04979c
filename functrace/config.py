"""Global configuration: ``functrace.config.update(name, value)``.

>>> import functrace as ft
>>> ft.config.update("debug_nans", False)
>>> ft.config.debug_nans
False
"""

from __future__ import annotations

import os
from typing import Any


class Config:
    """Options: ``debug_nans`` (raise on the first NaN) and ``jit_cache_dir``
    (persistent compile cache directory; ``None`` turns it off)."""

    def __init__(self) -> None:
        self._values: dict[str, Any] = {
            "debug_nans": os.environ.get("FUNCTRACE_DEBUG_NANS", "0").lower() in ("1", "true", "on"),
            "jit_cache_dir": os.environ.get("FUNCTRACE_JIT_CACHE_DIR") or None,
        }

    def update(self, name: str, value: Any) -> None:
        if name not in self._values:
            raise ValueError(f"unknown config option {name!r}; options are {', '.join(sorted(self._values))}")
        self._values[name] = value

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["_values"][name]
        except KeyError:
            raise AttributeError(f"unknown config option {name!r}") from None


config = Config()
