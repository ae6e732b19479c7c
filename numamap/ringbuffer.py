"""Wrap-around ring buffers: one section mapped twice, back to back, inside one reservation."""
from __future__ import annotations

import numpy as np

from ._backend import backend
from ._units import MAX_BYTES, round_up
from ._shapes import check_dtype, fold_subarray
from .reservation import reserve
from .section import Section
from .view import combine


def ring_buffer(nbytes: int, dtype=np.uint8, *, node=None, policy: str = "preferred",
                populate: bool = False, strict: bool = False) -> np.ndarray:
    """An array of twice the ring's length whose second half is the first half again.

    Writing ``arr[n + i]`` writes ``arr[i]`` (``n = len(arr) // 2``), so a record that runs past
    the end of the ring lands at its start with no copying and no wrap-around arithmetic.

    Parameters
    ----------
    nbytes : int
        The ring's size; rounded up to :func:`numamap.allocation_granularity`.
    dtype : data-type
        Element type; its size must divide the ring's size. 'S0' and 'U0' mean one character,
        as in numpy; a sub-array dtype adds its dimensions after the first.
    node, policy, populate, strict
        As for :meth:`Section.map`.

    Returns
    -------
    numpy.ndarray
        One-dimensional, ``2 * ring_bytes / itemsize`` elements, ``.base`` a View over both halves.

    Examples
    --------
    >>> import numamap
    >>> ring = numamap.ring_buffer(4096)
    >>> n = len(ring) // 2
    >>> ring[n + 5] = 42
    >>> int(ring[5])
    42
    """
    if isinstance(nbytes, bool) or not isinstance(nbytes, int):
        raise TypeError(f"nbytes must be an int, not {type(nbytes).__name__}")
    if nbytes <= 0:
        raise ValueError(f"nbytes must be > 0, got {nbytes}")
    if nbytes > MAX_BYTES // 2:
        raise ValueError(f"nbytes={nbytes}: the ring is mapped twice, and twice that is more than "
                         "any address space can map (numamap takes at most 2**62 bytes)")
    dtype = check_dtype(dtype)
    if dtype.itemsize == 0:
        raise ValueError(f"dtype={dtype} has no bytes: a ring buffer needs elements of at least one byte")
    size = round_up(nbytes, backend.allocation_granularity())
    if size % dtype.itemsize:
        raise ValueError(f"the ring's {size} bytes are not a multiple of dtype {dtype}'s {dtype.itemsize} bytes")
    section = Section(size)
    reservation = reserve(2 * size)
    try:
        halves = [section.map(node=node, policy=policy, populate=populate, strict=strict,
                              address=reservation.address + i * size) for i in (0, 1)]
    finally:
        section.close()
    whole = combine(halves, address=reservation.address, size=2 * size, reservation=reservation)
    shape, dtype = fold_subarray((2 * size // dtype.itemsize,), dtype)  # sub-array dtypes add dimensions
    return whole.ndarray(shape, dtype)
