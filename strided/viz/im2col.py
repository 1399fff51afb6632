"""How im2col lays out the windows of a small input (write-up 001's figures 1-3), drawn from the library's own code.

The input's pixels are numbered 1, 2, 3... (0 is padding), so every entry
of the window matrix says which pixel it copied. The matrix is the one
:func:`strided.conv.window_rows.window_matrix` builds for the real
convolution, and the output is what the ``strided`` algorithm computes:

    cols = window_matrix(x, geom)       # (kh*kw, OH*OW): column j = window j, row (a, b) = kernel tap
    y    = w.reshape(1, kh*kw) @ cols   # one matrix product computes every output pixel
"""
from __future__ import annotations

import numbers

import numpy as np

from . import _mpl

HIGHLIGHT = ("tab:red", "tab:blue", "tab:green", "tab:purple")
DEFAULT_KERNEL = ((1, 0, 0), (0, 1, 0), (0, 0, 1))  # sums a window's diagonal: easy to check by eye


def im2col_layout(size: int = 5, kernel=DEFAULT_KERNEL, stride: int = 1, padding: int = 0) -> dict:
    """Everything the figure shows for one convolution, computed by the library.

    Returns a dict: ``image`` (size, size) pixel numbers 1..size², ``padded``
    (the input the windows read, 0 = padding), ``cols`` (kh*kw, OH*OW) from
    ``window_matrix``, ``kernel`` (kh, kw), ``output`` (OH, OW) from the
    ``strided`` convolution algorithm, and ``geometry`` (a ``ConvGeometry``).
    """
    from ..conv import get
    from ..conv.window_rows import window_matrix
    from ..geometry import ConvGeometry
    from ..windows import pad

    if isinstance(size, bool) or not isinstance(size, numbers.Integral) or not 1 <= size <= 9:
        raise ValueError(f"size must be an int from 1 to 9 (a figure-sized input), got {size!r}")
    k = _mpl.real_array("kernel", kernel, (2,), "(kh, kw)")
    if max(k.shape) > 5:
        raise ValueError(f"kernel must be at most 5x5 to fit the figure, got shape {k.shape}")
    x = np.arange(1, size * size + 1, dtype=np.float64).reshape(1, 1, size, size)
    w = k.reshape(1, 1, *k.shape)
    geom = ConvGeometry.create(x.shape, w.shape, stride=stride, padding=padding)
    cols = window_matrix(x, geom)[0, 0]                       # (kh*kw, OH*OW)
    y, _ = get("window_rows").forward(x, w, geom)
    return {"image": x[0, 0], "padded": pad(x, geom.padding)[0, 0], "cols": cols, "kernel": k,
            "output": y[0, 0], "geometry": geom}


def _number(v: float) -> str:
    return f"{v:.0f}" if float(v).is_integer() else f"{v:.2g}"


def _grid(ax, values, fills, *, edge="#888888", fontsize=9, bold=None):
    """A table of numbers: values (r, c), fills (r, c, 4) RGBA cell colours."""
    ax.imshow(fills, interpolation="nearest", aspect="equal")
    r, c = values.shape
    for (i, j), v in np.ndenumerate(values):
        weight = "bold" if bold is not None and bold[i, j] else "normal"
        ax.text(j, i, _number(v), ha="center", va="center", fontsize=fontsize, fontweight=weight)
    ax.set_xticks(np.arange(-0.5, c), minor=True)
    ax.set_yticks(np.arange(-0.5, r), minor=True)
    ax.grid(which="minor", color=edge, linewidth=0.8)
    ax.tick_params(which="minor", length=0)
    ax.tick_params(which="major", length=0, labelsize=8)


def _rgba(colour, alpha):
    from matplotlib.colors import to_rgba

    r, g, b, _ = to_rgba(colour)
    return (r, g, b, alpha)


