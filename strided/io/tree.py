"""Nested Python values <-> JSON text plus a flat dict of NumPy arrays.

Model configurations, optimizer and scheduler states, histories and random
generator states are trees of dicts, lists, tuples, numbers, strings and
arrays. :func:`encode` turns such a tree into a JSON-friendly tree in which
every array is replaced by a reference ``{"__array__": key}`` and stored in
``arrays[key]``, so the whole thing fits in an ``.npz`` (one JSON entry and
one entry per array) with no pickle. :func:`decode` reverses it exactly:

- arrays keep dtype, shape and every bit;
- NumPy scalars come back as NumPy scalars of the same dtype (float32
  values are exact in JSON's float64), Python floats as floats (JSON
  writes the shortest repr, which round-trips), ints of any size as ints;
- tuples stay tuples, dicts with non-string keys (an optimizer's state is
  keyed by parameter index) keep their keys, inf and NaN survive.

Anything else (a function, an object) is rejected naming where it was found.
"""
from __future__ import annotations

import json
import math
import numbers

import numpy as np

__all__ = ["encode", "decode", "dumps", "loads", "TreeError", "DecodeError"]

_MARKERS = ("__array__", "__tuple__", "__dict__", "__float__", "__scalar__", "__dtype__", "__module__")


class TreeError(TypeError):
    """A value that cannot be written as JSON plus arrays."""


def _encode_float(v: float):
    if math.isfinite(v):
        return v
    return {"__float__": "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")}


