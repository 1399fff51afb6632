"""The ``strided`` command line: train, evaluate, plot, export, list models and datasets, benchmark, reproduce.

Every user error (an unknown name, a missing file, a bad value) is printed as
one ``error: ...`` line without a traceback, with exit status 2.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adagrad")
SCHEDULERS = ("none", "step", "cosine")


# ----------------------------------------------------------------------------- train
def _parse_classes(text):
    if text is None:
        return None
    items = [t.strip() for t in text.split(",") if t.strip()]
    return tuple(int(t) if t.lstrip("-").isdigit() else t for t in items)


def _make_optimizer(name, params, lr, momentum, weight_decay):
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


def _make_scheduler(name, optimizer, epochs, step_size):
    from . import optim
    if name == "step":
        return optim.lr_scheduler.StepLR(optimizer, step_size=step_size, gamma=0.1)
    if name == "cosine":
        return optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    return None


def _loss_for(model_name):
    from . import nn
    return nn.BCELoss() if model_name == "two_class_net" else nn.CrossEntropyLoss()


def prepare_data(dataset, classes, valid_fraction, seed, root=None, download=False):
    """Load, subset, split and standardise (statistics from the training split only).

    Returns ``(ds, train, valid, test, standardize)`` with float32 image arrays.
    """
    from . import data
    ds = data.load_dataset(dataset, root=root, download=download, classes=classes)
    train, valid = data.train_valid_split(ds.train, valid_fraction, seed=seed)
    std = data.Standardize().fit(train.images)
    as_float = lambda s: None if s is None else (std.transform(s.images), s.labels)  # noqa: E731
    return ds, as_float(train), as_float(valid) if valid is not None and len(valid) else None, \
        as_float(ds.test), std


def _run_dir(args) -> Path:
    if args.run_dir:
        return Path(args.run_dir)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{args.model}-{args.dataset}-{stamp}"


TRAIN_DEFAULTS = dict(model="lenet5", dataset="fashion-mnist", classes=None, epochs=5, batch_size=64,
                      optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=0.0, scheduler="cosine", step_size=10,
                      augment=False, valid_fraction=0.1, seed=0, patience=0, algorithm="auto")


def cmd_train(args) -> int:
    from . import io, models, nn, train as T
    from . import random as _random
    if args.resume:
        run_dir = Path(args.resume)
        cfg_path = run_dir / "config.json"
        if not cfg_path.exists():
            raise FileNotFoundError(f"--resume: {run_dir} is not a run directory (no config.json)")
        cfg = json.loads(cfg_path.read_text())
        if args.epochs is not None:
            cfg["epochs"] = args.epochs  # allow extending a finished run
    else:
        cfg = {k: (getattr(args, k) if getattr(args, k, None) is not None else v) for k, v in TRAIN_DEFAULTS.items()}
        cfg["classes"] = _parse_classes(args.classes) if args.classes else None
        run_dir = _run_dir(args)
    if cfg["model"] not in models.MODELS:
        raise ValueError(f"unknown model {cfg['model']!r}; expected one of: {', '.join(models.MODELS)}")
    if cfg["optimizer"] not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {cfg['optimizer']!r}; expected one of: {', '.join(OPTIMIZERS)}")
    if cfg["scheduler"] not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {cfg['scheduler']!r}; expected one of: {', '.join(SCHEDULERS)}")
    if cfg["lr"] <= 0:
        raise ValueError(f"--lr must be > 0, got {cfg['lr']}")

    ds, train, valid, test, std = prepare_data(cfg["dataset"], cfg["classes"], cfg["valid_fraction"], cfg["seed"],
                                               root=args.data_root, download=args.download)
    binary = cfg["model"] == "two_class_net"
    if binary and ds.num_classes != 2:
        raise ValueError(f"two_class_net needs exactly two classes (e.g. --classes 1,3), got {ds.num_classes}")
    _random.manual_seed(cfg["seed"])
    c, h, w = ds.image_shape
    kwargs = {} if binary else {"num_classes": ds.num_classes, "in_channels": c}
    model = models.get_model(cfg["model"], **kwargs)
    if cfg.get("algorithm", "auto") != "auto":
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                m.algorithm = cfg["algorithm"]
    loss = _loss_for(cfg["model"])
    opt = _make_optimizer(cfg["optimizer"], model.parameters(), cfg["lr"], cfg["momentum"], cfg["weight_decay"])
    sched = _make_scheduler(cfg["scheduler"], opt, cfg["epochs"], cfg["step_size"])
    callbacks = []
    if cfg["patience"]:
        callbacks.append(T.EarlyStopping("val_loss", patience=cfg["patience"]))
    augment = None
    if cfg["augment"]:
        from .data import default_augmentation
        augment = default_augmentation(cfg["dataset"])
    run_dir.mkdir(parents=True, exist_ok=True)
    if not args.resume:
        cfg.update(class_names=list(ds.classes), image_shape=[c, h, w], standardize=std.state_dict(),
                   created=time.strftime("%Y-%m-%d %H:%M:%S"))
        T._write_json(run_dir / "config.json", cfg)
        io.save(model, run_dir / "model_initial.npz")
    print(f"training {cfg['model']} ({model.num_parameters():,} parameters) on {cfg['dataset']}"
          f"{' classes ' + str(list(ds.classes)) if cfg['classes'] else ''}: {len(train[1])} train, "
          f"{0 if valid is None else len(valid[1])} validation, {len(test[1])} test images; run directory {run_dir}")
    try:
        T.fit(model, loss, opt, train, valid, epochs=cfg["epochs"], batch_size=cfg["batch_size"], scheduler=sched,
              callbacks=callbacks, seed=cfg["seed"], augment=augment, run_dir=run_dir,
              resume=run_dir if args.resume else None, progress=not args.quiet,
              figures=False)  # plot_run below draws every figure, these included
    except KeyboardInterrupt:
        print(f"interrupted: resume with  strided train --resume {run_dir}", file=sys.stderr)
        return 130
    io.save(model, run_dir / "model.npz", input_shape=(c, h, w),
            metadata={"class_names": list(ds.classes), "standardize": std.state_dict()})
    metrics = T.evaluate(model, test, loss, num_classes=ds.num_classes)
    metrics["class_names"] = list(ds.classes)
    metrics = {"test_accuracy": metrics.pop("accuracy"), "test_loss": metrics.pop("loss"), **metrics}
    T._write_json(run_dir / "metrics.json", metrics)
    print(f"test accuracy {metrics['test_accuracy']:.4f}  test loss {metrics['test_loss']:.4f}")
    if not args.no_plots:
        _plot(run_dir, model=model, images=test[0], labels=test[1])
    print(f"saved model, metrics and figures in {run_dir}")
    return 0


def _plot(run_dir, **kwargs):
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


# ----------------------------------------------------------------------------- other commands
def _load_run(run_dir):
    from . import io
    run_dir = Path(run_dir)
    cfg_path, model_path = run_dir / "config.json", run_dir / "model.npz"
    for p in (cfg_path, model_path):
        if not p.exists():
            raise FileNotFoundError(f"{run_dir} is not a finished run directory: {p.name} is missing")
    return json.loads(cfg_path.read_text()), io.load(model_path)


def cmd_evaluate(args) -> int:
    from . import data, train as T
    cfg, model = _load_run(args.run_dir)
    ds = data.load_dataset(cfg["dataset"], root=args.data_root, classes=_tuple(cfg.get("classes")))
    std = data.Standardize.from_state_dict(cfg["standardize"])
    metrics = T.evaluate(model, (std.transform(ds.test.images), ds.test.labels), _loss_for(cfg["model"]),
                         num_classes=ds.num_classes)
    print(f"{cfg['model']} on {cfg['dataset']} test: accuracy {metrics['accuracy']:.4f}  loss {metrics['loss']:.4f}")
    width = max(len(n) for n in ds.classes)
    for name, acc in zip(ds.classes, metrics["per_class_accuracy"]):
        print(f"  {name:<{width}}  {acc:.4f}")
    return 0


def _tuple(v):
    return None if v is None else tuple(v)


def cmd_plot(args) -> int:
    from . import viz
    files = viz.plot_run(args.run_dir, data_root=args.data_root, dpi=args.dpi,
                         log=lambda m: print(m, file=sys.stderr))
    for f in files:
        print(f)
    return 0


def cmd_models(args) -> int:
    from . import models
    print(f"{'model':<15}{'parameters':>12}  input       description")
    for name, (build, shape, what) in models.MODELS.items():
        n = build().num_parameters()
        print(f"{name:<15}{n:>12,}  {'x'.join(map(str, shape)):<10}  {what}")
    return 0


def cmd_datasets(args) -> int:
    from . import data
    print(data.format_dataset_table(args.data_root))
    return 0


def cmd_export(args) -> int:
    from . import io
    model = io.load(args.model)
    shape = tuple(int(s) for s in args.input_shape.split("x")) if args.input_shape else None
    if shape is None:
        shape = io.info(args.model).get("input_shape")
        if shape is None:
            raise ValueError("--input-shape is required (e.g. 1x28x28) when the model is not in a run directory")
    io.export_onnx(model, args.output, shape)
    print(f"wrote {args.output} (ONNX opset 17, input (batch, {', '.join(map(str, shape))}))")
    return 0


def cmd_bench(args) -> int:
    if args.what == "conv":
        from .bench import conv
        return conv.main(args.rest) or 0
    from .bench import lenet5
    return lenet5.main(args.rest) or 0


def cmd_reproduce(args) -> int:
    from . import reproduce
    return reproduce.main([args.name, *args.rest]) or 0


# ----------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="strided", description="Convolutional neural networks in NumPy.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser("train", help="train a model on a dataset (default: LeNet-5 on Fashion-MNIST)",
                       description="Train a model; with no options, LeNet-5 on Fashion-MNIST for 5 epochs.")
    d = TRAIN_DEFAULTS
    t.add_argument("--model", help=f"zoo model (default {d['model']}; see `strided models`)")
    t.add_argument("--dataset", help=f"fashion-mnist, mnist or cifar10 (default {d['dataset']})")
    t.add_argument("--classes", help="keep these classes, relabelled 0..k-1 (e.g. 1,3 for trouser vs dress)")
    t.add_argument("--epochs", type=int, help=f"default {d['epochs']}")
    t.add_argument("--batch-size", type=int, help=f"default {d['batch_size']}")
    t.add_argument("--optimizer", help=f"{', '.join(OPTIMIZERS)} (default {d['optimizer']})")
    t.add_argument("--lr", type=float, help=f"learning rate (default {d['lr']})")
    t.add_argument("--momentum", type=float, help=f"for sgd/rmsprop (default {d['momentum']})")
    t.add_argument("--weight-decay", type=float, help="default 0")
    t.add_argument("--scheduler", help=f"{', '.join(SCHEDULERS)} (default {d['scheduler']})")
    t.add_argument("--step-size", type=int, help="epochs between x0.1 steps for --scheduler step")
    t.add_argument("--augment", action="store_true", default=None, help="random crop and horizontal flip")
    t.add_argument("--valid-fraction", type=float, help=f"held out for validation (default {d['valid_fraction']})")
    t.add_argument("--patience", type=int, help="early stopping after this many epochs without improvement")
    t.add_argument("--algorithm", help="convolution algorithm (default auto; see docs/algorithms.md)")
    t.add_argument("--seed", type=int, help="seed for initialisation, shuffling, dropout (default 0)")
    t.add_argument("--run-dir", help="where to write the run (default runs/MODEL-DATASET-TIME)")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run exactly")
    t.add_argument("--data-root", help="directory holding the dataset files")
    t.add_argument("--download", action="store_true", help="download the dataset if it is not found")
    t.add_argument("--no-plots", action="store_true", help="do not draw figures")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="test accuracy of a saved run")
    e.add_argument("run_dir")
    e.add_argument("--data-root")
    e.set_defaults(func=cmd_evaluate)

    pl = sub.add_parser("plot", help="draw the figures and report.md of a saved run")
    pl.add_argument("run_dir")
    pl.add_argument("--data-root", help="where the run's dataset is (for the image figures)")
    pl.add_argument("--dpi", type=float, default=100)
    pl.set_defaults(func=cmd_plot)

    sub.add_parser("models", help="list the model zoo").set_defaults(func=cmd_models)
    ds = sub.add_parser("datasets", help="list datasets and where they are found")
    ds.add_argument("--data-root")
    ds.set_defaults(func=cmd_datasets)

    ex = sub.add_parser("export", help="export a saved model to ONNX")
    ex.add_argument("model", help="a .npz written by strided.save (e.g. RUN_DIR/model.npz)")
    ex.add_argument("output", help="the .onnx file to write")
    ex.add_argument("--input-shape", help="CxHxW (read from the run's config.json when omitted)")
    ex.set_defaults(func=cmd_export)

    b = sub.add_parser("bench", help="benchmarks: conv algorithms, or LeNet-5 training against PyTorch")
    b.add_argument("what", choices=("conv", "lenet5"))
    b.add_argument("rest", nargs=argparse.REMAINDER, help="options for the benchmark (--help to list)")
    b.set_defaults(func=cmd_bench)

    r = sub.add_parser("reproduce", help="rerun an experiment of the write-ups this project grew from")
    r.add_argument("name", help="two-class, lenet5-epoch or fashion-10")
    r.add_argument("rest", nargs=argparse.REMAINDER)
    r.set_defaults(func=cmd_reproduce)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, KeyError, FileNotFoundError, ImportError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