def _highlighted(oh: int, ow: int) -> list[int]:
    """Window indices to outline: the first, its right neighbour, the one below and the last (unique)."""
    picks = [0, 1, ow, oh * ow - 1]
    out = []
    for p in picks:
        if 0 <= p < oh * ow and p not in out:
            out.append(p)
    return out[: len(HIGHLIGHT)]


CELL = 0.38          # inches per table cell, the same in every panel so the tables can be compared
GAPS = (0.75, 1.25, 0.85, 1.0, 0.6)  # left margin, then the gaps before matrix, kernel, output; right margin
ROW_TOP, ROW_BOTTOM = 1.15, 0.65    # room for the row title and panel titles / the x labels


def _row_size(lay) -> tuple[float, float]:
    """(width, height) in inches of one stride's row of panels."""
    win = lay["geometry"].window
    columns = lay["padded"].shape[1] + lay["cols"].shape[1] + win.kernel[1] + win.out_width
    rows = max(lay["cols"].shape[0], lay["padded"].shape[0])
    return CELL * columns + sum(GAPS), CELL * rows + ROW_TOP + ROW_BOTTOM


def _draw_row(fig, lay, stride, top: float, size: tuple[float, float]):
    """Draw one stride's panels with their top edge ``top`` inches below the figure's top."""
    from matplotlib.patches import Rectangle

    geom = lay["geometry"]
    win = geom.window
    kh, kw = win.kernel
    oh, ow = win.out_height, win.out_width
    ptop, _, left, _ = win.padding
    padded, cols, out = lay["padded"], lay["cols"], lay["output"]
    picks = _highlighted(oh, ow)
    colour_of = {p: HIGHLIGHT[i] for i, p in enumerate(picks)}

    fig_w, fig_h = size
    max_rows = max(cols.shape[0], padded.shape[0])
    centre = top + ROW_TOP + CELL * max_rows / 2   # inches from the top: every panel centred on this line
    x = GAPS[0]
    axes = []
    for (r, c), gap in zip((padded.shape, cols.shape, (kh, kw), out.shape), GAPS[1:]):
        y_top = centre - CELL * r / 2
        axes.append(fig.add_axes((x / fig_w, 1 - (y_top + CELL * r) / fig_h, CELL * c / fig_w, CELL * r / fig_h)))
        x += CELL * c + gap
    ax_in, ax_cols, ax_k, ax_out = axes
    fig.text(0.5, 1 - (top + 0.3) / fig_h, f"stride {stride}: {oh}×{ow} = {oh * ow} windows, so {oh * ow} columns",
             ha="center", va="center", fontsize=11, fontweight="bold")

    # input: numbered pixels, padding grey, highlighted windows outlined
    fills = np.ones((*padded.shape, 4))
    is_pad = np.ones(padded.shape, dtype=bool)
    is_pad[ptop:ptop + win.height, left:left + win.width] = False
    fills[is_pad] = _rgba("0.85", 1.0)
    _grid(ax_in, padded, fills)
    for n, p in enumerate(picks):
        i, j = divmod(p, ow)
        r0, c0 = i * win.stride[0], j * win.stride[1]
        inset = 0.07 + 0.07 * n  # nested outlines stay distinguishable where windows overlap
        ax_in.add_patch(Rectangle((c0 - 0.5 + inset, r0 - 0.5 + inset), kw - 2 * inset, kh - 2 * inset,
                                  fill=False, edgecolor=colour_of[p], linewidth=2.2))
    ax_in.set_xticks(range(padded.shape[1]), [str(c - left) for c in range(padded.shape[1])])
    ax_in.set_yticks(range(padded.shape[0]), [str(r - ptop) for r in range(padded.shape[0])])
    ax_in.set_xlabel("column")
    ax_in.set_ylabel("row")
    pad_note = f"\npadding {ptop} (grey 0s)" if ptop or left else ""
    ax_in.set_title(f"input {win.height}×{win.width}, pixels numbered{pad_note}\n"
                    f"{kh}×{kw} windows, stride {stride}", fontsize=10)

    # window matrix: one column per window, one row per kernel tap
    fills = np.ones((*cols.shape, 4))
    for p, colour in colour_of.items():
        fills[:, p] = _rgba(colour, 0.22)
    fills[cols == 0] = _rgba("0.85", 1.0)  # pixels are numbered from 1, so a 0 was read from the padding
    _grid(ax_cols, cols, fills)
    ax_cols.set_xticks(range(cols.shape[1]), [str(j) for j in range(cols.shape[1])])
    for p, colour in colour_of.items():
        ax_cols.get_xticklabels()[p].set_color(colour)
        ax_cols.get_xticklabels()[p].set_fontweight("bold")
    ax_cols.xaxis.set_ticks_position("top")
    ax_cols.set_yticks(range(kh * kw), [f"({a},{b})" for a in range(kh) for b in range(kw)])
    ax_cols.set_xlabel("column j = window j = output pixel j (row by row)", fontsize=9)
    ax_cols.set_ylabel("row = kernel tap (a, b)")
    ax_cols.set_title(f"window matrix (im2col) {cols.shape[0]}×{cols.shape[1]}: window_matrix(x, geom)",
                      fontsize=10, pad=16)

    # kernel and output
    _grid(ax_k, lay["kernel"], np.tile(_rgba("gold", 0.35), (*lay["kernel"].shape, 1)))
    ax_k.set_xticks(range(kw))
    ax_k.set_yticks(range(kh))
    ax_k.set_xlabel("b")
    ax_k.set_ylabel("a")
    ax_k.set_title(f"kernel w {kh}×{kw}\n(flattened: a row of {kh * kw})", fontsize=10)
    fills = np.ones((*out.shape, 4))
    for p, colour in colour_of.items():
        fills[divmod(p, ow)] = _rgba(colour, 0.3)
    _grid(ax_out, out, fills)
    ax_out.set_xticks(range(ow))
    ax_out.set_yticks(range(oh))
    ax_out.set_xlabel("output column")
    ax_out.set_ylabel("output row")
    ax_out.set_title(f"output {oh}×{ow} =\nw row @ window matrix", fontsize=10)


