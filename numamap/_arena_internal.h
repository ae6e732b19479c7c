/* What the arena core's two files (_arena.c, _arena_runs.c) share: see _arena.c. */
#ifndef NUMAMAP_ARENA_INTERNAL_H
#define NUMAMAP_ARENA_INTERNAL_H

#include "_arena.h"
#include "_arena_os.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#if defined(_WIN32)
#define NM_INTERNAL
#define NM_TLS __thread
#else
#define NM_INTERNAL __attribute__((visibility("hidden")))
/* initial-exec: one load per access, not a call to __tls_get_addr. One pointer of static TLS is
 * well within what glibc keeps spare for modules loaded later. */
#define NM_TLS __thread __attribute__((tls_model("initial-exec")))
#endif

#define NM_UNIT ((size_t)65536)
#define NM_UNITS 32
#define NM_SMALL_CLASSES 52
#define NM_LARGE_CLASSES 120
#define NM_SLOTS 8
#define NM_ARENAS ((NM_ARENA_MAX_NODE + 2) * NM_ARENA_KINDS)
#define NM_MAP_L2_BITS 14
#define NM_MAP_L1 ((size_t)1 << 13)
#define NM_DESC_CHUNK 0x43484b31u
#define NM_DESC_LARGE 0x4c524731u
#define NM_HUGE_RETRY_MS 1000
#define NM_AUTO_2M 1
#define NM_AUTO_1G 2
#define NM_AUTO_THP 4

#define NM_LOAD(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define NM_STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define NM_ADD(p, v) __atomic_add_fetch((p), (v), __ATOMIC_RELAXED)
/* a counter only its owner thread writes, read by others: a plain load or store, never torn */
#define NM_RLOAD(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define NM_RSTORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)

struct nm_arena;

struct nm_chunk;

typedef struct nm_run {
    struct nm_run *next, *prev; /* in the arena's list of runs with free blocks of its class */
    struct nm_chunk *chunk;
    char *start;                /* of the run's first block */
    void *free;                 /* freed blocks, each holding the next one's address */
    uint32_t nfree;             /* blocks free: on the list or never carved */
    uint32_t carved;            /* blocks carved so far */
    uint32_t capacity;
    uint16_t cls;
    uint8_t units;
    uint8_t listed;
} nm_run;

typedef struct nm_desc {
    uint32_t tag; /* NM_DESC_CHUNK or NM_DESC_LARGE */
    struct nm_arena *arena;
    char *base;
} nm_desc;

typedef struct nm_chunk {
    nm_desc desc;
    struct nm_chunk *next, *prev; /* all chunks of the arena */
    uint32_t free_units;          /* bit i: unit i belongs to no run */
    uint32_t dirty_units;         /* bit i: unit i was used since it was last purged */
    uint64_t idle_since;          /* when the last run left it (0: some run is in it) */
    uint8_t owner[NM_UNITS];      /* start unit of the run over each unit */
    uint8_t unit_cls[NM_UNITS];   /* size class of the run over each unit */
    nm_run runs[NM_UNITS];        /* indexed by start unit */
} nm_chunk;

typedef struct nm_large {
    nm_desc desc;
    struct nm_large *next; /* in the cache of its class, newest first */
    size_t length;         /* bytes mapped */
    size_t size;           /* bytes asked for, while live */
    uint64_t idle_since;
    int cls;
} nm_large;

typedef struct nm_arena {
    nm_os_lock lock;
    int node, kind;
    size_t page_size;
    nm_run *partial[NM_SMALL_CLASSES];
    nm_chunk *chunks;
    nm_large *cache[NM_LARGE_CLASSES];
    uint64_t cached_large; /* bytes of cached large mappings */
    uint64_t huge_retry_at;
    int sealed; /* atomic: a forked child's copy of shared chunks: serves nothing new */
    int slot;   /* its slot in thread caches */
    /* counters: written under the lock, except the relaxed atomic ones marked */
    uint64_t mapped, out, allocs, misses, returned, failures;
    int last_error;
    uint64_t large_out; /* bytes of live large blocks (their sizes) */
} nm_arena;

typedef struct {
    void *head;
    uint32_t count; /* NM_RSTORE: stats add up what thread caches hold */
} nm_bin;

