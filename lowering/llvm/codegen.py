"""From IR to LLVM IR: buffers, loops, kernels.

Every IR function becomes one LLVM function ``void f(ptr ins, ptr outs, ptr ws)``:
``ins`` and ``outs`` are arrays of data pointers (constants first, then inputs; one
per output), ``ws`` is the workspace, a scratch arena whose size is planned here.

The body is a sequence of kernels (``lowering.fusion``). A kernel's root has one of
three kinds of rule (``lowering.llvm.registry``):

- *scalar* rules (elementwise) turn operand values into the result value;
- *index* rules (``broadcast_in_dim``, ``transpose``...) compute the result at a
  multi-index by asking for operand values at other indices;
- *kernel* rules write whole output buffers (reductions, ``dot_general``, control
  flow...), reading operands element by element through ``KernelContext.value_at``
  where the fusion plan allows it.

Fused producers are never stored: ``value_at`` emits them in the consumer's loop.
Buffers are row-major and contiguous; ``bool`` is one byte in memory, ``i1`` in
registers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
from llvmlite import ir

from functrace.core.abstract import ShapedArray
from functrace.core.ir import Eqn, Function, Literal, Var, sub_functions
from lowering import fusion
from lowering.llvm import registry, runtime

I1 = ir.IntType(1)
I8 = ir.IntType(8)
I32 = ir.IntType(32)
I64 = ir.IntType(64)
F32 = ir.FloatType()
F64 = ir.DoubleType()
PTR = ir.PointerType()
VOID = ir.VoidType()
ALIGN = 64
TINY_KERNEL = 2048  # elements; smaller kernels' loops stay scalar (they cost compile time, gain ~µs)
NOVEC_MARKER = "functrace.novec"

_MEMORY_TYPES = {
    "float32": F32,
    "float64": F64,
    "int32": I32,
    "int64": I64,
    "uint32": I32,
    "uint8": I8,
    "int8": I8,
    "bool": I8,
}


def memory_type(dtype: np.dtype) -> ir.Type:
    """The LLVM type of one element in a buffer."""
    try:
        return _MEMORY_TYPES[np.dtype(dtype).name]
    except KeyError:
        raise NotImplementedError(f"the cpu backend does not support dtype {np.dtype(dtype).name}") from None


def value_type(dtype: np.dtype) -> ir.Type:
    """The LLVM type of one element in a register (``i1`` for bool)."""
    return I1 if np.dtype(dtype) == np.bool_ else memory_type(dtype)


def i64(n: int) -> ir.Constant:
    return ir.Constant(I64, int(n))


def constant(value: Any, dtype: np.dtype) -> ir.Constant:
    """A register constant of ``dtype``."""
    dtype = np.dtype(dtype)
    ty = value_type(dtype)
    if dtype.kind == "f":
        return ir.Constant(ty, float(value))
    if dtype.kind == "b":
        return ir.Constant(ty, int(bool(value)))
    bits = dtype.itemsize * 8
    return ir.Constant(ty, int(value) & ((1 << bits) - 1))


def strides(shape: Sequence[int]) -> list[int]:
    """Row-major strides in elements."""
    out, acc = [], 1
    for d in reversed(shape):
        out.append(acc)
        acc *= d
    return out[::-1]


# --- loops ------------------------------------------------------------------------------


@contextmanager
def for_range(b: ir.IRBuilder, count: ir.Value | int, name: str = "i", start: ir.Value | int = 0) -> Iterator[ir.Value]:
    """``for i in range(start, count)``: yields ``i`` (i64) with the builder in the body."""
    if isinstance(count, int):
        count = i64(count)
    if isinstance(start, int):
        start = i64(start)
    entry = b.block
    cond = b.append_basic_block(f"{name}.cond")
    body = b.append_basic_block(f"{name}.body")
    end = b.append_basic_block(f"{name}.end")
    b.branch(cond)
    b.position_at_end(cond)
    i = b.phi(I64, name=name)
    i.add_incoming(start, entry)
    b.cbranch(b.icmp_signed("<", i, count), body, end)
    b.position_at_end(body)
    yield i
    nxt = b.add(i, i64(1), name=f"{name}.next", flags=("nuw", "nsw"))
    i.add_incoming(nxt, b.block)
    latch = b.branch(cond)
    marker = getattr(b, "novec_marker", None)
    if marker is not None:
        latch.set_metadata("llvm.loop", marker)  # a tiny kernel: not worth vectorizing
    b.position_at_end(end)


@contextmanager
def loop_nest(
    b: ir.IRBuilder, shape: Sequence[int], name: str = "i", outer: tuple[ir.Value, ir.Value] | None = None
) -> Iterator[list[ir.Value]]:
    """Nested loops over ``shape`` (last axis innermost); yields the multi-index.
    ``outer = (start, end)`` restricts the outermost loop (one thread's share)."""
    with _loop_nest(b, list(shape), [], name, outer) as idx:
        yield idx


@contextmanager
def _loop_nest(b, shape, idx, name, outer=None):
    if not shape:
        yield idx
        return
    start, stop = outer if outer is not None else (0, shape[0])
    with (
        for_range(b, stop, f"{name}{len(idx)}", start=start) as i,
        _loop_nest(b, shape[1:], [*idx, i], name) as inner,
    ):
        yield inner


def flat_index(b: ir.IRBuilder, idx: Sequence[ir.Value], shape: Sequence[int]) -> ir.Value:
    """The row-major offset of a multi-index."""
    flat: ir.Value = i64(0)
    for i, s in zip(idx, strides(shape), strict=True):
        if s == 0:
            continue
        term = i if s == 1 else b.mul(i, i64(s), flags=("nuw", "nsw"))
        flat = term if isinstance(flat, ir.Constant) and flat.constant == 0 else b.add(flat, term, flags=("nuw", "nsw"))
    return flat


# --- buffers ----------------------------------------------------------------------------


class Buffer:
    """A contiguous row-major array in memory: a data pointer and its type."""

    __slots__ = ("aval", "origin", "ptr")

    def __init__(self, ptr: ir.Value, aval: ShapedArray, origin: tuple | None = None):
        self.ptr = ptr
        self.aval = aval
        # Where the pointer comes from in a top-level function: ("in", k), ("out", k) or
        # ("ws", offset); lets a kernel be outlined into a function run by several threads.
        self.origin = origin

    @property
    def elem(self) -> ir.Type:
        return memory_type(self.aval.dtype)

    @property
    def nbytes(self) -> int:
        return math.prod(self.aval.shape) * self.aval.dtype.itemsize

    def address(self, b: ir.IRBuilder, flat: ir.Value) -> ir.Value:
        return b.gep(self.ptr, [flat], inbounds=True, source_etype=self.elem)

    def load(self, b: ir.IRBuilder, flat: ir.Value) -> ir.Value:
        """Element ``flat`` as a register value."""
        v = b.load(self.address(b, flat), typ=self.elem)
        return b.trunc(v, I1) if self.aval.dtype == np.bool_ else v

    def store(self, b: ir.IRBuilder, value: ir.Value, flat: ir.Value) -> None:
        if self.aval.dtype == np.bool_:
            value = b.zext(value, I8)
        b.store(value, self.address(b, flat))

    def load_at(self, b: ir.IRBuilder, idx: Sequence[ir.Value]) -> ir.Value:
        return self.load(b, flat_index(b, idx, self.aval.shape))

    def store_at(self, b: ir.IRBuilder, value: ir.Value, idx: Sequence[ir.Value]) -> None:
        self.store(b, value, flat_index(b, idx, self.aval.shape))


class Arena:
    """First-fit allocation of workspace slots; ``size`` is the high-water mark."""

    def __init__(self) -> None:
        self.free: list[tuple[int, int]] = []  # (offset, size), sorted by offset
        self.size = 0

    def alloc(self, nbytes: int) -> int:
        nbytes = max(ALIGN, -(-nbytes // ALIGN) * ALIGN)
        for k, (off, size) in enumerate(self.free):
            if size >= nbytes:
                if size == nbytes:
                    del self.free[k]
                else:
                    self.free[k] = (off + nbytes, size - nbytes)
                return off
        off = self.size
        if self.free and self.free[-1][0] + self.free[-1][1] == self.size:
            off, _ = self.free.pop()
        self.size = off + nbytes
        return off

    def release(self, off: int, nbytes: int) -> None:
        nbytes = max(ALIGN, -(-nbytes // ALIGN) * ALIGN)
        self.free.append((off, nbytes))
        self.free.sort()
        merged: list[tuple[int, int]] = []
        for o, s in self.free:
            if merged and merged[-1][0] + merged[-1][1] == o:
                merged[-1] = (merged[-1][0], merged[-1][1] + s)
            else:
                merged.append((o, s))
        self.free = merged


# --- the module -------------------------------------------------------------------------


PROFILE_SLOTS = 4096  # kernels timed in a profiling build


class ModuleBuilder:
    """One LLVM module: the functions lowered so far and the runtime functions they call."""

    def __init__(self, prefix: str):
        self.module = ir.Module(name=prefix)
        self.prefix = prefix
        self._names: dict[str, int] = {}
        self._lowered: dict[int, tuple[ir.Function, int]] = {}
        self._keepalive: list[Function] = []
        self.declared: dict[str, ir.Function] = {}
        self.math_functions: set[str] = set()
        self._novec: ir.MDValue | None = None
        self.profile: ir.GlobalVariable | None = None  # per-kernel cycle counters (profiling builds)
        self.profile_rows: list[str] = []  # what each counter times
        # Loop bodies' inputs that their loop packs (id(body) -> input indices; rules/smallgemm.py).
        self.packed_inputs: dict[int, frozenset[int]] = {}
        self.main_fn: Function | None = None  # the top-level function (set by lower_main)
        self.owns_products: bool | None = None  # decided by rules/smallgemm.py on first use
        self.parts: list[ir.Function] = []  # the functions the top-level function is split into

    def novec_marker(self) -> ir.MDValue:
        """The loop metadata that turns vectorization off (made self-referential and
        distinct when the module text is finished: ``lowering.llvm.mathlib.annotate``)."""
        if self._novec is None:
            self._novec = self.module.add_metadata([ir.MetaDataString(self.module, NOVEC_MARKER)])
        return self._novec

    def unique(self, name: str) -> str:
        n = self._names.get(name, 0)
        self._names[name] = n + 1
        return f"{self.prefix}_{name}" if n == 0 else f"{self.prefix}_{name}_{n}"

    def declare(self, name: str, ret: ir.Type, args: Sequence[ir.Type]) -> ir.Function:
        """An external function (libc, libm, BLAS, the runtime)."""
        fn = self.declared.get(name)
        if fn is None:
            fn = self.declared[name] = ir.Function(self.module, ir.FunctionType(ret, list(args)), name)
        return fn

    def memcpy(self, b: ir.IRBuilder, dst: ir.Value, src: ir.Value, nbytes: ir.Value | int) -> None:
        """``memcpy(dst, src, nbytes)`` (the LLVM intrinsic: short constant sizes inline)."""
        fn = self.declare("llvm.memcpy.p0.p0.i64", VOID, [PTR, PTR, I64, I1])
        b.call(fn, [dst, src, i64(nbytes) if isinstance(nbytes, int) else nbytes, ir.Constant(I1, 0)])

    def memset(self, b: ir.IRBuilder, dst: ir.Value, nbytes: ir.Value | int) -> None:
        """Zero ``nbytes`` bytes at ``dst``."""
        fn = self.declare("llvm.memset.p0.i64", VOID, [PTR, I8, I64, I1])
        n = i64(nbytes) if isinstance(nbytes, int) else nbytes
        b.call(fn, [dst, ir.Constant(I8, 0), n, ir.Constant(I1, 0)])

    def lower(self, fn: Function, name: str = "fn") -> tuple[ir.Function, int]:
        """Lower ``fn`` once; returns the LLVM function and its workspace size in bytes."""
        hit = self._lowered.get(id(fn))
        if hit is None:
            self._keepalive.append(fn)
            hit = self._lowered[id(fn)] = FunctionLowering(self, fn, self.unique(name)).run()
        return hit

    def lower_main(
        self, fn: Function, donated: Sequence[int], profile: bool = False, parts: int = 1
    ) -> tuple[ir.Function, int, list[tuple[int, int]]]:
        """Lower the top-level function; also the donation pairs it allows. With ``parts``
        > 1 a long kernel sequence is split into that many functions (``self.parts``), which
        ``lowering.llvm.compiler`` compiles as separate modules in parallel; a very long one
        into more (``FunctionLowering._part_starts``)."""
        self.main_fn = fn
        lowering = FunctionLowering(self, fn, self.unique("main"))
        lowering.is_main = True
        lowering.parts = 0 if profile else parts
        if runtime.uses_blas(fn):
            lowering.parallel_min = runtime.PARALLEL_MIN_ELEMENTS_WITH_BLAS
        if profile:
            table_type = ir.ArrayType(I64, PROFILE_SLOTS)
            self.profile = ir.GlobalVariable(self.module, table_type, f"{self.prefix}_profile")
            self.profile.initializer = ir.Constant(table_type, None)
        pairs = lowering.donation(donated) if donated else []
        self._keepalive.append(fn)
        llfn, ws = self._lowered[id(fn)] = lowering.run()
        self.parts = lowering.part_functions
        return llfn, ws, pairs


class FunctionLowering:
    """Lowers one IR ``Function`` into ``void name(ptr ins, ptr outs, ptr ws)``."""

    def __init__(self, mb: ModuleBuilder, fn: Function, name: str):
        self.mb = mb
        self.fn = fn
        fty = ir.FunctionType(VOID, [PTR, PTR, PTR])
        self.llfn = ir.Function(mb.module, fty, name)
        self.llfn.linkage = "internal"
        self.llfn.attributes.add("nounwind")
        self.entry = self.llfn.append_basic_block("entry")
        self.b = ir.IRBuilder(self.llfn.append_basic_block("body"))
        self.arena = Arena()
        self.buffers: dict[Var, Buffer] = {}
        self.plan = fusion.fuse(fn)
        self._slots: dict[Var, tuple[int, int]] = {}  # workspace slot of each var
        self._slot_users: dict[int, int] = {}  # slot offset -> vars alive in it
        self._aliased: set[Var] = set()
        self.is_main = False
        self.parallel_min = runtime.PARALLEL_MIN_ELEMENTS
        self.parts = 0  # part functions wanted, if the program is long enough (top-level function only)
        self.part_functions: list[ir.Function] = []
        self._main: tuple | None = None  # (llfn, builder, entry) of the function split into parts

    # -- allocation --------------------------------------------------------------------

    def alloca(self, ty: ir.Type, count: int = 1, name: str = "") -> ir.Value:
        """Stack memory in the entry block (so loops do not grow the stack)."""
        with self.b.goto_block(self.entry):
            return self.b.alloca(ty, size=count if count != 1 else None, name=name)

    def workspace(self, nbytes: int) -> tuple[ir.Value, int]:
        """A workspace slot, ``(pointer, offset)``; give it back with ``release``."""
        off = self.arena.alloc(nbytes)
        ptr = self.b.gep(self.llfn.args[2], [i64(off)], inbounds=True, source_etype=I8)
        return ptr, off

    def release(self, off: int, nbytes: int) -> None:
        self.arena.release(off, nbytes)

    def scratch_buffer(self, aval: ShapedArray) -> tuple[Buffer, Callable[[], None]]:
        """A temporary buffer for a kernel rule, and the function that frees it."""
        nbytes = max(1, math.prod(aval.shape) * aval.dtype.itemsize)
        ptr, off = self.workspace(nbytes)
        return Buffer(ptr, aval), lambda: self.release(off, nbytes)

    def donation(self, donated: Sequence[int]) -> list[tuple[int, int]]:
        """``(output position, input position)`` pairs where the output may be computed in
        the donated input's buffer: same type, and the input is read for the last time
        before the output's kernel, or in it elementwise (each element read before it is
        overwritten, at the same index)."""
        fn = self.fn
        kernel_of = {v: k for k, kern in enumerate(self.plan.kernels) for v in kern.root.outvars}
        last_read = self._last_reads()
        outputs = [v for v in fn.outvars if isinstance(v, Var)]
        first = {}
        for p, v in enumerate(fn.outvars):
            if isinstance(v, Var) and v in kernel_of and v not in first:
                first[v] = p
        pairs: list[tuple[int, int]] = []
        taken: set[int] = set()
        for k_in in donated:
            u = fn.invars[k_in]
            if u in outputs:
                continue
            for v, p in first.items():
                if p in taken or v.aval.shape != u.aval.shape or v.aval.dtype != u.aval.dtype:
                    continue
                kp, lu = kernel_of[v], last_read.get(u, -1)
                if lu < kp or (lu == kp and self.plan.kernels[kp].is_elementwise):
                    pairs.append((p, k_in))
                    taken.add(p)
                    break
        return pairs

    # -- the function ------------------------------------------------------------------

    def run(self) -> tuple[ir.Function, int]:
        fn, b = self.fn, self.b
        ins, outs = self.llfn.args[0], self.llfn.args[1]
        for k, v in enumerate([*fn.constvars, *fn.invars]):
            ptr = b.load(b.gep(ins, [i64(k)], source_etype=PTR), typ=PTR)
            self.buffers[v] = Buffer(ptr, v.aval, ("in", k))
        out_ptrs = [b.load(b.gep(outs, [i64(k)], source_etype=PTR), typ=PTR) for k in range(len(fn.outvars))]
        # An equation's result that is an output is computed straight into the output buffer.
        direct: dict[Var, tuple[ir.Value, int]] = {}
        for p, (v, ptr) in enumerate(zip(fn.outvars, out_ptrs, strict=True)):
            if isinstance(v, Var) and v not in self.buffers and v not in direct:
                direct[v] = (ptr, p)
        last_use = self._last_uses()
        starts = self._part_starts() if self.is_main and self.parts else set()
        if starts:
            self.buffers = _PartBuffers(self.buffers, self)
        for k, kernel in enumerate(self.plan.kernels):
            if k in starts:
                self._begin_part()
            root = kernel.root
            for v in root.outvars:
                if v in direct:
                    ptr, p = direct[v]
                    self.buffers[v] = Buffer(ptr, v.aval, ("out", p))
                elif not self._alias(root, v):
                    nbytes = max(1, math.prod(v.aval.shape) * v.aval.dtype.itemsize)
                    ptr, off = self.workspace(nbytes)
                    self.buffers[v] = Buffer(ptr, v.aval, ("ws", off))
                    self._slots[v] = (off, nbytes)
                    self._slot_users[off] = 1
            if not any(v in self._aliased for v in root.outvars):
                if self.mb.profile is not None and len(self.mb.profile_rows) < PROFILE_SLOTS:
                    self._emit_timed(kernel)
                else:
                    self.emit_kernel(kernel)
            for v in last_use.get(k, ()):
                slot = self._slots.pop(v, None)
                if slot is not None:
                    self._slot_users[slot[0]] -= 1
                    if not self._slot_users[slot[0]]:
                        self.release(*slot)
        # Outputs that no equation computed into place: inputs, literals, repeats.
        for p, (v, ptr) in enumerate(zip(fn.outvars, out_ptrs, strict=True)):
            if isinstance(v, Literal) or self.buffers[v].origin != ("out", p):
                out = Buffer(self.buffers.pointer(("out", p)) if starts else ptr, v.aval)
                if isinstance(v, Literal):
                    out.store(self.b, constant(v.val, v.aval.dtype), i64(0))
                else:
                    self.copy(out, self.buffers[v])
        if starts:
            self._end_part()
        self.b.ret_void()
        with self.b.goto_block(self.entry):
            self.b.branch(self.llfn.blocks[1])
        return self.llfn, self.arena.size

    # -- parts -------------------------------------------------------------------------

    def _part_starts(self) -> set[int]:
        """The kernels that start a part: consecutive kernels of about equal estimated
        compile cost, ``self.parts`` of them, or more for a very long program (LLVM's time
        grows faster than the size of a function); none (one function) when the program is
        too small to be worth it."""
        weights = [_compile_weight(k) for k in self.plan.kernels]
        total = sum(weights)
        n = min(max(self.parts, -(-total // PART_MAX_WEIGHT)), total // PART_MIN_WEIGHT)
        if n < 2:
            return set()
        starts, done = {0}, 0
        for k, w in enumerate(weights):
            if done >= len(starts) * total / n and len(starts) < n:
                starts.add(k)
            done += w
        return starts

    def _begin_part(self) -> None:
        """Continue in a new function ``part(ins, outs, ws)``, called next by the top-level
        function; buffers are derived again from their origins in it."""
        if self._main is None:
            self._main = (self.llfn, self.b, self.entry)
        else:
            self._end_part()
        main, main_b, _ = self._main
        part = ir.Function(self.mb.module, ir.FunctionType(VOID, [PTR, PTR, PTR]), self.mb.unique("part"))
        part.attributes.add("nounwind")
        part.attributes.add("noinline")
        main_b.call(part, list(main.args))
        self.part_functions.append(part)
        self.llfn = part
        self.entry = part.append_basic_block("entry")
        self.b = ir.IRBuilder(part.append_basic_block("body"))
        self.buffers.clear()

    def _end_part(self) -> None:
        self.b.ret_void()
        with self.b.goto_block(self.entry):
            self.b.branch(self.llfn.blocks[1])
        self.llfn, self.b, self.entry = self._main

    def _alias(self, root: Eqn, v: Var) -> bool:
        """A reshape of a buffer shares it (row-major order is unchanged)."""
        if root.primitive.name in registry.alias_primitives:
            (operand,) = root.inputs[:1]
            if isinstance(operand, Var) and operand in self.buffers:
                base = self.buffers[operand]
                self.buffers[v] = Buffer(base.ptr, v.aval, base.origin)
                self._aliased.add(v)
                # The operand's slot lives as long as the last of the two.
                if operand in self._slots:
                    self._slots[v] = self._slots[operand]
                    self._slot_users[self._slots[v][0]] += 1
                return True
        return False

    def _last_reads(self) -> dict[Var, int]:
        """The index of the last kernel that reads each var."""
        last: dict[Var, int] = {}
        for k, kernel in enumerate(self.plan.kernels):
            for eqn in kernel.eqns:
                for a in eqn.inputs:
                    if isinstance(a, Var):
                        last[a] = k
        return last

    def _last_uses(self) -> dict[int, list[Var]]:
        """For each kernel, the materialized vars whose last reader it is."""
        last = self._last_reads()
        for k, kernel in enumerate(self.plan.kernels):
            for v in kernel.root.outvars:
                last.setdefault(v, k)  # never read: free right away
        outputs = {v for v in self.fn.outvars if isinstance(v, Var)}
        by_kernel: dict[int, list[Var]] = {}
        for v, k in last.items():
            if v not in outputs:
                by_kernel.setdefault(k, []).append(v)
        return by_kernel

    def copy(self, dst: Buffer, src: Buffer) -> None:
        if dst.nbytes:
            self.mb.memcpy(self.b, dst.ptr, src.ptr, dst.nbytes)

    # -- kernels -----------------------------------------------------------------------

    def emit_kernel(self, kernel: fusion.Kernel) -> None:
        extent = self._parallel_extent(kernel)
        if extent is not None:
            self._emit_parallel(kernel, extent)
            return
        self._emit_kernel(kernel)

    def _emit_kernel(self, kernel: fusion.Kernel, outer: tuple[ir.Value, ir.Value] | None = None) -> None:
        # Loops of tiny kernels are not vectorized: it costs compile time and gains nothing.
        self.b.novec_marker = self.mb.novec_marker() if 0 < kernel.size < TINY_KERNEL else None
        try:
            self._emit_kernel_body(kernel, outer)
        finally:
            self.b.novec_marker = None

    def _emit_kernel_body(self, kernel: fusion.Kernel, outer: tuple[ir.Value, ir.Value] | None = None) -> None:
        root = kernel.root
        prim = root.primitive
        ctx = KernelContext(self, kernel)
        ctx.outer = outer
        standalone_kernel = len(kernel.eqns) == 1 and prim in registry.kernel_rules  # e.g. pad: block copies
        if (prim in registry.scalar_rules or prim in registry.index_rules) and not standalone_kernel:
            (out,) = root.outvars
            buf = self.buffers[out]
            shape = (math.prod(out.aval.shape),) if kernel.is_elementwise else out.aval.shape
            ctx.flat = kernel.is_elementwise
            with loop_nest(self.b, shape, outer=outer) as idx:
                buf.store(self.b, ctx.value_of(root, idx), flat_index(self.b, idx, shape))
            return
        rule = registry.kernel_rules.get(prim)
        if rule is None:
            raise NotImplementedError(f"the cpu backend has no lowering for primitive '{prim.name}'")
        rule(ctx, root, [self.operand(a) for a in root.inputs], [self.buffers[v] for v in root.outvars])

    def _emit_timed(self, kernel: fusion.Kernel) -> None:
        """Profiling builds: add the kernel's cycle count to its own slot of a global array
        (kernels of loop bodies too: a scan's own slot counts its body's kernels again)."""
        clock = self.mb.declare("llvm.readcyclecounter", I64, [])
        table = self.mb.profile
        k = len(self.mb.profile_rows)
        shapes = " ".join(v.aval.str_short() for v in kernel.root.outvars)
        where = "" if self.is_main else f"[{self.llfn.name.removeprefix(self.mb.prefix + '_')}] "
        self.mb.profile_rows.append(f"{where}{' '.join(e.primitive.name for e in kernel.eqns)} -> {shapes}")
        t0 = self.b.call(clock, [])
        self.emit_kernel(kernel)
        slot = self.b.gep(self.b.bitcast(table, ir.PointerType(I64)), [i64(k)], source_etype=I64)
        elapsed = self.b.sub(self.b.call(clock, []), t0)
        self.b.store(self.b.add(self.b.load(slot, typ=I64), elapsed), slot)

    # -- threads -----------------------------------------------------------------------

    def _parallel_extent(self, kernel: fusion.Kernel) -> int | None:
        """The outer loop's extent when the kernel is worth splitting across threads."""
        if runtime.NUM_THREADS < 2:
            return None
        from lowering.llvm.rules import smallgemm

        if smallgemm.owns_products(self.mb):
            # No OpenBLAS workers compete for the cores: loop bodies' kernels too, from
            # a few thousand elements (an LSTM step's gates), go to the pool.
            if kernel.size < runtime.PARALLEL_MIN_ELEMENTS_OWN:
                return None
        elif not self.is_main or kernel.size < self.parallel_min:
            return None
        root = kernel.root
        prim = root.primitive
        if (prim in registry.scalar_rules or prim in registry.index_rules) and not (
            len(kernel.eqns) == 1 and prim in registry.kernel_rules
        ):
            shape = (kernel.size,) if kernel.is_elementwise else root.outvars[0].aval.shape
        elif prim.name in fusion.REDUCTIONS:
            x = root.inputs[0]
            axes = tuple(sorted(root.params["axes"]))
            nd = len(x.aval.shape)
            if not axes or axes != tuple(range(nd - len(axes), nd)) or len(axes) == nd:
                return None  # only row reductions split without races
            shape = x.aval.shape[: nd - len(axes)]
        else:
            return None
        if not shape or shape[0] < 2:
            return None
        needed = {v for e in kernel.eqns for v in e.inputs if isinstance(v, Var) and v not in self.plan.fused}
        needed.update(root.outvars)
        if any(self.buffers[v].origin is None for v in needed):
            return None
        return shape[0]

    def _emit_parallel(self, kernel: fusion.Kernel, extent: int) -> None:
        """Outline the kernel into ``void k(ins, outs, ws, start, end)`` and run its outer
        loop's range in chunks on ``runtime.NUM_THREADS`` threads."""
        kfn = ir.Function(self.mb.module, ir.FunctionType(VOID, [PTR, PTR, PTR, I64, I64]), self.mb.unique("kernel"))
        kfn.linkage = "internal"
        kfn.attributes.add("nounwind")
        with self._outlined(kfn):
            self._emit_kernel(kernel, outer=(kfn.args[3], kfn.args[4]))
        runtime.parallel_for(self, kfn, extent)

    @contextmanager
    def _outlined(self, kfn: ir.Function) -> Iterator[None]:
        """Emit into ``kfn`` (whose first arguments are ``ins, outs, ws``): buffers are
        derived again from their origins, in its entry block, when first used."""
        saved = (self.llfn, self.b, self.entry, self.buffers)
        self.llfn = kfn
        self.entry = kfn.append_basic_block("entry")
        self.b = ir.IRBuilder(kfn.append_basic_block("body"))
        self.buffers = _Rederived(saved[3], self)
        try:
            yield
            self.b.ret_void()
            with self.b.goto_block(self.entry):
                self.b.branch(kfn.blocks[1])
        finally:
            self.llfn, self.b, self.entry, self.buffers = saved

    def operand(self, a: Var | Literal) -> Buffer | Literal | None:
        """The buffer of a materialized operand, the literal itself, or None when fused."""
        if isinstance(a, Literal):
            return a
        return self.buffers.get(a)


class _Rederived(dict):
    """The buffers of an outlined function: each derived from its origin on first use."""

    def __init__(self, base: dict[Var, Buffer], fl: FunctionLowering):
        super().__init__()
        self.base = base
        self.fl = fl

    def source(self, v: Var) -> Buffer:
        """The buffer as the enclosing function knows it (its origin), without deriving it here."""
        return self.base.source(v) if isinstance(self.base, _Rederived) else self.base[v]

    def pointer(self, origin: tuple) -> ir.Value:
        """The pointer of ``origin`` in the current function, computed in its entry block."""
        fl = self.fl
        ins, outs, ws = fl.llfn.args[:3]
        kind, k = origin
        with fl.b.goto_block(fl.entry):
            if kind == "ws":
                return fl.b.gep(ws, [i64(k)], inbounds=True, source_etype=I8)
            return fl.b.load(fl.b.gep(ins if kind == "in" else outs, [i64(k)], source_etype=PTR), typ=PTR)

    def _derive(self, v: Var) -> Buffer:
        buf = self.source(v)
        if buf.origin is None:
            raise KeyError(v)
        derived = Buffer(self.pointer(buf.origin), buf.aval, buf.origin)
        dict.__setitem__(self, v, derived)
        return derived

    def __getitem__(self, v: Var) -> Buffer:
        return dict.__getitem__(self, v) if dict.__contains__(self, v) else self._derive(v)

    def get(self, v: Var, default=None):
        try:
            return self[v]
        except KeyError:
            return default

    def __contains__(self, v: object) -> bool:
        return dict.__contains__(self, v) or v in self.base


class _PartBuffers(_Rederived):
    """The buffers of a top-level function split into parts: every buffer is recorded with
    its origin, and derived again in each part that uses it (``clear`` starts a part)."""

    def __setitem__(self, v: Var, buf: Buffer) -> None:
        self.base[v] = buf
        block = getattr(buf.ptr, "parent", None)  # an instruction's block (an argument's function)
        if getattr(block, "parent", None) is self.fl.llfn:
            dict.__setitem__(self, v, buf)


# The estimated compile cost of a kernel, in units of about half a millisecond of LLVM's
# time (measured: about proportional to the lines of IR). Loops cost most (vectorization,
# induction variables): a loop nest ~8 units, one with vectorization off ~4, and each fused
# equation adds to its body; some primitives emit much more code than others; a BLAS call
# is ~1; a kernel with control flow also compiles its bodies.
PART_MIN_WEIGHT = 24  # a part is worth a module of its own from about this much work
# A function of more than this much work is cut into parts even on one core: a chain of
# 1,200 elementwise equations compiled 2-3x faster as eight functions than as two.
PART_MAX_WEIGHT = 1000
_HEAVY_WEIGHTS = {
    "conv_general_dilated": 40,
    "pad": 14,
    "reduce_window_max": 14,
    "reduce_window_min": 14,
    "reduce_window_sum": 14,
    "rev": 8,
}


def _compile_weight(kernel: fusion.Kernel) -> int:
    names = [e.primitive.name for e in kernel.eqns]
    if names == ["dot_general"]:
        return 1  # a BLAS call
    weight = (8 if kernel.size >= TINY_KERNEL else 4) + len(names) + sum(_HEAVY_WEIGHTS.get(n, 0) for n in names)
    for eqn in kernel.eqns:
        for value in eqn.params.values():
            for sub in value if isinstance(value, tuple | list) else (value,):
                if isinstance(sub, Function):
                    weight += 4 * (len(sub.eqns) + sum(len(f.eqns) for f in sub_functions(sub)))
    return weight


class KernelContext:
    """What a rule sees while emitting one kernel."""

    def __init__(self, fl: FunctionLowering, kernel: fusion.Kernel):
        self.fl = fl
        self.kernel = kernel
        self.b: ir.IRBuilder = fl.b
        self.mb: ModuleBuilder = fl.mb
        self.flat = False
        self.outer: tuple[ir.Value, ir.Value] | None = None  # this thread's share of the outer loop
        self._memo: dict[tuple, ir.Value] = {}

    def value_at(self, atom: Var | Literal, idx: Sequence[ir.Value]) -> ir.Value:
        """The element of ``atom`` at multi-index ``idx`` (ignored for rank-0 values)."""
        if isinstance(atom, Literal):
            return constant(atom.val, atom.aval.dtype)
        if not atom.aval.shape:
            idx = ()
        key = (id(atom), *(id(i) for i in idx))
        hit = self._memo.get(key)
        if hit is not None:
            return hit
        if atom in self.fl.plan.fused:
            val = self.value_of(self.fl.plan.producer[atom], idx)
        else:
            buf = self.fl.buffers[atom]
            if self.flat and idx:
                (flat,) = idx
                val = buf.load(self.b, flat)
            else:
                val = buf.load_at(self.b, idx)
        self._memo[key] = val
        return val

    def value_of(self, eqn: Eqn, idx: Sequence[ir.Value]) -> ir.Value:
        """The (single) result of a scalar or index equation at ``idx``."""
        prim = eqn.primitive
        scalar = registry.scalar_rules.get(prim)
        if scalar is not None:
            args = [self.value_at(a, idx) for a in eqn.inputs]
            return scalar(self, eqn, args)
        return registry.index_rules[prim](self, eqn, idx)

    def forget(self) -> None:
        """Drop memoized values (call when leaving the loop that defined them)."""
        self._memo.clear()

    # Conveniences for rules.
    def call_math(self, name: str, args: Sequence[ir.Value]) -> ir.Value:
        from lowering.llvm import mathlib

        return mathlib.call(self, name, args)

    def lower_function(self, fn: Function, name: str = "sub") -> tuple[ir.Function, int]:
        return self.mb.lower(fn, name)

    def call_function(self, fn: Function, ins: Sequence[ir.Value], outs: Sequence[ir.Value]) -> None:
        """Call a lowered sub-function with data pointers; its workspace is a scratch slot."""
        llfn, ws_size = self.lower_function(fn)
        b = self.b
        in_arr = self.fl.alloca(PTR, max(1, len(ins)))
        out_arr = self.fl.alloca(PTR, max(1, len(outs)))
        for k, p in enumerate(ins):
            b.store(p, b.gep(in_arr, [i64(k)], source_etype=PTR))
        for k, p in enumerate(outs):
            b.store(p, b.gep(out_arr, [i64(k)], source_etype=PTR))
        if ws_size:
            ws, off = self.fl.workspace(ws_size)
            b.call(llfn, [in_arr, out_arr, ws])
            self.fl.release(off, ws_size)
        else:
            b.call(llfn, [in_arr, out_arr, ir.Constant(PTR, None)])
