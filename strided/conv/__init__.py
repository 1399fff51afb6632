"""Convolution algorithms behind one interface, and the choice between them.

Each algorithm lives in its own file and implements
:class:`~strided.conv.base.ConvAlgorithm` (forward, gradient w.r.t. the
input, gradient w.r.t. the weight, over one validated
:class:`~strided.geometry.ConvGeometry`):

============  ========================================================  ===========
name          idea                                                      write-up
============  ========================================================  ===========
naive         loops over output pixels; the reference                   001
im2col        index arrays + ``np.add.at`` (teaching version)            001/002/004
gather        channels-last ``np.take``; dx as a convolution            000
scipy         ``scipy.signal`` convolution with the reversed kernel     003
window_rows   window rows of the batch-last input, blocks of rows        000/001/004
              multiplied with BLAS; col2im by slice adds (default;
              also accepted under its earlier name ``'strided'``)
shifted_rows  whole padded input rows times the kernel columns           --
              stacked, outputs shifted along W and added (default for
              wide maps of one group with enough channels)
depthwise     one input channel per group: blocks of channels, band      000/004
              products over window rows (default for depthwise layers)
pointwise     1x1 kernel, no padding: one matrix product per pass        --
              over x in its own memory order (default for 1x1 layers)
fft           convolution theorem, channels summed between transforms   --
winograd      F(2x2, 3x3) minimal filtering (3x3, stride 1 only)        --
============  ========================================================  ===========

(The write-ups are the five texts the project grew from; ARCHITECTURE.md,
"The write-ups this project grew from". This package, ``strided.conv``, is
the algorithms; the layer is :class:`strided.nn.Conv2d` and the functional
op :func:`strided.functional.conv2d_forward`.)

``get(name)`` returns one; ``choose(geom, dtype, name)`` resolves ``'auto'``
to an algorithm that can run the geometry, with the reason, and refuses an
algorithm asked for by name that cannot run it (a kernel Winograd does not
cover, SciPy not installed), naming what is missing; ``explain`` returns
the reason alone. ``'auto'`` follows a default
table measured with ``strided bench conv`` unless autotuning is switched on
(``set_autotune(True)`` or ``STRIDED_CONV_AUTOTUNE=1`` in the environment),
in which case the candidates are timed once per geometry and dtype and the
winner is cached for the process (``autotune_cache()``,
``clear_autotune_cache()``). ``set_workspace_limit(bytes)`` bounds the
scratch memory of one call; larger batches are processed in chunks.
"""
from __future__ import annotations

import os
import time

import numpy as np

from .. import _checks
from ..geometry import ConvGeometry
from .base import ConvAlgorithm, get_workspace_limit, set_workspace_limit
from .depthwise import Depthwise
from .fft import FFT
from .gather import Gather
from .im2col import Im2col
from .naive import Naive
from .pointwise import Pointwise
from .scipy_correlate import ScipyCorrelate
from .shifted_rows import ShiftedRows
from .window_rows import WindowRows
from .winograd import Winograd

__all__ = [
    "ALGORITHMS", "ALIASES", "DEFAULT", "ConvAlgorithm", "names", "get", "choose", "explain", "default_for",
    "set_autotune", "autotune_enabled", "autotune_cache", "clear_autotune_cache",
    "set_workspace_limit", "get_workspace_limit",
]

ALGORITHMS: dict[str, ConvAlgorithm] = {
    a.name: a for a in (WindowRows(), ShiftedRows(), Depthwise(), Pointwise(), Winograd(), FFT(), Gather(), Im2col(), ScipyCorrelate(), Naive())
}
# Earlier names, accepted wherever a name is (saved models, user code): alias -> algorithm name.
ALIASES: dict[str, str] = {"strided": "window_rows"}
DEFAULT = "window_rows"
# The reference and the teaching version are never faster than window_rows; timing them would only slow autotuning.
AUTOTUNE_CANDIDATES = ("window_rows", "shifted_rows", "depthwise", "pointwise", "winograd", "fft", "gather", "scipy")


def names() -> tuple[str, ...]:
    """Every accepted algorithm name, ``'auto'`` first, the aliases (:data:`ALIASES`) last."""
    return ("auto", *ALGORITHMS, *ALIASES)


def get(name: str) -> ConvAlgorithm:
    """The algorithm called ``name`` or one of its aliases (not ``'auto'``)."""
    _checks.choice("algorithm", name, names()[1:])
    return ALGORITHMS[ALIASES.get(name, name)]


