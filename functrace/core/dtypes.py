"""The dtypes functrace supports, their short names, and NumPy 2 (NEP 50) promotion.

Python scalars are *weakly typed*: they take the dtype of the array they meet
(``x_f32 * 2.0`` stays float32), exactly as NumPy 2 does. We lean on
``numpy.result_type`` for the lattice itself, so eager and traced code agree.
"""

from __future__ import annotations

import numpy as np

float32 = np.dtype("float32")
float64 = np.dtype("float64")
int32 = np.dtype("int32")
int64 = np.dtype("int64")
uint32 = np.dtype("uint32")
bool_ = np.dtype("bool")

SUPPORTED: tuple[np.dtype, ...] = (float32, float64, int32, int64, uint32, bool_)
FLOATING: tuple[np.dtype, ...] = (float32, float64)
INTEGER: tuple[np.dtype, ...] = (int32, int64, uint32)

SHORT_NAMES: dict[np.dtype, str] = {
    float32: "f32",
    float64: "f64",
    int32: "i32",
    int64: "i64",
    uint32: "u32",
    bool_: "bool",
}

# Narrow types that NumPy users hand us (images as uint8, say) are widened without
# loss; anything else unsupported is an error rather than a silent conversion.
_WIDENED: dict[np.dtype, np.dtype] = {
    np.dtype("int8"): int32,
    np.dtype("int16"): int32,
    np.dtype("uint8"): int32,
    np.dtype("uint16"): int32,
    np.dtype("float16"): float32,
}


def canonicalize(dtype) -> np.dtype:
    """Map a dtype-like to the supported dtype it is computed in.

    >>> canonicalize("float32")
    dtype('float32')
    """
    dt = np.dtype(dtype)
    if dt in SHORT_NAMES:
        return dt
    if dt in _WIDENED:
        return _WIDENED[dt]
    raise TypeError(
        f"functrace does not support dtype {dt}; supported dtypes are "
        f"{', '.join(str(d) for d in SUPPORTED)} (convert with .astype first)"
    )


def short_name(dtype: np.dtype) -> str:
    return SHORT_NAMES[dtype]


def is_float(dtype: np.dtype) -> bool:
    return dtype.kind == "f"


def is_integer(dtype: np.dtype) -> bool:
    return dtype.kind in "iu"


# A Python value that stands for "a weakly typed scalar of this kind" in
# numpy.result_type, which applies NEP 50 to Python scalars.
_WEAK_REPRESENTATIVE = {"b": False, "i": 0, "u": 0, "f": 0.0}


def result_type(*avals) -> tuple[np.dtype, bool]:
    """Promote abstract values (anything with ``dtype`` and ``weak_type``).

    Returns ``(dtype, weak_type)``; the result is weak only if every input is.

    >>> from functrace.core.abstract import ShapedArray
    >>> result_type(ShapedArray((), float32), ShapedArray((), float64, weak_type=True))
    (dtype('float32'), False)
    """
    operands = [_WEAK_REPRESENTATIVE[a.dtype.kind] if a.weak_type else a.dtype for a in avals]
    weak = all(a.weak_type for a in avals)
    # All weak: the widest kind wins at its default width.
    dtype = np.result_type(*[a.dtype for a in avals]) if weak else np.result_type(*operands)
    return canonicalize(dtype), weak
