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


def finite_float(name: str, value) -> float:
    """Any finite real number (a slope or scale that may be negative)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not np.isfinite(float(value)):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def boolean(name: str, value) -> bool:
    """True or False (NumPy's bools too); 0, 1 or a string are refused, so a misplaced argument is caught."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def shape(name: str, value) -> tuple[int, ...]:
    """An int or a non-empty sequence of positive ints, as a tuple (torch's ``normalized_shape``)."""
    items = (value,) if isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_)) else value
    if not isinstance(items, (tuple, list)) or not items or not all(
            isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_)) for v in items):
        raise TypeError(f"{name} must be an int or a non-empty tuple of ints, got {value!r}")
    if any(v < 1 for v in items):
        raise ValueError(f"{name} must hold positive sizes, got {value!r}")
    return tuple(int(v) for v in items)


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

    Floats pass through untouched (no copy); float32/float64 in the other
    byte order (big-endian data on a little-endian machine) are converted to
    the native order, keeping their precision. Integer and boolean arrays are
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
    if x.dtype.newbyteorder("=") in FLOAT_DTYPES:
        return x.astype(x.dtype.newbyteorder("="))
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
    if not isinstance(value, str):
        raise TypeError(f"{name} must be one of: {', '.join(map(repr, options))}; got {type(value).__name__}: "
                        f"{value!r:.80}")
    if value not in options:
        raise ValueError(f"unknown {name} {value!r}; expected one of: {', '.join(map(repr, options))}")
    return value


def floating(name: str, x, ndims, layout: str) -> np.ndarray:
    """x as a float array with one of the allowed numbers of dimensions, non-empty."""
    x = as_float_array(name, x)
    ndim(name, x, ndims, layout)
    nonempty(name, x)
    return x


def same_dtype(x: np.ndarray, name: str, other: np.ndarray | None) -> None:
    """Refuse mixed float32/float64 operands, as torch does, rather than silently promote."""
    if other is not None and not isinstance(other, np.ndarray):
        raise TypeError(f"{name} must be a NumPy array of {x.dtype} (or None), got {type(other).__name__}: {other!r:.80}")
    if other is not None and other.dtype != x.dtype:
        raise TypeError(
            f"{name} has dtype {other.dtype} but the input has dtype {x.dtype}; "
            f"convert one of them (e.g. model.to(np.{x.dtype}) or x.astype(np.{other.dtype}))"
        )


def grad_output(dy, shape, dtype, name: str = "dy") -> np.ndarray:
    """dy as an array of the forward output's ``shape`` in the forward's ``dtype``.

    A gradient of another shape would broadcast into a silently wrong result,
    so it is refused; a float64 dy for a float32 layer is cast down rather
    than promoting the whole backward pass to float64.
    """
    dy = as_float_array(name, dy, dtype)
    if dy.shape != tuple(shape):
        raise ValueError(f"{name} must have the output's shape {tuple(shape)}, got {tuple(dy.shape)}")
    return dy.astype(dtype, copy=False)


def inplace_target(x) -> np.ndarray:
    """x itself, checked to be an array the result can be written into (``inplace=True``)."""
    if not isinstance(x, np.ndarray) or x.dtype not in FLOAT_DTYPES:
        got = f"dtype {x.dtype}" if isinstance(x, np.ndarray) else type(x).__name__
        raise TypeError(f"x must be a float32 or float64 NumPy array with inplace=True (the result is written "
                        f"into it, in the machine's byte order), got {got}; convert it first or use inplace=False")
    if not x.flags.writeable:
        raise ValueError(f"x of shape {tuple(x.shape)} is read-only, but inplace=True writes the result into it; "
                         "pass a writeable array (x.copy()) or use inplace=False")
    if x.size and any(s == 0 and n > 1 for s, n in zip(x.strides, x.shape)):
        raise ValueError(f"x of shape {tuple(x.shape)} has elements sharing memory (strides {x.strides}), "
                         "so inplace=True cannot write one result per element; pass x.copy() or use inplace=False")
    return x


def cache(value, expected: type, forward: str):
    """value, when it is the ``expected`` cache that ``forward`` returned (a backward's second argument)."""
    if not isinstance(value, expected):
        raise TypeError(f"cache must be the {expected.__name__} that {forward} returned, "
                        f"got {type(value).__name__}: {value!r:.80}")
    return value


def integer(name: str, value) -> int:
    """value as an int (any integral type, bool refused)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {value!r}")
    return int(value)


# what the command lines (``strided``, ``strided reproduce``) report as one ``error:`` line, without a traceback
USER_ERRORS = (ValueError, TypeError, KeyError, FileNotFoundError, ImportError)


def user_error_message(exc: BaseException) -> str:
    """The message of a user error; a KeyError's own text (its str() would add quotes)."""
    return str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)


def image_batch(name: str, x) -> np.ndarray:
    """x: (N, C, H, W) as a float array. N and C may be 0 (the output is empty too, as in torch); H and W may not.

    An unbatched image (C, H, W) is the layers' business (``strided.nn``'s ``IMAGES``), not the functional core's.
    """
    x = as_float_array(name, x)
    ndim(name, x, 4, "(N, C, H, W)")
    if 0 in x.shape[-2:]:
        raise ValueError(f"{name} must have a non-zero height and width, got shape {tuple(x.shape)}")
    return x
