"""Linux backend: memory-tier facts, the firmware's HMAT as sysfs publishes it, and tiers.

The kernel writes the ACPI HMAT's figures under each memory node:
``node<N>/access0/initiators/{read,write}_{bandwidth,latency}`` (MB/s and ns) for the node's best
initiators, each listed there as a ``node<M>`` link, and ``access1`` for its best CPU
initiators. ``/sys/devices/virtual/memory_tiering/memory_tier<K>/nodelist`` groups nodes into
tiers (a higher K is a slower tier). Any of it may be absent: firmware without an HMAT, kernels
before 5.2 (access classes) or 6.1 (tiers). Absent figures read as None, never as 0.

Also here: :func:`current_cpu`, the calling thread's CPU, which the node selectors resolve from.
"""
from __future__ import annotations

import ctypes
import functools
import os
import re
import threading
from typing import NamedTuple

NODE_DIR = "sys/devices/system/node"
TIERS_DIR = "sys/devices/virtual/memory_tiering"
#: The kernel publishes MB/s (10**6 bytes per second, as the HMAT's own unit); we report bytes/s.
_MB = 10**6


class Access(NamedTuple):
    """One access class of one node: who the figures are for, and the figures."""

    initiators: tuple[int, ...]
    read_bandwidth: int | None  # bytes per second
    write_bandwidth: int | None
    read_latency: int | None  # ns
    write_latency: int | None


NO_ACCESS = Access((), None, None, None, None)


def _number(path: str) -> int | None:
    try:
        with open(path, encoding="ascii") as handle:
            text = handle.read().strip()
    except OSError:
        return None
    # 0 means "not given" in the kernel's HMAT parser as well
    return int(text) if text.isdigit() and int(text) > 0 else None


def read_access(root: str, node: int, access: int = 0) -> Access:
    """``node``'s ``access<access>`` figures under ``root``; :data:`NO_ACCESS` where there are none."""
    base = os.path.join(root, NODE_DIR, f"node{node}", f"access{access}", "initiators")
    if not os.path.isdir(base):
        return NO_ACCESS
    names = os.listdir(base)
    initiators = tuple(sorted(int(n[4:]) for n in names if re.fullmatch(r"node\d+", n)))
    bandwidth = [_number(os.path.join(base, f"{kind}_bandwidth")) for kind in ("read", "write")]
    latency = [_number(os.path.join(base, f"{kind}_latency")) for kind in ("read", "write")]
    return Access(initiators, *(None if b is None else b * _MB for b in bandwidth), *latency)


def read_tiers(root: str) -> dict[int, int]:
    """Node id -> memory tier id, from ``memory_tier<K>/nodelist``; empty where there are no tiers."""
    base = os.path.join(root, TIERS_DIR)
    try:
        names = os.listdir(base)
    except OSError:
        return {}
    tiers: dict[int, int] = {}
    for name in names:
        match = re.fullmatch(r"memory_tier(\d+)", name)
        if not match:
            continue
        try:
            with open(os.path.join(base, name, "nodelist"), encoding="ascii") as handle:
                text = handle.read()
        except OSError:
            continue
        for node in _nodelist(text):
            tiers[node] = int(match.group(1))
    return tiers


def _nodelist(text: str) -> list[int]:
    out: list[int] = []
    for part in text.strip().split(","):
        part = part.strip()
        if "-" in part:
            low, high = part.split("-", 1)
            out.extend(range(int(low), int(high) + 1))
        elif part.isdigit():
            out.append(int(part))
    return out


def tier_fields(root: str, node: int, tiers: dict[int, int]) -> dict:
    """The NodeFacts keyword arguments of ``node``'s memory-tier facts."""
    best = read_access(root, node, 0)
    cpu = read_access(root, node, 1)
    return dict(read_bandwidth=best.read_bandwidth, write_bandwidth=best.write_bandwidth,
                read_latency=best.read_latency, write_latency=best.write_latency,
                initiators=best.initiators, cpu_read_bandwidth=cpu.read_bandwidth,
                cpu_read_latency=cpu.read_latency, tier=tiers.get(node))


@functools.lru_cache(maxsize=None)
def _sched_getcpu():
    """libc's sched_getcpu (a vDSO call, well under a microsecond), or None where libc lacks it."""
    try:
        function = ctypes.CDLL(None, use_errno=True).sched_getcpu
    except (AttributeError, OSError):
        return None
    function.restype, function.argtypes = ctypes.c_int, []
    return function


def current_cpu() -> int:
    """The CPU the calling thread runs on now: libc's sched_getcpu, else field 39 of
    ``/proc/thread-self/stat``."""
    getcpu = _sched_getcpu()
    if getcpu is not None:
        cpu = getcpu()
        if cpu >= 0:
            return cpu
    for path in ("/proc/thread-self/stat", f"/proc/self/task/{threading.get_native_id()}/stat"):
        try:
            with open(path, encoding="ascii", errors="replace") as handle:
                text = handle.read()
        except OSError:
            continue
        # the command name (field 2) may hold spaces and parentheses: count after the last ')'
        return int(text.rsplit(")", 1)[1].split()[36])
    raise OSError("neither /proc/thread-self/stat nor /proc/self/task/<tid>/stat can be read: "
                  "is /proc mounted?")
