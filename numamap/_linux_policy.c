/* numamap's NEP 49 memory handler (see _linux_policy.h and numamap/memory_handler.py).
 *
 * numpy calls a handler's malloc/calloc/realloc/free for the data of every array it creates
 * while the handler is installed, and later for that array's realloc and free. This handler
 * serves two kinds of blocks:
 *
 *   small   size < min_size: plain malloc/calloc/realloc/free, nothing added, so small arrays
 *           cost what they cost with malloc;
 *   mapped  size >= min_size: a mapping of its own, bound to the node: a base page for the
 *           header, then the data from a page boundary. Base pages (THP where asked):
 *           MPOL_PREFERRED, the data aligned to the THP size when THP is asked for and left
 *           untouched until numpy or the caller writes it. Hugetlb pages: the data on whole
 *           huge pages, MPOL_BIND and faulted in at once.
 *
 * The 64 bytes right before the data of a mapped block are its header: the block's length, the
 * data's offset in it, the length and page size of the data's pages, the size asked for, and a
 * tag (a magic number XOR the data address). free() and realloc() tell the kinds apart from the
 * pointer alone, whatever size numpy passes them (it passes a guess for zero-size arrays): a
 * pointer at a page boundary whose header holds the right tag is mapped; anything else is
 * malloc's. Reading that header is safe for any page-aligned pointer malloc returns: it lies in
 * the same page as malloc's own chunk header (the 16 bytes before the pointer). A malloc'd block
 * would need the exact tag for its own address there, which only this file writes, and only into
 * mappings (clearing it before they are unmapped).
 *
 * State: the handler struct and its context live in one heap block, which the capsule's
 * destructor frees; nothing is global. The context is read-only after creation except for the
 * counters of the mapped path, which are updated atomically. No function prints.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h> /* first: it sets the feature macros (_GNU_SOURCE) for what follows */

#include "_linux_native.h"
#include "_linux_policy.h"

#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

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
} nm_handler;

_Static_assert(offsetof(nm_handler, version) == 127, "PyDataMem_Handler.version");
_Static_assert(offsetof(nm_handler, allocator) == 128, "PyDataMem_Handler.allocator");

#define NM_MASK_WORDS (NM_POLICY_MAX_NODE / 64 + 2) /* one spare zeroed word for the kernel */

typedef struct {
    nm_policy_config config; /* as nm_policy_new checked it; name NULL (the caller's string) */
    unsigned long mask[NM_MASK_WORDS];
    unsigned long maxnode;
    nm_policy_stats stats;
} nm_ctx;

/* The capsule's pointer is the whole block: the handler first, its context after it. */
typedef struct {
    nm_handler handler;
    nm_ctx ctx;
} nm_policy;

/* The 64 bytes right before the data of a mapped block. */
typedef struct {
    size_t length;      /* of the whole block: header page, data, unused reserved room */
    size_t offset;      /* of the data from the start of the block */
    size_t data_length; /* of the pages behind the data */
    size_t page;        /* their page size */
    size_t size;        /* bytes asked for */
    uint32_t kind;      /* NM_BLOCK_MAPPED or NM_BLOCK_HUGETLB */
    uint32_t spare[3];
    uint64_t tag; /* NM_TAG_MAPPED ^ data address; 0 once released */
} nm_mapped_header;

_Static_assert(sizeof(nm_mapped_header) == 64, "the header fills the 64 bytes before the data");

#define NM_MAPPED_HEADER sizeof(nm_mapped_header)
#define NM_TAG_MAPPED UINT64_C(0x6d617070656e6d31) /* "mappenm1" */

static const char NM_CAPSULE_NAME[] = "mem_handler";

/* ---------------------------------------------------------------------------------------- */
/* Small helpers */

static int nm_is_pow2(size_t n)
{
    return n != 0 && (n & (n - 1)) == 0;
}

/* ``n`` rounded up to a multiple of the power of two ``to``; nonzero on overflow. */
static int nm_round_up(size_t n, size_t to, size_t *out)
{
    if (n > SIZE_MAX - (to - 1))
        return 1;
    *out = (n + to - 1) & ~(to - 1);
    return 0;
}

static void nm_count(uint64_t *counter)
{
    __atomic_fetch_add(counter, 1, __ATOMIC_RELAXED);
}

static void nm_note_error(nm_ctx *c, int err)
{
    __atomic_fetch_add(&c->stats.errors, 1, __ATOMIC_RELAXED);
    __atomic_store_n(&c->stats.last_error, err, __ATOMIC_RELAXED);
}

