"""Where a range's pages are: QueryWorkingSetEx, and faulting pages in.

``K32QueryWorkingSetEx`` answers, for each address, whether its page is valid in this process's
working set (bit 0), on which node (bits 16-21: nodes 0-63 only) and whether it is part of a
large page (bit 23). A page that was never touched, or was trimmed from the working set (paged
out, or merely removed by the memory manager), is not valid: its node is reported as -1,
because Windows does not say where the page would come back.
"""
from __future__ import annotations

import numpy as np

from . import _windows_exports as _exports
from ._windows_errors import check
from ._windows_exports import api, ffi
from ._windows_topology import system_info

VALID_BIT = 0
NODE_SHIFT, NODE_MASK = 16, 0x3F
LARGE_PAGE_BIT = 23
_QUERY_CHUNK = 1 << 16  # entries per QueryWorkingSetEx call, to bound the temporary arrays


class Bytes:
    """A numpy-visible byte range at ``address`` (no copy)."""

    def __init__(self, address: int, size: int, readonly: bool = False):
        self.__array_interface__ = {"shape": (size,), "typestr": "|u1", "version": 3,
                                    "data": (address, readonly)}


def populate(address: int, size: int, page_size: int) -> None:
    """Fault every page in now, for writing (read and write back one byte per base page)."""
    step = min(page_size, system_info()[0])
    pages = np.asarray(Bytes(address, size))[::step]
    np.bitwise_or(pages, 0, out=pages)


def attributes(address: int, count: int, stride: int) -> np.ndarray:
    """QueryWorkingSetEx attributes of ``count`` addresses ``stride`` bytes apart (uint64)."""
    out = np.empty(count, dtype=np.uint64)
    for first in range(0, count, _QUERY_CHUNK):
        n = min(_QUERY_CHUNK, count - first)
        entries = np.zeros((n, 2), dtype=np.uint64)  # PSAPI_WORKING_SET_EX_INFORMATION[n]
        start = address + first * stride
        entries[:, 0] = np.arange(start, start + n * stride, stride, dtype=np.uint64)
        check(api["K32QueryWorkingSetEx"](_exports.process(), ffi.from_buffer(entries), entries.nbytes),
              "K32QueryWorkingSetEx", f"{n} pages at {start:#x}")
        out[first:first + n] = entries[:, 1]
    return out


def page_nodes(address: int, size: int, page_size: int) -> np.ndarray:
    """Node of each ``page_size`` page; -1 where the page is not valid in the working set."""
    count = -(-size // page_size)
    found = attributes(address, count, page_size)
    valid = (found >> np.uint64(VALID_BIT) & np.uint64(1)).astype(bool)
    nodes = (found >> np.uint64(NODE_SHIFT) & np.uint64(NODE_MASK)).astype(np.int32)
    return np.where(valid, nodes, np.int32(-1)).astype(np.int32)


def large_page_bytes(address: int, size: int) -> tuple[int, int]:
    """(bytes in valid large pages, bytes in all other base pages) over the range, counted per
    base page; untouched pages count as base pages."""
    base = system_info()[0]
    count = -(-(address % base + size) // base)  # every page the range touches
    found = attributes(address - address % base, count, base)
    large = int(np.count_nonzero(found & (found >> np.uint64(LARGE_PAGE_BIT)) & np.uint64(1)))
    return large * base, (count - large) * base
