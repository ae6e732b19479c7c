"""cffi build script for the Linux native layer (API mode, compiled by setuptools).

Run by ``pip install`` through ``setup.py``'s ``cffi_modules``. It must not import numamap.
Set ``NUMAMAP_WERROR=1`` to compile with ``-Wall -Wextra -Werror`` (CI does).
"""
import os
import pathlib

import cffi

HERE = pathlib.Path(__file__).resolve().parent

CDEF = """
#define MAP_SHARED ...
#define MAP_PRIVATE ...
#define MAP_ANONYMOUS ...
#define MAP_FIXED ...
#define MAP_FIXED_NOREPLACE ...
#define MAP_NORESERVE ...
#define MAP_POPULATE ...
#define MAP_HUGETLB ...
#define MAP_HUGE_SHIFT ...
#define MAP_HUGE_2MB ...
#define MAP_HUGE_1GB ...
#define PROT_NONE ...
#define PROT_READ ...
#define PROT_WRITE ...
#define MADV_HUGEPAGE ...
#define MADV_NOHUGEPAGE ...
#define MADV_POPULATE_WRITE ...
#define MFD_CLOEXEC ...
#define MFD_HUGETLB ...
#define NM_MPOL_DEFAULT ...
#define NM_MPOL_PREFERRED ...
#define NM_MPOL_BIND ...
#define NM_MPOL_INTERLEAVE ...
#define NM_MPOL_LOCAL ...
#define NM_MPOL_MF_STRICT ...
#define NM_MPOL_MF_MOVE ...
#define NM_MPOL_F_NODE ...
#define NM_MPOL_F_ADDR ...
#define NM_MPOL_F_MEMS_ALLOWED ...

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
int nm_set_mempolicy(int mode, const unsigned long *nodemask, unsigned long maxnode);
int nm_move_pages(int pid, unsigned long count, void **pages, const int *nodes, int *status,
                  int flags, long *not_moved);
int nm_populate_write(void *addr, size_t length, size_t page_size, int *used_madvise);
"""

# The NEP 49 memory handler (_linux_policy.c): declarations of _linux_policy.h.
POLICY_CDEF = """
#define NM_POLICY_THP_LEAVE ...
#define NM_POLICY_THP_ASK ...
#define NM_POLICY_THP_FORBID ...
#define NM_BLOCK_SMALL ...
#define NM_BLOCK_MAPPED ...
#define NM_BLOCK_HUGETLB ...
#define NM_POLICY_MAX_NODE ...
#define NM_POLICY_AUTO_SIZES ...

typedef struct {
    const char *name;
    int node;
    int thp;
    size_t min_size;
    size_t base_page;
    size_t thp_size;
    size_t huge_page;
    size_t auto_huge_pages[4];
} nm_policy_config;

typedef struct {
    uint64_t mapped;
    uint64_t unmapped;
    uint64_t hugetlb;
    uint64_t hugetlb_fallbacks;
    uint64_t remapped;
    uint64_t errors;
    int last_error;
} nm_policy_stats;

typedef struct {
    int kind;
    size_t size;
    size_t length;
    size_t page_size;
} nm_block_info;

int nm_policy_new(const nm_policy_config *config, void **handler_out);
void nm_policy_delete(void *handler);
int nm_policy_check(void *handler);
void nm_policy_get_stats(void *handler, nm_policy_stats *out);
int nm_policy_block_info(const void *data, nm_block_info *out);
const char *nm_policy_capsule_name(void);
uintptr_t nm_policy_capsule_destructor(void);
"""

# numamap bench's copy-bandwidth limit (_bench_native.c): declarations of _bench_native.h.
BENCH_CDEF = """
int nmb_copy_bandwidth(const int *cpus, int ncpus, size_t bytes_per_thread, int repeat,
                       double *gbps_out);
"""

_WARNINGS = ["-Wall", "-Wextra", "-Werror"] if os.environ.get("NUMAMAP_WERROR") == "1" else []

ffibuilder = cffi.FFI()
ffibuilder.cdef(CDEF)
ffibuilder.cdef(POLICY_CDEF)
ffibuilder.cdef(BENCH_CDEF)
ffibuilder.set_source(
    "numamap._linux_cffi",
    '#include "_linux_native.h"\n#include "_linux_policy.h"\n#include "_bench_native.h"',
    libraries=["pthread"],
    sources=[str(HERE / "_linux_native.c"), str(HERE / "_linux_policy.c"),
             str(HERE / "_bench_native.c")],
    include_dirs=[str(HERE)],
    extra_compile_args=["-std=gnu11", "-O2", *_WARNINGS],
)

if __name__ == "__main__":
    ffibuilder.compile(tmpdir=str(HERE.parent), verbose=True)
