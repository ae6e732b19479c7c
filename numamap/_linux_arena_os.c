/* The arenas' OS hooks on Linux (see _arena_os.h): mmap, mbind and madvise through the checked
 * wrappers of _linux_native.c, and pthreads. */
#define _GNU_SOURCE
#include "_arena.h"
#include "_arena_os.h"
#include "_linux_native.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define NM_MASK_WORDS (NM_ARENA_MAX_NODE / 64 + 2) /* one spare zeroed word for the kernel */

void nm_os_lock_take(nm_os_lock *lock) { (void)pthread_mutex_lock(lock); }
void nm_os_lock_drop(nm_os_lock *lock) { (void)pthread_mutex_unlock(lock); }
void nm_os_cond_signal(nm_os_cond *cond) { (void)pthread_cond_signal(cond); }

uint64_t nm_os_now_ms(void)
{
    struct timespec now;
    if (clock_gettime(CLOCK_MONOTONIC, &now) != 0)
        return 0;
    return (uint64_t)now.tv_sec * 1000u + (uint64_t)now.tv_nsec / 1000000u;
}

void nm_os_cond_wait(nm_os_cond *cond, nm_os_lock *lock, uint64_t ms)
{
    /* the condition variable's clock is CLOCK_REALTIME: a clock step shortens or stretches one
     * wait, and the decay thread only ever sleeps between checks */
    struct timespec until;
    if (clock_gettime(CLOCK_REALTIME, &until) != 0)
        return;
    until.tv_sec += (time_t)(ms / 1000u);
    until.tv_nsec += (long)(ms % 1000u) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    (void)pthread_cond_timedwait(cond, lock, &until);
}

static void *nm_thread_main(void *body)
{
    void (*run)(void);
    memcpy(&run, &body, sizeof run);
    run();
    return NULL;
}

int nm_os_thread_start(void (*body)(void))
{
    pthread_attr_t attr;
    pthread_t thread;
    void *arg;
    int error = pthread_attr_init(&attr);
    if (error)
        return error;
    if ((error = pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED)) == 0) {
        memcpy(&arg, &body, sizeof arg);
        error = pthread_create(&thread, &attr, nm_thread_main, arg);
    }
    (void)pthread_attr_destroy(&attr);
    return error;
}

static pthread_once_t nm_key_once = PTHREAD_ONCE_INIT;
static pthread_key_t nm_key;         /* written once, under nm_key_once */
static int nm_key_error;             /* written once, under nm_key_once */
static void (*nm_key_on_exit)(void *); /* set before the key exists; one callback per process */

static void nm_key_destructor(void *value)
{
    if (nm_key_on_exit != NULL)
        nm_key_on_exit(value);
}

static void nm_key_create(void) { nm_key_error = pthread_key_create(&nm_key, nm_key_destructor); }

int nm_os_thread_exit_hook(void (*on_exit)(void *), void *value)
{
    if (nm_key_on_exit == NULL)
        __atomic_store_n(&nm_key_on_exit, on_exit, __ATOMIC_RELEASE);
    else if (nm_key_on_exit != on_exit)
        return EINVAL;
    int error = pthread_once(&nm_key_once, nm_key_create);
    if (error)
        return error;
    if (nm_key_error)
        return nm_key_error;
    return pthread_setspecific(nm_key, value);
}

int nm_os_fork_hooks(void (*prepare)(void), void (*parent)(void), void (*child)(void))
{
    return pthread_atfork(prepare, parent, child);
}

static int nm_unmap_quietly(void *base, size_t length)
{
    return length ? nm_munmap(base, length) : 0;
}

/* Reserve room for ``length`` bytes aligned to ``align``: returns the aligned start, having
 * given back the room's ends. */
static char *nm_aligned_room(size_t length, size_t align, int flags, int *error)
{
    void *room;
    size_t room_length = length + align;
    if (room_length < length) {
        *error = ENOMEM;
        return NULL;
    }
    if ((*error = nm_mmap(NULL, room_length, flags == 0 ? PROT_NONE : PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS | (flags == 0 ? MAP_NORESERVE : 0), -1, 0,
                          &room)) != 0)
        return NULL;
    char *start = (char *)(((uintptr_t)room + align - 1) & ~(uintptr_t)(align - 1));
    char *end = (char *)room + room_length;
    if ((*error = nm_unmap_quietly(room, (size_t)(start - (char *)room))) != 0
        || (*error = nm_unmap_quietly(start + length, (size_t)(end - (start + length)))) != 0) {
        (void)nm_munmap(room, room_length);
        return NULL;
    }
    return start;
}

