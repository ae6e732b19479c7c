/* numamap's node arenas, small blocks: the region map, chunks, runs and thread caches (see
 * _arena.c for the design). */
#include "_arena_internal.h"

/* ---- the region map ------------------------------------------------------------------------ */
nm_desc **nm_map_slot(const void *address, int create)
{
    uintptr_t region = (uintptr_t)address / NM_ARENA_CHUNK;
    size_t top = (size_t)(region >> NM_MAP_L2_BITS);
    if (top >= NM_MAP_L1)
        return NULL;
    nm_desc **leaf = NM_LOAD(&nm_map[top]);
    if (leaf == NULL) {
        if (!create)
            return NULL;
        nm_os_lock_take(&nm_map_lock);
        leaf = nm_map[top];
        if (leaf == NULL) {
            leaf = calloc((size_t)1 << NM_MAP_L2_BITS, sizeof(nm_desc *));
            if (leaf != NULL)
                NM_STORE(&nm_map[top], leaf);
        }
        nm_os_lock_drop(&nm_map_lock);
        if (leaf == NULL)
            return NULL;
    }
    return &leaf[region & (((uintptr_t)1 << NM_MAP_L2_BITS) - 1)];
}

nm_desc *nm_lookup(const void *address)
{
    nm_desc **slot = nm_map_slot(address, 0);
    return slot == NULL ? NULL : NM_LOAD(slot);
}

/* ---- chunks and runs (arena lock held) ----------------------------------------------------- */
void nm_chunk_unmap(nm_arena *arena, nm_chunk *chunk)
{
    int error = nm_os_unmap(chunk->desc.base, NM_ARENA_CHUNK, arena->kind);
    if (error) { /* keep it: better mapped and unused than unmapped and listed */
        nm_note_failure(arena, error);
        return;
    }
    NM_STORE(nm_map_slot(chunk->desc.base, 0), (nm_desc *)NULL);
    if (chunk->prev) chunk->prev->next = chunk->next; else arena->chunks = chunk->next;
    if (chunk->next) chunk->next->prev = chunk->prev;
    arena->mapped -= NM_ARENA_CHUNK;
    arena->returned += NM_ARENA_CHUNK;
    free(chunk);
}

static nm_chunk *nm_chunk_new(nm_arena *arena, int *error)
{
    nm_chunk *chunk = calloc(1, sizeof *chunk);
    if (chunk == NULL) {
        *error = ENOMEM;
        return NULL;
    }
    char *base = nm_os_map(arena->node, arena->kind, NM_ARENA_CHUNK, NM_ARENA_CHUNK, error);
    if (base == NULL) {
        nm_note_failure(arena, *error);
        free(chunk);
        return NULL;
    }
    nm_desc **slot = nm_map_slot(base, 1);
    if (slot == NULL) {
        nm_os_unmap(base, NM_ARENA_CHUNK, arena->kind);
        free(chunk);
        *error = ENOMEM;
        return NULL;
    }
    chunk->desc.tag = NM_DESC_CHUNK;
    chunk->desc.arena = arena;
    chunk->desc.base = base;
    chunk->free_units = 0xffffffffu;
    chunk->next = arena->chunks;
    if (arena->chunks) arena->chunks->prev = chunk;
    arena->chunks = chunk;
    arena->mapped += NM_ARENA_CHUNK;
    NM_STORE(slot, &chunk->desc);
    return chunk;
}

static int nm_find_units(uint32_t free_units, int units)
{
    uint32_t want = units == 32 ? 0xffffffffu : ((1u << units) - 1);
    for (int start = 0; start + units <= NM_UNITS; start++)
        if (((free_units >> start) & want) == want)
            return start;
    return -1;
}

static void nm_list_run(nm_arena *arena, nm_run *run)
{
    run->prev = NULL;
    run->next = arena->partial[run->cls];
    if (run->next) run->next->prev = run;
    arena->partial[run->cls] = run;
    run->listed = 1;
}

