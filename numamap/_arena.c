/* numamap's node arenas: see _arena.h for what they serve and _arena_os.h for what they need.
 *
 * Layout. Every chunk and every large mapping starts on a 2 MiB boundary, and a two-level map
 * from 2 MiB regions to descriptors tells free() what a pointer is without reading the memory
 * around it. A chunk is 32 units of 64 KiB; a run is a span of units serving one size class
 * (at least 8 blocks where the class allows), carved lazily. Descriptors live in malloc'd
 * memory, never inside the arena's pages, so a hugetlb page holds only data.
 *
 * Threads. Each thread keeps, per arena (8 slots), a short list of free blocks per size class:
 * allocation and free touch no lock while the list has room. The lists are refilled and
 * flushed in batches under the arena's lock, and flushed whole when the thread ends.
 *
 * Decay. Whole free chunks and cached large mappings carry the time they went idle; a
 * background thread, started when something first goes idle, gives back what has idled for
 * longer than the decay time. */
#include "_arena_internal.h"

/* ---- process-wide state -------------------------------------------------------------------- */
nm_os_lock nm_global = NM_OS_LOCK_INIT;   /* config, arena creation, thread registry */
nm_os_lock nm_map_lock = NM_OS_LOCK_INIT; /* map leaves; taken under arena locks */
nm_os_cond nm_decay_cond = NM_OS_COND_INIT; /* with nm_global */
nm_arena_config nm_config;                /* under nm_global; copied by readers under it */
int nm_decay_running, nm_fork_ready;      /* under nm_global */
int nm_decay_started;                     /* atomic: nm_decay_running, read without the lock */
int nm_configured;                        /* atomic */
int nm_auto_flags;                        /* atomic: NM_AUTO_* of the configuration */
uint64_t nm_decay_ms = 1000;              /* atomic */
uint64_t nm_cache_limit = 1ull << 30;     /* atomic */
uint64_t nm_idle_items;                   /* atomic */
nm_arena *nm_arenas[NM_ARENAS];           /* atomic pointers, created under nm_global */
nm_desc **nm_map[NM_MAP_L1];              /* atomic pointers to leaves, made under nm_map_lock */
nm_tcache *nm_registry;                   /* under nm_global */
NM_TLS nm_tcache *nm_tc;                  /* this thread's cache */

static void nm_decay_body(void);

static size_t nm_kind_page(int kind)
{
    switch (kind) {
    case NM_ARENA_HUGE_2M: return (size_t)2 << 20;
    case NM_ARENA_HUGE_1G: return (size_t)1 << 30;
    default: return nm_config.base_page ? (size_t)nm_config.base_page : 4096;
    }
}
/* ---- arenas -------------------------------------------------------------------------------- */
static nm_arena *nm_arena_of(int node, int kind, int *error)
{
    if (node < -1 || node > NM_ARENA_MAX_NODE || kind < 0 || kind >= NM_ARENA_KINDS) {
        *error = EINVAL;
        return NULL;
    }
    size_t index = (size_t)(node + 1) * NM_ARENA_KINDS + (size_t)kind;
    nm_arena *arena = NM_LOAD(&nm_arenas[index]);
    if (arena != NULL)
        return arena;
    nm_os_lock_take(&nm_global);
    arena = nm_arenas[index];
    if (arena == NULL && (arena = calloc(1, sizeof *arena)) != NULL) {
        nm_os_lock lock = NM_OS_LOCK_INIT;
        arena->lock = lock;
        arena->node = node;
        arena->kind = kind;
        arena->page_size = nm_kind_page(kind);
        arena->slot = (int)(index % NM_SLOTS);
        NM_STORE(&nm_arenas[index], arena);
    }
    nm_os_lock_drop(&nm_global);
    if (arena == NULL)
        *error = ENOMEM;
    return arena;
}

void nm_note_failure(nm_arena *arena, int error)
{
    arena->failures++;
    arena->last_error = error;
}


