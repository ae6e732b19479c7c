"""Windows backend: the names of the backend contract (``_contract.Backend``), and nothing else.

The work is done by one module per concern, all over the cffi ABI bindings of kernelbase and
kernel32 (``_windows_native.py``, generated; no compiler needed):

=============================  ===============================================================
``_windows_exports``           exports resolved one by one (a missing one is a Missing), constants
``_windows_errors``            the error boundary: one ErrorTable (call, winerror) -> exception
``_windows_topology``          nodes, CPUs across processor groups, free memory per node
``_windows_affinity``          thread and process affinity, CPUs numbered globally
``_windows_large_pages``       SeLockMemoryPrivilege, the large-page probe
``_windows_sections``          sections and views: CreateFileMapping*, MapViewOfFile*
``_windows_placeholders``      reservations: placeholders, or the racy fallback without them
``_windows_working_set``       QueryWorkingSetEx: each page's node and page size; populate
``_windows_arenas``            node arenas and the NEP 49 handler: _numamap_arena.dll (C, mingw)
=============================  ===============================================================

This module imports on any system: on Linux no DLL loads and every export is missing, so the
contract test can inspect it (calling anything that needs Windows raises NotImplementedError).
"""
from __future__ import annotations

import errno as _errno
import functools as _functools
from typing import Any, Callable, Sequence

import numpy as np

from . import _windows_affinity as _affinity
from . import _windows_large_pages as _large_pages
from . import _windows_placeholders as _placeholders
from . import _windows_sections as _sections
from . import _windows_topology as _topology
from . import _windows_working_set as _working_set
from ._records import NodeFacts, PoolFacts, TopologyFacts
from . import _windows_exports as _exports
from ._units import MiB as _MiB
from ._units import page_size_name as _page_size_name
from ._windows_errors import fail as _fail
from ._windows_exports import api as _api
from ._windows_exports import available as _available
from ._windows_exports import ffi as _ffi

PLATFORM = "windows"

# --------------------------------------------------------------------------------------------
# Facts about the machine


def base_page_size() -> int:
    """Bytes per base page (GetSystemInfo: 4 KiB on x64)."""
    return _topology.system_info()[0]


def allocation_granularity() -> int:
    """View offsets and view addresses must be multiples of this (64 KiB on Windows)."""
    return _topology.system_info()[1]


def huge_page_sizes(root: str = "/") -> tuple[int, ...]:
    """``(GetLargePageMinimum(),)``, or ``()`` where the processor has no large pages.

    The size existing says nothing about getting such pages: see ``capabilities()['large_pages']``.
    """
    return _large_pages.sizes()


def thp_mode(root: str = "/") -> str:
    """Windows has no transparent huge pages: 'unsupported'."""
    return "unsupported"


def shmem_thp_mode(root: str = "/") -> str:
    """Windows has no transparent huge pages for sections either: 'unsupported'."""
    return "unsupported"


def thp_page_size(root: str = "/") -> int:
    """Windows has no transparent huge pages: the large page size (GetLargePageMinimum) stands
    in, or 2 MiB by convention on a processor without large pages."""
    sizes = _large_pages.sizes()
    return sizes[0] if sizes else 2 * _MiB


def memory_nodes(root: str = "/") -> frozenset[int]:
    """Nodes with memory (GetNumaAvailableMemoryNodeEx; every known node where it fails)."""
    return _topology.memory_nodes()


def node_memory_free(node: int, root: str = "/") -> int | None:
    """Free bytes on ``node`` (GetNumaAvailableMemoryNodeEx), or None where Windows doesn't say."""
    return _topology.node_memory_free(node)


def hugepage_pool(page_size: int, node: int | None = None, root: str = "/") -> PoolFacts | None:
    """None unless large pages really work here (``capabilities()['large_pages']``); then the
    free memory of ``node`` (or the machine) counted in ``page_size`` pages: Windows has no
    pools, large pages come from free physical memory."""
    if page_size not in _large_pages.sizes() or not _large_pages.status()[0]:
        return None
    free = _topology.node_memory_free(node) if node is not None else None
    if free is None:
        status = _topology.memory_status()
        free = status[1] if status else 0
    pages = free // page_size
    return PoolFacts(page_size, pages, pages, node, "free physical memory (Windows has no large-page pool)",
                     "free memory on the node, or defragment it (large pages need contiguous memory); "
                     "the account needs the 'Lock pages in memory' right")


