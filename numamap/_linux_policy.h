/* numamap's NEP 49 memory handler for numpy: a PyDataMem_Handler whose large blocks are mappings
 * placed on one NUMA node and whose small blocks come from malloc. See _linux_policy.c.
 *
 * Nothing here needs Python's headers: the handler and its capsule travel as void pointers, and
 * numamap/memory_handler.py wraps them into Python objects with ctypes.
 *
 * numamap/_build_linux.py hands the region between the "cdef" markers to cffi as it stands (see
 * _linux_native.h): it is the only place these declarations are written. */
#ifndef NUMAMAP_LINUX_POLICY_H
#define NUMAMAP_LINUX_POLICY_H

#include <stddef.h>
#include <stdint.h>

/* cdef begin */

/* What to do about transparent huge pages for mappings served with base pages. */
#define NM_POLICY_THP_LEAVE 0  /* no madvise: whatever the system setting gives */
#define NM_POLICY_THP_ASK 1    /* MADV_HUGEPAGE, mappings aligned to the THP size */
#define NM_POLICY_THP_FORBID 2 /* MADV_NOHUGEPAGE: base pages even where THP is 'always' */

/* nm_block_info.kind */
#define NM_BLOCK_SMALL 1   /* malloc'd */
#define NM_BLOCK_MAPPED 2  /* a mapping of base pages (maybe THP) */
#define NM_BLOCK_HUGETLB 3 /* a mapping of hugetlb pages */

#define NM_POLICY_MAX_NODE 1023
#define NM_POLICY_AUTO_SIZES 4

typedef struct {
    const char *name;        /* handler name numpy reports (truncated to 126 bytes) */
    int node;                /* node for large blocks; -1: no binding (kernel's policy) */
    int thp;                 /* NM_POLICY_THP_* */
    size_t min_size;         /* blocks of this many bytes or more are mapped */
    size_t base_page;        /* the base page size */
    size_t thp_size;         /* the PMD (THP) size; used with NM_POLICY_THP_ASK */
    size_t huge_page;        /* explicit hugetlb size, tried for every mapped block; 0: none */
    size_t auto_huge_pages[NM_POLICY_AUTO_SIZES]; /* hugetlb sizes tried, largest first, for
                                                     blocks at least that large; 0 ends it */
} nm_policy_config;

/* Counters of the mapped path only (the malloc path counts nothing, to stay as fast as malloc). */
typedef struct {
    uint64_t mapped;             /* mapped blocks made (malloc, calloc, realloc) */
    uint64_t unmapped;           /* mapped blocks given back */
    uint64_t hugetlb;            /* of those made, on hugetlb pages */
    uint64_t hugetlb_fallbacks;  /* hugetlb asked for (explicitly), base pages given */
    uint64_t remapped;           /* mapped blocks resized in place or by mremap */
    uint64_t errors;             /* failed calls (the allocation failed, or only advice did) */
    int last_error;              /* errno of the latest failed call */
} nm_policy_stats;

typedef struct {
    int kind;          /* NM_BLOCK_* */
    size_t size;       /* bytes asked for (small blocks: what malloc_usable_size says) */
    size_t length;     /* bytes of the pages behind the data (0 for a small block) */
    size_t page_size;  /* their page size (0 for a small block) */
} nm_block_info;

/* A new handler (PyDataMem_Handler + its context in one heap block) in *handler_out; errno. */
int nm_policy_new(const nm_policy_config *config, void **handler_out);
/* Free a handler that no capsule owns (the capsule's destructor frees the others). */
void nm_policy_delete(void *handler);
/* Map, place and unmap one page as the handler would: errno of the first call that fails. */
int nm_policy_check(void *handler);
void nm_policy_get_stats(void *handler, nm_policy_stats *out);
/* What kind of block ``data`` is: it must be a pointer a numamap handler returned. errno. */
int nm_policy_block_info(const void *data, nm_block_info *out);
/* The capsule name numpy requires ("mem_handler"), valid for the life of the process. */
const char *nm_policy_capsule_name(void);
/* Address of the capsule destructor, a C function that frees the handler. */
uintptr_t nm_policy_capsule_destructor(void);

/* cdef end */

#endif
