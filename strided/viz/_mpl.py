"""Matplotlib, imported lazily and used without pyplot.

Every figure is a :class:`matplotlib.figure.Figure` attached to the Agg
canvas directly. That never opens a window, never needs a display, and
never changes the global backend or pyplot's figure list, so plotting
works the same on a headless server, in a test and inside a notebook.

Figures are saved atomically: rendered into a temporary file in the
destination directory and moved into place with ``os.replace``, so a
crash mid-render never leaves a truncated PNG behind.
"""
from __future__ import annotations

import math
import numbers
import os
from pathlib import Path

import numpy as np

from .._optional import install_hint, require

INSTALL_HINT = install_hint("matplotlib", "plotting", extra="viz")

# Colours that keep their meaning across figures.
TRAIN_COLOUR = "tab:blue"
VAL_COLOUR = "tab:orange"
RIGHT_COLOUR = "tab:green"
WRONG_COLOUR = "tab:red"
BACKGROUND = "#dddddd"  # gaps between tiles (NaN pixels)


def require_matplotlib():
    """Import matplotlib or fail with the command that installs it (:data:`INSTALL_HINT`)."""
    return require("matplotlib", "plotting", extra="viz")


def new_figure(figsize, dpi, layout: str | None = "constrained"):
    """A Figure on the Agg canvas: (width, height) inches at ``dpi``, constrained layout unless ``layout=None``."""
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=dpi, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def colormap(name: str, bad: str = BACKGROUND):
    """A copy of a named colormap whose NaN colour is ``bad`` (the tile gaps)."""
    import matplotlib

    return matplotlib.colormaps[name].with_extremes(bad=bad)


# -- argument checks ---------------------------------------------------------


def check_path(path) -> Path:
    """A destination path with an image suffix matplotlib can write (``.png``, ``.pdf``, ``.svg``...)."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path = Path(path)
    suffix = path.suffix.lower().lstrip(".")
    supported = ("png", "pdf", "svg", "jpg", "jpeg", "webp", "eps", "ps", "tif", "tiff")
    if suffix not in supported:
        raise ValueError(
            f"path must end in an image suffix ({', '.join('.' + s for s in supported)}), got {str(path)!r}"
        )
    if path.exists() and path.is_dir():
        raise ValueError(f"path must be a file name, got the directory {str(path)!r}")
    return path


def check_dpi(dpi) -> float:
    if isinstance(dpi, (bool, np.bool_)) or not isinstance(dpi, numbers.Real) or not 10 <= dpi <= 1200:
        raise ValueError(f"dpi must be a number between 10 and 1200, got {dpi!r}")
    return float(dpi)


def check_figsize(figsize, default) -> tuple[float, float]:
    """``figsize`` (width, height) in inches, or ``default`` when None."""
    if figsize is None:
        return (float(default[0]), float(default[1]))
    ok = (
        isinstance(figsize, (tuple, list)) and len(figsize) == 2
        and all(isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)) for v in figsize)
        and all(0 < v <= 100 for v in figsize)
    )
    if not ok:
        raise ValueError(f"figsize must be (width, height) in inches, each in (0, 100], got {figsize!r}")
    return (float(figsize[0]), float(figsize[1]))


def real_array(name: str, value, ndim: tuple[int, ...], layout: str) -> np.ndarray:
    """``value`` as a finite float64 array with one of the allowed dimensions (for display only)."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a real-valued array, got dtype {arr.dtype}")
    if arr.ndim not in ndim:
        raise ValueError(
            f"{name} must have {' or '.join(map(str, ndim))} dimensions {layout}, got shape {tuple(arr.shape)}"
        )
    if arr.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {tuple(arr.shape)}")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values; expected finite numbers")
    return arr


def class_names(name: str, names, count: int) -> list[str]:
    """``names`` as ``count`` strings, or ``'0'``, ``'1'``... when None."""
    if names is None:
        return [str(i) for i in range(count)]
    if isinstance(names, str) or not hasattr(names, "__len__"):
        raise TypeError(f"{name} must be a list of strings, got {type(names).__name__}")
    if len(names) != count:
        raise ValueError(f"{name} must have {count} entries (one per class), got {len(names)}: {list(names)!r}")
    return [str(n) for n in names]


# -- drawing helpers -----------------------------------------------------------


def count(n: int, noun: str) -> str:
    """``'1 filter'``, ``'6 filters'``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def grid_shape(n: int, ncols: int | None = None) -> tuple[int, int]:
    """(rows, cols) of a near-square grid holding ``n`` tiles (``ncols`` fixed if given)."""
    cols = ncols if ncols else max(1, math.ceil(math.sqrt(n)))
    return math.ceil(n / cols), cols


def tile(images: np.ndarray, ncols: int | None = None, gap: int = 1) -> np.ndarray:
    """Lay out images: (n, h, w) as one mosaic, row-major, with ``gap`` NaN pixels between tiles.

    One ``imshow`` of the mosaic draws every tile with one shared colour
    scale, which is both faster and more honest than n separate axes with
    n separate scales. NaN pixels show as the colormap's "bad" colour.
    """
    n, h, w = images.shape
    rows, cols = grid_shape(n, ncols)
    padded = np.full((rows * cols, h + gap, w + gap), np.nan)
    padded[:n, :h, :w] = images
    mosaic = padded.reshape(rows, cols, h + gap, w + gap).transpose(0, 2, 1, 3)
    mosaic = mosaic.reshape(rows * (h + gap), cols * (w + gap))
    return mosaic[: mosaic.shape[0] - gap, : mosaic.shape[1] - gap]


def tile_centres(count: int, size: int, gap: int = 1) -> np.ndarray:
    """Pixel coordinates of the centres of ``count`` tiles of ``size`` pixels along one mosaic axis."""
    return np.arange(count) * (size + gap) + (size - 1) / 2


def display_image(image: np.ndarray) -> tuple[np.ndarray, str | None]:
    """An image (C, H, W) ready for ``imshow``: (H, W) with a gray colormap, or (H, W, 3) in [0, 1].

    Colour images are min-max scaled, because a standardised image has
    values far outside [0, 1] and imshow would clip them.
    """
    if image.shape[0] == 3:
        rgb = image.transpose(1, 2, 0).astype(np.float64)
        lo, hi = rgb.min(), rgb.max()
        return (rgb - lo) / (hi - lo) if hi > lo else np.zeros_like(rgb), None
    return image[0].astype(np.float64), "gray"


# -- saving --------------------------------------------------------------------


def save(fig, path: Path, dpi: float) -> Path:
    """Render ``fig`` to ``path`` atomically (temporary file in the same directory, then ``os.replace``)."""
    from ..io.atomic import atomic_write

    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format=fmt, dpi=dpi)
    return path
