"""``depthwise``: one input channel per group (MobileNet's depthwise layers), block of channels by block.

With ``in_channels == groups`` every output channel reads a single input
channel, ``g(o) = o // m`` with the channel multiplier ``m = C_out / groups``:

    y[n, o, i, j] = sum_{a, b} w[o, 0, a, b] * xp[n, g(o), i*sh + a*dh, j*sw + b*dw]

There is no sum over channels, so no matrix product worth the name: the
matmul-based algorithms move every input value through memory several
times for a handful of multiply-adds (``strided`` copies the window rows
of all channels at once, 27 MiB for a 32x64x32x32 input, and reads them
back, one (1 x 9) @ (9 x OW*N) product per group and row). Here the work
is cut into **blocks of channels** (groups), each one chunk of
:mod:`strided._parallel`'s thread pool that writes only its own channels,
so the results are the same bit for bit on any number of threads. Within a
block everything is batch-last (images innermost, (C, H, W, N) memory, as
in :mod:`strided.conv.window_rows`), and the output is batch-last too:

1. **Embed.** The block's channels are copied into the padded batch-last
   input ``E`` (zero border), transposed on the way when the caller's x is
   C-ordered, in two passes that move runs of about 64 numbers
   (``windows.copy_to_batch_last``, faster than NumPy's one-pass transposing copy).
   The forward pass keeps ``E`` for the weight gradient.
2. **Window rows.** The rows of ``E`` are copied kw times along W,
   ``R[h, b, (j, n)] = E[h, j*sw + b*dw, n]`` (``windows.window_view`` with a
   1 x kw kernel, one copy per block). The kh*kw window rows output row i
   reads are then rows ``i*sh + a*dh`` of R, OW*N contiguous numbers each.
3. **Band products.** t = 4 consecutive output rows (2 at stride 2) read
   ``(t-1)*sh + (kh-1)*dh + 1`` consecutive rows of R, a contiguous block:
   one (t x rows*kw) @ (rows*kw x OW*N) product whose left operand is the
   kernel laid out as a band (``_band``) gives the t rows, all of a
   block's bands and channels in one batched ``np.matmul``.

Band products beat both the obvious NumPy (kh*kw shifted multiply-adds
over slices of ``E``) and one product per output row, and blocks of a few
MiB beat blocks sized for one core's L2 cache: the Python and GIL cost of
hundreds of small NumPy calls outweighs the cache misses (the figures:
docs/algorithms.md, "Measurements behind the code").

**Gradients.** The weight gradient reads ``E`` in place (with stride 1
along W its windows along W are contiguous runs): for each tap column b
and band of t rows, ``G = E_b[rows] @ dy[band].T`` (BLAS dot products over
the OW*N columns, accurate in float32), every window row against every
dy row of the band, and the taps are G's entries where window row
``i*sh + a*dh`` meets dy row i (``_weight_band``). The input gradient is
the input gradient as a stride-1 correlation with the flipped kernel
(:func:`strided.conv.base.input_grad_problem`): dy, spread by the stride
and shifted by ``(k-1)*d - P`` (cropped where that is negative),
correlated with the flipped kernel, every input channel g reading its m
output channels, ``w'[g, (a, k, b)] = w[g*m + k, 0, kh-1-a, kw-1-b]``: the
same block machinery (``_Problem``) with m source channels and one output
per group. With a stride along H the spread rows of dy are mostly zeros,
so dx is computed by phases of the stride (``_input_phases``): the rows
of one phase meet dy's rows through a subset of the kernel rows only, a
stride-1 correlation of dy's rows with a sub-kernel (at stride 2, half
the multiply-adds; along W dy stays spread). Both
gradients of a block run in one chunk (``backward``). The bias is added by
each block to its rows of y; its gradient is a pairwise sum over each
block's dy.
"""
from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np

from .. import _memory, _parallel
from ..geometry import Window
from ..windows import copy_to_batch_last, window_view
from .base import ConvAlgorithm

