"""Progress display for training: a tqdm bar where someone watches, one line per epoch always.

The bar is drawn where a person is watching: a terminal, or a Jupyter
notebook (where stderr is not a terminal, and ``tqdm.auto`` draws a
notebook widget). Elsewhere (CI logs, output piped to a file) there is no
bar, so logs stay readable. ``fit`` prints a line at the end of every
epoch in every case. tqdm is optional: without it, the first epoch that
would have shown a bar says once how to get one (``pip install
strided[progress]``) and training goes on with the per-epoch lines.

Examples::

    bar = EpochProgress(60000, "epoch 1/5")
    for xb, yb in batches:
        ...
        bar.update(len(xb), loss=running_loss)
    bar.close()
"""
from __future__ import annotations

import sys
import time

from ._optional import install_hint, optional

# said at most once per process when a bar would have been drawn but tqdm is missing
NO_TQDM_HINT = install_hint("tqdm", "a progress bar", extra="progress")
_hint_given = False


def in_notebook() -> bool:
    """Whether the code runs in a Jupyter kernel (IPython's kernel app is running)."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    shell = ipython.get_ipython()
    return shell is not None and "IPKernelApp" in shell.config


def _watched(stream) -> bool:
    """Whether a person sees ``stream`` as it is written: a terminal, or a notebook's output."""
    return stream.isatty() or in_notebook()


class EpochProgress:
    """Shows progress through one epoch's images; ``update(n_images, **stats)`` after each batch.

    Args:
        total_images: the number of images in the epoch (the bar's length).
        desc: the text before the bar (``"epoch 1/5"``).
        enabled: False draws nothing (``fit(progress=False)``, ``strided train --quiet``).
        stream: where the bar goes (default ``sys.stderr``).
    """

    def __init__(self, total_images: int, desc: str, enabled: bool = True, stream=None):
        global _hint_given
        self.stream = stream or sys.stderr
        self.total, self.desc, self.enabled = total_images, desc, enabled
        self.seen, self.start = 0, time.perf_counter()
        self._bar = None
        if enabled and _watched(self.stream):
            tqdm_auto = optional("tqdm.auto")
            if tqdm_auto is not None:
                self._bar = tqdm_auto.tqdm(total=total_images, desc=desc, unit="img", file=self.stream,
                                           leave=False, dynamic_ncols=True)
            elif not _hint_given:
                _hint_given = True
                print(f"no progress bar: {NO_TQDM_HINT}", file=self.stream, flush=True)

    @property
    def images_per_second(self) -> float:
        return self.seen / max(time.perf_counter() - self.start, 1e-9)

    def update(self, n: int, **stats) -> None:
        self.seen += n
        if self._bar is not None:
            self._bar.update(n)
            self._bar.set_postfix({k: f"{v:.4g}" for k, v in stats.items()}, refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
