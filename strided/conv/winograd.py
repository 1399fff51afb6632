"""``winograd``: Winograd's minimal filtering F(2x2, 3x3) for 3x3 kernels with stride 1.

None of the write-ups does this (Lavin & Gray, 2016). A 1-D correlation of a
4-pixel tile d with a 3-tap kernel g gives 2 outputs; done directly it costs
6 multiplications, Winograd's algorithm needs 4:

    y = A^T [ (G g) * (B^T d) ]             (* is elementwise)

    B^T = [1  0 -1  0]     G = [1    0    0 ]     A^T = [1  1  1  0]
          [0  1  1  0]         [1/2  1/2  1/2]          [0  1 -1 -1]
          [0 -1  1  0]         [1/2 -1/2  1/2]
          [0  1  0 -1]         [0    0    1 ]

Nested in 2-D, every 4x4 input tile (tiles overlap by 2: they are the
windows of size 4 and stride 2) and every 3x3 kernel go to a
4x4 "Winograd domain", where the sum over input channels becomes 16
independent matrix products, one per domain position:

    V = B^T d B    U = G g G^T     M[xi] = U[xi] @ V[xi]      (Og, Cg) @ (Cg, N*tiles)
    y_tile (2x2) = A^T M A

That is 16 products of size Og x Cg x (N*OH*OW/4) instead of 9 of size
Og x Cg x (N*OH*OW): 2.25x fewer multiplications, paid for by the transforms
(whose entries are 0, +-1, so they are slice additions). It wins when the
channel products dominate, i.e. many channels.

Backward is the same algebra transposed (the transforms are linear):
with E = A dy_tile A^T,

    dw = G^T [ sum over tiles and images of E[xi] @ V[xi]^T ] G
    dx = the same forward applied to dy and the flipped kernel (the
         rewriting of the input gradient as a stride-1 convolution, which
         keeps the 3x3, stride 1 shape).

Only 3x3 kernels, stride 1 and dilation 1 are supported; padding and
groups are free.
"""
from __future__ import annotations

import numpy as np

from .. import _parallel
from ..geometry import Window
from ..windows import offset_slices, pad
from .base import ConvAlgorithm, input_grad_problem

BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]])
G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]])
AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]])


def along_first(mat, d, out):
    """out[i] = sum_k mat[i, k] * d[k] over the leading axis, for a matrix of 0 and +-1 entries.

    The matrices are tiny and their entries are 0/+-1, so each output row is
    one or two whole-array additions (``d`` may be a list of arrays).
    """
    for i, row in enumerate(mat):
        plus = [d[k] for k, c in enumerate(row) if c > 0]
        minus = [d[k] for k, c in enumerate(row) if c < 0]
        o = out[i]
        if plus and minus:               # the first two terms in one pass, without a copy
            np.subtract(plus.pop(0), minus.pop(0), out=o)
        elif len(plus) > 1:
            np.add(plus.pop(0), plus.pop(0), out=o)
        elif plus:
            np.copyto(o, plus.pop(0))
        else:
            np.negative(minus.pop(0), out=o)
        for a in plus:
            np.add(o, a, out=o)
        for a in minus:
            np.subtract(o, a, out=o)
    return out


def per_position(a, b):
    """a @ b for each of the 16 Winograd-domain positions: (16, G, M, K) @ (16, G, K, P) -> (16, G, M, P).

    The 16 products are independent, so they are spread over strided's
    threads (each writes its own slice: the result does not depend on the
    number of threads).
    """
    out = np.empty((16, a.shape[1], a.shape[2], b.shape[3]), dtype=np.result_type(a, b))

    def product(i):
        np.matmul(a[i], b[i], out=out[i])

    _parallel.map_chunks(product, 16, blas=True)
    return out


