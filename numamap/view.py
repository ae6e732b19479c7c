"""Views: mapped memory with a placement request, and what the system actually gave.

``map_memory`` is the one routine every mapping goes through (section views, anonymous arrays,
ring buffers, partitioned blocks): it checks the request, maps, binds, populates and verifies.
"""
from __future__ import annotations

import html
import threading
import weakref
from dataclasses import dataclass

import numpy as np

from . import placement as _placement
from ._backend import backend
from ._errors import FallbackError, warn_fallback
from ._units import MiB, format_bytes, page_size_name, parse_page_size, round_up
from .reservation import Reservation, find_reservation

POLICIES = ("preferred", "bind", "interleave")


class _Mapping:
    """Owns one OS mapping. It is unmapped, or handed back to its reservation, when the last
    View holding it is gone: arrays hold Views through ``.base``, so memory that Python can
    reach is never unmapped."""

    __slots__ = ("address", "length", "__weakref__")

    def __init__(self, address: int, length: int, reservation: Reservation | None):
        self.address = address
        self.length = length
        finalizer = weakref.finalize(self, _release, address, length, reservation)
        finalizer.atexit = False


def _release(address: int, length: int, reservation: Reservation | None) -> None:
    if reservation is None:
        backend.unmap_view(address, length)
    else:
        backend.return_to_reservation(address, length)
        reservation.unclaim(address)


@dataclass(frozen=True)
class Request:
    """A checked placement request: which nodes, which policy."""

    policy: str
    nodes: tuple[int, ...]  # empty: no binding, the kernel's first-touch default

    @property
    def node(self) -> int | None:
        return self.nodes[0] if len(self.nodes) == 1 else None


def check_node_id(value, name: str = "node") -> int:
    """``value`` as an int node id, or TypeError naming ``name``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int node id, not {type(value).__name__}")
    return int(value)


def node_list(nodes, *, name: str = "nodes", repeats: bool = False, hint: str = "") -> list[int]:
    """Check a user's sequence of node ids: ints, not empty, and no repeats unless ``repeats``.

    Whether the nodes exist and suit the purpose is the caller's to check.
    """
    if isinstance(nodes, (int, np.integer)):
        raise TypeError(f"{name} must be a sequence of node ids, e.g. {name}=[0, 1]{hint}")
    out = [check_node_id(value, f"each entry of {name}") for value in nodes]
    if not out:
        raise ValueError(f"{name} must not be empty")
    if not repeats and len(set(out)) != len(out):
        raise ValueError(f"{name}={out} repeats a node")
    return out


def check_request(node, policy: str, nodes) -> Request:
    """Validate ``node``/``policy``/``nodes`` against the machine's memory nodes."""
    if policy not in POLICIES:
        raise ValueError(f"policy={policy!r} is not one of {', '.join(map(repr, POLICIES))}")
    if node is not None:
        node = check_node_id(node)
    if nodes is not None:
        # repeats are refused below, after the per-policy checks
        nodes = tuple(node_list(nodes, repeats=True, hint="; use node= for one"))
        if node is not None and nodes != (node,):
            raise ValueError("give either node= or nodes=, not both")
        if policy == "preferred" and len(nodes) > 1:
            raise ValueError("policy='preferred' takes one node; use policy='bind' or 'interleave' "
                             "for several")
    chosen = nodes if nodes is not None else ((node,) if node is not None else ())
    memory = backend.memory_nodes()
    if policy == "interleave" and not chosen:
        chosen = tuple(sorted(memory))
    if policy == "bind" and not chosen:
        raise ValueError("policy='bind' needs node= or nodes=")
    for n in chosen:
        if n not in memory:
            raise ValueError(f"node {n} is unknown or has no memory: nodes with memory are "
                             f"{sorted(memory)} (see numamap.topology())")
    if len(set(chosen)) != len(chosen):
        raise ValueError(f"nodes={list(chosen)} repeats a node")
    return Request(policy, tuple(chosen))


