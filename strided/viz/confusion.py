"""Confusion matrix: which classes the network mistakes for which.

``matrix[i, j]`` counts test images of true class i predicted as class j;
the diagonal holds the correct answers. The left panel shows the counts,
the right one each row divided by its total: the fraction of class i
predicted as j (the diagonal is then the per-class accuracy, or recall).
"""
from __future__ import annotations

import numpy as np

from . import _mpl

ANNOTATE_MAX = 20  # beyond this many classes the numbers no longer fit in the cells


def check_confusion(matrix) -> np.ndarray:
    m = np.asarray(matrix)
    if m.dtype.kind not in "iuf":
        raise TypeError(f"matrix must hold counts (integers), got dtype {m.dtype}")
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] == 0:
        raise ValueError(f"matrix must be a non-empty square (classes, classes) array, got shape {tuple(m.shape)}")
    if not np.all(np.isfinite(m)) or np.any(m < 0) or np.any(m != np.round(m)):
        raise ValueError("matrix must hold non-negative whole counts (true class i predicted as j)")
    return m.astype(np.int64)


def _annotate(ax, values, text, norm_values, fontsize):
    # dark cells get white text, light cells black text
    for (i, j), v in np.ndenumerate(values):
        shade = norm_values[i, j]
        ax.text(j, i, text(v), ha="center", va="center", fontsize=fontsize,
                color="white" if np.isfinite(shade) and shade > 0.5 else "black")


def plot_confusion(matrix, class_names, path, *, title: str | None = None, figsize=None, dpi: float = 100):
    """Draw the confusion matrix twice: counts, and row-normalised (each true class sums to 100%).

    matrix: (k, k) counts, ``matrix[i, j]`` = images of true class i predicted
    as j; class_names: k names (None: 0..k-1). Classes with no test image
    show as grey rows in the normalised panel. Writes ``path`` and returns it.
    """
    m = check_confusion(matrix)
    k = m.shape[0]
    names = _mpl.class_names("class_names", class_names, k)
    path = _mpl.check_path(path)
    dpi = _mpl.check_dpi(dpi)
    side = min(9.0, max(4.2, 0.45 * k + 1.8))
    figsize = _mpl.check_figsize(figsize, (2 * side + 1.6, side + 1.2))

    totals = m.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        rows = np.where(totals > 0, m / np.maximum(totals, 1), np.nan)
    fig = _mpl.new_figure(figsize, dpi)
    ax_c, ax_n = fig.subplots(1, 2)
    cmap = _mpl.colormap("Blues", bad=_mpl.BACKGROUND)
    vmax = max(int(m.max()), 1)
    im_c = ax_c.imshow(m, cmap=cmap, vmin=0, vmax=vmax)
    im_n = ax_n.imshow(rows, cmap=cmap, vmin=0, vmax=1)
    fontsize = 9 if k <= 10 else 7
    if k <= ANNOTATE_MAX:
        _annotate(ax_c, m, lambda v: f"{v:d}", m / vmax, fontsize)
        _annotate(ax_n, rows, lambda v: "–" if np.isnan(v) else f"{100 * v:.0f}%", rows, fontsize)
    for ax in (ax_c, ax_n):
        ax.set_xticks(range(k), names, rotation=45 if max(map(len, names)) > 3 else 0, ha="right")
        ax.set_yticks(range(k), names)
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class")
    ax_c.set_title(f"Counts ({int(m.sum())} images)")
    ax_n.set_title("Normalised by true class (row = 100%)")
    fig.colorbar(im_c, ax=ax_c, shrink=0.8, label="number of images")
    fig.colorbar(im_n, ax=ax_n, shrink=0.8, label="fraction of the true class", format="{x:.0%}")
    if title is None:
        acc = np.trace(m) / max(int(m.sum()), 1)
        title = f"Confusion matrix: accuracy {100 * acc:.2f}% (diagonal = correct)"
    fig.suptitle(title)
    return _mpl.save(fig, path, dpi)
