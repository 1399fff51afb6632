"""Training runs kept in a directory: the layout of a run directory and the workflow that fills it.

``strided train`` and ``strided reproduce fashion-10`` train through :func:`train`
(``strided train --resume`` through :func:`resume`), ``strided evaluate``
measures through :func:`evaluate`. A run directory holds::

    config.json         every setting, the seed, class_names, image_shape, the standardisation statistics
    model_initial.npz   the model before training (for the before/after filters)
    checkpoint.npz      before epoch 1 and after every epoch: model, optimizer, scheduler, history, random states (``fit``)
    history.json        after every epoch: per-epoch lists (``fit``), and the same as history.csv
    best.npz            the model of the epoch with the best validation accuracy (when there is a validation split)
    model.npz           the trained model, with its input shape, class names and standardisation
    metrics.json        test_accuracy, test_loss, per_class_accuracy, confusion, class_names
    *.png, report.md    the figures and the report (``strided.viz.plot_run``)

Every file is written atomically (``strided.io.atomic_write``).

Under an MPI launcher (``mpiexec -n N python -m strided train``) a run trains
data-parallel over the N processes (``fit(distributed=...)``, docs/distributed.md):
every process checks the settings and loads the data, rank 0 alone names the run
directory, writes every file and prints; ``distributed=False`` trains each
process alone, as a plain single-process run.

Examples::

    from strided import runs
    runs.train(runs.config(model="lenet5", epochs=2), "runs/lenet5")   # 0: complete, 130: interrupted
    runs.resume("runs/lenet5", epochs=3)                                # continue it exactly, one more epoch
    config, class_names, metrics = runs.evaluate("runs/lenet5")
"""
from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

# the files this module writes (fit writes train.CHECKPOINT and train.HISTORY)
CONFIG = "config.json"
MODEL_INITIAL = "model_initial.npz"
MODEL = "model.npz"
METRICS = "metrics.json"

# images per forward pass when validating and testing: the activations of a larger batch would dominate
# the run's memory (the dataset itself stays uint8)
EVAL_BATCH_SIZE = 256
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adagrad")
SCHEDULERS = ("none", "step", "cosine")
DEFAULTS = dict(model="lenet5", dataset="fashion-mnist", classes=None, epochs=5, batch_size=64,
                optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=0.0, scheduler="cosine", step_size=10,
                augment=False, valid_fraction=0.1, seed=0, patience=0, algorithm="auto")


def config(**settings) -> dict:
    """Every setting of a run: ``DEFAULTS`` with each of ``settings`` that is not None in its place.

    settings: any keys of ``DEFAULTS`` (model, dataset, classes, epochs, batch_size, optimizer, lr, ...).
    Returns a new dict with exactly the keys of ``DEFAULTS``.
    """
    unknown = sorted(set(settings) - set(DEFAULTS))
    if unknown:
        raise TypeError(f"unknown run settings {unknown}; expected some of: {', '.join(DEFAULTS)}")
    return {k: (settings[k] if settings.get(k) is not None else v) for k, v in DEFAULTS.items()}


def validate(settings: dict) -> None:
    """Raise ValueError/TypeError naming the first bad setting of a run (a :func:`config` dict).

    Checks everything that can be checked without reading data, so that
    :func:`train` and :func:`resume` refuse a bad run before writing anything:
    names (model, dataset, optimizer, scheduler, algorithm), positive
    ``epochs``/``batch_size``/``step_size``/``lr``, ``valid_fraction`` in [0, 1),
    at least two ``classes``, and ``patience`` only with a validation split.
    Messages use the command line's option names (``--batch-size``).
    """
    from . import _checks, conv, models
    from .data import dataset_info
    _checks.choice("model", settings["model"], tuple(models.MODELS))
    dataset_info(settings["dataset"])
    _checks.choice("optimizer", settings["optimizer"], OPTIMIZERS)
    _checks.choice("scheduler", settings["scheduler"], SCHEDULERS)
    _checks.choice("algorithm", settings["algorithm"], conv.names())
    for key in ("epochs", "batch_size", "step_size"):
        _checks.positive_int(_option(key), settings[key])
    _checks.positive_float(_option("lr"), settings["lr"])
    for key in ("momentum", "weight_decay"):
        _checks.positive_float(_option(key), settings[key], allow_zero=True)
    for key in ("seed", "patience"):
        if _checks.integer(_option(key), settings[key]) < 0:
            raise ValueError(f"{_option(key)} must be a non-negative int, got {settings[key]!r}")
    fraction = _checks.positive_float(_option("valid_fraction"), settings["valid_fraction"], allow_zero=True)
    if fraction >= 1:
        raise ValueError(f"--valid-fraction must be in [0, 1), got {fraction!r}")
    if settings["patience"] and fraction == 0:
        raise ValueError(f"--patience {settings['patience']} needs a validation split to watch, but "
                         "--valid-fraction is 0: give --valid-fraction (e.g. 0.1) or leave out --patience")
    classes = settings["classes"]
    if classes is not None and len(set(classes)) < 2:
        raise ValueError(f"--classes must name at least two distinct classes to train a classifier, got "
                         f"{','.join(map(str, classes)) or 'none'}")
    if settings["model"] == "two_class_net" and classes is not None and len(classes) != 2:
        raise ValueError(f"two_class_net needs exactly two classes (e.g. --classes 1,3), got {len(classes)}")