static void nm_unlist_run(nm_arena *arena, nm_run *run)
{
    if (run->prev) run->prev->next = run->next; else arena->partial[run->cls] = run->next;
    if (run->next) run->next->prev = run->prev;
    run->listed = 0;
}

static nm_run *nm_run_new(nm_arena *arena, int cls, int *went_busy, int *error)
{
    size_t size = nm_small_size(cls);
    size_t want = (size * 8 + NM_UNIT - 1) / NM_UNIT;
    int units = want < 1 ? 1 : (want > NM_UNITS ? NM_UNITS : (int)want);
    nm_chunk *chunk;
    int start = -1;
    for (chunk = arena->chunks; chunk != NULL; chunk = chunk->next)
        if ((start = nm_find_units(chunk->free_units, units)) >= 0)
            break;
    if (chunk == NULL) {
        if ((chunk = nm_chunk_new(arena, error)) == NULL)
            return NULL;
        arena->misses++;
        start = 0;
    }
    if (chunk->idle_since) {
        chunk->idle_since = 0;
        *went_busy += 1;
    }
    nm_run *run = &chunk->runs[start];
    memset(run, 0, sizeof *run);
    run->chunk = chunk;
    run->start = chunk->desc.base + (size_t)start * NM_UNIT;
    run->cls = (uint16_t)cls;
    run->units = (uint8_t)units;
    run->capacity = (uint32_t)((size_t)units * NM_UNIT / size);
    run->nfree = run->capacity;
    for (int u = start; u < start + units; u++) {
        chunk->owner[u] = (uint8_t)start;
        chunk->unit_cls[u] = (uint8_t)cls;
        chunk->free_units &= ~(1u << u);
        chunk->dirty_units |= 1u << u;
    }
    nm_list_run(arena, run);
    return run;
}

nm_run *nm_run_of(nm_chunk *chunk, const void *block)
{
    size_t unit = (size_t)((const char *)block - chunk->desc.base) / NM_UNIT;
    return &chunk->runs[chunk->owner[unit]];
}

/* Take up to ``want`` blocks of ``cls`` onto the list ``*head``; returns how many (0: *error). */
static uint32_t nm_take(nm_arena *arena, int cls, uint32_t want, void **head, int *went_busy,
                        int *error)
{
    size_t size = nm_small_size(cls);
    uint32_t got = 0;
    while (got < want) {
        nm_run *run = arena->partial[cls];
        if (run == NULL && (run = nm_run_new(arena, cls, went_busy, error)) == NULL)
            break;
        while (got < want && run->nfree > 0) {
            void *block = run->free;
            if (block != NULL)
                run->free = *(void **)block;
            else
                block = run->start + (size_t)run->carved++ * size;
            run->nfree--;
            *(void **)block = *head;
            *head = block;
            got++;
        }
        if (run->nfree == 0)
            nm_unlist_run(arena, run);
    }
    arena->out += (uint64_t)got * size;
    return got;
}

/* Give one block back to its run; a run left empty gives its units back to the chunk. */
static void nm_give(nm_arena *arena, nm_chunk *chunk, void *block, int *went_idle)
{
    nm_run *run = nm_run_of(chunk, block);
    *(void **)block = run->free;
    run->free = block;
    run->nfree++;
    arena->out -= nm_small_size(run->cls);
    if (run->nfree == run->capacity) {
        if (run->listed)
            nm_unlist_run(arena, run);
        int start = (int)(run - chunk->runs);
        for (int u = start; u < start + run->units; u++)
            chunk->free_units |= 1u << u;
        if (chunk->free_units == 0xffffffffu) {
            chunk->idle_since = nm_os_now_ms();
            *went_idle += 1;
        }
    } else if (!run->listed) {
        nm_list_run(arena, run);
    }
}

