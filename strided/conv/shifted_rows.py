"""``shifted_rows``: whole padded input rows times every kernel column at once, the outputs shifted along W and added.

:mod:`~strided.conv.window_rows` copies the windows along W (kw copies of
the input, written and read back) so that one product per output row has
K = Cg*kh*kw rows. This algorithm copies nothing but the padded input, laid
out with the input channels between the rows and the columns,

    xs[h, c, (w, n)] = xp[n, c, h, w]                        (Hp, C, Wp*N)

so that the kh input rows under output row i, for every channel, are one
matrix with one row stride: rows (a, c) of ``xs[i*sh : i*sh + kh]``, a view.
One product per output row multiplies it by the kernel with its columns b
stacked as rows,

    Z[(b, o), (w, n)] = sum_{a, c} w[o, c, a, b] * xs[i*sh + a, c, (w, n)]   (kw*O, Wp*N)

and output column j collects kernel column b from input column j + b*dw,

    y[o, i, (j, n)] = sum_b Z[(b, o), ((j + b*dw), n)]       (kw - 1 shifted additions)

The weight gradient is the same product turned around, one per kernel column
b: ``dw[:, :, :, b] = sum_i xs[rows of i, columns shifted by b*dw] @ dy[i].T``,
the shifted columns again a view. The input gradient is window_rows' own.

Against window_rows: no window copies (the forward pass saves the padded
input, 1x the input, instead of the window rows, kw times it), products of
kw*O rows instead of O (the thin layers' O = 16 is what OpenBLAS runs worst),
but Wp instead of OW columns per row and the shifted additions: it wins
where the padding is a small part of the row (docs/performance.md,
"Thin 3×3 layers"). Needs groups 1 (a group's (a, c) rows have no single
stride), stride 1 along W and dilation 1 along H. Every output is one
product and additions in a fixed order, in blocks of rows that depend on
the shapes alone: bit-identical for any number of threads.
"""
from __future__ import annotations

import numpy as np

from .. import _memory, _parallel
from ..windows import copy_to_batch_last, is_batch_last, pad
from .base import input_grad_problem
from .window_rows import ROW_BLOCKS, WindowRows, _batch_last_matrix, _macs, _run_jobs, column_pieces

# Bytes of one block's products before the shifted additions, at most: they are added while in the core's cache.
SHIFT_BYTES = 1 << 20


def shifted_source(x: np.ndarray, geom) -> np.ndarray:
    """xs: (Hp, C, Wp*N), contiguous: x: (N, C, H, W) padded, each padded row's channels one after the other."""
    n, c, h, w = x.shape
    win = geom.window
    hp, wp = win.padded_height, win.padded_width
    xs = _memory.empty((hp * c * wp * n,), x.dtype).reshape(hp, c, wp * n)
    x4 = xs.reshape(hp, c, wp, n)
    if is_batch_last(x):            # runs of W*N numbers
        pad(x, geom.padding, out=x4.transpose(3, 1, 0, 2))
        return xs
    # any other order: the border zeroed, the interior by the tiled transpose (a one-pass copy would read one
    # number from each image in turn)
    top, _, left, _ = geom.padding
    x4[:top] = 0
    x4[top + h:] = 0
    x4[top:top + h, :, :left] = 0
    x4[top:top + h, :, left + w:] = 0
    copy_to_batch_last(x4[top:top + h, :, left:left + w].transpose(1, 0, 2, 3), x)
    return xs


def _row_blocks(geom) -> list[slice]:
    """Blocks of output rows, one chunk of work each: up to ROW_BLOCKS, an even number from three on."""
    oh = geom.window.out_height
    count = max(1, min(ROW_BLOCKS, oh))
    if count > 2 and count % 2:
        count -= 1
    return _parallel.even_split(oh, count)


def _input_rows(xs: np.ndarray, geom, rows: slice, by_kernel_column: bool = False) -> np.ndarray:
    """The kh input rows of each output row in ``rows``: stacked views of xs, no copy.

    (t, kh*C, Wp*N), whole padded rows; with ``by_kernel_column``
    (kw, t, kh*C, OW*N), the columns kernel column b reads, from b*dw*N on.
    """
    win = geom.window
    _, c, m = xs.shape
    isz, t = xs.itemsize, rows.stop - rows.start
    step = win.stride[0] * c * m * isz
    shape, strides = (t, win.kernel[0] * c), (step, m * isz)
    if by_kernel_column:
        n = geom.batch
        shape, strides = (win.kernel[1], *shape, win.out_width * n), (win.dilation[1] * n * isz, *strides, isz)
    else:
        shape, strides = (*shape, m), (*strides, isz)
    return np.ndarray(shape, xs.dtype, buffer=xs, offset=rows.start * step, strides=strides)


