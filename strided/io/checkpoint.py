"""Training checkpoints: everything needed to continue a run exactly where it stopped.

A checkpoint is one ``.npz`` (written atomically, never pickled) holding the
model (architecture and weights, as in a model file), the optimizer's and
scheduler's ``state_dict()``, the number of finished epochs, the history, the
random generators' states and any extra JSON-friendly values. Nested states
(an optimizer's per-parameter buffers keyed by index, a generator's 128-bit
state) are stored as one JSON tree with every array in its own ``.npz``
entry (:mod:`strided.io.tree`), so every value comes back bit for bit: a run
interrupted after epoch k and resumed from its checkpoint ends with the same
weights as an uninterrupted run.

The loop that uses it is :func:`strided.train.fit` (``resume=RUN_DIR``).
"""
from __future__ import annotations

from pathlib import Path

from .._version import __version__
from ..nn.module import Module
from . import containers, model_file, tree
from .containers import FileFormatError

__all__ = ["save_checkpoint", "load_checkpoint"]

_SECTIONS = ("epoch", "history", "rng_state", "extra")


def save_checkpoint(path, model: Module, optimizer=None, scheduler=None, *, epoch=None, history=None,
                    rng_state=None, extra=None) -> Path:
    """Write a training checkpoint to ``path`` (an ``.npz``, atomically); returns the path.

    model: the network (architecture and weights are saved, so
    :func:`load_checkpoint` can rebuild it). optimizer, scheduler: anything
    with ``state_dict()``/``load_state_dict()`` (``strided.optim``).
    epoch: finished epochs. history, rng_state, extra: trees of dicts, lists,
    numbers, strings and NumPy arrays/scalars; ``rng_state`` typically holds
    ``generator.bit_generator.state`` dicts.
    """
    arrays: dict = {}
    meta = {"format": model_file.CHECKPOINT_FORMAT, "format_version": model_file.FORMAT_VERSION,
            "strided_version": __version__,
            "model": model_file.model_section(model, arrays, "model/")}
    for name, obj in (("optimizer", optimizer), ("scheduler", scheduler)):
        if obj is None:
            meta[name] = None
            continue
        if not (hasattr(obj, "state_dict") and hasattr(obj, "load_state_dict")):
            raise TypeError(f"{name} must have state_dict() and load_state_dict(), got {type(obj).__name__}")
        meta[name] = {"class": type(obj).__name__,
                      "state": tree.encode(obj.state_dict(), arrays, f"{name}.state_dict()", name)}
    for name, value in zip(_SECTIONS, (epoch, history, rng_state, extra)):
        meta[name] = tree.encode(value, arrays, name, name)
    containers.write(path, arrays, tree.dumps(meta), "npz")
    return Path(path)


def _check_class(path, name: str, obj, section) -> None:
    if section is None:
        raise FileFormatError(path, f"it holds no {name} state, but a {name} ({type(obj).__name__}) was given "
                                    f"to restore")
    saved_class = section.get("class")
    if saved_class != type(obj).__name__:
        raise FileFormatError(path, f"its {name} state is from {saved_class}, but the given {name} is "
                                    f"{type(obj).__name__}")


def load_checkpoint(path, model: Module | None = None, optimizer=None, scheduler=None) -> dict:
    """Read a checkpoint; restore into ``model``/``optimizer``/``scheduler`` when given.

    Returns a dict: ``model`` (the given model, filled, or one rebuilt from
    the file), ``epoch``, ``history`` and ``extra`` (``{}`` when not saved),
    ``rng_state`` (None when not saved), ``optimizer_state`` and
    ``scheduler_state`` (the raw state dicts, None when not saved).

    Everything is read and checked first; a file that does not fit the
    given objects (tensors vs the model, another optimizer class) raises
    :class:`FileFormatError` before the model is changed. Random generators
    are not touched here: restore them from ``rng_state`` (as ``fit`` does).
    """
    if model is not None and not isinstance(model, Module):
        raise TypeError(f"model must be a strided.nn.Module or None, got {type(model).__name__}")
    with model_file.opened(path, (model_file.CHECKPOINT_FORMAT,)) as (meta, container):
        section = meta.get("model")
        if not isinstance(section, dict):
            raise FileFormatError(path, "its model description is missing or malformed")
        # the model first: its tensors are checked against the architecture before any other array is read
        if model is None:
            model = model_file.model_from_section(path, section, container, "model/")
            filled_later = None
        else:
            index = model_file.check_index(path, section.get("tensors"), container.headers, "model/")
            model_file.match_architecture(path, model_file.state_shapes(model),
                                          {k: h.shape for k, h in index.items()})
            filled_later = model_file.read_tensors(container, index, "model/")
        for name in ("optimizer", "scheduler"):
            if meta.get(name) is not None and not isinstance(meta[name], dict):
                raise FileFormatError(path, f"its {name} section is malformed: {meta[name]!r:.80}")
        try:
            decoded = {name: tree.decode(meta.get(name), container, name) for name in _SECTIONS}
            states = {name: (None if meta.get(name) is None else
                             tree.decode(meta[name].get("state"), container, f"{name} state"))
                      for name in ("optimizer", "scheduler")}
        except (tree.DecodeError, RecursionError) as exc:
            raise FileFormatError(path, f"its saved state is incomplete or malformed: {exc}") from exc

    targets = [(name, obj) for name, obj in (("optimizer", optimizer), ("scheduler", scheduler)) if obj is not None]
    for name, obj in targets:
        _check_class(path, name, obj, meta.get(name))
    # each load_state_dict checks before it changes anything; keep the earlier ones' states to
    # put back if a later one refuses, so a failed call changes nothing
    loaded = []
    for name, obj in targets:
        previous = obj.state_dict()
        try:
            obj.load_state_dict(states[name])
        except (KeyError, TypeError, ValueError) as exc:
            for other, state in loaded:
                other.load_state_dict(state)
            raise FileFormatError(path, f"its {name} state does not fit the given {type(obj).__name__}: "
                                        f"{exc}") from exc
        loaded.append((obj, previous))
    if filled_later is not None:
        model.load_state_dict(filled_later)  # a given model keeps its own dtype, as in torch

    return {
        "model": model,
        "epoch": decoded["epoch"],
        "history": {} if decoded["history"] is None else decoded["history"],
        "rng_state": decoded["rng_state"],
        "extra": {} if decoded["extra"] is None else decoded["extra"],
        "optimizer_state": states["optimizer"],
        "scheduler_state": states["scheduler"],
        "format_version": meta["format_version"],
        "strided_version": meta.get("strided_version"),
    }
