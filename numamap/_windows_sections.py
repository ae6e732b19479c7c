"""Sections (file mapping objects) and views of them.

* A section is CreateFileMapping2's (with a NumaNode section parameter when a node is given) or
  CreateFileMappingNumaW's: pagefile-backed (``SEC_COMMIT``, ``SEC_LARGE_PAGES`` for large
  pages) or over a file; a name makes it openable with OpenFileMappingW, in the ``Local\\``
  namespace as ``numamap.<name>``.
* A view is MapViewOfFile3's (the node as a MemExtendedParameterNumaNode), else
  MapViewOfFileExNuma's, else MapViewOfFileNuma2's (``MAP_CALLS`` is the order), with the node
  as the call's preferred node.

Sizes. MapViewOfFile3's page says the view size "must always be a multiple of the page size",
so views are whole pages: :func:`view_size` rounds up, and a view that reaches into the last
partial page of a section maps to the section's end (size 0) instead, which the memory manager
maps as whole pages too. Pagefile-backed sections are created in whole pages for that reason
(``SectionHandle.size`` stays the size asked for; ``extent`` is what the OS section holds).

Windows answers a view that runs past the end of its section with error 5
(ERROR_ACCESS_DENIED), not 87: :func:`check_view_request` refuses such requests first with
ValueError. A file's section may outlive the file's length (a network file truncated by another
machine): each map checks the file's size, so a view never starts past the end of the file at
map time. Pages that fail to read in later (a network error, a file truncated meanwhile) raise
the structured exception EXCEPTION_IN_PAGE_ERROR in the thread that touches them, which Python
cannot catch: the process ends, as with SIGBUS on Linux (see docs/windows.md).
"""
from __future__ import annotations

import errno
import os
from dataclasses import dataclass, field

from . import _windows_exports as _exports
from ._units import file_section_size, format_bytes, page_size_name, round_up
from ._windows_errors import ERROR_ALREADY_EXISTS, fail
from ._windows_exports import (FILE_MAP_ALL_ACCESS, FILE_MAP_COPY, FILE_MAP_LARGE_PAGES, FILE_MAP_READ,
                               FILE_MAP_WRITE, INVALID_HANDLE_VALUE, MEM_EXTENDED_PARAMETER_NUMA_NODE,
                               MEM_LARGE_PAGES, MEM_REPLACE_PLACEHOLDER, MEM_SECTION_EXTENDED_PARAMETER_NUMA_NODE,
                               NUMA_NO_PREFERRED_NODE, PAGE_READONLY, PAGE_READWRITE, PAGE_WRITECOPY,
                               SEC_COMMIT, SEC_LARGE_PAGES, SECTION_QUERY, MapViewOfFile2, addr, api,
                               available, ffi, handle, process, ptr, wide)
from . import _windows_large_pages as _large_pages
from ._windows_topology import memory_nodes, system_info

NAME_PREFIX = "Local\\numamap."
#: The order new sections and views try the calls in (tests narrow them to force a fallback).
SECTION_CALLS = ("CreateFileMapping2", "CreateFileMappingNumaW")
MAP_CALLS = ("MapViewOfFile3", "MapViewOfFileExNuma", "MapViewOfFileNuma2")
#: The map calls whose pages document MEM_REPLACE_PLACEHOLDER.
REPLACING_CALLS = ("MapViewOfFile3", "MapViewOfFile3FromApp")
_ALL_MAP_CALLS = REPLACING_CALLS + ("MapViewOfFileExNuma", "MapViewOfFileNuma2", "MapViewOfFile2")
_PROTECT = {"rw": PAGE_READWRITE, "r": PAGE_READONLY, "cow": PAGE_WRITECOPY}
_DESIRED = {"rw": FILE_MAP_WRITE | FILE_MAP_READ, "r": FILE_MAP_READ, "cow": FILE_MAP_COPY}


