"""``strided``: the fast default. Strided views, one copy per chunk, BLAS matrix products.

Seeds 000 (windows without Python loops), 001 and 004 (im2col turns the
convolution into a matrix product). ``window_view`` exposes every window of
the padded input as a view at zero cost; copying it lays out the window
matrix, with K = Cg*kh*kw rows per group and one column per output pixel
and image,

    cols[(c, a, b), (i, j, n)] = xp[n, c, i*sh + a*dh, j*sw + b*dw]

and the three products are matrix products with the weights viewed as
wm: (G, Og, K):

    y     = wm @ cols                       # (O, OH*OW*N)
    dw    = dy @ cols.T                     # computed as cols @ dy.T: (K, O)
    dcols = wm.T @ dy  ->  fold             # col2im: kh*kw strided-slice adds

**Batch last.** The images are the innermost axis of every array the
algorithm touches: the padded input xp: (C, Hp, Wp, N), the output
(O, OH, OW, N). A window row is then a contiguous run of OW*N numbers,
so copying windows and folding gradients move long runs, and each product
is one BLAS call over all the images of the batch instead of one small call
per image. The results are returned as (N, C, H, W) arrays whose memory is
batch-last (``strided.windows.to_batch_last``), the way torch's
``channels_last`` keeps a tensor's shape: element-wise layers and pooling
keep that memory order, so the next convolution finds its input laid out
already. Measured on the LeNet-5 layers (batch 128, one thread): the
window copy is 2.4x (conv1) to 5.5x (conv2) faster than batch-first.

**Chunks.** The window matrix is kh*kw times the size of the input, too
big for the cache, and OpenBLAS multiplies such thin matrices at a third
of its speed once they leave it. So it is never built whole: each chunk of
output pixels (whole rows, or part of a row) copies its block of columns
into a per-thread workspace of about 384 KiB and multiplies it straight
into its block of y, at BLAS's full speed. The weight gradient rebuilds the
same blocks from the saved padded input (a copy from cache is cheaper than
keeping the whole matrix) and adds the per-chunk products in chunk order;
the input gradient works on blocks of input channels, each folding into
its own channels of dxp. The chunks depend on the shapes alone and run on
the threads of :mod:`strided._parallel`, so results are bit-identical for
any number of threads.

The bias rides along in the forward product as a row of ones appended to
each block, ``[W | b] @ [cols; 1]`` (``forward(..., bias=b)``), so it
costs no pass of its own; ``grad_weight_and_bias`` returns the bias
gradient with the weight gradient, summed from the batch-last dy.
"""
from __future__ import annotations

import threading

import numpy as np

from .. import _memory, _parallel
from ..windows import fold, pad, to_batch_last, window_view
from .base import ConvAlgorithm, check_operands, grouped

# Bytes of window matrix per chunk: a block, its output and the weights stay in a 1 MiB L2 cache.
CHUNK_BYTES = 384 * 1024
# Bytes of window-matrix gradient per chunk of the input gradient.
FOLD_BYTES = 4 * 2**20

_workspace = threading.local()


# A thread keeps its workspace up to this size; larger requests (huge batches) get a temporary array.
KEEP_SCRATCH_BYTES = 32 * 2**20


def _scratch(nbytes: int, dtype) -> np.ndarray:
    """This thread's reusable workspace, at least ``nbytes`` long, as a flat array of ``dtype``."""
    if nbytes > KEEP_SCRATCH_BYTES:
        return np.empty(nbytes, dtype=np.uint8).view(dtype)
    buf = getattr(_workspace, "buf", None)
    if buf is None or buf.nbytes < nbytes:
        buf = _workspace.buf = np.empty(max(nbytes, CHUNK_BYTES * 2), dtype=np.uint8)
    return buf[:nbytes].view(dtype)


def padded_batch_last(x: np.ndarray, geom) -> np.ndarray:
    """xp: (C, Hp, Wp, N), the zero-padded x: (N, C, H, W) with the batch innermost (contiguous)."""
    n, c, h, w = x.shape
    top, bottom, left, right = geom.padding
    if top == bottom == left == right == 0:
        return _batch_last_matrix(x)
    xp = _memory.empty((n, c, h + top + bottom, w + left + right), x.dtype, batch_last=True)
    pad(x, geom.padding, out=xp)
    return xp.transpose(1, 2, 3, 0)


def _windows(xp: np.ndarray, geom) -> np.ndarray:
    """Every window of xp: (C, Hp, Wp, N) as a view (C, kh, kw, OH, OW, N): the window matrix, uncopied."""
    return window_view(xp.transpose(3, 0, 1, 2), geom.window).transpose(1, 4, 5, 2, 3, 0)