static int nm_bind(void *base, size_t length, int node, int mode)
{
    unsigned long mask[NM_MASK_WORDS];
    memset(mask, 0, sizeof mask);
    mask[node / 64] |= 1ul << (node % 64);
    return nm_mbind(base, length, mode, mask, (unsigned long)NM_MASK_WORDS * 64, 0);
}

void *nm_os_map(int node, int kind, size_t length, size_t align, int *error)
{
    *error = 0;
    if (node < -1 || node > NM_ARENA_MAX_NODE || length == 0 || (align & (align - 1))) {
        *error = EINVAL;
        return NULL;
    }
    if (kind == NM_ARENA_BASE || kind == NM_ARENA_THP) {
        char *base = nm_aligned_room(length, align, 1, error);
        if (base == NULL)
            return NULL;
        int advice = kind == NM_ARENA_THP ? MADV_HUGEPAGE : MADV_NOHUGEPAGE;
        /* THP advice is a wish: a kernel without THP answers EINVAL, and base pages are right */
        int advised = nm_madvise(base, length, advice);
        if (advised != 0 && advised != EINVAL)
            *error = advised;
        if (*error == 0 && node >= 0)
            *error = nm_bind(base, length, node, NM_MPOL_PREFERRED);
        if (*error) {
            (void)nm_munmap(base, length);
            return NULL;
        }
        return base;
    }
    if (kind != NM_ARENA_HUGE_2M && kind != NM_ARENA_HUGE_1G) {
        *error = EINVAL;
        return NULL;
    }
    size_t page = kind == NM_ARENA_HUGE_2M ? (size_t)2 << 20 : (size_t)1 << 30;
    if (length % page) {
        *error = EINVAL;
        return NULL;
    }
    if (align < page)
        align = page;
    /* Reserved first (PROT_NONE), then given back only to be mapped again at once with
     * MAP_FIXED_NOREPLACE: a failure never replaces anything but our own reservation. Shared,
     * not private: a forked child that writes an inherited block must never need a
     * copy-on-write huge page the pool may not have (SIGBUS); the fork hooks keep the child's
     * new blocks out of these chunks. */
    char *want = nm_aligned_room(length, align, 0, error);
    if (want == NULL)
        return NULL;
    if ((*error = nm_munmap(want, length)) != 0)
        return NULL;
    int shift = __builtin_ctzll((unsigned long long)page);
    void *got = NULL;
    *error = nm_mmap(want, length, PROT_READ | PROT_WRITE,
                     MAP_SHARED | MAP_ANONYMOUS | MAP_HUGETLB | MAP_FIXED_NOREPLACE
                         | (shift << MAP_HUGE_SHIFT), -1, 0, &got);
    if (*error == 0 && got != want) { /* a kernel before 4.17 took the address as a hint */
        (void)nm_munmap(got, length);
        *error = EEXIST;
        return NULL;
    }
    if (*error)
        return NULL;
    /* bound and faulted in now: a pool that runs dry shows here, never later as SIGBUS */
    if (node >= 0)
        *error = nm_bind(want, length, node, NM_MPOL_BIND);
    if (*error == 0)
        *error = nm_madvise(want, length, MADV_POPULATE_WRITE);
    if (*error) {
        (void)nm_munmap(want, length);
        return NULL;
    }
    return want;
}

int nm_os_unmap(void *base, size_t length, int kind)
{
    (void)kind;
    return nm_munmap(base, length);
}

int nm_os_purge(void *base, size_t length, int kind)
{
    if (kind == NM_ARENA_HUGE_2M || kind == NM_ARENA_HUGE_1G)
        return EINVAL; /* a huge page goes back whole, with its chunk */
    return nm_madvise(base, length, MADV_DONTNEED);
}
