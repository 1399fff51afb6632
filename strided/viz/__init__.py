"""Figures that look inside a network: training curves, filters, feature maps, confusion matrix, predictions, im2col.

Needs matplotlib (``pip install strided[viz]``); importing this package
does not, so only drawing fails, with that command in the message. Figures
are drawn on matplotlib's Agg canvas without pyplot: no display, no
window, no change to the global backend. Every function takes plain data
and a destination path, writes the file atomically and returns the path.

    from strided import viz
    viz.plot_curves(history, "curves.png")                  # loss / accuracy / lr per epoch
    viz.plot_filters(model, "filters.png", initial_model)   # first conv layer, before and after
    viz.plot_feature_maps(model, image, "maps.png")         # image (C, H, W) and each conv layer's output
    viz.plot_confusion(matrix, class_names, "confusion.png")
    viz.plot_predictions(images, predicted, true, class_names, "predictions.png")
    viz.plot_im2col("im2col.png")                           # how the window matrix is laid out
    viz.plot_run("runs/lenet5-fashion-mnist-...")           # all of the above + report.md
    fit(..., run_dir=d, callbacks=[viz.FigureCallback()])   # curves and filters at the end of training

``strided plot RUN_DIR`` (or ``python -m strided.viz RUN_DIR``) runs :func:`plot_run`.
"""
from ._mpl import INSTALL_HINT
from .confusion import plot_confusion
from .curves import plot_curves
from .feature_maps import feature_maps, plot_feature_maps
from .filters import find_first_conv, plot_filters
from .im2col import im2col_layout, plot_im2col
from .predictions import pick_examples, plot_predictions
from .report import render_report, write_report
from .run import FigureCallback, plot_run, plot_training

__all__ = [
    "FigureCallback",
    "INSTALL_HINT",
    "feature_maps",
    "find_first_conv",
    "im2col_layout",
    "pick_examples",
    "plot_confusion",
    "plot_curves",
    "plot_feature_maps",
    "plot_filters",
    "plot_im2col",
    "plot_predictions",
    "plot_run",
    "plot_training",
    "render_report",
    "write_report",
]
