"""Where memory really is: the node of every page and the page sizes, read back from the kernel."""
from __future__ import annotations

import html
from dataclasses import dataclass, field

import numpy as np

from ._backend import backend
from ._errors import NUMA_REFUSED, warn_fallback
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
        Bytes of the range by page size (from /proc/self/smaps or QueryWorkingSetEx), in whole
        pages of each size; empty for a range of no bytes.
    reason : str or None
        Why placement is unknown, when the system refused to say (a container's seccomp
        profile refusing move_pages, say): then every entry of ``nodes`` is -1.
    """

    address: int
    size: int
    page_size: int
    nodes: np.ndarray = field(repr=False)
    page_sizes: dict
    reason: str | None = None

    @property
    def known(self) -> bool:
        """Whether the system answered where the pages are."""
        return self.reason is None

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
        if self.reason:
            return f"<Placement of {format_bytes(self.size)} at {self.address:#x}: {self.reason}>"
        per_node = ", ".join(("untouched" if n < 0 else f"node {n}") + f": {format_bytes(b)}"
                             for n, b in self.bytes_per_node.items())
        sizes = ", ".join(f"{page_size_name(s)}: {format_bytes(b)}" for s, b in self.page_sizes.items())
        return f"<Placement of {format_bytes(self.size)} at {self.address:#x}: {per_node}; pages {sizes or 'none'}>"

    def plot(self, *, blocks=None, title=None, figsize=None):
        """Bar chart of bytes per node by page size, over a strip of the range coloured by node.

        Needs matplotlib, the ``plot`` extra (``pip install 'numamap[plot]'``); see
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


def page_nodes(address: int, size: int, page_size: int) -> tuple[int, np.ndarray, str | None]:
    """The node of each whole ``page_size`` page holding ``[address, address + size)``.

    Returns the first page's address, the nodes (-1: untouched or unknown) and, when the
    system refused to say (move_pages refused in a container), why; that is warned about once
    per process. Only move_pages is asked: verification needs nothing else.
    """
    start = address - address % page_size
    end = -(-(address + size) // page_size) * page_size if size > 0 else start
    if end == start:
        return start, np.empty(0, np.int32), None
    try:
        return start, backend.page_nodes(start, end - start, page_size), None
    except PermissionError as exc:
        reason = f"placement unknown: {exc}"
        warn_fallback(reason, once=NUMA_REFUSED)
        return start, np.full((end - start) // page_size, -1, np.int32), reason


def query(address: int, size: int, page_size: int) -> Placement:
    """Ask the kernel about ``[address, address + size)`` at ``page_size`` granularity.

    The range asked about is the whole pages that hold those bytes: nothing for ``size == 0``,
    and byte counts that are whole pages of each size.
    """
    start, nodes, reason = page_nodes(address, size, page_size)
    if not nodes.size:
        return Placement(address, max(size, 0), page_size, nodes, {})
    span = nodes.size * page_size
    sizes = _whole_pages(backend.page_size_breakdown(start, span), start, span, nodes, page_size)
    return Placement(address, size, page_size, nodes, sizes, reason)


def _whole_pages(sizes: dict[int, int], start: int, span: int, nodes: np.ndarray,
                 page_size: int) -> dict[int, int]:
    """Round the page-size breakdown to whole pages of each size.

    smaps counts transparent huge pages per mapping, which the backend shares out in proportion
    to the overlap, and a range may cover part of a huge page. So each huge-page share is
    rounded to the nearest whole page, and capped at the huge pages the range reaches and at its
    touched bytes (a mapping may have merged with busier neighbours); the rest is base pages.
    A range that covers part of a huge page may count that whole page.
    """
    base = backend.base_page_size()
    huge = {}
    for size, count in sizes.items():
        if size == base:
            continue
        whole = (2 * count + size) // (2 * size) * size  # nearest, halves up
        reached = (-(-(start + span) // size) - start // size) * size
        whole = min(whole, reached)
        if page_size < size:
            touched = int(np.count_nonzero(nodes >= 0)) * page_size
            whole = min(whole, -(-touched // size) * size)
        if whole > 0:
            huge[size] = whole
    rest = sum(sizes.values()) - sum(huge.values())
    rest -= rest % base
    out = {base: rest} if rest > 0 else {}
    return {k: v for k, v in sorted((out | huge).items())}
