"""Which pages an array got: numpy kept on base pages, numamap's page kinds, numpy's THP share."""
from __future__ import annotations

import numpy as np

from .._backend import backend
from .._units import page_size_name, round_up


def numpy_base_pages(n: int) -> np.ndarray:
    """``np.empty(n)`` whose pages are kept at the base size (no THP, advised before any touch).

    Where the system has no transparent huge pages (Windows), plain ``np.empty(n)``.
    """
    arr = np.empty(n)
    address = arr.__array_interface__["data"][0]
    page = backend.base_page_size()
    start = round_up(address, page)
    end = (address + arr.nbytes) // page * page
    if end > start:
        backend.advise_thp(start, end - start, False)
    return arr


def page_kind(arr: np.ndarray) -> str:
    """'THP', '2M hugetlb', '4K' ...: what a numamap array's View mapped it with."""
    view = arr.base
    if view is None or not hasattr(view, "page_kind"):
        return "numpy memory"
    if view.page_kind == "hugetlb":
        return f"{page_size_name(view.page_size)} hugetlb"
    if view.page_kind == "thp":
        return "THP"
    return page_size_name(view.page_size)


def thp_faults() -> int | None:
    """The kernel's count of transparent huge pages faulted in; None where there is none."""
    try:
        with open("/proc/vmstat") as f:
            for line in f:
                if line.startswith("thp_fault_alloc "):
                    return int(line.split()[1])
    except OSError:
        pass
    return None
