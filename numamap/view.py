"""Views: mapped memory with a placement request, and what the system actually gave.

``map_memory`` is the one routine every mapping goes through (section views, anonymous arrays,
ring buffers, partitioned blocks): it checks the request, maps, binds, populates and verifies.
"""
from __future__ import annotations

import html
import math
import operator
import threading
import weakref
from dataclasses import dataclass

import numpy as np

from . import placement as _placement
from ._backend import backend
from ._errors import NUMA_REFUSED, FallbackError, warn_fallback
from ._shapes import check_dtype, check_shape, fold_subarray
from ._units import format_bytes, page_size_name
from .plan import MachineFacts, MappingPlan, plan_mapping
from .progress import Progress, in_steps
from .request import Request, check_request
from .reservation import Reservation, find_reservation



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


class _Account:
    """What was asked of one mapping and what is known of its pages: shared by a View and every
    array made from it, so a ``verify()`` or ``migrate()`` through one is seen by all."""

    __slots__ = ("request", "fallback", "verified", "blocks", "unknown")

    def __init__(self, request: Request, fallback: str | None):
        self.request = request
        self.fallback = fallback
        self.verified: bool | None = None
        self.unknown: str | None = None  # why the system would not say where the pages are
        self.blocks: tuple[tuple[int, int, int], ...] | None = None


