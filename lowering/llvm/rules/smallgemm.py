"""Matrix products by a loop-invariant weight, in a loop body: packed once, multiplied by
an AVX-512 register-tiled kernel on the thread pool.

A recurrent network's step multiplies a thin matrix (the batch, tens of rows) by a
weight that every step reads again: ``h @ W_h`` forward, ``delta @ W_h.T`` backward
(``scan_passes.pretranspose_loop_weights`` makes that ``delta @ W_h_T``). At those sizes
(32 x 256 x 1024) a BLAS call spends as much on its own threading and on re-reading the
weight row by row (rows 4 KiB apart alias in the L1 cache) as on arithmetic. Here:

- ``_scan_lower`` *packs* such a weight once, before the loop, into column panels of
  ``NR`` columns: panel ``p`` holds ``W[k, p*NR : (p+1)*NR]`` for every ``k`` in a row of
  its own, contiguously (the last panel zero-padded). The loop body's ``dot_general``
  then reads the packed copy (``packed_weights``: the decision, made from the body alone).
- The product runs panel by panel: for each tile of ``MR`` rows of ``A``, ``MR x NR``
  accumulators stay in zmm registers over a contraction block of ``KC``, each step one
  broadcast of ``A[i, k]`` per row, ``NR / 16`` loads of the panel's row ``k`` and
  ``MR * NR / 16`` fused multiply-adds. The panels are split among the threads of
  ``lowering.llvm.pool``.
- A program with such a loop (``owns_products``) makes all its other float products with
  the same kernel (``matmul_general``: ``A`` read in place whatever its strides, ``B``
  packed when many rows reuse it or it is strided) and never calls OpenBLAS: OpenBLAS's
  idle workers would spin on the cores the pool needs.

Measured here (2 cores, AVX-512): 32 x 256 x 1024 float32 in 50-70 µs on two threads and
97 µs on one, against 100-130 µs for OpenBLAS's sgemm at the same size in a loop (and
~105 µs for this kernel when OpenBLAS's workers spin beside it). Long contractions
(256 x 2048 x 1024) are still 1.5-2x slower than OpenBLAS. Only with AVX-512
(``engine.cpu_features``), float32 and float64.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from llvmlite import ir

from functrace.core.abstract import ShapedArray
from functrace.core.ir import Function, Var
from lowering.llvm import engine, pool
from lowering.llvm.codegen import F32, F64, I1, I32, I64, PTR, VOID, Buffer, KernelContext, for_range, i64

MR = 8  # rows of A per register tile
VECTOR_BYTES = 64  # a zmm register
PANEL_VECTORS = 2  # vectors per panel row: NR = 32 float32 or 16 float64 columns
MAX_ROWS = 256  # products with more rows go to BLAS
GROUP_TILES = 8  # row tiles (of MR rows) that share a pass over the panels: 64 rows of A
KC = 256  # contraction block: a panel's block (32 KiB of float32) stays in L1
MIN_PARALLEL_WORK = 1 << 17  # multiply-adds below which one thread does it all
CHUNKS_PER_THREAD = 2
PACK_MIN_ROWS = 128  # products with at least this many rows pack their right operand (the copy pays)
MIN_PARALLEL_PACK = 1 << 16  # elements below which one thread packs


def lanes(dtype: np.dtype) -> int:
    return VECTOR_BYTES // np.dtype(dtype).itemsize


def panel_width(dtype: np.dtype) -> int:
    """``NR``: the columns of one packed panel."""
    return PANEL_VECTORS * lanes(dtype)


def packed_shape(w: Var) -> tuple[int, int, int]:
    """``(panels, K, NR)``: the packed layout of a ``K x N`` weight."""
    k, n = w.aval.shape
    nr = panel_width(w.aval.dtype)
    return -(-n // nr), k, nr


def available() -> bool:
    return "+avx512f" in engine.cpu_features().split(",")


def _is_weight_product(eqn, w: Var, slot: int) -> bool:
    """``dot_general(a, w)`` with ``a`` a thin 2-D matrix, contracting ``a``'s columns with ``w``'s rows."""
    if eqn.primitive.name != "dot_general" or slot != 1 or eqn.inputs[0] is w:
        return False
    a = eqn.inputs[0]
    if not isinstance(a, Var) or len(a.aval.shape) != 2 or a.aval.dtype != w.aval.dtype:
        return False
    return eqn.params["dimension_numbers"] == (((1,), (0,)), ((), ())) and 0 < a.aval.shape[0] <= MAX_ROWS


def packed_weights(body: Function, num_consts: int, length: int) -> frozenset[int]:
    """The loop-invariant operands (indices among the body's first ``num_consts`` inputs)
    that a scan packs: 2-D float matrices whose every use in the body is a weight product."""
    if length < 2 or not available():
        return frozenset()
    uses: dict[Var, list] = {}
    for e in body.eqns:
        for slot, a in enumerate(e.inputs):
            if isinstance(a, Var):
                uses.setdefault(a, []).append((e, slot))
    outputs = {a for a in body.outvars if isinstance(a, Var)}
    chosen = set()
    for k, w in enumerate(body.invars[:num_consts]):
        if len(w.aval.shape) != 2 or w.aval.dtype not in (np.float32, np.float64) or w in outputs:
            continue
        if min(w.aval.shape) == 0 or not uses.get(w):
            continue
        if all(_is_weight_product(e, w, slot) for e, slot in uses[w]):
            chosen.add(k)
    return frozenset(chosen)


# --- packing ----------------------------------------------------------------------------------


def pack(ctx: KernelContext, w: Buffer, dst: ir.Value) -> None:
    """Copy ``w`` (``K x N``, row-major) into panels at ``dst`` (``packed_shape``), zero-padded."""
    k_dim, n = w.aval.shape
    _pack(ctx, w.aval.dtype, w.ptr, n, 1, k_dim, n, dst)


def _pack(ctx: KernelContext, dtype, src, row_stride: int, col_stride: int, k_dim: int, n: int, dst) -> None:
    """Copy the ``K x N`` matrix at ``src`` (strides in elements) into panels at ``dst``,
    its panels shared out on the pool when it is big and the program owns the cores."""
    panels = -(-n // panel_width(dtype))
    chunks = min(CHUNKS_PER_THREAD * pool.threads(), panels)
    if k_dim * n < MIN_PARALLEL_PACK or not pool.supported() or not owns_products(ctx.mb):
        chunks = 1
    fn = _pack_fn(ctx.mb, np.dtype(dtype), row_stride, col_stride, k_dim, n)
    _dispatch(ctx, fn, [src, dst], chunks)


def _task_function(mb, name: str, n_pointers: int):
    """A new pool task ``void name(ctx, chunk)`` whose ``ctx`` holds ``n_pointers`` pointers
    and the chunk count: ``(fn, builder, pointers, chunk, chunks)``; None if it exists."""
    if name in mb.declared:
        return None
    fn = ir.Function(mb.module, ir.FunctionType(VOID, [PTR, I64]), name)
    fn.linkage = "internal"
    fn.attributes.add("nounwind")
    mb.declared[name] = fn
    ctx_ptr, chunk = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    words = [b.load(b.gep(ctx_ptr, [i64(f)], source_etype=I64), typ=I64) for f in range(n_pointers + 1)]
    return fn, b, [b.inttoptr(w, PTR) for w in words[:-1]], chunk, words[-1]


def _pack_fn(mb, dtype: np.dtype, row_stride: int, col_stride: int, k_dim: int, n: int) -> ir.Function:
    """``void pack(ctx, chunk)``, ``ctx = {src, dst, chunks}``: chunk ``t`` copies its share of
    the full panels (a panel's row is one 128-byte copy when ``src``'s rows are contiguous);
    the last chunk also the partial panel, zero-padded."""
    name = f"{mb.prefix}_pack_{dtype.name}_{row_stride}_{col_stride}_{k_dim}_{n}"
    made = _task_function(mb, name, 2)
    if made is None:
        return mb.declared[name]
    fn, b, (src, dst), chunk, chunks = made
    nr = panel_width(dtype)
    full, tail = divmod(n, nr)
    itemsize = dtype.itemsize
    elem = _vector(dtype).element

    def at(ptr, offset):
        return b.gep(ptr, [offset], inbounds=True, source_etype=elem)

    if full:
        start = b.udiv(b.mul(chunk, i64(full)), chunks)
        stop = b.udiv(b.mul(b.add(chunk, i64(1)), i64(full)), chunks)
        with for_range(b, stop, "pp", start=start) as p, for_range(b, k_dim, "pk") as k:
            out = at(dst, b.mul(b.add(b.mul(p, i64(k_dim)), k), i64(nr)))
            row = b.add(b.mul(k, i64(row_stride)), b.mul(p, i64(nr * col_stride)))
            if col_stride == 1:
                mb.memcpy(b, out, at(src, row), nr * itemsize)
            else:
                for col in range(nr):
                    value = b.load(at(src, b.add(row, i64(col * col_stride))), typ=elem)
                    b.store(value, b.gep(out, [i64(col)], inbounds=True, source_etype=elem))
    if tail:
        with b.if_then(b.icmp_unsigned("==", chunk, b.sub(chunks, i64(1)))):
            base = full * k_dim * nr
            mb.memset(b, at(dst, i64(base)), k_dim * nr * itemsize)
            with for_range(b, k_dim, "pt") as k:
                row = b.add(b.mul(k, i64(row_stride)), i64(full * nr * col_stride))
                out = at(dst, b.add(i64(base), b.mul(k, i64(nr))))
                for col in range(tail):
                    value = b.load(at(src, b.add(row, i64(col * col_stride))), typ=elem)
                    b.store(value, b.gep(out, [i64(col)], inbounds=True, source_etype=elem))
    b.ret_void()
    return fn


def _dispatch(ctx: KernelContext, fn: ir.Function, pointers: list, chunks: int) -> None:
    """``fn(task, c)`` for every chunk ``c``, ``task = {*pointers, chunks}``: on the pool when
    there are several chunks, else a plain call."""
    b = ctx.b
    task = ctx.fl.alloca(I64, len(pointers) + 1)
    for f, value in enumerate([*(b.ptrtoint(x, I64) for x in pointers), i64(chunks)]):
        b.store(value, b.gep(task, [i64(f)], source_etype=I64))
    if chunks == 1:
        b.call(fn, [task, i64(0)])
        return
    pool.bind()
    run = ctx.mb.declare(pool.SYMBOL, VOID, [PTR, PTR, I64])
    b.call(run, [fn, task, i64(chunks)])


# --- the kernel -------------------------------------------------------------------------------


def _vector(dtype: np.dtype) -> ir.VectorType:
    return ir.VectorType(F32 if np.dtype(dtype) == np.float32 else F64, lanes(dtype))


def _fma(mb, vty: ir.VectorType) -> ir.Function:
    suffix = f"v{vty.count}f{32 if vty.element == F32 else 64}"
    return mb.declare(f"llvm.fma.{suffix}", vty, [vty, vty, vty])


def _masked_store(mb, vty: ir.VectorType) -> ir.Function:
    suffix = f"v{vty.count}f{32 if vty.element == F32 else 64}.p0"
    return mb.declare(f"llvm.masked.store.{suffix}", VOID, [vty, PTR, I32, ir.VectorType(I1, vty.count)])


def _masked_load(mb, vty: ir.VectorType) -> ir.Function:
    suffix = f"v{vty.count}f{32 if vty.element == F32 else 64}.p0"
    mask = ir.VectorType(I1, vty.count)
    return mb.declare(f"llvm.masked.load.{suffix}", vty, [PTR, I32, mask, vty])


class Layout(NamedTuple):
    """A product's constant shape: ``C[m, n] (+)= A[m, k] B[k, n]`` with row strides
    ``lda``, ``ldb``, ``ldc`` (``A[i, k]`` at ``i * lda + k * acs``); ``B`` either packed in
    panels or row-major (``packed``)."""

    dtype: np.dtype
    m: int
    k: int
    n: int
    lda: int
    ldb: int
    ldc: int
    packed: bool
    accumulate: bool
    acs: int = 1

    @property
    def name(self) -> str:
        sizes = "_".join(str(x) for x in (self.m, self.k, self.n, self.lda, self.acs, self.ldb, self.ldc))
        return f"{np.dtype(self.dtype).name}_{sizes}_{'p' if self.packed else 'd'}{int(self.accumulate)}"


def _tile(mb, lay: Layout, rows: int, kc: int, accumulate: bool) -> ir.Function:
    """``void tile(A, B, C, p)``: ``C[0:rows, 0:NR] (+)= A[0:rows, 0:kc] @ B[0:kc, 0:NR]``
    for panel ``p`` (``A``, ``B``, ``C`` point at the tile's first elements; ``B``'s rows
    are ``NR`` apart when packed, ``ldb`` otherwise). In the last panel the columns past
    ``n`` are neither read (unpacked ``B``) nor written."""
    name = f"{mb.prefix}_tile_{lay.name}_{rows}_{kc}_{int(accumulate)}"
    hit = mb.declared.get(name)
    if hit is not None:
        return hit
    vty = _vector(lay.dtype)
    width = vty.count
    nr = panel_width(lay.dtype)
    elem = vty.element
    fn = ir.Function(mb.module, ir.FunctionType(VOID, [PTR, PTR, PTR, I64]), name)
    fn.linkage = "internal"
    fn.attributes.add("nounwind")
    for arg in fn.args[:3]:
        arg.add_attribute("noalias")
    mb.declared[name] = fn
    a, panel, c, p = fn.args
    entry = fn.append_basic_block("entry")
    loop = fn.append_basic_block("k")
    done = fn.append_basic_block("store")
    b = ir.IRBuilder(entry)
    tail = lay.n % nr
    masks = []
    if tail:
        # In the last (partial) panel, the lanes past column n are masked off.
        is_last = b.icmp_unsigned("==", p, i64(lay.n // nr))
        full = ir.Constant(ir.VectorType(I1, width), [1] * width)
        for v in range(PANEL_VECTORS):
            keep = ir.Constant(ir.VectorType(I1, width), [v * width + lane < tail for lane in range(width)])
            masks.append(b.select(is_last, keep, full))
    b.branch(loop)
    b.position_at_end(loop)
    k = b.phi(I64, "k")
    k.add_incoming(i64(0), entry)
    zero = ir.Constant(vty, None)
    acc = [[b.phi(vty, f"acc{r}_{v}") for v in range(PANEL_VECTORS)] for r in range(rows)]
    for row in acc:
        for phi in row:
            phi.add_incoming(zero, entry)
    fma = _fma(mb, vty)
    row_base = b.mul(k, i64(nr if lay.packed else lay.ldb))
    bv = []
    for v in range(PANEL_VECTORS):
        ptr = b.gep(panel, [b.add(row_base, i64(v * width))], inbounds=True, source_etype=elem)
        if tail and not lay.packed:
            bv.append(b.call(_masked_load(mb, vty), [ptr, ir.Constant(I32, 4), masks[v], zero]))
        else:
            bv.append(b.load(ptr, typ=vty, align=4))
    mask0 = ir.Constant(ir.VectorType(I32, width), [0] * width)
    undef = ir.Constant(vty, ir.Undefined)
    new = []
    for r in range(rows):
        a_off = b.add(i64(r * lay.lda), b.mul(k, i64(lay.acs)) if lay.acs != 1 else k)
        scalar = b.load(b.gep(a, [a_off], inbounds=True, source_etype=elem), typ=elem)
        splat = b.shuffle_vector(b.insert_element(undef, scalar, i64(0)), undef, mask0)
        new.append([b.call(fma, [splat, bv[v], acc[r][v]]) for v in range(PANEL_VECTORS)])
    k_next = b.add(k, i64(1), flags=("nuw", "nsw"))
    for r in range(rows):
        for v in range(PANEL_VECTORS):
            acc[r][v].add_incoming(new[r][v], loop)
    k.add_incoming(k_next, loop)
    b.cbranch(b.icmp_unsigned("<", k_next, i64(kc)), loop, done)
    b.position_at_end(done)
    for r in range(rows):
        for v in range(PANEL_VECTORS):
            ptr = b.gep(c, [i64(r * lay.ldc + v * width)], inbounds=True, source_etype=elem)
            value = new[r][v]
            if accumulate:
                old = b.call(_masked_load(mb, vty), [ptr, ir.Constant(I32, 4), masks[v], zero]) if tail else None
                value = b.fadd(value, old if tail else b.load(ptr, typ=vty, align=4))
            if tail:
                b.call(_masked_store(mb, vty), [value, ptr, ir.Constant(I32, 4), masks[v]])
            else:
                b.store(value, ptr, align=4)
    b.ret_void()
    return fn


def _panels_fn(mb, lay: Layout) -> ir.Function:
    """``void panels(ctx, chunk)`` for the pool: ``ctx = {A, B, C, chunks}``; chunk ``t`` of
    ``chunks`` computes its share of the column panels (loop order below)."""
    name = f"{mb.prefix}_panels_{lay.name}"
    made = _task_function(mb, name, 3)
    if made is None:
        return mb.declared[name]
    fn, b, (a, bb, c), chunk, chunks = made
    nr = panel_width(lay.dtype)
    panels = -(-lay.n // nr)
    start = b.udiv(b.mul(chunk, i64(panels)), chunks)
    stop = b.udiv(b.mul(b.add(chunk, i64(1)), i64(panels)), chunks)
    elem = _vector(lay.dtype).element
    full_tiles, rest = divmod(lay.m, MR)
    groups = -(-full_tiles // GROUP_TILES)

    def panel_block(p: ir.Value, k0: int) -> ir.Value:
        if lay.packed:
            offset = b.add(b.mul(p, i64(lay.k * nr)), i64(k0 * nr))
        else:
            offset = b.add(b.mul(p, i64(nr)), i64(k0 * lay.ldb))
        return b.gep(bb, [offset], inbounds=True, source_etype=elem)

    def call_tile(tile: ir.Function, r0: ir.Value, p: ir.Value, k0: int) -> None:
        a_t = b.gep(a, [b.add(b.mul(r0, i64(lay.lda)), i64(k0 * lay.acs))], inbounds=True, source_etype=elem)
        c_t = b.gep(c, [b.add(b.mul(r0, i64(lay.ldc)), b.mul(p, i64(nr)))], inbounds=True, source_etype=elem)
        b.call(tile, [a_t, panel_block(p, k0), c_t, p])

    # Contraction blocks outermost (a C tile sums them in order); within one, a group of
    # row tiles (their block of A stays in L2) runs over the chunk's panels (a panel's
    # block stays in L1 across the group's tiles).
    for k0 in range(0, lay.k, KC):
        kc = min(KC, lay.k - k0)
        accumulate = lay.accumulate or k0 > 0
        if full_tiles:
            tile = _tile(mb, lay, MR, kc, accumulate)
            with for_range(b, groups, "group") as g:
                first = b.mul(g, i64(GROUP_TILES))
                end = b.add(first, i64(GROUP_TILES))
                end = b.select(b.icmp_unsigned("<", end, i64(full_tiles)), end, i64(full_tiles))
                with for_range(b, stop, "panel", start=start) as p, for_range(b, end, "tile", start=first) as t:
                    call_tile(tile, b.mul(t, i64(MR)), p, k0)
        if rest:
            tile = _tile(mb, lay, rest, kc, accumulate)
            with for_range(b, stop, "panel", start=start) as p:
                call_tile(tile, i64(full_tiles * MR), p, k0)
    b.ret_void()
    return fn


def owns_products(mb) -> bool:
    """Whether this program does all its float matrix products with this kernel and the
    thread pool, none with OpenBLAS: when one of its scans packs a weight. After an
    OpenBLAS call its idle workers spin on the cores for a while, and the pool's threads
    competing with them made an LSTM training step slower than one thread (measured
    here: 1.09-1.35x of PyTorch's time against 0.94-1.04x)."""
    if mb.owns_products is None:
        mb.owns_products = mb.main_fn is not None and _packs_somewhere(mb.main_fn)
    return mb.owns_products


def _packs_somewhere(fn: Function) -> bool:
    from functrace.core.ir import sub_functions

    for f in (fn, *sub_functions(fn)):
        for e in f.eqns:
            p = e.params
            if e.primitive.name == "scan" and packed_weights(p["body"], p["num_consts"], p["length"]):
                return True
    return False


def _run(ctx: KernelContext, lay: Layout, a: ir.Value, bb: ir.Value, c: ir.Value) -> None:
    """``C (+)= A @ B`` (``lay``), its panels shared out on the thread pool when big enough."""
    panels = -(-lay.n // panel_width(lay.dtype))
    # A few chunks per thread: whoever is free claims the next (pool.py).
    chunks = min(CHUNKS_PER_THREAD * pool.threads(), panels)
    if lay.m * lay.k * lay.n < MIN_PARALLEL_WORK or not pool.supported() or not owns_products(ctx.mb):
        chunks = 1
    _dispatch(ctx, _panels_fn(ctx.mb, lay), [a, bb, c], chunks)


def matmul_packed(ctx: KernelContext, a: Buffer, packed: Buffer, out: Buffer) -> None:
    """``out = a @ W`` with ``W`` packed (``pack``): ``a`` is ``M x K``, ``out`` ``M x N``."""
    m, k_dim = a.aval.shape
    n = out.aval.shape[1]
    lay = Layout(out.aval.dtype, m, k_dim, n, k_dim, 0, n, True, False)
    _run(ctx, lay, a.ptr, packed.ptr, out.ptr)


def matmul_general(ctx: KernelContext, dtype, a, b_, c, accumulate: bool) -> bool:
    """``c (+)= a @ b`` for ``rules.linalg.MatrixView`` s with this kernel (in a program that
    ``owns_products``): ``a`` read in place whatever its strides (the kernel broadcasts its
    elements one by one); ``b`` packed first when many row tiles reuse it (rows 4 KiB apart
    alias in L1) or its rows are not contiguous, else read in place.
    False (nothing emitted) when ``c``'s rows are not contiguous."""
    if np.dtype(dtype) not in (np.float32, np.float64) or (c.col_stride != 1 and c.cols != 1):
        return False
    m, k_dim, n = a.rows, a.cols, b_.cols
    ldc = c.row_stride if m > 1 else n
    free = None
    if (b_.col_stride == 1 or n == 1) and m < PACK_MIN_ROWS:
        b_ptr, ldb, packed = b_.ptr, (b_.row_stride if k_dim > 1 else n), False
    else:
        nr = panel_width(dtype)
        scratch, free = ctx.fl.scratch_buffer(ShapedArray((-(-n // nr), k_dim, nr), np.dtype(dtype)))
        col_stride = b_.col_stride if n > 1 else 1
        _pack(ctx, dtype, b_.ptr, b_.row_stride if k_dim > 1 else 0, col_stride, k_dim, n, scratch.ptr)
        b_ptr, ldb, packed = scratch.ptr, 0, True
    lay = Layout(np.dtype(dtype), m, k_dim, n, a.row_stride, ldb, ldc, packed, accumulate, a.col_stride)
    _run(ctx, lay, a.ptr, b_ptr, c.ptr)
    if free is not None:
        free()
    return True