/* Something went idle: make sure the decay thread runs. Called without arena locks held. */
void nm_went_idle(void)
{
    NM_ADD(&nm_idle_items, 1);
    if (NM_LOAD(&nm_decay_started))
        return;
    nm_os_lock_take(&nm_global);
    if (!nm_decay_running && nm_os_thread_start(nm_decay_body) == 0) {
        nm_decay_running = 1;
        NM_STORE(&nm_decay_started, 1);
    }
    nm_os_lock_drop(&nm_global);
}

void nm_no_longer_idle(void) { NM_ADD(&nm_idle_items, (uint64_t)-1); }

/* ---- large blocks -------------------------------------------------------------------------- */
static void nm_large_unmap(nm_arena *arena, nm_large *large)
{
    int error = nm_os_unmap(large->desc.base, large->length, arena->kind);
    if (error) {
        nm_note_failure(arena, error);
        return; /* leaked rather than listed twice */
    }
    arena->mapped -= large->length;
    arena->returned += large->length;
    free(large);
}

static void *nm_large_alloc(nm_arena *arena, size_t size, int zero, int *error)
{
    /* a 1 GiB arena serves small sizes here too: they share the smallest large class */
    int cls = size > NM_ARENA_SMALL_MAX ? nm_large_class(size) : 0;
    if (cls >= NM_LARGE_CLASSES) {
        *error = ENOMEM;
        return NULL;
    }
    nm_os_lock_take(&arena->lock);
    nm_large *large = arena->cache[cls];
    if (large != NULL) {
        arena->cache[cls] = large->next;
        arena->cached_large -= large->length;
        arena->allocs++;
        large->size = size;
        arena->large_out += size;
        NM_STORE(nm_map_slot(large->desc.base, 0), &large->desc);
    }
    nm_os_lock_drop(&arena->lock);
    if (large != NULL) {
        nm_no_longer_idle();
        if (zero)
            memset(large->desc.base, 0, size);
        return large->desc.base;
    }
    size_t length = nm_round_up(nm_large_size(cls), arena->page_size);
    if ((large = calloc(1, sizeof *large)) == NULL) {
        *error = ENOMEM;
        return NULL;
    }
    char *base = nm_os_map(arena->node, arena->kind, length, NM_ARENA_CHUNK, error);
    nm_desc **slot = base == NULL ? NULL : nm_map_slot(base, 1);
    if (slot == NULL) {
        nm_os_lock_take(&arena->lock);
        nm_note_failure(arena, base == NULL ? *error : ENOMEM);
        nm_os_lock_drop(&arena->lock);
        if (base != NULL) {
            nm_os_unmap(base, length, arena->kind);
            *error = ENOMEM;
        }
        free(large);
        return NULL;
    }
    large->desc.tag = NM_DESC_LARGE;
    large->desc.arena = arena;
    large->desc.base = base;
    large->length = length;
    large->size = size;
    large->cls = cls;
    nm_os_lock_take(&arena->lock);
    arena->mapped += length;
    arena->allocs++;
    arena->misses++;
    arena->large_out += size;
    nm_os_lock_drop(&arena->lock);
    NM_STORE(slot, &large->desc);
    return base; /* fresh pages read as zeros */
}

static void nm_large_free(nm_large *large)
{
    nm_arena *arena = large->desc.arena;
    uint64_t limit = NM_LOAD(&nm_cache_limit);
    int cached = 0;
    /* Off the map while cached: a stale free or block_info of it finds nothing. */
    NM_STORE(nm_map_slot(large->desc.base, 0), (nm_desc *)NULL);
    nm_os_lock_take(&arena->lock);
    arena->large_out -= large->size;
    large->size = 0;
    if (NM_LOAD(&nm_decay_ms) > 0 && large->length <= limit) {
        /* make room: drop the oldest cached mappings of the largest classes first */
        for (int c = NM_LARGE_CLASSES - 1; c >= 0 && arena->cached_large + large->length > limit; c--) {
            while (arena->cache[c] != NULL && arena->cached_large + large->length > limit) {
                nm_large **tail = &arena->cache[c];
                while ((*tail)->next != NULL)
                    tail = &(*tail)->next;
                nm_large *old = *tail;
                *tail = NULL;
                arena->cached_large -= old->length;
                nm_large_unmap(arena, old);
                nm_no_longer_idle();
            }
        }
        large->idle_since = nm_os_now_ms();
        large->next = arena->cache[large->cls];
        arena->cache[large->cls] = large;
        arena->cached_large += large->length;
        cached = 1;
    } else {
        nm_large_unmap(arena, large);
    }
    nm_os_lock_drop(&arena->lock);
    if (cached)
        nm_went_idle();
}