def window_matrix(x, geom):
    """cols: (N, G, Cg*kh*kw, OH*OW), every window of the padded x: (N, C, H, W), contiguous.

    The whole window matrix, batch first, one image at a time: what im2col
    builds (seed 001), shown by :mod:`strided.viz.im2col`. The algorithm
    itself never materialises it (see the module docstring).
    """
    win = geom.window
    v = window_view(pad(x, geom.padding), win)             # (N, C, OH, OW, kh, kw) view
    n, c = x.shape[:2]
    cols = np.ascontiguousarray(v.transpose(0, 1, 4, 5, 2, 3))
    k = (c // geom.groups) * win.kernel[0] * win.kernel[1]
    return cols.reshape(n, geom.groups, k, win.out_height * win.out_width)


def pixel_chunks(geom, itemsize: int) -> list[tuple[slice, slice]]:
    """Blocks of output pixels ``(rows, columns)`` whose window-matrix block is about ``CHUNK_BYTES``.

    Whole rows when one row fits, else pieces of one row (a very large
    batch); the same list for the forward pass and the weight gradient.
    """
    win = geom.window
    oh, ow = win.out_height, win.out_width
    per_pixel = geom.in_channels * win.kernel[0] * win.kernel[1] * geom.batch * itemsize
    pixels = max(1, CHUNK_BYTES // per_pixel)
    if pixels >= ow:
        return [(rows, slice(0, ow)) for rows in _parallel.split(oh, pixels // ow)]
    return [(slice(i, i + 1), cols) for i in range(oh) for cols in _parallel.split(ow, pixels)]


class Strided(ConvAlgorithm):
    name = "strided"
    seed = "000 + 001 + 004 (windows as a strided view, im2col as a matmul, batch last, in chunks)"
    fuses_bias = True    # forward(..., bias=) and grad_weight_and_bias exist

    def workspace_per_image(self, geom, dtype):
        """The window matrix of one image: what the algorithm would hold without chunks.

        Chunks bound the real workspace, but a pixel's block still holds
        K numbers per image, so the workspace limit keeps splitting very
        large batches (see :func:`strided.conv.set_workspace_limit`).
        """
        win = geom.window
        return geom.in_channels * win.kernel[0] * win.kernel[1] * win.out_height * win.out_width * dtype.itemsize

    # ---- forward -----------------------------------------------------------------
    def forward(self, x, w, geom, bias=None):
        """Return ``(y, saved)``; y: (N, C_out, OH, OW), batch-last memory; ``bias``: (C_out,) or None."""
        if bias is None:
            return super().forward(x, w, geom)
        dtype = check_operands(geom, x=x, w=w)
        bias = np.asarray(bias)
        if bias.shape != (geom.out_channels,) or bias.dtype != dtype:
            raise ValueError(f"bias must have shape ({geom.out_channels},) and dtype {dtype}, "
                             f"got shape {bias.shape} and dtype {bias.dtype}")
        if len(self._chunks(geom, dtype)) > 1:       # a batch over the workspace limit: the base class splits it
            y, saved = super().forward(x, w, geom)
            y += bias.reshape(1, -1, 1, 1)
            return y, saved
        return self._forward(x, w, geom, bias)

    def _forward(self, x, w, geom, bias=None):
        xp = padded_batch_last(x, geom)
        v = _windows(xp, geom)
        g = geom.groups
        wm = grouped(w, g)                                              # (G, Og, K)
        if bias is not None:
            # y = [W | b] @ [cols; 1]: the bias rides along in the product
            wm = np.concatenate([wm, bias.reshape(g, -1, 1)], axis=2)   # (G, Og, K + 1)
        y = _memory.empty(geom.y_shape, x.dtype, batch_last=True).transpose(1, 2, 3, 0)   # (O, OH, OW, N)

        def chunk(k):
            rows, cols = chunks[k]
            block = _copy_block(v, rows, cols, g, ones=bias is not None)     # (G, K (+1), P)
            _matmul(wm, block, y[:, rows, cols].reshape(g, wm.shape[1], -1))  # into its (G, Og, P) block of y

        chunks = pixel_chunks(geom, x.dtype.itemsize)
        _parallel.map_chunks(chunk, len(chunks), blas=True, macs=_macs(geom))
        return y.transpose(3, 0, 1, 2), xp

    # ---- weight gradient ------------------------------------------------------------
    def _grad_weight(self, dy, x, geom, saved):
        return self._weight_and_bias(dy, x, geom, saved, False)[0]

    def grad_weight_and_bias(self, dy, x, geom, saved=None):
        """``(dw, db)``: the weight gradient and the bias gradient (dy summed over N, OH, OW) in one pass."""
        dtype = check_operands(geom, dy=dy, x=x)
        if saved is None and len(self._chunks(geom, dtype)) > 1:
            return self.grad_weight(dy, x, geom), dy.sum(axis=(0, 2, 3))
        return self._weight_and_bias(dy, x, geom, saved, True)

    def _weight_and_bias(self, dy, x, geom, saved, with_bias):
        xp = padded_batch_last(x, geom) if saved is None else saved
        v = _windows(xp, geom)
        g = geom.groups
        og = geom.out_channels // g
        dym = _batch_last_matrix(dy)                                     # (O, OH, OW, N)

        def chunk(k):
            rows, cols = chunks[k]
            block = _copy_block(v, rows, cols, g)                       # (G, K, P)
            d = dym[:, rows, cols].reshape(g, og, -1)                   # (G, Og, P)
            # (K, P) @ (P, Og), the long P axis contiguous in both operands: the faster orientation for BLAS
            return _matmul(block, d.transpose(0, 2, 1))                 # (G, K, Og)

        chunks = pixel_chunks(geom, x.dtype.itemsize)
        parts = _parallel.map_chunks(chunk, len(chunks), blas=True, macs=_macs(geom))
        total = parts[0]
        for p in parts[1:]:                 # in chunk order: the same sum on any number of threads
            total += p
        dw = np.ascontiguousarray(total.transpose(0, 2, 1)).reshape(geom.weight_shape)
        # the bias gradient as one pairwise sum per contiguous row (a row of ones in the product above
        # would add its thousands of terms one after the other, losing float32 digits)
        db = dym.reshape(geom.out_channels, -1).sum(axis=1) if with_bias else None
        return dw, db

    # ---- input gradient ---------------------------------------------------------------
    def _grad_input(self, dy, w, geom, saved):
        win, g, n = geom.window, geom.groups, geom.batch
        c, o = geom.in_channels, geom.out_channels
        cg, og = c // g, o // g
        kh, kw = win.kernel
        dym = _batch_last_matrix(dy).reshape(g, og, -1)                  # (G, Og, L*N)
        dxp = _memory.empty((n, c, win.padded_height, win.padded_width), dy.dtype, batch_last=True)
        dxp = dxp.transpose(1, 2, 3, 0)                                  # (C, Hp, Wp, N)
        per_channel = kh * kw * dym.shape[2] * dy.dtype.itemsize
        # few, large blocks: each costs kh*kw slice additions whatever its size
        step = max(1, min(cg, -(-cg // 2), FOLD_BYTES // per_channel))
        # blocks of input channels within one group: each chunk owns its channels of dxp
        blocks = [(gi, sl) for gi in range(g) for sl in _parallel.split(cg, step)]

        def chunk(k):
            gi, sl = blocks[k]
            cb = sl.stop - sl.start
            wsub = w[gi * og:(gi + 1) * og, sl].reshape(og, cb * kh * kw)            # (Og, cb*kh*kw)
            dcols = _scratch(cb * per_channel, dy.dtype).reshape(cb * kh * kw, -1)
            np.matmul(wsub.T, dym[gi], out=dcols)                                   # (cb*kh*kw, L*N)
            dwin = dcols.reshape(cb, kh, kw, win.out_height, win.out_width, n)
            c0 = gi * cg + sl.start
            fold(dwin.transpose(5, 0, 1, 2, 3, 4), win, out=dxp[c0:c0 + cb].transpose(3, 0, 1, 2))

        _parallel.map_chunks(chunk, len(blocks), blas=True, macs=_macs(geom))
        top, _, left, _ = geom.padding
        return dxp[:, top:top + win.height, left:left + win.width].transpose(3, 0, 1, 2)


def _macs(geom) -> int:
    """Multiply-adds of each of the three products."""
    win = geom.window
    return (geom.batch * geom.out_channels * win.out_height * win.out_width
            * geom.in_channels // geom.groups * win.kernel[0] * win.kernel[1])


def _batch_last_matrix(a: np.ndarray) -> np.ndarray:
    """a: (N, C, H, W) as a contiguous (C, H, W, N) array; no copy when its memory is already batch-last."""
    return to_batch_last(a).transpose(1, 2, 3, 0)


def _copy_block(v: np.ndarray, rows: slice, cols: slice, groups: int, ones: bool = False) -> np.ndarray:
    """The window-matrix block of output pixels (rows, cols): (G, K, P), in this thread's workspace.

    ``ones`` appends a row of ones to each group's block, (G, K + 1, P), for the bias.
    """
    src = v[:, :, :, rows, cols]                                        # (C, kh, kw, r, c, N) view
    c, kh, kw, r, q, n = src.shape
    k, p = c // groups * kh * kw, r * q * n
    block = _scratch(groups * (k + ones) * p * src.itemsize, src.dtype).reshape(groups, k + ones, p)
    np.copyto(block[:, :k].reshape(groups, c // groups, kh, kw, r, q, n),
              src.reshape(groups, c // groups, kh, kw, r, q, n))
    if ones:
        block[:, k] = 1
    return block


def _matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``a @ b`` over the groups (G, ., .); one 2-d product, with less call overhead, for a single group."""
    if a.shape[0] == 1:
        r = np.matmul(a[0], b[0], out=None if out is None else out[0])
        return r[None]
    return np.matmul(a, b, out=out)