typedef struct nm_tcache {
    struct nm_tcache *next, *prev; /* registry of live thread caches */
    struct {
        nm_arena *arena;
        uint64_t allocs; /* NM_RSTORE: allocations served by this slot */
        nm_bin bins[NM_SMALL_CLASSES];
    } slot[NM_SLOTS];
} nm_tcache;

#define NM_TC_DEAD ((nm_tcache *)1)

/* ---- process-wide state (defined in _arena.c), each piece guarded as noted ------------------- */
NM_INTERNAL extern nm_os_lock nm_global;
NM_INTERNAL extern nm_os_lock nm_map_lock;
NM_INTERNAL extern nm_os_cond nm_decay_cond;
NM_INTERNAL extern nm_arena_config nm_config;
NM_INTERNAL extern int nm_decay_running, nm_fork_ready;
NM_INTERNAL extern int nm_decay_started;
NM_INTERNAL extern int nm_configured;
NM_INTERNAL extern int nm_auto_flags;
NM_INTERNAL extern uint64_t nm_decay_ms;
NM_INTERNAL extern uint64_t nm_cache_limit;
NM_INTERNAL extern uint64_t nm_idle_items;
NM_INTERNAL extern nm_arena *nm_arenas[NM_ARENAS];
NM_INTERNAL extern nm_desc **nm_map[NM_MAP_L1];
NM_INTERNAL extern nm_tcache *nm_registry;
NM_INTERNAL extern NM_TLS nm_tcache *nm_tc;

/* ---- size classes -------------------------------------------------------------------------- */
/* ---- size classes -------------------------------------------------------------------------- */
static inline int nm_floor_log2(size_t n) { return 63 - __builtin_clzll((unsigned long long)n); }

static inline int nm_small_class(size_t size)
{
    if (size <= 128)
        return size == 0 ? 0 : (int)((size + 15) >> 4) - 1;
    int p = nm_floor_log2(size - 1);
    return 8 + (p - 7) * 4 + (int)((size - 1 - ((size_t)1 << p)) >> (p - 2));
}

static inline size_t nm_small_size(int cls)
{
    if (cls < 8)
        return (size_t)16 * (size_t)(cls + 1);
    int p = 7 + (cls - 8) / 4;
    return ((size_t)1 << p) + ((size_t)((cls - 8) % 4 + 1) << (p - 2));
}

static inline int nm_large_class(size_t size)
{
    int p = nm_floor_log2(size - 1);
    return (p - 18) * 4 + (int)((size - 1 - ((size_t)1 << p)) >> (p - 2));
}

static inline size_t nm_large_size(int cls)
{
    int p = 18 + cls / 4;
    return ((size_t)1 << p) + ((size_t)(cls % 4 + 1) << (p - 2));
}

/* Blocks a thread keeps per class: 64 KiB worth, at least 4 and at most 64. */
static inline uint32_t nm_bin_limit(int cls)
{
    static const uint8_t limit[NM_SMALL_CLASSES] = {
        64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
        51, 42, 36, 32, 25, 21, 18, 16, 12, 10, 9, 8, 6, 5, 4, 4, 4, 4, 4, 4,
        4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4};
    return limit[cls];
}

static inline size_t nm_round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }

/* ---- _arena_runs.c ------------------------------------------------------------------------- */
NM_INTERNAL nm_desc **nm_map_slot(const void *address, int create);
NM_INTERNAL nm_desc *nm_lookup(const void *address);
NM_INTERNAL void nm_chunk_unmap(nm_arena *arena, nm_chunk *chunk);
NM_INTERNAL nm_run *nm_run_of(nm_chunk *chunk, const void *block);
NM_INTERNAL void nm_flush_slot(nm_tcache *tc, int s);
NM_INTERNAL nm_tcache *nm_tcache_get(void);
NM_INTERNAL int nm_slot_index(nm_arena *arena);
NM_INTERNAL void *nm_small_alloc(nm_arena *arena, int cls, int *error);
NM_INTERNAL void nm_small_free(nm_chunk *chunk, void *block);

/* ---- _arena.c ------------------------------------------------------------------------------ */
NM_INTERNAL void nm_note_failure(nm_arena *arena, int error);
NM_INTERNAL void nm_went_idle(void);
NM_INTERNAL void nm_no_longer_idle(void);

#endif