/* ---- giving back --------------------------------------------------------------------------- */
/* Give back what idled since before ``cutoff`` (every idle thing when ``all``); arena locked. */
static void nm_release_idle(nm_arena *arena, uint64_t cutoff, int all)
{
    for (int c = 0; c < NM_LARGE_CLASSES; c++) {
        nm_large **link = &arena->cache[c];
        while (*link != NULL) {
            nm_large *large = *link;
            if (all || large->idle_since <= cutoff) {
                *link = large->next;
                arena->cached_large -= large->length;
                nm_large_unmap(arena, large);
                nm_no_longer_idle();
            } else {
                link = &large->next;
            }
        }
    }
    nm_chunk *chunk = arena->chunks;
    while (chunk != NULL) {
        nm_chunk *next = chunk->next;
        if (chunk->idle_since && (all || chunk->idle_since <= cutoff)) {
            nm_chunk_unmap(arena, chunk);
            nm_no_longer_idle();
        } else if (all && chunk->free_units & chunk->dirty_units && arena->kind != NM_ARENA_HUGE_2M) {
            /* free units of a chunk still in use: give their pages back, keep the range */
            for (int u = 0; u < NM_UNITS; u++) {
                if (!(chunk->free_units & chunk->dirty_units & (1u << u)))
                    continue;
                int error = nm_os_purge(chunk->desc.base + (size_t)u * NM_UNIT, NM_UNIT, arena->kind);
                if (error) {
                    nm_note_failure(arena, error);
                } else {
                    chunk->dirty_units &= ~(1u << u);
                    arena->returned += NM_UNIT;
                }
            }
        }
        chunk = next;
    }
}

/* Polls at half the decay time (at least every 10 ms, at most every 30 s): two wake-ups a
 * second by default, whatever the allocation rate, and nothing to signal on the fast path. */
static void nm_decay_body(void)
{
    nm_os_lock_take(&nm_global);
    for (;;) {
        uint64_t decay = NM_LOAD(&nm_decay_ms);
        uint64_t period = decay / 2 < 10 ? 10 : (decay / 2 > 30000 ? 30000 : decay / 2);
        nm_os_cond_wait(&nm_decay_cond, &nm_global, period);
        if (!NM_LOAD(&nm_idle_items))
            continue;
        nm_os_lock_drop(&nm_global);
        uint64_t now = nm_os_now_ms();
        uint64_t cutoff = now > decay ? now - decay : 0;
        for (size_t i = 0; i < NM_ARENAS; i++) {
            nm_arena *arena = NM_LOAD(&nm_arenas[i]);
            if (arena == NULL)
                continue;
            nm_os_lock_take(&arena->lock);
            nm_release_idle(arena, cutoff, 0);
            nm_os_lock_drop(&arena->lock);
        }
        nm_os_lock_take(&nm_global);
    }
}

/* ---- the public calls ---------------------------------------------------------------------- */
static void nm_fork_prepare(void)
{
    nm_os_lock_take(&nm_global);
    for (size_t i = 0; i < NM_ARENAS; i++)
        if (nm_arenas[i] != NULL)
            nm_os_lock_take(&nm_arenas[i]->lock);
    nm_os_lock_take(&nm_map_lock);
}

static void nm_fork_parent(void)
{
    nm_os_lock_drop(&nm_map_lock);
    for (size_t i = NM_ARENAS; i-- > 0;)
        if (nm_arenas[i] != NULL)
            nm_os_lock_drop(&nm_arenas[i]->lock);
    nm_os_lock_drop(&nm_global);
}

