"""A persistent thread pool for short parallel kernels, in LLVM IR.

``runtime.parallel_for`` starts threads per call (``pthread_create``, tens of
microseconds): right for a kernel of milliseconds, far too slow for the matrix product
of one recurrent step (50-100 µs, 128 of them in an LSTM training step). This pool keeps
``NUM_THREADS - 1`` workers that spin for a short while after each task and then sleep on
a futex, so a run hands work to a hot worker in well under a microsecond.

``void functrace_pool_run(void (*fn)(ptr ctx, i64 chunk), ptr ctx, i64 chunks)`` runs
``fn(ctx, c)`` for every ``c`` in ``range(chunks)`` and returns when all are done. The
caller and the workers *claim* chunks (a compare-and-swap on one word holding the task's
generation and the next chunk), so nobody waits for a worker that is asleep or
descheduled (OpenBLAS's own spinning threads share the cores): the caller then simply
runs more chunks itself. A worker reads a task's function and context seqlock-style (the
generation word is marked busy while they are written, and checked again after they
are read), so a late worker never runs a chunk of the wrong task. One run at a time
uses the workers: a caller that finds them busy (another thread's jitted call) runs
every chunk itself. A process that forked gets fresh workers on its first run (the pool
remembers its pid).

The module is compiled once per process, on first use, and its entry is bound into the
JIT's symbol table (``llvm.add_symbol``), so compiled programs, also those loaded from
the persistent cache, call it by name.
"""

from __future__ import annotations

import functools
import threading

import llvmlite.binding as llvm

from lowering.llvm import runtime

SYMBOL = "functrace_pool_run"
# Spin iterations (each a ``pause``, ~40-140 cycles) before a worker sleeps: ~0.1-0.3 ms,
# longer than the gap between two products of a recurrent step, far shorter than the gap
# between two calls of a training step.
SPINS = 2048
FUTEX_WAIT_PRIVATE, FUTEX_WAKE_PRIVATE, SYS_FUTEX = 128, 129, 202

_lock = threading.Lock()
_keep: list = []