def _option(key: str) -> str:
    """The command-line option of the setting ``key``: ``'batch_size'`` -> ``'--batch-size'``."""
    return "--" + key.replace("_", "-")


def default_run_dir(model: str, dataset: str) -> Path:
    """``runs/<model>-<dataset>-<YYYYmmdd-HHMMSS>``, relative to the working directory."""
    return Path("runs") / f"{model}-{dataset}-{time.strftime('%Y%m%d-%H%M%S')}"


def make_optimizer(name: str, params, lr: float, momentum: float, weight_decay: float):
    """The optimizer ``name`` (one of ``OPTIMIZERS``) over ``params``; momentum only where it applies."""
    from . import optim
    if name == "sgd":
        return optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "rmsprop":
        return optim.RMSprop(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    return optim.Adagrad(params, lr=lr, weight_decay=weight_decay)


def make_scheduler(name: str, optimizer, epochs: int, step_size: int):
    """The scheduler ``name`` (one of ``SCHEDULERS``): x0.1 every ``step_size`` epochs, cosine over ``epochs``, or None."""
    from . import optim
    if name == "step":
        return optim.lr_scheduler.StepLR(optimizer, step_size=step_size, gamma=0.1)
    if name == "cosine":
        return optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    return None


def loss_for(model_name: str):
    """The loss a zoo model trains with: BCELoss for the one-output ``two_class_net``, cross-entropy otherwise."""
    from . import nn
    return nn.BCELoss() if model_name == "two_class_net" else nn.CrossEntropyLoss()


def prepare_data(dataset, classes, valid_fraction, seed, root=None, download=False, *, batch_size: int = 64,
                 augment: bool = False):
    """Load, subset, split, standardise (statistics from the training split only) and batch a dataset.

    Returns ``(ds, loaders)``: the loaded dataset (its ``train`` the training
    part, without the validation images) and ``data.make_loaders``'s
    ``Loaders`` (train: ``batch_size`` images shuffled from ``seed``, with
    ``data.default_augmentation`` on the raw pixels when ``augment``, then
    standardised; ``val`` None when empty; test; the fitted ``standardize``).
    Images stay uint8 until a batch is drawn, so the dataset is never held as floats.
    """
    from dataclasses import replace

    from . import data
    ds = data.load_dataset(dataset, root=root, download=download, classes=classes)
    loaders = data.make_loaders(ds, validation=valid_fraction, batch_size=batch_size, seed=seed,
                                augment=data.default_augmentation(dataset) if augment else None,
                                eval_batch_size=max(batch_size, EVAL_BATCH_SIZE))
    # the full training split is no longer needed once split: keep only its training part
    return replace(ds, train=loaders.train.dataset), loaders


def _writes(distributed: bool | None) -> bool:
    """Whether this process writes the run directory and prints: always when it trains alone
    (``distributed`` False, or no launcher), rank 0 alone in data-parallel training."""
    from . import distributed as dist
    return distributed is False or dist.is_writer()


def train(settings: dict, run_dir=None, *, data_root=None, download: bool = False, plots: bool = True,
          progress: bool = True, distributed: bool | None = None) -> int:
    """Train a new run with ``settings`` (a :func:`config` dict) into ``run_dir`` (default :func:`default_run_dir`).

    Writes every file of the layout above, printing what it trains, the test
    accuracy and where the run is. Returns 0 when the run is complete, 130
    when it was interrupted (Ctrl-C; :func:`resume` continues it). Settings
    are checked (:func:`validate`) before anything is written; a run that
    fails before its first checkpoint removes the directory it created.
    distributed: as ``fit``'s (None: data-parallel when launched with several processes;
    the default directory's name, which holds the time, is then rank 0's).
    """
    from . import distributed as dist
    from .train import CHECKPOINT
    run_dir = Path(run_dir) if run_dir else default_run_dir(settings["model"], settings["dataset"])
    if distributed is not False:
        run_dir = Path(dist.broadcast_from_writer(str(run_dir)))
    created = not run_dir.exists()
    try:
        return _train(dict(settings), run_dir, False, data_root, download, plots, progress, distributed)
    except Exception:
        # a run that failed (a full disk, a read-only place) before its first checkpoint cannot be
        # resumed: leave no directory behind
        if created and _writes(distributed) and not (run_dir / CHECKPOINT).exists():
            shutil.rmtree(run_dir, ignore_errors=True)
        raise


def resume(run_dir, epochs: int | None = None, *, data_root=None, download: bool = False, plots: bool = True,
           progress: bool = True, distributed: bool | None = None) -> int:
    """Continue the run in ``run_dir`` exactly from its checkpoint; ``epochs`` extends a finished run.

    A cosine schedule spans the run's epochs and ends at learning rate 0, so
    a run with ``scheduler="cosine"`` keeps its number of epochs (ValueError
    saying what to do otherwise); step and constant schedules continue.
    Returns 0 when the run is complete, 130 when it was interrupted again. Data-parallel
    (``distributed``, as in :func:`train`), rank 0 reads the configuration and the checkpoint and
    sends them to the others, and it must run on as many processes as the run it continues.
    """
    from . import distributed as dist
    run_dir = Path(run_dir)

    def read() -> dict:
        if not (run_dir / CONFIG).exists():
            raise FileNotFoundError(f"--resume: {run_dir} is not a run directory (no config.json)")
        return read_config(run_dir)

    settings = read() if distributed is False else dist.run_on_writer(read)
    if epochs is not None:
        validate({**settings, "epochs": epochs})   # the new epoch count is checked before the schedule
    if epochs is not None and epochs != settings["epochs"]:
        if settings["scheduler"] == "cosine":
            planned = f"{settings['epochs']} epoch{'s' if settings['epochs'] != 1 else ''}"
            raise ValueError(
                f"--epochs {epochs}: the cosine schedule of {run_dir} spans its {planned} and ends at learning rate "
                f"0, so the number of epochs cannot change; train a new run with --epochs {epochs} (its schedule "
                "spans all of them), or use --scheduler step or none for a run you want to extend")
        settings["epochs"] = epochs  # extend a finished run: its step or constant schedule continues
    return _train(settings, run_dir, True, data_root, download, plots, progress, distributed)


def read_config(run_dir) -> dict:
    """The settings in ``run_dir/config.json``; ValueError naming the file when it is not a run's config."""
    path = Path(run_dir) / CONFIG
    try:
        cfg = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}); it was damaged: restore it or start a new run") from None
    if isinstance(cfg, dict):
        cfg.setdefault("algorithm", "auto")   # runs written before the setting existed
    missing = [k for k in DEFAULTS if not isinstance(cfg, dict) or k not in cfg]
    if missing:
        raise ValueError(f"{path} is not a run's configuration: it lacks {', '.join(missing)}")
    return cfg


