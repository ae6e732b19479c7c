"""The Windows exports numamap calls, resolved one by one, and the header constants they take.

The bindings are ``_windows_native.py``: Python that cffi generates from ``_build_windows.py``'s
declarations (``python numamap/_build_windows.py``, no compiler needed). A checkout that skipped
that step gets the same declarations parsed at import time instead.

Each export is looked up on its own, in kernelbase first, then kernel32, advapi32 and ntdll. An
export this system lacks becomes a :class:`Missing`: false in a boolean test, and calling it
raises NotImplementedError naming the call and the first Windows release that has it. On Linux
no DLL loads, so every export is Missing and the module still imports (the contract test and
the fake-kernel32 tests rely on that).

64-bit only: the declarations (MEMORY_BASIC_INFORMATION with its PartitionId, the 16-byte
MEM_EXTENDED_PARAMETER, ULONG_PTR masks) are those of x64 Windows, and a 32-bit interpreter is
refused at import.
"""
from __future__ import annotations

import functools

try:
    from ._windows_native import ffi
except ImportError:  # not generated yet: parse the same declarations now (needs pycparser)
    import cffi

    from ._build_windows import CDEF

    ffi = cffi.FFI()
    ffi.cdef(CDEF)

if ffi.sizeof("void *") != 8:  # pragma: no cover - only a 32-bit interpreter gets here
    raise ImportError("numamap's Windows backend supports 64-bit Windows only (x64): the structure "
                      "layouts it declares are the 64-bit ones")

# --------------------------------------------------------------------------------------------
# Constants (winnt.h, memoryapi.h, tlhelp32.h)

MEM_COMMIT = 0x1000
MEM_RESERVE = 0x2000
MEM_REPLACE_PLACEHOLDER = 0x4000
MEM_RELEASE = 0x8000
MEM_FREE = 0x10000
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
RELATION_GROUP = 4
RELATION_NUMA_NODE_EX = 6  # asks for all of a node's processor groups (Windows Server 2022)
TOKEN_ADJUST_PRIVILEGES = 0x20
TOKEN_QUERY = 0x8
SE_PRIVILEGE_ENABLED = 0x2
SE_LOCK_MEMORY_NAME = "SeLockMemoryPrivilege"
TH32CS_SNAPTHREAD = 0x4
THREAD_SET_INFORMATION = 0x20
THREAD_QUERY_INFORMATION = 0x40

# --------------------------------------------------------------------------------------------
# Exports

#: The first Windows release with each export, as Microsoft's page for it states (for the
#: NotImplementedError of a Missing export).
NEEDS = {
    "MapViewOfFileExNuma": "Windows Vista / Windows Server 2008",
    "CreateFileMappingNumaW": "Windows Vista / Windows Server 2008",
    "MapViewOfFileNuma2": "Windows 10 version 1703 / Windows Server 2016 "
                          "(api-ms-win-core-memory-l1-1-5.dll)",
    "MapViewOfFile3": "Windows 10 version 1803 / Windows Server 2016",
    "MapViewOfFile3FromApp": "Windows 10 / Windows Server 2016",
    "VirtualAlloc2": "Windows 10 / Windows Server 2016",
    "UnmapViewOfFileEx": "Windows 8 / Windows Server 2012",
    "CreateFileMapping2": "Windows 10 build 20348 / Windows Server 2022",
    "GetNumaNodeProcessorMask2": "Windows 10 build 20348 / Windows Server 2022",
    "GetNumaNodeProcessorMaskEx": "Windows 7 / Windows Server 2008 R2",
    "GetNumaProcessorNodeEx": "Windows 7 / Windows Server 2008 R2",
    "GetNumaAvailableMemoryNodeEx": "Windows 7 / Windows Server 2008 R2",
    "GetLogicalProcessorInformationEx": "Windows 7 / Windows Server 2008 R2",
    "GetProcessGroupAffinity": "Windows 7 / Windows Server 2008 R2",
    "GetCurrentProcessorNumberEx": "Windows 7 / Windows Server 2008 R2",
    "SetThreadGroupAffinity": "Windows 7 / Windows Server 2008 R2",
    "GetThreadGroupAffinity": "Windows 7 / Windows Server 2008 R2",
    "K32QueryWorkingSetEx": "Windows 7 / Windows Server 2008 R2",
}
DLL_ORDER = ("kernelbase.dll", "kernel32.dll", "advapi32.dll", "ntdll.dll")
EXPORTS = (
    # sections
    "CreateFileMappingNumaW", "CreateFileMapping2", "OpenFileMappingW", "NtQuerySection",
    # views (MapViewOfFile2 is an inline over MapViewOfFileNuma2: see below)
    "MapViewOfFileExNuma", "MapViewOfFileNuma2", "MapViewOfFile3", "MapViewOfFile3FromApp",
    "UnmapViewOfFile", "UnmapViewOfFileEx",
    # address space
    "VirtualAlloc2", "VirtualAlloc", "VirtualFree", "VirtualQuery",
    # handles, last error
    "CloseHandle", "SetLastError", "GetCurrentProcess", "GetCurrentProcessId", "GetCurrentThread",
    # sizes and topology
    "GetSystemInfo", "GetLargePageMinimum", "GlobalMemoryStatusEx", "GetNumaHighestNodeNumber",
    "GetNumaProcessorNodeEx", "GetNumaNodeProcessorMaskEx", "GetNumaNodeProcessorMask2",
    "GetNumaAvailableMemoryNodeEx", "GetLogicalProcessorInformationEx",
    # affinity
    "GetCurrentProcessorNumberEx", "GetActiveProcessorGroupCount", "GetMaximumProcessorCount", "GetActiveProcessorCount",
    "GetProcessAffinityMask", "SetProcessAffinityMask", "GetProcessGroupAffinity",
    "SetThreadGroupAffinity", "GetThreadGroupAffinity", "CreateToolhelp32Snapshot",
    "Thread32First", "Thread32Next", "OpenThread",
    # placement
    "K32QueryWorkingSetEx",
    # large pages: SeLockMemoryPrivilege
    "OpenProcessToken", "LookupPrivilegeValueW", "AdjustTokenPrivileges",
)


