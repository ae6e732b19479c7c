"""The fill workload: a fresh array, written once, on numpy's pages and on numamap's."""
from __future__ import annotations

import numpy as np

from .._backend import backend
from .._units import MiB, format_bytes
from ..arrays import empty
from .pages import numpy_base_pages, page_kind, thp_faults
from .pools import pool_note
from .results import Row
from .sampling import Plan, alternate, timed


def fill_rows(n: int, plan: Plan) -> list[Row]:
    """Rows 'fill' (numamap against ``np.zeros``) and 'fill vs 4K pages' (against numpy kept
    on base pages), from the same alternating rounds."""
    nbytes = n * 8
    kinds: list[str] = []
    has_thp = backend.thp_mode() in ("always", "madvise")
    thp = []  # THP faults per numpy run

    def numpy_zeros():
        a = np.zeros(n)
        a.fill(1.0)
        return a  # freed by timed(), after the clock stops

    def numpy_4k():
        a = numpy_base_pages(n)
        a.fill(1.0)
        return a

    def numamap_empty():
        a = empty(n)
        a.fill(1.0)
        kinds.append(page_kind(a))
        return a

    def numpy_fill():
        before = thp_faults() if has_thp else None
        seconds = timed(numpy_zeros)
        after = thp_faults()
        if before is not None and after is not None:
            thp.append(after - before)
        return seconds

    out = alternate({"numpy": numpy_fill, "numpy 4K": lambda: timed(numpy_4k),
                     "numamap": lambda: timed(numamap_empty)},
                    [("numpy", "numamap"), ("numpy 4K", "numamap")], plan)
    rate = lambda side: out.measure(side, nbytes)  # noqa: E731 - GB/s
    got = " and ".join(sorted(set(kinds))) or "-"
    numpy_note = ""
    if thp:
        share = min(float(np.median(thp)) * backend.thp_page_size() / nbytes, 1.0)
        numpy_note = f"; numpy got THP for ~{share:.0%} of its pages"
    if nbytes <= 32 * MiB:  # glibc's largest mmap threshold: below it freed blocks get reused
        numpy_note += "; at this size numpy's malloc may reuse memory already touched"
    pools = "" if "hugetlb" in got else f"; {pool_note()}"
    missing = "".join(f"; {side} not measured: {why}" for side, why in out.missing.items())
    return [
        Row("fill", "GB/s", rate("numpy"), rate("numamap"), name=f"fill: {got} vs np.zeros",
            numpy_does="np.zeros + fill", numamap_does="numamap.empty + fill", rounds=out.describe(),
            note=f"{format_bytes(nbytes)}; numamap on {got}{pools}{numpy_note}{missing}"),
        Row("fill vs 4K pages", "GB/s", rate("numpy 4K"), rate("numamap"),
            name=f"fill: {got} vs 4K pages", numpy_does="np.empty on 4 KiB pages (no THP) + fill",
            numamap_does="numamap.empty + fill",
            note=f"numpy column: np.empty kept on 4 KiB pages{missing}"),
    ]
