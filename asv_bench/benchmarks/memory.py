"""Peak memory (max RSS) of a 1 GiB array, filled: numpy against numamap.

hugetlb pages are not counted in RSS (/proc/self/status HugetlbPages is), so numamap arrays
on hugetlb pages would read low: this measures the default page kinds (THP for both here).
"""
import numpy as np

import numamap

from .common import GiB


class PeakMemory:
    params = (["numpy", "numamap"],)
    param_names = ["library"]

    def peakmem_allocate_1g(self, library):
        make = np.empty if library == "numpy" else numamap.empty
        arr = make(GiB // 8)
        arr.fill(1.0)
