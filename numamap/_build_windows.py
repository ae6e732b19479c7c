"""cffi build script for the Windows bindings: out-of-line ABI mode, so no compiler is needed.

``python numamap/_build_windows.py`` writes ``numamap/_windows_native.py``, plain Python that
loads kernelbase/kernel32/advapi32/ntdll at run time with ``ffi.dlopen``, and
``numamap/_windows_arena_native.py``, the same for numamap's own ``_numamap_arena.dll`` (the node
arenas and the NEP 49 handler, built by ``_build_windows_dll.py``): its declarations are the cdef
regions of ``_arena.h`` and ``_arena_handler.h``, read by ``_build_linux.header_cdef``. It runs on
any OS (the Windows tier under Wine generates it on Linux). It must not import numamap.

Every type below has a fixed width (``uint32_t`` for DWORD, ``char16_t`` for WCHAR), so the
description is the same whichever OS generates the module. The layouts are x64 Windows's
(MEMORY_BASIC_INFORMATION's PartitionId, pointer-sized masks): numamap supports 64-bit Windows
only, and ``_windows_exports`` refuses a 32-bit interpreter. The package parses ``CDEF`` itself
when the generated module is missing, so this is the one place each declaration is written.
"""
import importlib.util
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
# Run as a script, this folder is sys.path[0]: keep the package's modules from shadowing the
# standard library's (cffi imports subprocess, which imports selectors).
sys.path[:] = [p for p in sys.path if pathlib.Path(p or ".").resolve() != HERE]

import cffi  # noqa: E402

