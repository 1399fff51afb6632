"""The training loop: ``fit`` and ``evaluate``, with callbacks, checkpoints and exact resume.

``fit`` runs the same four lines as the hand-written loop in the README,

    out = model(xb); value = loss(out, target); model.backward(loss.backward()); optimizer.step()

and adds what a real run needs: seeded shuffling, per-epoch train/validation
loss and accuracy, a progress bar with images/s, an LR scheduler stepped at
the interval it declares (``scheduler.interval``: after every optimizer step
or every epoch), gradient clipping, callbacks around every batch and epoch
(early stopping, keeping the best model), and a stop with a clear message
when the loss diverges.

With a run directory, ``fit`` writes a checkpoint (model, optimizer,
scheduler, callbacks, history and every random generator's state) before
the first epoch and after every epoch, and nothing in between: a run stopped
at any moment (Ctrl-C, SIGKILL, a power cut) and resumed from its run
directory ends bit for bit where an uninterrupted one would.
"""
from __future__ import annotations

import csv
import math
import time
from collections.abc import Iterable, Iterator
from io import StringIO
from pathlib import Path

import numpy as np

from . import _checks
from . import distributed as dist
from . import random as _random
from .data import ArrayDataset, DataLoader, Dataset
from .nn import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, MSELoss, Module
from .optim import LRScheduler, Optimizer
from .optim.lr_scheduler import OneCycleLR, ReduceLROnPlateau
from .progress import EpochProgress
from .utils import clip_grad_norm_

HISTORY_KEYS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds", "images_per_s")
# what fit writes into its run directory before the first epoch and after every epoch
CHECKPOINT = "checkpoint.npz"
HISTORY = "history.json"
HISTORY_CSV = "history.csv"   # the same history, one row per epoch
BEST = "best.npz"             # ModelCheckpoint's default file
EVAL_BATCH_SIZE = 1000   # images per forward pass when evaluating (no gradients kept: larger batches)
DEFAULT_BATCH_SIZE = 64  # fit's batch size for arrays and datasets


class TrainingDiverged(ValueError):
    """The loss became NaN or infinite; the message names the epoch and step."""


# ----------------------------------------------------------------------------- targets and predictions
def _targets(loss, labels: np.ndarray, out: np.ndarray):
    """What the loss compares the output with, from integer labels (N,)."""
    if isinstance(loss, CrossEntropyLoss):
        return labels
    if isinstance(loss, (BCELoss, BCEWithLogitsLoss)):
        return labels.reshape(out.shape).astype(out.dtype)
    if isinstance(loss, MSELoss) and out.ndim == 2 and out.shape[1] > 1:
        onehot = np.zeros(out.shape, dtype=out.dtype)  # write-up 002: MSE against one-hot targets
        onehot[np.arange(len(labels)), labels] = 1
        return onehot
    return labels.reshape(out.shape).astype(out.dtype)


def predict_labels(loss, out: np.ndarray) -> np.ndarray:
    """Class predictions (N,) from a network's output, consistent with the loss it was trained with."""
    if out.ndim == 2 and out.shape[1] > 1:
        return out.argmax(axis=1)
    threshold = 0.0 if isinstance(loss, BCEWithLogitsLoss) else 0.5
    return (out.reshape(len(out)) > threshold).astype(np.int64)


def _as_dataset(name, data):
    """A pair (images, labels) of arrays as an ArrayDataset; anything else as it is."""
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(a, np.ndarray) for a in data):
        try:
            return ArrayDataset(*data)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{name}: {exc}") from None
    return data


def _batches_of(name, data, batch_size, *, default_batch_size, shuffle, augment=None, seed=None):
    """What ``fit``/``evaluate`` iterate for ``data``: a DataLoader or a re-iterable of (x, y) batches.

    data: a pair (images (N, ...), labels (N,)) of arrays or a Dataset (batched
    here with ``batch_size`` (None: ``default_batch_size``), ``augment`` and
    ``seed`` (None: 0)), a DataLoader (used as configured, so those three must
    be None), or any re-iterable of (x, y) batches (a list, a custom loader;
    not a one-pass generator).
    """
    data = _as_dataset(name, data)
    if isinstance(data, Dataset):
        if len(data) == 0:
            raise ValueError(f"{name} has no samples")
        return DataLoader(data, default_batch_size if batch_size is None else batch_size, shuffle=shuffle,
                          transform=augment, seed=0 if seed is None else seed)
    given = [k for k, v in (("batch_size", batch_size), ("augment", augment), ("seed", seed)) if v is not None]
    kind = "a DataLoader" if isinstance(data, DataLoader) else "an iterable of batches"
    if isinstance(data, DataLoader) or (isinstance(data, Iterable) and not isinstance(data, (str, bytes, dict))):
        if given:
            raise ValueError(f"{name} is {kind}, which forms its own batches: {' and '.join(given)} cannot also be "
                             f"given (set them on the DataLoader, e.g. DataLoader(dataset, batch_size=..., "
                             f"shuffle=True, transform=..., seed=...))")
        if isinstance(data, Iterator):
            raise TypeError(f"{name} is a one-pass iterator ({type(data).__name__}); pass something iterable once "
                            "per epoch: a DataLoader, a list of (x, y) batches or a pair (images, labels)")
        return data
    raise TypeError(f"{name} must be a pair (images, labels), a strided.data.Dataset, a DataLoader or an iterable "
                    f"of (x, y) batches, got {type(data).__name__}")


