/* numamap's NEP 49 memory handler (see _arena_handler.h and numamap/memory_handler.py).
 *
 * numpy calls a handler's malloc/calloc/realloc/free for the data of every array it creates
 * while the handler is installed, and later for that array's realloc and free. Blocks of at
 * least min_size bytes come from the node arena of (node, kind); smaller ones from malloc.
 * free() and realloc() tell the two apart by the arenas' region map, from the pointer alone,
 * whatever size numpy passes them (a guess for zero-size arrays).
 *
 * State: the handler struct and its context live in one heap block, which the capsule's
 * destructor frees; the context is read-only after creation except for its counters, striped
 * by thread (see nm_stripe). The one process-wide value, PyCapsule_GetPointer's address, is written
 * once before any handler exists. No function prints. */
#include "_arena_handler.h"
#include "_arena.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(offsetof(nm_numpy_handler, version) == 127, "PyDataMem_Handler.version");
_Static_assert(offsetof(nm_numpy_handler, allocator) == 128, "PyDataMem_Handler.allocator");

/* Counters striped by thread: each thread adds to its own stripe with a plain load and store
 * (no locked instruction, no cache line shared with other threads). Threads beyond NM_STRIPES
 * share stripes, and an update may then be lost: the counters are exact up to 64 threads. */
#define NM_STRIPES 64
typedef struct {
    uint64_t blocks, freed, hugetlb, hugetlb_fallbacks, in_place, errors;
    uint64_t pad[10]; /* 128 bytes a stripe: two threads' counters never share a cache line,
                         whatever the (16-byte) alignment of the block holding them */
} nm_stripe;

typedef struct {
    nm_handler_config config; /* as nm_handler_new checked it; name NULL (the caller's string) */
    void *arena;              /* the arena of (node, kind); NULL for AUTO */
    void *huge, *plain;       /* AUTO: hugetlb 2M and THP/base arenas; plain: the fallback */
    int last_error;           /* atomic */
    nm_stripe stripes[NM_STRIPES];
} nm_ctx;

#if defined(_WIN32)
static __thread int nm_my_stripe = -1;
#else
static __thread __attribute__((tls_model("initial-exec"))) int nm_my_stripe = -1;
#endif
static int nm_next_stripe; /* atomic */

/* The capsule's pointer is the whole block: the handler first, its context after it. */
typedef struct {
    nm_numpy_handler handler;
    nm_ctx ctx;
} nm_handler_block;

typedef void *(*nm_capsule_getter)(void *capsule, const char *name);
static nm_capsule_getter nm_get_pointer; /* atomic; written once, before the first handler */

static const char nm_capsule_name[] = "mem_handler";

static nm_stripe *nm_stripe_of(nm_ctx *c)
{
    int mine = nm_my_stripe;
    if (mine < 0)
        nm_my_stripe = mine = __atomic_fetch_add(&nm_next_stripe, 1, __ATOMIC_RELAXED) % NM_STRIPES;
    return &c->stripes[mine];
}

#define nm_count(c, field)                                                                        \
    do {                                                                                          \
        nm_stripe *stripe_ = nm_stripe_of(c);                                                     \
        __atomic_store_n(&stripe_->field, __atomic_load_n(&stripe_->field, __ATOMIC_RELAXED) + 1, \
                         __ATOMIC_RELAXED);                                                       \
    } while (0)

static void nm_failed(nm_ctx *c, int error)
{
    nm_count(c, errors);
    __atomic_store_n(&c->last_error, error, __ATOMIC_RELAXED);
}

static void nm_served(nm_ctx *c, int served)
{
    nm_count(c, blocks);
    if (served == NM_ARENA_HUGE_2M || served == NM_ARENA_HUGE_1G)
        nm_count(c, hugetlb);
    else if (c->config.kind == NM_ARENA_HUGE_2M || c->config.kind == NM_ARENA_HUGE_1G)
        nm_count(c, hugetlb_fallbacks);
}

/* A block from the arena; an explicit hugetlb kind the pool cannot serve gets the plain
 * arena's pages (THP where it can be asked for, else base). */
static void *nm_from_arena(nm_ctx *c, size_t size, int zero)
{
    int error = 0, served = c->config.kind;
    void *block;
    if (c->arena == NULL) {
        block = nm_arena_take_auto(c->huge, c->plain, size, zero, &error, &served);
    } else {
        block = nm_arena_take(c->arena, size, zero, &error);
        if (block == NULL && error != EINVAL && c->plain != NULL) {
            served = nm_arena_auto_kind(-1) == NM_ARENA_BASE ? NM_ARENA_BASE : NM_ARENA_THP;
            block = nm_arena_take(c->plain, size, zero, &error);
        }
    }
    if (block == NULL)
        nm_failed(c, error ? error : ENOMEM);
    else
        nm_served(c, served);
    return block;
}