static nm_mapped_header *nm_header_of(const void *data)
{
    return (nm_mapped_header *)((char *)data - NM_MAPPED_HEADER);
}

static uint64_t nm_seal(uint64_t magic, const void *data)
{
    return magic ^ (uint64_t)(uintptr_t)data;
}

/* NM_BLOCK_SMALL, NM_BLOCK_MAPPED or NM_BLOCK_HUGETLB; see the top of the file. */
static int nm_kind_of(const void *data, size_t base_page)
{
    if (((uintptr_t)data & (base_page - 1)) != 0)
        return NM_BLOCK_SMALL;
    const nm_mapped_header *h = nm_header_of(data);
    return h->tag == nm_seal(NM_TAG_MAPPED, data) ? (int)h->kind : NM_BLOCK_SMALL;
}

static void nm_unmap_or_note(nm_ctx *c, void *base, size_t length)
{
    int err = nm_munmap(base, length);
    if (err)
        nm_note_error(c, err);
}

/* ---------------------------------------------------------------------------------------- */
/* Mapped blocks */

/* Write the header of a new mapped block: the first write to the mapping, after its policy is
 * set. Base-page blocks keep it in a page of its own, so the data's pages are left untouched
 * for the code that fills them. */
static void *nm_mapped_seal(nm_ctx *c, void *base, size_t length, size_t offset,
                            size_t data_length, size_t page, int kind, size_t size)
{
    void *data = (char *)base + offset;
    nm_mapped_header *h = nm_header_of(data);
    h->length = length;
    h->offset = offset;
    h->data_length = data_length;
    h->page = page;
    h->size = size;
    h->kind = (uint32_t)kind;
    h->tag = nm_seal(NM_TAG_MAPPED, data);
    nm_count(&c->stats.mapped);
    if (kind == NM_BLOCK_HUGETLB)
        nm_count(&c->stats.hugetlb);
    return data;
}

static void *nm_try_hugetlb(nm_ctx *c, size_t size, size_t page)
{
    /* [header page][hugetlb data], the data aligned to the huge page, so that an array of
     * exactly N huge pages takes N of them. The room for both is reserved first (PROT_NONE),
     * and the data's part is given back only to be mapped again at once with
     * MAP_FIXED_NOREPLACE: a failure (no pool, pool too small, another thread took the hole)
     * never replaces anything but our own reservation. The block is the whole room, so free()
     * releases header page, data and unused reserved ends with one munmap. */
    const size_t base_page = c->config.base_page;
    size_t data_length;
    if (nm_round_up(size ? size : 1, page, &data_length) || data_length > SIZE_MAX - 2 * page)
        return NULL;
    size_t room_length = page + data_length;
    void *room;
    int err = nm_mmap(NULL, room_length, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                      -1, 0, &room);
    if (err) {
        nm_note_error(c, err);
        return NULL;
    }
    char *data = (char *)(((uintptr_t)room + base_page + page - 1) & ~(uintptr_t)(page - 1));
    char *header_page = data - base_page, *room_end = (char *)room + room_length;
    if ((err = nm_munmap(data, data_length)) != 0) {
        nm_note_error(c, err);
        nm_unmap_or_note(c, room, room_length);
        return NULL;
    }
    int shift = __builtin_ctzll((unsigned long long)page);
    /* Shared, not private: a forked child that writes the block must never need a copy-on-write
     * huge page the pool may not have (that is SIGBUS, not an error). */
    int flags = MAP_SHARED | MAP_ANONYMOUS | MAP_HUGETLB | MAP_FIXED_NOREPLACE | (shift << MAP_HUGE_SHIFT);
    void *got;
    err = nm_mmap(data, data_length, PROT_READ | PROT_WRITE, flags, -1, 0, &got);
    if (!err && got != data) { /* a kernel before 4.17 took the address as a hint */
        nm_unmap_or_note(c, got, data_length);
        err = EEXIST;
    }
    if (!err)
        err = nm_mprotect(header_page, base_page, PROT_READ | PROT_WRITE);
    if (!err && c->config.node >= 0) {
        /* Bound and faulted in now: a node pool that runs dry shows here as an error of
         * madvise, never later as SIGBUS. Kernels without MADV_POPULATE_WRITE (before 5.14)
         * answer EINVAL and get base pages. */
        err = nm_mbind(data, data_length, NM_MPOL_BIND, c->mask, c->maxnode, 0);
        if (!err)
            err = nm_madvise(data, data_length, MADV_POPULATE_WRITE);
    }
    if (err) { /* expected when the pool cannot serve: not counted as an error */
        if (got == data) /* ours: the whole room goes */
            nm_unmap_or_note(c, room, room_length);
        else { /* only the two ends of the room are ours: the hole may be someone else's now */
            nm_unmap_or_note(c, room, (size_t)(data - (char *)room));
            if (room_end > data + data_length)
                nm_unmap_or_note(c, data + data_length, (size_t)(room_end - (data + data_length)));
        }
        return NULL;
    }
    return nm_mapped_seal(c, room, room_length, (size_t)(data - (char *)room), data_length, page,
                          NM_BLOCK_HUGETLB, size);
}

