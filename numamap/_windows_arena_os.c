/* The node arenas' OS hooks (_arena_os.h) for 64-bit Windows: slim reader/writer locks,
 * condition variables, a detached thread, a fiber-local slot whose callback runs at thread
 * exit, and memory from VirtualAlloc2 (or VirtualAllocExNuma where Windows lacks it).
 *
 * Errors are Windows error codes (GetLastError). Built into numamap/_numamap_arena.dll with
 * mingw-w64 by numamap/_build_windows_dll.py; Windows has no transparent huge pages, so
 * NM_ARENA_THP maps the same plain pages as NM_ARENA_BASE. */
#include "_arena_os.h"
#include "_arena.h"

#include <string.h>
#include <windows.h>

/* Our own names for the VirtualAlloc2 types and constants (x64 layouts), so the build does not
 * depend on how new the mingw-w64 headers are. */
typedef struct {
    DWORD64 type_and_reserved; /* the type in the low 8 bits */
    union {
        DWORD64 ulong64;
        void *pointer;
        SIZE_T size;
        HANDLE handle;
        DWORD ulong;
    } value;
} nm_mem_parameter;

typedef struct {
    void *lowest;
    void *highest;
    SIZE_T alignment;
} nm_address_requirements;

_Static_assert(sizeof(nm_mem_parameter) == 16, "MEM_EXTENDED_PARAMETER is 16 bytes on x64");
_Static_assert(sizeof(nm_address_requirements) == 24, "MEM_ADDRESS_REQUIREMENTS is 24 bytes on x64");

#define NM_PARAM_ADDRESS_REQUIREMENTS 1
#define NM_PARAM_NUMA_NODE 2
#define NM_PARAM_ATTRIBUTE_FLAGS 5
#define NM_ATTRIBUTE_NONPAGED_HUGE 0x10 /* 1 GiB pages, with MEM_LARGE_PAGES */
#define NM_LARGE_PAGES 0x20000000       /* MEM_LARGE_PAGES */
#define NM_NO_PREFERRED_NODE 0xFFFFFFFFu
#define NM_ALLOCATION_GRANULARITY 65536u
#define NM_ALIGN_TRIES 32               /* racing other threads for an aligned address */

typedef void *(WINAPI *virtual_alloc2_fn)(HANDLE, void *, SIZE_T, ULONG, ULONG, nm_mem_parameter *, ULONG);

static int last_error_or(int fallback)
{
    DWORD error = GetLastError();
    return error ? (int)error : fallback;
}

/* -- locks, condition variables, clock --------------------------------------------------------- */

void nm_os_lock_take(nm_os_lock *lock) { AcquireSRWLockExclusive(lock); }

void nm_os_lock_drop(nm_os_lock *lock) { ReleaseSRWLockExclusive(lock); }

void nm_os_cond_wait(nm_os_cond *cond, nm_os_lock *lock, uint64_t ms)
{
    DWORD wait = ms >= (uint64_t)INFINITE ? INFINITE : (DWORD)ms;
    /* FALSE with ERROR_TIMEOUT when the time is up: the caller looks at its state either way. */
    (void)SleepConditionVariableSRW(cond, lock, wait, 0);
}

void nm_os_cond_signal(nm_os_cond *cond) { WakeConditionVariable(cond); }

uint64_t nm_os_now_ms(void) { return (uint64_t)GetTickCount64(); }

/* -- threads ----------------------------------------------------------------------------------- */

/* A thread running in this DLL, or a fiber-local callback pointing into it, must never outlive
 * it: pin the DLL for the life of the process before starting either (Python frees the DLL at
 * exit while the decay thread still sleeps in it). */
static INIT_ONCE pin_once = INIT_ONCE_STATIC_INIT;
static DWORD pin_error; /* written once, under pin_once */

