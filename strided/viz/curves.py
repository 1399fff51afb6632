"""Training curves: loss and accuracy per epoch, train against validation, and the learning rate.

Reading them: the training loss should fall; when the validation loss
turns up while the training loss keeps falling, the network has started
to memorise the training set (overfitting). A learning-rate panel is added
when a scheduler changed the rate during the run.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from . import _mpl

REQUIRED = ("epoch", "train_loss")
OPTIONAL = ("train_acc", "val_loss", "val_acc", "lr")


def _series(history, key: str, n: int) -> np.ndarray | None:
    """history[key] as floats (None -> NaN), or None when absent, empty or all missing."""
    values = history.get(key)
    if values is None or len(values) == 0:
        return None
    if len(values) != n:
        raise ValueError(f"history[{key!r}] has {len(values)} values but history['epoch'] has {n}; "
                         "expected one value per epoch")
    out = np.empty(n)
    for i, v in enumerate(values):
        if v is None:
            out[i] = np.nan
        elif isinstance(v, numbers.Real) and not isinstance(v, bool):
            out[i] = float(v)
        else:
            raise TypeError(f"history[{key!r}][{i}] must be a number or None, got {v!r}")
    return None if np.all(np.isnan(out)) else out


def check_history(history) -> dict[str, np.ndarray]:
    """Validate a history dict and return its per-epoch series as float arrays (absent series left out)."""
    if not hasattr(history, "get") or not hasattr(history, "keys"):
        raise TypeError(f"history must be a dict of per-epoch lists, got {type(history).__name__}")
    missing = [k for k in REQUIRED if not history.get(k)]
    if missing:
        raise ValueError(f"history must have non-empty lists {list(REQUIRED)}; missing or empty: {missing} "
                         f"(got keys {sorted(history.keys())})")
    n = len(history["epoch"])
    out = {}
    for key in REQUIRED + OPTIONAL:
        s = _series(history, key, n)
        if s is not None:
            out[key] = s
    if np.isnan(out["epoch"]).any():
        raise ValueError("history['epoch'] must not contain None")
    return out


def _plot_pair(ax, epochs, train, val, ylabel):
    # Markers make a one- or two-epoch run visible; lines alone would be invisible dots.
    marker = "o" if len(epochs) <= 30 else None
    if train is not None:
        ax.plot(epochs, train, marker=marker, color=_mpl.TRAIN_COLOUR, label="train")
    if val is not None:
        ax.plot(epochs, val, marker=marker, color=_mpl.VAL_COLOUR, label="validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.legend()


def plot_curves(history, path, *, title: str | None = None, figsize=None, dpi: float = 100):
    """Plot loss and accuracy per epoch (train and validation) and, if it changed, the learning rate.

    history: dict of per-epoch lists with keys ``'epoch'`` and ``'train_loss'``
    (required) and ``'train_acc'``, ``'val_loss'``, ``'val_acc'``, ``'lr'``
    (optional; empty lists or ``None`` entries mean "not recorded").
    Accuracies are fractions in [0, 1] and are shown as percentages.
    Writes the figure to ``path`` (PNG unless the suffix says otherwise) and returns it.
    """
    series = check_history(history)
    path = _mpl.check_path(path)
    dpi = _mpl.check_dpi(dpi)
    lr = series.get("lr")
    show_lr = lr is not None and np.nanmax(lr) != np.nanmin(lr)
    show_acc = "train_acc" in series or "val_acc" in series
    panels = 1 + show_acc + show_lr
    figsize = _mpl.check_figsize(figsize, (4.2 * panels + 0.4, 3.8))

    from matplotlib.ticker import MaxNLocator, PercentFormatter

    fig = _mpl.new_figure(figsize, dpi)
    axes = fig.subplots(1, panels, squeeze=False)[0]
    epochs = series["epoch"]
    _plot_pair(axes[0], epochs, series["train_loss"], series.get("val_loss"), "loss")
    axes[0].set_title("Loss (lower is better)")
    if show_acc:
        ax = axes[1]
        _plot_pair(ax, epochs, series.get("train_acc"), series.get("val_acc"), "accuracy")
        ax.yaxis.set_major_formatter(PercentFormatter(xmax=1))
        ax.set_title("Accuracy (higher is better)")
    if show_lr:
        ax = axes[-1]
        ax.plot(epochs, lr, marker="o" if len(epochs) <= 30 else None, color="tab:purple", label="learning rate")
        ax.set_xlabel("epoch")
        ax.set_ylabel("learning rate")
        positive = lr[~np.isnan(lr)]
        if positive.min() > 0 and positive.max() / positive.min() > 20:
            ax.set_yscale("log")  # step schedules span decades
        ax.grid(True, alpha=0.3)
        ax.legend()
        ax.set_title("Learning rate (scheduler)")
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if title is None:
        n = len(epochs)
        title = f"Training curves ({n} epoch{'s' if n != 1 else ''})"
        final = series.get("val_acc", series.get("train_acc"))
        if final is not None and not math.isnan(final[-1]):
            which = "validation" if "val_acc" in series else "train"
            title += f": final {which} accuracy {100 * final[-1]:.2f}%"
    fig.suptitle(title)
    if "val_loss" in series or "val_acc" in series:
        # why validation can beat training early on: the train numbers include the epoch's first, worse batches
        fig.supxlabel("train: mean over the epoch's batches while the weights change; "
                      "validation: measured once at the end of the epoch", fontsize=8, color="0.35")
    return _mpl.save(fig, path, dpi)
