/* Latency of one allocate+free pair, per allocator candidate for numamap's arenas (issue 11).
 *
 * Built once per candidate by tools/arena-candidates/run, because the PyPI mimalloc library
 * replaces malloc for the whole process and must not share a binary with the libc row:
 *   (none)          the C library's malloc/free
 *   -DUSE_UMF       Unified Memory Framework pools over its OS provider bound to node 0
 *   -DUSE_MIMALLOC  mi_malloc, and a heap in an exclusive arena over memory placed on node 0
 *   -DUSE_NUMAMAP   numamap's own core (numamap/_arena.c and its Linux OS layer)
 * It also builds with mingw-w64 (-D_WIN32 comes with it) for the UMF and mimalloc rows under Wine.
 *
 * Usage: bench THREADS [REPS]. Prints one tab-separated line per (variant, size, mode):
 *   variant size threads mode median_ns min_ns max_ns
 * ns is wall time per pair per thread, median over REPS repetitions (default 9) of about 10 ms
 * each. Mode "pair" frees each block at once and writes one byte of it; mode "batch" holds 16
 * blocks and writes one byte per 4 KiB page of each, so memory that went back to the OS between
 * batches pays its page faults again. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _WIN32
#include <windows.h>
#else
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

typedef struct {
    const char *name;
    void *(*alloc)(size_t size);
    void (*release)(void *p);
} variant;

static void die(const char *what, long code) {
    fprintf(stderr, "bench: %s failed (%ld)\n", what, code);
    exit(1);
}

/* Memory of ``size`` bytes aligned to ``align``, placed on node 0 (mbind without libnuma:
 * MPOL_BIND is 2; on Windows the node is a preference, and Wine ignores it). */
