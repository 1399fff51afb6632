"""``save(model, path)`` and ``load(path)``: a model file that rebuilds its model with no user code.

A model file is a container (:mod:`strided.io.containers`: ``.npz`` by
default, ``.safetensors`` when the path ends so) holding

- the state dict, one array per entry under torch's names (``0.weight``,
  ``1.running_mean``...), so ``dict(np.load(path))`` is usable on its own;
- a JSON description: the format name and version, the architecture
  (:mod:`strided.io.serialize`), an index of the tensors (name, dtype,
  shape), which parameters are frozen, train/eval mode, and optionally the
  input shape and any JSON-friendly metadata (class names, normalisation).

Loading checks everything before building anything it returns: the format
version, that every indexed tensor is present with its dtype and shape, and
that the rebuilt architecture has exactly these tensors. Each problem is a
:class:`~strided.io.FileFormatError` naming the file.
"""
from __future__ import annotations

import json
import os
from collections import OrderedDict
from pathlib import Path

import numpy as np

from .._version import __version__
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


def check_tensors(path, index, arrays: dict, prefix: str) -> OrderedDict:
    """The state dict that the index describes, each tensor checked to be present with its dtype and shape."""
    if not isinstance(index, dict):
        raise FileFormatError(path, "its tensor index is malformed (expected a dict of name -> dtype and shape)")
    state = OrderedDict()
    for name, spec in index.items():
        key = prefix + name
        if key not in arrays:
            raise FileFormatError(path, f"missing tensor {name!r}, which its index lists (the file is incomplete "
                                        "or was modified after saving)")
        a = arrays[key]
        try:
            dtype, shape = np.dtype(spec["dtype"]), tuple(spec["shape"])
        except (TypeError, KeyError) as exc:
            raise FileFormatError(path, f"the index entry of tensor {name!r} is malformed: {spec!r}") from exc
        if a.dtype != dtype or a.shape != shape:
            raise FileFormatError(path, f"tensor {name!r} is {a.dtype} {a.shape} but its index says {dtype} {shape} "
                                        "(the file was modified after saving)")
        state[name] = a
    return state


def match_architecture(path, model: Module, state: dict) -> None:
    """Check that ``state`` has exactly ``model``'s keys and shapes (before anything is loaded)."""
    expected = {k: v.shape for k, v in model.state_dict().items()}
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(s)}" for k, s in expected.items()
             if k in state and tuple(state[k].shape) != tuple(s)]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {missing}")
        if unexpected:
            parts.append(f"unexpected {unexpected}")
        if wrong:
            parts.append(f"wrong shapes [{'; '.join(wrong)}]")
        raise FileFormatError(path, "the tensors do not match the architecture: " + ", ".join(parts))
    for k, v in state.items():
        if v.dtype.kind not in "biuf":
            raise FileFormatError(path, f"tensor {k!r} has dtype {v.dtype}; expected a real number array")


def model_from_section(path, section, arrays: dict, prefix: str = "") -> Module:
    """Rebuild the model that :func:`model_section` described, from the arrays read from ``path``.

    The model keeps the file's floating dtype (a float64 model comes back
    float64), frozen parameters and train/eval modes.
    """
    if not isinstance(section, dict) or "tensors" not in section:
        raise FileFormatError(path, "its model description is missing or malformed")
    state = check_tensors(path, section["tensors"], arrays, prefix)
    if section.get("architecture") is None:
        raise FileFormatError(path, "it holds only a state dict, no architecture; build the model in code and "
                                    "call model.load_state_dict(strided.io.load_state_dict(path))")
    try:
        model = serialize.build(section["architecture"], arrays)
    except (serialize.ArchitectureError, KeyError) as exc:
        raise FileFormatError(path, f"its architecture cannot be rebuilt: {exc}") from exc
    match_architecture(path, model, state)
    floats = {v.dtype for v in state.values() if v.dtype.kind == "f"}
    if len(floats) == 1:
        (dt,) = floats
        if dt in (np.dtype(np.float32), np.dtype(np.float64)) and model.dtype != dt:
            model.to(dt)
    model.load_state_dict(state)
    frozen = set(section.get("frozen", ()))
    for name, p in model.named_parameters():
        p.requires_grad = name not in frozen
    training = bool(section.get("training", True))
    model.train(training)
    other = set(section.get("other_mode", ()))
    for name, m in model.named_modules():
        if name in other:
            m.training = not training
    return model


# ----------------------------------------------------------------------------- reading the description
def read_meta(path, formats=FORMATS) -> tuple[dict, dict]:
    """``(meta, arrays)`` of a strided file, after checking its format name and version."""
    _, arrays, text = containers.read(path)
    return parse_meta(path, text, formats), arrays


def parse_meta(path, text: str | None, formats=FORMATS) -> dict:
    """Decode and check a file's JSON description (format name and version)."""
    if text is None:
        raise FileFormatError(path, "not a strided file: it has no strided description (a plain .npz of arrays? "
                                    "read it with strided.io.load_state_dict(path) or np.load)")
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FileFormatError(path, f"its description is not valid JSON ({exc})") from exc
    if not isinstance(meta, dict):
        raise FileFormatError(path, "its description is not a JSON object")
    fmt, version = meta.get("format"), meta.get("format_version")
    if fmt not in FORMATS:
        raise FileFormatError(path, f"unknown file format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise FileFormatError(path, f"unknown format version {version!r}; "
                                    f"expected an int from 1 to {FORMAT_VERSION}")
    if version > FORMAT_VERSION:
        raise FileFormatError(
            path, f"format version {version} was written by a newer strided ({meta.get('strided_version', '?')}); "
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
    meta, arrays = read_meta(path, FORMATS)
    if meta["format"] == CHECKPOINT_FORMAT:
        return model_from_section(path, meta.get("model"), arrays, "model/")
    return model_from_section(path, meta, arrays)


def info(path) -> dict:
    """What a strided file holds, without building anything: format, version, architecture, tensors, metadata..."""
    meta, arrays = read_meta(path)
    out = dict(meta)
    if "metadata" in out:
        try:
            out["metadata"] = tree.decode(out["metadata"], arrays, "metadata")
        except KeyError as exc:
            raise FileFormatError(path, f"its metadata is incomplete: {exc}") from exc
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
    _, arrays, text = containers.read(path)
    if text is None:
        return OrderedDict(arrays)
    meta = parse_meta(path, text)
    if meta["format"] == CHECKPOINT_FORMAT:
        return check_tensors(path, (meta.get("model") or {}).get("tensors"), arrays, "model/")
    return check_tensors(path, meta.get("tensors"), arrays, "")
