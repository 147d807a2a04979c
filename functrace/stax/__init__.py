"""``functrace.stax``: neural-network layers as pairs of pure functions, JAX's stax conventions.

A layer is ``(init_fun, apply_fun)``:

- ``init_fun(rng, input_shape) -> (output_shape, params)``; a leading ``-1`` in
  ``input_shape`` (a batch size not known yet) is kept in ``output_shape``;
- ``apply_fun(params, inputs, *, rng=None, mode=None) -> outputs``; ``mode`` is ``"train"``
  or ``"test"`` and, when given, overrides the mode a layer was constructed with; ``rng`` is
  needed only by ``Dropout`` in train mode (test mode needs none).

Params default to float32. ``Dropout(rate)`` takes the probability of DROPPING a unit.
``BatchNorm``'s running statistics live in its params and are updated through
:func:`stateful` and :func:`merge_state` (see ``functrace.stax.normalization``); the gate
layouts of ``LSTM`` and ``GRU`` are documented in ``functrace.stax.recurrent``.

>>> import numpy as np
>>> from functrace import random, stax
>>> init_fun, apply_fun = stax.serial(
...     stax.Conv(4, (3, 3), padding="SAME"), stax.Relu, stax.MaxPool((2, 2), strides=(2, 2)),
...     stax.Flatten, stax.Dense(10), stax.LogSoftmax)
>>> out_shape, params = init_fun(random.PRNGKey(0), (-1, 8, 8, 1))
>>> out_shape, apply_fun(params, np.zeros((3, 8, 8, 1), np.float32)).shape
((-1, 10), (3, 10))
"""

from functrace.stax.combinators import *  # noqa: F403
from functrace.stax.combinators import __all__ as _combinators
from functrace.stax.layers import *  # noqa: F403
from functrace.stax.layers import __all__ as _layers
from functrace.stax.normalization import *  # noqa: F403
from functrace.stax.normalization import __all__ as _normalization
from functrace.stax.recurrent import *  # noqa: F403
from functrace.stax.recurrent import __all__ as _recurrent

__all__ = [*_combinators, *_layers, *_normalization, *_recurrent]
