"""Feedback on long work: populating, migrating, first touch, ``numamap check``.

Work that takes more than about a second shows how far it has got: a bar on standard error
when that is a terminal, an updating line (an ipywidgets bar where installed) in Jupyter, and
nothing at all when output is not interactive (scripts piped to a file, CI, tests). Nothing is
ever written to standard output.
"""
from __future__ import annotations

import os
import sys
import time

from ._units import format_bytes

#: Work shorter than this shows nothing.
DELAY_SECONDS = 1.0
_BAR_WIDTH = 30


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    try:
        ip = shell.get_ipython()
    except AttributeError:
        return False
    return ip is not None and "IPKernelApp" in getattr(ip, "config", {})


def interactive() -> bool:
    """Whether anyone is watching: a Jupyter kernel, or standard error on a terminal.

    ``NUMAMAP_PROGRESS=0`` turns feedback off and ``=1`` on, whatever the output is.
    """
    forced = os.environ.get("NUMAMAP_PROGRESS")
    if forced in ("0", "1"):
        return forced == "1"
    if _in_notebook():
        return True
    stream = sys.stderr
    return stream is not None and hasattr(stream, "isatty") and stream.isatty()


class Progress:
    """Report ``done`` out of ``total`` units (bytes by default) of one piece of work.

    Use it as a context manager and call :meth:`advance`; the display appears only once the
    work has run for :data:`DELAY_SECONDS`, and only where :func:`interactive` says so.

    Parameters
    ----------
    total : int
        Units of work in all.
    what : str
        What is being done, e.g. ``'populating 4 GiB on node 0'``.
    unit : str
        'bytes' (shown as KiB, MiB...) or a plural noun shown as is.
    """

    def __init__(self, total: int, what: str, *, unit: str = "bytes"):
        self.total = max(int(total), 1)
        self.what = what
        self.unit = unit
        self.done = 0
        self._start = time.monotonic()
        self._enabled = interactive()
        self._shown = False
        self._widget = None
        self._handle = None

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _amount(self, n: int) -> str:
        return format_bytes(n) if self.unit == "bytes" else f"{n} {self.unit}"

    def _text(self) -> str:
        share = self.done / self.total
        filled = int(share * _BAR_WIDTH)
        elapsed = time.monotonic() - self._start
        return (f"numamap: {self.what} [{'#' * filled}{'.' * (_BAR_WIDTH - filled)}] {share:4.0%} "
                f"{self._amount(self.done)} of {self._amount(self.total)}, {elapsed:.0f} s")

    def advance(self, n: int) -> None:
        """Count ``n`` more units done, and refresh the display when it is due."""
        self.done = min(self.done + int(n), self.total)
        if not self._enabled:
            return
        if not self._shown and time.monotonic() - self._start < DELAY_SECONDS:
            return
        self._show()

    def _show(self) -> None:
        if _in_notebook():
            self._show_in_notebook()
        else:
            sys.stderr.write("\r" + self._text())
            sys.stderr.flush()
        self._shown = True

    def _show_in_notebook(self) -> None:
        from IPython.display import display

        if self._widget is None and self._handle is None:
            try:
                import ipywidgets

                self._widget = ipywidgets.FloatProgress(min=0, max=self.total, description="numamap")
                display(self._widget)
            except ImportError:
                self._handle = display(self._text(), display_id=True)
        if self._widget is not None:
            self._widget.value = self.done
            self._widget.description = f"{self.done / self.total:.0%}"
        else:
            self._handle.update(self._text())

    def close(self) -> None:
        """Finish the display, if one was shown."""
        if not self._shown:
            return
        if self._widget is None and self._handle is None:
            sys.stderr.write("\r" + self._text() + "\n")
            sys.stderr.flush()
        elif self._handle is not None:
            self._handle.update(self._text() + " done")
        self._shown = False


def in_steps(total: int, step: int):
    """``(offset, length)`` pieces of ``total`` units, ``step`` at a time."""
    step = max(int(step), 1)
    for offset in range(0, total, step):
        yield offset, min(step, total - offset)
