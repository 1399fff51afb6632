"""The ``strided`` command line: train, evaluate, plot, export, summary, predict, list models and datasets,
benchmark, reproduce.

Every user error (an unknown name, a missing file, a bad value, a bad option,
a file that cannot be read or written) is printed as one ``error: ...`` line
without a traceback, with exit status 2.
"""
from __future__ import annotations

import argparse
import sys

from ._checks import USER_ERRORS, user_error_message


# ----------------------------------------------------------------------------- train
def _parse_classes(text):
    if text is None:
        return None
    items = [t.strip() for t in text.split(",") if t.strip()]
    return tuple(int(t) if t.lstrip("-").isdigit() else t for t in items)


def cmd_train(args) -> int:
    from . import distributed, runs
    if not args.no_distributed:
        distributed.init()   # every process joins the MPI job (if launched by one) before anything can fail
    options = dict(data_root=args.data_root, download=args.download, plots=not args.no_plots,
                   progress=not args.quiet, distributed=False if args.no_distributed else None)
    if args.resume:
        return runs.resume(args.resume, args.epochs, **options)
    settings = runs.config(**{k: getattr(args, k) for k in runs.DEFAULTS if k != "classes"},
                           classes=_parse_classes(args.classes) if args.classes else None)
    return runs.train(settings, args.run_dir, **options)


# ----------------------------------------------------------------------------- other commands
def cmd_evaluate(args) -> int:
    from . import runs
    cfg, class_names, metrics = runs.evaluate(args.run_dir, data_root=args.data_root)
    print(f"{cfg['model']} on {cfg['dataset']} test: accuracy {metrics['accuracy']:.4f}  loss {metrics['loss']:.4f}")
    width = max(len(n) for n in class_names)
    for name, acc in zip(class_names, metrics["per_class_accuracy"]):
        print(f"  {name:<{width}}  {acc:.4f}")
    return 0


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
    from .inference import Classifier
    clf = Classifier.load(args.model)
    shape = tuple(int(s) for s in args.input_shape.split("x")) if args.input_shape else clf.input_shape
    if shape is None:
        raise ValueError("--input-shape is required (e.g. 1x28x28) when the model is not in a run directory")
    io.export_onnx(clf.model, args.output, shape, metadata=clf.metadata())
    print(f"wrote {args.output} (ONNX opset 17, input (batch, {', '.join(map(str, shape))}))")
    return 0


def _shape_option(text):
    """``CxHxW`` as a tuple of ints, or None."""
    if text is None:
        return None
    try:
        return tuple(int(s) for s in text.split("x"))
    except ValueError:
        raise ValueError(f"--input-shape must be CxHxW such as 1x28x28, got {text!r}") from None


def cmd_summary(args) -> int:
    from .inference import Classifier
    from .summary import summary
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be a positive int, got {args.batch_size}")
    clf = Classifier.load(args.run_dir)
    shape = _shape_option(args.input_shape) or clf.input_shape
    if shape is None:
        raise ValueError(f"--input-shape is required (e.g. 1x28x28): {args.run_dir} does not record the model's input")
    summary(clf.model, (args.batch_size, *shape))
    return 0


def cmd_predict(args) -> int:
    from .inference import Classifier
    if args.top_k < 1:
        raise ValueError(f"--top-k must be a positive int, got {args.top_k}")
    clf = Classifier.load(args.run_dir)
    if clf.standardize is None:
        print(f"note: {args.run_dir} records no standardisation: the images go into the model as they are",
              file=sys.stderr)
    print(clf.predict(args.files).format(args.top_k))
    return 0


def cmd_bench(args) -> int:
    if args.what == "conv":
        from .bench import conv
        return conv.main(args.rest) or 0
    if args.what == "hostile-files":
        from .bench import hostile_files
        return hostile_files.main(args.rest) or 0
    if args.what == "models":
        from .bench import models
        return models.main(args.rest) or 0
    if args.what == "distributed":
        from .bench import distributed
        return distributed.main(args.rest) or 0
    from .bench import lenet5
    return lenet5.main(args.rest) or 0