def check_model_input(model_name: str, image_shape) -> None:
    """Raise ValueError unless the zoo model ``model_name`` takes images of ``image_shape`` (C, H, W).

    The channel count adapts (the builders take ``in_channels``); height and
    width must equal those of the model's input shape in ``models.MODELS``.
    """
    from . import models
    if model_name not in models.MODELS:
        raise ValueError(f"unknown model {model_name!r}; expected one of: {', '.join(models.MODELS)}")
    expected = tuple(models.MODELS[model_name][1])
    if tuple(image_shape)[1:] != expected[1:]:
        raise ValueError(f"model {model_name!r} takes {expected[1]}x{expected[2]} images, "
                         f"got a dataset of {'x'.join(map(str, tuple(image_shape)[1:]))} images")


def _train(cfg: dict, run_dir: Path, resumed: bool, data_root, download: bool, plots: bool, progress: bool,
           distributed: bool | None = None) -> int:
    from . import _memory, io, models
    from . import random as _random
    from .data import dataset_info
    from .io import write_json_atomic
    from .train import CHECKPOINT, EarlyStopping, ModelCheckpoint, evaluate as evaluate_model, fit
    validate(cfg)
    check_model_input(cfg["model"], dataset_info(cfg["dataset"]).image_shape)  # before any data is read
    ds, loaders = prepare_data(cfg["dataset"], cfg["classes"], cfg["valid_fraction"], cfg["seed"], root=data_root,
                               download=download, batch_size=cfg["batch_size"], augment=cfg["augment"])
    std = loaders.standardize
    if ds.num_classes < 2:
        raise ValueError(f"{cfg['dataset']} with --classes {cfg['classes']} has {ds.num_classes} class; "
                         "a classifier needs at least two")
    if cfg["patience"] and loaders.val is None:
        raise ValueError(f"--patience needs a validation split, but --valid-fraction {cfg['valid_fraction']} of "
                         f"{len(loaders.train.dataset)} images leaves none: raise --valid-fraction")
    binary = cfg["model"] == "two_class_net"
    if binary and ds.num_classes != 2:
        raise ValueError(f"two_class_net needs exactly two classes (e.g. --classes 1,3), got {ds.num_classes}")
    _random.manual_seed(cfg["seed"])
    c, h, w = ds.image_shape
    kwargs = {} if binary else {"num_classes": ds.num_classes, "in_channels": c}
    model = models.get_model(cfg["model"], **kwargs)
    if cfg["algorithm"] != "auto":
        use_algorithm(model, cfg["algorithm"], (c, h, w))
    loss = loss_for(cfg["model"])
    opt = make_optimizer(cfg["optimizer"], model.parameters(), cfg["lr"], cfg["momentum"], cfg["weight_decay"])
    sched = make_scheduler(cfg["scheduler"], opt, cfg["epochs"], cfg["step_size"])
    callbacks = []
    if cfg["patience"]:
        callbacks.append(EarlyStopping("val_loss", patience=cfg["patience"]))
    if loaders.val is not None:  # best.npz: the best epoch's model, loadable like model.npz
        callbacks.append(ModelCheckpoint("val_acc", "max", input_shape=(c, h, w),
                                         metadata={"class_names": list(ds.classes), "standardize": std.state_dict()}))
    writer = _writes(distributed)
    say = print if writer else _quiet
    if not resumed:
        cfg.update(class_names=list(ds.classes), image_shape=[c, h, w], standardize=std.state_dict(),
                   created=time.strftime("%Y-%m-%d %H:%M:%S"))
    if writer:
        run_dir.mkdir(parents=True, exist_ok=True)
    if writer and not resumed:
        write_json_atomic(run_dir / CONFIG, cfg)
        io.save(model, run_dir / MODEL_INITIAL)
    say(f"training {cfg['model']} ({model.num_parameters():,} parameters) on {cfg['dataset']}"
          f"{' classes ' + str(list(ds.classes)) if cfg['classes'] else ''}: {len(loaders.train.dataset)} train, "
          f"{0 if loaders.val is None else len(loaders.val.dataset)} validation, {len(ds.test)} test images; "
          f"run directory {run_dir}")
    if resumed and not _on_writer(distributed, (run_dir / CHECKPOINT).exists):
        # stopped before fit wrote its first checkpoint: nothing was trained, and the seed makes a new start exact
        say(f"{run_dir} holds no checkpoint yet: training from the start")
        resumed = False
    try:
        # no figure callback: plot_run below draws every figure, curves and filters included
        # the loaders carry the batch size, seed, augmentation and standardisation
        fit(model, loss, opt, loaders.train, loaders.val, epochs=cfg["epochs"], scheduler=sched,
            callbacks=callbacks, run_dir=run_dir, resume=run_dir if resumed else None, progress=progress,
            distributed=distributed)
    except KeyboardInterrupt:
        if writer:
            print(f"interrupted: resume with  strided train --resume {run_dir}", file=sys.stderr)
        return 130
    if not writer:   # the replicas are identical: rank 0 tests and saves the model
        return 0
    io.save(model, run_dir / MODEL, input_shape=(c, h, w),
            metadata={"class_names": list(ds.classes), "standardize": std.state_dict()})
    metrics = evaluate_model(model, loaders.test, loss, num_classes=ds.num_classes)
    metrics["class_names"] = list(ds.classes)
    metrics = {"test_accuracy": metrics.pop("accuracy"), "test_loss": metrics.pop("loss"), **metrics}
    write_json_atomic(run_dir / METRICS, metrics)
    print(f"test accuracy {metrics['test_accuracy']:.4f}  test loss {metrics['test_loss']:.4f}")
    if plots:
        from .viz.run import PREDICT_AT_MOST
        test = ds.test.take(slice(0, PREDICT_AT_MOST))
        del ds, loaders    # the figures need neither the training images
        _memory.release()  # nor the buffers kept between training steps
        _draw_figures(run_dir, model=model, images=std(test.images), labels=test.labels)
    print(f"saved model, metrics and figures in {run_dir}")
    return 0


