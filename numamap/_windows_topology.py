"""NUMA topology on Windows: nodes, their CPUs across processor groups, and their free memory.

Windows numbers a logical processor by (processor group, number in the group); a group holds
at most 64. numamap numbers CPUs globally, as Linux does: the group's base (the sum of the
``MaximumProcessorCount`` of the groups before it, from GetLogicalProcessorInformationEx's
RelationGroup) plus the processor's number in its group. :func:`cpu_number` and
:func:`group_of` convert.

Where each fact comes from, best first:

* node -> CPUs: GetLogicalProcessorInformationEx(RelationNumaNodeEx), which lists every group
  of a node (Windows Server 2022); RelationNumaNode (one group per node before that); per node
  GetNumaNodeProcessorMask2 (every group) or GetNumaNodeProcessorMaskEx (one group, with its
  ``Group``); per processor GetNumaProcessorNodeEx; last, one node 0 holding every CPU.
* nodes without processors (memory-only): listed with an empty mask, or found between 0 and
  GetNumaHighestNodeNumber where GetNumaAvailableMemoryNodeEx answers for them.
* free memory: GetNumaAvailableMemoryNodeEx (Wine fails it with error 120); Windows publishes
  neither a node's total memory nor node distances.
"""
from __future__ import annotations

import functools
import os
from typing import NamedTuple

from . import _windows_exports as _exports
from ._windows_errors import check, fail
from ._windows_exports import RELATION_GROUP, RELATION_NUMA_NODE, RELATION_NUMA_NODE_EX, api, available, ffi


class NodeRecord(NamedTuple):
    """One RelationNumaNode record: the node and its (group, mask) pairs."""

    node: int
    masks: tuple[tuple[int, int], ...]


class GroupRecord(NamedTuple):
    """One processor group of a RelationGroup record."""

    maximum: int
    active: int
    mask: int


class Layout(NamedTuple):
    """Node id -> global CPU ids, where that came from, and what could not be read."""

    cpus: dict
    source: str
    notes: tuple[str, ...]


@functools.lru_cache(maxsize=None)
def system_info() -> tuple[int, int, int]:
    """(page size, allocation granularity, processors in the caller's group): GetSystemInfo."""
    info = ffi.new("SYSTEM_INFO *")
    api["GetSystemInfo"](info)
    return int(info.dwPageSize), int(info.dwAllocationGranularity), int(info.dwNumberOfProcessors)


@functools.lru_cache(maxsize=None)
def address_space() -> int:
    """Bytes of address space a process may use (GetSystemInfo: lowest to highest address)."""
    info = ffi.new("SYSTEM_INFO *")
    api["GetSystemInfo"](info)
    low, high = (int(ffi.cast("uintptr_t", p)) for p in (info.lpMinimumApplicationAddress,
                                                         info.lpMaximumApplicationAddress))
    return max(high - low + 1, 0)


def memory_status() -> tuple[int, int] | None:
    """(total, available) physical bytes of the machine: GlobalMemoryStatusEx."""
    status = ffi.new("MEMORYSTATUSEX *")
    status.dwLength = ffi.sizeof("MEMORYSTATUSEX")
    if not api["GlobalMemoryStatusEx"](status):
        return None
    return int(status.ullTotalPhys), int(status.ullAvailPhys)


def node_available(node: int) -> int | None:
    """Free bytes on ``node``: GetNumaAvailableMemoryNodeEx, or None where it fails."""
    if not available("GetNumaAvailableMemoryNodeEx") or not 0 <= node < 0xFFFF:
        return None
    out = ffi.new("ULONGLONG *")
    if not api["GetNumaAvailableMemoryNodeEx"](node, out):
        return None
    return int(out[0])


def bits(mask: int) -> list[int]:
    """Positions of the set bits of ``mask``."""
    return [bit for bit in range(mask.bit_length()) if mask >> bit & 1]


