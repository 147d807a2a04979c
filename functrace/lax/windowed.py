"""Windowed reductions (``reduce_window``: sum, max and min pooling) and the window
arithmetic they share with convolution: dilation, padding and sliding windows.

XLA's window semantics: the operand is first dilated by ``base_dilation`` (holes
between elements), then padded by ``padding`` ``(lo, hi)`` pairs (negative pads crop);
a window of ``window_dimensions`` taps ``window_dilation`` apart slides over it with
``window_strides``. Holes and pads hold the reduction's identity, so they never win.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from functrace.core.abstract import ShapedArray
from functrace.core.ad_util import Zero, add_tangents, deflinear, zeros
from functrace.core.primitive import Primitive, batch_rules, jvp_rules, vjp_rules
from functrace.core.source_info import with_user_line
from functrace.core.trace import Tracer, get_aval
from functrace.lax import elementwise
from functrace.lax.elementwise import NUMERIC, _check_kinds, eq_p, select_p
from functrace.lax.indexing import slice_p
from functrace.lax.structural import pad_p

Padding = tuple[tuple[int, int], ...]

# --- window arithmetic (shared with functrace.lax.convolution) -------------------------


def dilate_dim(size: int, dilation: int) -> int:
    """The size of a dimension after inserting ``dilation - 1`` holes between elements."""
    return 0 if size == 0 else (size - 1) * dilation + 1


def window_output_shape(
    name: str,
    in_shape: tuple[int, ...],
    window: tuple[int, ...],
    strides: tuple[int, ...],
    padding: Padding,
    base_dilation: tuple[int, ...],
    window_dilation: tuple[int, ...],
) -> tuple[int, ...]:
    """How many window positions fit along each dimension; a clear ``TypeError`` if the
    window parameters are malformed or a window is larger than the padded input (unless
    that input dimension is empty: then there are no windows)."""
    n = len(in_shape)
    lengths = {"window": window, "strides": strides, "padding": padding}
    lengths |= {"base dilation": base_dilation, "window dilation": window_dilation}
    for what, value in lengths.items():
        if len(value) != n:
            raise TypeError(with_user_line(f"{name}: {what} {value} needs {n} entries for input shape {in_shape}"))
    for what, value in lengths.items():
        if what != "padding" and any(v < 1 for v in value):
            raise TypeError(with_user_line(f"{name}: {what} must be positive, got {value}"))
    out = []
    for size, w, s, (lo, hi), bd, wd in zip(
        in_shape, window, strides, padding, base_dilation, window_dilation, strict=True
    ):
        padded = dilate_dim(size, bd) + lo + hi
        effective = dilate_dim(w, wd)
        if padded < effective and size == 0:
            out.append(0)  # an empty input has no windows, whatever the padding
        elif padded < effective:
            raise TypeError(
                with_user_line(
                    f"{name}: window {window} (dilated by {window_dilation}) is larger than the input "
                    f"{in_shape} after dilation {base_dilation} and padding {padding}"
                )
            )
        else:
            out.append((padded - effective) // s + 1)
    return tuple(out)


def dilate_and_pad(x: np.ndarray, dilation: Sequence[int], padding: Padding, fill) -> np.ndarray:
    """``x`` with ``dilation - 1`` holes between elements and ``(lo, hi)`` pads, both
    holding ``fill``; negative pads crop."""
    shape = tuple(dilate_dim(n, d) + lo + hi for n, d, (lo, hi) in zip(x.shape, dilation, padding, strict=True))
    out = np.full(shape, fill, dtype=x.dtype)
    source, target = [], []
    for n, d, (lo, _), size in zip(x.shape, dilation, padding, shape, strict=True):
        # Element i lands at lo + i * d; keep those inside [0, size).
        first = -(min(lo, 0) // d)
        last = max(first, min(n, -((lo - size) // d)))
        source.append(slice(first, last))
        target.append(slice(lo + first * d, lo + last * d, d) if last > first else slice(0, 0))
    out[tuple(target)] = x[tuple(source)]
    return out


def sliding_windows(
    x: np.ndarray, axes: Sequence[int], window: Sequence[int], strides: Sequence[int], window_dilation: Sequence[int]
) -> np.ndarray:
    """A view of ``x``'s windows over ``axes``: those axes index window positions and the
    window's taps are appended as trailing axes (in the order of ``axes``)."""
    effective = tuple(dilate_dim(w, d) for w, d in zip(window, window_dilation, strict=True))
    view = sliding_window_view(x, effective, axis=tuple(axes))
    positions = [slice(None)] * x.ndim
    for axis, s in zip(axes, strides, strict=True):
        positions[axis] = slice(None, None, s)
    taps = tuple(slice(None, None, d) for d in window_dilation)
    return view[(*positions, *taps)]