def _quiet(*args, **kwargs) -> None:
    """What a process that is not the writer prints: nothing."""


def _on_writer(distributed: bool | None, function):
    """``function()`` on the process that writes, its result on every process of the run."""
    from . import distributed as dist
    return function() if distributed is False else dist.run_on_writer(function)


def use_algorithm(model, name: str, image_shape) -> None:
    """Run every ``Conv2d`` of ``model`` with the convolution algorithm ``name``; ValueError if one cannot.

    One image of ``image_shape`` (C, H, W) goes through the model in eval mode,
    so a layer whose geometry the algorithm cannot run (or a missing optional
    dependency, SciPy for ``'scipy'``) is reported before any training.
    """
    import numpy as np
    from . import nn
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            m.algorithm = name
    was_training = model.training
    model.eval()
    try:
        model(np.zeros((1, *image_shape), np.float32))
    except ValueError as exc:
        raise ValueError(f"--algorithm {name}: {exc}") from None
    finally:
        model.train(was_training)


def _draw_figures(run_dir, **kwargs) -> list:
    """``viz.plot_run`` for a run whose model and metrics are saved already: a failure is a message, not an error."""
    try:
        from . import viz
        files = viz.plot_run(run_dir, **kwargs)
    except ImportError as exc:
        print(f"no figures: {exc}", file=sys.stderr)
        return []
    except Exception as exc:  # the model and metrics are saved already: a figure must not fail the run
        print(f"figures failed ({type(exc).__name__}: {exc}); draw them later with  strided plot {run_dir}",
              file=sys.stderr)
        return []
    return files