def _check_finite_images(name, batches) -> None:
    """Refuse NaN/inf in the float images of an array-backed loader (one pass, cheap next to an epoch)."""
    if not (isinstance(batches, DataLoader) and isinstance(batches.dataset, ArrayDataset)):
        return
    images = batches.dataset.images
    if images.dtype.kind == "f" and not np.isfinite(images).all():
        bad = int(images.size - np.count_nonzero(np.isfinite(images)))
        raise ValueError(f"{name} images contain {bad} NaN or infinite value(s); expected finite numbers "
                         "(pass check_finite=False to train anyway)")


def _batch_labels(y, n: int) -> np.ndarray:
    """The labels of a batch of ``n`` images as int64 (n,), with a clear error for anything else."""
    y = np.asarray(y)
    if y.shape != (n,) or y.dtype.kind not in "iu":
        raise ValueError(f"a batch of {n} images needs integer labels of shape ({n},), got {y.dtype} {y.shape}")
    return y.astype(np.int64, copy=False)


# ----------------------------------------------------------------------------- evaluation
def evaluate(model: Module, data, loss=None, batch_size: int | None = None, num_classes: int | None = None) -> dict:
    """Accuracy, mean loss, per-class accuracy and the confusion matrix of ``model`` on ``data``.

    data: what ``fit`` takes: (images, labels), a Dataset (in order, ``batch_size``
    images per forward pass, default ``EVAL_BATCH_SIZE``), a DataLoader or an
    iterable of (x, y) batches (as they come; then no ``batch_size``). The model
    runs in eval mode (restored afterwards). ``confusion[i, j]`` counts true
    class i predicted as j.
    """
    if batch_size is not None:
        batch_size = _checks.positive_int("batch_size", batch_size)
    batches = _batches_of("data", data, batch_size, default_batch_size=EVAL_BATCH_SIZE, shuffle=False)
    return _evaluate(model, batches, CrossEntropyLoss() if loss is None else loss, num_classes)


def _evaluate(model: Module, batches, loss, num_classes: int | None) -> dict:
    """``evaluate`` on checked arguments: ``batches`` as ``_batches_of`` returns them (fit's validation data)."""
    was_training = model.training
    model.eval()
    preds, labels, total = [], [], 0.0
    try:
        for xb, yb in batches:
            xb = _float(np.asarray(xb), model)
            yb = _batch_labels(yb, len(xb))
            out = model(xb)
            total += float(loss(out, _targets(loss, yb, out))) * len(xb)
            preds.append(predict_labels(loss, out))
            labels.append(yb)
    finally:
        model.train(was_training)
    if not preds:
        raise ValueError("evaluate: the data yielded no batch")
    pred, y = np.concatenate(preds), np.concatenate(labels)
    k = num_classes or int(max(pred.max(), y.max()) + 1)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (y, pred), 1)  # a k x k histogram, not a hot path
    per_class = confusion.diagonal() / np.maximum(confusion.sum(axis=1), 1)
    return {
        "accuracy": float((pred == y).mean()),
        "loss": total / len(y),
        "per_class_accuracy": per_class.tolist(),
        "confusion": confusion.tolist(),
    }


def _float(x: np.ndarray, model: Module) -> np.ndarray:
    return x if x.dtype == model.dtype else x.astype(model.dtype)


# ----------------------------------------------------------------------------- callbacks
class Callback:
    """Hooks into ``fit``, each a no-op here; ``on_epoch_end`` may set ``trainer.stop = True``.

    Order: ``on_train_begin``; per epoch, around every optimizer step,
    ``on_batch_begin(trainer, step)`` and ``on_batch_end(trainer, step, logs)``
    (step: the batch's number in its epoch, from 1; logs: ``loss`` (the
    batch's mean loss), ``batch_size``, ``lr`` (the rate of this step) and
    ``grad_norm`` (the total gradient norm when ``fit`` clips, else None));
    then ``on_epoch_end(trainer, logs)`` with the epoch's values
    (``HISTORY_KEYS``); finally ``on_train_end``. ``trainer.global_step``
    counts optimizer steps. A callback whose behaviour depends on the past
    returns it from ``state_dict()`` so that the checkpoint carries it. In
    data-parallel training every process calls the callbacks with the same
    epoch values; ``trainer.writer`` is True on rank 0 alone, the one that may
    write files or print.
    """

    def on_train_begin(self, trainer: "Trainer") -> None: ...

    def on_batch_begin(self, trainer: "Trainer", step: int) -> None: ...

    def on_batch_end(self, trainer: "Trainer", step: int, logs: dict) -> None: ...

    def on_epoch_end(self, trainer: "Trainer", logs: dict) -> None: ...

    def on_train_end(self, trainer: "Trainer") -> None: ...

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None: ...


