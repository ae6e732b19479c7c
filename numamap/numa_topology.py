"""The machine's NUMA topology: nodes, their CPUs, memory, distances and huge-page pools."""
from __future__ import annotations

import html
from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

from ._backend import backend
from ._records import PoolFacts
from ._units import format_bytes, page_size_name


#: One huge-page pool (the backend's record): ``total`` and ``free`` count ``page_size`` pages.
HugePagePool = PoolFacts


@dataclass(frozen=True)
class Node:
    """A NUMA node.

    Attributes
    ----------
    id : int
    cpus : tuple of int
    memory_total, memory_free : int
        Bytes, as the node's meminfo reports them (they need not add up to the machine's).
    distances : tuple of int
        This node's row of the distance matrix, indexed like ``Topology.nodes``.
    hugepages : mapping of int to HugePagePool
        Pools by page size in bytes.
    has_memory, has_cpus : bool
    read_bandwidth, write_bandwidth : int or None
        Bytes per second to this node's memory from its best initiators, as the firmware's HMAT
        gives them (Linux: ``access0/initiators``, MB/s x 10**6); None where it gives none.
    read_latency, write_latency : int or None
        Nanoseconds, likewise.
    initiators : tuple of int
        The nodes those figures are for (the best initiators); empty without figures.
    tier : int or None
        The kernel's memory tier (``memory_tierN``): a higher number is a slower tier; None
        where the kernel has no tiers.
    """

    id: int
    cpus: tuple[int, ...]
    memory_total: int
    memory_free: int
    distances: tuple[int, ...]
    hugepages: Mapping[int, HugePagePool]
    has_memory: bool
    has_cpus: bool
    read_bandwidth: int | None = None
    write_bandwidth: int | None = None
    read_latency: int | None = None
    write_latency: int | None = None
    initiators: tuple[int, ...] = ()
    tier: int | None = None


@dataclass(frozen=True)
class Topology:
    """What :func:`topology` found. Immutable; call :func:`topology` again for fresh numbers."""

    nodes: tuple[Node, ...]
    online_nodes: tuple[int, ...]
    possible_nodes: tuple[int, ...]
    allowed_cpus: tuple[int, ...]
    allowed_memory_nodes: tuple[int, ...]
    thp_mode: str
    allocation_granularity: int
    base_page_size: int
    huge_page_sizes: tuple[int, ...]
    source: str
    notes: tuple[str, ...]
    platform: str

    def node(self, node_id: int) -> Node:
        """The Node with this id (ids need not be contiguous)."""
        for node in self.nodes:
            if node.id == node_id:
                return node
        raise ValueError(f"node {node_id} is not online: nodes are {[n.id for n in self.nodes]}")

    @property
    def node_ids(self) -> tuple[int, ...]:
        return tuple(n.id for n in self.nodes)

    @property
    def distance_matrix(self) -> tuple[tuple[int, ...], ...]:
        return tuple(n.distances for n in self.nodes)

    @property
    def working_nodes(self) -> tuple[int, ...]:
        """Nodes with memory and with CPUs this process may run on: where workers can be local."""
        return tuple(n.id for n in self.nodes if n.has_memory and self.cpus_of(n.id))

    def cpus_of(self, node_id: int) -> tuple[int, ...]:
        """The node's CPUs that this process may run on."""
        allowed = set(self.allowed_cpus)
        return tuple(c for c in self.node(node_id).cpus if c in allowed)

    @property
    def has_hmat(self) -> bool:
        """Whether any node carries the firmware's bandwidth or latency figures."""
        return any(n.read_bandwidth is not None or n.read_latency is not None for n in self.nodes)

    @property
    def has_tiers(self) -> bool:
        """Whether the kernel groups the nodes into memory tiers."""
        return any(n.tier is not None for n in self.nodes)

    def _rows(self) -> list[tuple[str, ...]]:
        rows = []
        for n in self.nodes:
            pools = ", ".join(f"{page_size_name(s)}: {p.free}/{p.total}" for s, p in n.hugepages.items())
            row = (str(n.id), _cpulist(n.cpus) or "-", format_bytes(n.memory_total),
                   format_bytes(n.memory_free), pools or "-", " ".join(map(str, n.distances)))
            if self.has_hmat:
                row += (f"{_rate(n.read_bandwidth)}/{_rate(n.write_bandwidth)}",
                        f"{_ns(n.read_latency)}/{_ns(n.write_latency)}")
            if self.has_tiers:
                row += ("-" if n.tier is None else str(n.tier),)
            rows.append(row)
        return rows

    _HEADER = ("node", "cpus", "memory", "free", "huge pages free/total", "distances")

    def _header(self) -> tuple[str, ...]:
        return (self._HEADER + (("bandwidth r/w", "latency r/w") if self.has_hmat else ())
                + (("tier",) if self.has_tiers else ()))

    def __repr__(self) -> str:
        header = self._header()
        rows = [header, *self._rows()]
        widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
        lines.append(f"THP: {self.thp_mode}; base page {format_bytes(self.base_page_size)}; "
                     f"granularity {format_bytes(self.allocation_granularity)}; "
                     f"allowed cpus {_cpulist(self.allowed_cpus)}; allowed memory nodes "
                     f"{_cpulist(self.allowed_memory_nodes)}; source {self.source}")
        lines.extend(f"note: {note}" for note in self.notes)
        return "\n".join(lines)

    def plot(self, *, figsize=None):
        """Heat map of the distance matrix beside each node's CPUs and memory.

        Needs matplotlib, the ``plot`` extra (``pip install 'numamap[plot]'``); see
        :func:`numamap.plotting.plot_topology`. Returns a matplotlib Figure.
        """
        from .plotting import plot_topology

        return plot_topology(self, figsize=figsize)

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{h}</th>" for h in self._header())
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                       for row in self._rows())
        foot = html.escape(repr(self).splitlines()[-1 - len(self.notes)])
        notes = "".join(f"<br>note: {html.escape(n)}" for n in self.notes)
        return f"<table><tr>{head}</tr>{body}</table><small>{foot}{notes}</small>"


