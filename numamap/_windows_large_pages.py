"""Large pages on Windows: the "Lock pages in memory" right, and a probe of what really works.

A large page (GetLargePageMinimum(), 2 MiB on x64) needs SeLockMemoryPrivilege enabled in the
process token; AdjustTokenPrivileges succeeds with error 1300 (ERROR_NOT_ALL_ASSIGNED) when the
account lacks the right. Windows has no huge-page pools: large pages come from free physical
memory, and fail with ERROR_NO_SYSTEM_RESOURCES/ERROR_NOT_ENOUGH_MEMORY when it is fragmented.

Whether they work is probed once by behaviour: a SEC_LARGE_PAGES section is mapped with
FILE_MAP_LARGE_PAGES, touched, and QueryWorkingSetEx must report its LargePage bit (Wine
"succeeds" with small pages).
"""
from __future__ import annotations

import errno
import threading

from . import _windows_exports as _exports
from ._units import page_size_name
from ._windows_errors import ERROR_NOT_ALL_ASSIGNED, check, fail
from ._windows_exports import (FILE_MAP_LARGE_PAGES, FILE_MAP_WRITE, INVALID_HANDLE_VALUE,
                               NUMA_NO_PREFERRED_NODE, PAGE_READWRITE, SE_LOCK_MEMORY_NAME,
                               SE_PRIVILEGE_ENABLED, SEC_COMMIT, SEC_LARGE_PAGES, TOKEN_ADJUST_PRIVILEGES,
                               TOKEN_QUERY, addr, api, available, ffi, wide)
from ._windows_working_set import LARGE_PAGE_BIT, attributes

probe_lock = threading.RLock()  # one probe at a time (large pages, placeholders)
#: Probe findings by name ('large_pages', 'placeholders'): (works, why). Tests set entries.
probe_results: dict[str, tuple[bool, str]] = {}


def sizes() -> tuple[int, ...]:
    """``(GetLargePageMinimum(),)``, or ``()`` where the processor has no large pages."""
    size = int(api["GetLargePageMinimum"]()) if available("GetLargePageMinimum") else 0
    return (size,) if size else ()


def enable_lock_memory_privilege() -> None:
    """Enable SeLockMemoryPrivilege in this process's token, or PermissionError saying how to
    grant "Lock pages in memory"."""
    token = ffi.new("HANDLE *")
    check(api["OpenProcessToken"](_exports.process(), TOKEN_ADJUST_PRIVILEGES | TOKEN_QUERY, token),
          "OpenProcessToken")
    try:
        privileges = ffi.new("TOKEN_PRIVILEGES *")
        privileges.PrivilegeCount = 1
        check(api["LookupPrivilegeValueW"](ffi.NULL, wide(SE_LOCK_MEMORY_NAME),
                                           ffi.addressof(privileges.Privileges[0], "Luid")),
              "LookupPrivilegeValueW", SE_LOCK_MEMORY_NAME)
        privileges.Privileges[0].Attributes = SE_PRIVILEGE_ENABLED
        api["SetLastError"](0)
        ok = api["AdjustTokenPrivileges"](token[0], 0, privileges, 0, ffi.NULL, ffi.NULL)
        code = _exports.last_error()
        if not ok or code == ERROR_NOT_ALL_ASSIGNED:  # TRUE with 1300: the account lacks the right
            fail("AdjustTokenPrivileges", SE_LOCK_MEMORY_NAME, code)
    finally:
        api["CloseHandle"](token[0])


def privilege_held() -> bool:
    """Whether SeLockMemoryPrivilege could be enabled."""
    try:
        enable_lock_memory_privilege()
    except (OSError, NotImplementedError):
        return False
    return True


def _probe() -> tuple[bool, str]:
    found = sizes()
    if not found:
        return False, "GetLargePageMinimum() is 0: this processor has no large pages"
    try:
        enable_lock_memory_privilege()
    except (OSError, NotImplementedError) as exc:
        return False, str(exc)
    size = found[0]
    api["SetLastError"](0)
    section = api["CreateFileMappingNumaW"](INVALID_HANDLE_VALUE, ffi.NULL,
                                            PAGE_READWRITE | SEC_COMMIT | SEC_LARGE_PAGES,
                                            0, size, ffi.NULL, NUMA_NO_PREFERRED_NODE)
    if not section:
        return False, f"a SEC_LARGE_PAGES section was refused (winerror {_exports.last_error()})"
    try:
        view = api["MapViewOfFileExNuma"](section, FILE_MAP_WRITE | FILE_MAP_LARGE_PAGES, 0, 0, size,
                                          ffi.NULL, NUMA_NO_PREFERRED_NODE)
        if not view:
            return False, f"a FILE_MAP_LARGE_PAGES view was refused (winerror {_exports.last_error()})"
        try:
            ffi.cast("volatile char *", view)[0] = b"\x01"
            found_bits = int(attributes(addr(view), 1, size)[0])
        finally:
            api["UnmapViewOfFile"](view)
    finally:
        api["CloseHandle"](section)
    if found_bits & 1 and found_bits >> LARGE_PAGE_BIT & 1:
        return True, "large pages work"
    return False, ("a SEC_LARGE_PAGES section mapped with FILE_MAP_LARGE_PAGES was given small "
                   "pages (QueryWorkingSetEx LargePage bit is 0; Wine does this)")


def status() -> tuple[bool, str]:
    """(large pages work here, why not), probed once."""
    with probe_lock:
        if "large_pages" not in probe_results:
            probe_results["large_pages"] = _probe()
        return probe_results["large_pages"]


def require(page_size: int) -> None:
    """Raise unless ``page_size`` large pages can be had now: ValueError for a size Windows does
    not serve, PermissionError without the right, OSError(EOPNOTSUPP) where they do not work."""
    if page_size not in sizes():
        raise ValueError(f"{page_size_name(page_size)} pages: Windows serves only "
                         f"{', '.join(page_size_name(s) for s in sizes()) or 'no'} large pages")
    enable_lock_memory_privilege()  # PermissionError with instructions when not granted
    works, reason = status()
    if not works:
        raise OSError(errno.EOPNOTSUPP, f"large pages are not available on this system: {reason}; "
                      "use page_size='4K'")
