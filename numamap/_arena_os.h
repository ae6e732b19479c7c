/* What the arena core (_arena.c) asks of the operating system. _linux_arena_os.c implements it
 * with mmap/mbind/madvise and pthreads; _windows_arena_os.c with VirtualAlloc2 and Win32 threads.
 * Not read by cffi: nothing here is called from Python. */
#ifndef NUMAMAP_ARENA_OS_H
#define NUMAMAP_ARENA_OS_H

#include <stddef.h>
#include <stdint.h>

#ifdef _WIN32
#include <windows.h>
typedef SRWLOCK nm_os_lock;
typedef CONDITION_VARIABLE nm_os_cond;
#define NM_OS_LOCK_INIT SRWLOCK_INIT
#define NM_OS_COND_INIT CONDITION_VARIABLE_INIT
#else
#include <pthread.h>
typedef pthread_mutex_t nm_os_lock;
typedef pthread_cond_t nm_os_cond;
#define NM_OS_LOCK_INIT PTHREAD_MUTEX_INITIALIZER
#define NM_OS_COND_INIT PTHREAD_COND_INITIALIZER
#endif

void nm_os_lock_take(nm_os_lock *lock);
void nm_os_lock_drop(nm_os_lock *lock);
/* Wait on ``cond`` (``lock`` held) for at most ``ms`` milliseconds or until signalled. */
void nm_os_cond_wait(nm_os_cond *cond, nm_os_lock *lock, uint64_t ms);
void nm_os_cond_signal(nm_os_cond *cond);
/* Milliseconds of a monotonic clock. */
uint64_t nm_os_now_ms(void);

/* Run ``body`` on a new detached thread: 0 or an error code. */
int nm_os_thread_start(void (*body)(void));
/* Call ``on_exit(value)`` when the calling thread ends (once per thread: a later call replaces
 * the value). 0 or an error code. */
int nm_os_thread_exit_hook(void (*on_exit)(void *), void *value);
/* Make fork() safe: prepare runs before a fork, parent and child after it (a no-op on Windows). */
int nm_os_fork_hooks(void (*prepare)(void), void (*parent)(void), void (*child)(void));

/* Map ``length`` bytes (a multiple of the page size of ``kind``) aligned to ``align``, placed on
 * ``node`` (-1: anywhere), readable and writable. Hugetlb chunks are faulted in, so a pool that
 * cannot serve fails here and not later. NULL with *error set. */
void *nm_os_map(int node, int kind, size_t length, size_t align, int *error);
/* Unmap what nm_os_map returned. 0 or an error code. */
int nm_os_unmap(void *base, size_t length, int kind);
/* Give the physical pages of [base, base+length) back; the range stays usable and reads as
 * zeros or old data afterwards (base pages only). 0 or an error code. */
int nm_os_purge(void *base, size_t length, int kind);

#endif
