"""A grid of test images with the network's answer, mistakes marked in red."""
from __future__ import annotations

import numpy as np

from . import _mpl


def _labels(name, values, n, k):
    a = np.asarray(values)
    if a.dtype.kind not in "iu":
        raise TypeError(f"{name} must be integer class indices, got dtype {a.dtype}")
    if a.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) (one label per image), got {tuple(a.shape)}")
    if n and (a.min() < 0 or a.max() >= k):
        raise ValueError(f"{name} must be class indices in [0, {k}), got values from {a.min()} to {a.max()}")
    return a.astype(np.int64)


def pick_examples(predicted, true, count: int = 24) -> np.ndarray:
    """Indices of up to ``count`` examples: up to half of them mistakes, the rest correct, in dataset order.

    Showing only the first images would often show no mistake at all for a
    good network; this keeps the sample small and both kinds visible.
    """
    predicted, true = np.asarray(predicted), np.asarray(true)
    wrong = np.flatnonzero(predicted != true)
    right = np.flatnonzero(predicted == true)
    n_wrong = min(len(wrong), count // 2)
    n_right = min(len(right), count - n_wrong)
    n_wrong = min(len(wrong), count - n_right)
    return np.sort(np.concatenate([wrong[:n_wrong], right[:n_right]]))


def plot_predictions(images, predicted, true, class_names, path, *, ncols: int | None = None,
                     title: str | None = None, figsize=None, dpi: float = 100):
    """Draw images (N, C, H, W) in a grid, each titled with its predicted class; mistakes in red with the true class.

    predicted, true: (N,) class indices; class_names: the names (None: numbers).
    Gray for one channel, colour (min-max scaled per image) for three.
    Writes ``path`` and returns it. Keep N small (a few dozen): each image is its own panel.
    """
    x = _mpl.real_array("images", images, (4,), "(N, C, H, W)")
    n = x.shape[0]
    if x.shape[1] not in (1, 3):
        raise ValueError(f"images must have 1 or 3 channels (N, C, H, W), got shape {tuple(x.shape)}")
    if n > 100:
        raise ValueError(f"images holds {n} images; draw at most 100 (pick some with pick_examples)")
    k = len(class_names) if class_names is not None else int(max(np.max(predicted), np.max(true))) + 1
    names = _mpl.class_names("class_names", class_names, k)
    pred = _labels("predicted", predicted, n, k)
    true = _labels("true", true, n, k)
    if ncols is not None and (isinstance(ncols, bool) or not isinstance(ncols, int) or ncols < 1):
        raise ValueError(f"ncols must be a positive int or None, got {ncols!r}")
    path = _mpl.check_path(path)
    dpi = _mpl.check_dpi(dpi)
    rows, cols = _mpl.grid_shape(n, ncols or min(n, 8))
    figsize = _mpl.check_figsize(figsize, (1.45 * cols + 0.4, 1.75 * rows + 1.0))

    from matplotlib.patches import Patch

    fig = _mpl.new_figure(figsize, dpi)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_axis_off()
    for i in range(n):
        ax = axes[i]
        shown, cmap = _mpl.display_image(x[i])
        ax.imshow(shown, cmap=cmap, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ok = pred[i] == true[i]
        colour = _mpl.RIGHT_COLOUR if ok else _mpl.WRONG_COLOUR
        label = names[pred[i]] if ok else f"{names[pred[i]]}\n(true: {names[true[i]]})"
        ax.set_title(label, color=colour, fontsize=8)
        for spine in ax.spines.values():  # a coloured frame reads at a glance, even in a dense grid
            spine.set_edgecolor(colour)
            spine.set_linewidth(1.0 if ok else 2.5)
    wrong = int((pred != true).sum())
    fig.legend(handles=[Patch(facecolor="white", edgecolor=_mpl.RIGHT_COLOUR, linewidth=2,
                              label="correct (title: predicted class)"),
                        Patch(facecolor="white", edgecolor=_mpl.WRONG_COLOUR, linewidth=2,
                              label="mistake (title: predicted, then true class)")],
               loc="outside lower center", ncols=2, fontsize=8, frameon=False)
    if title is None:
        title = f"Predictions on {n} test images: {n - wrong} correct, {wrong} wrong"
    fig.suptitle(title)
    return _mpl.save(fig, path, dpi)
