"""STREAM-style copy, scale, add and triad over arrays of 4x the last-level cache, one thread,
numpy's arrays against numamap's; and the machine's copy limit, for scale."""
import gc

import numpy as np

import numamap
from numamap.bench import machine_limit

from .common import stream_elements


class Stream:
    params = (["numpy", "numamap"], ["copy", "scale", "add", "triad"])
    param_names = ["library", "kernel"]
    timeout = 300

    def setup(self, library, kernel):
        n = stream_elements()
        make = np.empty if library == "numpy" else numamap.empty
        self.a, self.b, self.c = (make(n) for _ in range(3))
        for arr, value in zip((self.a, self.b, self.c), (1.0, 2.0, 0.0)):
            arr.fill(value)

    def teardown(self, library, kernel):
        self.a = self.b = self.c = None
        gc.collect()

    def time_kernel(self, library, kernel):
        a, b, c = self.a, self.b, self.c
        if kernel == "copy":
            np.copyto(c, a)
        elif kernel == "scale":
            np.multiply(c, 3.0, out=b)
        elif kernel == "add":
            np.add(a, b, out=c)
        else:
            np.multiply(c, 3.0, out=a)
            np.add(a, b, out=a)


class MachineLimit:
    """The best aggregate memcpy bandwidth (read + write bytes) of one pinned thread per CPU,
    as its inverse: seconds per GB moved (asv takes lower as better)."""

    unit = "s/GB"
    timeout = 300

    def track_copy_limit(self):
        return 1.0 / machine_limit(stream_elements() * 8).best
