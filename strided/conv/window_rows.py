"""``window_rows``, the default: copy the window rows of the batch-last padded input, multiply blocks of them with BLAS.

The window matrix of im2col (write-ups 000, 001 and 004), K =
Cg*kh*kw rows per group and one column per output pixel and image,

    cols[(a, c, b), (i, j, n)] = xp[n, c, i*sh + a*dh, j*sw + b*dw]

turns the three products into matrix products with wm: (G, Og, K):

    y     = wm @ cols                       # (O, OH*OW*N)
    dw    = dy @ cols.T                     # computed as cols @ dy.T: (K, O)
    dcols = wm.T @ dy  ->  col2im           # kh*kw strided-slice additions

This algorithm never builds that matrix. The images are the innermost axis
of every array it touches (batch last: xp as (C, Hp, Wp, N)), and it copies
the windows along W only, one input row at a time,

    R[h, c, b, j, n] = xp[c, h, j*sw + b*dw, n]              (C*kw rows per input row h)

so that the window-matrix columns of output row i are the kh consecutive
rows R[i*sh + a]: a contiguous block of R that BLAS reads in place. The
copy is kw (not kh*kw) times the input, a block of t output rows is one
strided view of R and one batched ``np.matmul`` (:func:`_window_matrix_blocks`),
and the weight gradient reuses R from the forward pass. With stride and
dilation 1 along H the input gradient is one product per input row with
kh consecutive rows of dy, folded along W (:func:`_input_job_by_rows`).
The blocks depend on the shapes alone and run on :mod:`strided._parallel`'s
threads, so results are bit-identical for any number of threads.

Why each choice, and what it measured: docs/algorithms.md, "window_rows";
docs/performance.md, "What made it fast".
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

from .. import _memory, _parallel
from ..geometry import Window
from ..windows import fold, pad, to_batch_last, window_view
from .base import ConvAlgorithm

# Bytes of a product's right operand (K rows by a piece of the columns), at most: OpenBLAS slows down beyond
# (docs/algorithms.md, "Measurements behind the code").
CHUNK_BYTES = 192 * 1024
# Bytes of window-matrix gradient per chunk of the input gradient.
FOLD_BYTES = 4 * 2**20
def window_matrix(x, geom):
    """cols: (N, G, Cg*kh*kw, OH*OW), every window of the padded x: (N, C, H, W), contiguous.

    The whole window matrix, batch first, one image at a time: what im2col
    builds (write-up 001), shown by :mod:`strided.viz.im2col`. The algorithm
    itself never materialises it (see the module docstring).
    """
    win = geom.window
    v = window_view(pad(x, geom.padding), win)             # (N, C, OH, OW, kh, kw) view
    n, c = x.shape[:2]
    cols = np.ascontiguousarray(v.transpose(0, 1, 4, 5, 2, 3))
    k = (c // geom.groups) * win.kernel[0] * win.kernel[1]
    return cols.reshape(n, geom.groups, k, win.out_height * win.out_width)


class _Rows:
    """The window-row layout of one geometry: which rows of R the output rows use, and the W-only window.

    R: (G, dh*Q, Cg*kw*OW*N) with input row h = q*dh + r stored at r*Q + q,
    Q = ceil(Hp / dh) (the padded input gets dh*Q - Hp extra zero rows at the
    bottom, which no window reads). Output row i uses the kh rows starting
    at ``start[i]``.
    """

    def __init__(self, geom):
        win = geom.window
        (kh, kw), (sh, sw), (dh, dw) = win.kernel, win.stride, win.dilation
        self.q = -(-win.padded_height // dh)
        self.padding = (win.padding[0], win.padding[1] + dh * self.q - win.padded_height, *win.padding[2:])
        self.start = [(i * sh) % dh * self.q + (i * sh) // dh for i in range(win.out_height)]
        # the window along W only: kernel (1, kw) over every (padded) input row
        self.window = Window(dh * self.q, win.padded_width, (1, kw), (1, sw), (0, 0, 0, 0), (1, dw),
                             dh * self.q, win.out_width)
        self.k = geom.in_channels // geom.groups * kh * kw       # rows of one product: (a, c, b)
        self.cols = win.out_width * geom.batch                    # columns of one output row: (j, n)


@functools.lru_cache(maxsize=256)
def _rows(geom) -> _Rows:
    """The window-row layout of ``geom``, computed once per geometry (a layer sees the same one every step)."""
    return _Rows(geom)


def window_source(x, geom, rows: _Rows) -> np.ndarray:
    """(G, dh, Q, Cg, kw, OW, N): every window row of the padded x, a view (the padding is the one copy).

    Element ``[g, r, q, c, b, j, n]`` is ``xp[n, g*Cg + c, q*dh + r, j*sw + b*dw]``:
    row ``r*Q + q`` of R (see ``_Rows``) is ``[:, r, q]`` flattened.
    """
    n, c, _, w = x.shape
    g, dh = geom.groups, geom.window.dilation[0]
    hq, wp = dh * rows.q, w + rows.padding[2] + rows.padding[3]
    # a C-ordered x is transposed to batch-last first, in cache-sized tiles: copying it straight into the
    # batch-last padded array reads one number from each image in turn (a 128x16x32x32 input: 4x slower)
    x = to_batch_last(x)
    if any(rows.padding):
        xp = _memory.empty((n, c, hq, wp), x.dtype, batch_last=True)
        pad(x, rows.padding, out=xp)
    else:
        xp = x
    v = window_view(xp, rows.window)[:, :, :, :, 0]                    # (N, C, Hq, OW, kw) view
    ow, kw = v.shape[3:]
    return v.reshape(n, g, c // g, rows.q, dh, ow, kw).transpose(1, 4, 3, 2, 6, 5, 0)


def copy_rows(v: np.ndarray, rows: _Rows, lo: int, hi: int) -> np.ndarray:
    """Rows lo..hi-1 of R, copied out of ``window_source``'s view: (G, hi - lo, Cg*kw*OW*N), contiguous.

    The rows must lie in one residue class mod dh (always true for dh = 1;
    with dh > 1 the whole of R is copied, one residue class at a time).
    """
    g = v.shape[0]
    if hi - lo > rows.q:                     # all of R: each residue class in turn
        r = _memory.empty((g * (hi - lo) * (v[0, 0, 0].size),), v.dtype).reshape(g, hi - lo, -1)
        for res in range(v.shape[1]):
            np.copyto(r[:, res * rows.q:(res + 1) * rows.q].reshape(v[:, res].shape), v[:, res])
        return r
    res, q0 = divmod(lo, rows.q)
    part = v[:, res, q0:q0 + hi - lo]                                   # (G, t, Cg, kw, OW, N)
    r = _memory.empty((part.size,), v.dtype)
    np.copyto(r.reshape(part.shape), part)
    return r.reshape(g, hi - lo, -1)


# Blocks of output rows in the forward pass and the weight gradient, at most.
ROW_BLOCKS = 4
# Each block copies the rows of R it reads: neighbouring blocks both copy the kh - sh rows they share.
# Fewer blocks, as long as the copies would grow by more than this fraction of R.
MAX_COPY_GROWTH = 0.35
# Columns of one product at most and at least: OpenBLAS multiplies thin matrices fastest in between
# (docs/algorithms.md, "Measurements behind the code").
MAX_COLUMNS = 4096
MIN_COLUMNS = 256


def column_pieces(total: int, k: int, itemsize: int) -> tuple[slice, ...]:
    """Pieces of the ``total`` columns of products with K = ``k``: CHUNK_BYTES of operand, within the bounds above."""
    return _column_pieces(total, k, itemsize, CHUNK_BYTES, MIN_COLUMNS, MAX_COLUMNS)


@functools.lru_cache(maxsize=256)
def _column_pieces(total, k, itemsize, chunk_bytes, min_columns, max_columns) -> tuple[slice, ...]:
    width = max(1, min(max_columns, max(min_columns, chunk_bytes // (k * itemsize))))
    return tuple(_parallel.even_split(total, -(-total // width)))


class RowPlan(NamedTuple):
    """How the forward pass and the weight gradient cut their work (see :func:`row_plan`)."""

    blocks: tuple          # (output rows, first row of R, last row of R + 1) per block
    pieces: tuple          # column pieces of one product
    shared: bool           # True: one copy of all of R serves every block (dilation dh > 1)


def row_plan(geom, itemsize: int) -> RowPlan:
    """The blocks of output rows of the forward pass and the weight gradient, and each product's column pieces.

    A block of rows is one chunk of work for the threads: it copies the
    rows of R it reads (:func:`copy_rows`) while they are in its core's cache,
    then makes one batched product over stacked views of them (see
    :func:`_window_matrix_blocks`) per column piece. There are up to ``ROW_BLOCKS``
    blocks, as even as can be, fewer when the rows that neighbouring blocks
    both copy would grow the copy by more than ``MAX_COPY_GROWTH`` (LeNet-5's
    conv2, 10 output rows of a 5x5 kernel: two blocks), and an even number
    from three on, so that two threads get the same share. A row's columns
    are cut into even pieces of about ``CHUNK_BYTES`` of R
    (:func:`column_pieces`). With a dilation dh > 1 consecutive
    output rows are not evenly spaced in R: R is copied once, whole, and
    each block is one row.
    """
    return _row_plan(geom, itemsize, CHUNK_BYTES, MIN_COLUMNS, MAX_COLUMNS, ROW_BLOCKS, MAX_COPY_GROWTH)


@functools.lru_cache(maxsize=256)
def _row_plan(geom, itemsize, chunk_bytes, min_columns, max_columns, row_blocks, max_growth) -> RowPlan:
    rows, win = _rows(geom), geom.window
    pieces = _column_pieces(rows.cols, rows.k, itemsize, chunk_bytes, min_columns, max_columns)
    oh, kh, sh = win.out_height, win.kernel[0], win.stride[0]
    if win.dilation[0] > 1:
        hq = win.dilation[0] * rows.q
        return RowPlan(tuple((slice(i, i + 1), 0, hq) for i in range(oh)), pieces, True)
    shared_rows = max(0, kh - sh)
    most = row_blocks if shared_rows == 0 else 1 + int(max_growth * win.padded_height / shared_rows)
    count = max(1, min(row_blocks, most, oh))
    if count > 2 and count % 2:
        count -= 1          # an even number: two threads finish together
    blocks = _parallel.even_split(oh, count)
    return RowPlan(tuple((rs, rows.start[rs.start], rows.start[rs.stop - 1] + kh) for rs in blocks), pieces, False)


def _rows_for_block(v, rows: _Rows, plan: RowPlan, k: int, whole=None) -> tuple[np.ndarray, int]:
    """``(r, base)``: block k's rows of R from row ``base`` on: its own copy, or ``whole`` (all of R) from row 0."""
    _, lo, hi = plan.blocks[k]
    if whole is not None:
        return whole, 0
    return copy_rows(v, rows, lo, hi), lo