# Bytes of a block's channels (its embedded input, its output, its transposing scratch) at most, and of one
# piece's window rows: few, large blocks (few NumPy calls and GIL hand-overs), measured in
# docs/algorithms.md, "Measurements behind the code". 6 MiB keeps a block's scratch
# for the gradients within what a thread keeps between calls (32 MiB).
BLOCK_BYTES = 6 * 2**20
PIECE_BYTES = 4 * 2**20
# Blocks of channels at least (when there are that many groups), so that two threads finish together ...
MIN_BLOCKS = 8
# ... as long as each block has this many bytes: a small layer is one block, a few NumPy calls.
MIN_BLOCK_BYTES = 256 * 1024
# Values of x at least for the blocks to go to the thread pool: below it, waking the threads costs more.
MIN_PARALLEL_VALUES = 256 * 1024


class _Problem(NamedTuple):
    """One grouped correlation over batch-last arrays, what the forward pass and the input gradient both are.

    ``out[g, o, i, j, n] = sum_{a, c, b} wk[g, o, (a, c, b)] * E[g, c, i*sh + a*dh, j*sw + b*dw, n]``

    for ``cg`` source channels and ``og`` outputs per group, where ``E`` is
    the source ``src: (N, G*cg, h, w)`` embedded in zeros of size ``size``:
    ``E[g, c, top + u, left + v*e, n] = src[n, g*cg + c, u, v]`` (source
    pixels that fall outside are dropped: negative offsets crop; ``e``, the
    ``spread``, is the stride along W for the input gradient, else 1).
    """

    groups: int
    cg: int
    og: int
    batch: int
    src: tuple          # (h, w) of the source
    offset: tuple       # (top, left): where source pixel (0, 0) lands in E
    spread: int         # columns of E between source columns
    size: tuple         # (He, We)
    kernel: tuple
    stride: tuple
    dilation: tuple
    out: tuple          # (OH, OW)


def _forward_problem(geom) -> _Problem:
    win = geom.window
    return _Problem(geom.groups, 1, geom.out_channels // geom.groups, geom.batch, (win.height, win.width),
                    (win.padding[0], win.padding[2]), 1, (win.padded_height, win.padded_width),
                    win.kernel, win.stride, win.dilation, (win.out_height, win.out_width))


class _Phase(NamedTuple):
    """The input gradient's rows ``dx[..., rows, :]``: a correlation over rows first.. of E, or zero (``problem`` None)."""

    rows: slice
    problem: _Problem | None
    first: int          # the row of the input gradient's E where the phase's E starts
    taps: slice         # the rows of the flipped kernel the phase uses