static BOOL CALLBACK pin_this_dll(INIT_ONCE *once, void *parameter, void **context)
{
    HMODULE self;
    (void)once;
    (void)parameter;
    (void)context;
    if (!GetModuleHandleExW(GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS | GET_MODULE_HANDLE_EX_FLAG_PIN,
                            (const wchar_t *)(void *)&pin_error, &self)) {
        pin_error = GetLastError();
        if (pin_error == 0)
            pin_error = ERROR_MOD_NOT_FOUND;
    }
    return TRUE;
}

static int pin_dll(void)
{
    if (!InitOnceExecuteOnce(&pin_once, pin_this_dll, NULL, NULL))
        return last_error_or(ERROR_MOD_NOT_FOUND);
    return (int)pin_error;
}

typedef struct {
    void (*body)(void);
} nm_thread_start;

static DWORD WINAPI thread_main(void *argument)
{
    nm_thread_start start = *(nm_thread_start *)argument;
    HeapFree(GetProcessHeap(), 0, argument);
    start.body();
    return 0;
}

int nm_os_thread_start(void (*body)(void))
{
    int error = pin_dll();
    if (error)
        return error;
    /* A function pointer cannot travel in the thread's void * argument: box it. */
    nm_thread_start *start = HeapAlloc(GetProcessHeap(), 0, sizeof *start);
    if (start == NULL)
        return ERROR_NOT_ENOUGH_MEMORY;
    start->body = body;
    HANDLE thread = CreateThread(NULL, 0, thread_main, start, 0, NULL);
    if (thread == NULL) {
        error = last_error_or(ERROR_NOT_ENOUGH_MEMORY);
        HeapFree(GetProcessHeap(), 0, start);
        return error;
    }
    CloseHandle(thread); /* detached: the thread runs on without its handle */
    return 0;
}

/* Thread exit: a fiber-local slot holds each thread's (on_exit, value); Windows calls the slot's
 * callback with it when the thread ends (and when a fiber is deleted). */
typedef struct {
    void (*on_exit)(void *);
    void *value;
} nm_exit_hook;

typedef BOOLEAN(WINAPI *shutdown_in_progress_fn)(void);

static INIT_ONCE exit_slot_once = INIT_ONCE_STATIC_INIT;
static DWORD exit_slot = FLS_OUT_OF_INDEXES;   /* these three written once, under exit_slot_once */
static DWORD exit_slot_error;
static shutdown_in_progress_fn shutdown_in_progress;

static void WINAPI run_exit_hook(void *data)
{
    nm_exit_hook *hook = data;
    if (hook == NULL)
        return;
    /* At process exit Windows has already killed the other threads, maybe inside a lock the
     * hook would take: do nothing then, as pthreads run no key destructors at exit(). */
    if (hook->value != NULL && !(shutdown_in_progress != NULL && shutdown_in_progress()))
        hook->on_exit(hook->value);
    HeapFree(GetProcessHeap(), 0, hook);
}

static BOOL CALLBACK make_exit_slot(INIT_ONCE *once, void *parameter, void **context)
{
    (void)once;
    (void)parameter;
    (void)context;
    HMODULE ntdll = GetModuleHandleW(L"ntdll.dll");
    FARPROC found = ntdll ? GetProcAddress(ntdll, "RtlDllShutdownInProgress") : NULL;
    /* void (*)(void) is the cast gcc accepts between function pointer types */
    shutdown_in_progress = (shutdown_in_progress_fn)(void (*)(void))found;
    exit_slot = FlsAlloc(run_exit_hook);
    if (exit_slot == FLS_OUT_OF_INDEXES) {
        exit_slot_error = GetLastError();
        if (exit_slot_error == 0)
            exit_slot_error = ERROR_NO_MORE_ITEMS;
    }
    return TRUE; /* the failure is remembered in exit_slot_error: do not retry on every call */
}