def encode(value, arrays: dict, where: str = "value", prefix: str = "", hook=None):
    """Return a JSON-friendly version of ``value``; arrays go into ``arrays`` under keys starting with ``prefix``.

    ``where`` names the value in error messages (e.g. ``"optimizer['state'][0]"``).
    ``hook(value, where)``, when given, may return an encoding of its own for
    a value (modules inside a configuration) or ``None`` to use the default.
    """
    if hook is not None:
        custom = hook(value, where)
        if custom is not None:
            return custom
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biufc" or value.dtype.hasobject:
            raise TreeError(f"{where} is an array of dtype {value.dtype}; only numeric and boolean arrays "
                            "can be saved (no pickle)")
        key = prefix or "array"
        if key in arrays:
            n = 1
            while f"{key}#{n}" in arrays:
                n += 1
            key = f"{key}#{n}"
        arrays[key] = value
        return {"__array__": key}
    if isinstance(value, np.generic):
        if isinstance(value, np.bool_):
            return {"__scalar__": "bool", "value": bool(value)}
        if value.dtype.kind in "iu":
            return {"__scalar__": value.dtype.name, "value": int(value)}
        if value.dtype.kind == "f" and value.dtype.itemsize <= 8:
            return {"__scalar__": value.dtype.name, "value": _encode_float(float(value))}
        # long double, complex...: keep every bit by storing a 0-d array
        return {"__scalar__": "array", "value": encode(np.asarray(value), arrays, where, prefix)}
    if isinstance(value, np.dtype) or (isinstance(value, type) and issubclass(value, np.generic)):
        return {"__dtype__": np.dtype(value).str}
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, float):
        return _encode_float(value)
    if isinstance(value, tuple):
        return {"__tuple__": [encode(v, arrays, f"{where}[{i}]", f"{prefix}/{i}", hook) for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [encode(v, arrays, f"{where}[{i}]", f"{prefix}/{i}", hook) for i, v in enumerate(value)]
    if isinstance(value, dict):
        plain = all(isinstance(k, str) for k in value) and not any(k in _MARKERS for k in value)
        if plain:
            return {k: encode(v, arrays, f"{where}[{k!r}]", f"{prefix}/{k}", hook) for k, v in value.items()}
        items = []
        for k, v in value.items():
            items.append([encode(k, arrays, f"{where} key {k!r}", f"{prefix}/key", hook),
                          encode(v, arrays, f"{where}[{k!r}]", f"{prefix}/{k}", hook)])
        return {"__dict__": items}
    raise TreeError(f"{where} is a {type(value).__name__} ({value!r:.60}); only None, bool, int, float, str, "
                    "lists, tuples, dicts, NumPy arrays, scalars and dtypes can be saved (no pickle)")


def decode(value, arrays, where: str = "value", hook=None):
    """Inverse of :func:`encode`; ``arrays`` maps keys to arrays (a dict or a checked container).

    ``hook(value, where)`` undoes :func:`encode`'s hook (``None``: not its value).
    Raises :class:`DecodeError` naming the place for a reference to a missing
    array or a malformed marker (an unknown scalar kind, a tuple that is not a
    list...), never another exception on a crafted tree.
    """
    if hook is not None:
        custom = hook(value, where)
        if custom is not None:
            return custom
    if isinstance(value, list):
        return [decode(v, arrays, f"{where}[{i}]", hook) for i, v in enumerate(value)]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        (marker, body), = value.items()
        if marker == "__array__":
            if not isinstance(body, str) or body not in arrays:
                raise DecodeError(f"{where} refers to the array {body!r:.80}, which is missing")
            return arrays[body]
        if marker == "__tuple__":
            return tuple(decode(v, arrays, f"{where}[{i}]", hook) for i, v in enumerate(_list(body, where, marker)))
        if marker == "__dict__":
            out = {}
            for item in _list(body, where, marker):
                if not isinstance(item, list) or len(item) != 2:
                    raise DecodeError(f"{where}: a '__dict__' item must be a [key, value] pair, got {item!r:.80}")
                key = decode(item[0], arrays, f"{where} key", hook)
                try:
                    out[key] = decode(item[1], arrays, f"{where}[{key!r:.40}]", hook)
                except TypeError:  # an unhashable key (a list)
                    raise DecodeError(f"{where}: the key {key!r:.80} cannot be a dict key") from None
            return out
        if marker == "__float__":
            if body not in ("inf", "-inf", "nan"):
                raise DecodeError(f"{where}: '__float__' must be 'inf', '-inf' or 'nan', got {body!r:.80}")
            return float(body)
        if marker == "__dtype__":
            return _numeric_dtype(body, where)
    if set(value) == {"__scalar__", "value"}:
        return _scalar(value["__scalar__"], value["value"], arrays, where)
    return {k: decode(v, arrays, f"{where}[{k!r:.40}]", hook) for k, v in value.items()}


class DecodeError(ValueError):
    """A JSON tree that :func:`encode` cannot have written (a crafted or damaged file)."""


_SCALAR_KINDS = ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
                 "float16", "float32", "float64")


def _list(body, where: str, marker: str) -> list:
    if not isinstance(body, list):
        raise DecodeError(f"{where}: {marker!r} must hold a list, got {type(body).__name__}")
    return body


def _numeric_dtype(body, where: str) -> np.dtype:
    try:
        dtype = np.dtype(body) if isinstance(body, str) else None
    except (TypeError, ValueError):
        dtype = None
    if dtype is None or dtype.kind not in "biufc" or dtype.fields is not None or dtype.subdtype is not None:
        raise DecodeError(f"{where}: '__dtype__' must name a numeric dtype such as '<f4', got {body!r:.80}")
    return dtype


def _scalar(kind, v, arrays, where: str):
    if kind == "array":
        a = decode(v, arrays, where)
        if not isinstance(a, np.ndarray) or a.shape != ():
            raise DecodeError(f"{where}: an array scalar must refer to a 0-d array, got {a!r:.80}")
        return a[()]
    if kind not in _SCALAR_KINDS:
        raise DecodeError(f"{where}: unknown scalar kind {kind!r:.40}; expected one of {', '.join(_SCALAR_KINDS)} "
                          "or 'array'")
    v = decode(v, arrays, where)
    if isinstance(v, bool) != (kind == "bool") or not isinstance(v, (int, float)):
        raise DecodeError(f"{where}: a {kind} scalar must hold a {'bool' if kind == 'bool' else 'number'}, "
                          f"got {v!r:.80}")
    if kind == "bool":
        return np.bool_(v)
    dtype = np.dtype(kind)
    if dtype.kind in "iu" and (not isinstance(v, int) or not np.iinfo(dtype).min <= v <= np.iinfo(dtype).max):
        raise DecodeError(f"{where}: {v!r:.40} is not a {kind} value")
    try:
        return dtype.type(v)
    except OverflowError:
        raise DecodeError(f"{where}: {v!r:.40} is not a {kind} value") from None


def dumps(tree) -> str:
    """JSON text of an encoded tree (strict JSON: inf/NaN were already encoded)."""
    return json.dumps(tree, allow_nan=False, separators=(",", ":"))


def loads(text: str):
    return json.loads(text)
