"""First-touch fill: seconds per GB to fill a fresh array once, on each page kind.

asv takes lower as better for every benchmark, so throughput is tracked as its inverse (s/GB,
1 / GB/s): an increase is a regression, as for the time_ benchmarks.

'numpy' is np.zeros + fill (numpy asks for THP itself from 4 MiB), 'numpy-4K' the same buffer
kept on 4 KiB pages with MADV_NOHUGEPAGE; the rest are numamap arrays of that page size.
"""
import gc
import time

import numpy as np

import numamap
from numamap.bench import numpy_base_pages

from .common import GiB, Pages, thp_array


def _make(kind, n):
    if kind == "numpy":
        return np.zeros(n)
    if kind == "numpy-4K":
        return numpy_base_pages(n)
    if kind == "THP":
        return thp_array(n)
    return numamap.empty(n, page_size=kind, strict=kind != "4K")


class FirstTouch:
    params = (["numpy", "numpy-4K", "4K", "THP", "2M", "1G"],)
    param_names = ["pages"]
    unit = "s/GB"
    nbytes = 1 * GiB
    timeout = 300

    def setup(self, kind):
        # Check the kind can be had and reserve its pool; each run below maps afresh.
        self.pages = Pages(kind, self.nbytes)
        self.pages.array = None
        gc.collect()

    def teardown(self, kind):
        if getattr(self, "pages", None) is not None:
            self.pages.release()

    def track_fill(self, kind):
        n = self.nbytes // 8
        gc.collect()
        start = time.perf_counter()
        arr = _make(kind, n)
        arr.fill(1.0)
        elapsed = time.perf_counter() - start
        del arr
        gc.collect()
        return elapsed / (self.nbytes / 1e9)
