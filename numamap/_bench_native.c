/* See _bench_native.h. All state lives in one heap block per call; threads share it only
 * through an atomic start gate and a barrier created for that call. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "_bench_native.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

struct nmb_run;

struct nmb_thread {
    struct nmb_run *run;
    pthread_t handle;
    int cpu;
    int rc;             /* 0 or an errno value from this thread's setup or work */
    char *src, *dst;
    struct timespec *start, *end;  /* one entry per pass, warm-up included */
};

struct nmb_run {
    size_t bytes;
    int passes;         /* warm-up + timed passes */
    int nthreads;
    atomic_int gate;    /* 0 closed, 1 go, -1 abort (not every thread could be created) */
    pthread_barrier_t barrier;
    struct nmb_thread *threads;
};

static int nmb_wait(pthread_barrier_t *barrier)
{
    int rc = pthread_barrier_wait(barrier);
    return (rc == 0 || rc == PTHREAD_BARRIER_SERIAL_THREAD) ? 0 : rc;
}

static int nmb_pin(int cpu)
{
    if (cpu < 0)
        return EINVAL;
    size_t size = CPU_ALLOC_SIZE((size_t)cpu + 1);
    cpu_set_t *set = CPU_ALLOC((size_t)cpu + 1);
    if (set == NULL)
        return ENOMEM;
    CPU_ZERO_S(size, set);
    CPU_SET_S((size_t)cpu, size, set);
    int rc = pthread_setaffinity_np(pthread_self(), size, set);
    CPU_FREE(set);
    return rc;
}

static int nmb_map(size_t bytes, char **out)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return errno;
    /* Huge pages where the kernel offers them; EINVAL means THP is not built in: fine. */
    if (madvise(p, bytes, MADV_HUGEPAGE) != 0 && errno != EINVAL) {
        int err = errno;
        if (munmap(p, bytes) != 0)
            return errno;  /* the worse news: the mapping leaked */
        return err;
    }
    *out = p;
    return 0;
}

static int nmb_setup(struct nmb_thread *t)
{
    int rc = nmb_pin(t->cpu);
    if (rc != 0)
        return rc;
    rc = nmb_map(t->run->bytes, &t->src);
    if (rc != 0)
        return rc;
    rc = nmb_map(t->run->bytes, &t->dst);
    if (rc != 0)
        return rc;
    /* First touch from the pinned thread: the pages land on this CPU's node. */
    memset(t->src, 0x5a, t->run->bytes);
    memset(t->dst, 0, t->run->bytes);
    return 0;
}

static void *nmb_worker(void *arg)
{
    struct nmb_thread *t = arg;
    struct nmb_run *run = t->run;
    int gate;

    /* Wait until the caller has created every thread (1) or given up (-1). */
    while ((gate = atomic_load_explicit(&run->gate, memory_order_acquire)) == 0) {
        if (sched_yield() != 0)
            continue;  /* sched_yield cannot fail on Linux; were it to, this just spins */
    }
    if (gate != 1) {
        t->rc = ECANCELED;
        return NULL;
    }

    t->rc = nmb_setup(t);
    /* From here on every thread takes part in every barrier, whatever went wrong, so that
     * none waits forever; a thread with an error only stops doing the work. */
    int rc = nmb_wait(&run->barrier);
    if (rc != 0 && t->rc == 0)
        t->rc = rc;
    int failed = 0;
    for (int i = 0; i < run->nthreads; i++)
        failed |= run->threads[i].rc != 0;
    if (failed)
        return NULL;  /* some thread failed its setup (all see it after the barrier): nobody measures */

    for (int pass = 0; pass < run->passes; pass++) {
        rc = nmb_wait(&run->barrier);
        if (rc != 0 && t->rc == 0)
            t->rc = rc;
        if (t->rc == 0 && clock_gettime(CLOCK_MONOTONIC, &t->start[pass]) != 0)
            t->rc = errno;
        if (t->rc == 0) {
            memcpy(t->dst, t->src, run->bytes);
            if (clock_gettime(CLOCK_MONOTONIC, &t->end[pass]) != 0)
                t->rc = errno;
        }
    }
    /* Keep the copies observable. */
    if (t->rc == 0 && memcmp(t->dst + run->bytes - 64, t->src + run->bytes - 64, 64) != 0)
        t->rc = EIO;
    return NULL;
}