@dataclass
class SectionHandle:
    """A file mapping object (section): pagefile-backed or over a file.

    ``size`` is the size asked for (what Section.size reports); ``extent`` the bytes the OS
    section holds, which views may cover (whole pages for pagefile sections). ``fd`` keeps a
    file section's file open, to check its length at each map.
    """

    handle: int
    size: int
    page_size: int | None  # None: base pages
    access: str
    path: str | None = None
    name: str | None = None
    extent: int = 0
    fd: int | None = None
    closed: bool = field(default=False)

    def __post_init__(self):
        self.extent = self.extent or self.size

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        api["CloseHandle"](handle(self.handle))
        if self.fd is not None:
            os.close(self.fd)


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
    """(handle, GetLastError) of a new section; the node goes to the section call itself."""
    api["SetLastError"](0)
    call = next((c for c in SECTION_CALLS if available(c)), SECTION_CALLS[-1])
    if call == "CreateFileMapping2":
        params, count = _numa_parameter(MEM_SECTION_EXTENDED_PARAMETER_NUMA_NODE, node)
        access = FILE_MAP_ALL_ACCESS if protect != PAGE_READONLY else FILE_MAP_READ | SECTION_QUERY
        got = api[call](file_handle, ffi.NULL, access, protect, attributes, size, wide(name), params, count)
    else:
        got = api[call](file_handle, ffi.NULL, protect | attributes, size >> 32, size & 0xFFFFFFFF,
                        wide(name), NUMA_NO_PREFERRED_NODE if node is None else node)
    code = _exports.last_error()
    if not got:
        fail(call, format_bytes(size) + (f", node {node}" if node is not None else ""), code)
    return got, code


def _check_name(name: str) -> None:
    if not name or any(c in name for c in "/\\\0") or name in (".", ".."):
        raise ValueError(f"name={name!r} must be a non-empty string without '/' or '\\'")


def new_section(size: int, *, page_size: int | None, access: str, path: str | None = None,
                fd: int | None = None, name: str | None = None, node: int | None = None) -> SectionHandle:
    """A new section (see ``numamap.Section``): over a file (``path``/``fd``; a larger ``size``
    extends it) or pagefile-backed, in whole pages, with large pages for ``page_size``.

    ``node`` is the section's preferred node (CreateFileMapping2's NumaNode parameter or
    CreateFileMappingNumaW's nndPreferred): a large-page section allocates its pages when it
    is created, so its node must be given here, not only to the view.
    """
    if node is not None and node not in memory_nodes():
        raise ValueError(f"node {node} is unknown or has no memory: nodes with memory are "
                         f"{sorted(memory_nodes())}")
    if path is not None or fd is not None:
        import msvcrt

        flags = (os.O_RDWR if access == "rw" else os.O_RDONLY) | getattr(os, "O_BINARY", 0)
        own_fd = os.dup(fd) if fd is not None else os.open(path, flags)
        try:
            size = file_section_size(size, os.fstat(own_fd).st_size, access)
            got, _ = _create_mapping(handle(msvcrt.get_osfhandle(own_fd)), size, _PROTECT[access], 0, None, node)
        except BaseException:
            os.close(own_fd)
            raise
        return SectionHandle(addr(got), size, None, access, path, fd=own_fd)

    attributes, page = SEC_COMMIT, system_info()[0]
    if page_size is not None:
        _large_pages.require(page_size)
        size, page = round_up(size, page_size), page_size
        attributes |= SEC_LARGE_PAGES
    full_name = None
    if name is not None:
        _check_name(name)
        full_name = NAME_PREFIX + name
    extent = round_up(size, page)
    got, code = _create_mapping(INVALID_HANDLE_VALUE, extent, PAGE_READWRITE, attributes, full_name, node)
    if name is not None and code == ERROR_ALREADY_EXISTS:
        api["CloseHandle"](got)
        raise FileExistsError(errno.EEXIST, f"a section named {name!r} exists already: "
                              "open it with Section.open(name) or pick another name")
    return SectionHandle(addr(got), size, page_size, access, None, name, extent=extent)


