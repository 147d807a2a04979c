"""Devices: where arrays live and computations run.

Today every array is a host NumPy array and every computation runs on the CPU; the CUDA
backend (``lowering.cuda``) will add ``"cuda"`` devices.

>>> import functrace as ft
>>> ft.devices()
[CpuDevice(id=0)]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from functrace import tree_util
from functrace.core.abstract import concrete_aval


class Device:
    """A place where arrays live: ``platform`` (``"cpu"``) and ``id``."""

    __slots__ = ("id", "platform")

    def __init__(self, platform: str, id: int):  # noqa: A002  (JAX's name)
        self.platform, self.id = platform, id

    def __repr__(self) -> str:
        return f"{self.platform.capitalize()}Device(id={self.id})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Device) and (self.platform, self.id) == (other.platform, other.id)

    def __hash__(self) -> int:
        return hash((self.platform, self.id))


_CPU = Device("cpu", 0)
_NO_CUDA = (
    "functrace has no CUDA backend yet (it lands with the CUDA issue), so there is no 'cuda' device; "
    "arrays stay NumPy arrays on the host"
)


def devices(backend: str | None = None) -> list[Device]:
    """The devices of ``backend`` (``None``, ``"cpu"`` or ``"interpret"``: the host CPU)."""
    if backend in (None, "cpu", "interpret"):
        return [_CPU]
    if backend == "cuda":
        raise RuntimeError(_NO_CUDA)
    raise ValueError(f"unknown backend {backend!r}; known backends: cpu, cuda, interpret")


def device_put(x: Any, device: Device | str | None = None) -> Any:
    """Place every leaf of ``x`` on ``device`` (the host CPU: leaves become ``numpy.ndarray``).

    >>> import functrace as ft
    >>> ft.device_put([1.0, 2.0])
    [array(1.), array(2.)]
    """
    platform = device.platform if isinstance(device, Device) else device
    if platform not in (None, "cpu"):
        if platform == "cuda":
            raise RuntimeError(_NO_CUDA)
        raise ValueError(f"unknown device {device!r}")
    return tree_util.tree_map(lambda leaf: np.asarray(leaf, dtype=concrete_aval(leaf).dtype), x)
