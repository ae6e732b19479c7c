"""Reservations: address space held for views, with placeholders where Windows has them.

With placeholders (Windows 10 1803 and later), a reservation is
``VirtualAlloc2(MEM_RESERVE | MEM_RESERVE_PLACEHOLDER)`` aligned by MEM_ADDRESS_REQUIREMENTS.
A view at an address splits the placeholder (``VirtualFree(MEM_RELEASE |
MEM_PRESERVE_PLACEHOLDER)``) so that one placeholder covers the view's whole pages exactly, then
replaces it (``MapViewOfFile3(MEM_REPLACE_PLACEHOLDER)`` with the same address and size: the
page requires both to "exactly match those of the placeholder"). Unmapping keeps the placeholder
(``UnmapViewOfFileEx(MEM_PRESERVE_PLACEHOLDER)``); releasing coalesces
(``MEM_COALESCE_PLACEHOLDERS``) and frees. Support is probed once by behaviour.

Without them (older Windows, Wine) the reservation is plain, and a view at an address is mapped
after releasing the piece of reservation that holds it: racy, see :func:`map_at_fallback`.
"""
from __future__ import annotations

from . import _windows_exports as _exports
from . import _windows_sections as _sections
from ._units import format_bytes, round_up
from ._windows_errors import ERROR_INVALID_ADDRESS, check, fail
from ._windows_exports import (INVALID_HANDLE_VALUE, MEM_COALESCE_PLACEHOLDERS,
                               MEM_EXTENDED_PARAMETER_ADDRESS_REQUIREMENTS, MEM_FREE, MEM_MAPPED,
                               MEM_PRESERVE_PLACEHOLDER, MEM_RELEASE, MEM_REPLACE_PLACEHOLDER, MEM_RESERVE,
                               MEM_RESERVE_PLACEHOLDER, NUMA_NO_PREFERRED_NODE, PAGE_NOACCESS, PAGE_READWRITE,
                               SEC_COMMIT, addr, api, available, ffi, ptr)
from ._windows_large_pages import probe_lock, probe_results
from ._windows_topology import address_space, system_info

#: Attempts to map at a released reservation before giving up (the fallback's race).
FALLBACK_ATTEMPTS = 8
_SPLIT = MEM_RELEASE | MEM_PRESERVE_PLACEHOLDER


def query(address: int):
    """VirtualQuery's MEMORY_BASIC_INFORMATION for ``address``."""
    info = ffi.new("MEMORY_BASIC_INFORMATION *")
    if not api["VirtualQuery"](ptr(address), info, ffi.sizeof(info[0])):
        fail("VirtualQuery", f"{address:#x}")
    return info


def allocation_span(address: int) -> tuple[int, int, int, int]:
    """(start, end, state, type) of the allocation holding ``address`` (one placeholder, one
    reservation or one view), or of the free region there."""
    info = query(address)
    if int(info.State) == MEM_FREE:
        return addr(info.BaseAddress), addr(info.BaseAddress) + int(info.RegionSize), MEM_FREE, 0
    start = addr(info.AllocationBase)
    whole = query(start)
    return start, start + int(whole.RegionSize), int(whole.State), int(whole.Type)


def release_allocations(address: int, size: int) -> None:
    """VirtualFree every reservation/placeholder that starts inside ``[address, address+size)``."""
    cursor, end = address, address + size
    while cursor < end:
        info = query(cursor)
        step = max(int(info.RegionSize), system_info()[0])
        base = addr(info.AllocationBase)
        if int(info.State) == MEM_RESERVE and int(info.Type) != MEM_MAPPED and address <= base < end:
            api["VirtualFree"](ptr(base), 0, MEM_RELEASE)
        cursor = addr(info.BaseAddress) + step


