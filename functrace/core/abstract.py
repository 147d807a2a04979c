"""Abstract values: what tracing knows about an array (shape, dtype, weak type)."""

from __future__ import annotations

import numpy as np

from functrace.core import dtypes


class ShapedArray:
    """The type of an array value in the IR.

    >>> ShapedArray((3, 4), np.dtype("float32")).str_short()
    'f32[3,4]'
    """

    __slots__ = ("shape", "dtype", "weak_type")

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype, weak_type: bool = False):
        # Hot in eager mode and tracing: skip conversions when the inputs are already canonical.
        self.shape = shape if type(shape) is tuple else tuple(int(d) for d in shape)
        self.dtype = dtype if isinstance(dtype, np.dtype) else np.dtype(dtype)
        self.weak_type = bool(weak_type)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def update(self, shape=None, dtype=None, weak_type=None) -> ShapedArray:
        return ShapedArray(
            self.shape if shape is None else shape,
            self.dtype if dtype is None else dtype,
            self.weak_type if weak_type is None else weak_type,
        )

    def strip_weak(self) -> ShapedArray:
        return self if not self.weak_type else ShapedArray(self.shape, self.dtype)

    def str_short(self) -> str:
        return f"{dtypes.short_name(self.dtype)}[{','.join(map(str, self.shape))}]"

    def __eq__(self, other) -> bool:
        return (
            isinstance(other, ShapedArray)
            and self.shape == other.shape
            and self.dtype == other.dtype
            and self.weak_type == other.weak_type
        )

    def __hash__(self) -> int:
        return hash((self.shape, self.dtype, self.weak_type))

    def __repr__(self) -> str:
        weak = ", weak" if self.weak_type else ""
        return f"ShapedArray({self.str_short()}{weak})"

    def same_type(self, other: ShapedArray) -> bool:
        """Shape and dtype agree (weak type is a promotion hint, not part of the type)."""
        return self.shape == other.shape and self.dtype == other.dtype


_PYTHON_SCALAR_DTYPES = {bool: dtypes.bool_, int: dtypes.int64, float: dtypes.float64}


def is_python_scalar(x) -> bool:
    return type(x) in _PYTHON_SCALAR_DTYPES


def concrete_aval(x) -> ShapedArray:
    """The abstract value of a concrete (non-tracer) input.

    Python ``int``/``float`` are weakly typed; ``bool`` is not (as in JAX).
    """
    t = type(x)
    if t in _PYTHON_SCALAR_DTYPES:
        return ShapedArray((), _PYTHON_SCALAR_DTYPES[t], weak_type=t is not bool)
    if isinstance(x, np.ndarray | np.generic):
        return ShapedArray(x.shape, dtypes.canonicalize(x.dtype))
    if hasattr(x, "__array__") and hasattr(x, "shape") and hasattr(x, "dtype"):
        return ShapedArray(x.shape, dtypes.canonicalize(x.dtype))
    raise TypeError(
        f"functrace cannot use a value of type {t.__name__} as an array; "
        "pass NumPy arrays, Python scalars, or pytrees of them"
    )


def as_array(x, dtype: np.dtype | None = None) -> np.ndarray:
    """A concrete input as an ndarray of a supported dtype (weak scalars at default width)."""
    if dtype is None:
        dtype = concrete_aval(x).dtype
    arr = np.asarray(x)
    return arr if arr.dtype == dtype else arr.astype(dtype)
