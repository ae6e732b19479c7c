"""Linux backend: sysfs for facts, the cffi native layer for mmap, mbind and move_pages.

Shares its public names with ``_windows.py``; ``_backend.py`` explains the contract.
"""
from __future__ import annotations

import ctypes
import errno
import functools
import os
import re
import stat
from dataclasses import dataclass, field

import numpy as np
import psutil

from ._errors import CONTAINER_HINT  # noqa: F401 (re-exported for the layers above)
from ._linux_cffi import ffi, lib
from ._linux_errors import ERRORS
from . import _linux_hmat
from ._linux_hmat import read_tiers, tier_fields
from ._records import NodeFacts, PoolFacts, TopologyFacts
from ._units import KiB, MiB, file_section_size, format_bytes, page_size_name

PLATFORM = "linux"
NODE_DIR = "sys/devices/system/node"
HUGEPAGES_DIR = "sys/kernel/mm/hugepages"
THP_DIR = "sys/kernel/mm/transparent_hugepage"
NAMED_SECTION_DIRS = {None: "/dev/shm", 2 * MiB: "/dev/hugepages", 1 << 30: "/dev/hugepages1G"}
_POLICIES = {"preferred": lib.NM_MPOL_PREFERRED, "bind": lib.NM_MPOL_BIND,
             "interleave": lib.NM_MPOL_INTERLEAVE}
# move_pages asks about this many pages per call, to bound the temporary arrays.
_QUERY_CHUNK = 1 << 20



# --------------------------------------------------------------------------------------------
# Facts about the machine. Page sizes, THP modes and memory nodes are read once per root: they
# change only by reconfiguring the kernel, and rereading sysfs dominated small allocations.


def _read(root: str, relative: str) -> str | None:
    try:
        with open(os.path.join(root, relative), encoding="ascii") as handle:
            return handle.read().strip()
    except OSError:
        return None


def parse_cpulist(text: str | None) -> tuple[int, ...]:
    """``'0-3,8-11'`` -> ``(0, 1, 2, 3, 8, 9, 10, 11)``; empty or None -> ``()``."""
    out: list[int] = []
    for part in (text or "").replace("\n", ",").split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            low, high = part.split("-", 1)
            stride = 1
            if ":" in high:  # the kernel's 'a-b:stride/group' form
                high, stride_text = high.split(":", 1)
                stride = int(stride_text.split("/", 1)[0])
            out.extend(range(int(low), int(high) + 1, stride))
        else:
            out.append(int(part))
    return tuple(sorted(set(out)))


@functools.lru_cache(maxsize=None)
def base_page_size() -> int:
    return os.sysconf("SC_PAGE_SIZE")


def allocation_granularity() -> int:
    """Offsets of views must be multiples of this; on Linux it is the base page."""
    return base_page_size()


@functools.lru_cache(maxsize=None)
def huge_page_sizes(root: str = "/") -> tuple[int, ...]:
    """The hugetlb page sizes this kernel knows, smallest first (pools may still be empty)."""
    try:
        names = os.listdir(os.path.join(root, HUGEPAGES_DIR))
    except OSError:
        return ()
    sizes = []
    for name in names:
        match = re.fullmatch(r"hugepages-(\d+)kB", name)
        if match:
            sizes.append(int(match.group(1)) * KiB)
    return tuple(sorted(sizes))


def _bracketed(text: str | None) -> str:
    match = re.search(r"\[(\w+)\]", text or "")
    return match.group(1) if match else "unsupported"


@functools.lru_cache(maxsize=None)
def thp_mode(root: str = "/") -> str:
    """Transparent huge pages for anonymous memory: 'always', 'madvise', 'never' or 'unsupported'."""
    return _bracketed(_read(root, f"{THP_DIR}/enabled"))


@functools.lru_cache(maxsize=None)
def shmem_thp_mode(root: str = "/") -> str:
    """Transparent huge pages for memfd/shmem sections ('advise' lets madvise ask for them)."""
    return _bracketed(_read(root, f"{THP_DIR}/shmem_enabled"))


@functools.lru_cache(maxsize=None)
def memory_nodes(root: str = "/") -> frozenset[int]:
    """Online nodes that have memory; ``{0}`` on a kernel without NUMA in sysfs."""
    text = _read(root, f"{NODE_DIR}/has_memory")
    if text is None:
        text = _read(root, f"{NODE_DIR}/online")
    nodes = frozenset(parse_cpulist(text)) if text is not None else frozenset()
    return nodes or frozenset({0})


