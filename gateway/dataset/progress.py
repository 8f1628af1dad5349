"""A one-line progress bar on stderr, redrawn with \\r, only when stderr is a terminal."""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    def __init__(self, total: int, what: str, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty()
        self.total, self.what, self.done = max(total, 1), what, 0
        self._last = 0.0

    def step(self, count: int = 1) -> None:
        self.done += count
        now = time.monotonic()
        # Redraw at most ten times a second: a terminal is slow next to Parquet encoding.
        if self.enabled and (now - self._last >= 0.1 or self.done >= self.total):
            self._last = now
            share = min(self.done / self.total, 1.0)  # the first pass cannot count the spool
            bar = "#" * int(share * 30)
            self.stream.write(f"\r{self.what} [{bar:<30}] {self.done}/{self.total} {share:4.0%}")
            self.stream.flush()

    def finish(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()