# ---- the measured default table --------------------------------------------

FFT_MIN_TAPS = 100
# shifted_rows needs products of at least this many rows per kernel column (kh * Cg), no more output than input
# channels, and input rows at most this much wider, padded, than the output rows (each product computes every
# padded column)
SHIFTED_MIN_K = 32
SHIFTED_MAX_WIDTH = 1.15
# depthwise needs products of at least this many columns (output width times batch) to beat window_rows
DEPTHWISE_MIN_COLUMNS = 32


def default_for(geom: ConvGeometry, dtype) -> tuple[str, str]:
    """``(name, reason)`` from the default table, measured with ``strided bench conv``.

    * ``fft`` for kernels of ``FFT_MIN_TAPS`` taps or more (10x10 and up),
      stride 1, groups 1, when the batch's images outnumber the kernel's
      channel pairs: its cost does not grow with the kernel area, but it
      transforms every (out, in) kernel plane twice, which a small batch
      does not amortise, and with a stride it computes every lag anyway.
    * ``depthwise`` for depthwise layers (one input channel per group, two
      groups or more) whose products have at least ``DEPTHWISE_MIN_COLUMNS``
      columns (output width times batch): it works block of channels by
      block, where the matmul-based algorithms move whole window matrices
      through memory for a handful of multiply-adds per output; narrower
      products are BLAS calls that cost more than their work.
    * ``pointwise`` for 1x1 kernels without padding: the window matrix is
      x itself, so each pass is one matrix product with no window copies.
    * ``shifted_rows`` for layers of one group, stride 1 along W and
      dilation 1 along H, with ``SHIFTED_MIN_K`` product rows or more per
      kernel column (kh * Cg), no more output than input channels, and
      padded rows at most ``SHIFTED_MAX_WIDTH`` times the output rows: it
      copies no windows and multiplies kw times the output channels at
      once, which the thin 3x3 layers of residual networks (16 -> 16
      channels on 32x32 maps) need most. Maps of 8x8 and smaller, few
      input channels and layers that widen the channels measured level or
      slower, and stay with window_rows.
    * ``window_rows`` everywhere else, Winograd's 3x3 layers included
      (``algorithm='winograd'`` and autotuning still reach it).

    The measurements behind each rule: docs/algorithms.md, "The default table, measured".
    """
    dtype = np.dtype(dtype)
    (kh, kw), win = geom.kernel, geom.window
    cg = geom.in_channels // geom.groups
    if (kh * kw >= FFT_MIN_TAPS and win.stride == (1, 1) and geom.groups == 1
            and geom.batch * (geom.in_channels + geom.out_channels) >= geom.out_channels * cg):
        return "fft", f"default table: {kh}x{kw} kernel (>= {FFT_MIN_TAPS} taps), stride 1"
    if (kh, kw) == (1, 1) and not any(geom.padding):
        return "pointwise", "default table: 1x1 kernel without padding (one product per pass)"
    if cg == 1 and geom.groups > 1 and win.out_width * geom.batch >= DEPTHWISE_MIN_COLUMNS:
        return "depthwise", "default table: depthwise layer (one input channel per group)"
    if (ALGORITHMS["shifted_rows"].supports(geom, dtype) is None and kh * cg >= SHIFTED_MIN_K
            and geom.out_channels <= geom.in_channels and win.padded_width <= SHIFTED_MAX_WIDTH * win.out_width):
        return "shifted_rows", (f"default table: one group, {kh * cg} product rows per kernel column "
                                f"(>= {SHIFTED_MIN_K}), padded rows {win.padded_width / win.out_width:.2f}x "
                                f"the output's (<= {SHIFTED_MAX_WIDTH})")
    return DEFAULT, f"default table: {DEFAULT}"


# ---- autotuning ----------------------------------------------------------------

_autotune = os.environ.get("STRIDED_CONV_AUTOTUNE", "0").strip().lower() in ("1", "true", "yes", "on")
_cache: dict[tuple[ConvGeometry, str], tuple[str, dict[str, float]]] = {}


def set_autotune(enabled: bool) -> None:
    """Switch autotuning of ``'auto'`` on or off for the process (like ``torch.backends.cudnn.benchmark``)."""
    global _autotune
    if not isinstance(enabled, (bool, np.bool_)):
        raise TypeError(f"enabled must be True or False, got {enabled!r}")
    _autotune = bool(enabled)