/* ---- thread caches ------------------------------------------------------------------------- */
void nm_flush_slot(nm_tcache *tc, int s)
{
    nm_arena *arena = tc->slot[s].arena;
    if (arena == NULL)
        return;
    int went_idle = 0;
    nm_os_lock_take(&arena->lock);
    for (int cls = 0; cls < NM_SMALL_CLASSES; cls++) {
        nm_bin *bin = &tc->slot[s].bins[cls];
        while (bin->head != NULL) {
            void *block = bin->head;
            bin->head = *(void **)block;
            nm_give(arena, (nm_chunk *)nm_lookup(block), block, &went_idle);
        }
        NM_RSTORE(&bin->count, 0u);
    }
    arena->allocs += NM_RLOAD(&tc->slot[s].allocs); /* the counts outlive the thread's cache */
    NM_RSTORE(&tc->slot[s].allocs, (uint64_t)0);
    nm_os_lock_drop(&arena->lock);
    NM_STORE(&tc->slot[s].arena, (nm_arena *)NULL);
    while (went_idle-- > 0)
        nm_went_idle();
}

static void nm_tcache_end(void *value)
{
    nm_tcache *tc = value;
    if (tc == NULL || tc == NM_TC_DEAD)
        return;
    nm_tc = NM_TC_DEAD; /* frees from later thread-exit code go straight to the arenas */
    for (int s = 0; s < NM_SLOTS; s++)
        nm_flush_slot(tc, s);
    nm_os_lock_take(&nm_global);
    if (tc->prev) tc->prev->next = tc->next; else nm_registry = tc->next;
    if (tc->next) tc->next->prev = tc->prev;
    nm_os_lock_drop(&nm_global);
    free(tc);
}

nm_tcache *nm_tcache_get(void)
{
    nm_tcache *tc = nm_tc;
    if (tc != NULL)
        return tc == NM_TC_DEAD ? NULL : tc;
    tc = calloc(1, sizeof *tc);
    if (tc == NULL)
        return NULL; /* this call goes to the arena; the next one tries again */
    if (nm_os_thread_exit_hook(nm_tcache_end, tc) != 0) {
        free(tc);
        nm_tc = NM_TC_DEAD;
        return NULL;
    }
    nm_os_lock_take(&nm_global);
    tc->next = nm_registry;
    if (nm_registry) nm_registry->prev = tc;
    nm_registry = tc;
    nm_os_lock_drop(&nm_global);
    nm_tc = tc;
    return tc;
}

int nm_slot_index(nm_arena *arena) { return arena->slot; }

/* ---- small blocks -------------------------------------------------------------------------- */
static void *nm_small_alloc_slow(nm_arena *arena, nm_tcache *tc, int cls, int *error)
{
    int went_busy = 0;
    void *block = NULL;
    if (tc != NULL) {
        int s = arena->slot;
        if (tc->slot[s].arena != arena) {
            nm_flush_slot(tc, s);
            NM_STORE(&tc->slot[s].arena, arena);
        }
        nm_bin *bin = &tc->slot[s].bins[cls];
        nm_os_lock_take(&arena->lock);
        uint32_t got = nm_take(arena, cls, nm_bin_limit(cls) / 2 + 1, &bin->head, &went_busy, error);
        nm_os_lock_drop(&arena->lock);
        if (got > 0) {
            block = bin->head;
            bin->head = *(void **)block;
            NM_RSTORE(&bin->count, got - 1);
            NM_RSTORE(&tc->slot[s].allocs, NM_RLOAD(&tc->slot[s].allocs) + 1);
        }
    } else {
        nm_os_lock_take(&arena->lock);
        if (nm_take(arena, cls, 1, &block, &went_busy, error) == 1)
            arena->allocs++;
        nm_os_lock_drop(&arena->lock);
    }
    while (went_busy-- > 0)
        nm_no_longer_idle();
    return block;
}

