"""Input checks shared by the functional ops."""
from __future__ import annotations

import numpy as np

from .. import _checks


def floating(name: str, x, ndims, layout: str) -> np.ndarray:
    """x as a float array with one of the allowed numbers of dimensions, non-empty."""
    x = _checks.as_float_array(name, x)
    _checks.ndim(name, x, ndims, layout)
    _checks.nonempty(name, x)
    return x


def same_dtype(x: np.ndarray, name: str, other: np.ndarray | None) -> None:
    """Refuse mixed float32/float64 operands, as torch does, rather than silently promote."""
    if other is not None and other.dtype != x.dtype:
        raise TypeError(
            f"{name} has dtype {other.dtype} but the input has dtype {x.dtype}; "
            f"convert one of them (e.g. model.to(np.{x.dtype}) or x.astype(np.{other.dtype}))"
        )
