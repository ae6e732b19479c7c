"""Windows backend: the NUMA-aware mapping calls of kernelbase/kernel32 through cffi (ABI mode).

Shares its public names with ``_linux.py``; ``_backend.py`` explains the contract.

The bindings live in ``_windows_native.py``, generated Python (``python numamap/_build_windows.py``)
that needs no compiler. Every export is resolved on its own, kernelbase first, then kernel32,
advapi32 and ntdll: an export this Windows lacks becomes a False capability flag, and calling it
raises NotImplementedError naming the call and the Windows version it needs.

How the operations map onto Windows:

* Section: ``CreateFileMapping2`` (with a NumaNode section parameter when a node is given) or
  ``CreateFileMappingNumaW``; pagefile-backed (``SEC_COMMIT``) or over a file; a name makes it
  openable with ``OpenFileMappingW`` (in the ``Local\\`` namespace, as ``numamap.<name>``).
* View: ``MapViewOfFile3`` with a ``MemExtendedParameterNumaNode``; else
  ``MapViewOfFileExNuma``; else ``MapViewOfFileNuma2`` (``MAP_CALLS`` is the order). On Windows
  the node is an argument of the map call: ``set_policy`` afterwards only checks the request.
  Anonymous memory is a private pagefile-backed section mapped once.
* Reservation: ``VirtualAlloc2(MEM_RESERVE | MEM_RESERVE_PLACEHOLDER)`` with
  ``MEM_ADDRESS_REQUIREMENTS``; a view at an address splits the placeholder
  (``VirtualFree(MEM_RELEASE | MEM_PRESERVE_PLACEHOLDER)``) and replaces it
  (``MapViewOfFile3(MEM_REPLACE_PLACEHOLDER)``); unmapping keeps the placeholder
  (``UnmapViewOfFileEx(MEM_PRESERVE_PLACEHOLDER)``); releasing coalesces
  (``MEM_COALESCE_PLACEHOLDERS``) and frees. Placeholder support is probed once by behaviour.
  Without it (Windows before 10 1803, Wine) a plain reservation is released and the view mapped
  at the address: racy, see ``_map_at_fallback``.
* Placement: ``K32QueryWorkingSetEx`` (Node bits 16-21 where the Valid bit is set; LargePage
  bit 23). Pages cannot be moved between nodes: ``move_range`` refuses, copy with ``asarray``.
* Large pages: ``SeLockMemoryPrivilege`` (the "Lock pages in memory" right),
  ``SEC_LARGE_PAGES`` sections and large-page views, probed once by behaviour: a large page is
  mapped, touched and read back through QueryWorkingSetEx's LargePage bit.
"""
from __future__ import annotations

import errno
import functools
import os
import threading
from dataclasses import dataclass, field

import numpy as np

from ._units import file_section_size, format_bytes, page_size_name, round_up

try:
    from ._windows_native import ffi
except ImportError as exc:  # pragma: no cover - a checkout that skipped the generation step
    raise ImportError("numamap/_windows_native.py is missing: generate it with "
                      "'python numamap/_build_windows.py' (pure Python, no compiler needed) "
                      "or install numamap with pip") from exc

PLATFORM = "windows"

# --------------------------------------------------------------------------------------------
# Constants (winnt.h / memoryapi.h)

MEM_COMMIT = 0x1000
MEM_RESERVE = 0x2000
MEM_REPLACE_PLACEHOLDER = 0x4000
MEM_RELEASE = 0x8000
MEM_FREE = 0x10000
MEM_PRIVATE = 0x20000
MEM_MAPPED = 0x40000
MEM_RESERVE_PLACEHOLDER = 0x40000
MEM_LARGE_PAGES = 0x20000000
MEM_COALESCE_PLACEHOLDERS = 0x1
MEM_PRESERVE_PLACEHOLDER = 0x2
SEC_COMMIT = 0x08000000
SEC_LARGE_PAGES = 0x80000000
FILE_MAP_COPY = 0x1
FILE_MAP_WRITE = 0x2
FILE_MAP_READ = 0x4
FILE_MAP_ALL_ACCESS = 0xF001F
FILE_MAP_LARGE_PAGES = 0x20000000
SECTION_QUERY = 0x1
PAGE_NOACCESS = 0x1
PAGE_READONLY = 0x2
PAGE_READWRITE = 0x4
PAGE_WRITECOPY = 0x8
NUMA_NO_PREFERRED_NODE = 0xFFFFFFFF
MEM_EXTENDED_PARAMETER_ADDRESS_REQUIREMENTS = 1
MEM_EXTENDED_PARAMETER_NUMA_NODE = 2
MEM_SECTION_EXTENDED_PARAMETER_NUMA_NODE = 2
RELATION_NUMA_NODE = 1
RELATION_NUMA_NODE_EX = 6  # all of a node's processor groups (Windows 11 / Server 2022)
RELATION_GROUP = 4
TOKEN_ADJUST_PRIVILEGES = 0x20
TOKEN_QUERY = 0x8
SE_PRIVILEGE_ENABLED = 0x2
SE_LOCK_MEMORY_NAME = "SeLockMemoryPrivilege"

ERROR_FILE_NOT_FOUND = 2
ERROR_ACCESS_DENIED = 5
ERROR_NOT_ENOUGH_MEMORY = 8
ERROR_OUTOFMEMORY = 14
ERROR_INVALID_PARAMETER = 87
ERROR_INSUFFICIENT_BUFFER = 122
ERROR_ALREADY_EXISTS = 183
ERROR_MAPPED_ALIGNMENT = 1132
ERROR_INVALID_ADDRESS = 487
ERROR_NOT_ALL_ASSIGNED = 1300
ERROR_PRIVILEGE_NOT_HELD = 1314
ERROR_COMMITMENT_LIMIT = 1455
_MEMORY_ERRORS = (ERROR_NOT_ENOUGH_MEMORY, ERROR_OUTOFMEMORY, ERROR_COMMITMENT_LIMIT)

NAME_PREFIX = "Local\\numamap."
INVALID_HANDLE_VALUE = ffi.cast("HANDLE", -1)
# Placeholder fallback: attempts to map at a released reservation before giving up.
FALLBACK_ATTEMPTS = 8
_QUERY_CHUNK = 1 << 16  # QueryWorkingSetEx entries per call

GRANT_LOCK_PAGES = (
    "large pages need the 'Lock pages in memory' right (SeLockMemoryPrivilege): run secpol.msc, "
    "open Local Policies > User Rights Assignment > Lock pages in memory, add your account, then "
    "log off and on again (an elevated process is not enough without it)")

# --------------------------------------------------------------------------------------------
# Exports, resolved one by one