CDEF = """
typedef uint8_t BYTE;
typedef uint16_t WORD;
typedef uint16_t USHORT;
typedef uint32_t DWORD;
typedef uint32_t ULONG;
typedef int32_t LONG;
typedef int BOOL;
typedef uint64_t DWORD64;
typedef uint64_t ULONG64;
typedef uint64_t ULONGLONG;
typedef size_t SIZE_T;
typedef uintptr_t ULONG_PTR;
typedef uintptr_t DWORD_PTR;
typedef uintptr_t KAFFINITY;
typedef void *HANDLE;
typedef void *PVOID;
typedef char16_t WCHAR;
typedef int64_t LARGE_INTEGER;

typedef struct {
    DWORD nLength;
    void *lpSecurityDescriptor;
    BOOL bInheritHandle;
} SECURITY_ATTRIBUTES;

/* 16 bytes: the type in the low 8 bits of the first word, then an 8-byte union. */
typedef struct {
    DWORD64 TypeAndReserved;
    union {
        DWORD64 ULong64;
        void *Pointer;
        SIZE_T Size;
        HANDLE Handle;
        DWORD ULong;
    };
} MEM_EXTENDED_PARAMETER;

typedef struct {
    void *LowestStartingAddress;
    void *HighestEndingAddress;
    SIZE_T Alignment;
} MEM_ADDRESS_REQUIREMENTS;

typedef struct {
    void *VirtualAddress;
    ULONG_PTR VirtualAttributes;
} PSAPI_WORKING_SET_EX_INFORMATION;

typedef struct {
    void *BaseAddress;
    void *AllocationBase;
    DWORD AllocationProtect;
    WORD PartitionId;
    SIZE_T RegionSize;
    DWORD State;
    DWORD Protect;
    DWORD Type;
} MEMORY_BASIC_INFORMATION;

typedef struct {
    KAFFINITY Mask;
    WORD Group;
    WORD Reserved[3];
} GROUP_AFFINITY;

typedef struct {
    WORD Group;
    BYTE Number;
    BYTE Reserved;
} PROCESSOR_NUMBER;

typedef struct {
    WORD wProcessorArchitecture;
    WORD wReserved;
    DWORD dwPageSize;
    void *lpMinimumApplicationAddress;
    void *lpMaximumApplicationAddress;
    DWORD_PTR dwActiveProcessorMask;
    DWORD dwNumberOfProcessors;
    DWORD dwProcessorType;
    DWORD dwAllocationGranularity;
    WORD wProcessorLevel;
    WORD wProcessorRevision;
} SYSTEM_INFO;

typedef struct {
    DWORD dwLength;
    DWORD dwMemoryLoad;
    ULONGLONG ullTotalPhys;
    ULONGLONG ullAvailPhys;
    ULONGLONG ullTotalPageFile;
    ULONGLONG ullAvailPageFile;
    ULONGLONG ullTotalVirtual;
    ULONGLONG ullAvailVirtual;
    ULONGLONG ullAvailExtendedVirtual;
} MEMORYSTATUSEX;

typedef struct {
    DWORD NodeNumber;
    BYTE Reserved[18];
    WORD GroupCount;
    GROUP_AFFINITY GroupMasks[1];   /* GroupCount of them (0 on old systems: read one) */
} NUMA_NODE_RELATIONSHIP;

typedef struct {
    BYTE MaximumProcessorCount;
    BYTE ActiveProcessorCount;
    BYTE Reserved[38];
    KAFFINITY ActiveProcessorMask;
} PROCESSOR_GROUP_INFO;

typedef struct {
    WORD MaximumGroupCount;
    WORD ActiveGroupCount;
    BYTE Reserved[20];
    PROCESSOR_GROUP_INFO GroupInfo[1];  /* ActiveGroupCount of them */
} GROUP_RELATIONSHIP;

typedef struct {
    int Relationship;                   /* LOGICAL_PROCESSOR_RELATIONSHIP */
    DWORD Size;                         /* of this record: step by it */
    union {
        NUMA_NODE_RELATIONSHIP NumaNode;
        GROUP_RELATIONSHIP Group;
    };
} SYSTEM_LOGICAL_PROCESSOR_INFORMATION_EX;

typedef struct {
    DWORD LowPart;
    LONG HighPart;
} LUID;

typedef struct {
    LUID Luid;
    DWORD Attributes;
} LUID_AND_ATTRIBUTES;

typedef struct {
    DWORD PrivilegeCount;
    LUID_AND_ATTRIBUTES Privileges[1];
} TOKEN_PRIVILEGES;

typedef struct {
    DWORD dwSize;
    DWORD cntUsage;
    DWORD th32ThreadID;
    DWORD th32OwnerProcessID;
    LONG tpBasePri;
    LONG tpDeltaPri;
    DWORD dwFlags;
} THREADENTRY32;

typedef struct {
    void *BaseAddress;
    ULONG AllocationAttributes;
    LARGE_INTEGER MaximumSize;
} SECTION_BASIC_INFORMATION;

/* Sections */
HANDLE WINAPI CreateFileMappingNumaW(HANDLE hFile, SECURITY_ATTRIBUTES *lpAttributes,
    DWORD flProtect, DWORD dwMaximumSizeHigh, DWORD dwMaximumSizeLow, const WCHAR *lpName,
    DWORD nndPreferred);
HANDLE WINAPI CreateFileMapping2(HANDLE File, SECURITY_ATTRIBUTES *SecurityAttributes,
    ULONG DesiredAccess, ULONG PageProtection, ULONG AllocationAttributes, ULONG64 MaximumSize,
    const WCHAR *Name, MEM_EXTENDED_PARAMETER *ExtendedParameters, ULONG ParameterCount);
HANDLE WINAPI OpenFileMappingW(DWORD dwDesiredAccess, BOOL bInheritHandle, const WCHAR *lpName);
LONG WINAPI NtQuerySection(HANDLE SectionHandle, int InformationClass, void *Information,
    SIZE_T InformationLength, SIZE_T *ResultLength);

/* Views */
void * WINAPI MapViewOfFileExNuma(HANDLE hFileMappingObject, DWORD dwDesiredAccess,
    DWORD dwFileOffsetHigh, DWORD dwFileOffsetLow, SIZE_T dwNumberOfBytesToMap,
    void *lpBaseAddress, DWORD nndPreferred);
void * WINAPI MapViewOfFileNuma2(HANDLE FileMappingHandle, HANDLE ProcessHandle,
    ULONG64 Offset, void *BaseAddress, SIZE_T ViewSize, ULONG AllocationType,
    ULONG PageProtection, ULONG PreferredNode);
void * WINAPI MapViewOfFile3(HANDLE FileMapping, HANDLE Process, void *BaseAddress,
    ULONG64 Offset, SIZE_T ViewSize, ULONG AllocationType, ULONG PageProtection,
    MEM_EXTENDED_PARAMETER *ExtendedParameters, ULONG ParameterCount);
void * WINAPI MapViewOfFile3FromApp(HANDLE FileMapping, HANDLE Process, void *BaseAddress,
    ULONG64 Offset, SIZE_T ViewSize, ULONG AllocationType, ULONG PageProtection,
    MEM_EXTENDED_PARAMETER *ExtendedParameters, ULONG ParameterCount);
BOOL WINAPI UnmapViewOfFile(const void *lpBaseAddress);
BOOL WINAPI UnmapViewOfFileEx(void *BaseAddress, ULONG UnmapFlags);

/* Address space */
void * WINAPI VirtualAlloc2(HANDLE Process, void *BaseAddress, SIZE_T Size,
    ULONG AllocationType, ULONG PageProtection, MEM_EXTENDED_PARAMETER *ExtendedParameters,
    ULONG ParameterCount);
void * WINAPI VirtualAlloc(void *lpAddress, SIZE_T dwSize, DWORD flAllocationType,
    DWORD flProtect);
BOOL WINAPI VirtualFree(void *lpAddress, SIZE_T dwSize, DWORD dwFreeType);
SIZE_T WINAPI VirtualQuery(const void *lpAddress, MEMORY_BASIC_INFORMATION *lpBuffer,
    SIZE_T dwLength);

/* Handles, processes, files */
BOOL WINAPI CloseHandle(HANDLE hObject);
void WINAPI SetLastError(DWORD dwErrCode);
HANDLE WINAPI GetCurrentProcess(void);
DWORD WINAPI GetCurrentProcessId(void);
HANDLE WINAPI GetCurrentThread(void);

/* Affinity: processor groups */
void WINAPI GetCurrentProcessorNumberEx(PROCESSOR_NUMBER *ProcNumber);
WORD WINAPI GetActiveProcessorGroupCount(void);
DWORD WINAPI GetMaximumProcessorCount(WORD GroupNumber);
DWORD WINAPI GetActiveProcessorCount(WORD GroupNumber);
BOOL WINAPI GetProcessAffinityMask(HANDLE hProcess, DWORD_PTR *lpProcessAffinityMask,
    DWORD_PTR *lpSystemAffinityMask);
BOOL WINAPI SetProcessAffinityMask(HANDLE hProcess, DWORD_PTR dwProcessAffinityMask);
BOOL WINAPI GetProcessGroupAffinity(HANDLE hProcess, USHORT *GroupCount, USHORT *GroupArray);
BOOL WINAPI SetThreadGroupAffinity(HANDLE hThread, const GROUP_AFFINITY *GroupAffinity,
    GROUP_AFFINITY *PreviousGroupAffinity);
BOOL WINAPI GetThreadGroupAffinity(HANDLE hThread, GROUP_AFFINITY *GroupAffinity);
HANDLE WINAPI CreateToolhelp32Snapshot(DWORD dwFlags, DWORD th32ProcessID);
BOOL WINAPI Thread32First(HANDLE hSnapshot, THREADENTRY32 *lpte);
BOOL WINAPI Thread32Next(HANDLE hSnapshot, THREADENTRY32 *lpte);
HANDLE WINAPI OpenThread(DWORD dwDesiredAccess, BOOL bInheritHandle, DWORD dwThreadId);

/* Sizes and topology */
void WINAPI GetSystemInfo(SYSTEM_INFO *lpSystemInfo);
SIZE_T WINAPI GetLargePageMinimum(void);
BOOL WINAPI GlobalMemoryStatusEx(MEMORYSTATUSEX *lpBuffer);
BOOL WINAPI GetNumaHighestNodeNumber(ULONG *HighestNodeNumber);
BOOL WINAPI GetNumaProcessorNodeEx(PROCESSOR_NUMBER *Processor, USHORT *NodeNumber);
BOOL WINAPI GetNumaNodeProcessorMaskEx(USHORT Node, GROUP_AFFINITY *ProcessorMask);
BOOL WINAPI GetNumaNodeProcessorMask2(ULONG NodeNumber, GROUP_AFFINITY *ProcessorMasks,
    USHORT ProcessorMaskCount, USHORT *RequiredMaskCount);
BOOL WINAPI GetNumaAvailableMemoryNodeEx(USHORT Node, ULONGLONG *AvailableBytes);
BOOL WINAPI GetLogicalProcessorInformationEx(int RelationshipType,
    SYSTEM_LOGICAL_PROCESSOR_INFORMATION_EX *Buffer, DWORD *ReturnedLength);

/* Placement */
BOOL WINAPI K32QueryWorkingSetEx(HANDLE hProcess, void *pv, DWORD cb);

/* Large pages: SeLockMemoryPrivilege */
BOOL WINAPI OpenProcessToken(HANDLE ProcessHandle, DWORD DesiredAccess, HANDLE *TokenHandle);
BOOL WINAPI LookupPrivilegeValueW(const WCHAR *lpSystemName, const WCHAR *lpName, LUID *lpLuid);
BOOL WINAPI AdjustTokenPrivileges(HANDLE TokenHandle, BOOL DisableAllPrivileges,
    TOKEN_PRIVILEGES *NewState, DWORD BufferLength, TOKEN_PRIVILEGES *PreviousState,
    DWORD *ReturnLength);
"""