def by_channel_blocks(fn, channels: int) -> None:
    """Call ``fn(block)`` for consecutive slices covering ``range(channels)``, spread over strided's threads.

    For the transforms: element-wise work on disjoint channels, exact in any
    order. Each block keeps its own temporaries (see _stride2_columns).
    """
    blocks = _parallel.split(channels, -(-channels // min(channels, 8)))
    _parallel.map_chunks(lambda i: fn(blocks[i]), len(blocks))


def _tiling(geom):
    """Tiles per column and row (th, tw) of 2x2 outputs, and the Window of their 4x4 input tiles."""
    win = geom.window
    th, tw = -(-win.out_height // 2), -(-win.out_width // 2)
    hp, wp = 2 * th + 2, 2 * tw + 2    # may exceed the padded input by one row/column of zeros
    return (th, tw), Window(hp, wp, (4, 4), (2, 2), (0, 0, 0, 0), (1, 1), th, tw)


def _stride2_columns(rows, offsets):
    """Stride-2 column slices of rows: (R, ..., h, 2m), as (R, ..., h, m) views, one per column offset.

    Slicing each image row separately would give NumPy rows of only m
    numbers to loop over. Flattened, the stride-2 slice from offset k runs
    through every row at once (the rows have even length), reading one
    extra pair per row, the last of which wraps into the next row: each
    tile row gets one junk tile at its end (m = tw + 1), cropped from the
    result. ``rows`` must be a view of a buffer with 2 spare numbers after
    every leading index, for the last wrap.
    """
    r, size = rows.shape[0], int(np.prod(rows.shape[1:]))
    flat = np.lib.stride_tricks.as_strided(rows, (r, size + 2), (rows.strides[0], rows.itemsize))
    return [flat[:, k:k + size:2].reshape(*rows.shape[:-1], rows.shape[-1] // 2) for k in offsets]


def _row_buffer(shape, dtype):
    """An array of ``shape`` with 2 zeroed spare numbers after each leading index (see _stride2_columns)."""
    size = int(np.prod(shape[1:]))
    buf = np.empty((shape[0], size + 2), dtype=dtype)
    buf[:, size:] = 0
    return buf[:, :size].reshape(shape)


def transform_input(x, geom):
    """V: (16, G, Cg, N*th*(tw+1)) = B^T d B for every 4x4 tile d of the padded x: (N, C, H, W).

    Each row of tiles ends with one junk tile (see _stride2_columns).
    """
    (th, tw), tiles = _tiling(geom)
    win = geom.window
    t, b, l, r = win.padding
    xp = pad(x, (t, b + tiles.height - win.padded_height, l, r + tiles.width - win.padded_width))
    n, c = x.shape[:2]
    # B^T d B is separable. Tile rows first, on whole image rows: row k of every tile is the
    # stride-2 row slice that offset (k, 0) of the tile window reads. Then the tile columns.
    xc = xp.transpose(1, 0, 2, 3)                                            # (C, N, Hp, Wp) view
    v = np.empty((4, 4, c, n, th, tw + 1), dtype=x.dtype)

    def block(cs):
        rows = along_first(BT, [xc[cs, :, offset_slices(tiles, k, 0)[0]] for k in range(4)],
                           _row_buffer((4, cs.stop - cs.start, n, th, tiles.width), x.dtype))
        along_first(BT, _stride2_columns(rows, range(4)), v[:, :, cs].swapaxes(0, 1))

    by_channel_blocks(block, c)
    return v.reshape(16, geom.groups, c // geom.groups, -1)


def transform_weight(w, groups):
    """U: (16, G, Og, Cg) = G g G^T for every 3x3 kernel g of w: (O, Cg, 3, 3)."""
    o, cg = w.shape[:2]
    gm = G.astype(w.dtype)
    u = np.einsum("ia,ocab,jb->ijoc", gm, w, gm)                             # (4, 4, O, Cg)
    return np.ascontiguousarray(u.reshape(16, groups, o // groups, cg))


def transform_output_grad(dy, geom):
    """E: (16, G, Og, N*th*(tw+1)) = A dy_tile A^T for every 2x2 tile of dy: (N, O, OH, OW).

    dy is zero-extended to whole tiles, and the junk tile ending each tile
    row (matching V's) is zero, so it adds nothing to the weight gradient.
    """
    (th, tw), _ = _tiling(geom)
    n, o, oh, ow = dy.shape
    e = np.empty((4, 4, o, n, th, tw + 1), dtype=dy.dtype)

    def block(cs):
        z = np.zeros((cs.stop - cs.start, n, 2 * th, 2 * tw + 2), dtype=dy.dtype)
        z[:, :, :oh, :ow] = dy[:, cs].transpose(1, 0, 2, 3)
        rows = along_first(AT.T, [z[:, :, i::2] for i in range(2)],
                           _row_buffer((4, *z.shape[:2], th, 2 * tw + 2), dy.dtype))
        along_first(AT.T, _stride2_columns(rows, range(2)), e[:, :, cs].swapaxes(0, 1))

    by_channel_blocks(block, o)
    return e.reshape(16, geom.groups, o // geom.groups, -1)


class Winograd(ConvAlgorithm):
    name = "winograd"

    def supports(self, geom, dtype):
        if geom.kernel != (3, 3):
            return f"F(2x2, 3x3) needs a 3x3 kernel, got {geom.kernel[0]}x{geom.kernel[1]}"
        if geom.stride != (1, 1):
            return f"F(2x2, 3x3) needs stride 1, got stride {geom.stride}"
        if geom.dilation != (1, 1):
            return f"F(2x2, 3x3) needs dilation 1, got dilation {geom.dilation}"
        return None

    def workspace_per_image(self, geom, dtype):
        (th, tw), _ = _tiling(geom)
        # V and its temporary over the input channels, M and E over the output channels
        return 16 * th * (tw + 1) * (2 * geom.in_channels + 2 * geom.out_channels) * dtype.itemsize

    def _forward(self, x, w, geom):
        v = transform_input(x, geom)
        m = per_position(transform_weight(w, geom.groups), v)                 # (16, G, Og, N*th*(tw+1))
        (th, tw), _ = _tiling(geom)
        n, o = geom.batch, geom.out_channels
        m = m.reshape(4, 4, o, n, th, tw + 1)
        y = np.empty((n, o, th, 2, tw, 2), dtype=x.dtype)

        def block(cs):
            tmp = along_first(AT, m[:, :, cs], np.empty((2, 4, cs.stop - cs.start, n, th, tw + 1), dtype=x.dtype))
            r = along_first(AT, tmp.swapaxes(0, 1), np.empty((2, 2, *tmp.shape[2:]), dtype=x.dtype))
            # r[j, i, o, n, ti, tj] is y[n, o, 2ti + i, 2tj + j]; drop the junk tiles while interleaving
            np.copyto(y[:, cs].transpose(5, 3, 1, 0, 2, 4), r[..., :tw])

        by_channel_blocks(block, o)
        y = y.reshape(n, o, 2 * th, 2 * tw)
        oh, ow = geom.window.out_height, geom.window.out_width
        if (oh, ow) != y.shape[2:]:
            y = np.ascontiguousarray(y[:, :, :oh, :ow])
        return y, v

    def _grad_weight(self, dy, x, geom, saved):
        v = transform_input(x, geom) if saved is None else saved
        du = per_position(transform_output_grad(dy, geom), v.transpose(0, 1, 3, 2))   # (16, G, Og, Cg)
        du = du.reshape(4, 4, *geom.weight_shape[:2])
        gm = G.astype(dy.dtype)
        return np.einsum("ia,ijoc,jb->ocab", gm, du, gm)

    def _grad_input(self, dy, w, geom, saved):
        z, wt, geom_t = input_grad_problem(dy, w, geom)
        return self._forward(z, wt, geom_t)[0]
