"""The Linux backend's error boundary: (call, errno) -> exception type and hint.

Every failing call of ``_linux`` and ``_linux_bench`` is turned into a Python exception by
:data:`ERRORS` and nowhere else (see ``numamap._errors`` for the shared defaults).
"""
import errno
import os

from ._errors import CONTAINER_HINT, ERRNO_DEFAULTS, ErrorTable, Rule


MOVE_PAGES_HINT = ("the kernel refused move_pages (EPERM), so numamap cannot read where pages are: "
                   "container seccomp profiles refuse it, Docker's default even with CAP_SYS_NICE "
                   "and Podman's default always; run with a seccomp profile that allows "
                   "move_pages (see docs/containers.md)")
_OUT_OF_MEMORY = "the node or huge-page pool ran out of memory"
RULES = {
    ("mbind", errno.EPERM): Rule(PermissionError, CONTAINER_HINT),
    ("mbind", errno.EINVAL): Rule(ValueError, "the nodes may be outside this process's cpuset "
                                              "(see Mems_allowed_list in /proc/self/status)"),
    ("mbind", errno.EIO): Rule(OSError, "some pages could not be moved: they may be pinned or shared"),
    ("move_pages", errno.EPERM): Rule(PermissionError, MOVE_PAGES_HINT),
    ("populate", errno.ENOMEM): Rule(MemoryError, _OUT_OF_MEMORY),
    ("populate", errno.EFAULT): Rule(MemoryError, _OUT_OF_MEMORY),
    ("populate", getattr(errno, "EHWPOISON", 133)): Rule(MemoryError, _OUT_OF_MEMORY),
    ("mmap", errno.ENOMEM): Rule(MemoryError, "not enough memory or address space for the mapping"),
    ("open_section", errno.ELOOP): Rule(PermissionError, "refusing a symbolic link where a named "
                                                         "section should be: someone may have "
                                                         "planted it"),
    ("memfd_create", errno.EMFILE): Rule(OSError, "too many open files: close unused Sections"),
    ("copy_bandwidth", errno.EINVAL): Rule(
        ValueError, "a CPU in cpus is not one this process may run on: pick CPUs from "
                    "os.sched_getaffinity(0) (Cpus_allowed_list in /proc/self/status)"),
    ("copy_bandwidth", errno.ENOMEM): Rule(
        MemoryError, "not enough memory for two buffers of bytes_per_thread per CPU: pass a "
                     "smaller bytes_per_thread"),
    ("sched_setaffinity", errno.EINVAL): Rule(ValueError, "none of those CPUs is allowed to this "
                                                          "process (see Cpus_allowed_list)"),
}
ERRORS = ErrorTable(ERRNO_DEFAULTS, RULES, os.strerror)