def _section_facts(section_handle) -> tuple[int, bool]:
    """(size, large pages?) of an opened section: NtQuerySection, else map it and VirtualQuery."""
    if available("NtQuerySection"):
        info = ffi.new("SECTION_BASIC_INFORMATION *")
        status = api["NtQuerySection"](section_handle, 0, info, ffi.sizeof(info[0]), ffi.NULL)
        if status == 0 and info.MaximumSize > 0:
            return int(info.MaximumSize), bool(int(info.AllocationAttributes) & SEC_LARGE_PAGES)
    view = api["MapViewOfFileExNuma"](section_handle, FILE_MAP_READ, 0, 0, 0, ffi.NULL, NUMA_NO_PREFERRED_NODE)
    if not view:
        fail("MapViewOfFileExNuma", "mapping the opened section to learn its size")
    try:
        info = ffi.new("MEMORY_BASIC_INFORMATION *")
        if not api["VirtualQuery"](view, info, ffi.sizeof(info[0])):
            fail("VirtualQuery", "the opened section's view")
        return int(info.RegionSize), False
    finally:
        api["UnmapViewOfFile"](view)


def open_section(name: str, access: str) -> SectionHandle:
    """Open a named section (OpenFileMappingW); a large-page one enables SeLockMemoryPrivilege,
    which mapping its views needs (PermissionError with instructions without the right)."""
    _check_name(name)
    desired = (FILE_MAP_READ | FILE_MAP_WRITE if access == "rw" else FILE_MAP_READ) | SECTION_QUERY
    got = api["OpenFileMappingW"](desired, 0, wide(NAME_PREFIX + name))
    if not got:
        fail("OpenFileMappingW", f"no section named {name!r}")
    try:
        size, large = _section_facts(got)
        sizes = _large_pages.sizes()
        page = sizes[0] if large and sizes else None
        if page is not None:
            _large_pages.enable_lock_memory_privilege()
    except BaseException:
        api["CloseHandle"](got)
        raise
    return SectionHandle(addr(got), size, page, access, None, name)


def _file_size(section: SectionHandle) -> int | None:
    return os.fstat(section.fd).st_size if section.fd is not None else None


def check_view_request(section: SectionHandle, offset: int, size: int, node: int | None) -> None:
    """The rules Windows enforces, checked first so that bad input gives ValueError (as on
    Linux) rather than error 87, or error 5 for a view past the end of its section."""
    if section.closed:
        raise ValueError("the section is closed")
    granularity = system_info()[1]
    if offset < 0 or offset % granularity:
        raise ValueError(f"offset={offset} must be a multiple of the allocation granularity ({granularity})")
    if section.page_size is not None and (offset % section.page_size or size % section.page_size):
        raise ValueError(f"offset={offset} and size={size} must be multiples of the section's "
                         f"{page_size_name(section.page_size)} large pages")
    if offset >= section.size:
        raise ValueError(f"offset={offset} is at or beyond the end of the {section.size}-byte section")
    # A view may end anywhere in the section's last page (the upper layers ask for whole pages)
    if size < 0 or offset + size > round_up(section.size, page_of(section)):
        raise ValueError(f"offset={offset} + size={size} runs past the end of the {section.size}-byte section")
    wanted = min(size or section.size, section.size - offset)
    file_size = _file_size(section)
    if file_size is not None and offset + wanted > file_size:
        raise ValueError(f"the section's file is {file_size} bytes now (it was {section.size}): a view of "
                         f"{wanted} bytes at offset={offset} would run past its end, and touching those "
                         "pages would end the process (EXCEPTION_IN_PAGE_ERROR)")
    if node is not None and node not in memory_nodes():
        raise ValueError(f"node {node} is unknown or has no memory: nodes with memory are "
                         f"{sorted(memory_nodes())}")


def page_of(section: SectionHandle) -> int:
    """The page size a view of ``section`` is made of."""
    return section.page_size or system_info()[0]


def whole_pages(section: SectionHandle, offset: int, size: int) -> int:
    """``size`` bytes at ``offset`` (0: to the section's end) rounded up to whole pages."""
    return round_up(size or section.size - offset, page_of(section))