# The Windows release each export first appeared in, for the NotImplementedError message.
_NEEDS = {
    "CreateFileMapping2": "Windows 10 build 20348 / Windows Server 2022",
    "GetNumaNodeProcessorMask2": "Windows 10 build 20348 / Windows Server 2022",
    "MapViewOfFile3": "Windows 10 version 1803 / Windows Server 2019",
    "MapViewOfFile3FromApp": "Windows 10 version 1803",
    "VirtualAlloc2": "Windows 10 version 1803 / Windows Server 2019",
    "MapViewOfFileNuma2": "Windows 10 version 1703",
    "UnmapViewOfFile2": "Windows 10 version 1703",
    "UnmapViewOfFileEx": "Windows 8 / Windows Server 2012",
    "GetNumaNodeProcessorMaskEx": "Windows 7 / Windows Server 2008 R2",
    "GetNumaProcessorNodeEx": "Windows 7 / Windows Server 2008 R2",
    "GetNumaAvailableMemoryNodeEx": "Windows 7 / Windows Server 2008 R2",
    "GetLogicalProcessorInformationEx": "Windows 7 / Windows Server 2008 R2",
    "K32QueryWorkingSetEx": "Windows 7 / Windows Server 2008 R2",
}
_DLL_ORDER = ("kernelbase.dll", "kernel32.dll", "advapi32.dll", "ntdll.dll")
_EXPORTS = (
    "CreateFileMappingNumaW", "CreateFileMapping2", "OpenFileMappingW", "NtQuerySection",
    "MapViewOfFileExNuma", "MapViewOfFileNuma2", "MapViewOfFile3", "MapViewOfFile3FromApp",
    "UnmapViewOfFile", "UnmapViewOfFileEx", "UnmapViewOfFile2",
    "VirtualAlloc2", "VirtualAlloc", "VirtualFree", "VirtualQuery",
    "CloseHandle", "SetLastError", "GetCurrentProcess", "GetLastError", "CreateFileW",
    "GetFileSizeEx", "GetProcessAffinityMask",
    "GetSystemInfo", "GetLargePageMinimum", "GlobalMemoryStatusEx", "GetNumaHighestNodeNumber",
    "GetNumaProcessorNodeEx", "GetNumaNodeProcessorMaskEx", "GetNumaNodeProcessorMask2",
    "GetNumaAvailableMemoryNodeEx", "GetLogicalProcessorInformationEx",
    "K32QueryWorkingSetEx", "OpenProcessToken", "LookupPrivilegeValueW", "AdjustTokenPrivileges",
)


class Missing:
    """Stands in for an export this system lacks: falsy, and calling it says what is needed."""

    def __init__(self, name: str):
        self.name = name

    def __bool__(self) -> bool:
        return False

    def __call__(self, *args, **kwargs):
        needs = _NEEDS.get(self.name, "a newer Windows")
        raise NotImplementedError(f"{self.name} is not exported by this system's "
                                  f"{' or '.join(_DLL_ORDER[:2])}: it needs {needs}")

    def __repr__(self) -> str:
        return f"<missing export {self.name}>"


def _load_dlls():
    out = []
    for name in _DLL_ORDER:
        try:
            out.append((name, ffi.dlopen(name)))
        except OSError:
            pass
    return out


_DLLS = _load_dlls()
api: dict = {}         # export name -> callable (cffi function, or Missing)
exported_by: dict = {}  # export name -> the DLL it was found in, or None
for _name in _EXPORTS:
    api[_name], exported_by[_name] = Missing(_name), None
    for _dll_name, _dll in _DLLS:
        try:
            api[_name], exported_by[_name] = getattr(_dll, _name), _dll_name
            break
        except (AttributeError, ffi.error):
            continue
del _name


def available(name: str) -> bool:
    """Whether ``name`` can be called here (monkeypatching ``api[name]`` changes the answer)."""
    return not isinstance(api.get(name), Missing) and name in api


def MapViewOfFile2(FileMappingHandle, ProcessHandle, Offset, BaseAddress, ViewSize,  # noqa: N802
                   AllocationType, PageProtection):
    """memoryapi.h's inline MapViewOfFile2: MapViewOfFileNuma2 with NUMA_NO_PREFERRED_NODE."""
    return api["MapViewOfFileNuma2"](FileMappingHandle, ProcessHandle, Offset, BaseAddress, ViewSize,
                                     AllocationType, PageProtection, NUMA_NO_PREFERRED_NODE)


@functools.lru_cache(maxsize=None)
def _process():
    return api["GetCurrentProcess"]()


def _ptr(address: int | None):
    return ffi.NULL if address is None else ffi.cast("void *", address)


def _addr(pointer) -> int:
    return int(ffi.cast("uintptr_t", pointer))


def _handle(value: int):
    return ffi.cast("HANDLE", value)


def _wide(text: str | None):
    return ffi.NULL if text is None else ffi.new("WCHAR[]", text)


# --------------------------------------------------------------------------------------------
# Errors


def last_error() -> tuple[int, str]:
    """(code, message) of GetLastError as it was right after the last call through cffi."""
    code, message = ffi.getwinerror()
    return code, message


def _fail(what: str, code: int | None = None, *, bad_input: bool = False, hint: str = ""):
    """Raise the exception for Windows error ``code`` (GetLastError when None) from ``what``.

    Out of memory or commit becomes MemoryError; ERROR_INVALID_PARAMETER ValueError where
    ``bad_input`` says it can only mean a bad argument; anything else OSError carrying winerror
    and the system's message (so FileNotFoundError, PermissionError... by the usual mapping).
    """
    if code is None:
        code, message = ffi.getwinerror()
    else:
        message = ffi.getwinerror(code)[1]
    text = f"{what}: {message.strip()} (winerror {code})"
    if hint:
        text += f". {hint}"
    if code in _MEMORY_ERRORS:
        raise MemoryError(text)
    if code in (ERROR_INVALID_PARAMETER, ERROR_MAPPED_ALIGNMENT) and bad_input:
        raise ValueError(text)
    if code in (ERROR_NOT_ALL_ASSIGNED, ERROR_PRIVILEGE_NOT_HELD):
        raise PermissionError(errno.EPERM, text, None, code)
    raise OSError(None, text, None, code)


def _check(ok, what: str, **kwargs) -> None:
    if not ok:
        _fail(what, **kwargs)


# --------------------------------------------------------------------------------------------
# Facts about the machine


@functools.lru_cache(maxsize=None)
def _system_info() -> tuple[int, int, int]:
    info = ffi.new("SYSTEM_INFO *")
    api["GetSystemInfo"](info)
    return int(info.dwPageSize), int(info.dwAllocationGranularity), int(info.dwNumberOfProcessors)


def base_page_size() -> int:
    return _system_info()[0]


def allocation_granularity() -> int:
    """View offsets and view addresses must be multiples of this (64 KiB on Windows)."""
    return _system_info()[1]


def huge_page_sizes(root: str = "/") -> tuple[int, ...]:
    """``(GetLargePageMinimum(),)``, or ``()`` where the processor has no large pages.

    The size existing says nothing about getting such pages: see ``capabilities()['large_pages']``.
    """
    size = int(api["GetLargePageMinimum"]()) if available("GetLargePageMinimum") else 0
    return (size,) if size else ()


def thp_mode(root: str = "/") -> str:
    """Windows has no transparent huge pages."""
    return "unsupported"


def shmem_thp_mode(root: str = "/") -> str:
    return "unsupported"