def cmd_reproduce(args) -> int:
    from . import reproduce
    return reproduce.main([args.name, *args.rest]) or 0


# ----------------------------------------------------------------------------- parser
class _Parser(argparse.ArgumentParser):
    """argparse with a bad option reported as one ``error:`` line (the usage is one ``--help`` away)."""

    def error(self, message):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="strided", description="Convolutional neural networks in NumPy.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    from .runs import DEFAULTS as d, OPTIMIZERS, SCHEDULERS
    t = sub.add_parser("train", help="train a model on a dataset (default: LeNet-5 on Fashion-MNIST)",
                       description="Train a model; with no options, LeNet-5 on Fashion-MNIST for 5 epochs.")
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
    t.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run exactly (with --epochs: extend a finished one)")
    t.add_argument("--data-root", help="directory holding the dataset files")
    t.add_argument("--download", action="store_true", help="download the dataset if it is not found")
    t.add_argument("--no-plots", action="store_true", help="do not draw figures")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument("--no-distributed", action="store_true",
                   help="under mpiexec/srun, train each process alone as a plain run (default: data-parallel)")
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

    sm = sub.add_parser("summary", help="each layer's output shape, parameters and multiply-adds of a saved model")
    sm.add_argument("run_dir", help="a run directory, or a model file written by strided.save")
    sm.add_argument("--input-shape", help="CxHxW (default: the one the model was saved with)")
    sm.add_argument("--batch-size", type=int, default=1, help="images per batch in the shapes (default 1)")
    sm.set_defaults(func=cmd_summary)

    pr = sub.add_parser("predict", help="classify image files (PNG/JPEG or .npy) with a trained run")
    pr.add_argument("run_dir", help="a run directory, or a model file written by strided.save")
    pr.add_argument("files", nargs="+", help="images of the model's size: PNG/JPEG (needs Pillow) or .npy")
    pr.add_argument("--top-k", type=int, default=1, help="show the K most probable classes (default 1)")
    pr.set_defaults(func=cmd_predict)

    b = sub.add_parser("bench", help="benchmarks: conv algorithms, LeNet-5 or whole networks against PyTorch, "
                                     "data-parallel training over MPI, or how fast crafted files fail")
    b.add_argument("what", choices=("conv", "lenet5", "models", "distributed", "hostile-files"))
    b.add_argument("rest", nargs=argparse.REMAINDER, help="options for the benchmark (--help to list)")
    b.set_defaults(func=cmd_bench)

    r = sub.add_parser("reproduce", help="rerun an experiment of the write-ups this project grew from")
    r.add_argument("name", help="two-class, lenet5-epoch, fashion-10 or fashion-resnet")
    r.add_argument("rest", nargs=argparse.REMAINDER)
    r.set_defaults(func=cmd_reproduce)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except USER_ERRORS as exc:
        return _report(user_error_message(exc))
    except OSError as exc:  # a full disk, a read-only directory, no network: the file and the reason
        return _report(os_error_message(exc))


def _report(message: str) -> int:
    """Print ``error: message`` and return the exit status 2.

    In data-parallel training an error every process raised (a bad option, a diverged run) is
    printed once, by rank 0; an error on some processes only (the others wait in a collective)
    is printed by its rank, which then ends the whole job (exit status 2 everywhere)."""
    from . import distributed
    if distributed.joined():
        if not distributed.fail_together():
            print(f"error: rank {distributed.rank()}: {message}", file=sys.stderr)
            distributed.abort(2)
        if not distributed.is_writer():
            return 2
    print(f"error: {message}", file=sys.stderr)
    return 2


def os_error_message(exc: OSError) -> str:
    """One line for an OSError: ``'<file>: <reason>'`` when it names a file, its own text otherwise."""
    if exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    return " ".join(str(exc).split())


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
