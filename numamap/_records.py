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

    ``thp`` is 'leave' (no advice), 'ask' (MADV_HUGEPAGE) or 'forbid' (MADV_NOHUGEPAGE);
    ``huge_page`` an explicit hugetlb size or 0; ``auto_huge_pages`` the hugetlb sizes to try,
    largest first, for page_size='auto'; ``node`` -1 for the kernel's placement.
    """

    name: str
    node: int
    min_size: int
    base_page: int
    thp: str
    thp_size: int
    huge_page: int
    auto_huge_pages: tuple[int, ...]


class HandlerStats(NamedTuple):
    """Counters of a handler's mapped path (see :meth:`numamap.memory_handler.Policy.stats`)."""

    mapped: int
    unmapped: int
    hugetlb: int
    hugetlb_fallbacks: int
    remapped: int
    errors: int
    last_error: int


class BlockInfo(NamedTuple):
    """How a numamap handler served one array: kind 'small' (malloc), 'mapped' or 'hugetlb'."""

    kind: str
    size: int
    length: int
    page_size: int
