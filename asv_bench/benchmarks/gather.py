"""Random gather (8-byte reads at random) over a 4 GiB array on each page kind.

numamap '4K' is page_size='4K' (MADV_NOHUGEPAGE), 'THP' page_size='auto' with no hugetlb pool
free, '2M' and '1G' hugetlb pages from pools reserved in setup (root only) and released in
teardown; 'numpy' is np.empty, which numpy itself advises for THP.
"""
import numpy as np

from .common import GiB, PAGE_KINDS, Pages


class RandomGather:
    params = (PAGE_KINDS,)
    param_names = ["pages"]
    nbytes = 4 * GiB
    gathers = 32_000_000
    timeout = 600

    def setup(self, kind):
        self.pages = Pages(kind, self.nbytes)
        arr = self.pages.array
        arr.fill(1.0)
        rng = np.random.default_rng(2026)
        self.index = rng.integers(0, arr.size, size=self.gathers, dtype=np.int64)
        self.out = np.empty(self.gathers)

    def teardown(self, kind):
        if getattr(self, "pages", None) is not None:
            self.pages.release()
        self.index = self.out = None

    def time_gather(self, kind):
        np.take(self.pages.array, self.index, out=self.out, mode="clip")