@functools.lru_cache(maxsize=256)
def _input_phases(geom) -> tuple[_Problem, tuple[_Phase, ...]]:
    """dx as stride-1 correlations with the flipped kernel, one per phase of the stride along H (polyphase).

    Returns the embedding of dy they share, as a ``_Problem``, and the phases.
    ``base.input_grad_problem`` writes dx as a correlation of the
    zero-spread, shifted dy with the flipped kernel w' (along H, stride s,
    ``off = (kh-1)*d - P``): ``dx[h] = sum_a w'[a] * z[h + a*d]`` where
    ``z[off + u*s] = dy[u]``. Of the taps only those with
    ``h + a*d - off`` a multiple of s can meet a dy row, so the rows
    ``h = q*s + r`` of one phase r use the taps ``a = a0, a0 + s/g, ...``
    (``g = gcd(s, d)``) and read the rows ``dy[q + delta0 + k*d/g]``: a
    stride-1 correlation of dy's rows with a sub-kernel of dilation d/g,
    writing whole rows of dx. At stride 2 that halves the multiply-adds of
    correlating the spread dy. Along W dy stays spread (``_Problem.spread``):
    phases along W too would leave every phase's output columns
    interleaved with the others', and the copies that interleave them cost
    more than the multiply-adds they save (docs/algorithms.md, "Measurements
    behind the code"). With stride 1 along H there is one phase: the
    input gradient's correlation as it is.
    """
    win = geom.window
    (kh, kw), (sh, sw), (dh, dw) = win.kernel, win.stride, win.dilation
    m, n = geom.out_channels // geom.groups, geom.batch
    off, g = (kh - 1) * dh - win.padding[0], math.gcd(sh, dh)
    left = (kw - 1) * dw - win.padding[2]
    width = win.width + (kw - 1) * dw
    found = []
    for r in range(sh):
        q = max(0, -(-(win.height - r) // sh))                 # dx rows r, r + s, ... below H
        taps = [a for a in range(kh) if (r + a * dh - off) % sh == 0]
        found.append((r, q, taps, (r + taps[0] * dh - off) // sh if taps else 0))
    # one embedding for all phases: dy row u at row top + u, each phase reading from row top + delta0 on
    top = max((-delta0 for _, q, taps, delta0 in found if q and taps), default=0)
    phases, rows = [], 1
    for r, q, taps, delta0 in found:
        if not (q and taps):
            phases.append(_Phase(slice(r, None, sh), None, 0, slice(0)))
            continue
        k, d = len(taps), dh // g
        size = q + (k - 1) * d
        p = _Problem(geom.groups, m, 1, n, (win.out_height, win.out_width), (top + delta0, left), sw,
                     (size, width), (k, kw), (1, 1), (d, dw), (q, win.width))
        phases.append(_Phase(slice(r, None, sh), p, top + delta0, slice(taps[0], taps[-1] + 1, sh // g)))
        rows = max(rows, top + delta0 + size)
    embedding = _Problem(geom.groups, m, 1, n, (win.out_height, win.out_width), (top, left), sw, (rows, width),
                         (1, kw), (1, 1), (1, dw), (rows, win.width))
    return embedding, tuple(phases)


class _Plan(NamedTuple):
    """How a problem is cut: blocks of groups, pieces of output rows, products over t output rows at a time."""

    spans: tuple        # per axis (u0, u1, t0): source pixels u0..u1-1 land at t0, t0 + 1, ...
    whole: bool         # every source pixel lands in E (the source is E's interior)
    trivial: bool       # E is the source itself (no border, nothing cropped)
    window: Window      # 1 x kw windows along W over E's rows: what the window rows R are copied from
    span: int           # rows of E one output row reads: (kh-1)*dh + 1
    t: int              # output rows per product (see ``_band``)
    cols: int           # columns of one product: OW*N
    blocks: tuple       # slices of groups: the chunks
    pieces: tuple       # slices of output rows whose window rows are copied at once (starts multiples of t)
    row_size: int       # numbers in one row of R: cg*kw*OW*N
    r_size: int         # numbers of R one group's largest piece holds


# Output rows per product (see ``_band`` and ``_weight_band``; the sweep over 1, 2, 4, 8 rows:
# docs/algorithms.md, "Measurements behind the code").
BAND_ROWS = 4


@functools.lru_cache(maxsize=256)
def _plan(p: _Problem, itemsize: int) -> _Plan:
    (h, w), (he, we), (kh, kw), (sh, sw), (dh, dw), (oh, ow) = p.src, p.size, p.kernel, p.stride, p.dilation, p.out
    spans = (_span(h, p.offset[0], 1, he), _span(w, p.offset[1], p.spread, we))
    whole = p.spread == 1 and all(s[:2] == (0, n) for s, n in zip(spans, (h, w)))
    trivial = whole and p.offset == (0, 0) and (he, we) == (h, w)
    n = p.batch
    cols = ow * n
    window = Window(he, we, (1, kw), (1, sw), (0, 0, 0, 0), (1, dw), he, ow)
    span = (kh - 1) * dh + 1
    per_group = (p.cg * he * we + p.og * oh * ow + p.cg * h * w) * n * itemsize
    g = p.groups
    total = g * per_group
    nblocks = max(-(-total // BLOCK_BYTES), min(MIN_BLOCKS, total // MIN_BLOCK_BYTES))
    blocks = tuple(_parallel.even_split(g, min(g, max(1, nblocks))))
    gb = max(b.stop - b.start for b in blocks)
    # a kernel of one row gains nothing from bands: t rows would cost t times the multiply-adds; with a stride
    # along H a band reads sh more rows per output row, so it covers fewer rows
    t = max(1, min(BAND_ROWS // sh, oh)) if span > 1 else 1
    # pieces of whole bands of t rows whose window rows stay within PIECE_BYTES (at least one band)
    per_band = gb * t * sh * p.cg * kw * cols * itemsize
    bands = -(-oh // t)
    npieces = min(bands, max(1, -(-bands * per_band // PIECE_BYTES)))
    pieces = tuple(slice(b.start * t, min(oh, b.stop * t)) for b in _parallel.even_split(bands, npieces))
    row_size = p.cg * kw * cols
    r_size = max((rs.stop - 1 - rs.start) * sh + span for rs in pieces) * row_size
    return _Plan(spans, whole, trivial, window, span, t, cols, blocks, pieces, row_size, r_size)


def _span(size: int, offset: int, step: int, length: int) -> tuple[int, int, int]:
    """``(u0, u1, t0)``: the source pixels u0..u1-1 that land inside ``length`` at ``offset + u*step``; the first at t0."""
    u0 = max(0, -(offset // step))             # ceil(-offset / step)
    u1 = max(u0, min(size, (length - 1 - offset) // step + 1))
    return u0, u1, offset + u0 * step


# ---- moving blocks to batch-last memory ----------------------------------------------------------


def _embed(dst: np.ndarray, src: np.ndarray, p: _Problem, plan: _Plan, tmp: np.ndarray) -> None:
    """dst: (c, He, We, N), batch-last, = src: (N, c, h, w) embedded as ``_Problem`` says, zeros elsewhere.

    The same as ``windows.pad`` for the forward pass (plus the crop and the
    spread along W of ``base.input_grad_problem`` for the input gradient),
    into one block's scratch; tmp: flat scratch for ``windows.copy_to_batch_last``.
    """
    (u0, u1, t0), (v0, v1, s0) = plan.spans
    if u1 == u0 or v1 == v0:
        dst[...] = 0
        return
    e = p.spread
    t1, s1 = t0 + u1 - u0, s0 + (v1 - v0 - 1) * e + 1
    if e == 1:                      # only the border: the interior is overwritten right after
        dst[:, :t0] = 0
        dst[:, t1:] = 0
        dst[:, t0:t1, :s0] = 0
        dst[:, t0:t1, s1:] = 0
    else:
        dst[...] = 0
    copy_to_batch_last(dst[:, t0:t1, s0:s1:e], src[:, :, u0:u1, v0:v1], tmp)


def _scratch_arrays(dtype, *shapes) -> list[np.ndarray]:
    """Arrays of these shapes carved out of this thread's scratch memory.

    The same memory serves every block a thread runs, from call to call
    (no page faults), and what a block writes there (its window rows, dy's
    embedding) is read back while it is still in the cache.
    """
    dtype = np.dtype(dtype)
    counts = [math.prod(s) for s in shapes]
    sizes = [-(-c * dtype.itemsize // 64) * 64 for c in counts]          # 64-byte aligned parts
    buf = _memory.scratch(sum(sizes), np.uint8)
    out, at = [], 0
    for shape, count, size in zip(shapes, counts, sizes):
        out.append(buf[at:at + size].view(dtype)[:count].reshape(shape))
        at += size
    return out


def _window_source(e: np.ndarray, p: _Problem, plan: _Plan) -> np.ndarray:
    """The 1 x kw windows along W of every row of e: (gb*cg, He, We, N), a view: (gb, He, cg, kw, OW, N).

    Row h of the window rows R is ``[:, h]``: ``R[h, c, b, (j, n)] = E[c, h, j*sw + b*dw, n]``.
    """
    v = window_view(e.transpose(3, 0, 1, 2), plan.window)[:, :, :, :, 0]      # (N, gb*cg, He, OW, kw)
    n, _, he, ow, kw = v.shape
    return v.reshape(n, -1, p.cg, he, ow, kw).transpose(1, 3, 2, 5, 4, 0)


def _copy_rows(r: np.ndarray, source: np.ndarray, first: int) -> np.ndarray:
    """Rows first.. of R, copied out of ``_window_source``'s view into the flat scratch r: (gb, rows*cg*kw*OW*N)."""
    gb = source.shape[0]
    rows = r.size // (gb * math.prod(source.shape[2:]))
    part = source[:, first:first + rows]
    np.copyto(r.reshape(part.shape), part)
    return r.reshape(gb, -1)


def _band(wk: np.ndarray, p: _Problem, t: int) -> np.ndarray:
    """The weights of t consecutive output rows as one matrix: (G, 1, og, t, rows_t*cg*kw).

    wk: (G, og, kh, cg, kw). Output row i of a band reads rows ``i*sh + a*dh``
    of the band's ``rows_t = (t-1)*sh + (kh-1)*dh + 1`` window rows, so

        band[g, 0, o, i, (i*sh + a*dh, c, b)] = wk[g, o, a, c, b]      (zero elsewhere)

    and one (t x rows_t*cg*kw) @ (rows_t*cg*kw x OW*N) product gives t
    output rows: (t + kh - 1)/kh times the multiply-adds of t separate
    products (a 3x3 kernel, t = 4: 2x), in a quarter of the BLAS calls,
    each of which reads its operand once for t rows.
    """
    g, og, kh, cg, kw = wk.shape
    sh, dh = p.stride[0], p.dilation[0]
    rows_t = (t - 1) * sh + (kh - 1) * dh + 1
    band = np.zeros((g, og, t, rows_t, cg, kw), wk.dtype)
    taps = np.arange(kh) * dh
    for i in range(t):          # t is BAND_ROWS at most
        band[:, :, i, i * sh + taps] = wk
    return band.reshape(g, 1, og, t, -1)


def _band_products(band: np.ndarray, r: np.ndarray, out: np.ndarray, p: _Problem, plan: _Plan) -> None:
    """out: (gb, og, T, OW*N) = the T output rows of a piece, from its window rows r (see ``_copy_rows``).

    Whole bands of t rows are stacked views of r, one batched product; a
    last band of fewer rows uses the top-left corner of the band matrix.
    """
    gb, og, rows, cols = out.shape
    t, sh, isz = plan.t, p.stride[0], r.itemsize
    row = p.cg * p.kernel[1] * cols                 # numbers per row of E in r
    full, rest = divmod(rows, t)
    for start, n, tb in ((0, full, t), (full * t, 1 if rest else 0, rest)):
        if n == 0:
            continue
        k = ((tb - 1) * sh + plan.span) * p.cg * p.kernel[1]
        # np.ndarray over r's memory: the view as_strided would make, without its Python-level cost
        v = np.ndarray((gb, n, 1, k, cols), r.dtype, buffer=r, offset=start * sh * row * isz,
                       strides=(r.strides[0], t * sh * row * isz, 0, cols * isz, isz))
        o = out[:, :, start:start + n * tb].reshape(gb, og, n, tb, cols).transpose(0, 2, 1, 3, 4)
        np.matmul(band[:, :, :, :tb, :k], v, out=o)


def _weight_band(s: np.ndarray, d: np.ndarray, p: _Problem, t: int) -> np.ndarray:
    """The weight gradient of a run of output rows, summed: (gb, kw, og, kh).

    s: (gb, kw, 1, n, rows_t, OW*N), stacked views of E's windows along W (rows
    ``t*sh`` apart), d: (gb, og, n*t, OW*N), dy of those rows. One product per
    band and tap column b, ``G = S_b @ dy.T``: (rows_t x OW*N) @ (OW*N x t),
    every window row against every dy row of the band (BLAS dot products
    over the OW*N columns); the taps are the entries where window row
    ``i*sh + a*dh`` meets dy row i, a strided view of G, summed over i.
    Reading E in place saves the window-row copies.
    """
    gb, og, rows, cols = d.shape
    n = rows // t
    dv = d.reshape(gb, og, n, t, cols).transpose(0, 1, 2, 4, 3)[:, None]     # (gb, 1, og, n, P, t)
    g = np.empty((gb, s.shape[1], og, n, s.shape[4], t), d.dtype)
    np.matmul(s, dv, out=g)                                                 # (gb, kw, og, n, rows_t, t)
    isz = g.itemsize
    sh, dh, kh = p.stride[0], p.dilation[0], p.kernel[0]
    taps = np.ndarray((*g.shape[:4], kh, t), g.dtype, buffer=g,
                      strides=(*g.strides[:4], dh * t * isz, (sh * t + 1) * isz))
    return taps.sum(axis=(3, 5))


def _weights(w: np.ndarray, p: _Problem) -> np.ndarray:
    """The forward pass's weights (O, 1, kh, kw) as (G, m, kh, 1, kw)."""
    return w.reshape(p.groups, p.og, p.kernel[0], 1, p.kernel[1])


def _flipped(w: np.ndarray, groups: int) -> np.ndarray:
    """The input gradient's weights: wt[g, 0, a, k, b] = w[g*m + k, 0, kh-1-a, kw-1-b], as (G, 1, kh, m, kw)."""
    o, _, kh, kw = w.shape
    wt = w.reshape(groups, o // groups, kh, kw)[:, :, ::-1, ::-1].transpose(0, 2, 1, 3)
    return wt.reshape(groups, 1, kh, o // groups, kw)


def _values(geom) -> int:
    return geom.batch * max(geom.in_channels * geom.window.height * geom.window.width,
                            geom.out_channels * geom.window.out_height * geom.window.out_width)


def _map(fn, n: int, geom) -> list:
    """Run the chunks on the pool (BLAS on one thread inside), or in this thread when the layer is small.

    Each chunk is a block of channels, memory-bound passes rather than the
    compute-bound products ``map_chunks``'s multiply-add count measures, so
    the size that decides is the number of values the layer moves.
    """
    return _parallel.map_chunks(fn, n, blas=True, macs=None if _values(geom) >= MIN_PARALLEL_VALUES else 0)


class Depthwise(ConvAlgorithm):
    """Depthwise convolutions (``groups == in_channels``) block of channels by block; see the module docstring.

    x: (N, C, H, W), w: (C*m, 1, kh, kw), y and dy: (N, C*m, OH, OW); y and
    dx come back with batch-last memory. ``saved`` is the padded batch-last
    input when the forward pass had to build it (the weight gradient then
    reads it instead of x), else None. The bias is fused into the forward
    pass and every gradient asked for is computed in one call to the thread
    pool (the ``_forward_with_bias`` and ``_backward`` hooks of
    :class:`~strided.conv.base.ConvAlgorithm`).
    """

    name = "depthwise"

    def workspace_per_image(self, geom, dtype):
        """0: the batch is never split.

        The scratch is a few MiB per thread (``BLOCK_BYTES``) whatever the
        batch; what grows with it, the padded input the forward pass keeps,
        is the size of an activation.
        """
        return 0

    def supports(self, geom, dtype):
        cg = geom.in_channels // geom.groups
        if cg != 1:
            return (f"depthwise needs one input channel per group (groups == in_channels), got "
                    f"in_channels={geom.in_channels}, groups={geom.groups} ({cg} per group)")
        return None

    def _check(self, geom, **arrays):
        """The operands' checks, and this algorithm's one limit (``supports``)."""
        dtype = super()._check(geom, **arrays)
        why = self.supports(geom, dtype)
        if why is not None:
            raise ValueError(f"the 'depthwise' algorithm cannot run this geometry: {why}")
        return dtype

    # ---- forward -------------------------------------------------------------------------------
    def _forward_with_bias(self, x, w, geom, bias):
        """y: (N, C_out, OH, OW) with batch-last memory, the bias added by each block; ``saved``: see the class."""
        p = _forward_problem(geom)
        plan = _plan(p, x.dtype.itemsize)
        (he, we), n, sh = p.size, p.batch, p.stride[0]
        xl = _batch_last_view(x) if plan.trivial else None          # E is x itself: nothing to copy
        # else E is built block by block into an array kept for the weight gradient
        e_all = None if xl is not None else _memory.empty((n, geom.in_channels, he, we), x.dtype,
                                                           batch_last=True).transpose(1, 2, 3, 0)
        band = _band(_weights(w, p), p, plan.t)
        y = _memory.empty(geom.y_shape, x.dtype, batch_last=True)
        y4 = y.transpose(1, 2, 3, 0).reshape(p.groups, p.og, p.out[0], plan.cols)     # (G, m, OH, OW*N)
        b4 = None if bias is None else bias.reshape(p.groups, p.og, 1, 1)

        def chunk(k):
            gs = plan.blocks[k]
            gb = gs.stop - gs.start
            tmp, r = _scratch_arrays(x.dtype, (_tmp_size(x, gb) if xl is None else 0,), (gb * plan.r_size,))
            if xl is None:
                e = e_all[gs]
                _embed(e, x[:, gs], p, plan, tmp)
            else:
                e = xl[gs]
            source = _window_source(e, p, plan)
            for rs in plan.pieces:
                rows = (rs.stop - 1 - rs.start) * sh + plan.span
                piece = _copy_rows(r[:gb * rows * plan.row_size], source, rs.start * sh)
                out = y4[gs, :, rs]                                                    # (gb, m, T, OW*N)
                _band_products(band[gs], piece, out, p, plan)
                if b4 is not None:
                    out += b4[gs]           # the piece's outputs, while they are in this core's cache

        _map(chunk, len(plan.blocks), geom)
        return y, e_all

    # ---- gradients ---------------------------------------------------------------------------
    def _backward(self, dy, x, w, geom, saved, need_x, need_weight, need_bias):
        """Every gradient asked for, block of channels by block: each chunk reads its block of dy once."""
        fp = _forward_problem(geom)
        dtype = dy.dtype
        fplan = _plan(fp, dtype.itemsize)
        g, m, n = geom.groups, fp.og, geom.batch
        (oh, ow), cols = fp.out, fplan.cols
        dyl = _batch_last_view(dy)                                  # None unless dy's memory is batch-last
        if saved is not None:
            xl = _checked_saved(saved, geom, fp, dtype)
        else:
            xl = _batch_last_view(x) if need_weight and fplan.trivial else None
        if need_weight:
            dw = np.empty(geom.weight_shape, dtype)
            dw4 = dw.reshape(g, m, *fp.kernel)
        db = np.empty(geom.out_channels, dtype) if need_bias else None
        # the weight gradient reads E's windows along W in place when they are contiguous runs (sw == 1),
        # else the window rows copied out of E into the block's scratch
        blocks, r_size = fplan.blocks, fplan.r_size if need_weight and fp.stride[1] != 1 else 0
        dzl, dy_in_ez = None, False
        if need_x:
            dx = _memory.empty(geom.x_shape, dtype, batch_last=True)
            dx4 = dx.transpose(1, 2, 3, 0).reshape(g, 1, geom.window.height, -1)     # (G, 1, H, W*N)
            emb, eplan, work = _input_gradient_work(geom, w, dtype.itemsize)
            for _, plan, _ in work:
                if plan is not None:
                    r_size = max(r_size, plan.r_size)
                    if len(plan.blocks) > len(blocks):       # both problems' blocks of groups: the finer
                        blocks = plan.blocks
            dzl = dyl if eplan.trivial else None        # the input gradient's E is dy itself
            # a C-ordered dy is transposed straight into the input gradient's E when it is E's interior
            dy_in_ez = dzl is None and dyl is None and eplan.whole
        gmax = max(b.stop - b.start for b in blocks)
        tmp_size = max(_tmp_size(dy, gmax * m), _tmp_size(x, gmax) if need_weight else 0)

        def chunk(k):
            gs = blocks[k]
            gb, cs = gs.stop - gs.start, slice(gs.start * m, gs.stop * m)
            d_shape = (gb * m, oh, ow, n) if dyl is None and not dy_in_ez else (0,)
            ex_shape = (gb, *fp.size, n) if need_weight and xl is None else (0,)
            ez_shape = (gb * m, *emb.size, n) if need_x and dzl is None else (0,)
            d, ex, ez, tmp, r = _scratch_arrays(dtype, d_shape, ex_shape, ez_shape, (tmp_size,), (gb * r_size,))
            # dy's block, batch-last: (gb*m, OH, OW, N) with rows of OW*N contiguous numbers
            if dy_in_ez:
                _embed(ez, dy[:, cs], emb, eplan, tmp)
                (_, _, t0), (_, _, s0) = eplan.spans
                d = ez[:, t0:t0 + oh, s0:s0 + ow]
            elif dyl is not None:
                d = dyl[cs]
            else:
                copy_to_batch_last(d, dy[:, cs], tmp)
            if need_bias:
                db[cs] = d.reshape(gb * m, oh, cols).sum(axis=2).sum(axis=1)   # pairwise along rows, then over rows
            if need_weight:
                if xl is None:
                    _embed(ex, x[:, gs], fp, fplan, tmp)
                else:
                    ex = xl[gs]
                dw4[gs] = _block_weight_gradient(ex, d.reshape(gb, m, oh, cols), r, fp, fplan)
            if need_x:
                if dzl is not None:
                    ez = dzl[cs]
                elif not dy_in_ez:
                    _embed(ez, d.transpose(3, 0, 1, 2), emb, eplan, tmp)
                _block_input_gradient(ez, work, gs, r, dx4[gs])

        _map(chunk, len(blocks), geom)
        return (dx if need_x else None), (dw if need_weight else None), db


def _checked_saved(saved, geom, fp: _Problem, dtype) -> np.ndarray:
    """``saved``, when it is what the forward pass returns (the padded batch-last input E), else a ValueError."""
    if not (isinstance(saved, np.ndarray) and saved.shape == (geom.in_channels, *fp.size, geom.batch)
            and saved.dtype == dtype and saved.flags.c_contiguous):
        raise ValueError("saved must be what Depthwise.forward returned for this geometry and dtype")
    return saved


def _input_gradient_work(geom, w: np.ndarray, itemsize: int):
    """``(embedding, its plan, work)`` of the input gradient; work: ``(phase, plan, band)`` per phase of the stride.

    The band's rows are the phase's taps of the flipped kernel; a phase no
    tap reaches has plan and band None.
    """
    emb, phases = _input_phases(geom)
    wt = _flipped(w, geom.groups)
    work = []
    for ph in phases:
        if ph.problem is None:
            work.append((ph, None, None))
            continue
        plan = _plan(ph.problem, itemsize)
        work.append((ph, plan, _band(wt[:, :, ph.taps], ph.problem, plan.t)))
    return emb, _plan(emb, itemsize), work


def _block_weight_gradient(ex: np.ndarray, d4: np.ndarray, r: np.ndarray, fp: _Problem, fplan: _Plan) -> np.ndarray:
    """The weight gradient of one block of channels: (gb, m, kh, kw).

    ex: (gb, He, We, N), the block's padded batch-last input E; d4: (gb, m,
    OH, OW*N), its dy rows; r: flat scratch for the window rows. With
    stride 1 along W, E's windows along W are contiguous runs and are read
    in place; else the window rows are copied out of E piece by piece.
    Bands of up to ``BAND_ROWS`` output rows go to :func:`_weight_band`.
    """
    gb, m, oh, cols = d4.shape
    dtype, isz = d4.dtype, d4.itemsize
    (kh, kw), sh, n = fp.kernel, fp.stride[0], fp.batch
    in_place = fp.stride[1] == 1
    tw = min(BAND_ROWS, oh)
    total = np.zeros((gb, kw, m, kh), dtype)
    source = None if in_place else _window_source(ex, fp, fplan)
    for rs in fplan.pieces if not in_place else (slice(0, oh),):
        rows = rs.stop - rs.start
        if in_place:
            base, bstride, hstride = ex, fp.dilation[1] * n * isz, ex.strides[1]
            offset = rs.start * sh * hstride
        else:
            base = _copy_rows(r[:gb * ((rows - 1) * sh + fplan.span) * fplan.row_size], source, rs.start * sh)
            bstride, hstride, offset = cols * isz, kw * cols * isz, 0
        full, rest = divmod(rows, tw)
        for start, nb, tb in ((0, full, tw), (full * tw, 1 if rest else 0, rest)):
            if nb == 0:
                continue
            s = np.ndarray((gb, kw, 1, nb, (tb - 1) * sh + fplan.span, cols), dtype, buffer=base,
                           offset=offset + start * sh * hstride,
                           strides=(base.strides[0], bstride, 0, tw * sh * hstride, hstride, isz))
            total += _weight_band(s, d4[:, :, rs.start + start:rs.start + start + nb * tb], fp, tb)
    return total.transpose(0, 2, 3, 1)


def _block_input_gradient(ez: np.ndarray, work, gs: slice, r: np.ndarray, out: np.ndarray) -> None:
    """out: (gb, 1, H, W*N) = the input gradient of the block of groups gs, phase by phase of the stride.

    ez: (gb*m, He, We, N), the block's dy embedded as the input gradient's
    E; work: from :func:`_input_gradient_work`; r: flat scratch for the window rows.
    """
    gb = gs.stop - gs.start
    for ph, plan, band in work:
        rows_out = out[:, :, ph.rows]                                          # (gb, 1, q, W*N)
        if plan is None:            # no tap reaches these rows
            rows_out[...] = 0
            continue
        p = ph.problem
        source = _window_source(ez[:, ph.first:ph.first + p.size[0]], p, plan)
        for rs in plan.pieces:
            rows = rs.stop - 1 - rs.start + plan.span
            piece = _copy_rows(r[:gb * rows * plan.row_size], source, rs.start)
            _band_products(band[gs], piece, rows_out[:, :, rs], p, plan)


def _batch_last_view(a: np.ndarray) -> np.ndarray | None:
    """a: (N, C, H, W) as its (C, H, W, N) memory when that is C-contiguous, else None."""
    v = a.transpose(1, 2, 3, 0)
    return v if v.flags.c_contiguous else None


def _tmp_size(a: np.ndarray, channels: int) -> int:
    """Numbers of scratch ``copy_to_batch_last`` needs to transpose ``channels`` channels of a."""
    return a.shape[0] * channels * a.shape[2] * a.shape[3]