ffibuilder = cffi.FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source("numamap._windows_native", None)

#: Headers whose cdef regions declare what _numamap_arena.dll exports.
ARENA_HEADERS = ("_arena.h", "_arena_handler.h")


def _header_cdef():
    """``_build_linux.header_cdef``, the one reader of cdef regions, loaded by path: this script
    runs outside the package too, and must not import numamap."""
    spec = importlib.util.spec_from_file_location("_numamap_build_linux", HERE / "_build_linux.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.header_cdef


def arena_cdef() -> str:
    """The declarations of _numamap_arena.dll: the cdef regions of :data:`ARENA_HEADERS`."""
    read = _header_cdef()
    return "\n".join(read(name) for name in ARENA_HEADERS)


def arena_ffibuilder() -> cffi.FFI:
    """The ABI-mode builder of ``numamap._windows_arena_native`` (a function, so that importing
    this module for ``CDEF`` reads no header; cffi's ``cffi_modules`` accepts a callable)."""
    builder = cffi.FFI()
    builder.cdef(arena_cdef())
    builder.set_source("numamap._windows_arena_native", None)
    return builder


def main() -> None:
    for builder, name in ((ffibuilder, "_windows_native.py"), (arena_ffibuilder(), "_windows_arena_native.py")):
        target = HERE / name
        builder.emit_python_code(str(target))
        print(f"wrote {target}")


if __name__ == "__main__":
    main()