def read_topology(root: str = "/") -> TopologyFacts:
    """Topology facts from GetLogicalProcessorInformationEx and the GetNuma* calls.

    CPUs are numbered globally across processor groups (group base + number in the group).
    ``root`` is ignored (it points the Linux backend at synthetic sysfs trees). When Windows
    gives no NUMA information the result is one node 0 holding every CPU, and ``notes`` says so.
    """
    layout = _topology.numa_layout()
    notes = list(layout.notes)
    if root not in ("/", ""):
        notes.append(f"root={root!r} is ignored on Windows: the facts come from the running system")
    status = _topology.memory_status()
    sizes = _large_pages.sizes()
    large_works, why_not = _large_pages.status() if sizes else (False, "")
    single = len(layout.cpus) == 1
    nodes, unknown_free = [], []
    for node, cpus in layout.cpus.items():
        free = _topology.node_available(node)
        if free is None:
            unknown_free.append(node)
        has_memory = free != 0
        free = free if free is not None else (status[1] if (status and single) else 0)
        pools = tuple(p for p in (hugepage_pool(s, node) for s in sizes) if p) if large_works else ()
        nodes.append(NodeFacts(id=node, cpus=tuple(cpus), memory_total=status[0] if (status and single) else 0,
                               memory_free=free, distances=(10,) if single else (), hugepages=pools,
                               has_memory=has_memory, has_cpus=bool(cpus)))
    if unknown_free:
        notes.append(f"GetNumaAvailableMemoryNodeEx failed for nodes {unknown_free}"
                     + (": free memory is GlobalMemoryStatusEx's for the whole machine" if single else
                        ": their free memory is unknown (0)"))
    if not single:
        notes.append("Windows reports neither node distances nor each node's total memory: "
                     "distances are empty and memory_total is 0")
    if sizes:
        notes.append(f"large pages ({_page_size_name(sizes[0])}) come from free memory, not pools, and "
                     f"{'work here' if large_works else 'do not work here: ' + why_not}")
    ids = tuple(layout.cpus)
    with_memory = tuple(n.id for n in nodes if n.has_memory) or ids
    return TopologyFacts(nodes=tuple(nodes), online=ids, possible=ids, allowed_cpus=_affinity.process_cpus(),
                         allowed_memory_nodes=with_memory, thp_mode=thp_mode(),
                         granularity=allocation_granularity(), page_size=base_page_size(),
                         huge_page_sizes=sizes, source=layout.source, notes=tuple(notes), platform=PLATFORM)


#: Exports reported by capabilities() as flags of their own.
_EXPORT_FLAGS = ("CreateFileMappingNumaW", "CreateFileMapping2", "MapViewOfFileExNuma", "MapViewOfFileNuma2",
                 "MapViewOfFile3", "MapViewOfFile3FromApp", "UnmapViewOfFileEx", "VirtualAlloc2",
                 "GetNumaNodeProcessorMask2", "GetNumaProcessorNodeEx", "GetLogicalProcessorInformationEx",
                 "K32QueryWorkingSetEx", "SetThreadGroupAffinity")


@_functools.lru_cache(maxsize=None)
def capabilities() -> dict[str, bool]:
    """Exports present, and what works by behaviour (placeholders, large pages, NUMA facts).

    ``bind`` is False: the Windows calls offer a preferred node only, so ``policy='bind'``
    is a fallback to a preferred node, which the View layer records and warns about.
    """
    caps = {name: _available(name) for name in _EXPORT_FLAGS}
    caps["MapViewOfFile2"] = _available("MapViewOfFileNuma2")  # an inline over MapViewOfFileNuma2
    layout = _topology.cached_layout()
    caps["numa_info"] = layout.source != "fallback"
    caps["numa_memory_info"] = all(_topology.node_available(n) is not None for n in layout.cpus)
    caps["numa_policy"] = any(_available(n) for n in _sections.MAP_CALLS)  # a preferred node per view
    caps["bind"] = False
    caps["placeholders"] = _placeholders.enabled()
    caps["large_page_privilege"] = _large_pages.privilege_held()
    caps["large_pages"] = _large_pages.status()[0]
    caps["hugetlb"] = caps["large_pages"]
    caps["memfd"] = False
    caps["thp"] = False
    return caps


# --------------------------------------------------------------------------------------------
# Sections and views


def create_section(size: int, *, page_size: int | None, access: str, path: str | None = None,
                   fd: int | None = None, name: str | None = None) -> Any:
    """A pagefile-backed section (large pages with ``page_size``, openable by ``name``) or one
    over a file (``path`` or ``fd``); see ``numamap.Section``."""
    return _sections.new_section(size, page_size=page_size, access=access, path=path, fd=fd, name=name)