def _node_meminfo(root: str, node: int) -> dict[str, int]:
    text = _read(root, f"{NODE_DIR}/node{node}/meminfo") or ""
    out = {}
    for line in text.splitlines():
        match = re.match(r"Node\s+\d+\s+(\w+):\s+(\d+)(\s+kB)?", line)
        if match:
            out[match.group(1)] = int(match.group(2)) * (KiB if match.group(3) else 1)
    return out


@functools.lru_cache(maxsize=None)
def thp_page_size(root: str = "/") -> int:
    """Bytes per transparent huge page (the PMD size); 2 MiB where the kernel doesn't say."""
    text = _read(root, f"{THP_DIR}/hpage_pmd_size")
    return int(text) if text and text.isdigit() else 2 * MiB


def node_memory_free(node: int, root: str = "/") -> int | None:
    """Free bytes on ``node`` as the kernel reports it, or None when sysfs doesn't say."""
    return _node_meminfo(root, node).get("MemFree")


def hugepage_pool(page_size: int, node: int | None = None, root: str = "/") -> PoolFacts | None:
    """The hugetlb pool of ``page_size`` on ``node`` (or the whole machine); None if unknown."""
    leaf = f"hugepages-{page_size // KiB}kB"
    if node is None:
        base = f"{HUGEPAGES_DIR}/{leaf}"
    else:
        base = f"{NODE_DIR}/node{node}/hugepages/{leaf}"
        if _read(root, f"{base}/nr_hugepages") is None and not os.path.isdir(os.path.join(root, NODE_DIR)):
            base = f"{HUGEPAGES_DIR}/{leaf}"  # no NUMA in sysfs: node 0 is the machine
    total = _read(root, f"{base}/nr_hugepages")
    free = _read(root, f"{base}/free_hugepages")
    if total is None or free is None:
        return None
    free_pages = int(free)
    reserved = _read(root, f"{base}/resv_hugepages")  # only the global pool reports these
    if reserved is not None:
        free_pages -= int(reserved)
    overcommit = _read(root, f"{base}/nr_overcommit_hugepages")
    path = os.path.join(root, base, "nr_hugepages")
    return PoolFacts(page_size, int(total), max(free_pages, 0), node if "/node/" in base else None,
                     path, f"grow it with 'echo N > {path}' as root",
                     int(overcommit) if overcommit and overcommit.isdigit() else 0)


def _status_field(root: str, name: str) -> str | None:
    text = _read(root, "proc/self/status") or ""
    for line in text.splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    return None


def _listed_nodes(root: str) -> list[int]:
    try:
        names = os.listdir(os.path.join(root, NODE_DIR))
    except OSError:
        return []
    return sorted(int(n[4:]) for n in names if re.fullmatch(r"node\d+", n))


def read_topology(root: str = "/") -> TopologyFacts:
    """Topology facts read under ``root`` (a synthetic tree in tests, ``/`` otherwise).

    A kernel without NUMA in sysfs, or a node directory that lists no node (seen in some
    containers), reads as one node 0 holding every CPU, with ``source='fallback'`` and a note.
    """
    notes: list[str] = []
    page_sizes = huge_page_sizes(root)
    node_dir = os.path.join(root, NODE_DIR)
    listed = _listed_nodes(root)
    if listed:
        source = "sysfs"
        online = parse_cpulist(_read(root, f"{NODE_DIR}/online"))
        possible = parse_cpulist(_read(root, f"{NODE_DIR}/possible")) or online
        node_ids = [n for n in listed if not online or n in online] or listed
        with_memory = _read(root, f"{NODE_DIR}/has_memory")
        with_cpus = _read(root, f"{NODE_DIR}/has_cpu")
    else:
        source = "fallback"
        why = "is missing" if not os.path.isdir(node_dir) else "lists no node"
        notes.append(f"{node_dir} {why} (a kernel or container without NUMA in sysfs): "
                     "one node 0 holds every CPU")
        online = possible = (0,)
        node_ids = [0]
        with_memory = with_cpus = None

    all_cpus = parse_cpulist(_read(root, "sys/devices/system/cpu/online"))
    if not all_cpus:
        all_cpus = tuple(range(psutil.cpu_count(logical=True) or 1))
    nodes = []
    tiers = read_tiers(root)
    for node in node_ids:
        if source == "sysfs":
            cpus = parse_cpulist(_read(root, f"{NODE_DIR}/node{node}/cpulist"))
            meminfo = _node_meminfo(root, node)
            total, free = meminfo.get("MemTotal", 0), meminfo.get("MemFree", 0)
            row = _read(root, f"{NODE_DIR}/node{node}/distance")
            distances = tuple(int(d) for d in row.split()) if row else ()
        else:
            cpus = all_cpus
            fields = dict(re.findall(r"^(\w+):\s+(\d+)", _read(root, "proc/meminfo") or "", flags=re.M))
            total = int(fields.get("MemTotal", 0)) * KiB
            free = int(fields.get("MemAvailable", fields.get("MemFree", 0))) * KiB
            distances = (10,)
        pools = tuple(pool for size in page_sizes
                      if (pool := hugepage_pool(size, node if source == "sysfs" else None, root)) is not None)
        has_memory = (node in parse_cpulist(with_memory)) if with_memory is not None else total > 0
        has_cpus = (node in parse_cpulist(with_cpus)) if with_cpus is not None else bool(cpus)
        nodes.append(NodeFacts(node, cpus, total, free, distances, pools, has_memory, has_cpus,
                               **tier_fields(root, node, tiers)))

    if root in ("/", ""):
        allowed = allowed_cpus()
    else:
        allowed = parse_cpulist(_status_field(root, "Cpus_allowed_list")) or all_cpus
    mems = _status_field(root, "Mems_allowed_list")
    allowed_mems = parse_cpulist(mems) if mems and source == "sysfs" else tuple(n.id for n in nodes)
    return TopologyFacts(tuple(nodes), tuple(online), tuple(possible), allowed, allowed_mems,
                         thp_mode(root), allocation_granularity(), base_page_size(), page_sizes,
                         source, tuple(notes), PLATFORM)