class ShiftedRows(WindowRows):
    """Whole padded input rows times the kernel's columns stacked, outputs shifted along W (see the module docstring).

    x: (N, C_in, H, W), w: (C_out, C_in, kh, kw), y and dy: (N, C_out, OH,
    OW); y and dx come back with batch-last memory. The forward pass saves
    xs: (Hp, C_in, Wp*N) for the weight gradient.
    """

    name = "shifted_rows"

    def supports(self, geom, dtype):
        if geom.groups != 1:
            return f"shifted rows need groups=1, got groups={geom.groups}"
        if geom.stride[1] != 1:
            return f"shifted rows need stride 1 along W, got stride {geom.stride}"
        if geom.dilation[0] != 1:
            return f"shifted rows need dilation 1 along H, got dilation {geom.dilation}"
        return None

    def _forward_with_bias(self, x, w, geom, bias):
        """y: (N, C_out, OH, OW) with batch-last memory, and the saved xs: (Hp, C_in, Wp*N)."""
        return _run_jobs([self._forward_job(x, w, geom, bias)], geom)[0]

    def _forward_job(self, x, w, geom, bias):
        """``(chunks, chunk, finish)`` of the forward pass: ``finish(parts)`` gives ``(y, xs)``."""
        win = geom.window
        o, c, kh, kw = w.shape
        n, oh, ow, dw = geom.batch, win.out_height, win.out_width, win.dilation[1]
        xs = shifted_source(x, geom)
        wall = np.ascontiguousarray(w.transpose(3, 0, 2, 1)).reshape(kw * o, kh * c)    # [(b, o), (a, c)]
        y = _memory.empty(geom.y_shape, x.dtype, batch_last=True).transpose(1, 2, 3, 0)   # (O, OH, OW, N)
        y3 = y.reshape(o, oh, ow * n)
        m = xs.shape[2]
        per_row = kw * o * m * x.itemsize
        t_max = max(1, SHIFT_BYTES // per_row)
        blocks = _row_blocks(geom)
        b3 = None if bias is None else bias.reshape(o, 1, 1)

        def chunk(k):
            for rs in _parallel.split(blocks[k].stop - blocks[k].start, t_max):
                rs = slice(blocks[k].start + rs.start, blocks[k].start + rs.stop)
                t = rs.stop - rs.start
                z = _memory.scratch(t * per_row, x.dtype).reshape(t, kw, o, m)
                np.matmul(wall, _input_rows(xs, geom, rs), out=z.reshape(t, kw * o, m))
                out = y3[:, rs].transpose(1, 0, 2)                                   # (t, O, OW*N), a view of y
                # kernel column b of output column j is Z's column j + b*dw: kw - 1 shifted additions, in order
                shifted = [z[:, b, :, b * dw * n:(b * dw + ow) * n] for b in range(kw)]
                if kw == 1:
                    np.copyto(out, shifted[0])
                else:
                    np.add(shifted[0], shifted[1], out=out)
                for part in shifted[2:]:
                    out += part
                if b3 is not None:
                    y3[:, rs] += b3

        return len(blocks), chunk, lambda parts: (y.transpose(3, 0, 1, 2), xs)

    def _input_job(self, dy, w, geom, saved):
        """``(chunks, chunk, finish)`` of the input gradient: ``finish(parts)`` gives dx.

        With stride 1 the input gradient is a stride-1 convolution of dy
        with the flipped kernel (:func:`~strided.conv.base.input_grad_problem`),
        which this algorithm's forward pass runs; with a stride along H it
        would multiply the zeros spread between dy's rows: window_rows' own.
        """
        if geom.stride != (1, 1):
            return super()._input_job(dy, w, geom, saved)
        z, wt, geom_t = input_grad_problem(dy, w, geom)
        chunks, chunk, finish = self._forward_job(z, wt, geom_t, None)
        return chunks, chunk, lambda parts: finish(parts)[0]

    def _weight_job(self, dy, x, geom, saved, with_bias):
        """``(chunks, chunk, finish)`` of the weight gradient: ``finish(parts)`` gives ``(dw, db)``.

        Per block of output rows and column piece, one batched product
        ``(kw, t, kh*C, P) @ (t, P, O)``: the input rows each kernel column
        reads (views of xs) times dy's rows turned around, summed over the t rows.
        """
        xs = shifted_source(x, geom) if saved is None else saved
        win = geom.window
        o, c = geom.out_channels, geom.in_channels
        kh, kw = win.kernel
        dym = _batch_last_matrix(dy)                                             # (O, OH, OW, N)
        d3 = dym.reshape(o, win.out_height, -1)
        blocks = _row_blocks(geom)
        pieces = column_pieces(d3.shape[2], kh * c, dy.itemsize)

        def chunk(k):
            rs = blocks[k]
            cols = _input_rows(xs, geom, rs, by_kernel_column=True)               # (kw, t, kh*C, OW*N)
            d = d3[:, rs].transpose(1, 2, 0)                                     # (t, OW*N, O)
            total = None
            for p in pieces:
                part = np.matmul(cols[..., p], d[:, p]).sum(axis=1)               # (kw, kh*C, O)
                if total is None:
                    total = part
                else:
                    total += part
            return total

        def finish(parts):
            total = parts[0]
            for p in parts[1:]:                 # in chunk order: the same sum on any number of threads
                total += p
            dw = np.ascontiguousarray(total.reshape(kw, kh, c, o).transpose(3, 2, 1, 0))   # (O, C, kh, kw)
            db = dym.reshape(o, -1).sum(axis=1) if with_bias else None
            return dw, db

        return len(blocks), chunk, finish