def _whole_rows(v, geom, rows: _Rows, plan: RowPlan):
    """All of R, copied once out of ``window_source``'s view v, when the blocks will share it (else None).

    They share it when R's rows are not evenly spaced (dilation dh > 1) and
    when the blocks will run one after the other in this thread: then the
    rows that neighbouring blocks both read are copied once. Which copy a block reads changes no result.
    """
    if plan.shared or _parallel.runs_inline(len(plan.blocks), blas=True, macs=_macs(geom)):
        return copy_rows(v, rows, 0, geom.window.dilation[0] * rows.q)
    return None


def _window_matrix_blocks(r: np.ndarray, geom, rows: slice, base: int, split_kernel_rows: bool = False) -> np.ndarray:
    """The window-matrix blocks of output rows ``rows``: (t, G, K, OW*N), stacked views of R (no copy).

    ``r`` holds the rows of R from ``base`` on. Output row i reads the kh
    rows of R from ``start[i]``; consecutive rows start ``sh`` rows apart
    (dh = 1), so t blocks are one strided view whose first axis steps by sh
    rows of R: the blocks overlap, which a view allows. With
    ``split_kernel_rows`` the kh rows of each block get an axis of their
    own in front: (kh, t, G, Cg*kw, OW*N).
    """
    info = _rows(geom)
    t = rows.stop - rows.start
    g, _, m = r.shape
    isz = r.itemsize
    step = geom.stride[0] * m if t > 1 else 0
    offset = (info.start[rows.start] - base) * m * isz
    # np.ndarray over R's memory: the same view as numpy's as_strided, without its Python-level cost
    if split_kernel_rows:
        kh = geom.kernel[0]
        return np.ndarray((kh, t, g, info.k // kh, info.cols), r.dtype, buffer=r, offset=offset,
                          strides=(m * isz, step * isz, r.strides[0], info.cols * isz, isz))
    return np.ndarray((t, g, info.k, info.cols), r.dtype, buffer=r, offset=offset,
                      strides=(step * isz, r.strides[0], info.cols * isz, isz))


def _weights(w, geom) -> np.ndarray:
    """w: (O, Cg, kh, kw) as (G, Og, K) with K ordered (a, c, b), the order of the window rows."""
    g = geom.groups
    o, cg, kh, kw = w.shape
    return np.ascontiguousarray(w.reshape(g, o // g, cg, kh, kw).transpose(0, 1, 3, 2, 4)).reshape(g, o // g, -1)


class WindowRows(ConvAlgorithm):
    """The default algorithm: window rows of the batch-last padded input, BLAS products over blocks of rows.

    x: (N, C, H, W), w: (C_out, C_in/groups, kh, kw), y and dy: (N, C_out,
    OH, OW); y and dx come back with batch-last memory. Fuses the bias into
    the forward pass and computes both gradients in one call to the thread
    pool (the ``_forward_with_bias`` and ``_backward`` hooks of
    :class:`~strided.conv.base.ConvAlgorithm`); see the module docstring.
    """

    name = "window_rows"

    def workspace_per_image(self, geom, dtype):
        """The window matrix of one image: what im2col would hold for it.

        The window rows R are kw (not kh*kw) times the input, so this
        overstates the real workspace: the workspace limit then splits very
        large batches a little early (see :func:`strided.conv.set_workspace_limit`).
        """
        win = geom.window
        return geom.in_channels * win.kernel[0] * win.kernel[1] * win.out_height * win.out_width * dtype.itemsize

    # ---- forward -----------------------------------------------------------------
    def _forward_with_bias(self, x, w, geom, bias):
        """y: (N, C_out, OH, OW) with batch-last memory; each block of output rows adds the bias to its rows."""
        rows = _rows(geom)
        v = window_source(x, geom, rows)                                 # (G, dh, Q, Cg, kw, OW, N) view
        g = geom.groups
        wm = _weights(w, geom)                                           # (G, Og, K)
        y = _memory.empty(geom.y_shape, x.dtype, batch_last=True).transpose(1, 2, 3, 0)   # (O, OH, OW, N)
        y4 = y.reshape(g, wm.shape[1], geom.window.out_height, rows.cols)   # (G, Og, OH, OW*N)
        plan = row_plan(geom, x.dtype.itemsize)
        whole = _whole_rows(v, geom, rows, plan)
        saved = [None] * len(plan.blocks)
        b4 = None if bias is None else bias.reshape(g, -1, 1, 1)

        def chunk(k):
            rs = plan.blocks[k][0]
            r, base = saved[k] = _rows_for_block(v, rows, plan, k, whole)
            blocks = _window_matrix_blocks(r, geom, rs, base)                 # (t, G, K, OW*N): views of R
            for cols in plan.pieces:
                out = y4[:, :, rs, cols].transpose(2, 0, 1, 3)                 # (t, G, Og, P): a view of y
                np.matmul(wm, blocks[..., cols], out=out)                      # t products, one call
            if b4 is not None:
                y4[:, :, rs] += b4           # the block's outputs, while they are in this core's cache

        _parallel.map_chunks(chunk, len(plan.blocks), blas=True, macs=_macs(geom))
        return y.transpose(3, 0, 1, 2), tuple(saved)

    # ---- weight gradient ------------------------------------------------------------
    def _weight_job(self, dy, x, geom, saved, with_bias):
        """``(chunks, chunk, finish)`` of the weight gradient: ``finish(parts)`` gives ``(dw, db)``.

        ``saved`` is what the forward pass returned: each block's rows of R
        and the first row they hold. Without it they are copied again.
        """
        rows = _rows(geom)
        plan = row_plan(geom, x.dtype.itemsize)
        if saved is None:
            v = window_source(x, geom, rows)
            whole = _whole_rows(v, geom, rows, plan)
        g, kh = geom.groups, geom.kernel[0]
        o, og, cg = geom.out_channels, geom.out_channels // g, geom.in_channels // g
        dym = _batch_last_matrix(dy)                                     # (O, OH, OW, N)
        d4 = dym.reshape(g, og, geom.window.out_height, rows.cols)
        by_kernel_row = _by_kernel_row(rows.k // kh, og)

        def chunk(k):
            rs = plan.blocks[k][0]
            r, base = saved[k] if saved is not None else _rows_for_block(v, rows, plan, k, whole)
            # by kernel row: (kh, t, G, Cg*kw, OW*N), kernel row a of output row i one row of R, the t products
            # summed over axis 1; else (t, G, K, OW*N), summed over axis 0. Rows in order, then pieces.
            blocks = _window_matrix_blocks(r, geom, rs, base, split_kernel_rows=by_kernel_row)
            total = None
            for cols in plan.pieces:
                d = d4[:, :, rs, cols].transpose(2, 0, 3, 1)                   # (t, G, P, Og)
                # (K, P) @ (P, Og): the long P axis contiguous in both operands
                part = np.matmul(blocks[..., cols], d).sum(axis=1 if by_kernel_row else 0)
                if total is None:
                    total = part
                else:
                    total += part
            if by_kernel_row:                                                  # (kh, G, Cg*kw, Og)
                total = total.transpose(1, 0, 2, 3).reshape(g, -1, og)
            return total                                                       # (G, K, Og), K = (a, c, b)

        def finish(parts):
            total = parts[0]
            for p in parts[1:]:                 # in chunk order: the same sum on any number of threads
                total += p
            # K is ordered (a, c, b): back to (O, Cg, kh, kw)
            dw = total.transpose(0, 2, 1).reshape(g, og, kh, cg, -1).transpose(0, 1, 3, 2, 4)
            dw = np.ascontiguousarray(dw).reshape(geom.weight_shape)
            # the bias gradient as one pairwise sum per contiguous row (a row of ones in the product above
            # would add its thousands of terms one after the other, losing float32 digits)
            db = dym.reshape(o, -1).sum(axis=1) if with_bias else None
            return dw, db

        return len(plan.blocks), chunk, finish

    # ---- both gradients ---------------------------------------------------------------
    def _backward(self, dy, x, w, geom, saved, need_x, need_weight, need_bias):
        """Both gradients' chunks in one call to the thread pool; the bias gradient with the weight gradient's.

        One call instead of two saves a hand-over between the threads and
        lets the chunks of one gradient fill the time the other's leave idle.
        """
        dy = to_batch_last(dy)          # once for both jobs (a no-op on the batch-last gradients layers pass)
        jobs = []
        if need_x:
            jobs.append(self._input_job(dy, w, geom, saved))      # the longer chunks first: they start early
        if need_weight:
            jobs.append(self._weight_job(dy, x, geom, saved, need_bias))
        results = _run_jobs(jobs, geom)
        dx = results.pop(0) if need_x else None
        dw, db = results.pop(0) if need_weight else (None, None)
        if need_bias and db is None:
            db = _batch_last_matrix(dy).reshape(geom.out_channels, -1).sum(axis=1)
        return dx, dw, db

    # ---- input gradient ---------------------------------------------------------------
    def _input_job(self, dy, w, geom, saved):
        """``(chunks, chunk, finish)`` of the input gradient: ``finish(parts)`` gives dx."""
        if geom.stride[0] == 1 and geom.dilation[0] == 1:
            return _input_job_by_rows(dy, w, geom)
        win, rows = geom.window, _rows(geom)
        g, n, c = geom.groups, geom.batch, geom.in_channels
        cg, og = c // g, geom.out_channels // g
        (kh, kw), dh = win.kernel, win.dilation[0]
        w5 = _weights(w, geom).reshape(g, og, kh, cg, kw)
        d4 = _batch_last_matrix(dy).reshape(g, og, win.out_height, rows.cols)   # (G, Og, OH, OW*N)
        dr = _memory.empty((g * dh * rows.q * cg * kw * rows.cols,), dy.dtype).reshape(g, dh * rows.q, cg, -1)
        hq, wp = dh * rows.q, win.padded_width
        dxp = _memory.empty((n, c, hq, wp), dy.dtype, batch_last=True)       # (N, C, Hq, Wp) view, batch-last
        dxp5 = dxp.reshape(n, g, cg, hq, wp)
        blocks = _gradient_blocks(geom, rows, dy.dtype.itemsize)
        sh = win.stride[0]

        def chunk(k):
            gs, cs = blocks[k]
            gb, cb = gs.stop - gs.start, cs.stop - cs.start
            wt = np.ascontiguousarray(w5[gs, :, :, cs].reshape(gb, og, -1).transpose(0, 2, 1))   # (gb, kh*cb*kw, Og)
            part = dr[gs, :, cs]                                                 # (gb, dh*Q, cb, kw*OW*N)
            part[...] = 0
            # as many output rows per product as FOLD_BYTES of dcols allow (dilation dh > 1: one at a time,
            # their rows of R are not evenly spaced); the blocks run in order, so their additions may overlap
            per_row = gb * wt.shape[1] * rows.cols * dy.itemsize
            t_max = max(1, FOLD_BYTES // per_row) if dh == 1 else 1
            for rs in _parallel.split(win.out_height, t_max):
                t, s0 = rs.stop - rs.start, rows.start[rs.start]
                dcols = _memory.scratch(t * gb * wt.shape[1] * rows.cols * dy.itemsize, dy.dtype)
                dcols = dcols.reshape(t, gb, kh, cb, -1)
                np.matmul(wt, d4[gs, :, rs].transpose(2, 0, 1, 3), out=dcols.reshape(t, gb, -1, rows.cols))
                for a in range(kh):
                    # tap a of output rows i, i+1, ... lands on rows s0 + a, s0 + a + sh, ...: distinct rows,
                    # so one strided addition per tap
                    stop = s0 + a + sh * (t - 1) + 1
                    part[:, s0 + a:stop:sh] += dcols[:, :, a].transpose(1, 0, 2, 3)
            # fold along W, one residue of the rows mod dh at a time (rows r*Q + q hold input row q*dh + r)
            for res in range(dh):
                dwin = part[:, res * rows.q:(res + 1) * rows.q].reshape(gb, rows.q, cb, kw, win.out_width, n)
                dwin = dwin.transpose(5, 0, 2, 3, 1, 4)[:, :, :, None]           # (N, gb, cb, 1, kw, Q, OW)
                fold(dwin, _residue_window(rows), out=dxp5[:, gs, cs, res::dh])

        top, _, left, _ = geom.padding
        return len(blocks), chunk, lambda parts: dxp[:, :, top:top + win.height, left:left + win.width]


def _run_jobs(jobs, geom) -> list:
    """Run the chunks of several ``(chunks, chunk, finish)`` jobs in one call to the pool; their results."""
    calls = [(fn, i) for n, fn, _ in jobs for i in range(n)]
    parts = _parallel.map_chunks(lambda k: calls[k][0](calls[k][1]), len(calls), blas=True,
                                 macs=_macs(geom) * len(jobs))
    results, at = [], 0
    for n, _, finish in jobs:
        results.append(finish(parts[at:at + n]))
        at += n
    return results


# The weight gradient makes one product per kernel row, (Cg*kw x P) @ (P x Og), when a row of R has at least
# MIN_KERNEL_ROW_K rows and the product's result at most MAX_KERNEL_ROW_RESULT numbers; else one per output row.
MIN_KERNEL_ROW_K = 16
MAX_KERNEL_ROW_RESULT = 1280


def _by_kernel_row(k: int, og: int) -> bool:
    """Whether the weight gradient's products take one kernel row (k = Cg*kw rows of R) at a time.

    OpenBLAS multiplies (K x P) @ (P x O) fastest while K*O stays within
    about 1,200 numbers (docs/algorithms.md, "Measurements behind the
    code"): a kernel row of LeNet-5's conv2 (30 x 16) gets into that range,
    conv1's (5 x 6) is too thin.
    """
    return k >= MIN_KERNEL_ROW_K and k * og <= MAX_KERNEL_ROW_RESULT


# Blocks of input rows of the input gradient (stride and dilation 1 along H), at most.
INPUT_ROW_BLOCKS = 4


def _input_job_by_rows(dy, w, geom):
    """The input gradient along H as products, along W as a fold (stride and dilation 1 along H).

    Input row h collects kernel row a of every output row i = h - a, so its
    window rows are, with the kernel turned upside down (a' = kh-1-a),

        dR[h, (c, b), (j, n)] = sum_{a', o} w[o, c, kh-1-a', b] * dy[o, h-kh+1+a', (j, n)]

    one product whose right operand is kh consecutive rows of dy, stored
    row-major as (OH, O, OW*N): interior rows (all kh kernel rows inside dy)
    are stacked overlapping views of it, one batched product, and the rows
    near the top and bottom use the kernel rows that fall inside dy only.
    Then kw strided additions fold dR along W into dx. Against the route
    through the window matrix (dcols = W.T @ dy, then kh + kw additions)
    there is no window-matrix gradient to write and read back.
    Each chunk is a block of input rows: its rows of dR and of dx.
    """
    win = geom.window
    g, n, c = geom.groups, geom.batch, geom.in_channels
    cg, og = c // g, geom.out_channels // g
    kh, kw = win.kernel
    oh, ow = win.out_height, win.out_width
    cols = ow * n
    hp, wp = win.padded_height, win.padded_width
    dyr = _memory.empty((g, oh, og, cols), dy.dtype)                      # (G, OH, Og, OW*N)
    np.copyto(dyr, _batch_last_matrix(dy).reshape(g, og, oh, cols).transpose(0, 2, 1, 3))
    # wt[g, (c, b), (a', o)] = w[o, c, kh-1-a', b]
    wt = np.ascontiguousarray(w.reshape(g, og, cg, kh, kw)[:, :, :, ::-1, :].transpose(0, 2, 4, 3, 1))
    wt = wt.reshape(g, cg * kw, kh * og)
    dr = _memory.empty((g, hp, cg * kw, cols), dy.dtype)
    dxp = _memory.empty((n, c, hp, wp), dy.dtype, batch_last=True)       # (N, C, Hp, Wp), batch-last
    dxp5 = dxp.reshape(n, g, cg, hp, wp)
    blocks = _parallel.even_split(hp, INPUT_ROW_BLOCKS)
    pieces = column_pieces(cols, kh * og, dyr.itemsize)
    step = og * cols * dyr.itemsize
    # the W-only window over the rows of each block: what ``fold`` walks
    fold_windows = [Window(b.stop - b.start, wp, (1, kw), (1, win.stride[1]), (0, 0, 0, 0), (1, win.dilation[1]),
                           b.stop - b.start, ow) for b in blocks]

    def chunk(k):
        hs = blocks[k]
        lo, hi = max(hs.start, kh - 1), min(hs.stop, oh)       # interior rows: h - kh + 1 >= 0 and h <= OH - 1
        if hi > lo:
            # rows lo..hi-1 read dy rows from lo-kh+1 on, one row further each: one strided view
            stack = np.ndarray((hi - lo, g, kh * og, cols), dyr.dtype, buffer=dyr, offset=(lo - kh + 1) * step,
                               strides=(step, dyr.strides[0], cols * dyr.itemsize, dyr.itemsize))
            out = dr[:, lo:hi].transpose(1, 0, 2, 3)
            for p in pieces:
                np.matmul(wt, stack[..., p], out=out[..., p])
        for h in range(hs.start, hs.stop):
            if lo <= h < hi:
                continue
            i0, i1 = max(0, h - kh + 1), min(oh - 1, h)           # the output rows that reach row h
            if i1 < i0:
                dr[:, h] = 0
                continue
            a0 = kh - 1 - h + i0
            wa, rows_in = wt[:, :, a0 * og:(a0 + i1 - i0 + 1) * og], dyr[:, i0:i1 + 1].reshape(g, -1, cols)
            for p in pieces:
                np.matmul(wa, rows_in[..., p], out=dr[:, h, :, p])
        t = hs.stop - hs.start
        part = dr[:, hs].reshape(g, t, cg, kw, ow, n).transpose(5, 0, 2, 3, 1, 4)[:, :, :, None]
        fold(part, fold_windows[k], out=dxp5[:, :, :, hs])

    top, _, left, _ = geom.padding
    return len(blocks), chunk, lambda parts: dxp[:, :, top:top + win.height, left:left + win.width]


def _residue_window(rows: _Rows) -> Window:
    """The W-only window over the Q rows of one residue class (what ``fold`` walks for the input gradient)."""
    w = rows.window
    return Window(rows.q, w.width, w.kernel, w.stride, w.padding, w.dilation, rows.q, w.out_width)


def _gradient_blocks(geom, rows: _Rows, itemsize: int) -> list[tuple[slice, slice]]:
    """``(groups, channels)`` blocks of the input gradient: each chunk owns its channels of dR and dxp.

    One group: blocks of its channels, at least two when there are two
    channels (for two threads), at most ``FOLD_BYTES`` of products each.
    Several groups: blocks of whole groups.
    """
    g, cg = geom.groups, geom.in_channels // geom.groups
    kh, kw = geom.kernel
    per_channel = kh * kw * rows.cols * itemsize
    if g == 1:
        step = max(1, min(-(-cg // 2), FOLD_BYTES // per_channel))
        return [(slice(0, 1), cs) for cs in _parallel.split(cg, step)]
    step = max(1, min(-(-g // 2), FOLD_BYTES // (per_channel * cg)))
    return [(gs, slice(0, cg)) for gs in _parallel.split(g, step)]


def _macs(geom) -> int:
    """Multiply-adds of each of the three products."""
    win = geom.window
    return (geom.batch * geom.out_channels * win.out_height * win.out_width
            * geom.in_channels // geom.groups * win.kernel[0] * win.kernel[1])


def _batch_last_matrix(a: np.ndarray) -> np.ndarray:
    """a: (N, C, H, W) as a contiguous (C, H, W, N) array; no copy when its memory is already batch-last."""
    return to_batch_last(a).transpose(1, 2, 3, 0)
