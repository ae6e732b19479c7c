/* Native part of ``numamap bench``: the machine's copy-bandwidth limit, measured with a tight
 * memcpy loop on pinned threads. Every function returns 0 or an errno value; nothing here
 * prints or keeps state between calls. */
#ifndef NUMAMAP_BENCH_NATIVE_H
#define NUMAMAP_BENCH_NATIVE_H

#include <stddef.h>

/* Copy bandwidth of ``ncpus`` threads, thread i pinned to ``cpus[i]``, each copying its own
 * ``bytes_per_thread``-byte buffer (allocated and first touched by that thread, so it sits on
 * the thread's node) into its own destination buffer.
 *
 * After one warm-up pass, ``repeat`` timed passes run, all threads starting together; pass r
 * stores in ``gbps_out[r]`` the aggregate rate in GB/s (1e9 bytes/s), counting the bytes read
 * plus the bytes written (2 * ncpus * bytes_per_thread) over the time from the first thread's
 * start to the last thread's end. */
int nmb_copy_bandwidth(const int *cpus, int ncpus, size_t bytes_per_thread, int repeat,
                       double *gbps_out);

#endif
