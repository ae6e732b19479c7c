/* nmb_handler_churn (see _bench_native.h): allocation throughput through NEP 49 handlers, on
 * threads that start together. All state lives in one heap block per call. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "_bench_native.h"
#include "_arena_handler.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#define NMB_LIVE 16

struct nmb_churner {
    const nm_numpy_handler *handler;
    atomic_int *gate; /* 0 closed, 1 go, -1 abort (not every thread could be created) */
    pthread_t handle;
    size_t pairs, max_size;
    uint64_t seed;
    int rc;
    struct timespec start, end;
};

static void *nmb_churn(void *arg)
{
    struct nmb_churner *t = arg;
    const nm_allocator *a = &t->handler->allocator;
    char *live[NMB_LIVE] = {0};
    size_t sizes[NMB_LIVE] = {0};
    uint64_t x = t->seed | 1;
    int gate;
    while ((gate = atomic_load(t->gate)) == 0)
        sched_yield();
    if (gate < 0)
        return NULL;
    clock_gettime(CLOCK_MONOTONIC, &t->start);
    for (size_t i = 0; i < t->pairs; i++) {
        x ^= x << 13; /* xorshift64: sizes that no allocator can predict */
        x ^= x >> 7;
        x ^= x << 17;
        size_t slot = i % NMB_LIVE, size = (size_t)(x % t->max_size) + 1;
        if (live[slot] != NULL)
            a->free(a->ctx, live[slot], sizes[slot]);
        char *block = a->malloc(a->ctx, size);
        if (block == NULL) {
            live[slot] = NULL;
            t->rc = ENOMEM;
            break;
        }
        block[0] = 1;
        block[size - 1] = 1;
        live[slot] = block;
        sizes[slot] = size;
    }
    for (int slot = 0; slot < NMB_LIVE; slot++)
        if (live[slot] != NULL)
            a->free(a->ctx, live[slot], sizes[slot]);
    clock_gettime(CLOCK_MONOTONIC, &t->end);
    return NULL;
}

static double nmb_at(const struct timespec *ts) { return (double)ts->tv_sec + (double)ts->tv_nsec * 1e-9; }

int nmb_handler_churn(void *const *handlers, int nthreads, size_t pairs, size_t max_size,
                      double *seconds_out)
{
    if (handlers == NULL || seconds_out == NULL || nthreads < 1 || nthreads > NMB_MAX_THREADS
        || pairs == 0 || max_size == 0)
        return EINVAL;
    for (int i = 0; i < nthreads; i++)
        if (handlers[i] == NULL)
            return EINVAL;
    struct nmb_churner *threads = calloc((size_t)nthreads, sizeof *threads);
    atomic_int gate = 0;
    if (threads == NULL)
        return ENOMEM;
    int rc = 0, created = 0;
    for (; created < nthreads; created++) {
        struct nmb_churner *t = &threads[created];
        t->handler = handlers[created];
        t->gate = &gate;
        t->pairs = pairs;
        t->max_size = max_size;
        t->seed = 0x9e3779b97f4a7c15ull * (uint64_t)(created + 1);
        if ((rc = pthread_create(&t->handle, NULL, nmb_churn, t)) != 0)
            break;
    }
    atomic_store(&gate, created < nthreads ? -1 : 1);
    if (created < nthreads) {
        for (int i = 0; i < created; i++)
            pthread_join(threads[i].handle, NULL);
        free(threads);
        return rc;
    }
    double first = 0, last = 0;
    for (int i = 0; i < nthreads; i++) {
        pthread_join(threads[i].handle, NULL);
        if (threads[i].rc && !rc)
            rc = threads[i].rc;
        double s = nmb_at(&threads[i].start), e = nmb_at(&threads[i].end);
        first = (i == 0 || s < first) ? s : first;
        last = e > last ? e : last;
    }
    free(threads);
    *seconds_out = last - first;
    return rc;
}
