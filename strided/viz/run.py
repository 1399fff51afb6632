"""Every figure of a saved training run, and its ``report.md``.

A run directory (written by ``strided train``) holds::

    config.json         settings: model, dataset, classes, class_names, standardize, seed...
    history.json        per-epoch lists: epoch, train_loss, train_acc, val_loss, val_acc, lr...
    model.npz           the trained model (strided.io.load)
    model_initial.npz   the model before training (for the before/after filters)
    metrics.json        test_accuracy, test_loss, per_class_accuracy, confusion, class_names

:func:`plot_run` draws what those files allow and says why it skipped the
rest; :func:`plot_training` is the part that needs only the history and
the model, which :class:`FigureCallback` draws at the end of ``fit``.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .confusion import plot_confusion
from .curves import plot_curves
from .feature_maps import plot_feature_maps
from .filters import find_first_conv, plot_filters
from .im2col import plot_im2col
from .predictions import pick_examples, plot_predictions
from .report import write_report
from ..train import Callback, predict_labels

PREDICT_AT_MOST = 2000   # test images run through the model to find examples (mistakes included)
SHOW = 24                # images in predictions.png


def _read_json(path: Path, log):
    if not path.exists():
        log(f"{path.name} not found in {path.parent}: skipping what needs it")
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        log(f"{path} could not be read ({exc}): skipping what needs it")
        return None


def _load_model(path: Path, log):
    if not path.exists():
        return None
    from .. import io

    try:
        return io.load(path)
    except (OSError, ValueError, KeyError, TypeError) as exc:  # a corrupt file must not stop the other figures
        log(f"{path} could not be loaded ({exc}): skipping what needs it")
        return None


def _predict(model, images: np.ndarray, batch_size: int = 500) -> np.ndarray:
    """Class predictions (N,) with the rule the training loop uses for the model's output."""
    from .. import nn

    last = list(model.modules())[-1]
    # one output unit: a probability after a final Sigmoid, otherwise a logit (threshold 0)
    rule = nn.BCELoss() if isinstance(last, nn.Sigmoid) else nn.BCEWithLogitsLoss()
    was_training = model.training
    model.eval()
    try:
        out = [predict_labels(rule, model(images[i:i + batch_size].astype(model.dtype, copy=False)))
               for i in range(0, len(images), batch_size)]
    finally:
        model.train(was_training)
    return np.concatenate(out)


def _test_images(config, data_root, log):
    """The run's test split, standardised as in training, or (None, None) with a message."""
    if not config or not config.get("dataset"):
        log("no dataset named in config.json: skipping the image figures (feature maps, predictions)")
        return None, None
    from .. import data

    classes = config.get("classes")
    try:
        ds = data.load_dataset(config["dataset"], root=data_root, classes=None if classes is None else tuple(classes))
    except (OSError, ValueError, KeyError, TypeError) as exc:  # not found, unknown name, corrupt file
        log(f"could not load the test images of {config['dataset']!r} ({exc}): "
            "skipping the image figures (feature maps, predictions)")
        return None, None
    images, labels = ds.test.images[:PREDICT_AT_MOST], ds.test.labels[:PREDICT_AT_MOST]
    if config.get("standardize"):
        images = data.Standardize.from_state_dict(config["standardize"])(images)
    else:
        log("config.json has no 'standardize' statistics: showing the model raw pixel values")
        images = images.astype(np.float32)
    return images, labels


def plot_training(run_dir, history, model=None, initial=None, *, log=print, dpi: float = 100) -> list[Path]:
    """Write ``curves.png`` and, when the model has a conv layer, ``filters.png`` into ``run_dir``.

    history: the dict ``fit`` returns; model: the trained model; initial:
    the model (or first-layer weights) before training, for the before/after
    comparison. Returns the files written. Without matplotlib, logs how to
    install it and returns [] (training results matter more than figures).
    """
    from ._mpl import require_matplotlib

    try:
        require_matplotlib()
    except ImportError as exc:
        log(f"no figures: {exc}")
        return []
    run_dir = Path(run_dir)
    written = [plot_curves(history, run_dir / "curves.png", dpi=dpi)]
    if model is not None:
        conv = find_first_conv(model)
        if conv is None:
            log("the model has no Conv2d layer: no filter plot")
        else:
            written.append(plot_filters(conv.weight.data, run_dir / "filters.png", initial, dpi=dpi))
    return written


