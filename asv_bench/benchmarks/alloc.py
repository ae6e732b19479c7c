"""Allocation latency: empty and zeros from 1 KiB to 1 GiB, numpy against numamap.

'mmap' is the floor for the large sizes: one anonymous mmap + munmap through numamap's cffi
bindings, the call every numamap allocation makes.
"""
import numpy as np

import numamap

from .common import GiB, KiB, MiB


def _mmap_munmap(nbytes):
    from numamap._linux_cffi import ffi, lib

    out = ffi.new("void **")
    flags, prot = lib.MAP_PRIVATE | lib.MAP_ANONYMOUS, lib.PROT_READ | lib.PROT_WRITE

    def call():
        if lib.nm_mmap(ffi.NULL, nbytes, prot, flags, -1, 0, out) != 0:
            raise MemoryError(f"mmap of {nbytes} bytes failed")
        if lib.nm_munmap(out[0], nbytes) != 0:
            raise OSError("munmap failed")

    return call


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