MONITORS = HISTORY_KEYS[1:6]  # the per-epoch values a callback or ReduceLROnPlateau can follow


def _monitor_mode(monitor: str, mode: str) -> str:
    """Check ``monitor`` (one of ``MONITORS``) and ``mode``; "auto" is "max" for accuracies, "min" otherwise."""
    _checks.choice("monitor", monitor, MONITORS)
    mode = _checks.choice("mode", mode, ("auto", "min", "max"))
    return ("max" if monitor.endswith("acc") else "min") if mode == "auto" else mode


def _monitored(who: str, monitor: str, logs: dict) -> float:
    """The epoch's value of ``monitor``; ValueError naming what the run records when it has none."""
    value = logs.get(monitor)
    if value is None:
        raise ValueError(f"{who} monitors {monitor!r}, which this run does not record "
                         f"(recorded: {sorted(k for k, v in logs.items() if v is not None)})")
    return value


def _improved(mode: str, value: float, best, min_delta: float = 0.0) -> bool:
    if best is None:
        return True
    return value < best - min_delta if mode == "min" else value > best + min_delta


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs; optionally restore the best weights."""

    def __init__(self, monitor: str = "val_loss", patience: int = 3, min_delta: float = 0.0,
                 mode: str = "auto", restore_best: bool = True):
        self.mode = _monitor_mode(monitor, mode)
        self.monitor, self.patience = monitor, _checks.positive_int("patience", patience)
        self.min_delta = _checks.positive_float("min_delta", min_delta, allow_zero=True)
        self.restore_best = restore_best
        self.best, self.best_epoch, self.wait, self.best_state = None, None, 0, None

    def on_epoch_end(self, trainer, logs):
        value = _monitored("EarlyStopping", self.monitor, logs)
        if _improved(self.mode, value, self.best, self.min_delta):
            self.best, self.best_epoch, self.wait = value, logs["epoch"], 0
            if self.restore_best:
                self.best_state = trainer.model.state_dict()
        else:
            self.wait += 1
            if self.wait >= self.patience:
                trainer.stop = True
                trainer.log(f"early stopping: {self.monitor} has not improved for {self.patience} epochs "
                            f"(best {self.best:.4f} at epoch {self.best_epoch})")

    def on_train_end(self, trainer):
        if self.restore_best and self.best_state is not None and trainer.stop:
            trainer.model.load_state_dict(self.best_state)
            trainer.log(f"restored the weights of epoch {self.best_epoch}")

    def state_dict(self):
        # the best weights too: a resumed run restores the same ones an uninterrupted run would
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait, "best_state": self.best_state}

    def load_state_dict(self, state):
        self.best, self.best_epoch, self.wait = state["best"], state["best_epoch"], state["wait"]
        self.best_state = state.get("best_state")


class ModelCheckpoint(Callback):
    """Keep the model of the best epoch by ``monitor`` as ``filename`` in the run directory (``fit(run_dir=...)``).

    After every epoch whose ``monitor`` value beats the best so far, the model
    is saved (``strided.save``, atomically) with ``input_shape`` and
    ``metadata`` plus ``epoch`` and the monitored value; ``strided.load``
    reads it back.

    Args:
        monitor: one of ``MONITORS`` (default ``val_acc``).
        mode: "max", "min" or "auto" ("max" for accuracies).
        filename: the file in the run directory (default ``best.npz``).
        input_shape, metadata: stored in the model file, as ``strided.save`` takes them.
    """

    def __init__(self, monitor: str = "val_acc", mode: str = "max", filename: str = BEST, *,
                 input_shape=None, metadata: dict | None = None):
        self.mode = _monitor_mode(monitor, mode)
        self.monitor = monitor
        if not isinstance(filename, str) or not filename or Path(filename).name != filename:
            raise ValueError(f"filename must be a file name inside the run directory such as 'best.npz', "
                             f"got {filename!r}")
        self.filename, self.input_shape, self.metadata = filename, input_shape, dict(metadata or {})
        self.best, self.best_epoch = None, None

    def on_train_begin(self, trainer):
        if trainer.run_dir is None:
            raise ValueError(f"ModelCheckpoint keeps {self.filename} in the run directory; pass fit(run_dir=...)")

    def on_epoch_end(self, trainer, logs):
        from .io import save
        value = _monitored("ModelCheckpoint", self.monitor, logs)
        if _improved(self.mode, value, self.best):
            self.best, self.best_epoch = value, logs["epoch"]
            if not trainer.writer:   # data-parallel training: rank 0 alone writes, the others keep count
                return
            trainer.run_dir.mkdir(parents=True, exist_ok=True)
            save(trainer.model, trainer.run_dir / self.filename, input_shape=self.input_shape,
                 metadata={**self.metadata, "epoch": self.best_epoch, self.monitor: value})

    def state_dict(self):
        return {"best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state):
        self.best, self.best_epoch = state["best"], state["best_epoch"]


class LRSchedule(Callback):
    """Step a learning-rate scheduler at its ``interval`` (what ``fit(scheduler=...)`` does).

    "batch": after every optimizer step. "epoch": after every epoch, once the
    validation values are in; a ``ReduceLROnPlateau`` gets the epoch's value of
    its ``monitor``.
    """

    def __init__(self, scheduler):
        _checks.choice("scheduler.interval", scheduler.interval, ("epoch", "batch"))
        self.scheduler = scheduler

    def on_batch_end(self, trainer, step, logs):
        if self.scheduler.interval == "batch":
            self.scheduler.step()

    def on_epoch_end(self, trainer, logs):
        if self.scheduler.interval != "epoch":
            return
        if isinstance(self.scheduler, ReduceLROnPlateau):
            self.scheduler.step(_monitored("ReduceLROnPlateau", self.scheduler.monitor, logs))
        else:
            self.scheduler.step()


# ----------------------------------------------------------------------------- the loop
class Trainer:
    """The state of one ``fit`` call; callbacks receive it.

    In data-parallel training (``world_size`` > 1) ``model`` is this process's
    replica, ``replica`` its :class:`strided.distributed.DistributedDataParallel`
    wrapper (forward and backward go through it; ``model`` otherwise), and
    ``writer`` is True on rank 0 alone: only it writes files and logs.
    """

    def __init__(self, model, loss, optimizer, scheduler, run_dir, log, callbacks=(), clip_grad_norm=None,
                 world_size: int = 1):
        self.model, self.loss, self.optimizer, self.scheduler = model, loss, optimizer, scheduler
        self.world_size = world_size
        self.writer = world_size == 1 or dist.is_writer()
        self.replica = dist.DistributedDataParallel(model) if world_size > 1 else model
        self.run_dir = None if run_dir is None else Path(run_dir)
        self.log = log if self.writer else _quiet
        self.callbacks = list(callbacks)
        self.clip_grad_norm = clip_grad_norm
        self.stop = False
        self.epoch = 0         # finished epochs
        self.global_step = 0   # optimizer steps taken
        self.resumed_from = None  # the checkpoint this run continued from, if any
        self.history = {k: [] for k in HISTORY_KEYS}


def _quiet(*args, **kwargs) -> None:
    """The log of a process that is not the writer: nothing."""


def _rng_states(model: Module, loader) -> dict:
    # a DataLoader's order is a function of its seed and the epoch (fit calls set_epoch): its state is the seed
    return {
        "loader": loader.state_dict() if isinstance(loader, DataLoader) else None,
        "global": _random.get_state(),
        "modules": {name: m.own_generator.bit_generator.state for name, m in model.named_modules()
                    if m.own_generator is not None},
    }


def _set_rng_states(model: Module, loader, states: dict) -> None:
    if isinstance(loader, DataLoader) and states.get("loader") is not None:
        loader.load_state_dict(states["loader"])
    _random.set_state(states["global"])
    mods = dict(model.named_modules())
    for name, st in states.get("modules", {}).items():
        mods[name].own_generator.bit_generator.state = st


def _lr(optimizer) -> float | None:
    groups = getattr(optimizer, "param_groups", None)
    return float(groups[0]["lr"]) if groups else None


def _history_csv(history: dict) -> str:
    """``history`` (lists per key of ``HISTORY_KEYS``) as CSV text: a header, one row per epoch, None as empty."""
    out = StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HISTORY_KEYS)
    for row in zip(*(history[k] for k in HISTORY_KEYS)):
        writer.writerow(["" if v is None else v for v in row])
    return out.getvalue()


def _save_checkpoint(trainer: Trainer, loader, callbacks) -> None:
    """Write the checkpoint, then history.json and history.csv (each atomically) into the run directory.

    Data-parallel: every process's random states go to rank 0 (a collective), which writes them
    with the world size (``rng_state = {"world_size": N, "ranks": [state of rank 0, ...]}``)."""
    from .io import save_checkpoint, write_json_atomic, write_text_atomic
    rng_state = _rng_states(trainer.model, loader)
    if trainer.world_size > 1:
        rng_state = {"world_size": trainer.world_size, "ranks": dist.gather_to_writer(rng_state)}
    if not trainer.writer:
        return
    trainer.run_dir.mkdir(parents=True, exist_ok=True)
    save_checkpoint(
        trainer.run_dir / CHECKPOINT, trainer.model, optimizer=trainer.optimizer, scheduler=trainer.scheduler,
        epoch=trainer.epoch, history=trainer.history, rng_state=rng_state,
        extra={"callbacks": [cb.state_dict() for cb in callbacks], "global_step": trainer.global_step},
    )
    write_json_atomic(trainer.run_dir / HISTORY, trainer.history)
    write_text_atomic(trainer.run_dir / HISTORY_CSV, _history_csv(trainer.history))


def _read_checkpoint(trainer: Trainer, source) -> tuple[Path, dict]:
    """(path, ``load_checkpoint``'s dict) of ``source`` (a run directory or a checkpoint), restored into the
    trainer's model, optimizer and scheduler."""
    from .io import load_checkpoint
    path = Path(source)
    if path.is_dir():
        path = path / CHECKPOINT
    if not path.exists():
        raise FileNotFoundError(f"resume: no checkpoint at {path} (a run directory holds {CHECKPOINT})")
    return path, load_checkpoint(path, model=trainer.model, optimizer=trainer.optimizer, scheduler=trainer.scheduler)


def _read_checkpoint_on_writer(trainer: Trainer, source) -> tuple[Path, dict]:
    """:func:`_read_checkpoint` for data-parallel training: rank 0 reads the file (the others need not see
    it) and sends the states to every process; an error there is raised on every process."""
    def read():
        path, ck = _read_checkpoint(trainer, source)
        ck = {k: v for k, v in ck.items() if k != "model"}   # the model travels as its state dict
        return (path, ck, trainer.model.state_dict(), trainer.optimizer.state_dict(),
                None if trainer.scheduler is None else trainer.scheduler.state_dict())

    path, ck, model_state, optimizer_state, scheduler_state = dist.run_on_writer(read)
    if not trainer.writer:
        trainer.model.load_state_dict(model_state)
        trainer.optimizer.load_state_dict(optimizer_state)
        if scheduler_state is not None:
            trainer.scheduler.load_state_dict(scheduler_state)
    return path, ck


def _resume(trainer: Trainer, source, loader, callbacks) -> None:
    read = _read_checkpoint if trainer.world_size == 1 else _read_checkpoint_on_writer
    path, ck = read(trainer, source)
    rng_state = ck["rng_state"] or {}
    # a checkpoint of N processes holds {"world_size": N, "ranks": [...]}; one of a single process, its states
    dist.check_resume_world_size(rng_state.get("world_size"), now=trainer.world_size)
    if trainer.world_size > 1:
        rng_state = dist.scatter_from_writer(rng_state["ranks"])
    trainer.epoch = int(ck["epoch"])
    trainer.resumed_from = path
    trainer.history = {k: list(ck["history"].get(k, [])) for k in HISTORY_KEYS}
    _set_rng_states(trainer.model, loader, rng_state)
    extra = ck.get("extra", {})
    for cb, st in zip(callbacks, extra.get("callbacks", [])):
        cb.load_state_dict(st)
    trainer.global_step = int(extra.get("global_step", 0))
    trainer.log(f"resumed from {path} after epoch {trainer.epoch}" if trainer.epoch else
                f"resumed from {path}: the initial state, before epoch 1")


def _check_schedule_length(scheduler, epochs_left: int, steps_per_epoch: int | None) -> None:
    """A OneCycleLR must have a step left for every optimizer step of the run (it refuses to go past its end).

    steps_per_epoch: None when the batches are a plain iterable whose length fit does not know (no check)."""
    if steps_per_epoch is None or not isinstance(scheduler, OneCycleLR) or scheduler.interval != "batch":
        return
    needed, left = epochs_left * steps_per_epoch, scheduler.total_steps - scheduler.last_epoch
    if needed > left:
        raise ValueError(f"scheduler OneCycleLR(total_steps={scheduler.total_steps}) has {left} steps left, but "
                         f"this fit takes {needed} optimizer steps ({epochs_left} epochs of {steps_per_epoch} "
                         f"batches); build it with epochs={epochs_left}, steps_per_epoch={steps_per_epoch}")


def _check_monitors(callbacks, scheduler, has_valid: bool) -> None:
    """Refuse, before training, to follow a validation value in a run without validation data."""
    if has_valid:
        return
    followers = [(type(cb).__name__, cb.monitor) for cb in callbacks if isinstance(cb, (EarlyStopping, ModelCheckpoint))]
    if isinstance(scheduler, ReduceLROnPlateau):
        followers.append(("ReduceLROnPlateau", scheduler.monitor))
    for who, monitor in followers:
        if monitor.startswith("val_"):
            raise ValueError(f"{who} monitors {monitor!r}, but fit has no validation data; pass valid=(images, "
                             f"labels) or monitor={'train_' + monitor[4:]!r}")


def _world_size(distributed) -> int:
    """The number of processes ``fit`` trains over: the MPI world's (None: when launched with several),
    1 (False: this process alone), or the world's, which must hold several (True)."""
    if distributed is None:
        return dist.world_size()
    if not _checks.boolean("distributed", distributed):
        return 1
    if not dist.is_distributed():
        raise ValueError("distributed=True needs several processes started by an MPI launcher (mpiexec -n 2 "
                         "python ..., srun), but this process is alone; pass distributed=None to train "
                         "data-parallel only when launched so")
    return dist.world_size()


def _shard_training_data(train, rank: int, world: int) -> DataLoader:
    """The training loader of process ``rank``: its part of every epoch (``DataLoader.with_shard``)."""
    if not isinstance(train, DataLoader):
        raise ValueError(f"train is {type(train).__name__}, an iterable of batches that fit cannot divide between "
                         f"the {world} processes: pass a pair (images, labels), a Dataset or a DataLoader, or "
                         "fit(distributed=False) to train each process alone")
    if train.shard is None:
        return train.with_shard(rank, world)
    if train.shard != (rank, world):
        raise ValueError(f"train is a DataLoader with shard={train.shard}, but this process is rank {rank} of "
                         f"{world}: give shard=({rank}, {world}) or no shard (fit then takes this process's part)")
    return train


class _DatasetPart(Dataset):
    """Samples ``part`` (a slice with step 1) of ``dataset``, renumbered from 0."""

    def __init__(self, dataset: Dataset, part: slice):
        self.dataset, self.start, self.length = dataset, part.start, part.stop - part.start

    def __len__(self):
        return self.length

    def __getitem__(self, i):
        if not 0 <= i < self.length:
            raise IndexError(f"index {i} out of range for {self.length} samples")
        return self.dataset[self.start + i]


def _evaluation_part(valid, rank: int, world: int):
    """``(batches, count)``: process ``rank``'s contiguous part of the validation data
    (``distributed.evaluation_shard``, no padding), or all of it (count None) for a plain iterable of
    batches, which every process then evaluates whole."""
    if not isinstance(valid, DataLoader):
        return valid, None
    part = dist.evaluation_shard(len(valid.dataset), rank, world)
    data = valid.dataset.take(part) if isinstance(valid.dataset, ArrayDataset) else _DatasetPart(valid.dataset, part)
    return DataLoader(data, valid.batch_size, transform=valid.transform, seed=valid.seed, dtype=valid.dtype), \
        part.stop - part.start


def _validate(trainer: Trainer, valid, count) -> dict:
    """``_evaluate`` on the validation data; data-parallel with a count, each process on its part, reduced."""
    if trainer.world_size == 1 or count is None:
        return _evaluate(trainer.model, valid, trainer.loss, None)
    mine = _evaluate(trainer.model, valid, trainer.loss, None) if count else {"loss": 0.0, "confusion": []}
    return dist.reduce_evaluation(mine, count)


def _seed_per_process() -> None:
    """Give every process its own stream of the global generator (dropout, unseeded draws): rank 0 draws a
    base seed, and process r continues from ``SeedSequence(base, spawn_key=(r,))``. Deterministic from
    the run's seed; different on every rank."""
    base = dist.broadcast_from_writer(int(_random.default_generator().integers(2**63)))
    words = np.random.SeedSequence(base, spawn_key=(dist.rank(),)).generate_state(2, np.uint64)
    _random.manual_seed(int(words[0]) << 64 | int(words[1]))


def fit(model: Module, loss, optimizer, train, valid=None, *, epochs: int = 1, batch_size: int | None = None,
        scheduler=None, callbacks=(), seed: int | None = None, augment=None, run_dir=None, resume=None,
        clip_grad_norm: float | None = None, progress: bool = True, check_finite: bool = True, log=print,
        distributed: bool | None = None) -> dict:
    """Train ``model`` for ``epochs`` epochs; returns the history (lists per epoch, keys ``HISTORY_KEYS``).

    train: a pair of arrays (images (N, C, H, W), labels (N,) int) or a ``strided.data.Dataset``,
        batched here: ``batch_size`` (default 64) images, shuffled from ``seed`` (default 0) every
        epoch, ``augment(batch, rng) -> batch`` (optional) applied to the raw images;
        or a ``strided.data.DataLoader``, used exactly as configured (its batches, order,
        transforms and seed; fit calls its ``set_epoch``), so ``batch_size``, ``seed`` and
        ``augment`` must not be given; or any re-iterable of (x, y) batches, used as it is.
    valid: the same (a pair or Dataset is evaluated in order, ``EVAL_BATCH_SIZE`` at a time), or None.
    scheduler: an ``strided.optim`` scheduler, stepped after every optimizer step when its ``interval`` is
    "batch" (OneCycleLR, LinearLR, SequentialLR), after every epoch otherwise (ReduceLROnPlateau with the
    epoch's value of its ``monitor``).
    clip_grad_norm: clip the gradients' total 2-norm to this value before every optimizer step
    (``strided.utils.clip_grad_norm_``).
    run_dir: write ``checkpoint.npz``, ``history.json`` and ``history.csv`` there before the first epoch and
    after every epoch; nothing else is written mid-epoch, so a run stopped at any moment resumes exactly.
    resume: a run directory or checkpoint to continue from (exactly), epoch 1 included.
    check_finite: refuse data with NaN/inf and stop (TrainingDiverged) when the loss stops being finite.
    callbacks: ``Callback`` objects, called in order; ``ModelCheckpoint()`` keeps the best model as best.npz,
    ``strided.viz.FigureCallback()`` draws curves.png and filters.png into the run directory at the end.
    distributed: data-parallel training over the processes of an MPI job (docs/distributed.md). None
    (default): when launched with several (``mpiexec -n N``); False: this process alone; True: require it.
    Then the model is wrapped in ``distributed.DistributedDataParallel`` (rank 0's weights everywhere,
    gradients averaged), each process reads its shard of every epoch (``DataLoader(shard=...)``, padded as
    torch's DistributedSampler; ``batch_size`` is per process) and its part of the validation data, the
    epoch's values are summed over the processes before any decision (divergence, callbacks, schedulers),
    dropout draws a stream per process, and rank 0 alone logs and writes the run directory; its checkpoint
    holds every process's random states and resumes on the same number of processes only.
    """
    epochs = _checks.positive_int("epochs", epochs)
    world = _world_size(distributed)
    if batch_size is not None:
        batch_size = _checks.positive_int("batch_size", batch_size)
    train = _batches_of("train", train, batch_size, default_batch_size=DEFAULT_BATCH_SIZE, shuffle=True,
                        augment=augment, seed=seed)
    valid = None if valid is None else _batches_of("valid", valid, None, default_batch_size=EVAL_BATCH_SIZE,
                                                   shuffle=False)
    if check_finite:
        # one pass over the data up front is cheap next to an epoch, and names the culprit early
        _check_finite_images("train", train)
        _check_finite_images("valid", valid)
    valid_count = None
    if world > 1:
        train = _shard_training_data(train, dist.rank(), world)
        # what must agree before the first collective (a run directory on one process only would hang the others)
        dist.check_same("training data (samples, batch size, shuffle, drop_last, seed), epochs, validation, "
                        "run_dir and resume given",
                        [len(train.dataset), train.batch_size, train.shuffle, train.drop_last, train.seed, epochs,
                         valid is not None, run_dir is not None, resume is not None])
        if valid is not None:
            valid, valid_count = _evaluation_part(valid, dist.rank(), world)
    if not isinstance(model, Module):
        raise TypeError(f"model must be a strided Module, got {type(model).__name__}")
    if not hasattr(loss, "backward"):
        raise TypeError(f"loss must be a loss module such as nn.CrossEntropyLoss(), got {type(loss).__name__}")
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizer must be a strided optimizer such as optim.SGD(model.parameters(), lr=0.1), "
                        f"got {type(optimizer).__name__}: {optimizer!r}")
    if scheduler is not None and not isinstance(scheduler, LRScheduler):
        raise TypeError(f"scheduler must be a learning-rate scheduler such as optim.lr_scheduler.StepLR(opt, 10) "
                        f"or None, got {type(scheduler).__name__}: {scheduler!r}")
    if clip_grad_norm is not None:
        clip_grad_norm = _checks.positive_float("clip_grad_norm", clip_grad_norm)
    if run_dir is None and resume is not None and Path(resume).is_dir():
        run_dir = resume
    callbacks = list(callbacks)
    for i, cb in enumerate(callbacks):
        if not isinstance(cb, Callback):
            raise TypeError(f"callbacks[{i}] must be a strided.train.Callback, got {type(cb).__name__}")
    if scheduler is not None:
        callbacks.append(LRSchedule(scheduler))
    _check_monitors(callbacks, scheduler, valid is not None)
    trainer = Trainer(model, loss, optimizer, scheduler, run_dir, log, callbacks, clip_grad_norm, world)
    log = trainer.log
    if resume is not None:
        _resume(trainer, resume, train, callbacks)
    elif world > 1:
        _seed_per_process()
    _check_schedule_length(scheduler, max(epochs - trainer.epoch, 0), len(train) if isinstance(train, DataLoader) else None)
    for cb in callbacks:
        cb.on_train_begin(trainer)
    if trainer.run_dir is not None and resume is None:
        _save_checkpoint(trainer, train, callbacks)  # the starting point: a stop in epoch 1 resumes from here
    try:
        while trainer.epoch < epochs and not trainer.stop:
            epoch = trainer.epoch + 1
            logs = _train_epoch(trainer, train, epoch, epochs, progress, check_finite)
            if valid is not None:
                ev = _validate(trainer, valid, valid_count)
                logs["val_loss"], logs["val_acc"] = ev["loss"], ev["accuracy"]
            trainer.epoch = epoch
            for key in HISTORY_KEYS:
                trainer.history[key].append(logs.get(key))
            log(_epoch_line(logs, epochs))
            for cb in callbacks:
                cb.on_epoch_end(trainer, logs)
            if trainer.run_dir is not None:
                _save_checkpoint(trainer, train, callbacks)
    except KeyboardInterrupt:
        if trainer.run_dir is not None:
            # nothing is saved here: the weights are half way through an epoch; the checkpoint on disk is
            # the last consistent point
            after = f"after epoch {trainer.epoch}" if trainer.epoch else "of the initial state"
            log(f"\ninterrupted during epoch {trainer.epoch + 1}; {trainer.run_dir} holds the checkpoint {after}, "
                f"and resuming restarts epoch {trainer.epoch + 1} (resume={str(trainer.run_dir)!r} or "
                "strided train --resume)")
        raise
    for cb in callbacks:
        cb.on_train_end(trainer)
    return trainer.history


