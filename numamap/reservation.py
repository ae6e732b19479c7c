"""Reserved address ranges: the Linux analogue of VirtualAlloc2 placeholders.

A reservation is PROT_NONE address space. ``Section.map(address=...)`` replaces part of it with a
view, and unmapping the view gives that part back, so nothing else in the process can land there.
"""
from __future__ import annotations

import threading
import weakref

from ._backend import backend
from ._units import check_byte_count, format_bytes

_registry_lock = threading.Lock()
_live_reservations: "weakref.WeakSet[Reservation]" = weakref.WeakSet()


class Reservation:
    """A reserved, aligned range of address space that views can be mapped into.

    Create one with :func:`reserve`. It stays reserved while this object or any view inside it
    is alive.
    """

    def __init__(self, size: int, alignment: int):
        self.size = size
        self.alignment = alignment
        self.address = backend.reserve_range(size, alignment)
        self._views: dict[int, int] = {}  # start -> end of live views
        self._lock = threading.Lock()
        self._finalizer = weakref.finalize(self, backend.release_range, self.address, size)
        self._finalizer.atexit = False
        with _registry_lock:
            _live_reservations.add(self)

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    def contains(self, address: int, size: int) -> bool:
        return not self.closed and self.address <= address and address + size <= self.address + self.size

    def claim(self, address: int, size: int) -> None:
        """Record a view about to be mapped at ``address``; refuse overlaps with live views."""
        with self._lock:
            for start, end in self._views.items():
                if address < end and start < address + size:
                    raise ValueError(f"address={address:#x} overlaps a live view at {start:#x}-{end:#x} "
                                     "in this reservation: close that view first")
            self._views[address] = address + size

    def unclaim(self, address: int) -> None:
        with self._lock:
            self._views.pop(address, None)

    @property
    def live_views(self) -> int:
        return len(self._views)

    def close(self) -> None:
        """Give the range back to the system; refused while views are mapped in it."""
        if self._views:
            raise BufferError(f"{len(self._views)} view(s) are still mapped in this reservation: "
                              "close them (and drop arrays over them) first")
        self._finalizer()

    def __enter__(self) -> "Reservation":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{len(self._views)} live view(s)"
        return (f"<numamap.Reservation {format_bytes(self.size)} at {self.address:#x}, "
                f"alignment {format_bytes(self.alignment)}, {state}>")


def reserve(size: int, alignment: int | None = None) -> Reservation:
    """Reserve address space for views mapped later with ``Section.map(address=...)``.

    Parameters
    ----------
    size : int
        Bytes to reserve; rounded up to the allocation granularity.
    alignment : int, optional
        A power of two, at least the allocation granularity (the default). The analogue of
        ``MEM_ADDRESS_REQUIREMENTS.Alignment``.

    Returns
    -------
    Reservation

    Examples
    --------
    >>> import numamap
    >>> r = numamap.reserve(1 << 21, alignment=1 << 21)
    >>> r.address % (1 << 21)
    0
    >>> r.close()
    """
    granularity = backend.allocation_granularity()
    if isinstance(size, bool) or not isinstance(size, int):
        raise TypeError(f"size must be an int, not {type(size).__name__}")
    if size <= 0:
        raise ValueError(f"size must be > 0, got {size}")
    check_byte_count(size, "size")
    if alignment is None:
        alignment = granularity
    if isinstance(alignment, bool) or not isinstance(alignment, int):
        raise TypeError(f"alignment must be an int, not {type(alignment).__name__}")
    if alignment < granularity or alignment & (alignment - 1):
        raise ValueError(f"alignment={alignment} must be a power of two >= the allocation "
                         f"granularity ({granularity})")
    check_byte_count(alignment, "alignment")
    size = -(-size // granularity) * granularity
    return Reservation(size, alignment)


def find_reservation(address: int, size: int) -> Reservation:
    """The live reservation that holds ``[address, address + size)``, or ValueError."""
    with _registry_lock:
        for reservation in list(_live_reservations):
            if reservation.contains(address, size):
                return reservation
    raise ValueError(f"address={address:#x} (+{size} bytes) is not inside a live numamap "
                     "reservation: create one with numamap.reserve(size) and map into it")
