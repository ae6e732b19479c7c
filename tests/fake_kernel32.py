"""A fake kernel32 for the Windows backend: stubs that enforce the documented rules.

The backend calls every Windows export through ``numamap._windows_exports.api``; installing a
:class:`FakeKernel32` replaces those entries (and ``last_error``) with the methods below, so the
real backend code runs, with its real cffi structures, against a machine Wine cannot be: several
processor groups and nodes, working placeholders, large pages with the privilege granted,
QueryWorkingSetEx answers on nodes other than 0 and trimmed pages. It runs on any host (no DLL
is loaded) and under Wine.

The address space is a real buffer (``arena``), so the code may touch what it maps; but every
view has memory of its own: two views of one section do not share data here (Wine shows that).

Each stub checks the rules of its Microsoft page that the backend relies on and fails, setting
the error the page gives (or, where the page gives none, ERROR_INVALID_PARAMETER), when a call
breaks one. ``calls`` records every call for the tests to read.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

from numamap import _windows_exports as exports
from numamap import _windows_large_pages as large_pages
from numamap import _windows_topology as topology
from numamap._windows import capabilities

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
PAGE, GRAN, LARGE = 4 * KiB, 64 * KiB, 2 * MiB
ERROR_ACCESS_DENIED, ERROR_INVALID_PARAMETER, ERROR_INSUFFICIENT_BUFFER = 5, 87, 122
ERROR_CALL_NOT_IMPLEMENTED, ERROR_INVALID_ADDRESS, ERROR_MAPPED_ALIGNMENT = 120, 487, 1132
ERROR_NOT_ALL_ASSIGNED, ERROR_PRIVILEGE_NOT_HELD, ERROR_FILE_NOT_FOUND = 1300, 1314, 2
MEM_PRIVATE = 0x20000

# ---------------------------------------------------------------------------------------------
# GetLogicalProcessorInformationEx buffers, byte for byte.
#
# WINE_8_NUMA and WINE_8_GROUPS were recorded from Wine 8.0 on a 2-CPU machine (relations 1 and
# 4). The others are written in the same layout for a machine we have no access to:
#   record header: DWORD Relationship, DWORD Size (step to the next record by Size)
#   RelationNumaNode (1): DWORD NodeNumber, BYTE Reserved[18], WORD GroupCount, then GroupCount
#     GROUP_AFFINITY { KAFFINITY Mask; WORD Group; WORD Reserved[3]; } (GroupCount 0: read one)
#   RelationGroup (4): WORD MaximumGroupCount, WORD ActiveGroupCount, BYTE Reserved[20], then
#     ActiveGroupCount PROCESSOR_GROUP_INFO { BYTE Maximum; BYTE Active; BYTE Reserved[38];
#     KAFFINITY ActiveProcessorMask; }

WINE_8_NUMA = bytes.fromhex(
    "0100000030000000" "00000000" + "00" * 18 + "0000" + "0300000000000000" "0000" "000000000000")
WINE_8_GROUPS = bytes.fromhex(
    "0400000050000000" "0100" "0100" + "00" * 20 + "02" "02" + "00" * 38 + "0300000000000000")


def numa_record(node: int, masks: list[tuple[int, int]], group_count: int | None = None) -> bytes:
    """One RelationNumaNode record: ``masks`` is [(group, mask)]."""
    count = len(masks) if group_count is None else group_count
    body = struct.pack("<I18xH", node, count) + b"".join(struct.pack("<QH6x", m, g) for g, m in masks)
    return struct.pack("<iI", 1, 8 + len(body)) + body


def group_record(groups: list[tuple[int, int, int]]) -> bytes:
    """One RelationGroup record: ``groups`` is [(maximum, active, mask)]."""
    body = struct.pack("<HH20x", len(groups), len(groups))
    body += b"".join(struct.pack("<BB38xQ", mx, act, mask) for mx, act, mask in groups)
    return struct.pack("<iI", 4, 8 + len(body)) + body


FULL = (1 << 64) - 1
LOW, HIGH = (1 << 32) - 1, FULL ^ ((1 << 32) - 1)


@dataclass
class Machine:
    """What the fake Windows reports about its processors and memory."""

    numa: bytes                     # RelationNumaNode records
    groups: bytes                   # RelationGroup records
    numa_ex: bytes | None = None    # RelationNumaNodeEx answer (None: refused with error 87)
    node_free: dict = field(default_factory=dict)   # node -> GetNumaAvailableMemoryNodeEx bytes
    highest_node: int = 0
    group_masks: list = field(default_factory=list)  # active mask of each group
    node_masks: dict = field(default_factory=dict)   # node -> [(group, mask)] for the GetNuma* calls


def two_groups_four_nodes(*, numa_ex: bool = False, memory_only_listed: bool = True) -> Machine:
    """128 CPUs in two groups of 64; nodes 0 and 1 share group 0, node 2 is group 1, node 3 has
    memory and no processors (listed with an empty mask, or absent from the records)."""
    nodes = {0: [(0, LOW)], 1: [(0, HIGH)], 2: [(1, FULL)], 3: []}
    numa = b"".join(numa_record(n, m or [(0, 0)], 1 if m else 0) for n, m in nodes.items()
                    if m or memory_only_listed)
    return Machine(numa=numa, groups=group_record([(64, 64, FULL), (64, 64, FULL)]),
                   numa_ex=numa if numa_ex else None,
                   node_free={0: 30 * GiB, 1: 31 * GiB, 2: 29 * GiB, 3: 64 * GiB}, highest_node=3,
                   group_masks=[FULL, FULL], node_masks=nodes)


def one_node_spanning_groups() -> Machine:
    """Windows 11 style: one node of 96 CPUs over two groups (64 + 32). RelationNumaNode gives
    its primary group only; RelationNumaNodeEx gives both."""
    return Machine(numa=numa_record(0, [(0, FULL)]), numa_ex=numa_record(0, [(0, FULL), (1, LOW)]),
                   groups=group_record([(64, 64, FULL), (64, 32, LOW)]), node_free={0: 100 * GiB},
                   group_masks=[FULL, LOW], node_masks={0: [(0, FULL), (1, LOW)]})


# ---------------------------------------------------------------------------------------------
# The address space

@dataclass
class Region:
    """One allocation: a plain reservation, a placeholder, or a view."""

    start: int
    size: int
    kind: str                 # 'reserve', 'placeholder', 'view'
    section: int | None = None
    node: int | None = None
    large: bool = False

    @property
    def end(self) -> int:
        return self.start + self.size


@dataclass
class Section:
    size: int
    attributes: int
    node: int | None
    name: str | None


class FakeKernel32:
    """The stubs, and the state they keep. ``install(monkeypatch)`` makes them the exports."""

    def __init__(self, machine: Machine, *, lock_memory: bool = False, placeholders: bool = True,
                 arena: int = 64 * MiB):
        self.machine = machine
        self.lock_memory = lock_memory          # the account holds SeLockMemoryPrivilege
        self.lock_memory_enabled = False
        self.placeholder_support = placeholders
        self._buffer = np.zeros(arena + LARGE, dtype=np.uint8)
        self.base = -(-self._buffer.ctypes.data // LARGE) * LARGE
        self.limit = self.base + arena
        self.regions: list[Region] = []
        self.sections: dict[int, Section] = {}
        self.calls: list[tuple] = []
        self.error = 0
        self.trimmed: set[int] = set()          # page addresses the working set dropped
        self.thread_affinity = (0, machine.group_masks[0] if machine.group_masks else 1)
        self.process_mask = self.thread_affinity[1]
        self.process_groups = [0]                # groups the process's threads are in
        self.other_threads = {11: self.thread_affinity, 12: self.thread_affinity}  # id -> affinity
        self._snapshot, self._cursor = [], 0
        self._next_handle = 0x100

    # -- installing ------------------------------------------------------------------------------

    def install(self, monkeypatch) -> "FakeKernel32":
        for name in exports.EXPORTS:
            monkeypatch.setitem(exports.api, name, getattr(self, name, exports.Missing(name)))
        monkeypatch.setattr(exports, "last_error", lambda: self.error)
        for key in list(large_pages.probe_results):  # probe again, against the fake
            monkeypatch.delitem(large_pages.probe_results, key)
        self.uninstall()
        return self

    @staticmethod
    def uninstall() -> None:
        """Forget what the backend read from the fake (call before monkeypatch undoes it)."""
        for key in ("large_pages", "placeholders"):
            large_pages.probe_results.pop(key, None)
        topology.reset_caches()
        capabilities.cache_clear()

    # -- helpers ---------------------------------------------------------------------------------

    def _fail(self, code: int, value=0):
        self.error = code
        return value

    def _ok(self, value=1):
        self.error = 0
        return value

    def _record(self, name: str, *args):
        self.calls.append((name, *args))

    def calls_to(self, name: str) -> list[tuple]:
        return [c[1:] for c in self.calls if c[0] == name]

    def _new_handle(self) -> int:
        self._next_handle += 4
        return self._next_handle

    def region_at(self, address: int) -> Region | None:
        return next((r for r in self.regions if r.start <= address < r.end), None)

    def _free_at(self, address: int, size: int) -> bool:
        return (self.base <= address and address + size <= self.limit and
                all(r.end <= address or r.start >= address + size for r in self.regions))

    def _find_free(self, size: int, alignment: int = GRAN) -> int | None:
        address = self.base
        while address + size <= self.limit:
            if self._free_at(address, size):
                return address
            address += alignment
        return None

    def _place(self, base, size: int, alignment: int) -> int | None:
        address = int(exports.ffi.cast("uintptr_t", base)) if base else None
        if address is None:
            return self._find_free(size, alignment)
        return address if self._free_at(address, size) else None

    @staticmethod
    def _pointer(address: int):
        return exports.ffi.cast("void *", address)

    @staticmethod
    def _int(pointer) -> int:
        return int(exports.ffi.cast("uintptr_t", pointer))

    # -- last error, handles, process ------------------------------------------------------------

    def SetLastError(self, code):  # noqa: N802 - the export's name
        self.error = int(code)

    def GetCurrentProcess(self):  # noqa: N802
        return exports.ffi.cast("HANDLE", -1)

    def GetCurrentThread(self):  # noqa: N802
        return exports.ffi.cast("HANDLE", -2)

    def GetCurrentProcessId(self):  # noqa: N802
        return 1234

    def CloseHandle(self, handle):  # noqa: N802
        return self._ok()

    # -- facts -----------------------------------------------------------------------------------

    def GetSystemInfo(self, info):  # noqa: N802
        info.dwPageSize, info.dwAllocationGranularity, info.dwNumberOfProcessors = PAGE, GRAN, 64
        info.lpMinimumApplicationAddress = exports.ffi.cast("void *", 0x10000)
        info.lpMaximumApplicationAddress = exports.ffi.cast("void *", (1 << 47) - 0x10001)

    def GetLargePageMinimum(self):  # noqa: N802
        return LARGE

    def GlobalMemoryStatusEx(self, status):  # noqa: N802
        status.ullTotalPhys, status.ullAvailPhys = 256 * GiB, sum(self.machine.node_free.values())
        return self._ok()

    def GetNumaHighestNodeNumber(self, out):  # noqa: N802
        out[0] = self.machine.highest_node
        return self._ok()

    def GetNumaAvailableMemoryNodeEx(self, node, out):  # noqa: N802
        if node not in self.machine.node_free:
            return self._fail(ERROR_INVALID_PARAMETER)
        out[0] = self.machine.node_free[node]
        return self._ok()

    def GetLogicalProcessorInformationEx(self, relation, buffer, length):  # noqa: N802
        self._record("GetLogicalProcessorInformationEx", relation)
        answer = {1: self.machine.numa, 4: self.machine.groups, 6: self.machine.numa_ex}.get(relation)
        if answer is None:
            return self._fail(ERROR_INVALID_PARAMETER)
        if buffer == exports.ffi.NULL or length[0] < len(answer):
            length[0] = len(answer)
            return self._fail(ERROR_INSUFFICIENT_BUFFER)
        exports.ffi.memmove(buffer, answer, len(answer))
        length[0] = len(answer)
        return self._ok()

    def GetNumaNodeProcessorMaskEx(self, node, mask):  # noqa: N802 - the node's first group only
        masks = self.machine.node_masks.get(node)
        if masks is None:
            return self._fail(ERROR_INVALID_PARAMETER)
        mask.Group, mask.Mask = masks[0] if masks else (0, 0)
        return self._ok()

    def GetNumaNodeProcessorMask2(self, node, masks, count, needed):  # noqa: N802 - every group
        found = self.machine.node_masks.get(node)
        if found is None:
            return self._fail(ERROR_INVALID_PARAMETER)
        needed[0] = len(found)
        if count < len(found):
            return self._fail(ERROR_INSUFFICIENT_BUFFER)
        for i, (group, mask) in enumerate(found):
            masks[i].Group, masks[i].Mask = group, mask
        return self._ok()

    def GetNumaProcessorNodeEx(self, number, node):  # noqa: N802
        for n, masks in self.machine.node_masks.items():
            if any(g == number.Group and m >> number.Number & 1 for g, m in masks):
                node[0] = n
                return self._ok()
        return self._fail(ERROR_INVALID_PARAMETER)

    def GetActiveProcessorGroupCount(self):  # noqa: N802
        return len(self.machine.group_masks)

    def GetMaximumProcessorCount(self, group):  # noqa: N802
        return 64 if group < len(self.machine.group_masks) else 0

    def GetActiveProcessorCount(self, group):  # noqa: N802
        return bin(self.machine.group_masks[group]).count("1") if group < len(self.machine.group_masks) else 0

    # -- affinity: a thread is in one group, within the process's mask in the primary group -----

    def _valid_affinity(self, group: int, mask: int) -> bool:
        masks = self.machine.group_masks
        return 0 <= group < len(masks) and mask != 0 and mask & ~masks[group] == 0

    def GetCurrentProcessorNumberEx(self, number):  # noqa: N802 - the lowest CPU of the affinity
        group, mask = self.thread_affinity
        number.Group, number.Number = group, (mask & -mask).bit_length() - 1

    def GetThreadGroupAffinity(self, thread, out):  # noqa: N802
        out.Group, out.Mask = self.thread_affinity
        return self._ok()

    def SetThreadGroupAffinity(self, thread, wanted, previous):  # noqa: N802
        handle = self._int(thread)
        self._record("SetThreadGroupAffinity", handle, int(wanted.Group), int(wanted.Mask))
        if not self._valid_affinity(wanted.Group, wanted.Mask) or any(wanted.Reserved):
            return self._fail(ERROR_INVALID_PARAMETER)
        if handle == self._int(self.GetCurrentThread()):
            self.thread_affinity = (int(wanted.Group), int(wanted.Mask))
        else:
            self.other_threads[handle - 0x1000] = (int(wanted.Group), int(wanted.Mask))
        return self._ok()

    def GetProcessGroupAffinity(self, process, count, array):  # noqa: N802
        groups = sorted(set(self.process_groups) | {self.thread_affinity[0]})
        if count[0] < len(groups):
            count[0] = len(groups)
            return self._fail(ERROR_INSUFFICIENT_BUFFER)
        for i, group in enumerate(groups):
            array[i] = group
        count[0] = len(groups)
        return self._ok()

    def GetProcessAffinityMask(self, process, mask, system):  # noqa: N802
        groups = set(self.process_groups) | {self.thread_affinity[0]}
        if len(groups) > 1:  # threads in several groups: Windows reports zeros
            mask[0] = system[0] = 0
        else:
            mask[0], system[0] = self.process_mask, self.machine.group_masks[min(groups)]
        return self._ok()

    def SetProcessAffinityMask(self, process, mask):  # noqa: N802 - the primary group's mask
        self._record("SetProcessAffinityMask", int(mask))
        group = self.process_groups[0]
        if len(set(self.process_groups) | {self.thread_affinity[0]}) > 1 or \
                not self._valid_affinity(group, int(mask)):
            return self._fail(ERROR_INVALID_PARAMETER)
        self.process_mask, self.thread_affinity = int(mask), (group, int(mask))
        self.other_threads = {t: (group, int(mask)) for t in self.other_threads}
        return self._ok()

    def CreateToolhelp32Snapshot(self, flags, process_id):  # noqa: N802
        if flags != exports.TH32CS_SNAPTHREAD:
            return self._fail(ERROR_INVALID_PARAMETER, exports.INVALID_HANDLE_VALUE)
        self._snapshot = [(tid, 1234) for tid in self.other_threads] + [(7, 999)]  # 7: another process
        return self._ok(exports.ffi.cast("HANDLE", 0x77))

    def Thread32First(self, snapshot, entry):  # noqa: N802
        self._cursor = 0
        return self.Thread32Next(snapshot, entry)

    def Thread32Next(self, snapshot, entry):  # noqa: N802
        if entry.dwSize != exports.ffi.sizeof("THREADENTRY32") or self._cursor >= len(self._snapshot):
            return self._fail(18)  # ERROR_NO_MORE_FILES
        entry.th32ThreadID, entry.th32OwnerProcessID = self._snapshot[self._cursor]
        self._cursor += 1
        return self._ok()

    def OpenThread(self, access, inherit, thread_id):  # noqa: N802
        if thread_id not in self.other_threads:
            return self._fail(ERROR_INVALID_PARAMETER, exports.ffi.NULL)
        return self._ok(exports.ffi.cast("HANDLE", 0x1000 + thread_id))

    # -- large pages: SeLockMemoryPrivilege -----------------------------------------------------

    def OpenProcessToken(self, process, access, token):  # noqa: N802
        token[0] = exports.ffi.cast("HANDLE", 0x44)
        return self._ok()

    def LookupPrivilegeValueW(self, system, name, luid):  # noqa: N802
        if exports.ffi.string(name) != "SeLockMemoryPrivilege":
            return self._fail(ERROR_INVALID_PARAMETER)
        luid.LowPart, luid.HighPart = 4, 0
        return self._ok()

    def AdjustTokenPrivileges(self, token, disable_all, new, length, previous, returned):  # noqa: N802
        self._record("AdjustTokenPrivileges")
        if not self.lock_memory:
            return self._fail(ERROR_NOT_ALL_ASSIGNED, 1)  # TRUE, with 1300: the page's rule
        self.lock_memory_enabled = True
        return self._ok()

    # -- sections ------------------------------------------------------------------------------

    def CreateFileMappingNumaW(self, file, attributes, protect, high, low, name, node):  # noqa: N802
        size, text = high << 32 | low, exports.ffi.string(name) if name != exports.ffi.NULL else None
        self._record("CreateFileMappingNumaW", protect, size, text, node)
        large = bool(protect & exports.SEC_LARGE_PAGES)
        if large and not self.lock_memory_enabled:
            return self._fail(ERROR_PRIVILEGE_NOT_HELD, exports.ffi.NULL)
        if large and size % LARGE:
            return self._fail(ERROR_INVALID_PARAMETER, exports.ffi.NULL)
        if text is not None:
            for handle, section in self.sections.items():
                if section.name == text:
                    return self._fail(183, exports.ffi.cast("HANDLE", handle))
        handle = self._new_handle()
        self.sections[handle] = Section(size, protect, None if node == exports.NUMA_NO_PREFERRED_NODE else node,
                                        text)
        return self._ok(exports.ffi.cast("HANDLE", handle))

    def OpenFileMappingW(self, desired, inherit, name):  # noqa: N802
        text = exports.ffi.string(name)
        for handle, section in self.sections.items():
            if section.name == text:
                return self._ok(exports.ffi.cast("HANDLE", handle))
        return self._fail(ERROR_FILE_NOT_FOUND, exports.ffi.NULL)

    def NtQuerySection(self, handle, klass, info, length, returned):  # noqa: N802
        section = self.sections[self._int(handle)]
        info = exports.ffi.cast("SECTION_BASIC_INFORMATION *", info)
        info.MaximumSize, info.AllocationAttributes = section.size, section.attributes & 0xFFF00000
        return 0

    # -- views ---------------------------------------------------------------------------------

    def _map(self, call, handle, base, offset, size, large_flag, node, replace) -> object:
        """The rules common to the map calls; ``replace`` is MEM_REPLACE_PLACEHOLDER."""
        ffi = exports.ffi
        section = self.sections.get(self._int(handle))
        if section is None:
            return self._fail(6, ffi.NULL)  # ERROR_INVALID_HANDLE
        large = bool(section.attributes & exports.SEC_LARGE_PAGES)
        page = LARGE if large else PAGE
        if offset % GRAN:
            return self._fail(ERROR_MAPPED_ALIGNMENT, ffi.NULL)
        length = size or section.size - offset
        if offset + length > -(-section.size // page) * page:  # past the section: error 5, not 87
            return self._fail(ERROR_ACCESS_DENIED, ffi.NULL)
        if large != large_flag or (large and length % LARGE):
            return self._fail(ERROR_INVALID_PARAMETER, ffi.NULL)
        length = -(-length // page) * page
        if replace:
            target = self.region_at(self._int(base)) if base else None
            if target is None or target.kind != "placeholder" or target.start != self._int(base) \
                    or target.size != size:  # "must exactly match those of the placeholder"
                return self._fail(ERROR_INVALID_PARAMETER, ffi.NULL)
            self.regions.remove(target)
            address = target.start
        else:
            address = self._place(base, length, LARGE if large else GRAN)
            if address is None:
                return self._fail(ERROR_INVALID_ADDRESS, ffi.NULL)
        self.regions.append(Region(address, length, "view", self._int(handle),
                                   section.node if node is None else node, large))
        return self._ok(self._pointer(address))

    def MapViewOfFile3(self, handle, process, base, offset, size, allocation, protect, params, count):  # noqa: N802
        node = None
        for i in range(count):
            if params[i].TypeAndReserved & 0xFF == exports.MEM_EXTENDED_PARAMETER_NUMA_NODE:
                node = int(params[i].ULong)
        self._record("MapViewOfFile3", self._int(base), offset, size, allocation, node)
        if size % PAGE:  # "the size must always be a multiple of the page size"
            return self._fail(ERROR_INVALID_PARAMETER, exports.ffi.NULL)
        if allocation & ~(exports.MEM_REPLACE_PLACEHOLDER | exports.MEM_LARGE_PAGES | exports.MEM_RESERVE):
            return self._fail(ERROR_INVALID_PARAMETER, exports.ffi.NULL)
        return self._map("MapViewOfFile3", handle, base, offset, size, bool(allocation & exports.MEM_LARGE_PAGES),
                         node, bool(allocation & exports.MEM_REPLACE_PLACEHOLDER))

    def MapViewOfFileExNuma(self, handle, desired, high, low, size, base, node):  # noqa: N802
        node = None if node == exports.NUMA_NO_PREFERRED_NODE else node
        self._record("MapViewOfFileExNuma", self._int(base), high << 32 | low, size, desired, node)
        return self._map("MapViewOfFileExNuma", handle, base, high << 32 | low, size,
                         bool(desired & exports.FILE_MAP_LARGE_PAGES), node, False)

    def UnmapViewOfFile(self, address):  # noqa: N802
        region = self.region_at(self._int(address))
        if region is None or region.kind != "view" or region.start != self._int(address):
            return self._fail(ERROR_INVALID_ADDRESS)
        self.regions.remove(region)
        return self._ok()

    def UnmapViewOfFileEx(self, address, flags):  # noqa: N802
        region = self.region_at(self._int(address))
        if region is None or region.kind != "view" or region.start != self._int(address):
            return self._fail(ERROR_INVALID_ADDRESS)
        if flags & exports.MEM_PRESERVE_PLACEHOLDER:
            region.kind, region.section, region.node, region.large = "placeholder", None, None, False
        else:
            self.regions.remove(region)
        return self._ok()

    # -- address space -------------------------------------------------------------------------

    def VirtualAlloc2(self, process, base, size, kind, protect, params, count):  # noqa: N802
        alignment = GRAN
        for i in range(count):
            if params[i].TypeAndReserved & 0xFF == exports.MEM_EXTENDED_PARAMETER_ADDRESS_REQUIREMENTS:
                alignment = int(exports.ffi.cast("MEM_ADDRESS_REQUIREMENTS *", params[i].Pointer).Alignment)
        self._record("VirtualAlloc2", size, kind, alignment)
        placeholder = bool(kind & exports.MEM_RESERVE_PLACEHOLDER)
        if placeholder and (not self.placeholder_support or kind != exports.MEM_RESERVE | exports.MEM_RESERVE_PLACEHOLDER
                            or protect != exports.PAGE_NOACCESS or size % GRAN):
            return self._fail(ERROR_INVALID_PARAMETER, exports.ffi.NULL)
        address = self._place(base, size, alignment)
        if address is None:
            return self._fail(ERROR_INVALID_ADDRESS, exports.ffi.NULL)
        self.regions.append(Region(address, size, "placeholder" if placeholder else "reserve"))
        return self._ok(self._pointer(address))

    def VirtualAlloc(self, base, size, kind, protect):  # noqa: N802
        address = self._place(base, -(-size // GRAN) * GRAN, GRAN)
        if address is None or kind != exports.MEM_RESERVE:
            return self._fail(ERROR_INVALID_ADDRESS, exports.ffi.NULL)
        self.regions.append(Region(address, -(-size // GRAN) * GRAN, "reserve"))
        return self._ok(self._pointer(address))

    def VirtualFree(self, address, size, kind):  # noqa: N802
        address = self._int(address)
        self._record("VirtualFree", address, size, kind)
        region = self.region_at(address)
        if region is None:
            return self._fail(ERROR_INVALID_ADDRESS)
        if kind == exports.MEM_RELEASE | exports.MEM_PRESERVE_PLACEHOLDER:  # split a placeholder
            if region.kind != "placeholder" or size == 0 or size % PAGE or address % PAGE \
                    or address + size > region.end or (address == region.start and size == region.size):
                return self._fail(ERROR_INVALID_PARAMETER)
            self.regions.remove(region)
            for start, end in ((region.start, address), (address, address + size), (address + size, region.end)):
                if end > start:
                    self.regions.append(Region(start, end - start, "placeholder"))
            return self._ok()
        if kind == exports.MEM_RELEASE | exports.MEM_COALESCE_PLACEHOLDERS:
            inside = sorted((r for r in self.regions if address <= r.start < address + size), key=lambda r: r.start)
            if not inside or inside[0].start != address or inside[-1].end != address + size or \
                    any(r.kind != "placeholder" for r in inside) or \
                    any(a.end != b.start for a, b in zip(inside, inside[1:])):
                return self._fail(ERROR_INVALID_PARAMETER)
            for r in inside:
                self.regions.remove(r)
            self.regions.append(Region(address, size, "placeholder"))
            return self._ok()
        if kind == exports.MEM_RELEASE:
            if size != 0 or region.start != address or region.kind == "view":
                return self._fail(ERROR_INVALID_PARAMETER)
            self.regions.remove(region)
            return self._ok()
        return self._fail(ERROR_INVALID_PARAMETER)

    def VirtualQuery(self, address, info, length):  # noqa: N802
        address = self._int(address) // PAGE * PAGE
        region = self.region_at(address)
        if region is None:
            following = [r.start for r in self.regions if r.start > address] + [self.limit]
            info.BaseAddress, info.AllocationBase = self._pointer(address), exports.ffi.NULL
            info.RegionSize, info.State, info.Type = min(following) - address, exports.MEM_FREE, 0
        else:
            info.BaseAddress, info.AllocationBase = self._pointer(address), self._pointer(region.start)
            info.RegionSize = region.end - address
            info.State = exports.MEM_COMMIT if region.kind == "view" else exports.MEM_RESERVE
            info.Type = exports.MEM_MAPPED if region.kind == "view" else MEM_PRIVATE
        return self._ok(exports.ffi.sizeof("MEMORY_BASIC_INFORMATION"))

    # -- placement -----------------------------------------------------------------------------

    def K32QueryWorkingSetEx(self, process, entries, size):  # noqa: N802
        entries = exports.ffi.cast("PSAPI_WORKING_SET_EX_INFORMATION *", entries)
        for i in range(size // exports.ffi.sizeof("PSAPI_WORKING_SET_EX_INFORMATION")):
            address = self._int(entries[i].VirtualAddress)
            region = self.region_at(address)
            attributes = 0
            if region is not None and region.kind == "view" and address // PAGE * PAGE not in self.trimmed:
                attributes = 1 | 0x4 << 4 | (region.node or 0) << 16 | (1 << 23 if region.large else 0)
            entries[i].VirtualAttributes = attributes
        return self._ok()