def open_section(name: str, access: str) -> Any:
    """Open a named section (OpenFileMappingW); enables SeLockMemoryPrivilege for large pages."""
    return _sections.open_section(name, access)


def map_view(size: int, *, section: Any, offset: int, access: str, page_size: int | None,
             address: int | None, node: int | None = None) -> int:
    """Map ``size`` bytes of ``section`` (or fresh anonymous memory) and return the address.

    ``node`` is the preferred node, given to the map call itself; anonymous memory is a
    pagefile-backed section created on ``node`` too (CreateFileMappingNumaW's nndPreferred:
    large pages are allocated when the section is made) and mapped once, the view keeping it
    alive. ``address`` lies in one of our reservations: the placeholder is split to the view's
    whole pages and replaced, or without placeholders the racy fallback is used.
    """
    own = None
    if section is None:
        own = section = _sections.new_section(size, page_size=page_size, access="rw", node=node)
    try:
        if address is None:
            return _sections.map_with(_sections.map_call(), section, offset, size, access=access, node=node)
        if address % allocation_granularity():
            raise ValueError(f"address={address:#x} must be a multiple of the allocation granularity "
                             f"({allocation_granularity()}) on Windows")
        if _placeholders.enabled():
            return _placeholders.map_into_placeholder(section, offset, size, access, node, address)
        return _placeholders.map_at_fallback(section, offset, size, access, node, address)
    finally:
        if own is not None:
            own.close()


def unmap_view(address: int, size: int) -> None:
    """UnmapViewOfFile."""
    _placeholders.unmap(address)


def reserve_range(size: int, alignment: int) -> int:
    """Reserve address space aligned to ``alignment`` (a placeholder where Windows has them)."""
    return _placeholders.reserve_range(size, alignment)


def release_range(address: int, size: int) -> None:
    """Give a whole reservation back."""
    _placeholders.release_range(address, size)


def return_to_reservation(address: int, size: int) -> None:
    """Unmap a view inside a reservation, keeping its range reserved."""
    _placeholders.return_to_reservation(address, size)


# --------------------------------------------------------------------------------------------
# Placement


