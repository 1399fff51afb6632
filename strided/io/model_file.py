"""``save(model, path)`` and ``load(path)``: a model file that rebuilds its model with no user code.

A model file is a container (:mod:`strided.io.containers`: ``.npz`` by
default, ``.safetensors`` when the path ends so) holding

- the state dict, one array per entry under torch's names (``0.weight``,
  ``1.running_mean``...), so ``dict(np.load(path))`` is usable on its own;
- a JSON description: the format name and version, the architecture
  (:mod:`strided.io.serialize`), an index of the tensors (name, dtype,
  shape), which parameters are frozen, train/eval mode, and optionally the
  input shape and any JSON-friendly metadata (class names, normalisation).

Loading checks everything before it allocates or builds anything: the
format version, that every indexed tensor is stored with its dtype and shape
(from the entries' headers, checked against the file's size by
:mod:`strided.io.containers`), and that the architecture, built first with
placeholder parameters that take no memory, has exactly these tensors. Only
then are the tensors read and the model built. Each problem is a
:class:`~strided.io.FileFormatError` naming the file.
"""
from __future__ import annotations

import contextlib
import os
from collections import OrderedDict
from pathlib import Path

import numpy as np

from .._version import __version__
from ..nn import init
from ..nn.module import Module
from . import containers, serialize, tree
from .containers import FileFormatError

__all__ = ["save", "load", "info", "save_state_dict", "load_state_dict", "FORMAT_VERSION"]

FORMAT_VERSION = 1
MODEL_FORMAT = "strided.model"
STATE_DICT_FORMAT = "strided.state_dict"
CHECKPOINT_FORMAT = "strided.checkpoint"
FORMATS = (MODEL_FORMAT, STATE_DICT_FORMAT, CHECKPOINT_FORMAT)


def _kind_for(path, format: str | None) -> str:
    if format is None:
        return "safetensors" if str(path).lower().endswith(".safetensors") else "npz"
    if format not in ("npz", "safetensors"):
        raise ValueError(f"unknown format {format!r}; expected 'npz' or 'safetensors' (or None: from the suffix)")
    return format


def _tensor_index(state: dict) -> dict:
    return {k: {"dtype": v.dtype.str, "shape": list(v.shape)} for k, v in state.items()}


def _input_shape(input_shape):
    if input_shape is None:
        return None
    try:
        shape = [int(s) for s in input_shape]
    except (TypeError, ValueError):
        raise TypeError(f"input_shape must be a sequence of positive ints such as (1, 28, 28), got {input_shape!r}") \
            from None
    if not shape or min(shape) < 1:
        raise ValueError(f"input_shape must be a non-empty sequence of positive ints, got {input_shape!r}")
    return shape


# ----------------------------------------------------------------------------- model sections (shared)
def model_section(model: Module, arrays: dict, prefix: str = "") -> dict:
    """Describe ``model`` into a JSON-friendly dict, putting its tensors into ``arrays`` as ``prefix + name``."""
    if not isinstance(model, Module):
        raise TypeError(f"model must be a strided.nn.Module, got {type(model).__name__}")
    architecture = serialize.describe(model, arrays, "model", f"{prefix}__config__")
    state = model.state_dict()
    for k, v in state.items():
        arrays[prefix + k] = v
    return {
        "architecture": architecture,
        "tensors": _tensor_index(state),
        "frozen": [name for name, p in model.named_parameters() if not p.requires_grad],
        "training": bool(model.training),
        # modules whose train/eval mode differs from the model's (usually none)
        "other_mode": [name for name, m in model.named_modules() if m.training != model.training],
    }


def check_index(path, index, headers: dict, prefix: str) -> "OrderedDict[str, containers.Header]":
    """Name -> header of every tensor the index lists, each checked to be stored with its dtype and shape.

    Only the headers are compared: nothing is read or allocated.
    """
    if not isinstance(index, dict):
        raise FileFormatError(path, "its tensor index is malformed (expected a dict of name -> dtype and shape)")
    out = OrderedDict()
    for name, spec in index.items():
        key = prefix + name
        if key not in headers:
            raise FileFormatError(path, f"missing tensor {name!r:.80}, which its index lists (the file is incomplete "
                                        "or was modified after saving)")
        h = headers[key]
        try:
            dtype, shape = np.dtype(spec["dtype"]), tuple(spec["shape"])
        except (TypeError, KeyError, ValueError) as exc:
            raise FileFormatError(path, f"the index entry of tensor {name!r} is malformed: {spec!r:.80}") from exc
        if h.dtype != dtype or h.shape != shape:
            raise FileFormatError(path, f"tensor {name!r} is {h.dtype} {h.shape} but its index says {dtype} "
                                        f"{shape!r:.80} (the file was modified after saving)")
        if h.dtype.kind not in "biuf":
            raise FileFormatError(path, f"tensor {name!r} has dtype {h.dtype}; expected a real number array")
        out[name] = h
    return out


