"""functrace: trace Python functions over arrays into a typed IR, and transform it.

>>> import numpy as np, functrace as ft, functrace.numpy as fnp
>>> print(ft.make_ir(lambda x: fnp.tanh(x @ x.T).sum())(np.ones((3, 4), np.float32)))
{ lambda ; a:f32[3,4]. let
    b:f32[4,3] = transpose[permutation=(1, 0)] a
    c:f32[3,3] = dot_general[dimension_numbers=(((1,), (0,)), ((), ()))] a b
    d:f32[3,3] = tanh c
    e:f32[] = reduce_sum[axes=(0, 1)] d
  in (e,) }
"""

from functrace import errors, lax, nn, numpy, optimizers, random, stax, tree_util
from functrace.ad import grad, hessian, jacfwd, jacrev, jvp, linearize, value_and_grad, vjp
from functrace.api import jit, make_ir
from functrace.batching import vmap
from functrace.config import config
from functrace.core.ir import Function
from functrace.custom_derivatives import checkpoint, custom_jvp, custom_vjp, remat
from functrace.devices import device_put, devices
from functrace.lax.elementwise import stop_gradient
from functrace.serialization import load, save

__version__ = "0.1.0"

__all__ = [
    "Function",
    "checkpoint",
    "config",
    "custom_jvp",
    "custom_vjp",
    "device_put",
    "devices",
    "errors",
    "grad",
    "hessian",
    "jacfwd",
    "jacrev",
    "jit",
    "jvp",
    "linearize",
    "load",
    "lax",
    "make_ir",
    "nn",
    "numpy",
    "optimizers",
    "random",
    "remat",
    "save",
    "stax",
    "stop_gradient",
    "tree_util",
    "value_and_grad",
    "vmap",
    "vjp",
]