static int nm_is_arena_block(const void *ptr)
{
    nm_arena_block info;
    return ptr != NULL && nm_arena_block_info(ptr, &info) == 0;
}

static void *nm_malloc(void *ctx, size_t size)
{
    nm_ctx *c = ctx;
    if (size < c->config.min_size)
        return malloc(size ? size : 1);
    /* the common case: a block this thread freed before, from its own cache */
    void *from = c->arena ? c->arena : (nm_arena_has_huge_2m() ? c->huge : c->plain);
    void *cached = nm_arena_take_cached(from, size);
    if (cached != NULL) {
        nm_served(c, from == c->huge ? NM_ARENA_HUGE_2M : c->config.kind);
        return cached;
    }
    return nm_from_arena(c, size, 0);
}

static void *nm_calloc(void *ctx, size_t nelem, size_t elsize)
{
    nm_ctx *c = ctx;
    if (elsize != 0 && nelem > SIZE_MAX / elsize) {
        nm_failed(c, ENOMEM);
        return NULL;
    }
    size_t size = nelem * elsize;
    if (size < c->config.min_size)
        return calloc(size ? size : 1, 1);
    return nm_from_arena(c, size, 1);
}

static void nm_free(void *ctx, void *ptr, size_t size_hint)
{
    (void)size_hint; /* numpy's guess for zero-size arrays: the region map knows */
    if (ptr == NULL)
        return;
    if (nm_arena_give_cached(ptr) == 0 || nm_arena_free(ptr) == 0)
        nm_count((nm_ctx *)ctx, freed);
    else
        free(ptr);
}

static void *nm_realloc(void *ctx, void *ptr, size_t new_size)
{
    nm_ctx *c = ctx;
    if (ptr == NULL)
        return nm_malloc(ctx, new_size);
    if (!nm_is_arena_block(ptr)) {
        if (new_size < c->config.min_size)
            return realloc(ptr, new_size ? new_size : 1);
        /* grown past min_size: into the arena; malloc cannot say how much it held, so copy what
         * realloc(3) would keep by moving the data with realloc first */
        void *grown = realloc(ptr, new_size);
        if (grown == NULL) {
            nm_failed(c, ENOMEM);
            return NULL;
        }
        void *block = nm_from_arena(c, new_size, 0);
        if (block == NULL)
            return grown; /* still a valid block of new_size bytes: malloc's */
        memcpy(block, grown, new_size);
        free(grown);
        return block;
    }
    int error = 0;
    void *moved = nm_arena_realloc(ptr, new_size ? new_size : 1, &error);
    if (moved == NULL) {
        nm_failed(c, error ? error : ENOMEM);
        return NULL;
    }
    if (moved == ptr) {
        nm_count(c, in_place);
    } else { /* a new block, maybe of the fallback's pages: count it as served */
        nm_arena_block info;
        nm_served(c, nm_arena_block_info(moved, &info) == 0 ? info.kind : c->config.kind);
        nm_count(c, freed);
    }
    return moved;
}

int nm_handler_set_capsule_api(uintptr_t capsule_get_pointer)
{
    nm_capsule_getter getter;
    if (capsule_get_pointer == 0)
        return EINVAL;
    memcpy(&getter, &capsule_get_pointer, sizeof getter);
    nm_capsule_getter expected = NULL;
    if (__atomic_compare_exchange_n(&nm_get_pointer, &expected, getter, 0, __ATOMIC_ACQ_REL,
                                    __ATOMIC_ACQUIRE))
        return 0;
    return expected == getter ? 0 : EINVAL;
}