def read_tensors(container, index: dict, prefix: str) -> OrderedDict:
    """The arrays of a checked index (:func:`check_index`), read from the container."""
    return OrderedDict((name, container[prefix + name]) for name in index)


def check_tensors(path, index, container, prefix: str) -> OrderedDict:
    """The state dict that the index describes, each tensor checked to be present with its dtype and shape."""
    return read_tensors(container, check_index(path, index, container.headers, prefix), prefix)


def state_shapes(model: Module) -> "OrderedDict[str, tuple]":
    """Name -> shape of every tensor of ``model.state_dict()``, without copying any."""
    out = OrderedDict()
    for mname, m in model.named_modules(remove_duplicate=False):  # a shared module at each of its places
        pre = f"{mname}." if mname else ""
        for pname, p in m.named_parameters():
            if "." not in pname:  # the module's own, not its children's
                out[pre + pname] = tuple(p.shape)
        for bname, b in m.named_buffers():
            if "." not in bname:
                out[pre + bname] = tuple(np.shape(b))
    return out


def match_architecture(path, expected: dict, stored: dict) -> None:
    """Check that the stored tensors (name -> shape) are exactly the architecture's (before anything is loaded)."""
    missing = [k for k in expected if k not in stored]
    unexpected = [k for k in stored if k not in expected]
    wrong = [f"{k}: file {tuple(stored[k])} vs model {tuple(s)}" for k, s in expected.items()
             if k in stored and tuple(stored[k]) != tuple(s)]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {_few(missing)}")
        if unexpected:
            parts.append(f"unexpected {_few(unexpected)}")
        if wrong:
            parts.append(f"wrong shapes [{'; '.join(_few(wrong))}]")
        raise FileFormatError(path, "the tensors do not match the architecture: " + ", ".join(parts))


def _few(names: list, n: int = 10) -> list:
    return names if len(names) <= n else [*names[:n], f"... {len(names) - n} more"]


def _names(path, section: dict, key: str) -> set:
    value = section.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise FileFormatError(path, f"its {key!r} entry must be a list of names, got {value!r:.80}")
    return set(value)


def _build(path, architecture, container, shapes_only: bool = False) -> Module:
    try:
        if shapes_only:
            with init.shapes_only():
                return serialize.build(architecture, container)
        return serialize.build(architecture, container)
    except (serialize.ArchitectureError, RecursionError) as exc:
        raise FileFormatError(path, f"its architecture cannot be rebuilt: {exc}") from exc


def model_from_section(path, section, container, prefix: str = "") -> Module:
    """Rebuild the model that :func:`model_section` described, from the checked container opened on ``path``.

    First the architecture is built with placeholder parameters
    (:func:`strided.nn.init.shapes_only`: no memory, no random draws) and its
    tensor names and shapes compared with the file's checked headers; only
    when they agree are the tensors read and the model built. The model
    keeps the file's floating dtype (a float64 model comes back float64),
    frozen parameters and train/eval modes.
    """
    if not isinstance(section, dict) or "tensors" not in section:
        raise FileFormatError(path, "its model description is missing or malformed")
    index = check_index(path, section["tensors"], container.headers, prefix)
    if section.get("architecture") is None:
        raise FileFormatError(path, "it holds only a state dict, no architecture; build the model in code and "
                                    "call model.load_state_dict(strided.io.load_state_dict(path))")
    frozen, other = _names(path, section, "frozen"), _names(path, section, "other_mode")
    training = section.get("training", True)
    if not isinstance(training, bool):
        raise FileFormatError(path, f"its 'training' entry must be true or false, got {training!r:.80}")
    skeleton = _build(path, section["architecture"], container, shapes_only=True)
    match_architecture(path, state_shapes(skeleton), {k: h.shape for k, h in index.items()})
    del skeleton
    state = read_tensors(container, index, prefix)
    model = _build(path, section["architecture"], container)
    floats = {v.dtype for v in state.values() if v.dtype.kind == "f"}
    if len(floats) == 1:
        (dt,) = floats
        if dt in (np.dtype(np.float32), np.dtype(np.float64)) and model.dtype != dt:
            model.to(dt)
    model.load_state_dict(state)
    for name, p in model.named_parameters():
        p.requires_grad = name not in frozen
    model.train(training)
    for name, m in model.named_modules():
        if name in other:
            m.training = not training
    return model


# ----------------------------------------------------------------------------- reading the description
@contextlib.contextmanager
def opened(path, formats=FORMATS):
    """``with opened(path) as (meta, container)``: a strided file's checked description and its arrays."""
    with containers.open_checked(path) as container:
        yield parse_meta(path, container.meta, formats), container


