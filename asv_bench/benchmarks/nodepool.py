"""Triad on partitioned arrays through numamap.NodePool, against numpy on one thread.

'map_blocks' runs one call per block on the block's node; 'threads' splits every block among
its node's threads (NodePool.submit). Skipped while numamap has no NodePool.
"""
import gc
import warnings

import numpy as np

import numamap

from .common import stream_elements


def _node_pool():
    try:
        from numamap.workers import NodePool
    except ImportError:
        return None
    return NodePool


def _triad_block(block, a, b, c):
    start = (block.__array_interface__["data"][0] - a.__array_interface__["data"][0]) // a.strides[0]
    rows = slice(start, start + block.shape[0])
    np.multiply(c[rows], 3.0, out=block)
    np.add(block, b[rows], out=block)


def _triad(a, b, c):
    np.multiply(c, 3.0, out=a)
    np.add(a, b, out=a)


class NodePoolTriad:
    params = (["numpy", "map_blocks", "threads"],)
    param_names = ["how"]
    timeout = 300

    def setup(self, how):
        n = stream_elements()
        self.pool = None
        if how == "numpy":
            self.a, self.b, self.c = (np.full(n, v) for v in (1.0, 2.0, 0.0))
            return
        pool_class = _node_pool()
        if pool_class is None:
            raise NotImplementedError("numamap.NodePool is not available in this build")
        self.pool = pool_class()
        with warnings.catch_warnings():  # a pool too small for the arrays: THP, and a warning
            warnings.simplefilter("ignore", numamap.FallbackWarning)
            self.a, self.b, self.c = (numamap.partitioned(n) for _ in range(3))
        for arr, value in zip((self.a, self.b, self.c), (1.0, 2.0, 0.0)):
            self.pool.first_touch(arr, value)
        self.pieces = []
        for node, rows in numamap.blocks(self.a):
            threads = max(len(self.pool.threads(node)), 1)
            for piece in np.array_split(np.arange(rows.start, rows.stop), threads):
                if len(piece):
                    self.pieces.append((node, slice(int(piece[0]), int(piece[-1]) + 1)))

    def teardown(self, how):
        if getattr(self, "pool", None) is not None:
            self.pool.close()
        self.pool = self.a = self.b = self.c = None
        gc.collect()

    def time_triad(self, how):
        a, b, c = self.a, self.b, self.c
        if how == "numpy":
            _triad(a, b, c)
        elif how == "map_blocks":
            self.pool.map_blocks(_triad_block, a, a, b, c)
        else:
            futures = [self.pool.submit(node, _triad, a[rows], b[rows], c[rows])
                       for node, rows in self.pieces]
            for future in futures:
                future.result()