def padtype_to_pads(
    in_shape: Sequence[int], window_shape: Sequence[int], window_strides: Sequence[int], padding: str
) -> tuple[tuple[int, int], ...]:
    """Explicit ``(lo, hi)`` pads for ``"VALID"``, ``"SAME"`` or ``"SAME_LOWER"`` padding.

    ``"SAME"`` pads so that there are ``ceil(in / stride)`` window positions, the extra
    pad going at the end; ``"SAME_LOWER"`` puts the extra pad at the start.

    >>> from functrace import lax
    >>> lax.padtype_to_pads((5, 4), (3, 2), (2, 1), "SAME")
    ((1, 1), (0, 1))
    >>> lax.padtype_to_pads((5,), (3,), (1,), "VALID")
    ((0, 0),)
    """
    if not isinstance(padding, str) or padding.upper() not in ("VALID", "SAME", "SAME_LOWER"):
        raise ValueError(f"padding must be 'VALID', 'SAME', 'SAME_LOWER' or (lo, hi) pairs, got {padding!r}")
    if not len(in_shape) == len(window_shape) == len(window_strides):
        raise TypeError(
            with_user_line(
                f"padtype_to_pads: input shape {tuple(in_shape)}, window {tuple(window_shape)} and "
                f"strides {tuple(window_strides)} need the same number of entries"
            )
        )
    if any(s < 1 for s in window_strides):
        raise TypeError(with_user_line(f"padtype_to_pads: strides must be positive, got {tuple(window_strides)}"))
    if padding.upper() == "VALID":
        return ((0, 0),) * len(in_shape)
    pads = []
    for size, w, s in zip(in_shape, window_shape, window_strides, strict=True):
        total = max(0, (-(-size // s) - 1) * s + w - size)
        small, large = total // 2, total - total // 2
        pads.append((small, large) if padding.upper() == "SAME" else (large, small))
    return tuple(pads)


def normalize_padding(padding) -> Padding:
    """Explicit ``(lo, hi)`` pairs as a hashable tuple of int pairs."""
    try:
        pairs = tuple((int(lo), int(hi)) for lo, hi in padding)
    except (TypeError, ValueError):
        raise ValueError(
            f"padding must be 'VALID', 'SAME', 'SAME_LOWER' or a sequence of (lo, hi) pairs, got {padding!r}"
        ) from None
    return pairs


def static_ints(name: str, what: str, value: Sequence[int] | None, n: int, per: str) -> tuple[int, ...]:
    """``n`` ints as a hashable tuple (``None``: all ones), with an error naming ``what``."""
    if value is None:
        return (1,) * n
    try:
        ints = tuple(int(v) for v in value)
    except TypeError:
        raise TypeError(with_user_line(f"{name}: {what} must be a sequence of ints, got {value!r}")) from None
    if len(ints) != n:
        raise TypeError(with_user_line(f"{name}: {what} {ints} needs {n} entries, one per {per}"))
    return ints


# --- reduce_window primitives -----------------------------------------------------------


def _lowest(dtype: np.dtype):
    return -np.inf if dtype.kind == "f" else np.iinfo(dtype).min


def _highest(dtype: np.dtype):
    return np.inf if dtype.kind == "f" else np.iinfo(dtype).max


def window_reducer(name: str, reduce: Callable, identity: Callable[[np.dtype], object]) -> Primitive:
    """A reduction of every window of the operand; holes and pads hold ``identity(dtype)``."""
    prim = Primitive(name)

    def impl(x, *, window_dimensions, window_strides, padding, base_dilation, window_dilation):
        x = np.asarray(x)
        shape = window_output_shape(
            name, x.shape, window_dimensions, window_strides, padding, base_dilation, window_dilation
        )
        if 0 in shape:
            return [np.zeros(shape, x.dtype)]
        padded = dilate_and_pad(x, base_dilation, padding, identity(x.dtype))
        windows = sliding_windows(padded, range(x.ndim), window_dimensions, window_strides, window_dilation)
        taps = tuple(range(x.ndim, 2 * x.ndim))
        return [np.asarray(reduce(windows, axis=taps), dtype=x.dtype)]

    def abstract_eval(
        x: ShapedArray,
        *,
        window_dimensions: tuple[int, ...],
        window_strides: tuple[int, ...],
        padding: Padding,
        base_dilation: tuple[int, ...],
        window_dilation: tuple[int, ...],
    ) -> list[ShapedArray]:
        _check_kinds(name, x, NUMERIC)
        shape = window_output_shape(
            name, x.shape, window_dimensions, window_strides, padding, base_dilation, window_dilation
        )
        return [ShapedArray(shape, x.dtype, x.weak_type)]

    prim.def_impl(impl)
    prim.def_abstract_eval(abstract_eval)
    batch_rules[prim] = _window_reducer_batch(prim)
    return prim


def _window_reducer_batch(prim: Primitive) -> Callable:
    """The batch rule of a window reduction: the mapped axis gets a window of one element."""

    def batch(args: list, dims: list, **params) -> tuple[list, list]:
        (x,), (bdim,) = args, dims

        def with_mapped(values: tuple, value) -> tuple:
            return (*values[:bdim], value, *values[bdim:])

        out = prim.bind(
            x,
            window_dimensions=with_mapped(params["window_dimensions"], 1),
            window_strides=with_mapped(params["window_strides"], 1),
            padding=with_mapped(params["padding"], (0, 0)),
            base_dilation=with_mapped(params["base_dilation"], 1),
            window_dilation=with_mapped(params["window_dilation"], 1),
        )
        return [out], [bdim]

    return batch


reduce_window_sum_p = window_reducer("reduce_window_sum", np.sum, lambda dtype: 0)


def transpose_padding(
    in_shape: Sequence[int],
    window: Sequence[int],
    out_shape: Sequence[int],
    strides: Sequence[int],
    padding: Padding,
    base_dilation: Sequence[int],
    window_dilation: Sequence[int],
) -> Padding:
    """Pads for the windowed op that carries a cotangent of ``out_shape`` back to
    ``in_shape``: the output dilated by ``strides``, a window of the same taps sliding
    with stride ``base_dilation``. Input element ``j`` sat at ``lo + j * base_dilation``
    and was read by tap ``k`` of window ``y`` when that equals ``y * stride + k *
    window_dilation``; with the window reversed, the new low pad is ``effective - 1 - lo``
    and the high pad leaves exactly ``in_shape`` windows (negative pads crop cotangents
    of windows that never read the input)."""
    pads = []
    for x, w, y, s, (lo, _), bd, wd in zip(
        in_shape, window, out_shape, strides, padding, base_dilation, window_dilation, strict=True
    ):
        effective = dilate_dim(w, wd)
        new_lo = effective - 1 - lo
        pads.append((new_lo, (x - 1) * bd + effective - dilate_dim(y, s) - new_lo))
    return tuple(pads)


def _reduce_window_sum_transpose(
    ct, x: ShapedArray, *, window_dimensions, window_strides, padding, base_dilation, window_dilation
) -> list:
    if x.size == 0 or get_aval(ct).size == 0:
        return [zeros(x)]
    pads = transpose_padding(
        x.shape, window_dimensions, get_aval(ct).shape, window_strides, padding, base_dilation, window_dilation
    )
    # The window is all ones, so reversing it changes nothing.
    ct_x = reduce_window_sum_p.bind(
        ct,
        window_dimensions=window_dimensions,
        window_strides=base_dilation,
        padding=pads,
        base_dilation=window_strides,
        window_dilation=window_dilation,
    )
    return [ct_x]


deflinear(reduce_window_sum_p, _reduce_window_sum_transpose)

reduce_window_max_p = window_reducer("reduce_window_max", np.max, _lowest)
reduce_window_min_p = window_reducer("reduce_window_min", np.min, _highest)

# Max and min pooling pass a derivative through the element each window picked: the
# first tap, in row-major order of the window, equal to the window's result. Ties thus
# go to the earliest tap (one consistent choice); a window whose result is NaN passes
# nothing. Each tap is a strided slice of the padded operand, so the rules bind only
# pad, slice, eq and select, and differentiate again (the choice is locally constant).


def _pad_as_window(x, fill, padding: Padding, base_dilation: tuple[int, ...]):
    """``x`` dilated and padded as the windows see it, holes and pads holding ``fill``."""
    config = tuple((lo, hi, d - 1) for (lo, hi), d in zip(padding, base_dilation, strict=True))
    if all(c == (0, 0, 0) for c in config):
        return x
    return pad_p.bind(x, np.asarray(fill, get_aval(x).dtype), padding_config=config)


def _unpad_as_window(ct, padding: Padding, base_dilation: tuple[int, ...]):
    """The transpose of ``_pad_as_window``: drop the pads (zeros for cropped elements), then the holes."""
    config = tuple((-lo, -hi, 0) for lo, hi in padding)
    if any(c != (0, 0, 0) for c in config):
        ct = pad_p.bind(ct, np.zeros((), get_aval(ct).dtype), padding_config=config)
    if any(d != 1 for d in base_dilation):
        shape = get_aval(ct).shape
        ct = slice_p.bind(ct, start_indices=(0,) * len(shape), limit_indices=shape, strides=base_dilation)
    return ct


def _window_taps(window_dimensions, window_strides, window_dilation, out_shape):
    """``(starts, limits)`` of the strided slice of the padded operand that each window tap
    reads (one element per window), taps in row-major order."""
    taps = []
    for tap in itertools.product(*map(range, window_dimensions)):
        starts = tuple(t * d for t, d in zip(tap, window_dilation, strict=True))
        limits = tuple(a + (y - 1) * s + 1 for a, y, s in zip(starts, out_shape, window_strides, strict=True))
        taps.append((starts, limits))
    return taps


def _tap_slice(padded, starts: tuple[int, ...], limits: tuple[int, ...], strides: tuple[int, ...]):
    if not any(starts) and limits == get_aval(padded).shape and all(s == 1 for s in strides):
        return padded
    return slice_p.bind(padded, start_indices=starts, limit_indices=limits, strides=strides)


def _tap_place(ct, starts: tuple[int, ...], limits: tuple[int, ...], strides: tuple[int, ...], shape):
    """The transpose of ``_tap_slice``: ``ct`` at the positions that tap reads, zeros elsewhere."""
    config = tuple((a, n - b, s - 1) for a, b, s, n in zip(starts, limits, strides, shape, strict=True))
    if all(c == (0, 0, 0) for c in config):
        return ct
    return pad_p.bind(ct, np.zeros((), get_aval(ct).dtype), padding_config=config)


def _defchooser(prim: Primitive, identity: Callable[[np.dtype], object]) -> None:
    """Register jvp and vjp for max or min pooling (see the comment above)."""

    def jvp(primals: list, tangents: list, **params) -> tuple[list, list]:
        (x,), (t,) = primals, tangents
        out = prim.bind(x, **params)
        out_aval = get_aval(out)
        if type(t) is Zero:
            return [out], [Zero(out_aval)]
        if get_aval(x).size == 0 or out_aval.size == 0:
            return [out], [zeros(out_aval)]
        padded_x = _pad_as_window(x, identity(out_aval.dtype), params["padding"], params["base_dilation"])
        padded_t = _pad_as_window(t, 0, params["padding"], params["base_dilation"])
        strides = params["window_strides"]
        t_out = np.zeros((), out_aval.dtype)
        taps = _window_taps(params["window_dimensions"], strides, params["window_dilation"], out_aval.shape)
        for starts, limits in reversed(taps):  # the first tap that hits is selected last, so it wins
            hit = eq_p.bind(_tap_slice(padded_x, starts, limits, strides), out)
            t_out = select_p.bind(hit, _tap_slice(padded_t, starts, limits, strides), t_out)
        return [out], [t_out]

    def vjp(cts: list, primals: list, outs: list, **params) -> list:
        (ct,), (x,), (out,) = cts, primals, outs
        x_aval, out_aval = get_aval(x), get_aval(out)
        if x_aval.size == 0 or out_aval.size == 0:
            return [zeros(x_aval)]
        padded_x = _pad_as_window(x, identity(x_aval.dtype), params["padding"], params["base_dilation"])
        padded_shape, strides = get_aval(padded_x).shape, params["window_strides"]
        zero = np.zeros((), x_aval.dtype)
        taps = _window_taps(params["window_dimensions"], strides, params["window_dilation"], out_aval.shape)
        remaining, ct_padded = ct, None  # ``remaining``: cotangent of windows not yet served
        for k, (starts, limits) in enumerate(taps):
            hit = eq_p.bind(_tap_slice(padded_x, starts, limits, strides), out)
            mine = select_p.bind(hit, remaining, zero)
            if k + 1 < len(taps):
                remaining = select_p.bind(hit, zero, remaining)
            ct_padded = add_tangents(ct_padded, _tap_place(mine, starts, limits, strides, padded_shape))
        return [_unpad_as_window(ct_padded, params["padding"], params["base_dilation"])]

    jvp_rules[prim] = jvp
    vjp_rules[prim] = vjp


_defchooser(reduce_window_max_p, _lowest)
_defchooser(reduce_window_min_p, _highest)


# --- public wrappers (functrace.lax) --------------------------------------------------

# (computation, (primitive, identity for a dtype, how to name the identity)); matched by identity
_REDUCE_WINDOW = (
    (elementwise.add, (reduce_window_sum_p, lambda dtype: 0, "0")),
    (elementwise.max, (reduce_window_max_p, _lowest, "-inf (the lowest value of integer types)")),
    (elementwise.min, (reduce_window_min_p, _highest, "inf (the highest value of integer types)")),
)


def _reducer_for(computation: Callable, init_value, dtype: np.dtype) -> Primitive:
    known = [entry for fn, entry in _REDUCE_WINDOW if fn is computation]
    if not known:
        raise NotImplementedError(
            f"reduce_window supports computation=lax.add, lax.max or lax.min, got {computation!r}"
        )
    prim, identity, identity_name = known[0]
    if isinstance(init_value, Tracer):
        raise NotImplementedError(
            f"reduce_window with lax.{computation.__name__} needs a concrete init_value "
            f"(the identity {identity_name}), got a traced value"
        )
    if np.ndim(init_value) != 0 or np.asarray(init_value) != identity(dtype):
        raise NotImplementedError(
            f"reduce_window with lax.{computation.__name__} supports only init_value = the identity "
            f"{identity_name} for {dtype.name}, got {init_value!r}; combine a different start value "
            "with the result instead"
        )
    return prim


def reduce_window(
    operand,
    init_value,
    computation: Callable,
    window_dimensions: Sequence[int],
    window_strides: Sequence[int],
    padding: str | Sequence[tuple[int, int]],
    base_dilation: Sequence[int] | None = None,
    window_dilation: Sequence[int] | None = None,
):
    """Reduce every window of ``operand`` with ``computation`` (JAX's signature).

    ``computation`` is ``lax.add``, ``lax.max`` or ``lax.min`` and ``init_value`` its
    identity (``0``, ``-inf``, ``inf``; the lowest/highest value for integers).
    ``padding`` is ``"VALID"``, ``"SAME"``, ``"SAME_LOWER"`` or ``(lo, hi)`` pairs; as in
    JAX, string padding is computed from the undilated operand and window shapes.

    >>> import numpy as np
    >>> from functrace import lax
    >>> x = np.arange(16.0).reshape(4, 4)
    >>> lax.reduce_window(x, -np.inf, lax.max, (2, 2), (2, 2), "VALID")
    array([[ 5.,  7.],
           [13., 15.]])
    >>> lax.reduce_window(np.ones(5), 0.0, lax.add, (3,), (1,), "SAME")
    array([2., 3., 3., 3., 2.])
    """
    aval = get_aval(operand)
    prim = _reducer_for(computation, init_value, aval.dtype)

    def ints(what: str, value: Sequence[int] | None) -> tuple[int, ...]:
        return static_ints("reduce_window", what, value, aval.ndim, f"dimension of operand {aval.shape}")

    window_dimensions = ints("window_dimensions", window_dimensions)
    window_strides = ints("window_strides", window_strides)
    if isinstance(padding, str):
        pads = padtype_to_pads(aval.shape, window_dimensions, window_strides, padding)
    else:
        pads = normalize_padding(padding)
    return prim.bind(
        operand,
        window_dimensions=window_dimensions,
        window_strides=window_strides,
        padding=pads,
        base_dilation=ints("base_dilation", base_dilation),
        window_dilation=ints("window_dilation", window_dilation),
    )


__all__ = ["padtype_to_pads", "reduce_window"]
