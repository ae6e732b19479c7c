"""The typed records every backend returns: one definition each, shared by Linux and Windows.

Backends build these from sysfs or from the Win32 calls; the layers above read attributes,
never string keys. Immutable NamedTuples, so they compare, hash and print plainly.
"""
from __future__ import annotations

from typing import NamedTuple

from ._units import format_bytes, page_size_name


class PoolFacts(NamedTuple):
    """Where huge pages of one size come from, and how many are free now.

    Attributes
    ----------
    page_size : int
        Bytes per page.
    total, free : int
        Pages in the pool and pages free (reserved-but-unused pages already taken off).
    node : int or None
        The node the pool belongs to; None for the machine-wide pool.
    source : str
        The sysfs file that sizes the pool (Linux) or the memory it is carved from (Windows).
    grow_hint : str
        How a user grows the pool.
    overcommit : int
        Pages the kernel may add on demand (``nr_overcommit_hugepages``); 0 where none.
    """

    page_size: int
    total: int
    free: int
    node: int | None = None
    source: str = ""
    grow_hint: str = ""
    overcommit: int = 0

    @property
    def free_bytes(self) -> int:
        return self.free * self.page_size

    @property
    def configured(self) -> bool:
        """Whether asking this pool for a page can succeed at all."""
        return self.total > 0 or self.overcommit > 0

    def describe(self) -> str:
        """One sentence: whose pool, what is free, and how to grow it."""
        whose = "the machine's" if self.node is None else f"node {self.node}'s"
        return (f"{whose} {page_size_name(self.page_size)} huge-page pool has {self.free} free of "
                f"{self.total} pages ({format_bytes(self.free * self.page_size)}); {self.grow_hint}")


class NodeFacts(NamedTuple):
    """One NUMA node as the backend read it.

    ``distances`` is this node's row of the distance matrix, in the order of
    :attr:`TopologyFacts.nodes`; empty where the system publishes none. ``hugepages`` has one
    PoolFacts per huge page size the node can serve.

    The memory-tier fields come from the firmware's HMAT (Linux: ``access0``, the node's best
    initiators): bandwidth in bytes per second, latency in ns, each None where the firmware
    gives none. ``initiators`` are the nodes those figures are for; ``cpu_read_bandwidth`` and
    ``cpu_read_latency`` are ``access1``'s (best CPU initiators), None where absent. ``tier``
    is the kernel's memory tier (``memory_tierN``), None where the kernel has no tiers.
    """

    id: int
    cpus: tuple[int, ...]
    memory_total: int
    memory_free: int
    distances: tuple[int, ...]
    hugepages: tuple[PoolFacts, ...]
    has_memory: bool
    has_cpus: bool
    read_bandwidth: int | None = None
    write_bandwidth: int | None = None
    read_latency: int | None = None
    write_latency: int | None = None
    initiators: tuple[int, ...] = ()
    cpu_read_bandwidth: int | None = None
    cpu_read_latency: int | None = None
    tier: int | None = None


class TopologyFacts(NamedTuple):
    """The whole machine as the backend read it (see :class:`numamap.Topology`)."""

    nodes: tuple[NodeFacts, ...]
    online: tuple[int, ...]
    possible: tuple[int, ...]
    allowed_cpus: tuple[int, ...]
    allowed_memory_nodes: tuple[int, ...]
    thp_mode: str
    granularity: int
    page_size: int
    huge_page_sizes: tuple[int, ...]
    source: str
    notes: tuple[str, ...]
    platform: str


class HandlerConfig(NamedTuple):
    """What a NEP 49 memory handler does (see :func:`numamap.policy`).

    Blocks of at least ``min_size`` bytes come from the node arena of (``node``, ``page_kind``);
    smaller ones from malloc. ``node`` is -1 for the kernel's placement; ``page_kind`` is 'auto'
    (hugetlb 2 MiB chunks while the node's pool serves, else THP), 'base', 'thp', '2M' or '1G'.
    """

    name: str
    node: int
    min_size: int
    page_kind: str


class HandlerStats(NamedTuple):
    """Counters of a handler (see :meth:`numamap.memory_handler.Policy.stats`)."""

    blocks: int             # blocks served from arenas (malloc, calloc, realloc)
    freed: int              # arena blocks given back
    hugetlb: int            # of the blocks served, on hugetlb pages
    hugetlb_fallbacks: int  # hugetlb asked for explicitly, other pages given
    in_place: int           # reallocs that kept their block
    errors: int             # failed allocations
    last_error: int         # errno / winerror of the latest


class BlockInfo(NamedTuple):
    """How one block was served: kind 'malloc', 'small' (a size class carved from an arena
    chunk) or 'large' (a mapping of its own, cached whole when freed); ``page_kind`` 'base',
    'thp' or 'hugetlb'; ``node`` None when the block is unbound (or malloc's)."""

    kind: str
    size: int
    length: int
    page_size: int
    node: int | None = None
    page_kind: str = "base"


class ArenaStats(NamedTuple):
    """One node arena's counters (see :func:`numamap.arena_stats`). Bytes unless named otherwise."""

    node: int | None
    page_kind: str
    page_size: int
    mapped: int     # mapped from the OS now
    in_use: int     # in blocks handed out and not freed
    cached: int     # in freed blocks kept for reuse
    hits: int       # allocations served from memory already mapped
    misses: int     # allocations that needed a new chunk or mapping
    returned: int   # given back to the OS, in all
    failures: int   # OS calls that failed
    last_error: int