static __attribute__((unused)) void *node0_region(size_t size, size_t align) {
#ifdef _WIN32
    char *raw = VirtualAllocExNuma(GetCurrentProcess(), NULL, size + align,
                                   MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE, 0);
    if (!raw) die("VirtualAllocExNuma", (long)GetLastError());
#else
    char *raw = mmap(NULL, size + align, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (raw == MAP_FAILED) die("mmap", errno);
#endif
    char *start = (char *)(((uintptr_t)raw + align - 1) / align * align);
#ifndef _WIN32
    unsigned long mask = 1;
    if (syscall(SYS_mbind, start, size, 2, &mask, 8 * sizeof(mask) + 1, 0) != 0)
        die("mbind", errno);
#endif
    return start;
}

static __attribute__((unused)) void *libc_alloc(size_t n) { return malloc(n); }
static __attribute__((unused)) void libc_free(void *p) { free(p); }

#ifdef USE_UMF
#include <umf/memory_pool.h>
#include <umf/memory_provider.h>
#include <umf/pools/pool_disjoint.h>
#include <umf/pools/pool_scalable.h>
#include <umf/providers/provider_os_memory.h>

/* umf/pools/pool_jemalloc.h is not in the PyPI wheel; the exported symbol is. */
const umf_memory_pool_ops_t *umfJemallocPoolOps(void);
static umf_memory_pool_handle_t umf_pools[3];

static umf_memory_provider_handle_t umf_node0_provider(void) {
    umf_os_memory_provider_params_handle_t params;
    umf_memory_provider_handle_t provider;
    unsigned nodes[1] = {0};
    int rc = umfOsMemoryProviderParamsCreate(&params);
    if (rc) die("umfOsMemoryProviderParamsCreate", rc);
    if ((rc = umfOsMemoryProviderParamsSetNumaList(params, nodes, 1))) die("SetNumaList", rc);
    if ((rc = umfOsMemoryProviderParamsSetNumaMode(params, UMF_NUMA_MODE_BIND)))
        die("SetNumaMode", rc);
    if ((rc = umfMemoryProviderCreate(umfOsMemoryProviderOps(), params, &provider)))
        die("umfMemoryProviderCreate", rc);
    umfOsMemoryProviderParamsDestroy(params);
    return provider;
}

/* 0: disjoint as it comes, 1: disjoint keeping 64 free slabs per bucket (default 4),
 * 2: scalable (needs tbbmalloc). 0 or UMF's error code. */
static int umf_make_pool(int which) {
    const umf_memory_pool_ops_t *ops = which == 2 ? umfScalablePoolOps() : umfDisjointPoolOps();
    void *params;
    int rc;
    if (which == 2) {
        umf_scalable_pool_params_handle_t sp;
        if ((rc = umfScalablePoolParamsCreate(&sp))) return rc;
        params = sp;
    } else {
        umf_disjoint_pool_params_handle_t dp;
        if ((rc = umfDisjointPoolParamsCreate(&dp))) die("umfDisjointPoolParamsCreate", rc);
        if (which == 1 && (rc = umfDisjointPoolParamsSetCapacity(dp, 64)))
            die("umfDisjointPoolParamsSetCapacity", rc);
        params = dp;
    }
    rc = umfPoolCreate(ops, umf_node0_provider(), params, UMF_POOL_CREATE_FLAG_OWN_PROVIDER,
                       &umf_pools[which]);
    if (which == 2) umfScalablePoolParamsDestroy(params);
    else umfDisjointPoolParamsDestroy(params);
    return rc;
}

static void umf_free_checked(umf_memory_pool_handle_t pool, void *p) {
    int rc = umfPoolFree(pool, p);
    if (rc) die("umfPoolFree", rc);
}
static void *umf0_alloc(size_t n) { return umfPoolMalloc(umf_pools[0], n); }
static void umf0_free(void *p) { umf_free_checked(umf_pools[0], p); }
static void *umf1_alloc(size_t n) { return umfPoolMalloc(umf_pools[1], n); }
static void umf1_free(void *p) { umf_free_checked(umf_pools[1], p); }
static void *umf2_alloc(size_t n) { return umfPoolMalloc(umf_pools[2], n); }
static void umf2_free(void *p) { umf_free_checked(umf_pools[2], p); }
#endif

#ifdef USE_MIMALLOC
#include <mimalloc.h>
static mi_heap_t *mi_arena_heap;

/* An exclusive arena of 256 MiB on node 0 and a heap that allocates only there. */
static void mi_arena_setup(void) {
    size_t align = mi_arena_min_alignment(), size = (size_t)256 << 20;
    if (size < mi_arena_min_size()) size = mi_arena_min_size();
    if (align < 4096) align = 4096;
    size = (size + align - 1) / align * align;
    void *start = node0_region(size, align);
    mi_arena_id_t arena;
    if (!mi_manage_os_memory_ex(start, size, true, false, true, 0, true, &arena))
        die("mi_manage_os_memory_ex", 0);
    if (!(mi_arena_heap = mi_heap_new_in_arena(arena))) die("mi_heap_new_in_arena", 0);
    void *probe = mi_heap_malloc(mi_arena_heap, 1 << 20);
    if (!probe || !mi_arena_contains(arena, probe)) die("mi_arena_contains", 0);
    mi_free(probe);
}

static void *mi_alloc(size_t n) { return mi_malloc(n); }
static void mi_release(void *p) { mi_free(p); }
static void *mia_alloc(size_t n) { return mi_heap_malloc(mi_arena_heap, n); }
#endif

#ifdef USE_NUMAMAP
#include "_arena.h"
static void *nm_alloc(size_t n) {
    int err = 0;
    void *p = nm_arena_alloc(0, NM_ARENA_THP, n, 0, &err);
    if (!p) die("nm_arena_alloc", err);
    return p;
}
static void nm_release(void *p) {
    int rc = nm_arena_free(p);
    if (rc) die("nm_arena_free", rc);
}
#endif

static const variant *current;
static size_t cur_size, cur_iters;
static int cur_mode;
static pthread_barrier_t start_line, finish_line;

static double now_ns(void) {
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts)) die("clock_gettime", errno);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

#define BATCH 16
/* Time cur_iters pairs (a multiple of BATCH); returns ns per pair. */
static double one_run(void) {
    volatile char *live[BATCH];
    size_t keep = cur_mode ? BATCH : 1, step = cur_mode ? 4096 : cur_size;
    double t0 = now_ns();
    for (size_t i = 0; i < cur_iters; i += keep) {
        for (size_t b = 0; b < keep; b++) {
            volatile char *p = live[b] = current->alloc(cur_size);
            if (!p) die("alloc", (long)cur_size);
            for (size_t off = 0; off < cur_size; off += step) p[off] = (char)i;
        }
        for (size_t b = 0; b < keep; b++) current->release((void *)live[b]);
    }
    return (now_ns() - t0) / cur_iters;
}

