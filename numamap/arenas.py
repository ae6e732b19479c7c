"""Node arenas: where small and medium arrays come from, so placed memory costs what numpy's does.

An arena serves one (node, page kind). It takes memory from the OS in 2 MiB-aligned chunks
(hugetlb pages while the node's pool can serve, else base pages with transparent huge pages
asked for), carves blocks up to 256 KiB by size class, and keeps bigger blocks as whole mappings.
Freed memory stays faulted in and is reused (small blocks through per-thread caches, so threads
do not contend); what idles longer than the decay time (1 s by default) goes back to the OS,
and :func:`trim` gives everything unused back at once. The allocator is C (``_arena.c``), shared
by :func:`numamap.policy`'s NEP 49 handler and by :func:`numamap.empty` and friends.

An array made from an arena has an :class:`ArenaBlock` as ``.base``: it keeps the block alive,
gives it back when the last array over it dies, and says where the block is and on which pages.
"""
from __future__ import annotations

import html
from typing import NamedTuple

import numpy as np

from . import placement as _placement
from ._backend import backend
from ._records import ArenaStats
from ._units import format_bytes, page_size_name, parse_size

#: Seconds cached memory may idle before it goes back to the OS, by default.
DEFAULT_DECAY = 1.0
#: Bytes of whole large blocks one arena caches at most, by default.
DEFAULT_CACHE_LIMIT = 1 << 30

_settings = {"decay": DEFAULT_DECAY, "cache_limit": DEFAULT_CACHE_LIMIT}


class ArenaBlock(backend.ArenaBuffer):
    """One block of a node arena: the ``.base`` of arrays that :func:`numamap.empty` and friends
    carve from arenas.

    Attributes
    ----------
    address, nbytes : int
        Where the block starts and how many bytes the array asked for.
    node : int or None
        The node the arena places its pages on (None: the kernel's choice, first touch).
    page_size : int
        The page size behind the block.
    page_kind : str
        'hugetlb', 'thp' (base pages with transparent huge pages asked for) or 'base'.
    policy : str
        'bind' for hugetlb arenas, 'preferred' otherwise (pages spill only when the node is full).
    kind : str
        'small' (a size class carved from a chunk) or 'large' (a mapping of its own).
    verified : bool or None
        Whether every touched page of the block's own byte range is on ``node``, asked of the
        kernel each time it is read; None when no page is touched yet or the kernel would not say.
    fallback : None
        Arena blocks are served as asked or not at all (the request then takes a mapping of its
        own, which reports its own fallback).
    """

    __slots__ = ()
    fallback = None

    def _info(self):
        info = backend.arena_block_info(self.address)
        if info is None:  # cannot happen while the block is alive: it is ours
            raise RuntimeError(f"numamap: no arena knows the block at {self.address:#x}")
        return info

    @property
    def node(self) -> int | None:
        return self._info().node

    @property
    def nodes(self) -> tuple[int, ...]:
        node = self.node
        return () if node is None else (node,)

    @property
    def page_size(self) -> int:
        return self._info().page_size

    @property
    def page_kind(self) -> str:
        return self._info().page_kind

    @property
    def kind(self) -> str:
        return self._info().kind

    @property
    def policy(self) -> str:
        return "bind" if self.page_kind == "hugetlb" else "preferred"

    @property
    def size(self) -> int:
        return self.nbytes

    def where(self) -> _placement.Placement:
        """Ask the kernel where the block's pages are now."""
        return _placement.query(self.address, max(self.nbytes, 1), self.page_size)

    def verify(self) -> bool | None:
        """Check the pages of the block's byte range against its node now (move_pages)."""
        info = self._info()
        if info.node is None:
            return None
        _, found, reason = _placement.page_nodes(self.address, max(self.nbytes, 1), info.page_size)
        touched = found[found >= 0] if reason is None else found[:0]
        return bool((touched == info.node).all()) if touched.size else None

    verified = property(verify, doc="``verify()``, asked now: True, False or None.")

    def summary(self) -> str:
        """One line: node, pages, block kind and whether placement is as asked, checked now."""
        info = self._info()
        where = "first-touch node" if info.node is None else f"node {info.node}"
        pages = {"hugetlb": "hugetlb pages", "thp": "pages with THP requested",
                 "base": "pages"}[info.page_kind]
        check = {True: "placement verified", False: "placement NOT as requested",
                 None: "placement not verified (pages untouched)"}[self.verify()]
        return (f"{format_bytes(self.nbytes)} on {where} ({self.policy}), "
                f"{page_size_name(info.page_size)} {pages}, {info.kind} arena block, {check}")

    def __repr__(self) -> str:
        return f"<numamap.ArenaBlock at {self.address:#x}: {self.summary()}>"

    def _repr_html_(self) -> str:
        info = self._info()
        rows = [("address", f"{self.address:#x}"), ("size", format_bytes(self.nbytes)),
                ("node", "first touch" if info.node is None else str(info.node)),
                ("pages", f"{page_size_name(info.page_size)} ({info.page_kind})"),
                ("block", f"{info.kind}, {format_bytes(info.length)} reserved"),
                ("placement", {True: "verified", False: "NOT as requested",
                               None: "not verified (pages untouched)"}[self.verify()])]
        body = "".join(f"<tr><th>{k}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
        return f"<b>numamap.ArenaBlock</b><table>{body}</table>"


def new_block(nbytes: int, node: int | None, *, zero: bool = False, page_kind: str = "auto") -> ArenaBlock:
    """A block of ``nbytes`` from the arena of ``node`` (the allocator under numamap.empty)."""
    block = ArenaBlock()
    backend.arena_take(block, node, page_kind, nbytes, zero)
    return block


class ArenaStatsTable(list):
    """A list of :class:`ArenaStats` records that prints as a table (and as HTML in Jupyter)."""

    _COLUMNS = ("mapped", "in_use", "cached", "returned")

    def totals(self) -> dict[str, int]:
        """Each counter summed over the arenas."""
        return {name: sum(getattr(s, name) for s in self) for name in ArenaStats._fields[3:-1]}

    def _rows(self) -> list[tuple[str, ...]]:
        rows = []
        for s in self:
            node = "-" if s.node is None else str(s.node)
            rows.append((node, f"{s.page_kind} {page_size_name(s.page_size)}",
                         *(format_bytes(getattr(s, c)) for c in self._COLUMNS),
                         str(s.hits), str(s.misses), str(s.failures)))
        return rows

    _HEADER = ("node", "pages", "mapped", "in use", "cached", "given back", "hits", "misses",
               "failures")

    def __str__(self) -> str:
        if not self:
            return "no arena has served a block yet"
        rows = [self._HEADER, *self._rows()]
        widths = [max(len(r[i]) for r in rows) for i in range(len(self._HEADER))]
        return "\n".join("  ".join(cell.rjust(w) for cell, w in zip(r, widths)) for r in rows)

    def _repr_html_(self) -> str:
        if not self:
            return "<i>numamap: no arena has served a block yet</i>"
        head = "".join(f"<th>{h}</th>" for h in self._HEADER)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                       for row in self._rows())
        return f"<b>numamap arenas</b><table><tr>{head}</tr>{body}</table>"


