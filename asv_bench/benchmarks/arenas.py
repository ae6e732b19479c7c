"""The node arenas (issue 11's targets), numpy and numamap side by side:

- ``c = a*b + d`` at 256 KiB, 2 MiB, 16 MiB and 128 MiB, numpy's default handler against
  numamap.policy(node) (operands made under the same handler as the expression);
- ``np.empty(100)`` under each handler;
- RSS left after 1 GiB of arrays is freed and numamap.trim() called (a 'track_' figure, bytes).
"""
import numpy as np

import numamap

from .common import KiB, MiB


def _node():
    return min(numamap.topology().allowed_memory_nodes)


class Expression:
    params = (["numpy", "numamap.policy"], [256 * KiB, 2 * MiB, 16 * MiB, 128 * MiB])
    param_names = ["handler", "size"]

    def setup(self, handler, size):
        self.policy = numamap.policy(_node()) if handler != "numpy" else None
        if self.policy is not None:
            self.policy.__enter__()
        n = size // 8
        self.a, self.b, self.d = np.ones(n), np.ones(n), np.ones(n)

    def teardown(self, handler, size):
        if getattr(self, "policy", None) is not None:
            self.policy.__exit__(None, None, None)

    def time_a_times_b_plus_d(self, handler, size):
        c = self.a * self.b + self.d  # noqa: F841


class SmallEmpty:
    params = (["numpy", "numamap.policy"],)
    param_names = ["handler"]

    def setup(self, handler):
        self.policy = numamap.policy(_node()) if handler != "numpy" else None
        if self.policy is not None:
            self.policy.__enter__()

    def teardown(self, handler):
        if getattr(self, "policy", None) is not None:
            self.policy.__exit__(None, None, None)

    def time_empty_100(self, handler):
        np.empty(100)


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        import os

        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class TrimmedRss:
    """Bytes of RSS above the start after 1 GiB of arrays (16 MiB and 64 KiB ones) is freed and
    numamap.trim() called: the issue's target is at most 64 MiB."""

    unit = "bytes"

    def track_rss_after_trim(self):
        start = _rss()
        with numamap.policy(_node()):
            arrays = [np.ones(2 * MiB) for _ in range(64 - 8)] + [np.ones(8 * KiB) for _ in range(2048)]
        del arrays
        numamap.trim()
        return max(_rss() - start, 0)