def _memory_status():
    status = ffi.new("MEMORYSTATUSEX *")
    status.dwLength = ffi.sizeof("MEMORYSTATUSEX")
    if not api["GlobalMemoryStatusEx"](status):
        return None
    return int(status.ullTotalPhys), int(status.ullAvailPhys)


def _node_available(node: int) -> int | None:
    """GetNumaAvailableMemoryNodeEx, or None where it fails (Wine: not implemented)."""
    if not available("GetNumaAvailableMemoryNodeEx") or not 0 <= node < 0xFFFF:
        return None
    out = ffi.new("ULONGLONG *")
    if not api["GetNumaAvailableMemoryNodeEx"](node, out):
        return None
    return int(out[0])


def _processor_records(relation: int) -> list:
    """GetLogicalProcessorInformationEx(relation), parsed: dicts per record."""
    query = api["GetLogicalProcessorInformationEx"]
    length = ffi.new("DWORD *", 0)
    api["SetLastError"](0)
    query(relation, ffi.NULL, length)
    if not length[0]:
        _fail(f"GetLogicalProcessorInformationEx({relation})")
    buffer = ffi.new("char[]", length[0])
    _check(query(relation, ffi.cast("SYSTEM_LOGICAL_PROCESSOR_INFORMATION_EX *", buffer), length),
           f"GetLogicalProcessorInformationEx({relation})")
    records, offset = [], 0
    while offset < length[0]:
        record = ffi.cast("SYSTEM_LOGICAL_PROCESSOR_INFORMATION_EX *", buffer + offset)
        if record.Size == 0:
            break
        numa_kinds = (RELATION_NUMA_NODE, RELATION_NUMA_NODE_EX)
        if record.Relationship in numa_kinds and relation in numa_kinds:
            numa = record.NumaNode
            masks = ffi.cast("GROUP_AFFINITY *", numa.GroupMasks)
            count = numa.GroupCount or 1  # GroupCount is 0 before Windows 10 20H2: one mask
            records.append({"node": int(numa.NodeNumber),
                            "masks": [(int(masks[i].Group), int(masks[i].Mask)) for i in range(count)]})
        elif record.Relationship == RELATION_GROUP == relation:
            group = record.Group
            infos = ffi.cast("PROCESSOR_GROUP_INFO *", group.GroupInfo)
            records.append({"groups": [(int(infos[i].MaximumProcessorCount),
                                        int(infos[i].ActiveProcessorCount),
                                        int(infos[i].ActiveProcessorMask))
                                       for i in range(group.ActiveGroupCount)]})
        offset += record.Size
    return records


def _bits(mask: int) -> list[int]:
    return [bit for bit in range(mask.bit_length()) if mask >> bit & 1]


def _group_bases() -> list[int]:
    """First CPU number of each processor group: CPU ids are group base + bit in the group."""
    try:
        records = _processor_records(RELATION_GROUP)
    except (OSError, NotImplementedError):
        return [0]
    bases, total = [], 0
    for record in records:
        for maximum, _active, _mask in record["groups"]:
            bases.append(total)
            total += maximum
    return bases or [0]


def _numa_layout() -> tuple[dict[int, tuple[int, ...]], str, list[str]]:
    """Node id -> CPU ids, the source, and notes about what could not be read."""
    notes: list[str] = []
    try:
        try:  # RelationNumaNodeEx lists every group of a node; older Windows refuses it (87)
            records = _processor_records(RELATION_NUMA_NODE_EX)
        except OSError:
            records = []
        records = records or _processor_records(RELATION_NUMA_NODE)
        if not records:
            raise OSError(None, "GetLogicalProcessorInformationEx returned no NUMA node")
        bases = _group_bases()
        layout: dict[int, set[int]] = {}
        for record in records:
            cpus = layout.setdefault(record["node"], set())
            for group, mask in record["masks"]:
                base = bases[group] if group < len(bases) else group * 64
                cpus.update(base + bit for bit in _bits(mask))
        return {n: tuple(sorted(c)) for n, c in sorted(layout.items())}, "GetLogicalProcessorInformationEx", notes
    except (OSError, NotImplementedError) as exc:
        notes.append(f"GetLogicalProcessorInformationEx(RelationNumaNode) failed ({exc})")
    highest = ffi.new("ULONG *")
    if available("GetNumaHighestNodeNumber") and api["GetNumaHighestNodeNumber"](highest) and highest[0] > 0:
        layout = {}
        for node in range(highest[0] + 1):
            mask = ffi.new("GROUP_AFFINITY *")
            if available("GetNumaNodeProcessorMaskEx") and api["GetNumaNodeProcessorMaskEx"](node, mask):
                layout[node] = tuple(_group_bases()[0] + b for b in _bits(int(mask.Mask)))
        if layout:
            return layout, "GetNumaNodeProcessorMaskEx", notes
        notes.append("GetNumaNodeProcessorMaskEx failed for every node")
    cpus = tuple(range(os.cpu_count() or _system_info()[2] or 1))
    notes.append("no NUMA information from Windows: falling back to one node 0 holding every CPU")
    return {0: cpus}, "fallback", notes


@functools.lru_cache(maxsize=None)
def _cached_layout():
    return _numa_layout()


def memory_nodes(root: str = "/") -> frozenset[int]:
    """Nodes with memory: those GetNumaAvailableMemoryNodeEx reports memory on (all known nodes
    where that call fails)."""
    layout = _cached_layout()[0]
    with_memory = {n for n in layout if (_node_available(n) is None or _node_available(n) > 0)}
    return frozenset(with_memory or {min(layout)})


def node_memory_free(node: int, root: str = "/") -> int | None:
    """Free bytes on ``node``: GetNumaAvailableMemoryNodeEx; GlobalMemoryStatusEx when that
    fails and ``node`` is the only node; else None."""
    free = _node_available(node)
    if free is None and set(_cached_layout()[0]) == {node}:
        status = _memory_status()
        free = status[1] if status else None
    return free


@dataclass(frozen=True)
class PoolFacts:
    """Windows has no huge-page pools: this describes the free memory large pages come from."""

    page_size: int
    total: int
    free: int
    path: str = "Lock pages in memory"

    def describe(self) -> str:
        return (f"Windows has no huge-page pool: {page_size_name(self.page_size)} large pages come "
                f"from free physical memory, {self.free} pages ({format_bytes(self.free * self.page_size)}) "
                f"now, and need the 'Lock pages in memory' right")


def hugepage_pool(page_size: int, node: int | None = None, root: str = "/") -> PoolFacts | None:
    """None unless large pages really work here (``capabilities()['large_pages']``); then the
    free memory of ``node`` (or the machine) counted in ``page_size`` pages."""
    if page_size not in huge_page_sizes() or not capabilities()["large_pages"]:
        return None
    free = node_memory_free(node) if node is not None else None
    if free is None:
        status = _memory_status()
        free = status[1] if status else 0
    pages = free // page_size
    return PoolFacts(page_size, pages, pages)


