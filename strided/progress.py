"""Progress display for training: tqdm on a terminal, one line per epoch otherwise.

tqdm is optional; without it (or when the output is not a terminal, as in CI
logs) a line is printed at the end of every epoch, so logs stay readable.
"""
from __future__ import annotations

import sys
import time

from ._optional import optional


class EpochProgress:
    """Shows progress through one epoch's batches; ``update(n_images, **stats)`` after each batch."""

    def __init__(self, total_images: int, desc: str, enabled: bool = True, stream=None):
        self.stream = stream or sys.stderr
        self.total, self.desc, self.enabled = total_images, desc, enabled
        self.seen, self.start = 0, time.perf_counter()
        self._bar = None
        if enabled and getattr(self.stream, "isatty", lambda: False)():
            tqdm_auto = optional("tqdm.auto")
            if tqdm_auto is not None:
                self._bar = tqdm_auto.tqdm(total=total_images, desc=desc, unit="img", file=self.stream, leave=False,
                                 dynamic_ncols=True)

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
