"""Which CPUs threads run on, across processor groups (CPUs numbered globally, see topology).

A Windows thread runs in one processor group at a time (SetThreadGroupAffinity takes one
GROUP_AFFINITY). So pinning to CPUs that span groups pins to the group holding most of them,
and the CPUs returned are the ones the thread got: a subset of those asked for. A process
whose threads are all in one group takes SetProcessAffinityMask for that group; otherwise each
of its threads is moved on its own (a Toolhelp snapshot of the process's threads).
"""
from __future__ import annotations

from typing import Sequence

from . import _windows_exports as _exports
from ._windows_errors import check, fail
from ._windows_exports import (INVALID_HANDLE_VALUE, TH32CS_SNAPTHREAD, THREAD_QUERY_INFORMATION,
                               THREAD_SET_INFORMATION, api, available, ffi)
from ._windows_topology import all_cpus, bits, cpu_number, group_bases, group_of, groups


def _cpus_of(group: int, mask: int) -> tuple[int, ...]:
    return tuple(cpu_number(group, bit) for bit in bits(mask))


def _thread_affinity(thread) -> tuple[int, int]:
    got = ffi.new("GROUP_AFFINITY *")
    check(api["GetThreadGroupAffinity"](thread, got), "GetThreadGroupAffinity")
    return int(got.Group), int(got.Mask)


def allowed_cpus() -> tuple[int, ...]:
    """CPUs the calling thread may run on: its group's base plus each bit of its group affinity."""
    if not available("GetThreadGroupAffinity"):
        return process_cpus()
    return _cpus_of(*_thread_affinity(api["GetCurrentThread"]()))


def current_cpu() -> int:
    """The CPU the calling thread runs on now (GetCurrentProcessorNumberEx), numbered globally."""
    number = ffi.new("PROCESSOR_NUMBER *")
    api["GetCurrentProcessorNumberEx"](number)
    return cpu_number(int(number.Group), int(number.Number))


def _process_groups() -> tuple[int, ...]:
    if not available("GetProcessGroupAffinity"):
        return (0,)
    count = ffi.new("USHORT *", len(groups()))
    array = ffi.new("USHORT[]", max(len(groups()), 1))
    if not api["GetProcessGroupAffinity"](_exports.process(), count, array):
        if len(groups()) == 1:  # Wine fails the call (120); with one group the answer is known
            return (0,)
        fail("GetProcessGroupAffinity")
    return tuple(int(array[i]) for i in range(count[0])) or (0,)


def process_cpus() -> tuple[int, ...]:
    """CPUs the process may use: its affinity mask in its one group, or every CPU of the groups
    its threads run in (Windows reports no mask for a process spread over several groups)."""
    in_groups = _process_groups()
    process_mask, system_mask = ffi.new("DWORD_PTR *"), ffi.new("DWORD_PTR *")
    if len(in_groups) == 1 and available("GetProcessAffinityMask") and \
            api["GetProcessAffinityMask"](_exports.process(), process_mask, system_mask) and process_mask[0]:
        return _cpus_of(in_groups[0], int(process_mask[0]))
    records, bases = groups(), group_bases()
    cpus = tuple(bases[g] + bit for g in in_groups if g < len(records) for bit in bits(records[g].mask))
    return cpus or all_cpus()


def _target(cpus: Sequence[int]) -> tuple[int, int]:
    """(group, mask) for pinning to ``cpus``: the group holding most of them."""
    try:
        wanted = sorted({int(c) for c in cpus})
    except (TypeError, ValueError):
        raise TypeError(f"cpus must be a sequence of CPU ids (ints), not {cpus!r}") from None
    if not wanted:
        raise ValueError("cpus must not be empty: pass the CPU ids to pin to")
    masks: dict[int, int] = {}
    for cpu in wanted:
        group, number = group_of(cpu)  # ValueError for a CPU that does not exist
        masks[group] = masks.get(group, 0) | 1 << number
    group = max(masks, key=lambda g: (bin(masks[g]).count("1"), -g))
    return group, masks[group]


def _set_thread(thread, group: int, mask: int) -> None:
    wanted = ffi.new("GROUP_AFFINITY *")
    wanted.Group, wanted.Mask = group, mask
    check(api["SetThreadGroupAffinity"](thread, wanted, ffi.NULL), "SetThreadGroupAffinity",
          f"group {group}, mask {mask:#x}")


def pin_thread(cpus: Sequence[int]) -> tuple[int, ...]:
    """Pin the calling thread to ``cpus`` (SetThreadGroupAffinity); return the CPUs it got.

    CPUs in several processor groups: the thread goes to the group holding most of them.
    """
    group, mask = _target(cpus)
    _set_thread(api["GetCurrentThread"](), group, mask)
    return allowed_cpus()


def _thread_ids() -> list[int]:
    """Ids of this process's threads, from a Toolhelp snapshot."""
    snapshot = api["CreateToolhelp32Snapshot"](TH32CS_SNAPTHREAD, 0)
    if not snapshot or snapshot == INVALID_HANDLE_VALUE:
        fail("CreateToolhelp32Snapshot", "threads")
    try:
        me, ids = int(api["GetCurrentProcessId"]()), []
        entry = ffi.new("THREADENTRY32 *")
        entry.dwSize = ffi.sizeof("THREADENTRY32")
        more = api["Thread32First"](snapshot, entry)
        while more:
            if entry.th32OwnerProcessID == me:
                ids.append(int(entry.th32ThreadID))
            more = api["Thread32Next"](snapshot, entry)
        return ids
    finally:
        api["CloseHandle"](snapshot)


def pin_process(cpus: Sequence[int]) -> tuple[int, ...]:
    """Pin every thread of this process to ``cpus``; return the CPUs the calling thread got.

    SetProcessAffinityMask where the process runs in one group and ``cpus`` are in it (Windows
    applies it to every thread, and to threads started later). Otherwise each thread is moved
    with SetThreadGroupAffinity (threads started later begin in the process's default group:
    Windows offers no process-wide affinity across groups before Windows 11's CPU sets).
    """
    group, mask = _target(cpus)
    if _process_groups() == (group,):  # sets every thread's mask too (widening them as well)
        check(api["SetProcessAffinityMask"](_exports.process(), mask), "SetProcessAffinityMask",
              f"mask {mask:#x}")
        return allowed_cpus()
    _set_thread(api["GetCurrentThread"](), group, mask)
    for thread_id in _thread_ids():
        thread = api["OpenThread"](THREAD_SET_INFORMATION | THREAD_QUERY_INFORMATION, 0, thread_id)
        if not thread:
            continue  # the thread ended meanwhile
        try:
            _set_thread(thread, group, mask)
        finally:
            api["CloseHandle"](thread)
    return allowed_cpus()
