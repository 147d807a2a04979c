"""``functrace.numpy``: a NumPy-compatible API that works on traced values.

Same names, signatures, broadcasting and (NumPy 2) promotion as NumPy. On
concrete arrays outside any transformation, calls run at once with NumPy and
return ``numpy.ndarray``.

>>> import numpy as np, functrace.numpy as fnp
>>> fnp.tanh(np.zeros(2)) + 1
array([1., 1.])
"""

import numpy as _np

from functrace.numpy.creation import *  # noqa: F403
from functrace.numpy.elementwise import *  # noqa: F403
from functrace.numpy.indexing import *  # noqa: F403
from functrace.numpy.linalg import *  # noqa: F403
from functrace.numpy.manipulation import *  # noqa: F403
from functrace.numpy.reductions import *  # noqa: F403
from functrace.numpy.tracer_methods import install as _install_tracer_methods

float32 = _np.float32
float64 = _np.float64
int32 = _np.int32
int64 = _np.int64
uint32 = _np.uint32
bool_ = _np.bool_
pi = _np.pi
e = _np.e
inf = _np.inf
nan = _np.nan
newaxis = None
ndarray = _np.ndarray

_install_tracer_methods()