static void nm_fork_child(void)
{
    nm_fork_parent();
    /* The decay thread stayed in the parent, and may have been waiting on the condition
     * variable: a fresh one, or the child's first signal would wait for that dead waiter. */
    nm_os_cond fresh_cond = NM_OS_COND_INIT;
    nm_decay_cond = fresh_cond;
    nm_decay_running = 0;
    NM_STORE(&nm_decay_started, 0);
    /* Hugetlb chunks are MAP_SHARED: parent and child would hand out the same free blocks.
     * The child keeps its inherited blocks where they are and serves new ones from fresh
     * arenas; an arena that cannot be replaced serves nothing (AUTO then takes THP). */
    for (size_t i = 0; i < NM_ARENAS; i++) {
        nm_arena *old = nm_arenas[i];
        if (old == NULL || (old->kind != NM_ARENA_HUGE_2M && old->kind != NM_ARENA_HUGE_1G))
            continue;
        NM_STORE(&old->sealed, 1);
        /* The forking thread's cached blocks of it are free in the parent too, and their links
         * live inside the shared pages: forget them without reading or writing a byte. */
        nm_tcache *tc = nm_tc;
        if (tc != NULL && tc != NM_TC_DEAD && tc->slot[old->slot].arena == old) {
            memset(tc->slot[old->slot].bins, 0, sizeof tc->slot[old->slot].bins);
            tc->slot[old->slot].arena = NULL;
        }
        nm_arena *fresh = calloc(1, sizeof *fresh);
        if (fresh == NULL)
            continue;
        nm_os_lock lock = NM_OS_LOCK_INIT;
        fresh->lock = lock;
        fresh->node = old->node;
        fresh->kind = old->kind;
        fresh->page_size = old->page_size;
        fresh->slot = old->slot;
        NM_STORE(&nm_arenas[i], fresh);
    }
}

int nm_arena_configure(const nm_arena_config *config)
{
    if (config == NULL || config->base_page == 0 || (config->base_page & (config->base_page - 1))
        || config->base_page > NM_UNIT)
        return EINVAL;
    int error = 0;
    nm_os_lock_take(&nm_global);
    if (NM_LOAD(&nm_configured) && nm_config.base_page != config->base_page) {
        error = EINVAL; /* arenas already carved with the old page size */
    } else {
        if (!nm_fork_ready && (error = nm_os_fork_hooks(nm_fork_prepare, nm_fork_parent, nm_fork_child)) == 0)
            nm_fork_ready = 1;
        if (error == 0) {
            nm_config = *config;
            NM_STORE(&nm_auto_flags, (config->huge_2m ? NM_AUTO_2M : 0) | (config->huge_1g ? NM_AUTO_1G : 0)
                                         | (config->thp ? NM_AUTO_THP : 0));
            NM_STORE(&nm_configured, 1);
            /* the pools may have changed: hugetlb is tried again at once */
            for (size_t i = 0; i < NM_ARENAS; i++)
                if (nm_arenas[i] != NULL)
                    NM_STORE(&nm_arenas[i]->huge_retry_at, (uint64_t)0);
            NM_STORE(&nm_decay_ms, config->decay_ms);
            NM_STORE(&nm_cache_limit, config->cache_limit);
            nm_os_cond_signal(&nm_decay_cond);
        }
    }
    nm_os_lock_drop(&nm_global);
    return error;
}

static int nm_ready(void) { return NM_LOAD(&nm_configured); }

int nm_arena_auto_kind(int node)
{
    int flags = NM_LOAD(&nm_auto_flags);
    if ((flags & NM_AUTO_2M) && node >= -1 && node <= NM_ARENA_MAX_NODE) {
        nm_arena *arena = NM_LOAD(&nm_arenas[(size_t)(node + 1) * NM_ARENA_KINDS + NM_ARENA_HUGE_2M]);
        uint64_t retry = arena == NULL ? 0 : NM_LOAD(&arena->huge_retry_at);
        if (retry == 0 || nm_os_now_ms() >= retry)
            return NM_ARENA_HUGE_2M;
    }
    return (flags & NM_AUTO_THP) ? NM_ARENA_THP : NM_ARENA_BASE;
}