def _rate(value: int | None) -> str:
    """Bytes per second as GB/s, '-' for None."""
    return "-" if value is None else f"{value / 1e9:.3g} GB/s"


def _ns(value: int | None) -> str:
    return "-" if value is None else f"{value} ns"


def _cpulist(cpus) -> str:
    """``(0, 1, 2, 3, 8)`` -> ``'0-3,8'``."""
    cpus = sorted(cpus)
    parts, start = [], None
    for i, cpu in enumerate(cpus):
        if start is None:
            start = cpu
        if i + 1 == len(cpus) or cpus[i + 1] != cpu + 1:
            parts.append(str(start) if start == cpu else f"{start}-{cpu}")
            start = None
    return ",".join(parts)


def topology(root: str = "/") -> Topology:
    """Read the machine's NUMA topology.

    Parameters
    ----------
    root : str
        Where to read sysfs and procfs from (Linux); tests point it at synthetic trees.

    Returns
    -------
    Topology

    Examples
    --------
    >>> import numamap
    >>> topo = numamap.topology()
    >>> 0 in topo.node_ids
    True
    """
    facts = backend.read_topology(root)
    nodes = tuple(
        Node(id=n.id, cpus=n.cpus, memory_total=n.memory_total, memory_free=n.memory_free,
             distances=n.distances, hugepages=MappingProxyType({p.page_size: p for p in n.hugepages}),
             has_memory=n.has_memory, has_cpus=n.has_cpus, read_bandwidth=n.read_bandwidth,
             write_bandwidth=n.write_bandwidth, read_latency=n.read_latency,
             write_latency=n.write_latency, initiators=n.initiators, tier=n.tier)
        for n in facts.nodes)
    return Topology(nodes=nodes, online_nodes=facts.online, possible_nodes=facts.possible,
                    allowed_cpus=facts.allowed_cpus, allowed_memory_nodes=facts.allowed_memory_nodes,
                    thp_mode=facts.thp_mode, allocation_granularity=facts.granularity,
                    base_page_size=facts.page_size, huge_page_sizes=facts.huge_page_sizes,
                    source=facts.source, notes=facts.notes, platform=facts.platform)


def allocation_granularity() -> int:
    """View offsets must be multiples of this (the base page on Linux, 64 KiB on Windows)."""
    return backend.allocation_granularity()