class Missing:
    """Stands in for an export this system lacks: falsy, and calling it says what is needed."""

    def __init__(self, name: str):
        self.name = name

    def __bool__(self) -> bool:
        return False

    def __call__(self, *args, **kwargs):
        needs = NEEDS.get(self.name, "a newer Windows")
        raise NotImplementedError(f"{self.name} is not exported by this system's "
                                  f"{' or '.join(DLL_ORDER[:2])}: it needs {needs}")

    def __repr__(self) -> str:
        return f"<missing export {self.name}>"


def _load_dlls() -> list:
    out = []
    for name in DLL_ORDER:
        try:
            out.append((name, ffi.dlopen(name)))
        except OSError:  # every DLL on Linux; ntdll-less sandboxes on Windows
            pass
    return out


def _resolve() -> tuple[dict, dict]:
    found, where = {}, {}
    dlls = _load_dlls()
    for name in EXPORTS:
        found[name], where[name] = Missing(name), None
        for dll_name, dll in dlls:
            try:
                found[name], where[name] = getattr(dll, name), dll_name
                break
            except (AttributeError, ffi.error):
                continue
    return found, where


#: Export name -> the cffi function, or a Missing. Tests replace entries (monkeypatch.setitem).
api, exported_by = _resolve()


def available(name: str) -> bool:
    """Whether export ``name`` can be called here (replacing ``api[name]`` changes the answer)."""
    return name in api and not isinstance(api[name], Missing)


def MapViewOfFile2(FileMappingHandle, ProcessHandle, Offset, BaseAddress, ViewSize,  # noqa: N802,N803
                   AllocationType, PageProtection):
    """memoryapi.h's inline MapViewOfFile2: MapViewOfFileNuma2 with NUMA_NO_PREFERRED_NODE.

    No DLL exports MapViewOfFile2; it exists wherever MapViewOfFileNuma2 does.
    """
    return api["MapViewOfFileNuma2"](FileMappingHandle, ProcessHandle, Offset, BaseAddress, ViewSize,
                                     AllocationType, PageProtection, NUMA_NO_PREFERRED_NODE)


def last_error() -> int:
    """GetLastError as it was right after the last call through cffi (the fake kernel32 of the
    tests replaces this function)."""
    return ffi.getwinerror()[0]


def describe(code: int) -> str:
    """The system's message for Windows error ``code``."""
    try:  # cffi reads the system's message on Windows only (elsewhere AttributeError)
        return ffi.getwinerror(code)[1]
    except AttributeError:
        return f"Windows error {code}"


@functools.lru_cache(maxsize=None)
def process():
    """GetCurrentProcess()'s pseudo handle (MapViewOfFile3 refuses NULL under Wine)."""
    return api["GetCurrentProcess"]()


def ptr(address: int | None):
    """``address`` as a ``void *`` (None: NULL)."""
    return ffi.NULL if address is None else ffi.cast("void *", address)


def addr(pointer) -> int:
    """A cffi pointer as an int."""
    return int(ffi.cast("uintptr_t", pointer))


def handle(value: int):
    """An int as a HANDLE."""
    return ffi.cast("HANDLE", value)


def wide(text: str | None):
    """A NUL-terminated WCHAR string (None: NULL)."""
    return ffi.NULL if text is None else ffi.new("WCHAR[]", text)


INVALID_HANDLE_VALUE = ffi.cast("HANDLE", -1)