/* The data length of a base-page block of ``size`` bytes; nonzero on overflow. */
static int nm_base_data_length(const nm_ctx *c, size_t size, size_t *out)
{
    const size_t page = c->config.base_page;
    return nm_round_up(size ? size : 1, page, out) || *out > SIZE_MAX - page;
}

static void *nm_try_base_pages(nm_ctx *c, size_t size)
{
    /* [header page][data pages], the data aligned to the THP size when THP is asked for: one
     * base page more than the data, and mapped a little larger first to find the alignment. */
    const size_t page = c->config.base_page;
    size_t data_length;
    if (nm_base_data_length(c, size, &data_length))
        return NULL;
    size_t length = page + data_length;
    const size_t thp_size = c->config.thp_size;
    int thp = c->config.thp == NM_POLICY_THP_ASK && data_length >= thp_size;
    size_t slack = thp ? thp_size - page : 0;
    if (length > SIZE_MAX - slack)
        return NULL;
    void *got;
    int err = nm_mmap(NULL, length + slack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                      -1, 0, &got);
    if (err) {
        nm_note_error(c, err);
        return NULL;
    }
    char *base = got;
    if (thp) {
        uintptr_t data = ((uintptr_t)got + page + thp_size - 1) & ~(uintptr_t)(thp_size - 1);
        base = (char *)(data - page);
        size_t head = (size_t)(base - (char *)got), tail = slack - head;
        if (head && (err = nm_munmap(got, head)) != 0) {
            nm_note_error(c, err);
            nm_unmap_or_note(c, got, length + slack);
            return NULL;
        }
        if (tail && (err = nm_munmap(base + length, tail)) != 0) {
            nm_note_error(c, err);
            nm_unmap_or_note(c, base, length + tail); /* not the head: no longer ours */
            return NULL;
        }
    }
    if (c->config.node >= 0) {
        err = nm_mbind(base, length, NM_MPOL_PREFERRED, c->mask, c->maxnode, 0);
        if (err) { /* unplaced memory is not what was asked for: fail the allocation */
            nm_note_error(c, err);
            nm_unmap_or_note(c, base, length);
            return NULL;
        }
    }
    int advice = thp ? MADV_HUGEPAGE : c->config.thp == NM_POLICY_THP_FORBID ? MADV_NOHUGEPAGE : -1;
    if (advice >= 0 && (err = nm_madvise(base, length, advice)) != 0)
        nm_note_error(c, err); /* only advice: the block is good without it */
    return nm_mapped_seal(c, base, length, page, data_length, page, NM_BLOCK_MAPPED, size);
}

static void *nm_mapped_new(nm_ctx *c, size_t size)
{
    if (size > SIZE_MAX - NM_MAPPED_HEADER)
        return NULL;
    void *data;
    if (c->config.huge_page) {
        if ((data = nm_try_hugetlb(c, size, c->config.huge_page)) != NULL)
            return data;
        nm_count(&c->stats.hugetlb_fallbacks);
    } else {
        for (int i = 0; i < NM_POLICY_AUTO_SIZES && c->config.auto_huge_pages[i]; i++) {
            size_t page = c->config.auto_huge_pages[i];
            if (size >= page && (data = nm_try_hugetlb(c, size, page)) != NULL)
                return data;
        }
    }
    return nm_try_base_pages(c, size);
}

static void nm_mapped_release(nm_ctx *c, void *data)
{
    nm_mapped_header *h = nm_header_of(data);
    void *base = (char *)data - h->offset;
    size_t length = h->length;
    h->tag = 0;
    int err = nm_munmap(base, length);
    if (err)
        nm_note_error(c, err);
    else
        nm_count(&c->stats.unmapped);
}

/* Resize a mapped block where it is when its pages fit, else move a base-page block with mremap
 * (which keeps the mapping's NUMA policy and THP advice). NULL: it could not; the block is
 * unchanged. */