void *nm_small_alloc(nm_arena *arena, int cls, int *error)
{
    nm_tcache *tc = nm_tc;
    if (tc != NULL && tc != NM_TC_DEAD) { /* the common case: a pop from this thread's list */
        int s = arena->slot;
        nm_bin *bin = &tc->slot[s].bins[cls];
        void *block = bin->head;
        if (block != NULL && tc->slot[s].arena == arena) {
            bin->head = *(void **)block;
            NM_RSTORE(&bin->count, bin->count - 1);
            NM_RSTORE(&tc->slot[s].allocs, NM_RLOAD(&tc->slot[s].allocs) + 1);
            return block;
        }
    }
    return nm_small_alloc_slow(arena, nm_tcache_get(), cls, error);
}

void nm_small_free(nm_chunk *chunk, void *block)
{
    nm_arena *arena = chunk->desc.arena;
    nm_tcache *tc = nm_tcache_get();
    int s = arena->slot;
    if (tc != NULL && tc->slot[s].arena == arena) {
        /* the unit's class never changes while one of its blocks is out */
        int cls = chunk->unit_cls[(size_t)((char *)block - chunk->desc.base) / NM_UNIT];
        nm_bin *bin = &tc->slot[s].bins[cls];
        if (bin->count >= nm_bin_limit(cls)) { /* full: send half back in one go */
            int went_idle = 0;
            uint32_t count = bin->count;
            nm_os_lock_take(&arena->lock);
            for (uint32_t n = nm_bin_limit(cls) / 2; n > 0; n--, count--) {
                void *old = bin->head;
                bin->head = *(void **)old;
                nm_give(arena, (nm_chunk *)nm_lookup(old), old, &went_idle);
            }
            nm_os_lock_drop(&arena->lock);
            NM_RSTORE(&bin->count, count);
            while (went_idle-- > 0)
                nm_went_idle();
        }
        *(void **)block = bin->head;
        bin->head = block;
        NM_RSTORE(&bin->count, bin->count + 1);
        return;
    }
    int went_idle = 0;
    nm_os_lock_take(&arena->lock);
    nm_give(arena, chunk, block, &went_idle);
    nm_os_lock_drop(&arena->lock);
    while (went_idle-- > 0)
        nm_went_idle();
}

void *nm_arena_take_cached(void *arena, size_t size)
{
    nm_tcache *tc = nm_tc;
    nm_arena *owner = arena;
    if (tc == NULL || tc == NM_TC_DEAD || size > NM_ARENA_SMALL_MAX || owner->kind == NM_ARENA_HUGE_1G)
        return NULL;
    int s = owner->slot;
    if (tc->slot[s].arena != owner)
        return NULL;
    nm_bin *bin = &tc->slot[s].bins[nm_small_class(size)];
    void *block = bin->head;
    if (block == NULL)
        return NULL;
    bin->head = *(void **)block;
    NM_RSTORE(&bin->count, bin->count - 1);
    NM_RSTORE(&tc->slot[s].allocs, NM_RLOAD(&tc->slot[s].allocs) + 1);
    return block;
}

int nm_arena_give_cached(void *block)
{
    nm_tcache *tc = nm_tc;
    nm_desc *desc = block == NULL ? NULL : nm_lookup(block);
    if (tc == NULL || tc == NM_TC_DEAD || desc == NULL || desc->tag != NM_DESC_CHUNK)
        return -1;
    nm_chunk *chunk = (nm_chunk *)desc;
    int s = desc->arena->slot;
    if (tc->slot[s].arena != desc->arena) /* also every block of a sealed arena (no slot has it) */
        return -1;
    int cls = chunk->unit_cls[(size_t)((char *)block - desc->base) / NM_UNIT];
    nm_bin *bin = &tc->slot[s].bins[cls];
    if (bin->count >= nm_bin_limit(cls))
        return -1;
    *(void **)block = bin->head;
    bin->head = block;
    NM_RSTORE(&bin->count, bin->count + 1);
    return 0;
}
