"""The Python side of a compiled function: argument checks, outputs, the call."""

from __future__ import annotations

import numpy as np

from functrace.config import config
from functrace.core.eval import eval_ir
from functrace.core.ir import Function
from lowering.llvm.compiler import FULL_CHECK, RUNTIME_TABLE, Compiled

_config = config._values


class Executable:
    """Calls compiled code on flat arguments; returns the list of output arrays.

    Arguments that are not arrays of the traced dtype, or that the compiled entry refuses
    (not C-contiguous and aligned), are converted (a copy). Outputs are fresh ``numpy.ndarray``s. With ``debug_nans`` a
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
        self._donation = compiled.donation
        # Workspaces not in use; a call takes one (or makes one) and gives it back, so
        # concurrent calls never share one. list.pop/append are atomic under the GIL.
        self._ws_size = compiled.ws_size + 64 if compiled.ws_size else 0
        self._ws_pool: list[np.ndarray] = []
        self.fast = self._make_fast() if FULL_CHECK and not self._donation else None

    def __call__(self, *flat):
        args = [
            x if type(x) is np.ndarray and x.dtype == dtype else np.asarray(x, dtype=dtype).reshape(shape)
            for x, (dtype, shape) in zip(flat, self._in, strict=True)
        ]
        outs = self._run(args)
        if outs is None:  # the entry refused a non-contiguous or unaligned array: copy them
            outs = self._run([np.require(x, requirements="CA") for x in args])
            if outs is None:
                raise RuntimeError("compiled code refused C-contiguous, aligned arguments")
        if self._float_out and _config["debug_nans"] and any(o.dtype.kind == "f" and np.isnan(o).any() for o in outs):
            eval_ir(self.fn, args)  # raises FloatingPointError naming the primitive
        return outs

    def _make_fast(self):
        """``fast(args)``: the outputs, or None when the compiled entry refuses the arguments
        (not ndarrays of the traced shapes and dtypes, not contiguous): no Python checks."""
        cfunc, table, consts, specs = self._cfunc, RUNTIME_TABLE, self._consts, self._out
        if self._ws_size:
            pool, size, empty, uint8 = self._ws_pool, self._ws_size, np.empty, np.uint8

            def fast(args):
                outs = [empty(shape, dtype) for shape, dtype in specs]
                ws = pool.pop() if pool else empty(size, uint8)
                rc = cfunc(table, *consts, *args, *outs, ws)
                pool.append(ws)
                return None if rc else outs

            return fast
        if not consts and len(specs) == 1:
            ((shape, dtype),) = specs

            def fast(args):
                out = np.empty(shape, dtype)
                return None if cfunc(table, *args, out) else [out]

            return fast

        def fast(args):
            outs = [np.empty(shape, dtype) for shape, dtype in specs]
            return None if cfunc(table, *consts, *args, *outs) else outs

        return fast

    def _run(self, args: list[np.ndarray]) -> list[np.ndarray] | None:
        """One call on ndarrays of the traced dtypes and shapes; None when the compiled entry
        refuses them (not C-contiguous and aligned)."""
        outs = [np.empty(shape, dtype) for shape, dtype in self._out]
        for p, k in self._donation:
            donor = args[k]
            if donor.flags.writeable and not any(j != k and np.may_share_memory(donor, a) for j, a in enumerate(args)):
                outs[p] = donor  # computed in place: the donated array now holds this output
        extra = []
        if self._ws_size:
            extra.append(self._ws_pool.pop() if self._ws_pool else np.empty(self._ws_size, np.uint8))
        rc = self._cfunc(RUNTIME_TABLE, *self._consts, *args, *outs, *extra)
        self._ws_pool.extend(extra)
        return None if rc else outs