static void *worker(void *arg) {
    double *out = arg;
    pthread_barrier_wait(&start_line);
    *out = one_run();
    pthread_barrier_wait(&finish_line);
    return NULL;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void measure(const variant *v, size_t size, int mode, int threads, int reps) {
    double rep[64], per[64];
    pthread_t tid[64];
    current = v, cur_size = size, cur_mode = mode;
    /* Enough pairs for about 10 ms per repetition; the last calibration run is the warm-up. */
    for (cur_iters = BATCH;; cur_iters *= 2) {
        double ns = one_run();
        if (ns * cur_iters > 1e7 || cur_iters >= (1u << 22)) break;
    }
    for (int r = 0; r < reps; r++) {
        if (threads == 1) {
            per[0] = one_run();
        } else {
            for (int t = 0; t < threads; t++) {
                int rc = pthread_create(&tid[t], NULL, worker, &per[t]);
                if (rc) die("pthread_create", rc);
            }
            pthread_barrier_wait(&start_line);
            pthread_barrier_wait(&finish_line);
            for (int t = 0; t < threads; t++) {
                int rc = pthread_join(tid[t], NULL);
                if (rc) die("pthread_join", rc);
            }
        }
        rep[r] = per[0]; /* the slowest thread's time */
        for (int t = 1; t < threads; t++)
            if (per[t] > rep[r]) rep[r] = per[t];
    }
    qsort(rep, reps, sizeof(double), by_value);
    printf("%s\t%zu\t%d\t%s\t%.1f\t%.1f\t%.1f\n", v->name, size, threads,
           mode ? "batch" : "pair", rep[reps / 2], rep[0], rep[reps - 1]);
    fflush(stdout);
}

int main(int argc, char **argv) {
    static const size_t sizes[] = {16, 16384, 262144, 2097152};
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    int reps = argc > 2 ? atoi(argv[2]) : 9;
    variant list[4];
    int n = 0, rc;
    if (threads < 1 || threads > 64 || reps < 1 || reps > 64) {
        fprintf(stderr, "usage: bench THREADS(1-64) [REPS(1-64)]\n");
        return 2;
    }
    if ((rc = pthread_barrier_init(&start_line, NULL, threads + 1)) ||
        (rc = pthread_barrier_init(&finish_line, NULL, threads + 1)))
        die("pthread_barrier_init", rc);
#if defined(USE_UMF)
    printf("#\tumfJemallocPoolOps\t%s\n", umfJemallocPoolOps() ? "available" : "NULL");
    if ((rc = umf_make_pool(0))) die("umfPoolCreate(disjoint)", rc);
    list[n++] = (variant){"umf-disjoint", umf0_alloc, umf0_free};
    if ((rc = umf_make_pool(1))) die("umfPoolCreate(disjoint, capacity 64)", rc);
    list[n++] = (variant){"umf-disjoint-cap64", umf1_alloc, umf1_free};
    if ((rc = umf_make_pool(2)) == 0) list[n++] = (variant){"umf-scalable", umf2_alloc, umf2_free};
    else printf("#\tumf-scalable\tunavailable (UMF error %d: no tbbmalloc?)\n", rc);
#elif defined(USE_MIMALLOC)
    mi_arena_setup();
    list[n++] = (variant){"mi_malloc", mi_alloc, mi_release};
    list[n++] = (variant){"mi-arena-heap", mia_alloc, mi_release};
#elif defined(USE_NUMAMAP)
    nm_arena_config cfg;
    memset(&cfg, 0, sizeof(cfg)); /* no hugetlb pools; fields added later stay off */
    cfg.base_page = (uint64_t)sysconf(_SC_PAGESIZE);
    cfg.decay_ms = 1000;
    cfg.cache_limit = (uint64_t)1 << 30;
    cfg.thp = 1;
    if ((rc = nm_arena_configure(&cfg))) die("nm_arena_configure", rc);
    list[n++] = (variant){"numamap", nm_alloc, nm_release};
#else
    list[n++] = (variant){"libc", libc_alloc, libc_free};
#endif
    for (int v = 0; v < n; v++)
        for (int mode = 0; mode < 2; mode++)
            for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++)
                measure(&list[v], sizes[s], mode, threads, reps);
    return 0;
}