static void *nm_mapped_resize(nm_ctx *c, void *data, size_t new_size)
{
    nm_mapped_header *h = nm_header_of(data);
    size_t data_length;
    if (nm_round_up(new_size ? new_size : 1, h->page, &data_length) || data_length > SIZE_MAX - h->offset)
        return NULL;
    if (data_length == h->data_length) { /* the pages it has fit */
        h->size = new_size;
        nm_count(&c->stats.remapped);
        return data;
    }
    if (h->kind != NM_BLOCK_MAPPED) /* hugetlb mappings cannot grow with mremap everywhere */
        return NULL;
    const size_t offset = h->offset, old_length = h->length, length = offset + data_length;
    void *moved = mremap((char *)data - offset, old_length, length, MREMAP_MAYMOVE);
    if (moved == MAP_FAILED) {
        nm_note_error(c, errno);
        return NULL;
    }
    data = (char *)moved + offset; /* the old header may be gone: only use the new one */
    h = nm_header_of(data);
    h->length = length;
    h->data_length = data_length;
    h->size = new_size;
    h->tag = nm_seal(NM_TAG_MAPPED, data);
    const size_t thp_size = c->config.thp_size;
    if (c->config.thp == NM_POLICY_THP_ASK && data_length >= thp_size && old_length - offset < thp_size) {
        int err = nm_madvise(moved, length, MADV_HUGEPAGE); /* it was too small for advice */
        if (err)
            nm_note_error(c, err);
    }
    nm_count(&c->stats.remapped);
    return data;
}

/* ---------------------------------------------------------------------------------------- */
/* The handler's functions */

static void nm_free(void *ctx, void *ptr, size_t size_hint);

static void *nm_malloc(void *ctx, size_t size)
{
    nm_ctx *c = ctx;
    return size >= c->config.min_size ? nm_mapped_new(c, size) : malloc(size ? size : 1);
}

static void *nm_calloc(void *ctx, size_t nelem, size_t elsize)
{
    nm_ctx *c = ctx;
    size_t size;
    if (__builtin_mul_overflow(nelem, elsize, &size))
        return NULL;
    /* Fresh mappings read as zeros: nothing to clear. */
    if (size >= c->config.min_size)
        return nm_mapped_new(c, size);
    return calloc(size ? nelem : 1, size ? elsize : 1);
}

/* A new block of ``new_size`` bytes (of the kind that size calls for), the data copied over and
 * the old block freed; NULL with the old block untouched when no new block could be had. */
static void *nm_move(nm_ctx *c, void *old, int kind, size_t new_size)
{
    /* A small block may hold more than was asked for; all of it is readable. */
    size_t old_size = kind == NM_BLOCK_SMALL ? malloc_usable_size(old) : nm_header_of(old)->size;
    void *fresh = nm_malloc(c, new_size);
    if (fresh == NULL)
        return NULL;
    memcpy(fresh, old, old_size < new_size ? old_size : new_size);
    nm_free(c, old, 0);
    return fresh;
}

static void *nm_realloc(void *ctx, void *ptr, size_t new_size)
{
    nm_ctx *c = ctx;
    if (ptr == NULL)
        return nm_malloc(ctx, new_size);
    int kind = nm_kind_of(ptr, c->config.base_page);
    int mapped = new_size >= c->config.min_size;
    if (kind == NM_BLOCK_SMALL && !mapped)
        return realloc(ptr, new_size ? new_size : 1);
    if (kind != NM_BLOCK_SMALL && mapped) {
        void *data = nm_mapped_resize(c, ptr, new_size);
        if (data != NULL)
            return data;
    }
    return nm_move(c, ptr, kind, new_size); /* across the threshold, or a hugetlb block resized */
}

static void nm_free(void *ctx, void *ptr, size_t size_hint)
{
    (void)size_hint; /* numpy passes a guess for zero-size arrays: each block knows its size */
    if (ptr == NULL)
        return;
    nm_ctx *c = ctx;
    if (nm_kind_of(ptr, c->config.base_page) == NM_BLOCK_SMALL)
        free(ptr);
    else
        nm_mapped_release(c, ptr);
}

/* ---------------------------------------------------------------------------------------- */
/* Creation, inspection, the capsule */

static int nm_page_size_ok(size_t page, size_t base_page)
{
    return nm_is_pow2(page) && page >= base_page;
}