def _probe() -> tuple[bool, str]:
    """Reserve a placeholder, split it, map a view in place, unmap keeping the placeholder:
    each step must do what it says (Wine refuses the first with error 87 or fakes the last)."""
    needed = ("VirtualAlloc2", "MapViewOfFile3", "UnmapViewOfFileEx", "VirtualQuery")
    missing = [n for n in needed if not available(n)]
    if missing:
        return False, f"{', '.join(missing)} not exported"
    granularity = system_info()[1]
    base = api["VirtualAlloc2"](_exports.process(), ffi.NULL, 2 * granularity,
                                MEM_RESERVE | MEM_RESERVE_PLACEHOLDER, PAGE_NOACCESS, ffi.NULL, 0)
    if not base:
        return False, f"VirtualAlloc2(MEM_RESERVE_PLACEHOLDER) failed (winerror {_exports.last_error()})"
    address, section = addr(base), ffi.NULL
    try:
        if not api["VirtualFree"](base, granularity, _SPLIT):
            return False, f"splitting a placeholder failed (winerror {_exports.last_error()})"
        section = api["CreateFileMappingNumaW"](INVALID_HANDLE_VALUE, ffi.NULL, PAGE_READWRITE | SEC_COMMIT,
                                                0, granularity, ffi.NULL, NUMA_NO_PREFERRED_NODE)
        if not section:
            return False, "no pagefile section for the placeholder probe"
        view = api["MapViewOfFile3"](section, _exports.process(), base, 0, granularity, MEM_REPLACE_PLACEHOLDER,
                                     PAGE_READWRITE, ffi.NULL, 0)
        if addr(view) != address:
            if view:
                api["UnmapViewOfFile"](view)
            return False, "MapViewOfFile3(MEM_REPLACE_PLACEHOLDER) did not map at the placeholder"
        ffi.cast("volatile char *", view)[0] = b"\x01"
        if not api["UnmapViewOfFileEx"](view, MEM_PRESERVE_PLACEHOLDER):
            return False, "UnmapViewOfFileEx(MEM_PRESERVE_PLACEHOLDER) failed"
        if int(query(address).State) != MEM_RESERVE:
            return False, "UnmapViewOfFileEx(MEM_PRESERVE_PLACEHOLDER) dropped the placeholder"
        return True, "placeholders work"
    finally:
        for offset in (0, granularity):
            info = query(address + offset)
            if int(info.State) != MEM_FREE and int(info.Type) == MEM_MAPPED:
                api["UnmapViewOfFile"](ptr(address + offset))
        release_allocations(address, 2 * granularity)
        if section:
            api["CloseHandle"](section)


def status() -> tuple[bool, str]:
    """(real placeholders are used, why not), probed once."""
    with probe_lock:
        if "placeholders" not in probe_results:
            probe_results["placeholders"] = _probe()
        return probe_results["placeholders"]


def enabled() -> bool:
    return status()[0]


def map_into_placeholder(section, offset: int, size: int, access: str, node: int | None, address: int) -> int:
    """Split the placeholder so that one covers ``[address, address + whole pages)`` exactly,
    and replace it with the view. Split and replace use the same size: the view's whole pages."""
    span = _sections.whole_pages(section, offset, size)
    start, end, state, _ = allocation_span(address)
    if state != MEM_RESERVE or address + span > end:
        raise ValueError(f"address={address:#x} (+{span} bytes) is not inside one free placeholder of "
                         "the reservation")
    if start < address:
        check(api["VirtualFree"](ptr(start), address - start, _SPLIT), "VirtualFree",
              f"splitting the placeholder at {start:#x} before {address:#x}")
    if address + span < end:
        check(api["VirtualFree"](ptr(address), span, _SPLIT), "VirtualFree",
              f"splitting the placeholder at {address:#x} after {span} bytes")
    return _sections.map_with("MapViewOfFile3", section, offset, size, access=access, node=node,
                              address=address, replace_placeholder=True)


def _reserve_at(address: int, size: int) -> bool:
    """Reserve exactly ``[address, address+size)``; False when something else holds part of it."""
    if size <= 0:
        return True
    got = api["VirtualAlloc"](ptr(address), size, MEM_RESERVE, PAGE_NOACCESS)
    if got and addr(got) != address:
        api["VirtualFree"](got, 0, MEM_RELEASE)
        return False
    return bool(got)


def map_at_fallback(section, offset: int, size: int, access: str, node: int | None, address: int) -> int:
    """Without placeholders: release the reservation piece that holds ``address``, map the view
    at ``address``, and reserve what is left of the piece again.

    This is racy: between the release and the map another thread of the process may allocate in
    the released range. The view's address is checked, a failed or misplaced attempt is undone
    (the piece reserved again) and retried up to FALLBACK_ATTEMPTS times; when the range cannot
    be reserved again, or every attempt lost the race, OSError is raised.
    """
    granularity = system_info()[1]
    span = _sections.whole_pages(section, offset, size)
    last = None
    for _attempt in range(FALLBACK_ATTEMPTS):
        start, end, state, kind = allocation_span(address)
        if state == MEM_RESERVE and kind != MEM_MAPPED:
            if address + span > end:
                raise ValueError(f"address={address:#x} (+{span} bytes) runs past a free part of the "
                                 "reservation")
            check(api["VirtualFree"](ptr(start), 0, MEM_RELEASE), "VirtualFree", f"releasing {start:#x}")
            piece = (start, end)
        elif state == MEM_FREE:
            piece = None  # an earlier re-reservation lost its race: map into the hole directly
        else:
            raise OSError(None, f"address={address:#x} is in use by another mapping", None,
                          ERROR_INVALID_ADDRESS)
        try:
            got = _sections.map_with(_sections.map_call(), section, offset, size, access=access, node=node,
                                     address=address)
        except OSError as exc:
            got, last = None, exc
        if got == address:
            if piece is not None:
                _reserve_at(piece[0], address - piece[0])
                tail = round_up(address + span, granularity)
                _reserve_at(tail, piece[1] - tail)
            return address
        if got is not None:
            api["UnmapViewOfFile"](ptr(got))
        if piece is not None and not _reserve_at(piece[0], piece[1] - piece[0]):
            raise OSError(None, f"another allocation took the reserved range at {piece[0]:#x} while a view "
                          "was being mapped there (placeholders are missing, so this fallback is racy)",
                          None, ERROR_INVALID_ADDRESS)
        if last is not None and getattr(last, "winerror", None) != ERROR_INVALID_ADDRESS:
            raise last
    raise OSError(None, f"could not map at {address:#x} after {FALLBACK_ATTEMPTS} attempts: other "
                  "allocations kept taking the range (placeholders are missing here)", None,
                  ERROR_INVALID_ADDRESS)


