/* Native part of ``numamap bench``: the machine's copy-bandwidth limit, measured with a tight
 * memcpy loop on pinned threads. Every function returns 0 or an errno value; nothing here
 * prints or keeps state between calls.
 *
 * numamap/_build_bench.py hands the region between the "cdef" markers to cffi as it stands: it
 * is the only place these declarations are written. */
#ifndef NUMAMAP_BENCH_NATIVE_H
#define NUMAMAP_BENCH_NATIVE_H

#include <stddef.h>

/* cdef begin */

/* Limits of nmb_copy_bandwidth's arguments: larger or smaller ones get EINVAL. */
#define NMB_MAX_THREADS 4096
#define NMB_MAX_REPEAT 1000
#define NMB_MIN_BYTES 4096

/* Copy bandwidth of ``ncpus`` threads, thread i pinned to ``cpus[i]``, each copying its own
 * ``bytes_per_thread``-byte buffer (allocated and first touched by that thread, so it sits on
 * the thread's node) into its own destination buffer.
 *
 * After one warm-up pass, ``repeat`` timed passes run, all threads starting together; pass r
 * stores in ``gbps_out[r]`` the aggregate rate in GB/s (1e9 bytes/s), counting the bytes read
 * plus the bytes written (2 * ncpus * bytes_per_thread) over the time from the first thread's
 * start to the last thread's end.
 *
 * EINVAL: an argument out of range, or a CPU this process may not run on. */
int nmb_copy_bandwidth(const int *cpus, int ncpus, size_t bytes_per_thread, int repeat,
                       double *gbps_out);

/* Allocation throughput of ``nthreads`` threads, thread i calling the malloc and free of the
 * NEP 49 handler ``handlers[i]`` (a PyDataMem_Handler, as numamap.policy makes) ``pairs`` times:
 * blocks of pseudo-random sizes from 1 to ``max_size`` bytes, each written at both ends, up to
 * 16 live per thread. All threads start together; *seconds_out is the wall time from the first
 * thread's start to the last one's end. EINVAL: an argument out of range; ENOMEM: a malloc
 * returned NULL. */
int nmb_handler_churn(void *const *handlers, int nthreads, size_t pairs, size_t max_size,
                      double *seconds_out);

/* cdef end */

#endif