int nm_os_thread_exit_hook(void (*on_exit)(void *), void *value)
{
    if (on_exit == NULL)
        return ERROR_INVALID_PARAMETER;
    int error = pin_dll();
    if (error)
        return error;
    if (!InitOnceExecuteOnce(&exit_slot_once, make_exit_slot, NULL, NULL))
        return (int)GetLastError();
    if (exit_slot == FLS_OUT_OF_INDEXES)
        return (int)exit_slot_error;
    nm_exit_hook *hook = FlsGetValue(exit_slot);
    if (hook == NULL) {
        hook = HeapAlloc(GetProcessHeap(), 0, sizeof *hook);
        if (hook == NULL)
            return ERROR_NOT_ENOUGH_MEMORY;
        if (!FlsSetValue(exit_slot, hook)) {
            DWORD error = GetLastError();
            HeapFree(GetProcessHeap(), 0, hook);
            return error ? (int)error : ERROR_NOT_ENOUGH_MEMORY;
        }
    }
    hook->on_exit = on_exit;
    hook->value = value; /* NULL: nothing to call, as with pthread_setspecific */
    return 0;
}

int nm_os_fork_hooks(void (*prepare)(void), void (*parent)(void), void (*child)(void))
{
    (void)prepare; /* Windows has no fork */
    (void)parent;
    (void)child;
    return 0;
}

/* -- memory ------------------------------------------------------------------------------------ */

static INIT_ONCE resolve_once = INIT_ONCE_STATIC_INIT;
static virtual_alloc2_fn virtual_alloc2; /* written once, under resolve_once; NULL if missing */

static BOOL CALLBACK resolve_virtual_alloc2(INIT_ONCE *once, void *parameter, void **context)
{
    static const wchar_t *const modules[] = {L"kernelbase.dll", L"kernel32.dll"};
    (void)once;
    (void)parameter;
    (void)context;
    for (size_t i = 0; i < sizeof modules / sizeof modules[0]; i++) {
        HMODULE module = GetModuleHandleW(modules[i]); /* both are loaded in every process */
        FARPROC found = module ? GetProcAddress(module, "VirtualAlloc2") : NULL;
        if (found != NULL) {
            /* void (*)(void) is the cast gcc accepts between function pointer types */
            virtual_alloc2 = (virtual_alloc2_fn)(void (*)(void))found;
            break;
        }
    }
    return TRUE;
}

static virtual_alloc2_fn get_virtual_alloc2(void)
{
    if (!InitOnceExecuteOnce(&resolve_once, resolve_virtual_alloc2, NULL, NULL))
        return NULL;
    return virtual_alloc2;
}

static int is_large(int kind) { return kind == NM_ARENA_HUGE_2M || kind == NM_ARENA_HUGE_1G; }

static void *map_with_virtual_alloc2(virtual_alloc2_fn alloc2, int node, int kind, size_t length,
                                     size_t align, int *error)
{
    nm_mem_parameter parameters[3];
    nm_address_requirements requirements = {NULL, NULL, 0};
    ULONG count = 0;
    ULONG type = MEM_RESERVE | MEM_COMMIT;
    memset(parameters, 0, sizeof parameters);
    if (align > NM_ALLOCATION_GRANULARITY) { /* every allocation is 64 KiB aligned already */
        requirements.alignment = align;
        parameters[count].type_and_reserved = NM_PARAM_ADDRESS_REQUIREMENTS;
        parameters[count++].value.pointer = &requirements;
    }
    if (node >= 0) {
        parameters[count].type_and_reserved = NM_PARAM_NUMA_NODE;
        parameters[count++].value.ulong = (DWORD)node;
    }
    if (is_large(kind))
        type |= NM_LARGE_PAGES;
    if (kind == NM_ARENA_HUGE_1G) {
        parameters[count].type_and_reserved = NM_PARAM_ATTRIBUTE_FLAGS;
        parameters[count++].value.ulong64 = NM_ATTRIBUTE_NONPAGED_HUGE;
    }
    void *base = alloc2(GetCurrentProcess(), NULL, length, type, PAGE_READWRITE,
                        count ? parameters : NULL, count);
    if (base == NULL)
        *error = last_error_or(ERROR_NOT_ENOUGH_MEMORY);
    return base;
}

