"""Combinators: layers built from layers.

``serial`` chains layers; ``parallel`` applies one layer to each of several inputs;
``FanOut`` copies one input into several, ``FanInSum`` and ``FanInConcat`` join several into
one; ``shape_dependent`` builds a layer once the input shape is known. The combinators pass
``mode`` to every inner layer and split ``rng`` into one key per inner layer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import functrace.numpy as fnp
from functrace import tree_util
from functrace.stax.layer import Layer, arg_error, as_shape, check_mode, describe, shape_error, split_keys


def _layer_kwargs(rng: Any, mode: str | None) -> dict[str, Any]:
    # Like JAX, always pass rng; pass mode only when given, so each layer keeps its own default.
    return {"rng": rng} if mode is None else {"rng": rng, "mode": mode}


def _check_count(name: str, what: str, values: Any, n: int) -> None:
    if not isinstance(values, Sequence) or len(values) != n:
        got = f"{len(values)}" if isinstance(values, Sequence) else type(values).__name__
        raise shape_error(name, f"needs {what} for each of its {n} layers, got {got}")


def serial(*layers: Layer) -> Layer:
    """Layers applied one after another.

    Args:
      *layers: ``(init_fun, apply_fun)`` pairs.

    Returns:
      ``(init_fun, apply_fun)``; the params are a tuple, one entry per layer.

    >>> import numpy as np
    >>> from functrace import random, stax
    >>> init_fun, apply_fun = stax.serial(stax.Dense(4), stax.Relu, stax.Dense(2))
    >>> out_shape, params = init_fun(random.PRNGKey(0), (-1, 3))
    >>> out_shape, len(params), apply_fun(params, np.ones((5, 3), np.float32)).shape
    ((-1, 2), 3, (5, 2))
    """
    init_funs = [init for init, _ in layers]
    apply_funs = [apply for _, apply in layers]
    name = f"serial(<{len(layers)} layers>)"

    def init_fun(rng: Any, input_shape: Any) -> tuple[Any, tuple]:
        params = []
        for init, key in zip(init_funs, split_keys(rng, len(layers)), strict=True):
            input_shape, p = init(key, input_shape)
            params.append(p)
        return input_shape, tuple(params)

    def apply_fun(params: Sequence, inputs: Any, *, rng: Any = None, mode: str | None = None) -> Any:
        check_mode(name, mode)
        _check_count(name, "params", params, len(layers))
        for apply, p, key in zip(apply_funs, params, split_keys(rng, len(layers)), strict=True):
            inputs = apply(p, inputs, **_layer_kwargs(key, mode))
        return inputs

    return init_fun, apply_fun


def parallel(*layers: Layer) -> Layer:
    """Layer ``i`` applied to input ``i`` of a sequence of inputs (often after ``FanOut``).

    Args:
      *layers: ``(init_fun, apply_fun)`` pairs.

    Returns:
      ``(init_fun, apply_fun)`` taking and returning a tuple with one entry per layer.

    >>> import numpy as np
    >>> from functrace import random, stax
    >>> init_fun, apply_fun = stax.parallel(stax.Dense(4), stax.Identity)
    >>> out_shapes, params = init_fun(random.PRNGKey(0), ((-1, 3), (-1, 7)))
    >>> out_shapes
    ((-1, 4), (-1, 7))
    """
    init_funs = [init for init, _ in layers]
    apply_funs = [apply for _, apply in layers]
    name = f"parallel(<{len(layers)} layers>)"

    def init_fun(rng: Any, input_shape: Any) -> tuple[tuple, tuple]:
        _check_count(name, "an input shape", input_shape, len(layers))
        keys = split_keys(rng, len(layers))
        pairs = [init(k, s) for init, k, s in zip(init_funs, keys, input_shape, strict=True)]
        return tuple(s for s, _ in pairs), tuple(p for _, p in pairs)

    def apply_fun(params: Sequence, inputs: Sequence, *, rng: Any = None, mode: str | None = None) -> tuple:
        check_mode(name, mode)
        _check_count(name, "params", params, len(layers))
        _check_count(name, "an input", inputs, len(layers))
        keys = split_keys(rng, len(layers))
        return tuple(
            f(p, x, **_layer_kwargs(k, mode)) for f, p, x, k in zip(apply_funs, params, inputs, keys, strict=True)
        )

    return init_fun, apply_fun


def FanOut(num: int) -> Layer:
    """Copy the input into a tuple of ``num`` inputs.

    >>> from functrace import random, stax
    >>> stax.FanOut(2)[0](random.PRNGKey(0), (-1, 3))
    (((-1, 3), (-1, 3)), ())
    """
    if int(num) < 1:
        raise arg_error(describe("FanOut", num), "needs num >= 1")

    def init_fun(rng: Any, input_shape: Any) -> tuple[tuple, tuple]:
        return (input_shape,) * num, ()

    def apply_fun(params: tuple, inputs: Any, *, rng: Any = None, mode: str | None = None) -> tuple:
        return (inputs,) * num

    return init_fun, apply_fun


def _input_shapes(name: str, input_shape: Any) -> list[tuple[int, ...]]:
    if not isinstance(input_shape, Sequence) or not input_shape or not isinstance(input_shape[0], Sequence):
        raise shape_error(name, f"needs a sequence of input shapes, got {input_shape!r}")
    return [as_shape(name, s) for s in input_shape]


def _merged_size(name: str, sizes: Sequence[int], what: str) -> int:
    known = {d for d in sizes if d != -1}
    if len(known) > 1:
        raise shape_error(name, f"{what} {tuple(sizes)} differ")
    return known.pop() if known else -1


def _fan_in_sum() -> Layer:
    name = "FanInSum"

    def init_fun(rng: Any, input_shape: Any) -> tuple[tuple[int, ...], tuple]:
        shapes = _input_shapes(name, input_shape)
        if len({len(s) for s in shapes}) != 1:
            raise shape_error(name, f"needs inputs of one shape, got shapes {tuple(shapes)}")
        dims = zip(*shapes, strict=True)
        return tuple(_merged_size(name, d, f"input shapes {tuple(shapes)}: sizes") for d in dims), ()

    def apply_fun(params: tuple, inputs: Sequence, *, rng: Any = None, mode: str | None = None) -> Any:
        shapes = [fnp.shape(x) for x in inputs]
        if len(set(shapes)) != 1:
            raise shape_error(name, f"needs inputs of one shape, got shapes {tuple(shapes)}")
        total = inputs[0]
        for x in inputs[1:]:
            total = total + x
        return total

    return init_fun, apply_fun


FanInSum: Layer = _fan_in_sum()
"""Sum a sequence of inputs of one shape."""


def FanInConcat(axis: int = -1) -> Layer:
    """Concatenate a sequence of inputs along ``axis``.

    >>> import numpy as np
    >>> from functrace import random, stax
    >>> init_fun, apply_fun = stax.FanInConcat()
    >>> init_fun(random.PRNGKey(0), ((-1, 3), (-1, 4)))[0]
    (-1, 7)
    >>> apply_fun((), (np.zeros((2, 1)), np.ones((2, 2)))).shape
    (2, 3)
    """
    name = describe("FanInConcat", axis=axis)

    def init_fun(rng: Any, input_shape: Any) -> tuple[tuple[int, ...], tuple]:
        shapes = _input_shapes(name, input_shape)
        rank = len(shapes[0])
        if any(len(s) != rank for s in shapes) or not -rank <= axis < rank:
            raise shape_error(name, f"needs inputs of one rank with an axis {axis}, got shapes {tuple(shapes)}")
        ax = axis % rank
        sizes = [s[ax] for s in shapes]
        out = [
            (-1 if -1 in sizes else sum(sizes))
            if d == ax
            else _merged_size(name, [s[d] for s in shapes], f"input shapes {tuple(shapes)}: sizes off the axis")
            for d in range(rank)
        ]
        return tuple(out), ()

    def apply_fun(params: tuple, inputs: Sequence, *, rng: Any = None, mode: str | None = None) -> Any:
        return fnp.concatenate(list(inputs), axis)

    return init_fun, apply_fun


def shape_dependent(make_layer: Callable[[Any], Layer]) -> Layer:
    """A layer chosen by the input shape: ``make_layer(input_shape) -> (init_fun, apply_fun)``.

    ``init_fun`` calls ``make_layer`` with the ``input_shape`` it is given, ``apply_fun``
    with the shape of the inputs (a pytree of shapes for a pytree of inputs).

    >>> from functrace import random, stax
    >>> layer = stax.shape_dependent(lambda shape: stax.Dense(2 * shape[-1]))
    >>> layer[0](random.PRNGKey(0), (-1, 3))[0]
    (-1, 6)
    """

    def init_fun(rng: Any, input_shape: Any) -> tuple[Any, Any]:
        return make_layer(input_shape)[0](rng, input_shape)

    def apply_fun(params: Any, inputs: Any, *, rng: Any = None, mode: str | None = None) -> Any:
        shapes = tree_util.tree_map(lambda x: tuple(fnp.shape(x)), inputs)
        return make_layer(shapes)[1](params, inputs, **_layer_kwargs(rng, mode))

    return init_fun, apply_fun


__all__ = ["FanInConcat", "FanInSum", "FanOut", "parallel", "serial", "shape_dependent"]
