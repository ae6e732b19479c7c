"""The Windows backend's error boundary: one ErrorTable from (call, Windows error) to exception.

Every failing Windows call in the backend raises through :func:`fail` (or :func:`check`), so
the same condition raises the same type as on Linux (``numamap._errors`` has the table of
types): ERROR_INVALID_PARAMETER is ValueError; ERROR_NOT_ENOUGH_MEMORY, ERROR_OUTOFMEMORY and
ERROR_COMMITMENT_LIMIT are MemoryError; ERROR_ACCESS_DENIED and ERROR_PRIVILEGE_NOT_HELD are
PermissionError; anything else is OSError carrying ``winerror``. The rules below add what a
user needs to know for one call and code.
"""
from __future__ import annotations

from . import _windows_exports as _exports
from ._errors import WINERROR_DEFAULTS, ErrorTable, Rule

ERROR_FILE_NOT_FOUND = 2
ERROR_ACCESS_DENIED = 5
ERROR_NOT_ENOUGH_MEMORY = 8
ERROR_OUTOFMEMORY = 14
ERROR_INVALID_PARAMETER = 87
ERROR_ALREADY_EXISTS = 183
ERROR_INVALID_ADDRESS = 487
ERROR_MAPPED_ALIGNMENT = 1132
ERROR_NOT_ALL_ASSIGNED = 1300
ERROR_PRIVILEGE_NOT_HELD = 1314
ERROR_NOT_SUPPORTED = 50
ERROR_NO_SYSTEM_RESOURCES = 1450
ERROR_COMMITMENT_LIMIT = 1455

#: The call name the arenas report when a large-page block (page_kind '2M' or '1G') is refused.
LARGE_PAGE_ALLOC = "nm_arena_alloc with MEM_LARGE_PAGES"

GRANT_LOCK_PAGES = (
    "large pages need the 'Lock pages in memory' right (SeLockMemoryPrivilege): run secpol.msc, "
    "open Local Policies > User Rights Assignment > Lock pages in memory, add your account, then "
    "log off and on again (an elevated process is not enough without it)")
_VIEW_TOO_BIG = ("Windows answers a view that runs past the end of its section with error 5 "
                 "(ERROR_ACCESS_DENIED), not 87; numamap checks sizes first, so this means the "
                 "section's file shrank or its access does not allow the view")
_MAP_CALLS = ("MapViewOfFile3", "MapViewOfFile3FromApp", "MapViewOfFileExNuma", "MapViewOfFileNuma2",
              "MapViewOfFile2")

_LARGE_PAGES_REFUSED = (
    "Windows refused large pages for this block; Wine always does (error 87). An explicit "
    "page_kind '2M' or '1G' is not replaced by other pages: ask for 'auto', which falls back")
_LARGE_PAGES_SHORT = ("no physically contiguous free memory for large pages now: free memory, or "
                      "ask for page_kind 'auto', which falls back")

_RULES = {
    # node arenas (_windows_arenas): an explicit large-page kind that cannot be had is MemoryError,
    # as a hugetlb pool that cannot serve is on Linux
    (LARGE_PAGE_ALLOC, ERROR_INVALID_PARAMETER): Rule(MemoryError, _LARGE_PAGES_REFUSED),
    (LARGE_PAGE_ALLOC, ERROR_NO_SYSTEM_RESOURCES): Rule(MemoryError, _LARGE_PAGES_SHORT),
    (LARGE_PAGE_ALLOC, ERROR_NOT_ENOUGH_MEMORY): Rule(MemoryError, _LARGE_PAGES_SHORT),
    (LARGE_PAGE_ALLOC, ERROR_PRIVILEGE_NOT_HELD): Rule(PermissionError, GRANT_LOCK_PAGES),
    (LARGE_PAGE_ALLOC, ERROR_NOT_SUPPORTED): Rule(
        OSError, "1 GiB pages need VirtualAlloc2 (Windows 10 / Windows Server 2016 and later)"),
    ("AdjustTokenPrivileges", ERROR_NOT_ALL_ASSIGNED): Rule(PermissionError, GRANT_LOCK_PAGES),
    ("AdjustTokenPrivileges", ERROR_PRIVILEGE_NOT_HELD): Rule(PermissionError, GRANT_LOCK_PAGES),
    ("OpenFileMappingW", ERROR_FILE_NOT_FOUND): Rule(
        FileNotFoundError, "create the section first with numamap.Section(size, name=...)"),
    ("UnmapViewOfFile", ERROR_INVALID_ADDRESS): Rule(OSError, "the address is not the start of a view"),
    **{(call, ERROR_MAPPED_ALIGNMENT): Rule(ValueError, "offsets must be multiples of the 64 KiB "
                                            "allocation granularity") for call in _MAP_CALLS},
    **{(call, ERROR_ACCESS_DENIED): Rule(PermissionError, _VIEW_TOO_BIG) for call in _MAP_CALLS},
    **{(call, ERROR_INVALID_ADDRESS): Rule(OSError, "the address is in use (another view or "
                                           "allocation holds it)") for call in _MAP_CALLS},
}

#: The Windows backend's one table.
ERRORS = ErrorTable(WINERROR_DEFAULTS, _RULES, lambda code: _exports.describe(code), winerror=True)


def fail(call: str, detail: str = "", code: int | None = None):
    """Raise the exception for ``call`` failing with ``code`` (GetLastError when None)."""
    raise ERRORS.exception(call, _exports.last_error() if code is None else code, detail)


def check(ok, call: str, detail: str = "") -> None:
    """Raise through :func:`fail` when ``ok`` (a BOOL, handle or pointer) is false."""
    if not ok:
        fail(call, detail)