def plot_im2col(path, *, size: int = 5, kernel=DEFAULT_KERNEL, strides=(1, 2), padding: int = 0,
                title: str | None = None, figsize=None, dpi: float = 100):
    """Draw how im2col turns a small numbered input into the window matrix, one row of panels per stride.

    Each row: the input (size×size, pixels numbered, a few windows outlined),
    the window matrix from :func:`strided.conv.window_rows.window_matrix` (the
    outlined windows' columns in the same colours), the kernel, and the
    output of the library's convolution, all with the same cell size.
    Writes ``path`` and returns it.
    """
    if isinstance(strides, (int, np.integer)):
        strides = (strides,)
    if not isinstance(strides, (tuple, list)) or not 1 <= len(strides) <= 4:
        raise ValueError(f"strides must be a tuple of 1 to 4 strides, got {strides!r}")
    layouts = [im2col_layout(size, kernel, s, padding) for s in strides]
    path = _mpl.check_path(path)
    dpi = _mpl.check_dpi(dpi)
    sizes = [_row_size(lay) for lay in layouts]
    title_h = 0.6
    natural = (max(w for w, _ in sizes), title_h + sum(h for _, h in sizes))
    # Panels are placed in inches of the natural size; an explicit figsize rescales the whole layout.
    figsize = _mpl.check_figsize(figsize, natural)

    fig = _mpl.new_figure(figsize, dpi, layout=None)
    top = title_h
    for lay, s, (_, h) in zip(layouts, strides, sizes):
        _draw_row(fig, lay, s, top, natural)
        top += h
    if title is None:
        kh, kw = layouts[0]["kernel"].shape
        title = (f"im2col: each {kh}×{kw} window of the input becomes one column;\n"
                 "the convolution is then one matrix product")
    fig.text(0.5, 1 - 0.32 / natural[1], title, ha="center", va="center", fontsize=12)
    return _mpl.save(fig, path, dpi)