def view_size(section: SectionHandle, offset: int, size: int) -> int:
    """The ViewSize to pass: whole pages, or 0 (to the end) where whole pages would run past
    the OS section (a file whose length is not a page multiple)."""
    rounded = whole_pages(section, offset, size)
    return rounded if offset + rounded <= section.extent else 0


def map_with(call: str, section: SectionHandle, offset: int = 0, size: int = 0, *, access: str | None = None,
             node: int | None = None, address: int | None = None, replace_placeholder: bool = False) -> int:
    """Map a view of ``section`` with the named Windows call and return its address.

    ``call``: MapViewOfFile3, MapViewOfFile3FromApp, MapViewOfFileExNuma, MapViewOfFileNuma2 or
    MapViewOfFile2 (which takes no node). ``node`` None means NUMA_NO_PREFERRED_NODE (no extended
    parameter for MapViewOfFile3). ``size`` 0 maps to the end of the section; other sizes are
    rounded up to whole pages (see :func:`view_size`). ``replace_placeholder`` passes
    MEM_REPLACE_PLACEHOLDER, which only MapViewOfFile3 and MapViewOfFile3FromApp document: the
    others refuse it with ValueError. ``address`` and the view must then match the placeholder
    exactly (the caller splits it to the view's size first).

    Failures: ValueError for a request Windows would refuse (checked first: a misaligned
    offset, a view past the section's end, which Windows would answer with error 5, an unknown
    node), MemoryError (commit), OSError with ``winerror`` otherwise, NotImplementedError for a
    call this Windows lacks.
    """
    if call not in _ALL_MAP_CALLS:
        raise ValueError(f"call={call!r} is not one of {', '.join(_ALL_MAP_CALLS)}")
    if replace_placeholder and call not in REPLACING_CALLS:
        raise ValueError(f"replace_placeholder=True: {call} does not document MEM_REPLACE_PLACEHOLDER; "
                         f"use {' or '.join(REPLACING_CALLS)}")
    if call == "MapViewOfFile2" and node is not None:
        raise ValueError("MapViewOfFile2 takes no node: use MapViewOfFileNuma2 or MapViewOfFile3")
    access = access or section.access
    check_view_request(section, offset, size, node)
    length = whole_pages(section, offset, size) if replace_placeholder else view_size(section, offset, size)
    section_handle, base = handle(section.handle), ptr(address)
    large = section.page_size is not None
    preferred = NUMA_NO_PREFERRED_NODE if node is None else node
    allocation = (MEM_LARGE_PAGES if large else 0) | (MEM_REPLACE_PLACEHOLDER if replace_placeholder else 0)
    protect = _PROTECT[access]
    if call in REPLACING_CALLS:
        params, count = _numa_parameter(MEM_EXTENDED_PARAMETER_NUMA_NODE, node)
        view = api[call](section_handle, process(), base, offset, length, allocation, protect, params, count)
    elif call == "MapViewOfFileExNuma":
        desired = _DESIRED[access] | (FILE_MAP_LARGE_PAGES if large else 0)
        view = api[call](section_handle, desired, offset >> 32, offset & 0xFFFFFFFF, length, base, preferred)
    elif call == "MapViewOfFileNuma2":
        view = api[call](section_handle, process(), offset, base, length, allocation, protect, preferred)
    else:
        view = MapViewOfFile2(section_handle, process(), offset, base, length, allocation, protect)
    if not view:
        fail(call, f"{format_bytes(length) if length else 'to the end'} at offset {offset}"
             + (f", node {node}" if node is not None else "") + (f", at {address:#x}" if address else ""))
    return addr(view)


def map_call() -> str:
    """The first of MAP_CALLS this Windows exports."""
    for call in MAP_CALLS:
        if available(call):
            return call
    raise NotImplementedError(f"none of {', '.join(MAP_CALLS)} is exported here: "
                              "MapViewOfFileExNuma needs Windows Vista or later")