def _allowed_cpus(all_cpus: tuple[int, ...]) -> tuple[int, ...]:
    process_mask, system_mask = ffi.new("DWORD_PTR *"), ffi.new("DWORD_PTR *")
    if available("GetProcessAffinityMask") and api["GetProcessAffinityMask"](_process(), process_mask, system_mask) \
            and process_mask[0]:
        return tuple(_bits(int(process_mask[0])))
    return all_cpus  # threads in several processor groups: Windows reports no single mask


def read_topology(root: str = "/") -> dict:
    """Topology facts from GetLogicalProcessorInformationEx and the GetNuma* calls.

    ``root`` is ignored (it points the Linux backend at synthetic sysfs trees). When Windows
    gives no NUMA information the result is one node 0 holding every CPU, and ``notes`` says so.
    """
    layout, source, notes = _numa_layout()
    notes = list(notes)
    if root not in ("/", ""):
        notes.append(f"root={root!r} is ignored on Windows: the facts come from the running system")
    status = _memory_status()
    sizes = huge_page_sizes()
    all_cpus = tuple(sorted({c for cpus in layout.values() for c in cpus}))
    single = len(layout) == 1
    nodes, unknown_free = [], []
    for node, cpus in layout.items():
        free = _node_available(node)
        if free is None:
            unknown_free.append(node)
            free = status[1] if (status and single) else 0
        total = status[0] if (status and single) else 0
        has_memory = _node_available(node) != 0
        nodes.append(dict(id=node, cpus=cpus, memory_total=total, memory_free=free,
                          distances=(10,) if single else (), hugepages={}, has_memory=has_memory,
                          has_cpus=bool(cpus)))
    if unknown_free:
        notes.append(f"GetNumaAvailableMemoryNodeEx failed for nodes {unknown_free}"
                     + (": free memory is GlobalMemoryStatusEx's for the whole machine" if single else
                        ": their free memory is unknown (0)"))
    if not single:
        notes.append("Windows reports neither node distances nor each node's total memory: "
                     "distances are empty and memory_total is 0")
    if sizes:
        notes.append(f"large pages ({page_size_name(sizes[0])}) come from free memory, not pools, and "
                     f"{'work here' if capabilities()['large_pages'] else 'do not work here: ' + _large_page_reason()}")
    ids = tuple(layout)
    allowed_mems = tuple(n["id"] for n in nodes if n["has_memory"]) or ids
    return dict(nodes=nodes, online=ids, possible=ids, allowed_cpus=_allowed_cpus(all_cpus),
                allowed_memory_nodes=allowed_mems, thp_mode=thp_mode(),
                granularity=allocation_granularity(), page_size=base_page_size(),
                huge_page_sizes=sizes, source=source, notes=tuple(notes), platform=PLATFORM)


# --------------------------------------------------------------------------------------------
# Large pages


_privilege_lock = threading.RLock()
_probe_results: dict[str, tuple[bool, str]] = {}


def enable_lock_memory_privilege() -> None:
    """Enable SeLockMemoryPrivilege in this process's token, or PermissionError saying how to
    grant "Lock pages in memory" (AdjustTokenPrivileges succeeds with error 1300 without it)."""
    token = ffi.new("HANDLE *")
    _check(api["OpenProcessToken"](_process(), TOKEN_ADJUST_PRIVILEGES | TOKEN_QUERY, token),
           "OpenProcessToken")
    try:
        privileges = ffi.new("TOKEN_PRIVILEGES *")
        privileges.PrivilegeCount = 1
        _check(api["LookupPrivilegeValueW"](ffi.NULL, _wide(SE_LOCK_MEMORY_NAME),
                                            ffi.addressof(privileges.Privileges[0], "Luid")),
               "LookupPrivilegeValueW(SeLockMemoryPrivilege)")
        privileges.Privileges[0].Attributes = SE_PRIVILEGE_ENABLED
        api["SetLastError"](0)
        ok = api["AdjustTokenPrivileges"](token[0], 0, privileges, 0, ffi.NULL, ffi.NULL)
        code = ffi.getwinerror()[0]
        if not ok:
            _fail("AdjustTokenPrivileges(SeLockMemoryPrivilege)", hint=GRANT_LOCK_PAGES)
        if code == ERROR_NOT_ALL_ASSIGNED:
            raise PermissionError(errno.EPERM, f"this account lacks SeLockMemoryPrivilege (winerror 1300): "
                                  f"{GRANT_LOCK_PAGES}", None, code)
    finally:
        api["CloseHandle"](token[0])


def _probe_large_pages() -> tuple[bool, str]:
    """Map one large page of a SEC_LARGE_PAGES section, touch it, and ask QueryWorkingSetEx
    whether it is one (Wine "succeeds" with small pages)."""
    sizes = huge_page_sizes()
    if not sizes:
        return False, "GetLargePageMinimum() is 0: this processor has no large pages"
    try:
        enable_lock_memory_privilege()
    except (OSError, NotImplementedError) as exc:
        return False, str(exc)
    size = sizes[0]
    api["SetLastError"](0)
    section = api["CreateFileMappingNumaW"](INVALID_HANDLE_VALUE, ffi.NULL,
                                            PAGE_READWRITE | SEC_COMMIT | SEC_LARGE_PAGES,
                                            0, size, ffi.NULL, NUMA_NO_PREFERRED_NODE)
    if not section:
        return False, "a SEC_LARGE_PAGES section was refused ({1}, winerror {0})".format(*ffi.getwinerror())
    try:
        view = api["MapViewOfFileExNuma"](section, FILE_MAP_WRITE | FILE_MAP_LARGE_PAGES, 0, 0, size,
                                          ffi.NULL, NUMA_NO_PREFERRED_NODE)
        if not view:
            return False, "a FILE_MAP_LARGE_PAGES view was refused ({1}, winerror {0})".format(*ffi.getwinerror())
        try:
            ffi.cast("volatile char *", view)[0] = b"\x01"
            attributes = _working_set(_addr(view), 1, size)[0]
        finally:
            api["UnmapViewOfFile"](view)
    finally:
        api["CloseHandle"](section)
    if attributes & 1 and attributes >> 23 & 1:
        return True, "large pages work"
    return False, ("a SEC_LARGE_PAGES section mapped with FILE_MAP_LARGE_PAGES was given small "
                   "pages (QueryWorkingSetEx LargePage bit is 0; Wine does this)")


def _large_pages() -> tuple[bool, str]:
    with _privilege_lock:
        if "large_pages" not in _probe_results:
            _probe_results["large_pages"] = _probe_large_pages()
        return _probe_results["large_pages"]


def _large_page_reason() -> str:
    return _large_pages()[1]


def _require_large_pages(page_size: int) -> None:
    if page_size not in huge_page_sizes():
        raise ValueError(f"{page_size_name(page_size)} pages: Windows serves only "
                         f"{', '.join(page_size_name(s) for s in huge_page_sizes()) or 'no'} large pages")
    enable_lock_memory_privilege()  # PermissionError with instructions when not granted
    works, reason = _large_pages()
    if not works:
        raise OSError(errno.EOPNOTSUPP, f"large pages are not available on this system: {reason}; "
                      "use page_size='4K'")


# --------------------------------------------------------------------------------------------
# Placeholders


