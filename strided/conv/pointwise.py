"""``pointwise``: a 1x1 convolution as one matrix product per pass, no window copies.

With a 1x1 kernel and no padding every output pixel reads one input pixel,
so the window matrix of im2col is the input itself (with a stride, its
pixels i*sh, j*sw). With x held as X: (B, G, Cg, M) and the weights as
Wm: (G, Og, Cg), the three products are

    y  = Wm @ X                              # (B, G, Og, M)
    dx = Wm.T @ dY                           # (B, G, Cg, M)
    dw = sum over B of dY @ X.T              # (G, Og, Cg)

in either memory order of x, without copying it: batch-last x (memory
(C, H, W, N), what every strided convolution returns) is X with B = 1 and
M = H*W*N; C-ordered x (N, C, H, W) is X with B = N and M = H*W. The output
and the input gradient keep x's memory order. A stride > 1 first copies
the pixels the windows read (a 1/(sh*sw) share of x), and the input
gradient is zero elsewhere.

The columns are cut into pieces of at most ``CHUNK_BYTES`` of right operand
(:func:`strided.conv.window_rows.column_pieces`, where OpenBLAS is fastest),
the pieces grouped into blocks that run on :mod:`strided._parallel`'s
threads; the blocks depend on the shapes alone and the weight gradient's
partial sums are added in block order, so results are bit-identical for
any number of threads. Measured: docs/performance.md, "Whole networks".
"""
from __future__ import annotations

import functools

import numpy as np

from .. import _memory, _parallel
from ..windows import is_batch_last, to_batch_last
from .base import ConvAlgorithm
from .window_rows import column_pieces

# Blocks of column pieces per call to the thread pool, at most.
BLOCKS = 4


def _crop(geom) -> tuple[slice, slice]:
    """The rows and columns of x that the 1x1 windows read: every sh-th row, every sw-th column."""
    win = geom.window
    (sh, sw) = win.stride
    return slice(0, (win.out_height - 1) * sh + 1, sh), slice(0, (win.out_width - 1) * sw + 1, sw)


def _strided(geom) -> bool:
    win = geom.window
    return win.stride != (1, 1) and (win.out_height, win.out_width) != (win.height, win.width)


