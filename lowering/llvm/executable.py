"""The Python side of a compiled function: argument checks, outputs, the call."""

from __future__ import annotations

import numpy as np

from functrace.config import config
from functrace.core.eval import eval_ir
from functrace.core.ir import Function
from lowering.llvm.compiler import Compiled


class Executable:
    """Calls compiled code on flat arguments; returns the list of output arrays.

    Arguments that are not C-contiguous, aligned arrays of the right dtype are
    converted (a copy). Outputs are fresh ``numpy.ndarray``s. With ``debug_nans`` a
    NaN in an output re-runs the IR op by op, which names the primitive.
    """

    def __init__(self, fn: Function, compiled: Compiled):
        self.fn = fn
        self.compiled = compiled
        self._consts = [
            np.ascontiguousarray(c, dtype=v.aval.dtype) for c, v in zip(fn.consts, fn.constvars, strict=True)
        ]
        self._in = [(v.aval.dtype, v.aval.shape) for v in fn.invars]
        self._out = [(v.aval.shape, v.aval.dtype) for v in fn.outvars]
        self._float_out = any(d.kind == "f" for _, d in self._out)
        self._cfunc = compiled.cfunc

    def __call__(self, *flat):
        args = []
        for x, (dtype, shape) in zip(flat, self._in, strict=True):
            if not (type(x) is np.ndarray and x.dtype == dtype and x.flags.c_contiguous and x.flags.aligned):
                x = np.ascontiguousarray(np.asarray(x, dtype=dtype))
                if x.shape != shape:
                    x = x.reshape(shape)
            args.append(x)
        outs = [np.empty(shape, dtype) for shape, dtype in self._out]
        self._cfunc(*self._consts, *args, *outs)
        if self._float_out and config.debug_nans and any(o.dtype.kind == "f" and np.isnan(o).any() for o in outs):
            eval_ir(self.fn, args)  # raises FloatingPointError naming the primitive
        return outs