static void *nm_alloc_from(nm_arena *arena, size_t size, int zero, int *error)
{
    if (NM_LOAD(&arena->sealed)) {
        *error = ENOMEM;
        return NULL;
    }
    if (size <= NM_ARENA_SMALL_MAX && arena->kind != NM_ARENA_HUGE_1G) {
        void *block = nm_small_alloc(arena, nm_small_class(size), error);
        if (block != NULL && zero)
            memset(block, 0, size);
        return block;
    }
    return nm_large_alloc(arena, size, zero, error);
}

static void *nm_alloc_in(int node, int kind, size_t size, int zero, int *error)
{
    nm_arena *arena = nm_arena_of(node, kind, error);
    return arena == NULL ? NULL : nm_alloc_from(arena, size, zero, error);
}

int nm_arena_has_huge_2m(void) { return (NM_LOAD(&nm_auto_flags) & NM_AUTO_2M) != 0; }

void *nm_arena_find(int node, int kind, int *error)
{
    *error = nm_ready() ? 0 : EINVAL; /* nm_arena_configure first */
    return *error ? NULL : nm_arena_of(node, kind, error);
}

void *nm_arena_take(void *arena, size_t size, int zero, int *error)
{
    *error = 0;
    if (size > ((size_t)1 << 46)) {
        *error = ENOMEM;
        return NULL;
    }
    return nm_alloc_from(arena, size, zero, error);
}

void *nm_arena_take_auto(void *huge, void *plain, size_t size, int zero, int *error, int *served)
{
    nm_arena *arena = huge;
    int flags = NM_LOAD(&nm_auto_flags);
    if (size >= ((size_t)1 << 30) && (flags & NM_AUTO_1G))
        return nm_arena_alloc_kind(((nm_arena *)plain)->node, NM_ARENA_AUTO, size, zero, error, served);
    if (arena != NULL && (flags & NM_AUTO_2M)) {
        uint64_t retry = NM_LOAD(&arena->huge_retry_at);
        if (retry == 0 || nm_os_now_ms() >= retry) {
            *served = arena->kind;
            void *block = nm_arena_take(arena, size, zero, error);
            if (block != NULL) {
                if (retry != 0)
                    NM_STORE(&arena->huge_retry_at, (uint64_t)0);
                return block;
            }
            if (*error == EINVAL)
                return NULL;
            /* the pool could not serve: the plain arena for a while, then hugetlb again */
            NM_STORE(&arena->huge_retry_at, nm_os_now_ms() + NM_HUGE_RETRY_MS);
        }
    }
    *served = ((nm_arena *)plain)->kind;
    return nm_arena_take(plain, size, zero, error);
}

void *nm_arena_alloc_kind(int node, int kind, size_t size, int zero, int *error, int *served)
{
    *error = 0;
    *served = kind;
    if (!nm_ready()) {
        *error = EINVAL; /* nm_arena_configure first */
        return NULL;
    }
    if (size > ((size_t)1 << 46)) {
        *error = ENOMEM;
        return NULL;
    }
    if (kind != NM_ARENA_AUTO)
        return nm_alloc_in(node, kind, size, zero, error);
    int flags = NM_LOAD(&nm_auto_flags);
    if ((flags & NM_AUTO_1G) && size >= ((size_t)1 << 30)) {
        void *block = nm_alloc_in(node, *served = NM_ARENA_HUGE_1G, size, zero, error);
        if (block != NULL)
            return block;
    }
    nm_arena *huge = NULL, *plain;
    if ((flags & NM_AUTO_2M) && (huge = nm_arena_of(node, NM_ARENA_HUGE_2M, error)) == NULL)
        return NULL;
    if ((plain = nm_arena_of(node, (flags & NM_AUTO_THP) ? NM_ARENA_THP : NM_ARENA_BASE, error)) == NULL)
        return NULL;
    if (size >= ((size_t)1 << 30))
        flags &= ~NM_AUTO_1G; /* tried above */
    if (huge != NULL) {
        uint64_t retry = NM_LOAD(&huge->huge_retry_at);
        if (retry == 0 || nm_os_now_ms() >= retry) {
            *served = NM_ARENA_HUGE_2M;
            void *block = nm_alloc_from(huge, size, zero, error);
            if (block != NULL) {
                if (retry != 0)
                    NM_STORE(&huge->huge_retry_at, (uint64_t)0);
                return block;
            }
            if (*error == EINVAL)
                return NULL;
            NM_STORE(&huge->huge_retry_at, nm_os_now_ms() + NM_HUGE_RETRY_MS);
        }
    }
    *error = 0;
    *served = plain->kind;
    return nm_alloc_from(plain, size, zero, error);
}

