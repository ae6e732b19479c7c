"""The mapping plan: every decision about a mapping, made before any system call.

:func:`plan_mapping` is pure: it reads the machine only through a :class:`MachineFacts`
snapshot, so every rule (page-size choice, THP, huge-page pools, the memory check before
populating, reservation alignment) is testable without a kernel. ``view.map_memory`` carries
the plan out.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import psutil

from ._backend import backend
from ._errors import FallbackError
from ._records import PoolFacts
from ._units import MiB, format_bytes, page_size_name, parse_page_size, round_up
from .request import Request

THP_MODES_ON = ("always", "madvise", "advise", "within_size")


class MachineFacts(NamedTuple):
    """What a plan needs to know about the machine (see :meth:`from_backend`)."""

    base_page: int
    huge_page_sizes: tuple[int, ...]
    thp_mode: str
    shmem_thp_mode: str
    pool: Callable[[int, int | None], PoolFacts | None]
    node_free: Callable[[int], int | None]
    available: Callable[[], int | None]
    bind: bool = True  # whether the system can bind strictly (Windows offers a preferred node only)

    @classmethod
    def from_backend(cls) -> "MachineFacts":
        return cls(backend.base_page_size(), backend.huge_page_sizes(), backend.thp_mode(),
                   backend.shmem_thp_mode(), backend.hugepage_pool, backend.node_memory_free,
                   lambda: psutil.virtual_memory().available, backend.capabilities().get("bind", True))


class MappingPlan(NamedTuple):
    """What :func:`view.map_memory` will do.

    Attributes
    ----------
    length : int
        Bytes to map: the size rounded up to whole pages.
    page_size : int
        The page size of the mapping.
    hugetlb : int or None
        The hugetlb page size, when hugetlb pages are used.
    page_kind : str
        'hugetlb', 'thp' or 'base'.
    thp_advice : bool or None
        MADV_HUGEPAGE (True), MADV_NOHUGEPAGE (False) or no advice (None).
    populate : bool
        Fault every page in at map time.
    fallback : str or None
        What cannot be honoured and what is done instead (the caller warns).
    """

    request: Request
    size: int
    length: int
    page_size: int
    hugetlb: int | None
    page_kind: str
    thp_advice: bool | None
    populate: bool
    fallback: str | None


def _pool_for(facts: MachineFacts, page_size: int, request: Request) -> PoolFacts | None:
    one_node = request.policy in ("preferred", "bind") and len(request.nodes) == 1
    return facts.pool(page_size, request.nodes[0] if one_node else None)


def _pool_serves(pool: PoolFacts | None, pages: int) -> bool:
    return pool is not None and pool.free >= pages


def plan_mapping(size: int, request: Request, facts: MachineFacts, *, section_page_size: int | None = None,
                 is_section: bool = False, offset: int = 0, access: str = "rw", page_size="auto",
                 populate: bool = False, strict: bool = False, hugetlb: bool = True,
                 address: int | None = None) -> MappingPlan:
    """Decide how to map ``size`` bytes for ``request``; raise for what cannot be done.

    ``is_section`` and ``section_page_size`` describe the section being mapped (a hugetlb
    section fixes the page size); ``hugetlb=False`` keeps ``'auto'`` to THP or base pages.
    """
    wanted = parse_page_size(page_size)
    base = facts.base_page
    if wanted is not None and wanted != base and wanted not in facts.huge_page_sizes:
        raise ValueError(f"page_size={page_size!r}: this machine serves {page_size_name(base)} and "
                         f"{', '.join(page_size_name(s) for s in facts.huge_page_sizes) or 'no huge'} pages")
    fallback = None
    if request.policy == "bind" and not facts.bind:
        fallback = (f"policy='bind' on nodes {list(request.nodes)}: this system's mapping calls "
                    "take a preferred node only; got a preferred node (pages may spill to other "
                    "nodes when it is full)")
        if strict:
            raise FallbackError(fallback)
    huge = None
    if section_page_size is not None:
        if wanted is not None and wanted != section_page_size:
            raise ValueError(f"page_size={page_size!r} does not match the section's "
                             f"{page_size_name(section_page_size)} pages")
        huge = section_page_size
        pool = _pool_for(facts, huge, request)
        if (not _pool_serves(pool, -(-size // huge)) and pool is not None and request.nodes
                and request.policy != "interleave"):
            raise MemoryError(f"cannot map {format_bytes(size)} of {page_size_name(huge)} pages: "
                              f"{pool.describe()}")
    elif is_section:
        if wanted is not None and wanted != base:
            raise ValueError(f"page_size={page_size!r}: the section was created with "
                             f"{page_size_name(base)} pages; create it with "
                             f"Section(size, page_size={page_size_name(wanted)!r}) for large pages")
    elif wanted is not None and wanted != base:
        pool = _pool_for(facts, wanted, request)
        if not _pool_serves(pool, -(-size // wanted)):  # an explicit size is a contract
            raise MemoryError(f"cannot get {page_size_name(wanted)} pages for {format_bytes(size)}: "
                              + (pool.describe() if pool else "this machine has no such pool")
                              + "; or pass page_size='auto' to take what the machine can serve")
        huge = wanted
    elif wanted is None and hugetlb:
        for candidate in sorted(facts.huge_page_sizes, reverse=True):
            if size >= candidate and _pool_serves(_pool_for(facts, candidate, request), -(-size // candidate)):
                huge = candidate
                break

    page = huge or base
    length = round_up(max(size, 1), page)
    if is_section and huge and offset % huge:
        raise ValueError(f"offset={offset} must be a multiple of the section's page size ({huge})")
    if address is not None and address % page:
        raise ValueError(f"address={address:#x} must be a multiple of the page size ({page})")

    thp = False
    if huge is None and wanted is None:
        mode = facts.shmem_thp_mode if is_section else facts.thp_mode
        thp = size >= 2 * MiB and mode in THP_MODES_ON
        if strict and wanted is None and not thp and size >= 2 * MiB and facts.huge_page_sizes:
            raise FallbackError(f"page_size='auto' with strict=True: no huge-page pool can serve "
                                f"{format_bytes(size)} and transparent huge pages are off ({mode})")
    advice = None
    if huge is None and access != "r":
        advice = True if thp else (False if wanted == base else None)  # '4K' means 4 KiB, even under THP

    # Hugetlb pages bound to a node are faulted at map time: a node pool that runs dry must fail
    # then with MemoryError, never later with SIGBUS.
    must_populate = (populate or (huge is not None and bool(request.nodes))) and access != "r"
    if must_populate and huge is None:
        _check_memory(length, request, facts)
    return MappingPlan(request, size, length, page, huge,
                       "hugetlb" if huge else ("thp" if thp else "base"), advice, must_populate, fallback)


def _check_memory(length: int, request: Request, facts: MachineFacts) -> None:
    """Refuse to populate more than the nodes (bind) or the machine can back: the kernel's
    answer to that is the OOM killer, not an error."""
    if request.policy == "bind":
        free = sum(facts.node_free(n) or 0 for n in request.nodes)
        if free and length > free:
            raise MemoryError(f"cannot populate {format_bytes(length)} bound to nodes {list(request.nodes)}: "
                              f"they have {format_bytes(free)} free; use policy='preferred' to spill "
                              "to other nodes, or a smaller array")
        return
    available = facts.available()
    if available is not None and length > available:
        raise MemoryError(f"cannot populate {format_bytes(length)}: the machine has "
                          f"{format_bytes(available)} available; pass populate=False to fault "
                          "pages in as they are touched, or use a smaller array")