def parse_meta(path, text: str | None, formats=FORMATS) -> dict:
    """Decode and check a file's JSON description (format name and version)."""
    if text is None:
        raise FileFormatError(path, "not a strided file: it has no strided description (a plain .npz of arrays? "
                                    "read it with strided.io.load_state_dict(path) or np.load)")
    meta = containers.parse_json(path, text)
    if not isinstance(meta, dict):
        raise FileFormatError(path, "its description is not a JSON object")
    fmt, version = meta.get("format"), meta.get("format_version")
    if fmt not in FORMATS:
        raise FileFormatError(path, f"unknown file format {fmt!r:.80}; expected one of {', '.join(FORMATS)}")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise FileFormatError(path, f"unknown format version {version!r:.80}; "
                                    f"expected an int from 1 to {FORMAT_VERSION}")
    if version > FORMAT_VERSION:
        raise FileFormatError(
            path, f"format version {version} was written by a newer strided ({meta.get('strided_version', '?')!s:.40}); "
                  f"this strided {__version__} reads versions up to {FORMAT_VERSION}: upgrade strided")
    if fmt not in formats:
        hint = " (read it with strided.io.load_checkpoint)" if fmt == CHECKPOINT_FORMAT else ""
        raise FileFormatError(path, f"this is a {fmt} file; expected {' or '.join(formats)}{hint}")
    return meta


# ----------------------------------------------------------------------------- public API
def save(model: Module, path, *, input_shape=None, metadata=None, format: str | None = None) -> Path:
    """Write ``model`` (architecture and weights) to ``path``, atomically; returns the path.

    ``path`` ending in ``.safetensors`` writes that format (needs the
    ``safetensors`` extra), anything else an ``.npz``. ``input_shape`` (the
    shape of one example, e.g. ``(1, 28, 28)``) and ``metadata`` (any
    JSON-friendly value: class names, normalisation statistics...) are stored
    alongside and returned by :func:`info`. Model classes outside
    :mod:`strided.nn` must be registered (:func:`strided.io.register_module`).
    Dropout generators' positions are not saved (a checkpoint saves them).
    """
    kind = _kind_for(path, format)
    arrays: dict = {}
    meta = {"format": MODEL_FORMAT, "format_version": FORMAT_VERSION, "strided_version": __version__}
    meta.update(model_section(model, arrays))
    meta["input_shape"] = _input_shape(input_shape)
    meta["metadata"] = tree.encode(metadata, arrays, "metadata", "__metadata__")
    containers.write(path, arrays, tree.dumps(meta), kind)
    return Path(path)


def load(path) -> Module:
    """Rebuild the model saved at ``path`` (by :func:`save`, or the model of a training checkpoint).

    The model comes back with its weights, dtype, frozen parameters and
    train/eval mode. Raises :class:`FileFormatError` naming the file for a
    file that is not a strided model, truncated, of an unknown format
    version, or whose tensors do not match its architecture.
    """
    with opened(path) as (meta, container):
        if meta["format"] == CHECKPOINT_FORMAT:
            return model_from_section(path, meta.get("model"), container, "model/")
        return model_from_section(path, meta, container)


def info(path) -> dict:
    """What a strided file holds, without building anything: format, version, architecture, tensors, metadata..."""
    with opened(path) as (meta, container):
        out = dict(meta)
        if "metadata" in out:
            try:
                out["metadata"] = tree.decode(out["metadata"], container, "metadata")
            except (tree.DecodeError, RecursionError) as exc:
                raise FileFormatError(path, f"its metadata is incomplete or malformed: {exc}") from exc
    out["path"] = os.fspath(path)
    return out


def save_state_dict(model_or_state, path, *, format: str | None = None) -> Path:
    """Write only the weights (a model's ``state_dict()`` or a dict of arrays) to ``path``, atomically.

    For models whose class cannot be registered: rebuild the model in code,
    then ``model.load_state_dict(strided.io.load_state_dict(path))``.
    """
    kind = _kind_for(path, format)
    if isinstance(model_or_state, Module):
        state = model_or_state.state_dict()
    elif hasattr(model_or_state, "items"):
        state = OrderedDict()
        for k, v in model_or_state.items():
            if not isinstance(k, str):
                raise TypeError(f"state dict keys must be str, got {k!r}")
            a = np.asarray(v)
            if a.dtype.kind not in "biuf":
                raise TypeError(f"state dict entry {k!r} has dtype {a.dtype}; expected a real number array")
            state[k] = a
    else:
        raise TypeError(f"model_or_state must be a Module or a dict of arrays, got {type(model_or_state).__name__}")
    meta = {"format": STATE_DICT_FORMAT, "format_version": FORMAT_VERSION, "strided_version": __version__,
            "architecture": None, "tensors": _tensor_index(state)}
    containers.write(path, dict(state), tree.dumps(meta), kind)
    return Path(path)


def load_state_dict(path) -> "OrderedDict[str, np.ndarray]":
    """The weights stored at ``path``: a model file, a state-dict file, or a plain ``.npz`` of arrays."""
    with containers.open_checked(path) as container:
        if container.meta is None:
            return OrderedDict((k, container[k]) for k in container)
        meta = parse_meta(path, container.meta)
        if meta["format"] == CHECKPOINT_FORMAT:
            model = meta.get("model")
            return check_tensors(path, model.get("tensors") if isinstance(model, dict) else None, container,
                                 "model/")
        return check_tensors(path, meta.get("tensors"), container, "")