/* Without VirtualAlloc2 (before Windows 10): VirtualAllocExNuma has no alignment parameter, so
 * reserve length + align, let go of it and take the aligned part, again if another thread got
 * there first. */
static void *map_with_virtual_alloc_ex_numa(int node, int kind, size_t length, size_t align, int *error)
{
    HANDLE process = GetCurrentProcess();
    DWORD preferred = node >= 0 ? (DWORD)node : NM_NO_PREFERRED_NODE;
    DWORD type = MEM_RESERVE | MEM_COMMIT | (is_large(kind) ? NM_LARGE_PAGES : 0);
    if (kind == NM_ARENA_HUGE_1G) { /* 1 GiB pages need VirtualAlloc2's attribute flags */
        *error = ERROR_NOT_SUPPORTED;
        return NULL;
    }
    void *base = VirtualAllocExNuma(process, NULL, length, type, PAGE_READWRITE, preferred);
    if (base == NULL) {
        *error = last_error_or(ERROR_NOT_ENOUGH_MEMORY);
        return NULL;
    }
    if (align <= 1 || (uintptr_t)base % align == 0)
        return base;
    VirtualFree(base, 0, MEM_RELEASE);
    if (length > SIZE_MAX - align) {
        *error = ERROR_INVALID_PARAMETER;
        return NULL;
    }
    for (int attempt = 0; attempt < NM_ALIGN_TRIES; attempt++) {
        char *room = VirtualAlloc(NULL, length + align, MEM_RESERVE, PAGE_NOACCESS);
        if (room == NULL) {
            *error = last_error_or(ERROR_NOT_ENOUGH_MEMORY);
            return NULL;
        }
        uintptr_t aligned = ((uintptr_t)room + align - 1) & ~(uintptr_t)(align - 1);
        VirtualFree(room, 0, MEM_RELEASE);
        base = VirtualAllocExNuma(process, (void *)aligned, length, type, PAGE_READWRITE, preferred);
        if (base != NULL)
            return base;
        DWORD code = GetLastError();
        if (code != ERROR_INVALID_ADDRESS) { /* anything but "taken meanwhile" is final */
            *error = code ? (int)code : ERROR_NOT_ENOUGH_MEMORY;
            return NULL;
        }
    }
    *error = ERROR_INVALID_ADDRESS;
    return NULL;
}

void *nm_os_map(int node, int kind, size_t length, size_t align, int *error)
{
    if (length == 0 || node < -1 || node > NM_ARENA_MAX_NODE || kind < 0 || kind >= NM_ARENA_KINDS
        || (align & (align - 1)) != 0) {
        *error = ERROR_INVALID_PARAMETER;
        return NULL;
    }
    virtual_alloc2_fn alloc2 = get_virtual_alloc2();
    if (alloc2 != NULL)
        return map_with_virtual_alloc2(alloc2, node, kind, length, align, error);
    return map_with_virtual_alloc_ex_numa(node, kind, length, align, error);
}

int nm_os_unmap(void *base, size_t length, int kind)
{
    (void)length; /* MEM_RELEASE frees the whole allocation, whatever its size */
    (void)kind;
    if (!VirtualFree(base, 0, MEM_RELEASE))
        return last_error_or(ERROR_INVALID_ADDRESS);
    return 0;
}

int nm_os_purge(void *base, size_t length, int kind)
{
    if (is_large(kind))
        return ERROR_NOT_SUPPORTED; /* large pages stay locked until the mapping is released */
    if (length == 0)
        return 0;
    /* Decommit gives the physical pages back now; committing again at once keeps the range
     * usable (it reads as zeros) and takes no physical page until one is touched. */
    if (!VirtualFree(base, length, MEM_DECOMMIT))
        return last_error_or(ERROR_INVALID_ADDRESS);
    if (VirtualAlloc(base, length, MEM_COMMIT, PAGE_READWRITE) == NULL)
        return last_error_or(ERROR_COMMITMENT_LIMIT);
    return 0;
}