def arena_stats() -> ArenaStatsTable:
    """Per node and page kind: bytes mapped, in use and cached, hits, misses, bytes given back.

    Returns
    -------
    ArenaStatsTable
        A list of :class:`numamap.ArenaStats` records (one per arena that exists), which prints
        as a table and shows as one in Jupyter. ``in_use`` counts blocks handed out (by size
        class); ``cached`` is what is mapped and not in use: freed blocks kept for reuse, whole
        cached mappings and the unused rest of chunks. ``hits`` are allocations served from
        memory already mapped, ``misses`` those that mapped a new chunk or block.

    Examples
    --------
    >>> import numamap
    >>> a = numamap.empty(1000, node=0)
    >>> stats = numamap.arena_stats()
    >>> stats.totals()["in_use"] >= a.nbytes
    True
    """
    return ArenaStatsTable(backend.arena_stats())


def trim() -> int:
    """Give every cached byte of the arenas back to the OS now; returns how many bytes.

    Whole free chunks and cached large blocks are unmapped; free parts of chunks still in use
    give their pages back (MADV_DONTNEED on Linux). Blocks held in other threads' caches stay
    with those threads until they flush them or end: per thread and arena, 64 KiB worth of
    blocks per size class (4 blocks at least, so up to 1 MiB for the 256 KiB class), about
    7.5 MiB in all at the very most.

    Examples
    --------
    >>> import numamap
    >>> numamap.trim() >= 0
    True
    """
    return backend.arena_trim()


def arena_settings() -> dict:
    """The settings in force, and what ``page_size='auto'`` takes on this machine now."""
    pool = backend.hugepage_pool(2 << 20, None) if (2 << 20) in backend.huge_page_sizes() else None
    if pool is not None and pool.configured:
        auto = f"2M hugetlb chunks while the pool serves ({pool.free} of {pool.total} pages free), else THP"
    elif backend.thp_mode() in ("always", "madvise"):
        auto = "base pages with transparent huge pages asked for (no 2M hugetlb pool)"
    else:
        auto = "base pages (no 2M hugetlb pool, THP off)"
    return {**_settings, "auto_pages": auto}


def configure_arenas(*, decay: float | None = None, cache_limit: int | str | None = None) -> dict:
    """Set how long cached memory may idle and how much of it large blocks may keep.

    Parameters
    ----------
    decay : float, optional
        Seconds freed memory stays cached before it goes back to the OS (default 1.0). 0 gives
        large blocks back at once and whole chunks within about 10 ms.
    cache_limit : int or str, optional
        Most bytes of whole large blocks each arena caches (default 1 GiB), e.g. ``'256M'``.

    Returns
    -------
    dict
        The settings now in force.
    """
    if decay is not None:
        if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not (0 <= decay <= 86400):
            raise ValueError(f"decay={decay!r} must be a number of seconds from 0 to 86400")
        _settings["decay"] = float(decay)
    if cache_limit is not None:
        _settings["cache_limit"] = parse_size(cache_limit, name="cache_limit")
    backend.arena_configure(_settings["decay"], _settings["cache_limit"])
    return dict(_settings)


__all__ = ["ArenaBlock", "ArenaStats", "ArenaStatsTable", "arena_settings", "arena_stats", "configure_arenas",
           "new_block", "trim"]
