"""The benchmark's progress: a bar on a terminal, plain lines otherwise, or a callback."""
from __future__ import annotations

import sys
import time


class Progress:
    """Progress on stderr when ``enabled`` is True; ``enabled(done, total, label)`` when it is a
    callable; nothing when it is false. Never writes to stdout."""

    def __init__(self, total: int, enabled) -> None:
        self.total, self.done = total, 0
        self.callback = enabled if callable(enabled) else None
        self.enabled = bool(enabled) and self.callback is None
        self.tty = self.enabled and sys.stderr.isatty()
        self.start = time.perf_counter()

    def step(self, label: str) -> None:
        if self.callback is not None:
            self.callback(self.done, self.total, label)
        elif self.tty:
            width = 24
            filled = int(width * self.done / self.total)
            sys.stderr.write(f"\r\x1b[K[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} "
                             f"{time.perf_counter() - self.start:5.1f}s {label}")
            sys.stderr.flush()
        elif self.enabled:
            print(f"numamap bench: [{self.done + 1}/{self.total}] {label}", file=sys.stderr, flush=True)
        self.done += 1

    def finish(self) -> None:
        if self.tty:
            sys.stderr.write(f"\r\x1b[Kdone in {time.perf_counter() - self.start:.1f}s\n")
            sys.stderr.flush()
