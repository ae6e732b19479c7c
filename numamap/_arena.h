/* numamap's node arenas: the allocator core shared by the Linux module and the Windows DLL.
 *
 * An arena serves one (node, page kind). It takes memory from the OS in 2 MiB-aligned chunks
 * (through the per-OS hooks of _arena_os.h) and serves:
 *
 *   small blocks  up to NM_ARENA_SMALL_MAX bytes, by size class, carved from runs of 64 KiB
 *                 units inside a chunk; freed blocks go to a thread-local cache first, then back
 *                 to their run. Memory stays faulted in while it is cached.
 *   large blocks  a mapping of their own, rounded up to a large size class, cached whole when
 *                 freed and reused by size class.
 *
 * Cached memory idle for longer than the decay time goes back to the OS (a background thread
 * wakes when something is due); nm_arena_trim gives back everything unused at once.
 *
 * State: one process-wide table of arenas and a map from 2 MiB regions to the chunk or mapping
 * that starts there. Every mutable field is guarded by a mutex or updated atomically; arenas
 * live as long as the process (thread caches point at them).
 *
 * numamap/_build_linux.py (and _build_windows.py for the DLL's ABI bindings) hands the region
 * between the cdef markers to cffi as it stands: it is the only place these are declared. */
#ifndef NUMAMAP_ARENA_H
#define NUMAMAP_ARENA_H

#include <stddef.h>
#include <stdint.h>

/* cdef begin */

/* Page kinds of an arena. */
#define NM_ARENA_BASE 0      /* base pages, transparent huge pages forbidden */
#define NM_ARENA_THP 1       /* base pages, transparent huge pages asked for (2 MiB aligned) */
#define NM_ARENA_HUGE_2M 2   /* hugetlb pages of 2 MiB, faulted in when a chunk is mapped */
#define NM_ARENA_HUGE_1G 3   /* hugetlb pages of 1 GiB: large blocks only */
#define NM_ARENA_KINDS 4
#define NM_ARENA_AUTO 7      /* nm_arena_alloc: HUGE_2M while the node's pool serves, else THP */

#define NM_ARENA_MAX_NODE 63 /* nodes 0-63; -1 is 'no binding' (the kernel's policy) */
#define NM_ARENA_SMALL_MAX 262144
#define NM_ARENA_CHUNK 2097152

typedef struct {
    int node;                  /* -1: no binding */
    int kind;                  /* NM_ARENA_* */
    uint64_t page_size;        /* of this kind on this machine */
    uint64_t mapped;           /* bytes mapped from the OS now */
    uint64_t in_use;           /* bytes of blocks handed out and not freed (block sizes) */
    uint64_t cached;           /* bytes of freed blocks kept for reuse (in runs, caches, mappings) */
    uint64_t hits;             /* allocations served from memory already mapped */
    uint64_t misses;           /* allocations that needed a new chunk or mapping */
    uint64_t returned;         /* bytes given back to the OS, in all */
    uint64_t failures;         /* OS calls that failed (the allocation failed or fell back) */
    int last_error;            /* errno / winerror of the latest failure */
} nm_arena_stats;

typedef struct {
    int node;
    int kind;
    uint64_t page_size;
    uint64_t size;             /* bytes asked for */
    uint64_t block_size;       /* bytes reserved for it (its size class) */
    uint64_t start;            /* address of the block */
    int large;                 /* 1: a mapping of its own */
} nm_arena_block;

/* Machine facts the arenas need, and the decay time: call before the first allocation (and
 * again to change decay_ms or cache_limit). 0 or an error code. */
typedef struct {
    uint64_t base_page;        /* the base page size */
    uint64_t decay_ms;         /* idle cached memory older than this goes back; 0: at once */
    uint64_t cache_limit;      /* most bytes of whole large mappings cached per arena */
    int huge_2m;               /* 1: a 2 MiB hugetlb pool exists (AUTO tries it) */
    int huge_1g;               /* 1: a 1 GiB hugetlb pool exists (AUTO tries it for >= 1 GiB) */
    int thp;                   /* 1: transparent huge pages can be asked for */
} nm_arena_config;

int nm_arena_configure(const nm_arena_config *config);

/* A block of at least ``size`` bytes (16-byte aligned; page aligned for large blocks) from the
 * arena of (node, kind); zeroed when ``zero``. NULL with *error set when it cannot be had. */
void *nm_arena_alloc(int node, int kind, size_t size, int zero, int *error);
/* A block of ``size`` bytes holding the old one's data: the same block when it fits its size
 * class (or its mapping), else a new one in the same arena. NULL with *error: ``block`` stays. */
void *nm_arena_realloc(void *block, size_t size, int *error);
/* Give a block back to its arena: 0, or -1 (nothing done) when it is not a live arena block. */
int nm_arena_free(void *block);
/* 1 when the configuration has a 2 MiB hugetlb pool (AUTO tries hugetlb first), else 0. */
int nm_arena_has_huge_2m(void);
/* The arena of (node, kind), made if need be, for nm_arena_take: NULL with *error set. */
void *nm_arena_find(int node, int kind, int *error);
/* nm_arena_alloc from an arena nm_arena_find gave: the handler's path, with no lookup. */
void *nm_arena_take(void *arena, size_t size, int zero, int *error);
/* AUTO from two found arenas: ``huge`` (HUGE_2M; NULL: none) while its pool serves, else
 * ``plain``; *served says which kind served the block. Sizes of 1 GiB or more go through
 * nm_arena_alloc_kind (1 GiB pages first where that pool exists). */
void *nm_arena_take_auto(void *huge, void *plain, size_t size, int zero, int *error, int *served);
/* The fast paths of the handler: a block of ``size`` from this thread's cache of ``arena``
 * (NULL: none there, take the full path); a block back into this thread's cache (0; -1: take
 * nm_arena_free). Neither takes a lock or maps anything. */
void *nm_arena_take_cached(void *arena, size_t size);
int nm_arena_give_cached(void *block);
/* nm_arena_alloc that also says which kind served the block (AUTO picks one) in *served. */
void *nm_arena_alloc_kind(int node, int kind, size_t size, int zero, int *error, int *served);
/* What ``address`` is: 0 and *out filled when it is the start of a live arena block, else -1. */
int nm_arena_block_info(const void *address, nm_arena_block *out);
/* The kind AUTO requests of ``node`` get now (HUGE_2M until its pool last failed, THP or BASE). */
int nm_arena_auto_kind(int node);
/* Give back every cached byte now. Returns the bytes given back. */
uint64_t nm_arena_trim(void);
/* Statistics of up to ``capacity`` arenas that exist; returns how many exist. */
size_t nm_arena_get_stats(nm_arena_stats *out, size_t capacity);
/* Map, place and give back one chunk of (node, kind), as an allocation would: 0 or an error. */
int nm_arena_check(int node, int kind);

/* cdef end */

#endif