def _all_finite(trainer: Trainer, value: float) -> bool:
    """Whether the batch loss ``value`` is finite, on every process in data-parallel training (a collective:
    every process stops together)."""
    bad = not math.isfinite(value)
    if trainer.world_size > 1:
        bad = bool(dist.all_reduce_sum(np.int64(bad)))
    return not bad


def _train_epoch(trainer, batches, epoch, epochs, progress, check_finite):
    model, loss, optimizer, replica = trainer.model, trainer.loss, trainer.optimizer, trainer.replica
    model.train()
    total = None
    if isinstance(batches, DataLoader):
        batches.set_epoch(epoch - 1)   # epoch e's order and augmentation depend on (seed, e) only: exact resume
        n = batches.num_samples
        total = n - (n % batches.batch_size if batches.drop_last else 0)
    bar = EpochProgress(total, f"epoch {epoch}/{epochs}", enabled=progress and trainer.writer)
    total_loss, correct, seen = 0.0, 0, 0
    epoch_lr = lr = _lr(optimizer)
    start = time.perf_counter()
    try:
        for step, (xb, yb) in enumerate(batches, start=1):
            xb = _float(np.asarray(xb), model)
            yb = _batch_labels(yb, len(xb))
            for cb in trainer.callbacks:
                cb.on_batch_begin(trainer, step)
            lr = _lr(optimizer)
            optimizer.zero_grad()
            out = replica(xb)
            value = float(loss(out, _targets(loss, yb, out)))
            if check_finite and not _all_finite(trainer, value):
                where = "" if trainer.world_size == 1 else " on at least one process"
                raise TrainingDiverged(
                    f"training diverged: the loss is {'not finite' if where else value}{where} at epoch {epoch}, "
                    f"step {step}; lower the learning "
                    f"rate (lr={lr}) or check the data for NaN/inf"
                    + (f"; the last good checkpoint is in {trainer.run_dir}" if trainer.run_dir else "")
                )
            replica.backward(loss.backward(), need_input_grad=False)
            grad_norm = None if trainer.clip_grad_norm is None else \
                clip_grad_norm_(model.parameters(), trainer.clip_grad_norm)
            optimizer.step()
            trainer.global_step += 1
            total_loss += value * len(yb)
            correct += int((predict_labels(loss, out) == yb).sum())
            seen += len(yb)
            bar.update(len(yb), loss=total_loss / seen, acc=correct / seen)
            batch_logs = {"loss": value, "batch_size": len(yb), "lr": lr, "grad_norm": grad_norm}
            for cb in trainer.callbacks:
                cb.on_batch_end(trainer, step, batch_logs)
    finally:
        bar.close()
    if trainer.world_size > 1:   # the epoch's values over every process, before anything decides on them
        sums = dist.all_reduce_metrics({"loss": total_loss, "correct": correct, "seen": seen})
        total_loss, correct, seen = sums["loss"], sums["correct"], sums["seen"]
    if seen == 0:
        raise ValueError(f"the training data yielded no batch in epoch {epoch} (an empty iterable, or drop_last "
                         "with fewer samples than batch_size)")
    seconds = time.perf_counter() - start
    return {"epoch": epoch, "train_loss": total_loss / seen, "train_acc": correct / seen, "lr": epoch_lr,
            "seconds": seconds, "images_per_s": seen / max(seconds, 1e-9), "val_loss": None, "val_acc": None}


def _epoch_line(logs: dict, epochs: int) -> str:
    width = len(str(epochs))
    s = (f"epoch {logs['epoch']:>{width}}/{epochs}  loss {logs['train_loss']:.4f}  acc {logs['train_acc']:.4f}")
    if logs.get("val_loss") is not None:
        s += f"  val_loss {logs['val_loss']:.4f}  val_acc {logs['val_acc']:.4f}"
    s += f"  {logs['images_per_s']:,.0f} img/s  {logs['seconds']:.1f}s"
    if logs.get("lr") is not None:
        s += f"  lr {logs['lr']:.3g}"
    return s


