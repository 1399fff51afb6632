"""The first layer's filters as images, before and after training (write-up 003).

A first-layer filter looks at raw pixels, so its weights can be drawn as a
small picture: after training, many become edge or blob detectors
(positive on one side, negative on the other). Both panels share one
symmetric colour scale centred on zero, so "white" means a zero weight and
a filter that barely changed looks the same in both panels.
"""
from __future__ import annotations

import numpy as np

from . import _mpl


def find_first_conv(model):
    """The first ``Conv2d`` of ``model`` in registration (forward) order, or None when there is none."""
    from ..nn import Conv2d, Module

    if not isinstance(model, Module):
        raise TypeError(f"model must be a strided Module, got {type(model).__name__}")
    for m in model.modules():
        if isinstance(m, Conv2d):
            return m
    return None


def _weights(name, w):
    from ..nn import Module

    if isinstance(w, Module):  # a model or a layer: take its first conv's weights
        conv = find_first_conv(w)
        if conv is None:
            raise ValueError(f"{name} is a {type(w).__name__} without a Conv2d layer; expected conv weights")
        w = conv.weight.data
    return _mpl.real_array(name, w, (4,), "(out_channels, in_channels, kh, kw)")


def _mosaic(w: np.ndarray) -> tuple[np.ndarray, int]:
    """One tile per (out, in) pair, one row per output channel; a near-square grid when in_channels is 1."""
    out_c, in_c, kh, kw = w.shape
    if in_c == 1:
        return _mpl.tile(w[:, 0]), 0
    return _mpl.tile(w.reshape(out_c * in_c, kh, kw), ncols=in_c), in_c


def plot_filters(weights_after, path, weights_before=None, *, title: str | None = None, max_filters: int | None = 64,
                 figsize=None, dpi: float = 100):
    """Draw every first-layer filter as an image; with ``weights_before``, before and after side by side.

    weights_after, weights_before: (out_channels, in_channels, kh, kw) arrays,
    or models/layers whose first ``Conv2d`` is taken. One tile per
    (output, input) channel pair (a row per output channel), or one tile per
    filter when in_channels is 1. ``max_filters`` keeps the first output
    channels of a wide layer readable (None: all).
    Writes the figure to ``path`` and returns it.
    """
    after = _weights("weights_after", weights_after)
    before = None if weights_before is None else _weights("weights_before", weights_before)
    if before is not None and before.shape != after.shape:
        raise ValueError(f"weights_before must have the shape of weights_after {after.shape}, got {before.shape}")
    if max_filters is not None and (isinstance(max_filters, bool) or not isinstance(max_filters, int)
                                    or max_filters < 1):
        raise ValueError(f"max_filters must be a positive int or None, got {max_filters!r}")
    path = _mpl.check_path(path)
    dpi = _mpl.check_dpi(dpi)
    shape = after.shape
    shown = shape[0] if max_filters is None else min(shape[0], max_filters)
    after = after[:shown]
    before = None if before is None else before[:shown]

    panels = [(before, "before training"), (after, "after training")] if before is not None else [(after, None)]
    mosaics = [(_mosaic(w), label) for w, label in panels]
    (m0, in_cols), _ = mosaics[0]
    aspect = m0.shape[1] / m0.shape[0]
    panel_h = 4.0
    default = (len(panels) * max(2.2, panel_h * aspect) + 1.6, panel_h + 1.0)
    figsize = _mpl.check_figsize(figsize, default)

    # symmetric around zero so the diverging colormap's white is exactly a zero weight
    vmax = max(float(np.abs(w).max()) for w, _ in panels) or 1.0
    cmap = _mpl.colormap("RdBu_r")
    fig = _mpl.new_figure(figsize, dpi)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    kh, kw = shape[2], shape[3]
    for ax, ((mosaic, in_cols), label) in zip(axes, mosaics):
        im = ax.imshow(mosaic, cmap=cmap, vmin=-vmax, vmax=vmax, interpolation="nearest")
        if in_cols:
            ax.set_xticks(_mpl.tile_centres(in_cols, kw), [str(i) for i in range(in_cols)])
            ax.set_yticks(_mpl.tile_centres(shown, kh), [str(i) for i in range(shown)])
            ax.set_xlabel("input channel")
            ax.set_ylabel("filter (output channel)")
        else:
            _, cols = _mpl.grid_shape(shown)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel(_mpl.count(shown, "filter") + (", numbered row by row" if shown > 1 else ""))
            # each tile's index in its corner, so the two panels can be compared filter by filter
            for k in range(shown if shown > 1 else 0):
                r, c = divmod(k, cols)
                ax.text(c * (kw + 1) - 0.45, r * (kh + 1) - 0.45, str(k), fontsize=7, va="top", ha="left",
                        color="black", bbox={"boxstyle": "square,pad=0.05", "fc": "white", "ec": "none", "alpha": 0.7})
        if label:
            ax.set_title(label)
    fig.colorbar(im, ax=list(axes), shrink=0.8, label="weight value (0 = white)")
    if title is None:
        title = f"First conv layer: {_mpl.count(shape[0], 'filter')} of {shape[1]}×{shape[2]}×{shape[3]}"
        if shown < shape[0]:
            title += f" (first {shown} shown)"
    fig.suptitle(title)
    return _mpl.save(fig, path, dpi)
