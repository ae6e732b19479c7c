"""Facts about the machine the benchmark ran on, and its copy limit, measured now."""
from __future__ import annotations

import os
import platform
import sys

import numpy as np

from .._backend import backend
from .._units import KiB, MiB, parse_size, round_up
from .stats import Measure


def last_level_cache() -> int | None:
    """Bytes of the last-level cache CPU 0 sees (Linux sysfs); None when unknown."""
    root = "/sys/devices/system/cpu/cpu0/cache"
    best = (0, None)
    try:
        entries = os.listdir(root)
    except OSError:
        return None
    for entry in entries:
        if not entry.startswith("index"):
            continue
        try:
            with open(f"{root}/{entry}/level") as f:
                level = int(f.read())
            with open(f"{root}/{entry}/size") as f:
                size = parse_size(f.read().strip().replace("K", "KiB").replace("M", "MiB"))
        except (OSError, ValueError):
            continue
        if level > best[0] or (level == best[0] and best[1] is not None and size > best[1]):
            best = (level, size)
    return best[1]


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("model name", "Model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_facts() -> dict:
    """What the results' ``machine`` entry records."""
    import psutil

    from .. import __version__

    return {"cpu": cpu_model(), "cpus": len(backend.allowed_cpus()),
            "memory": psutil.virtual_memory().total, "llc": last_level_cache(),
            "kernel": platform.release(), "platform": sys.platform,
            "python": platform.python_version(), "numpy": np.__version__, "numamap": __version__,
            "thp": backend.thp_mode()}


def machine_limit(nbytes: int = 1 << 30, repeat: int = 5, cpus=None) -> Measure:
    """The machine's copy bandwidth in GB/s (bytes read + bytes written), measured now.

    One thread per CPU in ``cpus`` (every allowed CPU by default), each pinned and copying its
    own ``nbytes / len(cpus)`` bytes with memcpy, all starting together; one warm-up pass, then
    ``repeat`` timed passes. The limit is ``.best``; nothing is cached. ``numamap bench``
    reports the best of this and of numpy's own copy in the same run.

    Raises
    ------
    NotImplementedError
        Where the backend cannot run pinned memcpy threads.
    """
    if isinstance(repeat, bool) or int(repeat) != repeat or repeat < 1:
        raise ValueError(f"repeat={repeat!r} must be an int >= 1")
    cpus = list(backend.allowed_cpus()) if cpus is None else [int(c) for c in cpus]
    if not cpus:
        raise ValueError("cpus must not be empty")
    per_thread = max(round_up(int(nbytes) // len(cpus), 4 * KiB), 1 * MiB)
    return Measure.of(backend.copy_bandwidth(cpus, per_thread, int(repeat)))