def reserve_range(size: int, alignment: int) -> int:
    """Reserve ``size`` bytes at a multiple of ``alignment``: a placeholder where placeholders
    work, else a plain reservation; the alignment through MEM_ADDRESS_REQUIREMENTS."""
    space = address_space()
    if size + alignment > space:  # VirtualAlloc2 would say 87; Linux's mmap says ENOMEM
        raise MemoryError(f"reserving {format_bytes(size)} aligned to {format_bytes(alignment)}: more than the "
                          f"{format_bytes(space)} of address space a process has")
    kind = MEM_RESERVE | (MEM_RESERVE_PLACEHOLDER if enabled() else 0)
    if available("VirtualAlloc2"):
        params, count = ffi.NULL, 0
        if alignment > system_info()[1]:
            requirements = ffi.new("MEM_ADDRESS_REQUIREMENTS *")
            requirements.Alignment = alignment
            params = ffi.new("MEM_EXTENDED_PARAMETER[1]")
            params[0].TypeAndReserved = MEM_EXTENDED_PARAMETER_ADDRESS_REQUIREMENTS
            params[0].Pointer = requirements
            count = 1
        got = api["VirtualAlloc2"](_exports.process(), ffi.NULL, size, kind, PAGE_NOACCESS, params, count)
        if not got:
            fail("VirtualAlloc2", f"reserving {format_bytes(size)} aligned to {format_bytes(alignment)}")
        address = addr(got)
        if address % alignment:  # pragma: no cover - an OS that ignored the requirement
            api["VirtualFree"](got, 0, MEM_RELEASE)
            raise OSError(None, f"VirtualAlloc2 ignored the {alignment}-byte alignment", None, 0)
        return address
    for _attempt in range(FALLBACK_ATTEMPTS):  # no VirtualAlloc2: over-reserve, then re-reserve
        got = api["VirtualAlloc"](ffi.NULL, size + alignment, MEM_RESERVE, PAGE_NOACCESS)
        if not got:
            fail("VirtualAlloc", f"reserving {format_bytes(size)}")
        api["VirtualFree"](got, 0, MEM_RELEASE)
        aligned = round_up(addr(got), alignment)
        if _reserve_at(aligned, size):
            return aligned
    raise OSError(None, "could not reserve an aligned range: other allocations kept taking it", None, 0)


def unmap(address: int) -> None:
    check(api["UnmapViewOfFile"](ptr(address)), "UnmapViewOfFile", f"{address:#x}")


def return_to_reservation(address: int, size: int) -> None:
    """Unmap a view inside a reservation and keep its range reserved: UnmapViewOfFileEx with
    MEM_PRESERVE_PLACEHOLDER, or (no placeholders) unmap then reserve it again, which another
    allocation may win: the range then stays free and a later map there maps into the hole."""
    if enabled():
        check(api["UnmapViewOfFileEx"](ptr(address), MEM_PRESERVE_PLACEHOLDER), "UnmapViewOfFileEx",
              f"{address:#x}, keeping the placeholder")
        return
    unmap(address)
    _reserve_at(address, round_up(size, system_info()[1]))


def release_range(address: int, size: int) -> None:
    """Give a reservation back: coalesce its placeholders and free them (or free each piece)."""
    if enabled() and api["VirtualFree"](ptr(address), size, MEM_RELEASE | MEM_COALESCE_PLACEHOLDERS):
        if api["VirtualFree"](ptr(address), 0, MEM_RELEASE):
            return
    release_allocations(address, size)