class FigureCallback(Callback):
    """Draw ``curves.png`` and ``filters.png`` (first conv layer, before and after) into fit's run directory.

    Pass it to ``fit(..., run_dir=..., callbacks=[FigureCallback()])``. The
    "before" filters are the model's weights when training begins, or on
    resume those in the run's ``model_initial.npz`` (none when it is absent).
    Args: dpi: resolution of the figures.
    """

    def __init__(self, dpi: float = 100):
        self.dpi = dpi
        self.initial = None

    def on_train_begin(self, trainer):
        if trainer.run_dir is None:
            raise ValueError("FigureCallback draws into fit's run directory: pass run_dir=... to fit, got none")
        conv = find_first_conv(trainer.model)
        self.initial = None
        if conv is None:
            return
        if trainer.resumed_from is None:
            self.initial = conv.weight.data.copy()
            return
        start = trainer.run_dir / "model_initial.npz"
        if start.exists():
            from .. import io

            first = find_first_conv(io.load(start))
            self.initial = None if first is None else first.weight.data.copy()

    def on_train_end(self, trainer):
        if not trainer.writer:   # data-parallel training: rank 0 alone draws
            return
        plot_training(trainer.run_dir, trainer.history, trainer.model, self.initial, log=trainer.log, dpi=self.dpi)


def plot_run(run_dir, images=None, labels=None, *, model=None, initial_model=None, data_root=None, log=print,
             dpi: float = 100) -> list[Path]:
    """Draw every figure a saved run allows into ``run_dir`` and write ``report.md``; returns the files written.

    Figures: curves.png (history.json), filters.png (first conv layer, before
    and after when model_initial.npz exists), feature_maps.png and
    predictions.png (test images), confusion.png (metrics.json), im2col.png.
    images (N, C, H, W), labels (N,): test images prepared as the model
    expects them (standardised); when omitted, the test split of the run's
    dataset is loaded (``data_root`` as in ``strided.data.load_dataset``) and
    standardised with the statistics in config.json. ``model`` /
    ``initial_model`` replace model.npz / model_initial.npz. Whatever cannot
    be drawn is skipped with a message through ``log``.
    """
    from ._mpl import require_matplotlib

    require_matplotlib()
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run_dir {str(run_dir)!r} is not a directory (expected a run directory "
                                "with config.json, history.json, model.npz, metrics.json)")
    config = _read_json(run_dir / "config.json", log) or {}
    history = _read_json(run_dir / "history.json", log)
    metrics = _read_json(run_dir / "metrics.json", log)
    if model is None:
        model = _load_model(run_dir / "model.npz", log)
        if model is None and not (run_dir / "model.npz").exists():
            log(f"model.npz not found in {run_dir}: skipping the filter, feature-map and prediction figures")
    if initial_model is None:
        initial_model = _load_model(run_dir / "model_initial.npz", log)
    names = (metrics or {}).get("class_names") or config.get("class_names")
    written, notes = [], []

    def note(msg):
        notes.append(msg)
        log(msg)

    if history:
        written.append(plot_curves(history, run_dir / "curves.png", dpi=dpi))
    conv = None if model is None else find_first_conv(model)
    if model is not None and conv is None:
        note("the model has no Conv2d layer: skipping the filter and feature-map plots")
    if conv is not None:
        before = None
        if initial_model is not None:
            first = find_first_conv(initial_model)
            if first is not None and first.weight.shape == conv.weight.shape:
                before = first.weight.data
        written.append(plot_filters(conv.weight.data, run_dir / "filters.png", before, dpi=dpi))
    if metrics and metrics.get("confusion"):
        written.append(plot_confusion(metrics["confusion"], names, run_dir / "confusion.png", dpi=dpi))
    if model is not None:
        if images is None:
            images, labels = _test_images(config, data_root, note)
        elif labels is None:
            raise ValueError("labels must be given with images (one class index per image)")
        if images is not None:
            images = np.asarray(images)[:PREDICT_AT_MOST]
            labels = np.asarray(labels)[:PREDICT_AT_MOST]
            if conv is not None:
                written.append(plot_feature_maps(model, images[0], run_dir / "feature_maps.png", dpi=dpi))
            pred = _predict(model, images)
            pick = pick_examples(pred, labels, SHOW)
            written.append(plot_predictions(images[pick], pred[pick], labels[pick], names,
                                            run_dir / "predictions.png", dpi=dpi))
    written.append(plot_im2col(run_dir / "im2col.png", dpi=dpi))
    title = f"Run {run_dir.resolve().name}"
    written.append(write_report(run_dir / "report.md", title, config=config, history=history, metrics=metrics,
                                figures=[p.name for p in written], notes=notes))
    return written
