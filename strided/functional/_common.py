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


def images(name: str, x) -> tuple[np.ndarray, bool]:
    """x: (N, C, H, W) or one unbatched image (C, H, W), as a float (N, C, H, W) array and whether it was unbatched.

    N and C may be 0 (the output is empty too, as in torch); H and W may not.
    """
    x = _checks.as_float_array(name, x)
    _checks.ndim(name, x, (3, 4), "(N, C, H, W) or unbatched (C, H, W)")
    if 0 in x.shape[-2:]:
        raise ValueError(f"{name} must have a non-zero height and width, got shape {tuple(x.shape)}")
    return (x[None], True) if x.ndim == 3 else (x, False)


def same_dtype(x: np.ndarray, name: str, other: np.ndarray | None) -> None:
    """Refuse mixed float32/float64 operands, as torch does, rather than silently promote."""
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
    dy = _checks.as_float_array(name, dy, dtype)
    if dy.shape != tuple(shape):
        raise ValueError(f"{name} must have the output's shape {tuple(shape)}, got {tuple(dy.shape)}")
    return dy.astype(dtype, copy=False)
