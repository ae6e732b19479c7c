"""Where memory really is: the node of every page and the page sizes, read back from the kernel."""
from __future__ import annotations

import html
from dataclasses import dataclass, field

import numpy as np

from ._backend import backend
from ._units import format_bytes, page_size_name


@dataclass(frozen=True)
class Placement:
    """The answer of :func:`numamap.where`.

    Attributes
    ----------
    address, size : int
        The range that was asked about.
    page_size : int
        The stride of ``nodes``: one entry per page of this size.
    nodes : numpy.ndarray
        Node of each page; -1 for a page not yet touched. With the kernel's automatic NUMA
        balancing on (``/proc/sys/kernel/numa_balancing``), some kernels also report -1 for
        pages it has just marked for a hinting fault, and balancing may move pages later.
    page_sizes : dict
        Bytes of the range by page size (from /proc/self/smaps or QueryWorkingSetEx).
    """

    address: int
    size: int
    page_size: int
    nodes: np.ndarray = field(repr=False)
    page_sizes: dict

    @property
    def bytes_per_node(self) -> dict[int, int]:
        """Touched bytes on each node (``-1`` collects untouched pages)."""
        ids, counts = np.unique(self.nodes, return_counts=True)
        return {int(i): int(c) * self.page_size for i, c in zip(ids, counts)}

    @property
    def touched_fraction(self) -> float:
        return float(np.mean(self.nodes >= 0)) if self.nodes.size else 1.0

    def fraction_on(self, node: int) -> float:
        """Fraction of all pages of the range that are on ``node`` (untouched pages count against)."""
        return float(np.mean(self.nodes == node)) if self.nodes.size else 0.0

    def __repr__(self) -> str:
        per_node = ", ".join(("untouched" if n < 0 else f"node {n}") + f": {format_bytes(b)}"
                             for n, b in self.bytes_per_node.items())
        sizes = ", ".join(f"{page_size_name(s)}: {format_bytes(b)}" for s, b in self.page_sizes.items())
        return f"<Placement of {format_bytes(self.size)} at {self.address:#x}: {per_node}; pages {sizes or 'none'}>"

    def plot(self, *, blocks=None, title=None, figsize=None):
        """Bar chart of bytes per node by page size, over a strip of the range coloured by node.

        Needs matplotlib (``pip install numamap[plot]``); see
        :func:`numamap.plotting.plot_placement`, which also takes arrays and finds the blocks
        of partitioned ones. Returns a matplotlib Figure.
        """
        from .plotting import plot_placement

        return plot_placement(self, blocks=blocks, title=title, figsize=figsize)

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><td>{'untouched' if n < 0 else n}</td><td>{format_bytes(b)}</td>"
                       f"<td>{b / max(self.size, 1):.1%}</td></tr>" for n, b in self.bytes_per_node.items())
        sizes = "".join(f"<tr><td>{page_size_name(s)}</td><td>{format_bytes(b)}</td></tr>"
                        for s, b in self.page_sizes.items())
        return (f"<b>Placement of {html.escape(format_bytes(self.size))}</b>"
                "<table><tr><th>node</th><th>bytes</th><th>share</th></tr>" + rows + "</table>"
                "<table><tr><th>page size</th><th>bytes</th></tr>" + sizes + "</table>")


def query(address: int, size: int, page_size: int) -> Placement:
    """Ask the kernel about ``[address, address + size)`` at ``page_size`` granularity."""
    start = address - address % page_size
    span = address + size - start
    nodes = backend.page_nodes(start, span, page_size) if span else np.empty(0, np.int32)
    sizes = backend.page_size_breakdown(start, span)
    base = backend.base_page_size()
    thp = 2 << 20
    if page_size == base and sizes.get(thp):
        # smaps counts transparent huge pages per mapping, and a mapping may have merged with its
        # neighbours: never credit this range with more huge pages than it has touched bytes.
        touched = int(np.count_nonzero(nodes >= 0)) * page_size
        capped = min(sizes[thp], touched)
        sizes = sizes | {base: sizes.get(base, 0) + sizes[thp] - capped, thp: capped}
        sizes = {k: v for k, v in sorted(sizes.items()) if v > 0}
    return Placement(address, size, page_size, nodes, sizes)