def _query(address: int):
    info = ffi.new("MEMORY_BASIC_INFORMATION *")
    if not api["VirtualQuery"](_ptr(address), info, ffi.sizeof(info[0])):
        _fail(f"VirtualQuery({address:#x})")
    return info


def _allocation_span(address: int) -> tuple[int, int, int, int]:
    """(start, end, state, type) of the allocation that holds ``address`` (one placeholder or
    one reservation)."""
    info = _query(address)
    if int(info.State) == MEM_FREE:
        return _addr(info.BaseAddress), _addr(info.BaseAddress) + int(info.RegionSize), MEM_FREE, 0
    start = _addr(info.AllocationBase)
    whole = _query(start)
    return start, start + int(whole.RegionSize), int(whole.State), int(whole.Type)


def _release_allocations(address: int, size: int) -> None:
    """VirtualFree every reservation/placeholder that starts inside ``[address, address+size)``."""
    cursor, end = address, address + size
    while cursor < end:
        info = _query(cursor)
        step = max(int(info.RegionSize), base_page_size())
        base = _addr(info.AllocationBase)
        if int(info.State) == MEM_RESERVE and int(info.Type) != MEM_MAPPED and address <= base < end:
            api["VirtualFree"](_ptr(base), 0, MEM_RELEASE)
        cursor = _addr(info.BaseAddress) + step


def _probe_placeholders() -> tuple[bool, str]:
    """Reserve a placeholder, split it, map a view in place, unmap keeping the placeholder:
    each step must do what it says (Wine refuses the first with error 87 or fakes the last)."""
    needed = ("VirtualAlloc2", "MapViewOfFile3", "UnmapViewOfFileEx", "VirtualQuery")
    missing = [n for n in needed if not available(n)]
    if missing:
        return False, f"{', '.join(missing)} not exported"
    granularity = allocation_granularity()
    process = _process()
    base = api["VirtualAlloc2"](process, ffi.NULL, 2 * granularity, MEM_RESERVE | MEM_RESERVE_PLACEHOLDER,
                                PAGE_NOACCESS, ffi.NULL, 0)
    if not base:
        return False, "VirtualAlloc2(MEM_RESERVE_PLACEHOLDER) failed ({1}, winerror {0})".format(*ffi.getwinerror())
    address = _addr(base)
    section = ffi.NULL
    try:
        if not api["VirtualFree"](base, granularity, MEM_RELEASE | MEM_PRESERVE_PLACEHOLDER):
            return False, "splitting a placeholder failed ({1}, winerror {0})".format(*ffi.getwinerror())
        section = api["CreateFileMappingNumaW"](INVALID_HANDLE_VALUE, ffi.NULL, PAGE_READWRITE | SEC_COMMIT,
                                                0, granularity, ffi.NULL, NUMA_NO_PREFERRED_NODE)
        if not section:
            return False, "no pagefile section for the probe"
        view = api["MapViewOfFile3"](section, process, base, 0, granularity, MEM_REPLACE_PLACEHOLDER,
                                     PAGE_READWRITE, ffi.NULL, 0)
        if _addr(view) != address:
            if view:
                api["UnmapViewOfFile"](view)
            return False, "MapViewOfFile3(MEM_REPLACE_PLACEHOLDER) did not map at the placeholder"
        ffi.cast("volatile char *", view)[0] = b"\x01"
        if not api["UnmapViewOfFileEx"](view, MEM_PRESERVE_PLACEHOLDER):
            return False, "UnmapViewOfFileEx(MEM_PRESERVE_PLACEHOLDER) failed"
        if int(_query(address).State) != MEM_RESERVE:
            return False, "UnmapViewOfFileEx(MEM_PRESERVE_PLACEHOLDER) dropped the placeholder"
        return True, "placeholders work"
    finally:
        for offset in (0, granularity):
            info = _query(address + offset)
            if int(info.State) != MEM_FREE and int(info.Type) == MEM_MAPPED:
                api["UnmapViewOfFile"](_ptr(address + offset))
        _release_allocations(address, 2 * granularity)
        if section:
            api["CloseHandle"](section)


def _placeholders() -> bool:
    with _privilege_lock:
        if "placeholders" not in _probe_results:
            _probe_results["placeholders"] = _probe_placeholders()
        return _probe_results["placeholders"][0]


def placeholder_status() -> tuple[bool, str]:
    """Whether real placeholders are used, and why not (the probe's finding)."""
    _placeholders()
    return _probe_results["placeholders"]


# --------------------------------------------------------------------------------------------
# Capabilities


_EXPORT_FLAGS = ("CreateFileMappingNumaW", "CreateFileMapping2", "MapViewOfFileExNuma",
                 "MapViewOfFileNuma2", "MapViewOfFile3", "MapViewOfFile3FromApp", "UnmapViewOfFileEx",
                 "UnmapViewOfFile2", "VirtualAlloc2", "GetNumaNodeProcessorMask2",
                 "GetLogicalProcessorInformationEx", "K32QueryWorkingSetEx")


@functools.lru_cache(maxsize=None)
def capabilities() -> dict[str, bool]:
    """Exports present, and what works by behaviour (placeholders, large pages, NUMA facts)."""
    caps = {name: available(name) for name in _EXPORT_FLAGS}
    caps["MapViewOfFile2"] = available("MapViewOfFileNuma2")  # an inline over MapViewOfFileNuma2
    layout, source, _ = _cached_layout()
    caps["numa_info"] = source != "fallback"
    caps["numa_memory_info"] = all(_node_available(n) is not None for n in layout)
    caps["numa_policy"] = any(available(n) for n in MAP_CALLS)  # a preferred node per view
    caps["placeholders"] = _placeholders()
    privilege = True
    try:
        enable_lock_memory_privilege()
    except (OSError, NotImplementedError):
        privilege = False
    caps["large_page_privilege"] = privilege
    caps["large_pages"] = _large_pages()[0]
    caps["hugetlb"] = caps["large_pages"]
    caps["memfd"] = False
    caps["thp"] = False
    return caps


# --------------------------------------------------------------------------------------------
# Sections


@dataclass
class SectionHandle:
    """A file mapping object (section): pagefile-backed or over a file."""

    handle: int
    size: int
    page_size: int | None  # None: base pages
    access: str
    path: str | None = None
    name: str | None = None
    closed: bool = field(default=False)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        api["CloseHandle"](_handle(self.handle))


# The order create_section tries the section calls in.
SECTION_CALLS = ("CreateFileMapping2", "CreateFileMappingNumaW")


def _numa_parameter(kind: int, node: int | None):
    """A one-entry extended-parameter array naming ``node``, or (NULL, 0) for no preference."""
    if node is None:
        return ffi.NULL, 0
    params = ffi.new("MEM_EXTENDED_PARAMETER[1]")
    params[0].TypeAndReserved = kind
    params[0].ULong = node
    return params, 1


