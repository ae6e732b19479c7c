"""Huge-page pools for the benchmark: growing one for a run and putting it back, whatever ends it."""
from __future__ import annotations

import os
import signal
import threading

from .._backend import backend
from .._units import KiB, page_size_name

#: Signals after which the pool is put back before the process ends (SIGINT raises
#: KeyboardInterrupt, which leaves the ``with`` block and so puts it back too).
RESTORE_ON = ("SIGTERM", "SIGHUP")


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


class HugePageReservation:
    """Grow the machine's ``page_size`` hugetlb pool so that ``pages`` are free; shrink it back after.

    A context manager (also ``reserve()``/``release()``). Needs root: raises PermissionError
    otherwise, and MemoryError (with the pool as it was put back) when the kernel cannot find
    the pages. Nothing is changed when enough pages are free already. While the pool is grown,
    SIGTERM and SIGHUP put it back before the process ends as the signal would have ended it
    (when reserved from the main thread, where Python handles signals).
    """

    def __init__(self, page_size: int, pages: int):
        self.page_size = int(page_size)
        self.pages = int(pages)
        self.path = f"/sys/kernel/mm/hugepages/hugepages-{self.page_size // KiB}kB/nr_hugepages"
        self._previous: int | None = None
        self._handlers: dict[int, object] = {}

    def _pool(self):
        return backend.hugepage_pool(self.page_size, None)

    def reserve(self) -> "HugePageReservation":
        pool = self._pool()
        name = page_size_name(self.page_size)
        if pool is None:
            raise MemoryError(f"this kernel has no {name} huge-page pool")
        if pool.free >= self.pages:
            return self
        if not is_root():
            raise PermissionError(f"reserving {self.pages} {name} huge pages needs root "
                                  f"({pool.describe()})")
        self._catch_signals()
        self._previous = pool.total
        try:
            self._write(pool.total + self.pages - pool.free)
        except BaseException:
            self.release()
            raise
        got = self._pool()
        if got is None or got.free < self.pages:
            self.release()
            raise MemoryError(f"the kernel could not find {self.pages} free {name} huge pages "
                              f"(memory too fragmented or too small): "
                              f"{got.describe() if got else 'no pool'}")
        return self

    def _write(self, total: int) -> None:
        with open(self.path, "w") as f:
            f.write(f"{int(total)}\n")

    def release(self) -> None:
        """Put the pool back to its size before ``reserve()`` (when it changed it)."""
        try:
            if self._previous is not None:
                previous, self._previous = self._previous, None
                self._write(previous)
        finally:
            self._restore_signals()

    # -- signals -----------------------------------------------------------------------------
    def _catch_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can be set from the main thread only
        for name in RESTORE_ON:
            signum = getattr(signal, name, None)
            if signum is not None and signum not in self._handlers:
                self._handlers[signum] = signal.signal(signum, self._on_signal)

    def _restore_signals(self) -> None:
        handlers, self._handlers = self._handlers, {}
        for signum, handler in handlers.items():
            signal.signal(signum, handler)

    def _on_signal(self, signum, frame) -> None:
        previous = self._handlers.get(signum, signal.SIG_DFL)
        self.release()  # the pool first, then whatever the signal would have done
        if callable(previous):
            previous(signum, frame)
        elif previous != signal.SIG_IGN:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    def __enter__(self) -> "HugePageReservation":
        return self.reserve()

    def __exit__(self, *exc) -> None:
        self.release()


def pool_note() -> str:
    """Why numamap did not use hugetlb pages: what the pools hold now."""
    pools = []
    for size in backend.huge_page_sizes():
        pool = backend.hugepage_pool(size, None)
        if pool is not None:
            pools.append(f"{page_size_name(size)}: {pool.free} free")
    if not pools:
        return "no hugetlb pools on this system"
    root = "; root: --reserve-hugepages" if hasattr(os, "geteuid") else ""
    return f"hugetlb pools too small ({', '.join(pools)}{root})"