def processor_records(relation: int) -> list:
    """GetLogicalProcessorInformationEx(``relation``), parsed into NodeRecord/GroupRecord lists."""
    query = api["GetLogicalProcessorInformationEx"]
    length = ffi.new("DWORD *", 0)
    api["SetLastError"](0)
    query(relation, ffi.NULL, length)  # fails with ERROR_INSUFFICIENT_BUFFER and sets the length
    if not length[0]:
        fail("GetLogicalProcessorInformationEx", f"relation {relation}")
    buffer = ffi.new("char[]", length[0])
    check(query(relation, ffi.cast("SYSTEM_LOGICAL_PROCESSOR_INFORMATION_EX *", buffer), length),
          "GetLogicalProcessorInformationEx", f"relation {relation}")
    records, offset = [], 0
    while offset < length[0]:
        record = ffi.cast("SYSTEM_LOGICAL_PROCESSOR_INFORMATION_EX *", buffer + offset)
        if record.Size == 0:
            break
        if record.Relationship == RELATION_NUMA_NODE and relation != RELATION_GROUP:
            numa = record.NumaNode
            masks = ffi.cast("GROUP_AFFINITY *", numa.GroupMasks)
            count = numa.GroupCount or 1  # GroupCount is 0 before Windows 10 20H2: one mask
            records.append(NodeRecord(int(numa.NodeNumber),
                                      tuple((int(masks[i].Group), int(masks[i].Mask)) for i in range(count))))
        elif record.Relationship == RELATION_GROUP == relation:
            infos = ffi.cast("PROCESSOR_GROUP_INFO *", record.Group.GroupInfo)
            records.extend(GroupRecord(int(infos[i].MaximumProcessorCount), int(infos[i].ActiveProcessorCount),
                                       int(infos[i].ActiveProcessorMask))
                           for i in range(record.Group.ActiveGroupCount))
        offset += record.Size
    return records


@functools.lru_cache(maxsize=None)
def groups() -> tuple[GroupRecord, ...]:
    """The active processor groups: RelationGroup, else the GetActiveProcessor* counts, else
    one group of every CPU."""
    try:
        found = tuple(processor_records(RELATION_GROUP))
    except (OSError, ValueError, NotImplementedError):
        found = ()
    if not found and available("GetActiveProcessorGroupCount"):  # no active masks: the first bits
        counts = [(int(api["GetMaximumProcessorCount"](g)), int(api["GetActiveProcessorCount"](g)))
                  for g in range(int(api["GetActiveProcessorGroupCount"]()))]
        found = tuple(GroupRecord(mx, act, (1 << act) - 1) for mx, act in counts if mx)
    if not found:
        count = max(1, min(64, os.cpu_count() or system_info()[2] or 1))
        found = (GroupRecord(count, count, (1 << count) - 1),)
    return found


def group_bases() -> tuple[int, ...]:
    """First global CPU number of each processor group."""
    bases, total = [], 0
    for group in groups():
        bases.append(total)
        total += group.maximum
    return tuple(bases)


def cpu_number(group: int, number: int) -> int:
    """The global CPU id of processor ``number`` of ``group``."""
    bases = group_bases()
    if not 0 <= group < len(bases):
        raise ValueError(f"processor group {group} does not exist: this machine has {len(bases)}")
    return bases[group] + number


def group_of(cpu: int) -> tuple[int, int]:
    """(group, number in the group) of global CPU id ``cpu``."""
    for group, (base, record) in enumerate(zip(group_bases(), groups())):
        if base <= cpu < base + record.maximum:
            return group, cpu - base
    raise ValueError(f"CPU {cpu} does not exist: this machine numbers its CPUs 0-{all_cpus()[-1]}")


def all_cpus() -> tuple[int, ...]:
    """Every active CPU, numbered globally."""
    return tuple(base + bit for base, group in zip(group_bases(), groups()) for bit in bits(group.mask))


def _from_masks(pairs) -> tuple[int, ...]:
    bases = group_bases()
    return tuple(sorted({bases[g] + b for g, mask in pairs if g < len(bases) for b in bits(mask)}))


def _highest_node() -> int:
    highest = ffi.new("ULONG *")
    if available("GetNumaHighestNodeNumber") and api["GetNumaHighestNodeNumber"](highest):
        return int(highest[0])
    return 0


def _layout_from_records() -> dict:
    try:  # RelationNumaNodeEx lists every group of a node; Windows before Server 2022 refuses it
        records = processor_records(RELATION_NUMA_NODE_EX)
    except (OSError, ValueError):
        records = []
    records = records or processor_records(RELATION_NUMA_NODE)
    layout: dict = {}
    for record in records:
        layout[record.node] = tuple(sorted(set(layout.get(record.node, ())) | set(_from_masks(record.masks))))
    return layout