def autotune_enabled() -> bool:
    return _autotune


def autotune_cache() -> dict:
    """A copy of the autotuner's cache: ``{(geom, dtype name): (winner, {candidate: seconds})}``."""
    return dict(_cache)


def clear_autotune_cache() -> None:
    _cache.clear()


def _time_once(alg: ConvAlgorithm, x, w, dy, geom) -> float:
    start = time.perf_counter()
    y, saved = alg.forward(x, w, geom)
    alg.grad_input(dy, w, geom, saved)
    alg.grad_weight(dy, x, geom, saved)
    return time.perf_counter() - start


def _autotune_key(geom: ConvGeometry, dtype: np.dtype):
    return (geom, dtype.name)


def _tune(geom: ConvGeometry, dtype: np.dtype) -> tuple[str, dict[str, float]]:
    """Time forward + both gradients of every candidate on random data; return the fastest."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(geom.x_shape).astype(dtype)
    w = rng.standard_normal(geom.weight_shape).astype(dtype)
    dy = rng.standard_normal(geom.y_shape).astype(dtype)
    times: dict[str, float] = {}
    for name in AUTOTUNE_CANDIDATES:
        alg = ALGORITHMS[name]
        if alg.supports(geom, dtype) is not None:
            continue
        first = _time_once(alg, x, w, dy, geom)           # includes one-off costs (imports, page faults)
        best = min(times.values(), default=np.inf)
        # a candidate already 3x slower than the best on its first run cannot win; spare the repeats
        times[name] = first if first > 3 * best else min(_time_once(alg, x, w, dy, geom) for _ in range(2))
    winner = min(times, key=times.get)
    return winner, times


def _auto(geom: ConvGeometry, dtype: np.dtype) -> tuple[str, str]:
    if not _autotune:
        return default_for(geom, dtype)
    key = _autotune_key(geom, dtype)
    if key not in _cache:
        _cache[key] = _tune(geom, dtype)
    winner, times = _cache[key]
    ranking = ", ".join(f"{n} {t * 1e3:.2f} ms" for n, t in sorted(times.items(), key=lambda kv: kv[1]))
    # the candidates that were not timed, and why: e.g. "scipy skipped: ... needs scipy: pip install ..."
    not_run = "".join(f"; {n} skipped: {ALGORITHMS[n].supports(geom, dtype)}" for n in AUTOTUNE_CANDIDATES
                      if n not in times)
    return winner, f"autotuned ({ranking}){not_run}"


def choose(geom: ConvGeometry, dtype, name: str = "auto") -> tuple[ConvAlgorithm, str]:
    """Return ``(algorithm, reason)`` for ``name`` (an algorithm name or ``'auto'``).

    ``'auto'`` picks an algorithm that can run ``geom`` (the default table,
    or the autotuner's winner) and the reason says why, including the
    candidates it passed over. An algorithm asked for by name is used as
    asked (reason ``'requested'``) or refused: ValueError naming what it
    lacks (``supports()``'s reason: a 3x3 kernel for Winograd, SciPy for
    ``'scipy'``), never silently replaced by another.
    """
    _checks.choice("algorithm", name, names())
    if not isinstance(geom, ConvGeometry):
        raise TypeError(f"geom must be a ConvGeometry (see ConvGeometry.create), got {type(geom).__name__}")
    dtype = _checks.dtype_of("dtype", dtype)
    name = ALIASES.get(name, name)
    if name != "auto":
        why = ALGORITHMS[name].supports(geom, dtype)
        if why is not None:
            raise ValueError(f"algorithm {name!r} cannot run this convolution ({why}); "
                             "algorithm='auto' chooses one that can")
        return ALGORITHMS[name], "requested"
    chosen, reason = _auto(geom, dtype)
    why = ALGORITHMS[chosen].supports(geom, dtype)
    if why is not None:   # a table entry that does not apply
        chosen, reason = DEFAULT, f"default table: {DEFAULT} ({chosen} cannot: {why})"
    return ALGORITHMS[chosen], reason


def explain(geom: ConvGeometry, dtype, name: str = "auto") -> str:
    """Which algorithm ``choose`` picks for ``name`` and why, as one sentence."""
    alg, reason = choose(geom, dtype, name)
    return f"{alg.name}: {reason}"