static double nmb_seconds(const struct timespec *ts)
{
    return (double)ts->tv_sec + (double)ts->tv_nsec * 1e-9;
}

static void nmb_release(struct nmb_thread *t, size_t bytes)
{
    /* munmap of a range we mapped cannot fail short of a kernel bug; its status is checked
     * all the same and recorded if this thread has nothing worse to report. */
    if (t->src != NULL && munmap(t->src, bytes) != 0 && t->rc == 0)
        t->rc = errno;
    if (t->dst != NULL && munmap(t->dst, bytes) != 0 && t->rc == 0)
        t->rc = errno;
    t->src = t->dst = NULL;
}

int nmb_copy_bandwidth(const int *cpus, int ncpus, size_t bytes_per_thread, int repeat,
                       double *gbps_out)
{
    if (cpus == NULL || gbps_out == NULL || ncpus < 1 || ncpus > NMB_MAX_THREADS || repeat < 1 ||
        repeat > NMB_MAX_REPEAT || bytes_per_thread < NMB_MIN_BYTES ||
        bytes_per_thread > SIZE_MAX / 4 / (size_t)ncpus)
        return EINVAL;

    int rc = 0, created = 0;
    int passes = repeat + 1;
    struct nmb_run *run = calloc(1, sizeof(*run));
    if (run == NULL)
        return ENOMEM;
    run->bytes = bytes_per_thread;
    run->passes = passes;
    run->nthreads = ncpus;
    run->threads = calloc((size_t)ncpus, sizeof(*run->threads));
    struct timespec *clocks = calloc((size_t)ncpus * (size_t)passes * 2, sizeof(*clocks));
    if (run->threads == NULL || clocks == NULL) {
        free(clocks);
        free(run->threads);
        free(run);
        return ENOMEM;
    }
    for (int i = 0; i < ncpus; i++) {
        run->threads[i].run = run;
        run->threads[i].cpu = cpus[i];
        run->threads[i].start = clocks + (size_t)i * (size_t)passes * 2;
        run->threads[i].end = run->threads[i].start + passes;
    }

    int have_barrier = 0;
    atomic_init(&run->gate, 0);
    rc = pthread_barrier_init(&run->barrier, NULL, (unsigned)ncpus);
    have_barrier = rc == 0;
    for (; rc == 0 && created < ncpus; created++) {
        rc = pthread_create(&run->threads[created].handle, NULL, nmb_worker, &run->threads[created]);
        if (rc != 0)
            break;
    }
    /* Open the gate: go if every thread exists, else tell those that do to leave. */
    atomic_store_explicit(&run->gate, (rc == 0 && created == ncpus) ? 1 : -1, memory_order_release);
    for (int i = 0; i < created; i++) {
        int join_rc = pthread_join(run->threads[i].handle, NULL);
        if (rc == 0 && join_rc != 0)
            rc = join_rc;
    }
    for (int i = 0; i < ncpus; i++) {
        nmb_release(&run->threads[i], bytes_per_thread);
        if (rc == 0 && run->threads[i].rc != 0)
            rc = run->threads[i].rc;
    }

    if (rc == 0) {
        double moved = 2.0 * (double)bytes_per_thread * (double)ncpus;
        for (int r = 0; r < repeat; r++) {
            int pass = r + 1;  /* pass 0 is the warm-up */
            double first = nmb_seconds(&run->threads[0].start[pass]);
            double last = nmb_seconds(&run->threads[0].end[pass]);
            for (int i = 1; i < ncpus; i++) {
                double s = nmb_seconds(&run->threads[i].start[pass]);
                double e = nmb_seconds(&run->threads[i].end[pass]);
                first = s < first ? s : first;
                last = e > last ? e : last;
            }
            gbps_out[r] = last > first ? moved / (last - first) / 1e9 : 0.0;
        }
    }

    if (have_barrier && pthread_barrier_destroy(&run->barrier) != 0 && rc == 0)
        rc = EBUSY;
    free(clocks);
    free(run->threads);
    free(run);
    return rc;
}
