"""Indexing of ``functrace.numpy``: ``x[...]``, ``x.at[...]``, ``take``, ``take_along_axis``."""

from __future__ import annotations

from typing import Any

__all__: list[str] = []


def getitem(x: Any, index: Any) -> Any:
    raise NotImplementedError("indexing traced values is not implemented yet")


class AtIndexer:
    def __init__(self, x: Any):
        self.x = x
