"""What the benchmark modules share: array sizes, page kinds and huge-page pools.

Sizes are fixed (asv does not tell a benchmark whether it runs with ``--quick``), and chosen so
that ``asv run --python=same --quick`` stays within a few minutes on a 2-CPU machine.
"""
import gc

import numpy as np

import numamap
from numamap.bench import HugePageReservation, last_level_cache, numpy_base_pages

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30

#: Page kinds: numpy's own allocation (numpy asks for THP from 4 MiB), then numamap's.
PAGE_KINDS = ["numpy", "4K", "THP", "2M", "1G"]
_HUGETLB = {"2M": 2 * MiB, "1G": 1 * GiB}


def stream_elements() -> int:
    """float64 elements per STREAM array: 4x the last-level cache (at least 256 MiB), capped so
    three arrays take at most a third of the memory available now."""
    import psutil

    llc = last_level_cache() or 32 * MiB
    nbytes = max(4 * llc, 256 * MiB)
    nbytes = min(nbytes, psutil.virtual_memory().available // 9)
    return nbytes // 8


def thp_array(n: int) -> np.ndarray:
    """n float64 on base pages with THP asked for, even when a hugetlb pool could serve them
    (page_size='auto' would take the pool)."""
    from numamap.view import map_memory

    return map_memory(n * 8, hugetlb=False).ndarray((n,), np.float64)


def skip(reason: str):
    """asv skips a benchmark whose setup raises NotImplementedError; the reason is printed."""
    raise NotImplementedError(reason)


class Pages:
    """An array of ``nbytes`` on one page kind, and the huge-page pool it needed (released by
    :meth:`release`). Raises NotImplementedError (asv's skip) when the kind cannot be had."""

    def __init__(self, kind: str, nbytes: int):
        self.kind = kind
        self.reservation = None
        n = nbytes // 8
        if kind == "numpy":
            self.array = np.empty(n)
        elif kind == "numpy-4K":
            self.array = numpy_base_pages(n)
        elif kind == "4K":
            self.array = numamap.empty(n, page_size="4K")
        elif kind == "THP":
            if numamap.topology().thp_mode not in ("always", "madvise"):
                skip(f"transparent huge pages are off ({numamap.topology().thp_mode})")
            self.array = thp_array(n)
            if self.array.base.page_kind != "thp":
                got = self.array.base.page_kind
                self.array = None
                skip(f"asked for THP, got {got} pages")
        elif kind in _HUGETLB:
            size = _HUGETLB[kind]
            if size not in numamap.topology().huge_page_sizes:
                skip(f"this kernel has no {kind} huge pages")
            reservation = HugePageReservation(size, -(-nbytes // size))
            try:
                reservation.reserve()
            except (PermissionError, MemoryError) as exc:
                skip(f"{kind} hugetlb pool: {exc}")
            self.reservation = reservation
            try:
                self.array = numamap.empty(n, page_size=kind, strict=True)
            except BaseException:
                self.release()
                raise
        else:
            raise ValueError(f"unknown page kind {kind!r}")

    def release(self) -> None:
        self.array = None
        gc.collect()  # unmap before the pool shrinks
        if self.reservation is not None:
            self.reservation.release()
            self.reservation = None