_IR = """
@lock = internal global i32 0
@word = internal global i64 0
@bell = internal global i32 0
@sleepers = internal global i32 0
@done = internal global i64 0
@task_fn = internal global ptr null
@task_ctx = internal global ptr null
@owner = internal global i32 -1

declare i32 @pthread_create(ptr, ptr, ptr, ptr)
declare i32 @pthread_detach(i64)
declare i32 @getpid()
declare i64 @syscall(i64, ...)
{pause_decl}

define internal void @relax() {{
  {pause_call}
  ret void
}}

; Claim and run chunks of the current task until none is left (or the task changed).
; The word is generation << 32 | lo << 16 | hi: chunks [lo, hi) are unclaimed. The caller
; claims from the front and the workers from the back, so with a steady split each thread
; gets the same chunks (and keeps their data in its cache) call after call.
define internal void @claim(i1 %front) {{
entry:
  %w0 = load atomic i64, ptr @word acquire, align 8
  %lo0 = lshr i64 %w0, 16
  %lo0m = and i64 %lo0, 65535
  %busy = icmp eq i64 %lo0m, 65535
  br i1 %busy, label %out, label %read
read:
  %fn = load atomic ptr, ptr @task_fn monotonic, align 8
  %ctx = load atomic ptr, ptr @task_ctx monotonic, align 8
  fence acquire
  %w1 = load atomic i64, ptr @word monotonic, align 8
  %g0 = lshr i64 %w0, 32
  %g1 = lshr i64 %w1, 32
  %same = icmp eq i64 %g0, %g1
  br i1 %same, label %try, label %out
try:
  %w = phi i64 [%w1, %read], [%seen, %retry], [%reload, %run]
  %gw = lshr i64 %w, 32
  %lo.s = lshr i64 %w, 16
  %lo = and i64 %lo.s, 65535
  %hi = and i64 %w, 65535
  %ours = icmp eq i64 %gw, %g0
  %left = icmp ult i64 %lo, %hi
  %go = and i1 %ours, %left
  br i1 %go, label %cas, label %out
cas:
  %up = add i64 %w, 65536
  %down = sub i64 %w, 1
  %next = select i1 %front, i64 %up, i64 %down
  %last = sub i64 %hi, 1
  %idx = select i1 %front, i64 %lo, i64 %last
  %pair = cmpxchg ptr @word, i64 %w, i64 %next acq_rel monotonic
  %seen = extractvalue {{ i64, i1 }} %pair, 0
  %won = extractvalue {{ i64, i1 }} %pair, 1
  br i1 %won, label %run, label %retry
retry:
  br label %try
run:
  call void %fn(ptr %ctx, i64 %idx)
  atomicrmw add ptr @done, i64 1 release
  %reload = load atomic i64, ptr @word monotonic, align 8
  br label %try
out:
  ret void
}}

define internal ptr @worker(ptr %arg) {{
entry:
  br label %top
top:
  %bell = load atomic i32, ptr @bell acquire, align 4
  call void @claim(i1 0)
  br label %wait
wait:
  %spins = phi i32 [0, %top], [%spins1, %spin], [0, %awake]
  %now = load atomic i32, ptr @bell acquire, align 4
  %rang = icmp ne i32 %now, %bell
  br i1 %rang, label %top, label %idle
idle:
  %spins1 = add i32 %spins, 1
  %tired = icmp ugt i32 %spins1, {spins}
  br i1 %tired, label %sleep, label %spin
spin:
  call void @relax()
  br label %wait
sleep:
  atomicrmw add ptr @sleepers, i32 1 seq_cst
  %again = load atomic i32, ptr @bell seq_cst, align 4
  %still = icmp eq i32 %again, %bell
  br i1 %still, label %futex, label %awake
futex:
  %r = call i64 (i64, ...) @syscall(i64 {sys_futex}, ptr @bell, i32 {futex_wait}, i32 %bell, ptr null)
  br label %awake
awake:
  atomicrmw sub ptr @sleepers, i32 1 seq_cst
  br label %wait
}}

; Start the workers once per process (again after a fork).
define internal void @start() {{
entry:
  %pid = call i32 @getpid()
  %owner = load i32, ptr @owner, align 4
  %same = icmp eq i32 %pid, %owner
  br i1 %same, label %out, label %spawn
spawn:
  store i32 %pid, ptr @owner, align 4
  %tid = alloca i64, align 8
  br label %loop
loop:
  %i = phi i64 [1, %spawn], [%i1, %made]
  %more = icmp ult i64 %i, {threads}
  br i1 %more, label %make, label %out
make:
  %arg = inttoptr i64 %i to ptr
  %rc = call i32 @pthread_create(ptr %tid, ptr null, ptr @worker, ptr %arg)
  %ok = icmp eq i32 %rc, 0
  br i1 %ok, label %made, label %out
made:
  %t = load i64, ptr %tid, align 8
  call i32 @pthread_detach(i64 %t)
  %i1 = add i64 %i, 1
  br label %loop
out:
  ret void
}}

define void @{symbol}(ptr %fn, ptr %ctx, i64 %chunks) {{
entry:
  %toomany = icmp ugt i64 %chunks, 65535
  br i1 %toomany, label %alone, label %try.lock
try.lock:
  %pair = cmpxchg ptr @lock, i32 0, i32 1 acquire monotonic
  %got = extractvalue {{ i32, i1 }} %pair, 1
  br i1 %got, label %pooled, label %alone
alone:
  %i = phi i64 [0, %entry], [0, %try.lock], [%i1, %alone.body]
  %more = icmp ult i64 %i, %chunks
  br i1 %more, label %alone.body, label %exit
alone.body:
  call void %fn(ptr %ctx, i64 %i)
  %i1 = add i64 %i, 1
  br label %alone
pooled:
  call void @start()
  %w = load i64, ptr @word, align 8
  %g = lshr i64 %w, 32
  %g1 = add i64 %g, 1
  %high = shl i64 %g1, 32
  %setup = or i64 %high, 4294901760
  store atomic i64 %setup, ptr @word monotonic, align 8
  fence release
  store atomic ptr %fn, ptr @task_fn monotonic, align 8
  store atomic ptr %ctx, ptr @task_ctx monotonic, align 8
  store atomic i64 0, ptr @done monotonic, align 8
  %open = or i64 %high, %chunks
  store atomic i64 %open, ptr @word release, align 8
  atomicrmw add ptr @bell, i32 1 seq_cst
  %asleep = load atomic i32, ptr @sleepers seq_cst, align 4
  %any = icmp ne i32 %asleep, 0
  br i1 %any, label %wake, label %mine
wake:
  %r = call i64 (i64, ...) @syscall(i64 {sys_futex}, ptr @bell, i32 {futex_wake}, i32 2147483647)
  br label %mine
mine:
  call void @claim(i1 1)
  br label %join
join:
  %d = load atomic i64, ptr @done acquire, align 8
  %finished = icmp eq i64 %d, %chunks
  br i1 %finished, label %release, label %join.spin
join.spin:
  call void @relax()
  br label %join
release:
  store atomic i32 0, ptr @lock release, align 4
  br label %exit
exit:
  ret void
}}
"""


@functools.cache
def supported() -> bool:
    """Whether the pool can run here: its futex and pause instructions are those of Linux on
    x86-64, and it needs more than one thread."""
    import platform
    import sys

    return sys.platform.startswith("linux") and platform.machine() in ("x86_64", "AMD64") and runtime.NUM_THREADS > 1


def threads() -> int:
    """How many chunks run at once: the workers and the caller."""
    return runtime.NUM_THREADS


@functools.cache
def bind() -> int:
    """Compile the pool (once per process) and bind ``functrace_pool_run``; its address."""
    from lowering.llvm import engine

    x86 = "x86" in llvm.get_process_triple()
    text = _IR.format(
        symbol=SYMBOL,
        spins=SPINS,
        threads=max(1, runtime.NUM_THREADS),
        sys_futex=SYS_FUTEX,
        futex_wait=FUTEX_WAIT_PRIVATE,
        futex_wake=FUTEX_WAKE_PRIVATE,
        pause_decl="declare void @llvm.x86.sse2.pause()" if x86 else "",
        pause_call="call void @llvm.x86.sse2.pause()" if x86 else "",
    )
    with _lock:
        tm = engine._new_target_machine()  # the engine owns (and frees) its target machine
        mod = llvm.parse_assembly(text)
        mod.triple = tm.triple
        mod.verify()
        ee = llvm.create_mcjit_compiler(mod, tm)
        ee.finalize_object()
        address = ee.get_function_address(SYMBOL)
        _keep.append(ee)
        llvm.add_symbol(SYMBOL, address)
        return address
