/* Native layer of the Linux backend: thin wrappers over the kernel's mapping and memory-policy
 * calls. Every function returns 0 on success or an errno value; none prints or keeps state.
 *
 * The region between the "cdef" markers is read by numamap/_build_linux.py and handed to cffi as
 * it stands: it is the one place these declarations are written, so it holds only what both a C
 * compiler and cffi's parser accept (prototypes, plain structs, #define NAME <integer>). */
#ifndef NUMAMAP_LINUX_NATIVE_H
#define NUMAMAP_LINUX_NATIVE_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>

/* Older C libraries lack some of these; the values are the kernel's ABI. The Python side reads
 * the system's constants through the list in _build_linux.py. */
#ifndef MAP_HUGETLB
#define MAP_HUGETLB 0x40000
#endif
#ifndef MAP_HUGE_SHIFT
#define MAP_HUGE_SHIFT 26
#endif
#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#ifndef MAP_NORESERVE
#define MAP_NORESERVE 0x4000
#endif
#ifndef MADV_HUGEPAGE
#define MADV_HUGEPAGE 14
#endif
#ifndef MADV_NOHUGEPAGE
#define MADV_NOHUGEPAGE 15
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#ifndef MFD_CLOEXEC
#define MFD_CLOEXEC 0x0001U
#endif
#ifndef MFD_HUGETLB
#define MFD_HUGETLB 0x0004U
#endif

/* cdef begin */

/* Memory-policy modes and flags of mbind/get_mempolicy (linux/mempolicy.h, a stable ABI;
 * numamap needs no libnuma headers). */
#define NM_MPOL_PREFERRED 1
#define NM_MPOL_BIND 2
#define NM_MPOL_INTERLEAVE 3
#define NM_MPOL_MF_STRICT 1
#define NM_MPOL_MF_MOVE 2
#define NM_MPOL_F_ADDR 2

int nm_mmap(void *addr, size_t length, int prot, int flags, int fd, int64_t offset, void **out);
int nm_munmap(void *addr, size_t length);
int nm_mprotect(void *addr, size_t length, int prot);
int nm_madvise(void *addr, size_t length, int advice);
int nm_memfd_create(const char *name, unsigned int flags, int *fd_out);
int nm_ftruncate(int fd, int64_t length);
int nm_mbind(void *addr, size_t length, int mode, const unsigned long *nodemask,
             unsigned long maxnode, unsigned int flags);
int nm_get_mempolicy(int *mode, unsigned long *nodemask, unsigned long maxnode, void *addr,
                     unsigned long flags);
/* move_pages(2) for this process (pid 0) or another; *not_moved: pages it could not move. */
int nm_move_pages(int pid, unsigned long count, void **pages, const int *nodes, int *status,
                  int flags, long *not_moved);
/* Fault every page of a range in for writing: MADV_POPULATE_WRITE, or a write per page on
 * kernels before 5.14 (*used_madvise says which). */
int nm_populate_write(void *addr, size_t length, size_t page_size, int *used_madvise);

/* cdef end */

#endif
