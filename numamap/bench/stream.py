"""STREAM copy and triad: numpy on one thread against numamap's NodePool on partitioned arrays,
and both against the machine's copy limit, all in the same rounds."""
from __future__ import annotations

import time
import warnings

import numpy as np

from .._backend import backend
from .._errors import FallbackWarning
from .._units import format_bytes
from ..partitioning import blocks, partitioned
from ..workers import NodePool
from .machine import last_level_cache, machine_limit
from .results import Row
from .sampling import CPU_CLOCK, MIN_REPEAT, Plan, alternate, timed
from .stats import Measure


def _on_thread(kernel, *arrays) -> float:
    """Run ``kernel`` in a pool thread; its seconds by that thread's clock."""
    start = CPU_CLOCK()
    kernel(*arrays)
    return CPU_CLOCK() - start


def _copy(a, c):
    np.copyto(c, a)


def _triad(a, b, c, scalar=3.0):
    np.multiply(c, scalar, out=a)
    np.add(a, b, out=a)


def _pieces(pool: NodePool, arr: np.ndarray) -> list[tuple[int, slice]]:
    """(node, row slice) pieces of a partitioned ``arr``: each block split among its node's threads."""
    out = []
    for node, rows in blocks(arr):
        threads = max(len(pool.threads(node)), 1)
        for piece in np.array_split(np.arange(rows.start, rows.stop), threads):
            if len(piece):
                out.append((node, slice(int(piece[0]), int(piece[-1]) + 1)))
    return out


def _limit(nbytes: int, repeat: int, notes: list[str]) -> list[float]:
    """Passes of the C memcpy limit, in GB/s; none where the platform cannot measure it."""
    try:
        return list(machine_limit(nbytes, repeat).samples)
    except NotImplementedError as exc:
        notes.append(f"C memcpy limit not measured: {exc}")
        return []


def _rounds(n: int, plan: Plan):
    """Alternating rounds of numpy's and the pool's copy and triad; the arrays go on return.

    Returns the Outcome, the number of pieces and of pool threads, and the pool's fallbacks.
    """
    a, b, c = (np.full(n, v) for v in (0.0, 1.0, 2.0))
    with NodePool() as pool:
        with warnings.catch_warnings():  # pools too small for the arrays: THP, no warning
            warnings.simplefilter("ignore", FallbackWarning)
            x, y, z = (partitioned(n) for _ in range(3))
        for arr, v in zip((x, y, z), (0.0, 1.0, 2.0)):
            pool.first_touch(arr, v)
        pieces = _pieces(pool, x)

        def submit(kernel, *arrays):
            return [pool.submit(node, _on_thread, kernel, *(arr[rows] for arr in arrays))
                    for node, rows in pieces]

        def on_pool(kernel, *arrays) -> float:
            """Seconds of the slowest piece: the pool's time were its threads not preempted."""
            if CPU_CLOCK is time.perf_counter:  # no precise thread clock: the pool's wall time
                return timed(lambda: [f.result() for f in submit(kernel, *arrays)])
            return max(f.result() for f in submit(kernel, *arrays))

        out = alternate({"numpy copy": lambda: timed(lambda: _copy(a, c)),
                         "numamap copy": lambda: on_pool(_copy, x, z),
                         "numpy triad": lambda: timed(lambda: _triad(a, b, c)),
                         "numamap triad": lambda: on_pool(_triad, x, y, z)},
                        [("numpy copy", "numamap copy"), ("numpy triad", "numamap triad")], plan)
        return out, len(pieces), len(pool.threads()), pool.fallbacks


def stream_rows(n: int, plan: Plan) -> list[Row]:
    """Rows 'copy' and 'triad'. The limit is measured just before the rounds, and the row
    reports the best of it and of both sides' best runs."""
    nbytes = n * 8
    notes: list[str] = []
    cpus = backend.allowed_cpus()
    passes = _limit(nbytes, 2 * MIN_REPEAT, notes)
    out, pieces, threads, fallbacks = _rounds(n, plan)
    limit = Measure.of(passes) if passes else None
    llc = last_level_cache()
    small = f"; arrays < 4x the LLC ({format_bytes(llc)})" if llc and nbytes < 4 * llc else ""
    limit_note = (f"limit: best of C memcpy ({len(cpus)} pinned threads, {format_bytes(nbytes // len(cpus))} "
                  f"each, best of {len(passes)} passes by wall time), numpy and numamap" if passes else "")
    does = (f"numamap.partitioned arrays, NodePool: {pieces} pieces on {threads} pinned "
            "threads, each on its node's block")
    note = "; ".join(part for part in (
        f"3 arrays of {format_bytes(nbytes)}, bytes read + written{small}",
        f"{threads} pool threads against numpy's one", limit_note, *notes, *fallbacks) if part)
    return [
        Row("copy", "GB/s", out.measure("numpy copy", 2 * nbytes), out.measure("numamap copy", 2 * nbytes),
            limit, name="copy: NodePool vs 1 thread", numpy_does="np.copyto, one thread",
            numamap_does=does, rounds=out.describe(),
            note=note),
        Row("triad", "GB/s", out.measure("numpy triad", 3 * nbytes),
            out.measure("numamap triad", 3 * nbytes), limit, name="triad: NodePool vs 1 thread",
            numpy_does="a = b + 3*c (np.multiply, np.add), one thread", numamap_does=does,
            note="STREAM bytes (3 arrays); numpy takes two passes; limit: as for copy"),
    ]
