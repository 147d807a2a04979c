"""``dot_general``, and the matrix multiply that convolution shares.

A contraction is a batch of matrix products ``C[m, n] = sum_k A[m, k] B[k, n]``:
``M`` is the product of lhs's free dims, ``N`` of rhs's, ``K`` of the contracted
ones, and the output (batch, lhs free, rhs free) is row-major, so each batch element
of it is an ``M x N`` matrix. An operand whose free dims and contracted dims each
flatten to one strided dimension is a ``MatrixView`` of its buffer, read in place;
otherwise it is first copied into a ``(batch, rows, cols)`` scratch buffer by a
transposing loop nest.

``matmul`` multiplies views: float32/float64 through BLAS gemm (``functrace_sgemm`` /
``functrace_dgemm``, CBLAS row-major, the transpose flags absorbing column-major
views), and integers, tiny products or a process without BLAS through an
``i, k, j`` loop nest accumulating in the output (its inner loop is contiguous and
vectorizes). Integer arithmetic wraps, as NumPy's.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
from llvmlite import ir

from functrace.core.abstract import ShapedArray
from functrace.core.ir import Literal, Var
from lowering.llvm import engine
from lowering.llvm.codegen import (
    F32,
    F64,
    I32,
    I64,
    PTR,
    VOID,
    Buffer,
    constant,
    flat_index,
    for_range,
    i64,
    loop_nest,
    memory_type,
    strides,
)
from lowering.llvm.registry import kernel_rule
from lowering.llvm.rules import smallgemm

ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112
# Below this many multiply-adds a loop nest beats the cost of calling BLAS.
BLAS_MIN_WORK = 16 * 16 * 16


class MatrixView(NamedTuple):
    """A strided matrix in memory: element ``(i, j)`` is at ``ptr + i * row_stride + j * col_stride``."""

    ptr: ir.Value
    rows: int
    cols: int
    row_stride: int
    col_stride: int

    @property
    def T(self) -> MatrixView:
        """The transposed view (same memory)."""
        return MatrixView(self.ptr, self.cols, self.rows, self.col_stride, self.row_stride)


def operand_buffer(ctx, x: Buffer | Literal) -> Buffer:
    """A buffer holding ``x``: a literal (a scalar) is stored in a stack slot."""
    if isinstance(x, Buffer):
        return x
    ptr = ctx.fl.alloca(memory_type(x.aval.dtype))
    Buffer(ptr, x.aval).store(ctx.b, constant(x.val, x.aval.dtype), i64(0))
    return Buffer(ptr, x.aval)


def merged_stride(shape: Sequence[int], elem_strides: Sequence[int], dims: Sequence[int]) -> int | None:
    """The stride of ``dims`` (in this order) flattened into one dimension, or None if
    they do not form one; size-1 dims are skipped, and no dims at all have stride 1."""
    dims = [d for d in dims if shape[d] != 1]
    for outer, inner in itertools.pairwise(dims):
        if elem_strides[outer] != elem_strides[inner] * shape[inner]:
            return None
    return elem_strides[dims[-1]] if dims else 1


def use_blas(dtype: np.dtype, m: int, n: int, k: int) -> bool:
    """Whether a product of this type and size goes to BLAS."""
    return np.dtype(dtype).kind == "f" and engine.blas() is not None and m * n * k >= BLAS_MIN_WORK


def blas_layout(view: MatrixView) -> tuple[int, int] | None:
    """``(transpose flag, leading dimension)`` describing ``view`` to row-major gemm, or
    None when neither of its strides is 1 (a size-1 dim's stride does not matter)."""
    rows, cols = view.rows, view.cols
    rs, cs = view.row_stride, view.col_stride
    if cols == 1 or cs == 1:
        ld = max(1, cols) if rows == 1 else rs
        if ld >= max(1, cols):
            return NO_TRANS, ld
    if rows == 1 or rs == 1:
        ld = max(1, rows) if cols == 1 else cs
        if ld >= max(1, rows):
            return TRANS, ld
    return None


def _blas_int_type() -> ir.Type:
    """BLAS's integer (``blasint``): 64 bits in the ILP64 interface NumPy bundles, else 32."""
    return I64 if engine.blas_ilp64() else I32


def _call_gemm(ctx, dtype: np.dtype, a: MatrixView, b: MatrixView, c: MatrixView, accumulate: bool) -> bool:
    """Emit ``c (+)= a @ b`` as one gemm call; False (nothing emitted) when a view does not fit."""
    la, lb, lc = blas_layout(a), blas_layout(b), blas_layout(c)
    if la is None or lb is None or lc is None or lc[0] != NO_TRANS:
        return False
    ft = F32 if np.dtype(dtype) == np.float32 else F64
    it = _blas_int_type()
    name = "functrace_sgemm" if ft is F32 else "functrace_dgemm"
    # CBLAS enums are C ints (32 bits) even in the ILP64 interface; the sizes are blasint.
    fn = ctx.mb.declare(name, VOID, [I32, I32, I32, it, it, it, ft, PTR, it, PTR, it, ft, PTR, it])
    ints = [ir.Constant(it, v) for v in (a.rows, b.cols, a.cols)]
    args = [ir.Constant(I32, ROW_MAJOR), ir.Constant(I32, la[0]), ir.Constant(I32, lb[0]), *ints]
    args += [ir.Constant(ft, 1.0), a.ptr, ir.Constant(it, la[1]), b.ptr, ir.Constant(it, lb[1])]
    args += [ir.Constant(ft, 1.0 if accumulate else 0.0), c.ptr, ir.Constant(it, lc[1])]
    ctx.b.call(fn, args)
    return True


def _element(b: ir.IRBuilder, view: MatrixView, elem: ir.Type, i: ir.Value, j: ir.Value) -> ir.Value:
    """The address of ``view[i, j]``."""
    off = b.add(b.mul(i, i64(view.row_stride)), b.mul(j, i64(view.col_stride)))
    return b.gep(view.ptr, [off], inbounds=True, source_etype=elem)


def fill_zero(ctx, dtype: np.dtype, c: MatrixView) -> None:
    """Store zeros in every element of ``c``."""
    b, elem = ctx.b, memory_type(dtype)
    with for_range(b, c.rows, "zi") as i, for_range(b, c.cols, "zj") as j:
        b.store(constant(0, dtype), _element(b, c, elem, i, j))


def _loop_matmul(ctx, dtype: np.dtype, a: MatrixView, b_: MatrixView, c: MatrixView, accumulate: bool) -> None:
    """``c (+)= a @ b`` as ``for i, k, j: c[i, j] += a[i, k] * b[k, j]`` (after zeroing ``c``)."""
    b, elem = ctx.b, memory_type(dtype)
    is_float = np.dtype(dtype).kind == "f"
    if not accumulate:
        fill_zero(ctx, dtype, c)
    with for_range(b, a.rows, "mi") as i, for_range(b, a.cols, "mk") as k:
        aik = b.load(_element(b, a, elem, i, k), typ=elem)
        with for_range(b, b_.cols, "mj") as j:
            bkj = b.load(_element(b, b_, elem, k, j), typ=elem)
            slot = _element(b, c, elem, i, j)
            acc = b.load(slot, typ=elem)
            if is_float:
                acc = b.fadd(acc, b.fmul(aik, bkj, flags=("contract",)), flags=("contract",))
            else:
                acc = b.add(acc, b.mul(aik, bkj))
            b.store(acc, slot)


def matmul(ctx, dtype: np.dtype, a: MatrixView, b: MatrixView, c: MatrixView, accumulate: bool = False) -> None:
    """Emit ``c = a @ b``, or ``c += a @ b`` with ``accumulate`` (``a``: M x K, ``b``: K x N,
    ``c``: M x N, not overlapping ``a`` or ``b``).

    BLAS when ``use_blas`` and the views fit gemm (``c`` with a unit stride; solved as
    ``c.T = b.T @ a.T`` when that stride is the row stride), else the loop nest."""
    m, k, n = a.rows, a.cols, b.cols
    if m == 0 or n == 0 or (k == 0 and accumulate):
        return
    if k == 0:
        fill_zero(ctx, dtype, c)
        return
    if c.col_stride != 1 and c.cols != 1 and (c.row_stride == 1 or c.rows == 1):
        a, b, c = b.T, a.T, c.T
    own = use_blas(dtype, m, n, k) and smallgemm.owns_products(ctx.mb)  # no BLAS in this program
    if own and smallgemm.matmul_general(ctx, dtype, a, b, c, accumulate):
        return
    if use_blas(dtype, m, n, k) and _call_gemm(ctx, dtype, a, b, c, accumulate):
        return
    _loop_matmul(ctx, dtype, a, b, c, accumulate)


# --- dot_general ------------------------------------------------------------------------------


class _Operand(NamedTuple):
    """An operand as a batch of matrices: the base buffer, its batch dims' strides, one batch's view."""

    base: Buffer
    batch_strides: tuple[int, ...]
    view: MatrixView


def transposed_copy(ctx, src: Buffer, order: Sequence[int]) -> tuple[Buffer, Callable[[], None]]:
    """A scratch copy of ``src`` with its dims permuted to ``order`` (row-major); and its free."""
    shape = [src.aval.shape[d] for d in order]
    dst, free = ctx.fl.scratch_buffer(ShapedArray(tuple(shape), src.aval.dtype))
    b = ctx.b
    with loop_nest(b, shape, "t") as idx:
        src_idx = [None] * len(order)
        for pos, d in enumerate(order):
            src_idx[d] = idx[pos]
        dst.store(b, src.load_at(b, src_idx), flat_index(b, idx, shape))
    return dst, free


def _as_matrices(ctx, buf: Buffer, batch, rows, cols, blas: bool) -> tuple[_Operand, Callable[[], None] | None]:
    """``buf`` as a batch of (rows x cols) matrices, each group of dims flattened; copied
    into a (batch, rows, cols) scratch buffer when it is not such a view (or BLAS cannot read it)."""
    shape = buf.aval.shape
    n_rows, n_cols = math.prod(shape[d] for d in rows), math.prod(shape[d] for d in cols)
    st = strides(shape)
    rs, cs = merged_stride(shape, st, rows), merged_stride(shape, st, cols)
    if rs is not None and cs is not None:
        view = MatrixView(buf.ptr, n_rows, n_cols, rs, cs)
        if not blas or blas_layout(view) is not None:
            return _Operand(buf, tuple(st[d] for d in batch), view), None
    copy, free = transposed_copy(ctx, buf, [*batch, *rows, *cols])
    batch_st = strides([*(shape[d] for d in batch), n_rows * n_cols])[:-1]
    return _Operand(copy, tuple(batch_st), MatrixView(copy.ptr, n_rows, n_cols, n_cols, 1)), free


def _copied_bytes(buf: Buffer, batch, rows, cols, blas: bool) -> int:
    """What ``_as_matrices`` would copy: nothing when ``buf`` reads in place."""
    shape = buf.aval.shape
    st = strides(shape)
    rs, cs = merged_stride(shape, st, rows), merged_stride(shape, st, cols)
    if rs is not None and cs is not None:
        view = MatrixView(buf.ptr, math.prod(shape[d] for d in rows), math.prod(shape[d] for d in cols), rs, cs)
        if not blas or blas_layout(view) is not None:
            return 0
    return math.prod(shape) * buf.aval.dtype.itemsize


def _contraction_order(lhs: Buffer, rhs: Buffer, lc, rc, lb, rb, lf, rf, blas: bool) -> tuple[tuple, tuple]:
    """The contracted dim pairs in the order that copies the fewest bytes (the pairs may
    be summed in any order; the operands' dims must flatten in the same one)."""
    pairs = list(zip(lc, rc, strict=True))
    if len(pairs) < 2 or len(pairs) > 4:
        return tuple(lc), tuple(rc)
    best = None
    for order in itertools.permutations(pairs):
        lo, ro = tuple(p[0] for p in order), tuple(p[1] for p in order)
        cost = _copied_bytes(lhs, lb, lf, lo, blas) + _copied_bytes(rhs, rb, ro, rf, blas)
        if best is None or cost < best[0]:
            best = (cost, lo, ro)
    return best[1], best[2]


def _free_dims(ndim: int, contract, batch) -> list[int]:
    """The dims that are neither contracted nor batch, in order."""
    return [d for d in range(ndim) if d not in contract and d not in batch]


@kernel_rule("dot_general")
def _dot_general_lower(ctx, eqn, ins, outs):
    """Per batch element, ``out[m, n] = sum_k lhs[m, k] rhs[k, n]`` through ``matmul``.

    Operands are read in place when their dims flatten to matrices gemm accepts,
    otherwise transposed into scratch once, before the loop over the batch dims."""
    (lc, rc), (lb, rb) = eqn.params["dimension_numbers"]
    lhs, rhs = (operand_buffer(ctx, x) for x in ins)
    (out,) = outs
    if _is_packed(ctx, eqn.inputs[1]):
        smallgemm.matmul_packed(ctx, lhs, rhs, out)
        return
    dtype = out.aval.dtype
    lshape, rshape = lhs.aval.shape, rhs.aval.shape
    lf, rf = _free_dims(len(lshape), lc, lb), _free_dims(len(rshape), rc, rb)
    m, n = math.prod(lshape[d] for d in lf), math.prod(rshape[d] for d in rf)
    k = math.prod(lshape[d] for d in lc)
    batch_shape = [lshape[d] for d in lb]
    if math.prod(out.aval.shape) == 0:
        return
    if k == 0:
        fill_zero(ctx, dtype, MatrixView(out.ptr, 1, math.prod(out.aval.shape), 0, 1))
        return
    blas = use_blas(dtype, m, n, k)
    lc, rc = _contraction_order(lhs, rhs, lc, rc, lb, rb, lf, rf, blas)
    a, free_a = _as_matrices(ctx, lhs, lb, lf, lc, blas)
    b_, free_b = _as_matrices(ctx, rhs, rb, rc, rf, blas)
    b = ctx.b
    with loop_nest(b, batch_shape, "bt") as idx:
        views = []
        for op in (a, b_):
            off = _offset(b, idx, op.batch_strides)
            views.append(op.view._replace(ptr=op.base.address(b, off)))
        c_off = b.mul(flat_index(b, idx, batch_shape), i64(m * n)) if idx else i64(0)
        matmul(ctx, dtype, *views, MatrixView(out.address(b, c_off), m, n, n, 1))
    for free in (free_a, free_b):
        if free is not None:
            free()


def _is_packed(ctx, w) -> bool:
    """Whether ``w`` is an input of the function being lowered that its loop packed."""
    fn = ctx.fl.fn
    packed = ctx.mb.packed_inputs.get(id(fn))
    if not packed or not isinstance(w, Var):
        return False
    return any(fn.invars[k] is w for k in packed)


def _offset(b: ir.IRBuilder, idx: Sequence[ir.Value], elem_strides: Sequence[int]) -> ir.Value:
    """``sum(idx[i] * elem_strides[i])``: the element offset of a batch index."""
    off: ir.Value = i64(0)
    for i, s in zip(idx, elem_strides, strict=True):
        off = b.add(off, b.mul(i, i64(s)))
    return off
