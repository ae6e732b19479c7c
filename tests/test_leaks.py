"""100,000 create/drop cycles, and what they leave behind (CI's leak step, not the default run).

Run it with ``NUMAMAP_LEAK_TEST=1 python -m pytest -rP tests/test_leaks.py`` (or
``--run-leak``). Each cycle makes and drops one of: an array carved from a node arena (small or
large block), an array with a mapping of its own, a section closed after use, a section dropped
unclosed with a view that outlives it, a named section, a ring buffer, a partitioned array, and
a ``policy()`` block with numpy arrays allocated in it (about 60 s of CPU on a small machine).
Every 10,000 cycles it samples the process's RSS, its mappings (lines of /proc/self/maps), its
open file descriptors (/proc/self/fd), its /dev/shm entries and the bytes the arenas have handed
out and not got back (``arena_stats()``), and it reports each one's growth per 10,000 cycles
(the slope of a least-squares line after a warm-up sample). A leak of one descriptor, mapping,
file or block per cycle shows as 10,000; the bounds allow none of those and a little RSS noise
from Python's allocator. The arenas keep freed memory for their decay time (1 s) and reuse it:
that cache is bounded, so it levels off and shows no slope; ``trim()`` at the end must give it
back.
"""
from __future__ import annotations

import gc
import os
import time

import numpy as np
import pytest

import numamap

pytestmark = [pytest.mark.leak, pytest.mark.linux]

CYCLES = int(os.environ.get("NUMAMAP_LEAK_CYCLES", "100000"))
SAMPLE_EVERY = 10_000
PREFIX = f"leak{os.getpid()}x"
# Growth allowed per 10,000 cycles (after the warm-up sample).
BOUNDS = {"rss_kib": 1024, "mappings": 2, "fds": 0.5, "shm": 0.5, "arena_in_use_kib": 1}


def sample() -> dict[str, int]:
    gc.collect()
    with open("/proc/self/statm") as handle:
        rss_pages = int(handle.read().split()[1])
    with open("/proc/self/maps") as handle:
        mappings = sum(1 for _ in handle)
    return {"rss_kib": rss_pages * os.sysconf("SC_PAGE_SIZE") // 1024, "mappings": mappings,
            "fds": len(os.listdir("/proc/self/fd")),
            # this test's named sections only: other processes' come and go on a shared machine
            "shm": sum(1 for entry in os.listdir("/dev/shm") if entry.startswith(f"numamap.{PREFIX}")),
            "arena_in_use_kib": numamap.arena_stats().totals()["in_use"] // 1024}


def slope(points: list[tuple[int, int]]) -> float:
    """Least-squares growth per :data:`SAMPLE_EVERY` cycles."""
    xs = np.array([x for x, _ in points], dtype=float) / SAMPLE_EVERY
    ys = np.array([y for _, y in points], dtype=float)
    if len(xs) < 2:
        return 0.0
    return float(np.polyfit(xs, ys, 1)[0])


def cycle(i: int) -> None:
    """One create/drop cycle; the kind rotates with ``i`` (partitioned arrays read the topology
    from sysfs each time, ten times the cost of the others: one cycle in ten)."""
    kind = i % 10
    if kind == 0:  # from an arena: a small block, then a large one (a mapping it caches whole)
        arr = numamap.zeros(3000 if i % 20 else 300_000, dtype="u1")
        arr[::512] = 1
    elif kind == 6:  # a mapping of its own
        arr = numamap.zeros(3000, dtype="u1", populate=True)
        arr[::512] = 1
    elif kind in (1, 7):
        with numamap.Section(1 << 14) as section:
            view = section.map()
            np.asarray(view)[:4] = 7
            view.close()
    elif kind in (2, 8):  # dropped unclosed; its array outlives the Section object
        arr = numamap.Section(1 << 14).map().ndarray(4096, "u1")
        arr[0] = 1
        del arr
    elif kind == 3:
        section = numamap.Section(1 << 12, name=f"{PREFIX}{i}")
        np.asarray(section.map())[0] = 1
        section.close()
    elif kind == 4:
        ring = numamap.ring_buffer(4096)
        ring[4096 + 5] = 9
    elif kind == 5:
        with numamap.policy(0, min_size=0):
            a, b = np.ones(4000), np.zeros(100)
        del a, b
    else:
        arr = numamap.partitioned((64, 64), dtype="u1", nodes=[0, 0], page_size="4K", fill=1)
        numamap.blocks(arr)


def test_create_drop_cycles_leak_nothing(capsys):
    for i in range(20):  # first use: imports, caches, the handler capsule
        cycle(i)
    points: dict[str, list[tuple[int, int]]] = {key: [] for key in BOUNDS}
    started = time.monotonic()
    try:
        for i in range(CYCLES + 1):
            if i % SAMPLE_EVERY == 0:
                for key, value in sample().items():
                    points[key].append((i, value))
            if i < CYCLES:
                cycle(i)
    finally:
        for entry in os.listdir("/dev/shm"):
            if entry.startswith(f"numamap.{PREFIX}"):
                os.unlink(os.path.join("/dev/shm", entry))
    elapsed = time.monotonic() - started
    # the first sample is before the allocator and the caches settle: fit from the second one
    slopes = {key: slope(values[1:]) for key, values in points.items()}
    lines = [f"{CYCLES} cycles in {elapsed:.0f} s; growth per {SAMPLE_EVERY} cycles:"]
    for key, values in points.items():
        lines.append(f"  {key:9} slope {slopes[key]:+9.2f} (bound {BOUNDS[key]}); "
                     f"samples {[v for _, v in values]}")
    report = "\n".join(lines)
    with capsys.disabled():
        print("\n" + report)
    assert all(slopes[key] <= BOUNDS[key] for key in BOUNDS), report
    first, last = points["shm"][0][1], points["shm"][-1][1]
    assert last <= first, f"/dev/shm gained {last - first} numamap entries\n{report}"
    # what the arenas cache goes back at trim(): RSS ends near where the cycles started
    numamap.trim()
    after = sample()["rss_kib"]
    with capsys.disabled():
        print(f"  after trim(): RSS {after} KiB (first sample {points['rss_kib'][0][1]} KiB)")
    assert after <= points["rss_kib"][1][1] + 4096, (after, report)