def _create_mapping(file_handle, size: int, protect: int, attributes: int, name: str | None,
                    node: int | None):
    api["SetLastError"](0)
    call = next((c for c in SECTION_CALLS if available(c)), SECTION_CALLS[-1])
    wide = _wide(name)
    if call == "CreateFileMapping2":
        params, count = _numa_parameter(MEM_SECTION_EXTENDED_PARAMETER_NUMA_NODE, node)
        access = FILE_MAP_ALL_ACCESS if protect != PAGE_READONLY else FILE_MAP_READ | SECTION_QUERY
        handle = api["CreateFileMapping2"](file_handle, ffi.NULL, access, protect, attributes, size,
                                           wide, params, count)
    else:
        handle = api["CreateFileMappingNumaW"](file_handle, ffi.NULL, protect | attributes, size >> 32,
                                               size & 0xFFFFFFFF, wide,
                                               NUMA_NO_PREFERRED_NODE if node is None else node)
    code = ffi.getwinerror()[0]
    if not handle:
        _fail(f"{call} ({format_bytes(size)})", code, bad_input=node is not None)
    return handle, code


def _check_name(name: str) -> None:
    if not name or any(c in name for c in "/\\\0") or name in (".", ".."):
        raise ValueError(f"name={name!r} must be a non-empty string without '/' or '\\'")


def create_section(size: int, *, page_size: int | None, access: str, path: str | None = None,
                   fd: int | None = None, name: str | None = None, node: int | None = None) -> SectionHandle:
    """Create a section (see ``Section`` for the rules).

    Pagefile-backed (``SEC_COMMIT``, ``SEC_LARGE_PAGES`` for large pages) or over a file
    (``path``/``fd``; a larger ``size`` extends the file). ``node`` (Windows only) is the
    section's preferred node through CreateFileMapping2's NumaNode parameter or
    CreateFileMappingNumaW's nndPreferred.
    """
    if path is not None or fd is not None:
        import msvcrt

        flags = (os.O_RDWR if access == "rw" else os.O_RDONLY) | getattr(os, "O_BINARY", 0)
        own_fd = os.dup(fd) if fd is not None else os.open(path, flags)
        try:
            current = os.fstat(own_fd).st_size
            size = file_section_size(size, current, access)
            protect = {"rw": PAGE_READWRITE, "r": PAGE_READONLY, "cow": PAGE_WRITECOPY}[access]
            handle, _ = _create_mapping(_handle(msvcrt.get_osfhandle(own_fd)), size, protect, 0, None, node)
        finally:
            os.close(own_fd)  # the section keeps the file open
        return SectionHandle(_addr(handle), size, None, access, path)

    attributes = SEC_COMMIT
    if page_size is not None:
        _require_large_pages(page_size)
        size = round_up(size, page_size)
        attributes |= SEC_LARGE_PAGES
    full_name = None
    if name is not None:
        _check_name(name)
        full_name = NAME_PREFIX + name
    handle, code = _create_mapping(INVALID_HANDLE_VALUE, size, PAGE_READWRITE, attributes, full_name, node)
    if name is not None and code == ERROR_ALREADY_EXISTS:
        api["CloseHandle"](handle)
        raise FileExistsError(errno.EEXIST, f"a section named {name!r} exists already: "
                              "open it with Section.open(name) or pick another name")
    return SectionHandle(_addr(handle), size, page_size, access, None, name)


def _section_facts(handle) -> tuple[int, bool]:
    """(size, large pages?) of an opened section: NtQuerySection, else map it and VirtualQuery."""
    if available("NtQuerySection"):
        info = ffi.new("SECTION_BASIC_INFORMATION *")
        status = api["NtQuerySection"](handle, 0, info, ffi.sizeof(info[0]), ffi.NULL)
        if status == 0 and info.MaximumSize > 0:
            return int(info.MaximumSize), bool(int(info.AllocationAttributes) & SEC_LARGE_PAGES)
    view = api["MapViewOfFileExNuma"](handle, FILE_MAP_READ, 0, 0, 0, ffi.NULL, NUMA_NO_PREFERRED_NODE)
    if not view:
        _fail("mapping the opened section to learn its size")
    try:
        return int(_query(_addr(view)).RegionSize), False
    finally:
        api["UnmapViewOfFile"](view)


def open_section(name: str, access: str) -> SectionHandle:
    """Open a named section created by another process (or this one): OpenFileMappingW."""
    _check_name(name)
    desired = (FILE_MAP_READ | FILE_MAP_WRITE if access == "rw" else FILE_MAP_READ) | SECTION_QUERY
    handle = api["OpenFileMappingW"](desired, 0, _wide(NAME_PREFIX + name))
    if not handle:
        code = ffi.getwinerror()[0]
        if code == ERROR_FILE_NOT_FOUND:
            raise FileNotFoundError(errno.ENOENT, f"no section named {name!r}: create it with "
                                    f"Section(size, name={name!r})")
        _fail(f"OpenFileMappingW({name!r})", code)
    try:
        size, large = _section_facts(handle)
    except BaseException:
        api["CloseHandle"](handle)
        raise
    page = huge_page_sizes()[0] if large and huge_page_sizes() else None
    return SectionHandle(_addr(handle), size, page, access, None, name)


# --------------------------------------------------------------------------------------------
# Views


# The order map_view tries the map calls in (tests narrow it to force a fallback).
MAP_CALLS = ("MapViewOfFile3", "MapViewOfFileExNuma", "MapViewOfFileNuma2")
_PROTECT = {"rw": PAGE_READWRITE, "r": PAGE_READONLY, "cow": PAGE_WRITECOPY}
_DESIRED = {"rw": FILE_MAP_WRITE | FILE_MAP_READ, "r": FILE_MAP_READ, "cow": FILE_MAP_COPY}


def map_with(call: str, section: SectionHandle, offset: int = 0, size: int = 0, *, access: str | None = None,
             node: int | None = None, address: int | None = None, replace_placeholder: bool = False) -> int:
    """Map a view of ``section`` with the named Windows call and return its address.

    ``call`` is one of MapViewOfFile3, MapViewOfFile3FromApp, MapViewOfFileExNuma,
    MapViewOfFileNuma2, MapViewOfFile2. ``node`` None means NUMA_NO_PREFERRED_NODE (no
    extended parameter for MapViewOfFile3; MapViewOfFile2 takes none). ``size`` 0 maps to the
    end of the section. Failures: MemoryError (commit), ValueError (error 87: a misaligned
    offset, a size past the section, an unknown node), OSError otherwise, NotImplementedError
    for a call this Windows lacks.
    """
    access = access or section.access
    if section.closed:
        raise ValueError("the section is closed")
    _check_view_request(section, offset, size, node)
    handle = _handle(section.handle)
    large = section.page_size is not None
    base = _ptr(address)
    preferred = NUMA_NO_PREFERRED_NODE if node is None else node
    allocation = (MEM_LARGE_PAGES if large else 0) | (MEM_REPLACE_PLACEHOLDER if replace_placeholder else 0)
    protect = _PROTECT[access]
    if call in ("MapViewOfFile3", "MapViewOfFile3FromApp"):
        params, count = _numa_parameter(MEM_EXTENDED_PARAMETER_NUMA_NODE, node)
        view = api[call](handle, _process(), base, offset, size, allocation, protect, params, count)
    elif call == "MapViewOfFileExNuma":
        desired = _DESIRED[access] | (FILE_MAP_LARGE_PAGES if large else 0)
        view = api[call](handle, desired, offset >> 32, offset & 0xFFFFFFFF, size, base, preferred)
    elif call == "MapViewOfFileNuma2":
        view = api[call](handle, _process(), offset, base, size, allocation, protect, preferred)
    elif call == "MapViewOfFile2":
        view = MapViewOfFile2(handle, _process(), offset, base, size, allocation, protect)
    else:
        raise ValueError(f"call={call!r} is not a map call")
    if not view:
        _fail(f"{call}({format_bytes(size) if size else 'whole section'} at offset {offset}"
              + (f", node {node}" if node is not None else "") + ")", bad_input=True)
    return _addr(view)