def _as_matrix(a: np.ndarray, groups: int, batch_last: bool, pick=None) -> np.ndarray:
    """a: (N, C, H, W) as (B, G, Cg, M) in the given memory order, a view when a already has it.

    ``pick`` (rows, columns) keeps those pixels only (a stride): then a copy.
    """
    if pick is not None:
        part = a[:, :, pick[0], pick[1]]
        out = _memory.empty(part.shape, a.dtype, batch_last=batch_last)
        np.copyto(out, part)
        a = out
    n, c, h, w = a.shape
    if batch_last:
        return to_batch_last(a).transpose(1, 2, 3, 0).reshape(1, groups, c // groups, h * w * n)
    return np.ascontiguousarray(a).reshape(n, groups, c // groups, h * w)


@functools.lru_cache(maxsize=256)
def _blocks(b: int, m: int, k: int, itemsize: int) -> tuple[tuple[tuple[slice, slice], ...], ...]:
    """The pieces ``(images, columns)`` of X: (B, G, K, M), grouped into at most ``BLOCKS`` blocks.

    A piece is one product: a column piece of one image's M columns, or,
    when M is narrower than a piece, several whole images in one batched
    product.
    """
    cols = column_pieces(m, k, itemsize)
    width = cols[0].stop - cols[0].start
    if len(cols) > 1 or b == 1:
        pieces = [(slice(i, i + 1), c) for i in range(b) for c in cols]
    else:
        pieces = [(bs, slice(0, m)) for bs in _parallel.split(b, max(1, width // m))]
    return tuple(tuple(pieces[s]) for s in _parallel.even_split(len(pieces), min(BLOCKS, len(pieces))))


def _macs(geom) -> int:
    win = geom.window
    return geom.batch * geom.out_channels * win.out_height * win.out_width * (geom.in_channels // geom.groups)


class Pointwise(ConvAlgorithm):
    """1x1 convolutions without padding: one matrix product per pass, over x in its own memory order.

    x: (N, C_in, H, W), w: (C_out, C_in/groups, 1, 1), y and dy: (N, C_out,
    OH, OW); y and dx keep x's memory order (batch-last or C-ordered).
    ``saved`` is x as the matrix X (see the module docstring).
    """

    name = "pointwise"

    def supports(self, geom, dtype):
        if geom.kernel != (1, 1):
            return f"needs a 1x1 kernel, got {geom.kernel[0]}x{geom.kernel[1]}"
        if any(geom.padding):
            return f"needs no padding, got {geom.padding}"
        return None

    def _forward_with_bias(self, x, w, geom, bias):
        g = geom.groups
        batch_last = is_batch_last(x)
        xm = _as_matrix(x, g, batch_last, _crop(geom) if _strided(geom) else None)     # (B, G, Cg, M)
        wm = w.reshape(g, -1, xm.shape[2])                                              # (G, Og, Cg)
        y = _memory.empty(geom.y_shape, x.dtype, batch_last=batch_last)
        ym = _as_matrix(y, g, batch_last)                                               # a view of y
        b3 = None if bias is None else bias.reshape(g, -1, 1)
        blocks = _blocks(xm.shape[0], xm.shape[3], xm.shape[2], x.itemsize)

        def chunk(k):
            for bs, cs in blocks[k]:
                out = ym[bs, :, :, cs]
                np.matmul(wm, xm[bs, :, :, cs], out=out)
                if b3 is not None:
                    out += b3

        _parallel.map_chunks(chunk, len(blocks), blas=True, macs=_macs(geom))
        return y, (xm, batch_last)

    def _backward(self, dy, x, w, geom, saved, need_x, need_weight, need_bias):
        """Both gradients' blocks in one call to the pool; dy is taken in x's memory order."""
        g = geom.groups
        if saved is not None:
            xm, batch_last = saved
        else:
            batch_last = is_batch_last(x if x is not None else dy)
            xm = None
            if need_weight:
                xm = _as_matrix(x, g, batch_last, _crop(geom) if _strided(geom) else None)
        dym = _as_matrix(dy, g, batch_last)                                            # (B, G, Og, M)
        og, cg = geom.out_channels // g, geom.in_channels // g
        jobs = []
        if need_x:
            wt = np.ascontiguousarray(w.reshape(g, og, cg).transpose(0, 2, 1))        # (G, Cg, Og)
            if _strided(geom):
                dxm = _memory.empty((dym.shape[0], g, cg, dym.shape[3]), dy.dtype)
            else:
                dx = _memory.empty(geom.x_shape, dy.dtype, batch_last=batch_last)
                dxm = _as_matrix(dx, g, batch_last)
            in_blocks = _blocks(dym.shape[0], dym.shape[3], og, dy.itemsize)

            def input_chunk(k):
                for bs, cs in in_blocks[k]:
                    np.matmul(wt, dym[bs, :, :, cs], out=dxm[bs, :, :, cs])
            jobs += [(input_chunk, k) for k in range(len(in_blocks))]
        if need_weight:
            w_blocks = _blocks(xm.shape[0], xm.shape[3], cg, dy.itemsize)

            def weight_chunk(k):
                total = None
                for bs, cs in w_blocks[k]:
                    # (Og, P) @ (P, Cg) per image, summed over the images of the piece
                    part = np.matmul(dym[bs, :, :, cs], xm[bs, :, :, cs].transpose(0, 1, 3, 2)).sum(axis=0)
                    if total is None:
                        total = part
                    else:
                        total += part
                return total
            first_weight = len(jobs)
            jobs += [(weight_chunk, k) for k in range(len(w_blocks))]
        parts = _parallel.map_chunks(lambda k: jobs[k][0](jobs[k][1]), len(jobs), blas=True,
                                     macs=_macs(geom) * (need_x + need_weight))
        dx_out = dw = db = None
        if need_x:
            dx_out = _spread(dxm, geom, batch_last, dy.dtype) if _strided(geom) else dx
        if need_weight:
            total = parts[first_weight]
            for p in parts[first_weight + 1:]:         # in block order: the same sum on any number of threads
                total += p
            dw = total.reshape(geom.weight_shape)
        if need_bias:
            # one pairwise sum per contiguous row, then over the images
            db = dym.sum(axis=3).sum(axis=0).reshape(-1)
        return dx_out, dw, db


def _spread(dxm, geom, batch_last, dtype):
    """The input gradient of a strided 1x1 convolution: dxm (B, G, Cg, M) at the pixels read, zero elsewhere."""
    n, c, h, w = geom.x_shape
    oh, ow = geom.window.out_height, geom.window.out_width
    dx = _memory.empty(geom.x_shape, dtype, batch_last=batch_last)
    dx[...] = 0
    rows, cols = _crop(geom)
    if batch_last:
        compact = dxm.reshape(c, oh, ow, n).transpose(3, 0, 1, 2)
    else:
        compact = dxm.reshape(n, c, oh, ow)
    dx[:, :, rows, cols] = compact
    return dx
