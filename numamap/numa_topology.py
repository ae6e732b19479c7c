"""The machine's NUMA topology: nodes, their CPUs, memory, distances and huge-page pools."""
from __future__ import annotations

import html
from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

from ._backend import backend
from ._units import format_bytes, page_size_name


@dataclass(frozen=True)
class HugePagePool:
    """One huge-page pool: ``total`` and ``free`` are counts of ``page_size`` pages."""

    page_size: int
    total: int
    free: int

    @property
    def free_bytes(self) -> int:
        return self.free * self.page_size


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
        This node's row of the distance matrix, indexed like :attr:`Topology.nodes`.
    hugepages : mapping of int to HugePagePool
        Pools by page size in bytes.
    has_memory, has_cpus : bool
    """

    id: int
    cpus: tuple[int, ...]
    memory_total: int
    memory_free: int
    distances: tuple[int, ...]
    hugepages: Mapping[int, HugePagePool]
    has_memory: bool
    has_cpus: bool


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

    def _rows(self) -> list[tuple[str, ...]]:
        rows = []
        for n in self.nodes:
            pools = ", ".join(f"{page_size_name(s)}: {p.free}/{p.total}" for s, p in n.hugepages.items())
            rows.append((str(n.id), _cpulist(n.cpus) or "-", format_bytes(n.memory_total),
                         format_bytes(n.memory_free), pools or "-",
                         " ".join(map(str, n.distances))))
        return rows

    _HEADER = ("node", "cpus", "memory", "free", "huge pages free/total", "distances")

    def __repr__(self) -> str:
        rows = [self._HEADER, *self._rows()]
        widths = [max(len(r[i]) for r in rows) for i in range(len(self._HEADER))]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
        lines.append(f"THP: {self.thp_mode}; base page {format_bytes(self.base_page_size)}; "
                     f"granularity {format_bytes(self.allocation_granularity)}; "
                     f"allowed cpus {_cpulist(self.allowed_cpus)}; allowed memory nodes "
                     f"{_cpulist(self.allowed_memory_nodes)}; source {self.source}")
        lines.extend(f"note: {note}" for note in self.notes)
        return "\n".join(lines)

    def plot(self, *, figsize=None):
        """Heat map of the distance matrix beside each node's CPUs and memory.

        Needs matplotlib (``pip install numamap[plot]``); see
        :func:`numamap.plotting.plot_topology`. Returns a matplotlib Figure.
        """
        from .plotting import plot_topology

        return plot_topology(self, figsize=figsize)

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{h}</th>" for h in self._HEADER)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                       for row in self._rows())
        foot = html.escape(repr(self).splitlines()[-1 - len(self.notes)])
        notes = "".join(f"<br>note: {html.escape(n)}" for n in self.notes)
        return f"<table><tr>{head}</tr>{body}</table><small>{foot}{notes}</small>"


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
        Node(id=n["id"], cpus=tuple(n["cpus"]), memory_total=n["memory_total"],
             memory_free=n["memory_free"], distances=tuple(n["distances"]),
             hugepages=MappingProxyType({s: HugePagePool(s, t, f) for s, (t, f) in n["hugepages"].items()}),
             has_memory=n["has_memory"], has_cpus=n["has_cpus"])
        for n in facts["nodes"])
    return Topology(nodes=nodes, online_nodes=tuple(facts["online"]),
                    possible_nodes=tuple(facts["possible"]), allowed_cpus=tuple(facts["allowed_cpus"]),
                    allowed_memory_nodes=tuple(facts["allowed_memory_nodes"]), thp_mode=facts["thp_mode"],
                    allocation_granularity=facts["granularity"], base_page_size=facts["page_size"],
                    huge_page_sizes=tuple(facts["huge_page_sizes"]), source=facts["source"],
                    notes=tuple(facts["notes"]), platform=facts["platform"])


def allocation_granularity() -> int:
    """View offsets must be multiples of this (the base page on Linux, 64 KiB on Windows)."""
    return backend.allocation_granularity()
