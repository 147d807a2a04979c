"""Threads for large kernels: a ``parallel_for`` in LLVM IR over pthreads.

A kernel over at least ``PARALLEL_MIN_ELEMENTS`` elements is outlined into
``void k(ins, outs, ws, start, end)`` and its outer loop's range split into chunks that
the persistent thread pool (``lowering.llvm.pool``) runs; where the pool is not supported,
the caller runs chunk 0 itself and the others on threads it creates and joins
(``pthread_create``; a chunk whose thread cannot be created runs inline). Chunks write
disjoint parts of the output, so no locks are needed. Small kernels stay on the calling
thread.

``FUNCTRACE_NUM_THREADS`` sets the count (default: the CPUs this process may use).
"""

from __future__ import annotations

import os

from llvmlite import ir

from functrace.core.ir import Function, sub_functions

I8 = ir.IntType(8)
I32 = ir.IntType(32)
I64 = ir.IntType(64)
PTR = ir.PointerType()


def _threads() -> int:
    env = os.environ.get("FUNCTRACE_NUM_THREADS")
    if env:
        return max(1, int(env))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


NUM_THREADS = _threads()
PARALLEL_MIN_ELEMENTS = 1 << 18
# In a program that calls BLAS, OpenBLAS's worker threads keep spinning for a while after
# each call; a thread of ours then competes with them for the cores and the kernel waits
# for its slowest chunk (measured here: an MLP step 2.6 -> 4.0 ms, a CNN step 23 -> 36 ms).
# Such programs split only very large kernels.
PARALLEL_MIN_ELEMENTS_WITH_BLAS = 1 << 23
# In a program that makes its matrix products on the pool itself (``rules/smallgemm.py``),
# without OpenBLAS, a hand-off to a spinning worker costs ~1 µs.
PARALLEL_MIN_ELEMENTS_OWN = 1 << 13
BLAS_PRIMITIVES = frozenset(["dot_general", "conv_general_dilated"])


def uses_blas(fn: Function) -> bool:
    """Whether ``fn`` (or a function in its equations' parameters) has a BLAS-backed primitive."""
    return any(e.primitive.name in BLAS_PRIMITIVES for f in (fn, *sub_functions(fn)) for e in f.eqns)


TASK_WORDS = 5  # a task is five pointer-sized words: ins, outs, ws, start, end (as pointers)


def _field(b: ir.IRBuilder, task: ir.Value, k: int) -> ir.Value:
    return b.gep(task, [ir.Constant(I64, k)], source_etype=PTR)


def _worker(mb, kernel: ir.Function) -> ir.Function:
    """``void *worker(task *)``: runs one chunk of ``kernel``."""
    fn = ir.Function(mb.module, ir.FunctionType(PTR, [PTR]), f"{kernel.name}_worker")
    fn.linkage = "internal"
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    (task,) = fn.args
    words = [b.load(_field(b, task, k), typ=PTR) for k in range(TASK_WORDS)]
    b.call(kernel, [*words[:3], b.ptrtoint(words[3], I64), b.ptrtoint(words[4], I64)])
    b.ret(ir.Constant(PTR, None))
    return fn


POOL_CHUNKS_PER_THREAD = 2


def parallel_for(fl, kernel: ir.Function, extent: int) -> None:
    """In ``fl``'s function: ``kernel(ins, outs, ws, start, end)`` over ``range(extent)``
    in chunks: on the thread pool (``lowering.llvm.pool``) where it runs, else on threads
    started for the call."""
    from lowering.llvm import pool

    if pool.supported():
        _pool_for(fl, kernel, extent)
        return
    b, mb = fl.b, fl.mb
    args = list(fl.llfn.args)
    threads = min(NUM_THREADS, extent)
    chunk = -(-extent // threads)
    worker = _worker(mb, kernel)
    create = mb.declare("pthread_create", I32, [PTR, PTR, PTR, PTR])
    join = mb.declare("pthread_join", I32, [I64, PTR])
    tasks = fl.alloca(PTR, TASK_WORDS * threads)
    tids = fl.alloca(I64, threads)
    started = fl.alloca(I8, threads)
    spans = [(t * chunk, min(extent, (t + 1) * chunk)) for t in range(threads)]
    for t, (lo, hi) in enumerate(spans[1:], start=1):
        flag = b.gep(started, [ir.Constant(I64, t)], source_etype=I8)
        if lo >= hi:
            b.store(ir.Constant(I8, 0), flag)
            continue
        task = b.gep(tasks, [ir.Constant(I64, TASK_WORDS * t)], source_etype=PTR)
        span = [b.inttoptr(ir.Constant(I64, lo), PTR), b.inttoptr(ir.Constant(I64, hi), PTR)]
        for k, value in enumerate([*args, *span]):
            b.store(value, _field(b, task, k))
        tid = b.gep(tids, [ir.Constant(I64, t)], source_etype=I64)
        ok = b.icmp_signed("==", b.call(create, [tid, ir.Constant(PTR, None), worker, task]), ir.Constant(I32, 0))
        b.store(b.zext(ok, I8), flag)
        with b.if_then(b.not_(ok)):
            b.call(kernel, [*args, ir.Constant(I64, lo), ir.Constant(I64, hi)])
    b.call(kernel, [*args, ir.Constant(I64, spans[0][0]), ir.Constant(I64, spans[0][1])])
    for t in range(1, threads):
        flag = b.load(b.gep(started, [ir.Constant(I64, t)], source_etype=I8), typ=I8)
        with b.if_then(b.icmp_unsigned("!=", flag, ir.Constant(I8, 0))):
            tid = b.load(b.gep(tids, [ir.Constant(I64, t)], source_etype=I64), typ=I64)
            b.call(join, [tid, ir.Constant(PTR, None)])


def _pool_for(fl, kernel: ir.Function, extent: int) -> None:
    """``parallel_for`` on the pool: a task function runs chunk ``c`` of ``chunks`` as
    ``kernel(ins, outs, ws, c * extent // chunks, (c + 1) * extent // chunks)``."""
    from lowering.llvm import pool

    b, mb = fl.b, fl.mb
    chunks = min(extent, POOL_CHUNKS_PER_THREAD * NUM_THREADS)
    task = ir.Function(mb.module, ir.FunctionType(ir.VoidType(), [PTR, I64]), f"{kernel.name}_task")
    task.linkage = "internal"
    task.attributes.add("nounwind")
    tb = ir.IRBuilder(task.append_basic_block("entry"))
    ctx, c = task.args
    words = [tb.load(_field(tb, ctx, k), typ=PTR) for k in range(3)]
    start = tb.udiv(tb.mul(c, ir.Constant(I64, extent)), ir.Constant(I64, chunks))
    end = tb.udiv(tb.mul(tb.add(c, ir.Constant(I64, 1)), ir.Constant(I64, extent)), ir.Constant(I64, chunks))
    tb.call(kernel, [*words, start, end])
    tb.ret_void()
    block = fl.alloca(PTR, 3)
    for k, value in enumerate(fl.llfn.args[:3]):
        b.store(value, _field(b, block, k))
    pool.bind()
    run = mb.declare(pool.SYMBOL, ir.VoidType(), [PTR, PTR, I64])
    b.call(run, [task, block, ir.Constant(I64, chunks)])