class View:
    """A mapped range of memory and an honest account of it.

    Views come from :meth:`Section.map`, and sit under every array numamap builds
    (``arr.base``). ``np.asarray(view)`` gives the bytes as a uint8 array that keeps the mapping
    alive.

    Attributes
    ----------
    address, size : int
        Where the view is and how many bytes it covers.
    node : int or None
        The node asked for (None when several nodes or none were asked for).
    nodes : tuple of int
        The nodes of the policy; empty when the memory was left to first touch.
    policy : str
        'preferred', 'bind' or 'interleave'.
    page_size : int
        The page size obtained: a hugetlb size, or the base page size.
    page_kind : str
        'hugetlb', 'thp' (base pages with transparent huge pages asked for) or 'base'.
    populated : bool
        Whether every page was faulted in at map time.
    verified : bool or None
        True when every page was checked to be where the policy says, False when some are not,
        None when nothing was checked (pages not touched yet).
    fallback : str or None
        What numamap could not honour and what it did instead.
    """

    def __init__(self, mappings, *, address: int, size: int, request: Request, page_size: int,
                 page_kind: str, populated: bool, access: str, section=None, offset: int = 0,
                 fallback: str | None = None, reservation: Reservation | None = None):
        self._mappings = tuple(mappings)
        self._address = address
        self.size = size
        self.request = request
        self.page_size = page_size
        self.page_kind = page_kind
        self.populated = populated
        self.access = access
        self.section = section
        self.offset = offset
        self.fallback = fallback
        self.reservation = reservation
        self.verified: bool | None = None
        self.blocks: tuple[tuple[int, int, int], ...] | None = None  # (node, start, end) of partitioned arrays
        self._lock = threading.Lock()

    # -- what the user asked and got -----------------------------------------------------------
    @property
    def node(self) -> int | None:
        return self.request.node

    @property
    def nodes(self) -> tuple[int, ...]:
        return self.request.nodes

    @property
    def policy(self) -> str:
        return self.request.policy

    @property
    def closed(self) -> bool:
        return not self._mappings

    @property
    def address(self) -> int:
        if self.closed:
            raise ValueError("this view is closed")
        return self._address

    def where(self) -> _placement.Placement:
        """Ask the kernel where the view's pages are now."""
        return _placement.query(self.address, self.size, self.page_size)

    def verify(self) -> bool | None:
        """Check every touched page against the policy now; stores and returns :attr:`verified`.

        None means no page is touched yet, so there is nothing to check.
        """
        found = self.where()
        touched = found.nodes >= 0
        if not touched.any():
            self.verified = None
        elif self.blocks:  # each block on its own node
            offsets = np.arange(found.nodes.size) * found.page_size + (found.address - found.address % found.page_size)
            expected = np.full(found.nodes.size, -1)
            for node, start, end in self.blocks:
                expected[(offsets >= self.address + start) & (offsets < self.address + end)] = node
            self.verified = bool((found.nodes[touched] == expected[touched]).all())
        else:  # untouched pages are not misplaced: they get placed by the policy when touched
            self.verified = bool(not self.nodes or np.isin(found.nodes[touched], self.nodes).all())
        return self.verified

    def summary(self) -> str:
        """One line: the node, the page size, and whether placement was verified."""
        where = (f"node {self.node}" if self.node is not None else
                 f"nodes {list(self.nodes)}" if self.nodes else "first-touch node")
        kind = {"hugetlb": f"{page_size_name(self.page_size)} hugetlb pages",
                "thp": f"{page_size_name(self.page_size)} pages with THP requested",
                "base": f"{page_size_name(self.page_size)} pages",
                "mixed": "mixed page sizes"}[self.page_kind]
        checked = {True: "placement verified", False: "placement NOT as requested",
                   None: "placement not verified (pages untouched)"}[self.verified]
        text = f"{format_bytes(self.size)} on {where} ({self.policy}), {kind}, {checked}"
        return text + (f"; fallback: {self.fallback}" if self.fallback else "")

    # -- lifetime ------------------------------------------------------------------------------
    def close(self) -> None:
        """Let go of the mapping. Arrays made from this view keep it mapped until they die."""
        with self._lock:
            self._mappings = ()

    def __enter__(self) -> "View":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- buffer --------------------------------------------------------------------------------
    def _export(self) -> "_ExportedView":
        if self.closed:
            raise ValueError("this view is closed")
        clone = _ExportedView.__new__(_ExportedView)
        clone.__dict__.update(self.__dict__)
        clone._lock = threading.Lock()
        return clone

    def __array__(self, dtype=None, copy=None):
        if copy:
            raise ValueError("np.array(view, copy=True) would copy off the node: use "
                             "numamap.empty_like or np.array(np.asarray(view))")
        arr = np.asarray(self._export())
        return arr if dtype is None else arr.view(dtype)

    def __buffer__(self, flags: int) -> memoryview:  # Python 3.12+ buffer protocol
        return memoryview(self.__array__())

    def ndarray(self, shape, dtype=np.uint8, order: str = "C", offset: int = 0) -> np.ndarray:
        """An ndarray of ``shape`` and ``dtype`` over the view, starting ``offset`` bytes in.

        Its ``.base`` is a View sharing this one's mapping, so the array keeps the memory mapped.
        """
        dtype = np.dtype(dtype)
        shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(int(s) for s in shape)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if offset < 0 or offset + nbytes > self.size:
            raise ValueError(f"{nbytes} bytes at offset {offset} do not fit in this {self.size}-byte view")
        strides = None
        if order == "F" and len(shape) > 1:
            strides, step = [], dtype.itemsize
            for extent in shape:
                strides.append(step)
                step *= max(extent, 1)
            strides = tuple(strides)
        export = self._export()
        export._layout = (shape, dtype, strides, offset)
        arr = np.asarray(export)
        return arr if arr.dtype == dtype else arr.view(dtype)

    def __len__(self) -> int:
        return self.size

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"at {self._address:#x}"
        return f"<numamap.View {state}: {self.summary()}>"

    def _repr_html_(self) -> str:
        rows = [("address", "closed" if self.closed else f"{self._address:#x}"),
                ("size", format_bytes(self.size)), ("policy", self.policy),
                ("nodes", ", ".join(map(str, self.nodes)) or "first touch"),
                ("pages", f"{page_size_name(self.page_size)} ({self.page_kind})"),
                ("verified", str(self.verified)), ("fallback", self.fallback or "none")]
        body = "".join(f"<tr><th>{k}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
        return f"<b>numamap.View</b><table>{body}</table>"


class _ExportedView(View):
    """The View that arrays hold as ``.base``: it exposes the memory to numpy."""

    _layout = None  # (shape, dtype, strides, byte offset) of the array being made

    def __buffer__(self, flags: int) -> memoryview:
        # On Python 3.12+ numpy tries the buffer protocol before __array_interface__; refusing it
        # makes numpy take the interface, so arrays keep this View (not a memoryview) as .base.
        raise BufferError("numamap views export their memory through __array_interface__")

    @property
    def __array_interface__(self) -> dict:
        shape, dtype, strides, offset = self._layout or ((self.size,), np.dtype(np.uint8), None, 0)
        interface = {"shape": shape, "typestr": dtype.str, "version": 3, "strides": strides,
                     "data": (self.address + offset, self.access == "r")}
        if dtype.fields is not None:
            interface["descr"] = dtype.descr
        return interface


# ----------------------------------------------------------------------------------------------


def _fallback(what: str, got: str) -> str:
    """Warn about a fallback (callers raise instead under strict=True); return the message."""
    message = f"{what}; got {got} instead"
    warn_fallback(message)
    return message


def _pool_can_serve(page_size: int, pages: int, request: Request):
    """The pool that would serve ``pages`` huge pages for ``request``, and whether it can."""
    if request.policy in ("preferred", "bind") and len(request.nodes) == 1:
        pool = backend.hugepage_pool(page_size, request.nodes[0])
    else:
        pool = backend.hugepage_pool(page_size, None)
    return pool, pool is not None and pool.free >= pages


def map_memory(size: int, *, section=None, offset: int = 0, access: str = "rw", node=None,
               policy: str = "preferred", nodes=None, page_size="auto", populate: bool = False,
               address: int | None = None, strict: bool = False, hugetlb: bool = True) -> View:
    """Map ``size`` bytes (of ``section``, or private anonymous memory) as the request says.

    The parameters are those of :meth:`Section.map` and the array constructors;
    ``hugetlb=False`` keeps ``page_size='auto'`` to THP or base pages (for blocks whose
    boundaries are not huge-page aligned).
    """
    request = check_request(node, policy, nodes)
    wanted = parse_page_size(page_size)
    base = backend.base_page_size()
    if wanted is not None and wanted != base and wanted not in backend.huge_page_sizes():
        raise ValueError(f"page_size={page_size!r}: this machine serves {page_size_name(base)} and "
                         f"{', '.join(page_size_name(s) for s in backend.huge_page_sizes()) or 'no huge'} pages")
    fallback = None
    huge = None  # the hugetlb page size to use, if any

    if section is not None and section.page_size is not None:
        if wanted is not None and wanted != section.page_size:
            raise ValueError(f"page_size={page_size!r} does not match the section's "
                             f"{page_size_name(section.page_size)} pages")
        huge = section.page_size
        pool, ok = _pool_can_serve(huge, -(-size // huge), request)
        if not ok and pool is not None and request.nodes and request.policy != "interleave":
            raise MemoryError(f"cannot map {format_bytes(size)} of {page_size_name(huge)} pages: {pool.describe()}")
    elif section is not None:
        if wanted is not None and wanted != base:
            raise ValueError(f"page_size={page_size!r}: the section was created with "
                             f"{page_size_name(base)} pages; create it with "
                             f"Section(size, page_size={page_size_name(wanted)!r}) for large pages")
    elif wanted is not None and wanted != base:
        pool, ok = _pool_can_serve(wanted, -(-size // wanted), request)
        if ok:
            huge = wanted
        else:
            what = (f"{page_size_name(wanted)} pages for {format_bytes(size)}: "
                    + (pool.describe() if pool else "no such pool"))
            if strict:
                raise MemoryError(f"cannot get {what}")
            fallback = _fallback(f"cannot get {what}", "base pages" +
                                 (" with THP requested" if backend.capabilities()["thp"] else ""))
    elif wanted is None and hugetlb:
        for candidate in sorted(backend.huge_page_sizes(), reverse=True):
            if size >= candidate and _pool_can_serve(candidate, -(-size // candidate), request)[1]:
                huge = candidate
                break

    page = huge or base
    length = round_up(max(size, 1), page)
    if section is not None and huge and offset % huge:
        raise ValueError(f"offset={offset} must be a multiple of the section's page size ({huge})")

    thp = False
    if huge is None and (wanted is None or fallback):
        mode = backend.thp_mode() if section is None else backend.shmem_thp_mode()
        thp = size >= 2 * MiB and mode in ("always", "madvise", "advise", "within_size")
        if strict and wanted is None and not thp and size >= 2 * MiB and backend.huge_page_sizes():
            raise FallbackError(f"page_size='auto' with strict=True: no huge-page pool can serve "
                                f"{format_bytes(size)} and transparent huge pages are off ({mode})")

    if request.policy == "bind" and populate and huge is None:
        free = sum(backend.node_memory_free(n) or 0 for n in request.nodes)
        if free and length > free:
            raise MemoryError(f"cannot populate {format_bytes(length)} bound to nodes {list(request.nodes)}: "
                              f"they have {format_bytes(free)} free; use policy='preferred' to spill "
                              "to other nodes, or a smaller array")

    reservation = None
    if address is not None:
        if isinstance(address, bool) or not isinstance(address, int):
            raise TypeError(f"address must be an int inside a numamap.reserve() range, not {type(address).__name__}")
        if address % page:
            raise ValueError(f"address={address:#x} must be a multiple of the page size ({page})")
        reservation = find_reservation(address, length)
        reservation.claim(address, length)
    try:
        got = backend.map_view(length, section=section, offset=offset, access=access,
                               page_size=huge if section is None else None, address=address,
                               node=request.node)
    except MemoryError as exc:
        if reservation is not None:
            reservation.unclaim(address)
        if huge:
            pool = _pool_can_serve(huge, length // huge, request)[0]
            raise MemoryError(f"{exc}: {pool.describe() if pool else 'no huge-page pool'}") from None
        raise
    except BaseException:
        if reservation is not None:
            reservation.unclaim(address)
        raise
    mapping = _Mapping(got, length, reservation)
    page_kind = "hugetlb" if huge else ("thp" if thp else "base")
    try:
        if huge is None and access != "r":
            if thp:
                backend.advise_thp(got, length, True)
            elif wanted == base:
                backend.advise_thp(got, length, False)  # '4K' means 4 KiB pages, even under THP
        if request.nodes:
            try:
                backend.set_policy(got, length, request.policy, request.nodes)
            except OSError as exc:
                if len(backend.memory_nodes()) > 1 or strict:
                    raise FallbackError(exc.errno, f"cannot place memory on nodes {list(request.nodes)}: "
                                        f"{exc.strerror or exc}") from None
                fallback = _fallback(f"the NUMA policy could not be set ({exc.strerror or exc})",
                                     "the kernel's default placement on the only node")
        # Hugetlb pages bound to a node are faulted now: a node pool that runs dry must fail
        # here with MemoryError, never later with SIGBUS.
        must_populate = populate or (huge is not None and bool(request.nodes))
        if must_populate and access != "r":
            backend.populate(got, length, page)
    except BaseException:
        del mapping
        raise
    view = View((mapping,), address=got, size=size, request=request, page_size=page,
                page_kind=page_kind, populated=must_populate and access != "r", access=access,
                section=section, offset=offset, fallback=fallback, reservation=reservation)
    if view.populated:
        view.verify()
        if strict and view.verified is False and request.policy == "bind":
            raise FallbackError(f"pages are not all on nodes {list(request.nodes)}: {view.where()!r}")
    return view


def combine(views, *, address: int, size: int, reservation: Reservation | None) -> View:
    """One View over several adjacent views (ring buffers, partitioned blocks); it keeps them all."""
    views = list(views)
    first = views[0]
    nodes = tuple(dict.fromkeys(n for v in views for n in v.nodes))
    request = Request(first.policy if len(nodes) <= 1 else "bind", nodes)
    combined = View([m for v in views for m in v._mappings], address=address, size=size,
                    request=request, page_size=min(v.page_size for v in views),
                    page_kind=first.page_kind if len({v.page_kind for v in views}) == 1 else "mixed",
                    populated=all(v.populated for v in views), access=first.access,
                    section=first.section, fallback="; ".join(v.fallback for v in views if v.fallback) or None,
                    reservation=reservation)
    checks = {v.verified for v in views}
    combined.verified = False if False in checks else (None if None in checks else True)
    return combined