void *nm_arena_alloc(int node, int kind, size_t size, int zero, int *error)
{
    int served;
    return nm_arena_alloc_kind(node, kind, size, zero, error, &served);
}

int nm_arena_free(void *block)
{
    nm_desc *desc = block == NULL ? NULL : nm_lookup(block);
    if (desc == NULL)
        return -1;
    if (NM_LOAD(&desc->arena->sealed))
        return 0; /* a forked child's block of a chunk it shares with its parent: left alone */
    if (desc->tag == NM_DESC_CHUNK) {
        nm_small_free((nm_chunk *)desc, block);
        return 0;
    }
    if (desc->tag == NM_DESC_LARGE && desc->base == block) {
        nm_large_free((nm_large *)desc);
        return 0;
    }
    return -1;
}

int nm_arena_block_info(const void *address, nm_arena_block *out)
{
    nm_desc *desc = address == NULL ? NULL : nm_lookup(address);
    if (desc == NULL)
        return -1;
    nm_arena *arena = desc->arena;
    memset(out, 0, sizeof *out);
    out->node = arena->node;
    out->kind = arena->kind;
    out->page_size = arena->page_size;
    out->start = (uint64_t)(uintptr_t)address;
    if (desc->tag == NM_DESC_LARGE) {
        nm_large *large = (nm_large *)desc;
        if (desc->base != address)
            return -1;
        out->large = 1;
        out->size = large->size;
        out->block_size = large->length;
        return 0;
    }
    nm_chunk *chunk = (nm_chunk *)desc;
    size_t unit = (size_t)((const char *)address - chunk->desc.base) / NM_UNIT;
    if (chunk->free_units & (1u << unit))
        return -1;
    nm_run *run = nm_run_of(chunk, address);
    size_t size = nm_small_size(run->cls);
    if ((size_t)((const char *)address - run->start) % size != 0)
        return -1;
    out->size = size;
    out->block_size = size;
    return 0;
}

void *nm_arena_realloc(void *block, size_t size, int *error)
{
    nm_arena_block info;
    *error = 0;
    if (nm_arena_block_info(block, &info) != 0) {
        *error = EINVAL;
        return NULL;
    }
    if (info.large && size <= info.block_size && size > NM_ARENA_SMALL_MAX && size >= info.block_size / 4) {
        nm_large *large = (nm_large *)nm_lookup(block);
        nm_os_lock_take(&large->desc.arena->lock);
        large->desc.arena->large_out += (uint64_t)size - large->size;
        large->size = size;
        nm_os_lock_drop(&large->desc.arena->lock);
        return block;
    }
    if (!info.large && size <= info.block_size && nm_small_class(size) + 4 >= nm_small_class(info.block_size))
        return block;
    void *moved = nm_alloc_in(info.node, info.kind, size, 0, error);
    if (moved == NULL && *error != EINVAL
        && (info.kind == NM_ARENA_HUGE_2M || info.kind == NM_ARENA_HUGE_1G)) {
        /* the pool cannot serve the new size: the pages 'auto' takes without it */
        int plain = (NM_LOAD(&nm_auto_flags) & NM_AUTO_THP) ? NM_ARENA_THP : NM_ARENA_BASE;
        moved = nm_alloc_in(info.node, plain, size, 0, error);
    }
    if (moved == NULL)
        return NULL;
    memcpy(moved, block, size < info.size ? size : info.size);
    nm_arena_free(block);
    return moved;
}