def _check_view_request(section: SectionHandle, offset: int, size: int, node: int | None) -> None:
    """The rules Windows enforces, checked first so that bad input gives ValueError (as on Linux)."""
    granularity = allocation_granularity()
    if offset < 0 or offset % granularity:
        raise ValueError(f"offset={offset} must be a multiple of the allocation granularity ({granularity})")
    if section.page_size is not None and (offset % section.page_size or size % section.page_size):
        raise ValueError(f"offset={offset} and size={size} must be multiples of the section's "
                         f"{page_size_name(section.page_size)} large pages")
    if offset >= section.size:
        raise ValueError(f"offset={offset} is at or beyond the end of the {section.size}-byte section")
    if size < 0 or offset + size > section.size:
        raise ValueError(f"offset={offset} + size={size} runs past the end of the {section.size}-byte section")
    if node is not None and node not in memory_nodes():
        raise ValueError(f"node {node} is unknown or has no memory: nodes with memory are "
                         f"{sorted(memory_nodes())}")


def _map_call() -> str:
    for call in MAP_CALLS:
        if available(call):
            return call
    raise NotImplementedError(f"none of {', '.join(MAP_CALLS)} is exported here: "
                              f"MapViewOfFileExNuma needs Windows Vista or later")


def _view_length(section: SectionHandle, offset: int, size: int) -> int:
    # Linux maps whole pages past a file's end; Windows refuses views beyond the section, and
    # rounds a view up to whole pages itself.
    return max(min(size, section.size - offset), 1)


def map_view(size: int, *, section: SectionHandle | None, offset: int, access: str,
             page_size: int | None, address: int | None, node: int | None = None) -> int:
    """Map ``size`` bytes of ``section`` (or fresh anonymous memory) and return the address.

    ``node`` is the preferred node, given to the map call itself (MapViewOfFile3's
    MemExtendedParameterNumaNode, or the nndPreferred of MapViewOfFileExNuma/MapViewOfFileNuma2).
    Anonymous memory is a pagefile-backed section (large pages with ``page_size``) mapped once;
    the view keeps it alive after its handle is closed. ``address`` lies in one of our
    reservations: a placeholder is split and replaced there, or without placeholders the racy
    fallback of ``_map_at_fallback`` is used.
    """
    own = None
    if section is None:
        own = section = create_section(size, page_size=page_size, access="rw")
    try:
        length = _view_length(section, offset, size)
        if address is None:
            return map_with(_map_call(), section, offset, length, access=access, node=node)
        if address % allocation_granularity():
            raise ValueError(f"address={address:#x} must be a multiple of the allocation granularity "
                             f"({allocation_granularity()}) on Windows")
        if _placeholders():
            return _map_into_placeholder(section, offset, length, access, node, address, size)
        return _map_at_fallback(section, offset, length, access, node, address, size)
    finally:
        if own is not None:
            own.close()


def _map_into_placeholder(section, offset, length, access, node, address, span) -> int:
    """Split the placeholder around ``[address, address+span)`` and map the view in its place."""
    start, end, state, _ = _allocation_span(address)
    if state != MEM_RESERVE or address + span > end:
        raise ValueError(f"address={address:#x} (+{span} bytes) is not inside one free placeholder of "
                         "the reservation")
    split = MEM_RELEASE | MEM_PRESERVE_PLACEHOLDER
    if start < address:
        _check(api["VirtualFree"](_ptr(start), address - start, split), "splitting a placeholder")
    if address + span < end:
        _check(api["VirtualFree"](_ptr(address), span, split), "splitting a placeholder")
    return map_with("MapViewOfFile3", section, offset, length, access=access, node=node,
                    address=address, replace_placeholder=True)


def _reserve_at(address: int, size: int) -> bool:
    """Reserve exactly ``[address, address+size)``; False when something else holds part of it."""
    if size <= 0:
        return True
    got = api["VirtualAlloc"](_ptr(address), size, MEM_RESERVE, PAGE_NOACCESS)
    if got and _addr(got) != address:
        api["VirtualFree"](got, 0, MEM_RELEASE)
        return False
    return bool(got)


def _map_at_fallback(section, offset, length, access, node, address, span) -> int:
    """Without placeholders: release the reservation piece that holds ``address``, map the view
    at ``address``, and reserve what is left of the piece again.

    This is racy: between the release and the map another thread of the process may allocate in
    the released range. The view's address is checked, a failed or misplaced attempt is undone
    (the piece reserved again) and retried up to FALLBACK_ATTEMPTS times; when the range cannot
    be reserved again, or every attempt lost the race, OSError is raised.
    """
    granularity = allocation_granularity()
    last = None
    for _attempt in range(FALLBACK_ATTEMPTS):
        start, end, state, kind = _allocation_span(address)
        if state == MEM_RESERVE and kind != MEM_MAPPED:
            if address + span > end:
                raise ValueError(f"address={address:#x} (+{span} bytes) runs past a free part of the "
                                 "reservation")
            _check(api["VirtualFree"](_ptr(start), 0, MEM_RELEASE), "releasing a reserved range")
            piece = (start, end)
        elif state == MEM_FREE:
            piece = None  # an earlier re-reservation lost its race: map into the hole directly
        else:
            raise OSError(None, f"address={address:#x} is in use by another mapping", None,
                          ERROR_INVALID_ADDRESS)
        try:
            got = map_with(_map_call(), section, offset, length, access=access, node=node, address=address)
        except OSError as exc:
            got, last = None, exc
        if got == address:
            if piece is not None:
                _reserve_at(piece[0], address - piece[0])
                tail = round_up(address + span, granularity)
                _reserve_at(tail, piece[1] - tail)
            return address
        if got is not None:
            api["UnmapViewOfFile"](_ptr(got))
        if piece is not None and not _reserve_at(piece[0], piece[1] - piece[0]):
            raise OSError(None, f"another allocation took the reserved range at {piece[0]:#x} while a view "
                          "was being mapped there (placeholders are missing, so this fallback is racy)",
                          None, ERROR_INVALID_ADDRESS)
        if last is not None and getattr(last, "winerror", None) != ERROR_INVALID_ADDRESS:
            raise last
    raise OSError(None, f"could not map at {address:#x} after {FALLBACK_ATTEMPTS} attempts: other "
                  "allocations kept taking the range (placeholders are missing here)", None,
                  ERROR_INVALID_ADDRESS)