int nm_policy_new(const nm_policy_config *config, void **handler_out)
{
    if (config == NULL || handler_out == NULL || config->name == NULL)
        return EINVAL;
    if (config->node < -1 || config->node > NM_POLICY_MAX_NODE)
        return EINVAL;
    if (config->thp < NM_POLICY_THP_LEAVE || config->thp > NM_POLICY_THP_FORBID)
        return EINVAL;
    if (!nm_is_pow2(config->base_page) || config->base_page < NM_MAPPED_HEADER)
        return EINVAL;
    if (config->thp == NM_POLICY_THP_ASK && !nm_page_size_ok(config->thp_size, config->base_page))
        return EINVAL;
    if (config->huge_page && !nm_page_size_ok(config->huge_page, config->base_page))
        return EINVAL;
    for (int i = 0; i < NM_POLICY_AUTO_SIZES && config->auto_huge_pages[i]; i++) {
        if (!nm_page_size_ok(config->auto_huge_pages[i], config->base_page))
            return EINVAL;
        if (i > 0 && config->auto_huge_pages[i] >= config->auto_huge_pages[i - 1])
            return EINVAL; /* largest first */
    }

    nm_policy *p = calloc(1, sizeof *p);
    if (p == NULL)
        return ENOMEM;
    size_t name_length = strnlen(config->name, sizeof p->handler.name - 1);
    memcpy(p->handler.name, config->name, name_length); /* calloc left the rest zero */
    p->handler.version = 1;
    p->handler.allocator.ctx = &p->ctx;
    p->handler.allocator.malloc = nm_malloc;
    p->handler.allocator.calloc = nm_calloc;
    p->handler.allocator.realloc = nm_realloc;
    p->handler.allocator.free = nm_free;

    nm_ctx *c = &p->ctx;
    c->config = *config;
    c->config.name = NULL;
    if (c->config.thp != NM_POLICY_THP_ASK)
        c->config.thp_size = 0;
    if (c->config.node >= 0) {
        c->mask[c->config.node / 64] = 1UL << (c->config.node % 64);
        c->maxnode = (unsigned long)c->config.node + 2; /* kernels differ by one in reading maxnode */
    }
    *handler_out = p;
    return 0;
}

void nm_policy_delete(void *handler)
{
    free(handler);
}

int nm_policy_check(void *handler)
{
    if (handler == NULL)
        return EINVAL;
    nm_ctx *c = &((nm_policy *)handler)->ctx;
    void *page;
    int err = nm_mmap(NULL, c->config.base_page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                      -1, 0, &page);
    if (err)
        return err;
    if (c->config.node >= 0)
        err = nm_mbind(page, c->config.base_page, NM_MPOL_PREFERRED, c->mask, c->maxnode, 0);
    int unmapped = nm_munmap(page, c->config.base_page);
    return err ? err : unmapped;
}

void nm_policy_get_stats(void *handler, nm_policy_stats *out)
{
    if (handler == NULL || out == NULL)
        return;
    nm_policy_stats *s = &((nm_policy *)handler)->ctx.stats;
    out->mapped = __atomic_load_n(&s->mapped, __ATOMIC_RELAXED);
    out->unmapped = __atomic_load_n(&s->unmapped, __ATOMIC_RELAXED);
    out->hugetlb = __atomic_load_n(&s->hugetlb, __ATOMIC_RELAXED);
    out->hugetlb_fallbacks = __atomic_load_n(&s->hugetlb_fallbacks, __ATOMIC_RELAXED);
    out->remapped = __atomic_load_n(&s->remapped, __ATOMIC_RELAXED);
    out->errors = __atomic_load_n(&s->errors, __ATOMIC_RELAXED);
    out->last_error = __atomic_load_n(&s->last_error, __ATOMIC_RELAXED);
}

int nm_policy_block_info(const void *data, nm_block_info *out)
{
    if (data == NULL || out == NULL)
        return EINVAL;
    long base_page = sysconf(_SC_PAGESIZE);
    if (base_page <= 0)
        return errno ? errno : EINVAL;
    out->kind = nm_kind_of(data, (size_t)base_page);
    if (out->kind == NM_BLOCK_SMALL) {
        out->size = malloc_usable_size((void *)data);
        out->length = out->page_size = 0;
    } else {
        out->size = nm_header_of(data)->size;
        out->length = nm_header_of(data)->data_length;
        out->page_size = nm_header_of(data)->page;
    }
    return 0;
}

const char *nm_policy_capsule_name(void)
{
    return NM_CAPSULE_NAME;
}

/* Runs when the last reference to the capsule goes: the policy object's and those of every
 * array allocated through the handler. The GIL is held. */
static void nm_capsule_destructor(PyObject *capsule)
{
    /* PyCapsule_IsValid sets no exception, so one being raised meanwhile stays as it is. */
    if (PyCapsule_IsValid(capsule, NM_CAPSULE_NAME))
        free(PyCapsule_GetPointer(capsule, NM_CAPSULE_NAME));
}

uintptr_t nm_policy_capsule_destructor(void)
{
    return (uintptr_t)&nm_capsule_destructor;
}