def set_policy(address: int, size: int, policy: str, nodes: tuple[int, ...], *,
               move: bool = False) -> None:
    """Check a placement request: on Windows the node went to the map call already.

    Windows offers one preferred node per view. 'preferred', and 'interleave' over one node,
    are that; 'bind' is accepted as a preferred node too, and ``capabilities()['bind']`` is
    False so that the View layer records the fallback (and refuses it under strict=True).
    Several nodes have no Windows equivalent: OSError(EOPNOTSUPP) (map one view per node).
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
        raise OSError(_errno.EOPNOTSUPP, f"Windows gives a view one preferred node; policy={policy!r} over "
                      f"nodes {list(nodes)} has no Windows equivalent: map one view per node")


def advise_thp(address: int, size: int, enable: bool) -> None:
    """Windows has no transparent huge pages: nothing to do."""


def populate(address: int, size: int, page_size: int) -> None:
    """Fault every page in now, for writing."""
    _working_set.populate(address, size, page_size)


def page_nodes(address: int, size: int, page_size: int) -> np.ndarray:
    """Node of each ``page_size`` page (QueryWorkingSetEx); -1 where the page is not in the
    working set (never touched, or trimmed)."""
    return _working_set.page_nodes(address, size, page_size)


def page_size_breakdown(address: int, size: int) -> dict[int, int]:
    """Bytes of the range by page size (QueryWorkingSetEx's LargePage bit per base page; pages
    not touched yet count as base pages)."""
    large, small = _working_set.large_page_bytes(address, size)
    result = {base_page_size(): small}
    if large and huge_page_sizes():
        result[huge_page_sizes()[0]] = large
    return {k: v for k, v in sorted(result.items()) if v > 0}


def move_range(address: int, size: int, node: int) -> None:
    """Windows cannot move the pages of a view to another node: NotImplementedError."""
    raise NotImplementedError("Windows cannot move a view's pages between nodes: copy the array with "
                              f"numamap.asarray(a, node={node}) instead")


# --------------------------------------------------------------------------------------------
# Threads and processes


def pin_thread(cpus: Sequence[int]) -> tuple[int, ...]:
    """Pin the calling thread to ``cpus`` (SetThreadGroupAffinity); return the CPUs it got,
    which are those of one processor group when ``cpus`` span several."""
    return _affinity.pin_thread(cpus)


def pin_process(cpus: Sequence[int]) -> tuple[int, ...]:
    """Pin every thread of this process to ``cpus``; return the CPUs the caller got."""
    return _affinity.pin_process(cpus)


def allowed_cpus() -> tuple[int, ...]:
    """CPUs the calling thread may run on, numbered globally (group base + bit)."""
    return _affinity.allowed_cpus()


def current_cpu() -> int:
    """The CPU the calling thread runs on now (GetCurrentProcessorNumberEx: group base + number)."""
    get = _api.get("GetCurrentProcessorNumberEx")
    if not get:
        raise NotImplementedError("GetCurrentProcessorNumberEx is not exported by this system's "
                                  "kernelbase.dll or kernel32.dll (or not declared in numamap's "
                                  "bindings): it needs Windows 7 / Windows Server 2008 R2")
    number = _ffi.new("PROCESSOR_NUMBER *")
    get(number)
    return _topology.cpu_number(number.Group, number.Number)


def current_cpu() -> int:
    """The CPU the calling thread runs on now, numbered globally (group base + number)."""
    return _affinity.current_cpu()


# --------------------------------------------------------------------------------------------
# The node arenas and the NEP 49 memory handler: numamap's C core in _numamap_arena.dll

from ._windows_arenas import (ArenaBuffer, arena_block_info, arena_check, arena_configure,  # noqa: E402
                              arena_stats, arena_take, arena_trim, handler_block_info, handler_check,
                              handler_new, handler_stats)


# --------------------------------------------------------------------------------------------
# The benchmark's native helpers


def copy_bandwidth(cpus: Sequence[int], bytes_per_thread: int, repeat: int) -> list[float]:
    """NotImplementedError: the pinned memcpy threads are C built for Linux only."""
    raise NotImplementedError("the copy-bandwidth benchmark's pinned memcpy threads are a C module "
                              "built on Linux only (pthreads); numamap bench reports this row as "
                              "unavailable on Windows")


def handler_churn(capsules: Sequence[Any], pairs: int, max_size: int) -> float:
    """NotImplementedError: the threaded allocation benchmark is C for Linux (pthreads)."""
    raise NotImplementedError("the allocation-throughput benchmark's threads are Linux C (pthreads); "
                              "on Windows numamap bench reports that row as not measured")


def map_unmap_cost(nbytes: int) -> Callable[[], None]:
    """A callable that creates a pagefile-backed section of ``nbytes``, maps a view of it,
    unmaps it and closes the section: what numamap does for each array, once."""
    if nbytes <= 0:
        raise ValueError(f"nbytes={nbytes} must be positive")
    calls = ("CreateFileMappingNumaW", "MapViewOfFileExNuma", "UnmapViewOfFile", "CloseHandle")
    create, map_view_, unmap, close = (_api[name] for name in calls)
    for name in calls:
        if not _available(name):
            _api[name]()  # NotImplementedError naming the export and the Windows it needs

    def once() -> None:
        section = create(_exports.INVALID_HANDLE_VALUE, _ffi.NULL, _exports.PAGE_READWRITE | _exports.SEC_COMMIT,
                         nbytes >> 32, nbytes & 0xFFFFFFFF, _ffi.NULL, _exports.NUMA_NO_PREFERRED_NODE)
        if not section:
            _fail("CreateFileMappingNumaW", f"{nbytes} bytes")
        try:
            view = map_view_(section, _exports.FILE_MAP_READ | _exports.FILE_MAP_WRITE, 0, 0, nbytes,
                             _ffi.NULL, _exports.NUMA_NO_PREFERRED_NODE)
            if not view:
                _fail("MapViewOfFileExNuma", f"{nbytes} bytes")
            unmap(view)
        finally:
            close(section)

    return once



class MappedBuffer:
    """View's base class on Windows: the buffer protocol through ``__buffer__`` (Python 3.12+).

    The memoryview comes from the array numpy builds over the View (``__array__``), so it keeps
    the mapping alive however long it lives; ``_nm_exports`` is therefore always 0. Python hands
    numpy such a buffer through a wrapper object of its own, so an array made by
    ``np.asarray(view)`` here does not lead back to the View through ``.base`` (``view_of``
    finds nothing); ``view.ndarray(...)`` arrays do.
    """

    _nm_refuse = False
    _nm_exports = 0

    def _nm_set_buffer(self, address: int, length: int, readonly: bool, refuse: bool) -> None:
        self._nm_refuse = bool(refuse)

    def __buffer__(self, flags: int) -> memoryview:
        if self._nm_refuse:
            raise BufferError("numamap array views export their memory through __array_interface__")
        if getattr(self, "closed", False):
            raise BufferError("this numamap view maps no memory (closed)")
        return memoryview(self.__array__())
