"""Argument checking shared by every public boundary.

Every check raises before any work is done, and every message names the
argument, what it got and what it expected, so a user can fix the call
without reading our code.
"""
from __future__ import annotations

import numbers

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def pair(name: str, value, *, allow_zero: bool = False) -> tuple[int, int]:
    """Normalise an int or a pair of ints to ``(h, w)``, as torch does for kernel_size/stride/..."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    if isinstance(value, numbers.Integral):
        out = (int(value), int(value))
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(
        isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_)) for v in value
    ):
        out = (int(value[0]), int(value[1]))
    else:
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    low = 0 if allow_zero else 1
    if out[0] < low or out[1] < low:
        what = "non-negative" if allow_zero else "positive"
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return out


def optional_pair(name: str, value) -> tuple[int | None, int | None]:
    """An int or a pair of ints/None as ``(h, w)``, each >= 0 or None ("keep the input's size"), as torch's
    adaptive pooling takes ``output_size``."""
    def one(v):
        if v is None:
            return None
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral):
            raise TypeError(f"{name} must be an int or a pair of ints or None, got {value!r}")
        if v < 0:
            raise ValueError(f"{name} must be non-negative (or None to keep the input's size), got {value!r}")
        return int(v)

    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a pair (H, W), got {value!r} of length {len(value)}")
        return one(value[0]), one(value[1])
    if value is None:
        raise TypeError(f"{name} must be an int or a pair of ints or None, got None "
                        "(None is allowed inside the pair only, e.g. (None, 7))")
    size = one(value)
    return size, size


def positive_int(name: str, value) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a positive int, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def positive_float(name: str, value, *, allow_zero: bool = False) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not np.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        what = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {what}, got {value!r}")
    return value


def probability(name: str, value) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number in [0, 1], got {value!r}")
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    return float(value)


def dtype_of(name: str, dtype) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"{name} must be float32 or float64, got {dtype!r}") from exc
    if dt not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be float32 or float64, got {dt}")
    return dt


def as_float_array(name: str, x, dtype=None) -> np.ndarray:
    """Return ``x`` as a float32/float64 ndarray.

    Floats pass through untouched (no copy). Integer and boolean arrays are
    cast to ``dtype`` (float32 by default) as torch would require the user to
    do; anything else (complex, object, strings) is rejected.
    """
    if not isinstance(x, np.ndarray):
        try:
            x = np.asarray(x)
        except Exception as exc:  # pragma: no cover - exotic inputs
            raise TypeError(f"{name} must be an array, got {type(x).__name__}") from exc
    if x.dtype in FLOAT_DTYPES:
        return x
    if x.dtype.kind in "biuf":
        return x.astype(np.float32 if dtype is None else dtype)
    raise TypeError(f"{name} must be a real-valued array, got dtype {x.dtype}")


def ndim(name: str, x: np.ndarray, expected: int | tuple[int, ...], layout: str) -> None:
    allowed = (expected,) if isinstance(expected, int) else expected
    if x.ndim not in allowed:
        raise ValueError(
            f"{name} must have {' or '.join(map(str, allowed))} dimensions {layout}, "
            f"got shape {tuple(x.shape)} ({x.ndim} dimensions)"
        )


def nonempty(name: str, x: np.ndarray) -> None:
    if x.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {tuple(x.shape)}")


def finite(name: str, x: np.ndarray) -> None:
    if not np.all(np.isfinite(x)):
        bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
        raise ValueError(f"{name} contains {bad} NaN or infinite value(s); expected finite numbers")


def choice(name: str, value, options) -> str:
    if value not in options:
        raise ValueError(f"unknown {name} {value!r}; expected one of: {', '.join(map(repr, options))}")
    return value