def unmap_view(address: int, size: int) -> None:
    _check(api["UnmapViewOfFile"](_ptr(address)), f"UnmapViewOfFile({address:#x})")


def reserve_range(size: int, alignment: int) -> int:
    """Reserve ``size`` bytes of address space at a multiple of ``alignment``: a placeholder
    (VirtualAlloc2 MEM_RESERVE_PLACEHOLDER) where placeholders work, else a plain reservation;
    the alignment through MEM_ADDRESS_REQUIREMENTS."""
    kind = MEM_RESERVE | (MEM_RESERVE_PLACEHOLDER if _placeholders() else 0)
    if available("VirtualAlloc2"):
        params, count = ffi.NULL, 0
        if alignment > allocation_granularity():
            requirements = ffi.new("MEM_ADDRESS_REQUIREMENTS *")
            requirements.Alignment = alignment
            params = ffi.new("MEM_EXTENDED_PARAMETER[1]")
            params[0].TypeAndReserved = MEM_EXTENDED_PARAMETER_ADDRESS_REQUIREMENTS
            params[0].Pointer = requirements
            count = 1
        got = api["VirtualAlloc2"](_process(), ffi.NULL, size, kind, PAGE_NOACCESS, params, count)
        if not got:
            _fail(f"reserving {format_bytes(size)} of address space", bad_input=False)
        address = _addr(got)
        if address % alignment:  # pragma: no cover - an OS that ignored the requirement
            api["VirtualFree"](got, 0, MEM_RELEASE)
            raise OSError(None, f"VirtualAlloc2 ignored the {alignment}-byte alignment", None, 0)
        return address
    for _attempt in range(FALLBACK_ATTEMPTS):  # no VirtualAlloc2: over-reserve, then re-reserve
        got = api["VirtualAlloc"](ffi.NULL, size + alignment, MEM_RESERVE, PAGE_NOACCESS)
        if not got:
            _fail(f"reserving {format_bytes(size)} of address space")
        api["VirtualFree"](got, 0, MEM_RELEASE)
        aligned = round_up(_addr(got), alignment)
        if _reserve_at(aligned, size):
            return aligned
    raise OSError(None, "could not reserve an aligned range: other allocations kept taking it", None, 0)


def return_to_reservation(address: int, size: int) -> None:
    """Unmap a view inside a reservation and keep its range reserved: UnmapViewOfFileEx with
    MEM_PRESERVE_PLACEHOLDER, or (no placeholders) unmap then reserve it again, which another
    allocation may win: the range then stays free and a later map there maps into the hole."""
    if _placeholders():
        _check(api["UnmapViewOfFileEx"](_ptr(address), MEM_PRESERVE_PLACEHOLDER),
               "UnmapViewOfFileEx(MEM_PRESERVE_PLACEHOLDER)")
        return
    unmap_view(address, size)
    _reserve_at(address, round_up(size, allocation_granularity()))


def release_range(address: int, size: int) -> None:
    """Give a reservation back: coalesce its placeholders and free them (or free each piece)."""
    if _placeholders() and api["VirtualFree"](_ptr(address), size, MEM_RELEASE | MEM_COALESCE_PLACEHOLDERS):
        if api["VirtualFree"](_ptr(address), 0, MEM_RELEASE):
            return
    _release_allocations(address, size)


# --------------------------------------------------------------------------------------------
# Placement


def set_policy(address: int, size: int, policy: str, nodes: tuple[int, ...], *, move: bool = False) -> None:
    """Check a placement request: on Windows the node went to the map call already.

    One node (preferred, bind, or interleave over one node) is what Windows offers: a preferred
    node per view, which ``View.verify`` can check. Several nodes have no Windows equivalent:
    OSError (map one view per node instead).
    """
    if policy not in ("preferred", "bind", "interleave"):
        raise ValueError(f"policy={policy!r} is not one of 'preferred', 'bind', 'interleave'")
    known = memory_nodes()
    for node in nodes:
        if node not in known:
            raise ValueError(f"node {node} is unknown or has no memory: nodes with memory are {sorted(known)}")
    if move:
        move_range(address, size, nodes[0])
    if len(nodes) > 1:
        raise OSError(errno.EOPNOTSUPP, f"Windows gives a view one preferred node; policy={policy!r} over "
                      f"nodes {list(nodes)} has no Windows equivalent: map one view per node")


def advise_thp(address: int, size: int, enable: bool) -> None:
    """Windows has no transparent huge pages: nothing to do."""


class _Bytes:
    def __init__(self, address: int, size: int, readonly: bool = False):
        self.__array_interface__ = {"shape": (size,), "typestr": "|u1", "version": 3,
                                    "data": (address, readonly)}


def populate(address: int, size: int, page_size: int) -> None:
    """Fault every page in now, for writing (read and write back one byte per page)."""
    step = min(page_size, base_page_size())
    pages = np.asarray(_Bytes(address, size))[::step]
    np.bitwise_or(pages, 0, out=pages)


def _working_set(address: int, count: int, stride: int) -> np.ndarray:
    """QueryWorkingSetEx attributes of ``count`` addresses ``stride`` bytes apart."""
    out = np.empty(count, dtype=np.uint64)
    for first in range(0, count, _QUERY_CHUNK):
        n = min(_QUERY_CHUNK, count - first)
        entries = np.zeros((n, 2), dtype=np.uint64)
        start = address + first * stride
        entries[:, 0] = np.arange(start, start + n * stride, stride, dtype=np.uint64)
        _check(api["K32QueryWorkingSetEx"](_process(), ffi.from_buffer(entries), entries.nbytes),
               "QueryWorkingSetEx")
        out[first:first + n] = entries[:, 1]
    return out


def page_nodes(address: int, size: int, page_size: int) -> np.ndarray:
    """Node of each ``page_size`` page (QueryWorkingSetEx Node bits 16-21); -1 where the page is
    not valid in this process (not touched yet, or paged out)."""
    count = -(-size // page_size)
    attributes = _working_set(address, count, page_size)
    valid = (attributes & np.uint64(1)).astype(bool)
    nodes = ((attributes >> np.uint64(16)) & np.uint64(0x3F)).astype(np.int32)
    return np.where(valid, nodes, np.int32(-1)).astype(np.int32)


def page_size_breakdown(address: int, size: int) -> dict[int, int]:
    """Bytes of the range by page size: QueryWorkingSetEx's LargePage bit (23) per base page;
    pages not yet touched count as base pages."""
    base = base_page_size()
    count = -(-size // base)
    attributes = _working_set(address - address % base, count, base)
    large = int(np.count_nonzero((attributes & np.uint64(1)) & (attributes >> np.uint64(23)) & np.uint64(1)))
    result = {base: (count - large) * base}
    if large and huge_page_sizes():
        result[huge_page_sizes()[0]] = large * base
    return {k: v for k, v in sorted(result.items()) if v > 0}


def move_range(address: int, size: int, node: int) -> None:
    """Windows cannot move the pages of a view to another node."""
    raise NotImplementedError("Windows cannot move a view's pages between nodes: copy the array with "
                              f"numamap.asarray(a, node={node}) instead")