def _node_masks(node: int) -> tuple[tuple[int, int], ...] | None:
    """(group, mask) pairs of ``node``: GetNumaNodeProcessorMask2, else ...MaskEx (one group)."""
    if available("GetNumaNodeProcessorMask2"):
        count = max(len(groups()), 1)
        masks, needed = ffi.new("GROUP_AFFINITY[]", count), ffi.new("USHORT *")
        if api["GetNumaNodeProcessorMask2"](node, masks, count, needed):
            return tuple((int(masks[i].Group), int(masks[i].Mask)) for i in range(min(needed[0], count)))
    mask = ffi.new("GROUP_AFFINITY *")
    if available("GetNumaNodeProcessorMaskEx") and api["GetNumaNodeProcessorMaskEx"](node, mask):
        return ((int(mask.Group), int(mask.Mask)),)
    return None


def _layout_from_node_calls(highest: int) -> dict:
    layout = {}
    for node in range(highest + 1):
        masks = _node_masks(node)
        if masks is not None:
            layout[node] = _from_masks(masks)
    return layout


def _layout_from_processors() -> dict:
    """GetNumaProcessorNodeEx for every active processor of every group."""
    if not available("GetNumaProcessorNodeEx"):
        return {}
    layout: dict = {}
    number, node = ffi.new("PROCESSOR_NUMBER *"), ffi.new("USHORT *")
    for group, record in enumerate(groups()):
        for bit in bits(record.mask):
            number.Group, number.Number = group, bit
            if not api["GetNumaProcessorNodeEx"](number, node):
                return {}
            layout.setdefault(int(node[0]), []).append(cpu_number(group, bit))
    return {n: tuple(sorted(c)) for n, c in layout.items()}


def numa_layout() -> Layout:
    """Node id -> CPUs (globally numbered), from the best source that answers."""
    notes: list[str] = []
    layout, source = {}, ""
    try:
        layout, source = _layout_from_records(), "GetLogicalProcessorInformationEx"
    except (OSError, ValueError, NotImplementedError) as exc:
        notes.append(f"GetLogicalProcessorInformationEx(RelationNumaNode) failed ({exc})")
    highest = _highest_node()
    if not layout and highest > 0:
        layout, source = _layout_from_node_calls(highest), "GetNumaNodeProcessorMask2/Ex"
        if not layout:
            notes.append("GetNumaNodeProcessorMask2/Ex failed for every node")
            layout, source = _layout_from_processors(), "GetNumaProcessorNodeEx"
    if not layout:
        notes.append("no NUMA information from Windows: falling back to one node 0 holding every CPU")
        return Layout({0: all_cpus()}, "fallback", tuple(notes))
    for node in range(highest + 1):  # memory-only nodes that no processor record names
        if node not in layout and node_available(node) is not None:
            layout[node] = ()
    return Layout(dict(sorted(layout.items())), source, tuple(notes))


@functools.lru_cache(maxsize=None)
def cached_layout() -> Layout:
    """:func:`numa_layout`, read once (the fake kernel32 of the tests clears it)."""
    return numa_layout()


def memory_nodes() -> frozenset[int]:
    """Nodes GetNumaAvailableMemoryNodeEx reports memory on (every node where it fails)."""
    layout = cached_layout().cpus
    with_memory = set()
    for node in layout:
        free = node_available(node)
        if free is None or free > 0:
            with_memory.add(node)
    return frozenset(with_memory or {min(layout)})


def node_memory_free(node: int) -> int | None:
    """GetNumaAvailableMemoryNodeEx; GlobalMemoryStatusEx where that fails on a one-node
    machine; else None."""
    free = node_available(node)
    if free is None and set(cached_layout().cpus) == {node}:
        status = memory_status()
        free = status[1] if status else None
    return free


def reset_caches() -> None:
    """Forget what was read (the fake kernel32 of the tests swaps the machine underneath)."""
    for cached in (system_info, address_space, groups, cached_layout):
        cached.cache_clear()
    _exports.process.cache_clear()
