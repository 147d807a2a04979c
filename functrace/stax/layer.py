"""What a stax layer is, and the checks every layer shares.

A layer is a pair ``(init_fun, apply_fun)``:

- ``init_fun(rng, input_shape) -> (output_shape, params)``: ``input_shape`` is a tuple of
  ints (a tuple of shapes for layers taking several inputs); a leading ``-1`` stands for a
  batch size not known yet and is kept in ``output_shape``.
- ``apply_fun(params, inputs, *, rng=None, mode=None) -> outputs``: ``rng`` is a
  ``random.PRNGKey`` (needed only by ``Dropout`` in train mode); ``mode`` is ``"train"`` or
  ``"test"`` and, when given, overrides the mode the layer was constructed with.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from functrace import random
from functrace.core.source_info import with_user_line

InitFun = Callable[[Any, Any], tuple[Any, Any]]
ApplyFun = Callable[..., Any]
Layer = tuple[InitFun, ApplyFun]

MODES = ("train", "test")


def describe(name: str, *args: Any, **kwargs: Any) -> str:
    """How a layer names itself in error messages, e.g. ``Dense(16)``; ``None`` keywords are left out.

    >>> describe("Conv", 8, (3, 3), strides=None, padding="SAME")
    "Conv(8, (3, 3), padding='SAME')"
    """
    parts = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items() if v is not None]
    return f"{name}({', '.join(parts)})"


def check_mode(layer: str, mode: Any) -> None:
    """Raise ``ValueError`` unless ``mode`` is ``None``, ``"train"`` or ``"test"``.

    >>> check_mode("Dropout(0.5)", "test")
    """
    if mode is not None and mode not in MODES:
        raise arg_error(layer, f"mode must be 'train' or 'test', got {mode!r}")


def resolve_mode(layer: str, default: str, mode: str | None) -> str:
    """The mode given to ``apply_fun`` if any, else the constructor's.

    >>> resolve_mode("Dropout(0.5)", "train", None), resolve_mode("Dropout(0.5)", "train", "test")
    ('train', 'test')
    """
    check_mode(layer, mode)
    return default if mode is None else mode


def as_shape(layer: str, input_shape: Any, rank: int | None = None, min_rank: int = 0) -> tuple[int, ...]:
    """``input_shape`` as a tuple of ints, checked (``-1`` allowed for unknown sizes).

    >>> as_shape("Dense(3)", [-1, 4], min_rank=1)
    (-1, 4)
    """
    try:
        shape = tuple(int(d) for d in input_shape)
    except (TypeError, ValueError):
        raise TypeError(with_user_line(f"{layer}: input_shape must be a tuple of ints, got {input_shape!r}")) from None
    if any(d < -1 for d in shape):
        raise arg_error(layer, f"input_shape {shape} has a negative size other than -1")
    if rank is not None and len(shape) != rank:
        raise TypeError(with_user_line(f"{layer}: needs inputs of rank {rank}, got input_shape {shape}"))
    if len(shape) < min_rank:
        raise TypeError(with_user_line(f"{layer}: needs inputs of rank >= {min_rank}, got input_shape {shape}"))
    return shape


def require_known(layer: str, shape: tuple[int, ...], dims: Sequence[int], what: str) -> None:
    """Raise ``ValueError`` if any of ``shape[dims]`` is the unknown size ``-1``.

    >>> require_known("Flatten", (-1, 3, 4), (1, 2), "the flattened dimensions")
    """
    if any(shape[d] == -1 for d in dims):
        raise arg_error(layer, f"{what} of input_shape {shape} must be known, not -1")


def shape_error(layer: str, message: str) -> TypeError:
    """A ``TypeError`` for inputs whose shape the layer cannot take, naming the layer."""
    return TypeError(with_user_line(f"{layer}: {message}"))


def arg_error(layer: str, message: str) -> ValueError:
    """A ``ValueError`` for a bad constructor argument, naming the layer."""
    return ValueError(with_user_line(f"{layer}: {message}"))


def positive_ints(layer: str, what: str, value: Any, n: int | None = None) -> tuple[int, ...]:
    """A tuple of positive ints (``n`` of them if given), or ``ValueError`` naming ``what``.

    >>> positive_ints("MaxPool((2, 2))", "strides", [2, 1], 2)
    (2, 1)
    """
    try:
        ints = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise arg_error(layer, f"{what} must be a tuple of ints, got {value!r}") from None
    if any(v < 1 for v in ints) or (n is not None and len(ints) != n):
        count = "" if n is None else f"{n} "
        raise arg_error(layer, f"{what} must be {count}positive ints, got {ints}")
    return ints


def split_keys(rng: Any, num: int) -> list[Any]:
    """``num`` independent keys from ``rng`` (``None`` stays ``None`` for each)."""
    if rng is None or num == 0:
        return [None] * num
    keys = random.split(rng, num)
    return [keys[i] for i in range(num)]


__all__: list[str] = []