class View(backend.MappedBuffer):
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
        The answer of the last :meth:`verify` (made at map time when populated, and again by
        :meth:`summary` and the HTML display, which always check now): True when every touched
        page was where the policy says, False when some were not, None when no page was
        touched or the system would not say.
    fallback : str or None
        What numamap could not honour and what it did instead.
    """

    def __init__(self, mappings, *, address: int, size: int, request: Request, page_size: int,
                 page_kind: str, populated: bool, access: str, section=None, offset: int = 0,
                 fallback: str | None = None, reservation: Reservation | None = None):
        self._mappings = tuple(mappings)
        self._closed = False
        self._address = address
        self.size = size
        self._account = _Account(request, fallback)
        self.page_size = page_size
        self.page_kind = page_kind
        self.populated = populated
        self.access = access
        self.section = section
        self.offset = offset
        self.reservation = reservation
        self._lock = threading.Lock()
        # The buffer protocol (memoryview(view), np.frombuffer(view)) on every Python.
        self._nm_set_buffer(address, size, access == "r", False)

    # -- the shared account: a View and every array made from it read and write the same one ----
    request = property(lambda self: self._account.request,
                       lambda self, value: setattr(self._account, "request", value))
    verified = property(lambda self: self._account.verified,
                        lambda self, value: setattr(self._account, "verified", value),
                        doc="True, False or None: see the class docstring.")
    fallback = property(lambda self: self._account.fallback,
                        lambda self, value: setattr(self._account, "fallback", value))
    blocks = property(lambda self: self._account.blocks,
                      lambda self, value: setattr(self._account, "blocks", value),
                      doc="(node, start, end) of each block of a partitioned array, else None.")

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
        return self._closed

    @property
    def address(self) -> int:
        if self.closed:
            raise ValueError("this view is closed")
        return self._address

    def where(self) -> _placement.Placement:
        """Ask the kernel where the view's pages are now."""
        return _placement.query(self.address, self.size, self.page_size)

    def verify(self) -> bool | None:
        """Check every touched page against the policy now; stores and returns ``verified``.

        Asks the kernel for each page's node (move_pages) and nothing else. None means no page
        is touched yet, so there is nothing to check.
        """
        start, found, reason = _placement.page_nodes(self.address, self.size, self.page_size)
        if reason:
            self._account.unknown = reason
            self.verified = None
            return None
        touched = found >= 0
        if not touched.any():
            self.verified = None
        elif self.blocks:  # each block on its own node
            offsets = start + np.arange(found.size) * self.page_size
            expected = np.full(found.size, -1)
            for node, first, end in self.blocks:
                expected[(offsets >= self.address + first) & (offsets < self.address + end)] = node
            self.verified = bool((found[touched] == expected[touched]).all())
        else:  # untouched pages are not misplaced: they get placed by the policy when touched
            self.verified = bool(not self.nodes or np.isin(found[touched], self.nodes).all())
        return self.verified

    def _current_check(self) -> str:
        """Whether placement is as asked, checked now (a closed view reports its last answer)."""
        if not self.closed:
            self.verify()
            stamp = ""
        else:
            stamp = " (as of the last check: the view is closed)"
        if self.verified is None and self._account.unknown:
            return self._account.unknown + stamp
        return {True: "placement verified", False: "placement NOT as requested",
                None: "placement not verified (pages untouched)"}[self.verified] + stamp

    def summary(self) -> str:
        """One line: the node, the page size, and whether placement is as asked, checked now."""
        where = (f"node {self.node}" if self.node is not None else
                 f"nodes {list(self.nodes)}" if self.nodes else "first-touch node")
        kind = {"hugetlb": f"{page_size_name(self.page_size)} hugetlb pages",
                "thp": f"{page_size_name(self.page_size)} pages with THP requested",
                "base": f"{page_size_name(self.page_size)} pages",
                "mixed": "mixed page sizes"}[self.page_kind]
        text = f"{format_bytes(self.size)} on {where} ({self.policy}), {kind}, {self._current_check()}"
        if self.request.selector:  # a selector chose the node: say which, and why
            text += f"; node chosen by {self.request.selector!r}: {self.request.reason}"
        return text + (f"; fallback: {self.fallback}" if self.fallback else "")

    # -- lifetime ------------------------------------------------------------------------------
    def close(self) -> None:
        """Let go of the mapping. Arrays and memoryviews made from this view keep it mapped
        until they die."""
        with self._lock:
            self._closed = True
            if not self._nm_exports:  # a memoryview still points into the mapping: keep it
                self._set_closed_buffer()
                self._mappings = ()

    def _set_closed_buffer(self) -> None:
        self._nm_set_buffer(0, 0, True, False)

    def __enter__(self) -> "View":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- buffer --------------------------------------------------------------------------------
    def _export(self) -> "_ExportedView":
        if self.closed:
            raise ValueError("this view is closed")
        clone = _ExportedView.__new__(_ExportedView)
        clone.__dict__.update(self.__dict__)  # the same mappings and the same account
        clone._lock = threading.Lock()
        # numpy must take __array_interface__, so that arrays keep this View as .base
        clone._nm_set_buffer(self._address, self.size, self.access == "r", True)
        return clone

    def __array__(self, dtype=None, copy=None):
        if copy:
            raise ValueError("np.array(view, copy=True) would copy off the node: use "
                             "numamap.empty_like or np.array(np.asarray(view))")
        arr = np.asarray(self._export())
        return arr if dtype is None else arr.view(dtype)

    def ndarray(self, shape, dtype=np.uint8, order: str = "C", offset: int = 0) -> np.ndarray:
        """An ndarray of ``shape`` and ``dtype`` over the view, starting ``offset`` bytes in.

        Its ``.base`` is a View sharing this one's mapping, so the array keeps the memory mapped.
        """
        shape, dtype = fold_subarray(check_shape(shape), check_dtype(dtype))
        nbytes = math.prod(shape) * dtype.itemsize  # Python ints: no overflow on absurd shapes
        offset = operator.index(offset)
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
                ("placement", self._current_check()), ("fallback", self.fallback or "none")]
        body = "".join(f"<tr><th>{k}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
        return f"<b>numamap.View</b><table>{body}</table>"


class _ExportedView(View):
    """The View that arrays hold as ``.base``: it exposes the memory to numpy."""

    _layout = None  # (shape, dtype, strides, byte offset) of the array being made

    def close(self) -> None:
        """Mark the view closed. The array holding it as ``.base`` still uses the memory, so the
        mapping stays until that array dies."""
        self._closed = True

    @property
    def __array_interface__(self) -> dict:
        shape, dtype, strides, offset = self._layout or ((self.size,), np.dtype(np.uint8), None, 0)
        interface = {"shape": shape, "typestr": dtype.str, "version": 3, "strides": strides,
                     "data": (self.address + offset, self.access == "r")}
        if dtype.fields is not None:
            interface["descr"] = dtype.descr
        return interface


# ----------------------------------------------------------------------------------------------


def map_memory(size: int, *, section=None, offset: int = 0, access: str = "rw", node=None,
               policy: str = "preferred", nodes=None, page_size="auto", populate: bool = False,
               address: int | None = None, strict: bool = False, hugetlb: bool = True) -> View:
    """Map ``size`` bytes (of ``section``, or private anonymous memory) as the request says.

    The parameters are those of :meth:`Section.map` and the array constructors;
    ``hugetlb=False`` keeps ``page_size='auto'`` to THP or base pages (for blocks whose
    boundaries are not huge-page aligned). The decisions are :func:`plan.plan_mapping`'s; this
    carries them out.
    """
    request = check_request(node, policy, nodes)
    if address is not None and (isinstance(address, bool) or not isinstance(address, int)):
        raise TypeError(f"address must be an int inside a numamap.reserve() range, not {type(address).__name__}")
    plan = plan_mapping(size, request, MachineFacts.from_backend(),
                        section_page_size=None if section is None else section.page_size,
                        is_section=section is not None, offset=offset, access=access,
                        page_size=page_size, populate=populate, strict=strict, hugetlb=hugetlb,
                        address=address)
    fallback = plan.fallback
    if fallback:
        warn_fallback(fallback)
    try:
        return _carry_out(plan, section=section, offset=offset, access=access, address=address,
                          strict=strict, fallback=fallback)
    except MemoryError:
        if not (plan.hugetlb and section is None and page_size == "auto"):
            raise
    # 'auto' saw a pool that could serve, and another thread or process emptied it before the
    # mapping was made: take what 'auto' takes without a pool (THP or base pages)
    plan = plan_mapping(size, request, MachineFacts.from_backend(), section_page_size=None,
                        is_section=False, offset=offset, access=access, page_size=page_size,
                        populate=populate, strict=strict, hugetlb=False, address=address)
    return _carry_out(plan, section=section, offset=offset, access=access, address=address,
                      strict=strict, fallback=plan.fallback)


def _carry_out(plan: MappingPlan, *, section, offset: int, access: str, address: int | None,
               strict: bool, fallback: str | None) -> View:
    request, length = plan.request, plan.length
    reservation = None
    if address is not None:
        reservation = find_reservation(address, length)
        reservation.claim(address, length)
    try:
        got = backend.map_view(length, section=section, offset=offset, access=access,
                               page_size=plan.hugetlb if section is None else None, address=address,
                               node=request.node)
    except MemoryError as exc:
        if reservation is not None:
            reservation.unclaim(address)
        if plan.hugetlb:
            pool = backend.hugepage_pool(plan.hugetlb, request.node)
            raise MemoryError(f"{exc}: {pool.describe() if pool else 'no huge-page pool'}") from None
        raise
    except BaseException:
        if reservation is not None:
            reservation.unclaim(address)
        raise
    mapping = _Mapping(got, length, reservation)
    try:
        if plan.thp_advice is not None:
            backend.advise_thp(got, length, plan.thp_advice)
        if request.nodes:
            try:
                backend.set_policy(got, length, request.policy, request.nodes)
            except PermissionError as exc:
                message = (f"the kernel refused to place memory on nodes {list(request.nodes)} "
                           f"({exc.strerror or exc}); got the kernel's default placement instead")
                if strict:
                    raise FallbackError(exc.errno, message) from None
                fallback = "; ".join(filter(None, (fallback, message)))
                warn_fallback(message, once=NUMA_REFUSED)
        if plan.populate:
            _populate(got, length, plan.page_size, request)
    except BaseException:
        del mapping
        raise
    view = View((mapping,), address=got, size=plan.size, request=request, page_size=plan.page_size,
                page_kind=plan.page_kind, populated=plan.populate, access=access,
                section=section, offset=offset, fallback=fallback, reservation=reservation)
    if view.populated:
        view.verify()
        if strict and view.verified is False and request.policy == "bind":
            raise FallbackError(f"pages are not all on nodes {list(request.nodes)}: {view.where()!r}")
    return view


#: Populating goes this many bytes at a time, so long work can show progress.
POPULATE_STEP = 256 << 20


def _populate(address: int, length: int, page_size: int, request: Request) -> None:
    step = max(POPULATE_STEP - POPULATE_STEP % page_size, page_size)
    where = f" on nodes {list(request.nodes)}" if request.nodes else ""
    with Progress(length, f"populating {format_bytes(length)}{where}") as progress:
        for offset, size in in_steps(length, step):
            backend.populate(address + offset, size, page_size)
            progress.advance(size)


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
