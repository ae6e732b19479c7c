/* See _linux_native.h. Memory-policy calls go through syscall(2) so that numamap needs no libnuma. */
#include "_linux_native.h"

#include <errno.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__)
#define NM_SYS_MBIND 237
#define NM_SYS_GET_MEMPOLICY 239
#define NM_SYS_MOVE_PAGES 279
#define NM_SYS_MEMFD_CREATE 319
#elif defined(__aarch64__)
#define NM_SYS_MBIND 235
#define NM_SYS_GET_MEMPOLICY 236
#define NM_SYS_MOVE_PAGES 239
#define NM_SYS_MEMFD_CREATE 279
#else
#error "numamap: syscall numbers are known for x86_64 and aarch64 only"
#endif

/* Where the C library knows the numbers too, they must agree with ours. */
#if defined(SYS_mbind) && defined(SYS_get_mempolicy) && defined(SYS_move_pages) && \
    defined(SYS_memfd_create)
_Static_assert(SYS_mbind == NM_SYS_MBIND && SYS_get_mempolicy == NM_SYS_GET_MEMPOLICY &&
                   SYS_move_pages == NM_SYS_MOVE_PAGES && SYS_memfd_create == NM_SYS_MEMFD_CREATE,
               "numamap's syscall numbers differ from the C library's");
#endif

int nm_mmap(void *addr, size_t length, int prot, int flags, int fd, int64_t offset, void **out)
{
    if (out == NULL)
        return EINVAL;
    void *p = mmap(addr, length, prot, flags, fd, (off_t)offset);
    if (p == MAP_FAILED) {
        *out = NULL;
        return errno;
    }
    *out = p;
    return 0;
}

int nm_munmap(void *addr, size_t length)
{
    return munmap(addr, length) == 0 ? 0 : errno;
}

int nm_mprotect(void *addr, size_t length, int prot)
{
    return mprotect(addr, length, prot) == 0 ? 0 : errno;
}

int nm_madvise(void *addr, size_t length, int advice)
{
    return madvise(addr, length, advice) == 0 ? 0 : errno;
}

int nm_memfd_create(const char *name, unsigned int flags, int *fd_out)
{
    if (name == NULL || fd_out == NULL)
        return EINVAL;
    long fd = syscall(NM_SYS_MEMFD_CREATE, name, flags);
    if (fd < 0)
        return errno;
    *fd_out = (int)fd;
    return 0;
}

int nm_ftruncate(int fd, int64_t length)
{
    return ftruncate(fd, (off_t)length) == 0 ? 0 : errno;
}

int nm_mbind(void *addr, size_t length, int mode, const unsigned long *nodemask,
             unsigned long maxnode, unsigned int flags)
{
    return syscall(NM_SYS_MBIND, addr, length, mode, nodemask, maxnode, flags) == 0 ? 0 : errno;
}

int nm_get_mempolicy(int *mode, unsigned long *nodemask, unsigned long maxnode, void *addr,
                     unsigned long flags)
{
    return syscall(NM_SYS_GET_MEMPOLICY, mode, nodemask, maxnode, addr, flags) == 0 ? 0 : errno;
}

int nm_move_pages(int pid, unsigned long count, void **pages, const int *nodes, int *status,
                  int flags, long *not_moved)
{
    if (pages == NULL || status == NULL || not_moved == NULL)
        return EINVAL;
    long rc = syscall(NM_SYS_MOVE_PAGES, pid, count, pages, nodes, status, flags);
    if (rc < 0)
        return errno;
    *not_moved = rc;
    return 0;
}

int nm_populate_write(void *addr, size_t length, size_t page_size, int *used_madvise)
{
    if (used_madvise == NULL || page_size == 0)
        return EINVAL;
    if (madvise(addr, length, MADV_POPULATE_WRITE) == 0) {
        *used_madvise = 1;
        return 0;
    }
    /* Kernels before 5.14 answer EINVAL: fault the pages by hand. An atomic add of zero
     * writes each page without changing what another thread may have stored there. */
    if (errno != EINVAL)
        return errno;
    *used_madvise = 0;
    volatile unsigned char *p = (volatile unsigned char *)addr;
    for (size_t off = 0; off < length; off += page_size)
        __atomic_fetch_add((unsigned char *)(p + off), (unsigned char)0, __ATOMIC_RELAXED);
    return 0;
}