def load(run_dir):
    """``(config, model)`` of a finished run; FileNotFoundError naming the missing file otherwise."""
    from . import io
    run_dir = Path(run_dir)
    cfg_path, model_path = run_dir / CONFIG, run_dir / MODEL
    for p in (cfg_path, model_path):
        if not p.exists():
            raise FileNotFoundError(f"{run_dir} is not a finished run directory: {p.name} is missing")
    return read_config(run_dir), io.load(model_path)


def evaluate(run_dir, data_root=None):
    """The finished run's model on the test split of its dataset, standardised as in training.

    Returns ``(config, class_names, metrics)``, metrics as ``strided.train.evaluate`` returns them
    (accuracy, loss, per_class_accuracy, confusion).
    """
    from . import data
    from .train import evaluate as evaluate_model
    cfg, model = load(run_dir)
    classes = cfg.get("classes")
    ds = data.load_dataset(cfg["dataset"], root=data_root, classes=None if classes is None else tuple(classes))
    std = data.Standardize.from_state_dict(cfg["standardize"])
    test = data.DataLoader(ds.test, EVAL_BATCH_SIZE, transform=std)
    metrics = evaluate_model(model, test, loss_for(cfg["model"]), num_classes=ds.num_classes)
    return cfg, list(ds.classes), metrics
