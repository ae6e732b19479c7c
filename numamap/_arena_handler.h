/* numamap's NEP 49 memory handler for numpy: a PyDataMem_Handler whose blocks come from the node
 * arenas (_arena.h); blocks under min_size come from malloc. See _arena_handler.c.
 *
 * Nothing here needs Python's or numpy's headers, so the same file builds into the Linux module
 * and the Windows DLL: the handler and its capsule travel as void pointers, and the capsule's
 * destructor reaches PyCapsule_GetPointer through the address Python hands it once
 * (nm_handler_set_capsule_api).
 *
 * The build scripts hand the region between the cdef markers to cffi as it stands. */
#ifndef NUMAMAP_ARENA_HANDLER_H
#define NUMAMAP_ARENA_HANDLER_H

#include <stddef.h>
#include <stdint.h>

/* cdef begin */

/* nm_block_info.kind */
#define NM_BLOCK_MALLOC 1 /* malloc'd (under min_size) */
#define NM_BLOCK_SMALL 2  /* a size class carved from an arena chunk */
#define NM_BLOCK_LARGE 3  /* an arena mapping of its own */

typedef struct {
    const char *name;  /* handler name numpy reports (truncated to 126 bytes) */
    int node;          /* -1: no binding (the kernel's policy) */
    int kind;          /* NM_ARENA_* or NM_ARENA_AUTO */
    size_t min_size;   /* blocks under this many bytes come from malloc */
} nm_handler_config;

typedef struct {
    uint64_t blocks;             /* arena blocks served (malloc, calloc, realloc) */
    uint64_t freed;              /* arena blocks given back */
    uint64_t hugetlb;            /* of those served, on hugetlb pages */
    uint64_t hugetlb_fallbacks;  /* hugetlb asked for explicitly, other pages given */
    uint64_t in_place;           /* reallocs that kept their block */
    uint64_t errors;             /* failed allocations */
    int last_error;              /* errno / winerror of the latest */
} nm_handler_stats;

typedef struct {
    int kind;          /* NM_BLOCK_* */
    int node;          /* -1: unbound or malloc'd */
    int page_kind;     /* NM_ARENA_* (BASE for malloc'd blocks) */
    size_t size;       /* bytes asked for */
    size_t length;     /* bytes reserved for it */
    size_t page_size;  /* page size behind it (the base page for malloc'd blocks) */
} nm_block_info;

/* The address of Python's PyCapsule_GetPointer, for the capsule destructor. Set it before the
 * first nm_handler_new; later calls must pass the same address. 0 or EINVAL. */
int nm_handler_set_capsule_api(uintptr_t capsule_get_pointer);
/* A new handler (PyDataMem_Handler + its context in one heap block) in *handler_out; errno. */
int nm_handler_new(const nm_handler_config *config, void **handler_out);
/* Free a handler that no capsule owns (the capsule's destructor frees the others). */
void nm_handler_delete(void *handler);
/* Map, place and give back one chunk as the handler would: errno of the first call that fails. */
int nm_handler_check(void *handler);
void nm_handler_get_stats(void *handler, nm_handler_stats *out);
/* What block ``data`` is, if a numamap handler (or arena) returned it: 0, else -1. Only arena
 * blocks are recognised from the pointer alone; malloc'd ones are reported as such when
 * ``assume_malloc`` is set (the caller knows a numamap handler allocated it). */
int nm_handler_block_info(const void *data, int assume_malloc, nm_block_info *out);
/* The capsule name numpy requires ("mem_handler"), valid for the life of the process. */
const char *nm_handler_capsule_name(void);
/* Address of the capsule destructor, a C function that frees the handler. */
uintptr_t nm_handler_capsule_destructor(void);


/* numpy's PyDataMemAllocator and PyDataMem_Handler, version 1 (numpy/ndarraytypes.h). The
 * layout is part of numpy's ABI since 1.22; defining it here means building needs no numpy. */
typedef struct {
    void *ctx;
    void *(*malloc)(void *ctx, size_t size);
    void *(*calloc)(void *ctx, size_t nelem, size_t elsize);
    void *(*realloc)(void *ctx, void *ptr, size_t new_size);
    void (*free)(void *ctx, void *ptr, size_t size);
} nm_allocator;

typedef struct {
    char name[127];
    uint8_t version;
    nm_allocator allocator;
} nm_numpy_handler;

/* cdef end */

#endif