@functools.lru_cache(maxsize=None)
def capabilities() -> dict[str, bool]:
    """What this kernel lets the process do, probed once by behaviour."""
    mode = ffi.new("int *")
    mbind_ok = lib.nm_get_mempolicy(mode, ffi.NULL, 0, ffi.NULL, 0) == 0
    return {"numa_policy": mbind_ok, "bind": True, "memfd": True, "placeholders": True,
            "hugetlb": bool(huge_page_sizes()), "thp": thp_mode() in ("always", "madvise")}


# --------------------------------------------------------------------------------------------
# Sections


@dataclass
class SectionHandle:
    """The OS object behind a Section: an fd of a memfd, a shm/hugetlbfs file or a user's file."""

    fd: int
    size: int
    page_size: int | None  # None: base pages (THP may still apply)
    access: str
    path: str | None = None
    owns_name: bool = False
    closed: bool = field(default=False)

    def __reduce__(self):
        raise TypeError("a section handle holds a file descriptor, which means nothing in another "
                        "process: pickle the Section (named sections reopen by name)")

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        os.close(self.fd)
        if self.owns_name and self.path:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass


def _hugetlb_flags(page_size: int) -> int:
    return (page_size.bit_length() - 1) << lib.MAP_HUGE_SHIFT


def _named_path(name: str, page_size: int | None) -> str:
    if not name or "/" in name or "\0" in name or name in (".", ".."):
        raise ValueError(f"name={name!r} must be a non-empty string without '/'")
    directory = NAMED_SECTION_DIRS.get(page_size)
    if directory is None:
        raise ValueError(f"named sections of {page_size_name(page_size or 0)} pages are not supported")
    if page_size is not None:
        try:
            block = os.statvfs(directory).f_bsize
        except OSError:
            block = 0
        if block != page_size:
            raise OSError(errno.ENOENT, f"named {page_size_name(page_size)} sections need a hugetlbfs "
                          f"mount of that page size at {directory}: 'mkdir -p {directory} && mount -t "
                          f"hugetlbfs -o pagesize={page_size_name(page_size)} none {directory}'")
    return os.path.join(directory, f"numamap.{name}")