uint64_t nm_arena_trim(void)
{
    uint64_t before = 0, after = 0;
    nm_tcache *tc = nm_tcache_get();
    if (tc != NULL) /* this thread's cache; other threads keep theirs (bounded, and in use) */
        for (int s = 0; s < NM_SLOTS; s++)
            nm_flush_slot(tc, s);
    for (size_t i = 0; i < NM_ARENAS; i++) {
        nm_arena *arena = NM_LOAD(&nm_arenas[i]);
        if (arena == NULL)
            continue;
        nm_os_lock_take(&arena->lock);
        before += arena->returned;
        nm_release_idle(arena, 0, 1);
        after += arena->returned;
        nm_os_lock_drop(&arena->lock);
    }
    return after - before;
}

size_t nm_arena_get_stats(nm_arena_stats *out, size_t capacity)
{
    size_t count = 0;
    for (size_t i = 0; i < NM_ARENAS; i++) {
        nm_arena *arena = NM_LOAD(&nm_arenas[i]);
        if (arena == NULL)
            continue;
        nm_os_lock_take(&arena->lock);
        int idle = arena->mapped == 0 && arena->misses == 0 && arena->failures == 0 && arena->returned == 0;
        nm_os_lock_drop(&arena->lock);
        if (idle) /* found for a handler, never used: no row */
            continue;
        if (count < capacity) {
            nm_arena_stats *st = &out[count];
            uint64_t held = 0, allocs = 0;
            int s = arena->slot;
            nm_os_lock_take(&nm_global); /* the registry; never held while taking an arena lock */
            for (nm_tcache *tc = nm_registry; tc != NULL; tc = tc->next) {
                if (NM_LOAD(&tc->slot[s].arena) == arena) {
                    for (int c = 0; c < NM_SMALL_CLASSES; c++)
                        held += (uint64_t)NM_RLOAD(&tc->slot[s].bins[c].count) * nm_small_size(c);
                    allocs += NM_RLOAD(&tc->slot[s].allocs);
                }
            }
            nm_os_lock_drop(&nm_global);
            nm_os_lock_take(&arena->lock);
            memset(st, 0, sizeof *st);
            st->node = arena->node;
            st->kind = arena->kind;
            st->page_size = arena->page_size;
            st->mapped = arena->mapped;
            uint64_t out_bytes = arena->out + arena->large_out;
            st->in_use = out_bytes > held ? out_bytes - held : 0;
            st->cached = st->mapped > st->in_use ? st->mapped - st->in_use : 0;
            st->misses = arena->misses;
            allocs += arena->allocs;
            st->hits = allocs > arena->misses ? allocs - arena->misses : 0;
            st->returned = arena->returned;
            st->failures = arena->failures;
            st->last_error = arena->last_error;
            nm_os_lock_drop(&arena->lock);
        }
        count++;
    }
    return count;
}

int nm_arena_check(int node, int kind)
{
    int error = 0;
    if (!nm_ready())
        return EINVAL;
    if (kind == NM_ARENA_AUTO)
        kind = nm_arena_auto_kind(node);
    if (node < -1 || node > NM_ARENA_MAX_NODE || kind < 0 || kind >= NM_ARENA_KINDS)
        return EINVAL;
    size_t length = kind == NM_ARENA_HUGE_1G ? (size_t)1 << 30 : NM_ARENA_CHUNK;
    void *base = nm_os_map(node, kind, length, NM_ARENA_CHUNK, &error);
    if (base == NULL)
        return error ? error : ENOMEM;
    return nm_os_unmap(base, length, kind);
}
