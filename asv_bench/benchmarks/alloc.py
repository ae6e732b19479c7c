"""Allocation latency: empty and zeros from 1 KiB to 1 GiB, numpy against numamap.

'mmap' is the floor for the large sizes: one anonymous map + unmap through the backend's
``map_unmap_cost``, the calls every numamap allocation makes.
"""
import numpy as np

import numamap

from .common import GiB, KiB, MiB


def _mmap_munmap(nbytes):
    """The backend's bare map + unmap of ``nbytes`` (asv skips it on a numamap without one)."""
    from numamap._backend import backend

    make = getattr(backend, "map_unmap_cost", None)
    if make is None:
        raise NotImplementedError("this numamap's backend has no map_unmap_cost")
    return make(nbytes)


SIZES = [1 * KiB, 16 * KiB, 64 * KiB, 1 * MiB, 64 * MiB, 1 * GiB]


class Allocate:
    """Time to make an array of ``size`` bytes and drop it (no page is touched)."""

    params = (["numpy", "numamap"], ["empty", "zeros"], SIZES)
    param_names = ["library", "function", "size"]

    def setup(self, library, function, size):
        self.make = getattr(np if library == "numpy" else numamap, function)
        self.n = size // 8

    def time_allocate(self, library, function, size):
        self.make(self.n)


class MmapFloor:
    """The same sizes as one anonymous mmap + munmap (memory the kernel zeroes on first touch)."""

    params = (SIZES,)
    param_names = ["size"]

    def setup(self, size):
        self.call = _mmap_munmap(size)

    def time_mmap_munmap(self, size):
        self.call()