def create_section(size: int, *, page_size: int | None, access: str, path: str | None = None,
                   fd: int | None = None, name: str | None = None) -> SectionHandle:
    """Create the backing object of a Section (see ``Section`` for the rules)."""
    if path is not None or fd is not None:
        # copy-on-write views never write to the file: read access is all they need
        flags = os.O_RDWR if access == "rw" else os.O_RDONLY
        own_fd = os.dup(fd) if fd is not None else os.open(path, flags | os.O_CLOEXEC)
        try:
            current = os.fstat(own_fd).st_size
            size = file_section_size(size, current, access)
            if size > current:
                ERRORS.check("ftruncate", lib.nm_ftruncate(own_fd, size), f"extending the file to {size} bytes")
        except BaseException:
            os.close(own_fd)
            raise
        return SectionHandle(own_fd, size, page_size, access, path)

    if name is not None:
        target = _named_path(name, page_size)
        try:
            new_fd = os.open(target, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except FileExistsError:
            raise FileExistsError(errno.EEXIST, f"a section named {name!r} exists already: "
                                  "open it with Section.open(name) or pick another name") from None
        owns, shown = True, target
    else:
        flags = lib.MFD_CLOEXEC
        if page_size is not None:
            flags |= lib.MFD_HUGETLB | _hugetlb_flags(page_size)
        out = ffi.new("int *")
        ERRORS.check("memfd_create", lib.nm_memfd_create(b"numamap", flags, out))
        new_fd, owns, shown = out[0], False, None
    err = lib.nm_ftruncate(new_fd, size)
    if err:
        os.close(new_fd)
        if owns:
            os.unlink(shown)
        ERRORS.check("ftruncate", err, f"sizing the section to {size} bytes")
    return SectionHandle(new_fd, size, page_size, access, shown, owns)


def _open_named(path: str, flags: int) -> int:
    """Open a named section's file, refusing what another user could have planted there.

    /dev/shm is writable by everyone: a symlink there could point at any file, and a FIFO would
    block the open forever. So: no symlinks, no blocking in the open itself, and the result must
    be a regular file of ours that no one else can write.
    """
    refuse = f"refusing to open {path}"
    try:
        fd = os.open(path, flags | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ERRORS.exception("open_section", errno.ELOOP, path) from None
        raise
    try:
        info = os.fstat(fd)
        why = None
        if not stat.S_ISREG(info.st_mode):
            why = "it is not a regular file"
        elif info.st_uid != os.geteuid():
            why = f"it belongs to uid {info.st_uid}, not to this process's uid {os.geteuid()}"
        elif info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            why = f"its mode {stat.S_IMODE(info.st_mode):o} lets group or others write it"
        if why:
            raise PermissionError(errno.EPERM, f"{refuse}: {why} (sections are created 0600 by "
                                  "their owner; remove the file if it is not yours)")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_section(name: str, access: str) -> SectionHandle:
    """Open a named section created by another process (or this one)."""
    for page_size in NAMED_SECTION_DIRS:
        candidate = os.path.join(NAMED_SECTION_DIRS[page_size], f"numamap.{name}")
        if "/" not in name and os.path.lexists(candidate):
            fd = _open_named(candidate, os.O_RDWR if access == "rw" else os.O_RDONLY)
            return SectionHandle(fd, os.fstat(fd).st_size, page_size, access, candidate)
    raise FileNotFoundError(errno.ENOENT, f"no section named {name!r}: create it with "
                            f"Section(size, name={name!r})")


# --------------------------------------------------------------------------------------------
# Views and reservations


def _prot(access: str) -> int:
    return lib.PROT_READ if access == "r" else lib.PROT_READ | lib.PROT_WRITE


def map_view(size: int, *, section: SectionHandle | None, offset: int, access: str,
             page_size: int | None, address: int | None, node: int | None = None) -> int:
    """mmap ``size`` bytes of ``section`` (or private anonymous memory) and return the address.

    ``node`` is ignored: Linux places the pages with ``set_policy`` (mbind) after mapping;
    Windows needs the node in the map call itself.

    ``address`` is only ever a range inside one of our reservations, so MAP_FIXED replaces
    PROT_NONE memory we own, atomically.
    """
    if section is None:
        fd, flags = -1, lib.MAP_PRIVATE | lib.MAP_ANONYMOUS
        if page_size is not None:
            # Shared, not private: a forked child's write to a private hugetlb page needs a new
            # page from the pool, and dies of SIGBUS when there is none. Shared pages are
            # reserved at mmap time and never copied (docs/hugepages.md, "Huge pages and fork").
            flags = lib.MAP_SHARED | lib.MAP_ANONYMOUS | lib.MAP_HUGETLB | _hugetlb_flags(page_size)
    else:
        fd = section.fd
        flags = lib.MAP_PRIVATE if access == "cow" else lib.MAP_SHARED
    hint = ffi.NULL
    if address is not None:
        flags |= lib.MAP_FIXED
        hint = ffi.cast("void *", address)
    out = ffi.new("void **")
    err = lib.nm_mmap(hint, size, _prot(access), flags, fd, offset, out)
    if err:  # the message is built only when needed: this is the allocation path
        raise ERRORS.exception("mmap", err, f"mapping {format_bytes(size)}")
    return int(ffi.cast("uintptr_t", out[0]))


def unmap_view(address: int, size: int) -> None:
    ERRORS.check("munmap", lib.nm_munmap(ffi.cast("void *", address), size))


def reserve_range(size: int, alignment: int) -> int:
    """Reserve ``size`` bytes of address space (PROT_NONE) starting at a multiple of ``alignment``."""
    out = ffi.new("void **")
    span = size + alignment
    ERRORS.check("mmap", lib.nm_mmap(ffi.NULL, span, lib.PROT_NONE,
                                     lib.MAP_PRIVATE | lib.MAP_ANONYMOUS | lib.MAP_NORESERVE, -1, 0, out),
                 f"reserving {format_bytes(size)} of address space")
    start = int(ffi.cast("uintptr_t", out[0]))
    aligned = -(-start // alignment) * alignment
    if aligned > start:
        unmap_view(start, aligned - start)
    tail = start + span - (aligned + size)
    if tail:
        unmap_view(aligned + size, tail)
    return aligned


def return_to_reservation(address: int, size: int) -> None:
    """Replace a view inside a reservation with reserved (PROT_NONE) space again, atomically."""
    out = ffi.new("void **")
    ERRORS.check("mmap", lib.nm_mmap(ffi.cast("void *", address), size, lib.PROT_NONE,
                                     lib.MAP_PRIVATE | lib.MAP_ANONYMOUS | lib.MAP_NORESERVE | lib.MAP_FIXED,
                                     -1, 0, out), "returning a view's range to its reservation")


release_range = unmap_view


# --------------------------------------------------------------------------------------------
# Placement


def _node_mask(nodes: tuple[int, ...]):
    # One spare zeroed word and maxnode = highest + 2: kernels differ by one in reading maxnode.
    highest = max(nodes)
    words = highest // 64 + 2
    mask = ffi.new("unsigned long[]", words)
    for node in nodes:
        mask[node // 64] |= 1 << (node % 64)
    return mask, highest + 2


def set_policy(address: int, size: int, policy: str, nodes: tuple[int, ...], *, move: bool = False) -> None:
    """mbind ``policy`` over ``nodes`` for the range; ``move`` migrates pages already there."""
    mask, maxnode = _node_mask(nodes)
    flags = (lib.NM_MPOL_MF_MOVE | lib.NM_MPOL_MF_STRICT) if move else 0
    err = lib.nm_mbind(ffi.cast("void *", address), size, _POLICIES[policy], mask, maxnode, flags)
    if err:
        raise ERRORS.exception("mbind", err, f"{policy} on nodes {list(nodes)}")


def advise_thp(address: int, size: int, enable: bool) -> None:
    advice = lib.MADV_HUGEPAGE if enable else lib.MADV_NOHUGEPAGE
    ERRORS.check("madvise", lib.nm_madvise(ffi.cast("void *", address), size, advice), "THP advice")


def populate(address: int, size: int, page_size: int) -> None:
    """Fault every page in now, for writing, so placement happens (and fails) here."""
    used = ffi.new("int *")
    err = lib.nm_populate_write(ffi.cast("void *", address), size, page_size, used)
    if err:
        raise ERRORS.exception("populate", err, f"faulting in {format_bytes(size)}")


def page_nodes(address: int, size: int, page_size: int) -> np.ndarray:
    """Node of each ``page_size`` page of the range; -1 where no page is there yet."""
    count = -(-size // page_size)
    out = np.empty(count, dtype=np.int32)
    not_moved = ffi.new("long *")
    for first in range(0, count, _QUERY_CHUNK):
        n = min(_QUERY_CHUNK, count - first)
        start = address + first * page_size
        pages = np.arange(start, start + n * page_size, page_size, dtype=np.uintp)
        status = out[first:first + n]
        err = lib.nm_move_pages(0, n, ffi.cast("void **", ffi.from_buffer(pages)), ffi.NULL,
                                ffi.cast("int *", ffi.from_buffer(status)), 0, not_moved)
        ERRORS.check("move_pages", err, "asking where pages are")
    out[out < 0] = -1
    return out


def page_size_breakdown(address: int, size: int) -> dict[int, int]:
    """Bytes of the range by page size, from /proc/self/smaps (THP shares are per mapping)."""
    end = address + size
    result: dict[int, int] = {}
    base = base_page_size()
    with open("/proc/self/smaps", encoding="ascii", errors="replace") as handle:
        lines = handle.read().splitlines()
    overlap = 0
    vma_size = 1
    for line in lines + ["0-0 end"]:
        header = re.match(r"^([0-9a-f]+)-([0-9a-f]+)\s", line)
        if header:
            low, high = int(header.group(1), 16), int(header.group(2), 16)
            overlap = max(0, min(high, end) - max(low, address))
            vma_size = max(high - low, 1)
            continue
        if not overlap:
            continue
        key, _, rest = line.partition(":")
        if key == "KernelPageSize":
            kernel = int(rest.split()[0]) * KiB
            if kernel != base:
                result[kernel] = result.get(kernel, 0) + overlap
                overlap = 0
        elif key in ("AnonHugePages", "ShmemPmdMapped", "FilePmdMapped"):
            huge = min(int(int(rest.split()[0]) * KiB * overlap / vma_size), overlap)
            if huge:
                result[2 * MiB] = result.get(2 * MiB, 0) + huge
                result[base] = result.get(base, 0) - huge
        elif key == "Rss":
            result[base] = result.get(base, 0) + overlap
    return {k: v for k, v in sorted(result.items()) if v > 0}



def move_range(address: int, size: int, node: int) -> None:
    """Bind the range to ``node`` and move the pages already faulted there."""
    set_policy(address, size, "bind", (node,), move=True)


# --------------------------------------------------------------------------------------------
# Threads and processes


def allowed_cpus() -> tuple[int, ...]:
    """CPUs the calling thread may run on."""
    return tuple(sorted(os.sched_getaffinity(0)))


def current_cpu() -> int:
    """The CPU the calling thread runs on now (sched_getcpu; ``/proc/thread-self/stat`` without it)."""
    return _linux_hmat.current_cpu()


def _check_cpus(cpus) -> set[int]:
    out = {int(c) for c in cpus}
    if not out:
        raise ValueError("cpus must not be empty: pass the CPU ids to pin to")
    return out


@ERRORS.boundary("sched_setaffinity")
def pin_thread(cpus) -> tuple[int, ...]:
    """Pin the calling thread (only) to ``cpus``; threads it starts later inherit the mask."""
    wanted = _check_cpus(cpus)
    os.sched_setaffinity(0, wanted)
    got = allowed_cpus()
    if set(got) != wanted:
        raise OSError(errno.EINVAL, f"sched_setaffinity asked for CPUs {sorted(wanted)} but the "
                      f"thread got {list(got)}")
    return got


@ERRORS.boundary("sched_setaffinity")
def pin_process(cpus) -> tuple[int, ...]:
    """Pin every thread of this process to ``cpus``.

    ``sched_setaffinity`` changes one thread and threads keep their mask, so this walks
    ``/proc/self/task`` until no unpinned thread is left; the caller goes first, so threads it
    starts meanwhile inherit the new mask.
    """
    wanted = _check_cpus(cpus)
    os.sched_setaffinity(0, wanted)
    pinned: set[int] = set()
    while True:
        todo = {int(t) for t in os.listdir("/proc/self/task")} - pinned
        if not todo:
            return allowed_cpus()
        for tid in todo:
            try:
                os.sched_setaffinity(tid, wanted)
            except ProcessLookupError:  # the thread ended meanwhile
                pass
            pinned.add(tid)


# --------------------------------------------------------------------------------------------
# The node arenas, the NEP 49 memory handler over them (C: _arena*.c, _arena_handler.c) and the
# benchmark's natives: modules of their own

from ._linux_arenas import (ArenaBuffer, arena_block_info, arena_check, arena_configure,  # noqa: E402
                            arena_stats, arena_take, arena_trim)
from ._linux_bench import copy_bandwidth, handler_churn, map_unmap_cost  # noqa: E402
from ._linux_handler import handler_block_info, handler_check, handler_new, handler_stats  # noqa: E402


# --------------------------------------------------------------------------------------------
# The buffer protocol, on every Python (a C base type for View)


def _mapped_buffer_type() -> type:
    address = lib.nm_buffer_type()
    if not address:
        raise RuntimeError("numamap could not create its MappedBuffer type")
    made = ctypes.cast(address, ctypes.py_object).value  # a reference of our own ...
    ctypes.pythonapi.Py_DecRef(ctypes.py_object(made))  # ... so the one C handed over goes
    return made


#: View's base class: exports mapped memory through the buffer protocol (C, _linux_buffer.c).
MappedBuffer = _mapped_buffer_type()