int nm_handler_new(const nm_handler_config *config, void **handler_out)
{
    if (config == NULL || handler_out == NULL || config->name == NULL)
        return EINVAL;
    if (config->node < -1 || config->node > NM_ARENA_MAX_NODE
        || ((config->kind < 0 || config->kind >= NM_ARENA_KINDS) && config->kind != NM_ARENA_AUTO))
        return EINVAL;
    if (__atomic_load_n(&nm_get_pointer, __ATOMIC_ACQUIRE) == NULL)
        return EINVAL; /* nm_handler_set_capsule_api first */
    nm_handler_block *block = calloc(1, sizeof *block);
    if (block == NULL)
        return ENOMEM;
    size_t length = strlen(config->name);
    if (length > sizeof block->handler.name - 1)
        length = sizeof block->handler.name - 1;
    memcpy(block->handler.name, config->name, length);
    block->handler.version = 1;
    block->ctx.config = *config;
    block->ctx.config.name = NULL;
    int error = 0, plain_kind = nm_arena_auto_kind(-1) == NM_ARENA_BASE ? NM_ARENA_BASE : NM_ARENA_THP;
    if (config->kind == NM_ARENA_AUTO) {
        block->ctx.huge = nm_arena_find(config->node, NM_ARENA_HUGE_2M, &error);
        if (error == 0)
            block->ctx.plain = nm_arena_find(config->node, plain_kind, &error);
    } else {
        block->ctx.arena = nm_arena_find(config->node, config->kind, &error);
        if (error == 0 && (config->kind == NM_ARENA_HUGE_2M || config->kind == NM_ARENA_HUGE_1G))
            block->ctx.plain = nm_arena_find(config->node, plain_kind, &error);
    }
    if (error) {
        free(block);
        return error;
    }
    block->handler.allocator.ctx = &block->ctx;
    block->handler.allocator.malloc = nm_malloc;
    block->handler.allocator.calloc = nm_calloc;
    block->handler.allocator.realloc = nm_realloc;
    block->handler.allocator.free = nm_free;
    *handler_out = block;
    return 0;
}

void nm_handler_delete(void *handler) { free(handler); }

int nm_handler_check(void *handler)
{
    nm_ctx *c = &((nm_handler_block *)handler)->ctx;
    if (c->config.node < 0)
        return 0;
    /* a hugetlb pool that cannot serve is not a refusal: the handler falls back to THP */
    int error = nm_arena_check(c->config.node, c->config.kind);
    if (error && (c->config.kind == NM_ARENA_HUGE_2M || c->config.kind == NM_ARENA_HUGE_1G
                  || c->config.kind == NM_ARENA_AUTO))
        error = nm_arena_check(c->config.node, NM_ARENA_THP);
    return error;
}

void nm_handler_get_stats(void *handler, nm_handler_stats *out)
{
    const nm_ctx *c = &((nm_handler_block *)handler)->ctx;
    memset(out, 0, sizeof *out);
    for (int i = 0; i < NM_STRIPES; i++) {
        const nm_stripe *s = &c->stripes[i];
        out->blocks += __atomic_load_n(&s->blocks, __ATOMIC_RELAXED);
        out->freed += __atomic_load_n(&s->freed, __ATOMIC_RELAXED);
        out->hugetlb += __atomic_load_n(&s->hugetlb, __ATOMIC_RELAXED);
        out->hugetlb_fallbacks += __atomic_load_n(&s->hugetlb_fallbacks, __ATOMIC_RELAXED);
        out->in_place += __atomic_load_n(&s->in_place, __ATOMIC_RELAXED);
        out->errors += __atomic_load_n(&s->errors, __ATOMIC_RELAXED);
    }
    out->last_error = __atomic_load_n(&c->last_error, __ATOMIC_RELAXED);
}

int nm_handler_block_info(const void *data, int assume_malloc, nm_block_info *out)
{
    nm_arena_block info;
    memset(out, 0, sizeof *out);
    if (data != NULL && nm_arena_block_info(data, &info) == 0) {
        out->kind = info.large ? NM_BLOCK_LARGE : NM_BLOCK_SMALL;
        out->node = info.node;
        out->page_kind = info.kind;
        out->size = (size_t)info.size;
        out->length = (size_t)info.block_size;
        out->page_size = (size_t)info.page_size;
        return 0;
    }
    if (!assume_malloc)
        return -1;
    out->kind = NM_BLOCK_MALLOC;
    out->node = -1;
    out->page_kind = NM_ARENA_BASE;
    return 0;
}

const char *nm_handler_capsule_name(void) { return nm_capsule_name; }

static void nm_capsule_destructor(void *capsule)
{
    nm_capsule_getter getter = __atomic_load_n(&nm_get_pointer, __ATOMIC_ACQUIRE);
    void *handler = getter(capsule, nm_capsule_name);
    if (handler != NULL)
        nm_handler_delete(handler);
}

uintptr_t nm_handler_capsule_destructor(void)
{
    void (*destructor)(void *) = nm_capsule_destructor;
    uintptr_t address;
    memcpy(&address, &destructor, sizeof address);
    return address;
}
