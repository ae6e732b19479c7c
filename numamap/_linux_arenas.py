"""Linux backend: the node arenas (C: ``_arena.c``, ``_arena_runs.c``, ``_linux_arena_os.c``).

``_linux`` re-exports these as the contract's ``arena_*`` names. The arenas are configured from
the machine's facts on first use; :func:`arena_configure` changes the decay time and cache limit.
"""
from __future__ import annotations

import ctypes
import threading
from time import monotonic as _monotonic

from ._linux_cffi import ffi, lib
from ._linux_errors import ERRORS
from ._records import ArenaStats, BlockInfo

#: page_kind names of the contract -> the C kinds
KINDS = {"auto": lib.NM_ARENA_AUTO, "base": lib.NM_ARENA_BASE, "thp": lib.NM_ARENA_THP,
         "2M": lib.NM_ARENA_HUGE_2M, "1G": lib.NM_ARENA_HUGE_1G}
#: the C kinds -> (page_kind of the records)
KIND_NAMES = {lib.NM_ARENA_BASE: "base", lib.NM_ARENA_THP: "thp", lib.NM_ARENA_HUGE_2M: "hugetlb",
              lib.NM_ARENA_HUGE_1G: "hugetlb"}
DEFAULT_DECAY = 1.0
DEFAULT_CACHE_LIMIT = 1 << 30

_lock = threading.Lock()
_settings = {"decay": DEFAULT_DECAY, "cache_limit": DEFAULT_CACHE_LIMIT}
_configured = False


def _configure_now() -> None:
    from . import _linux  # the facts: a function-level import, _linux imports this module

    config = ffi.new("nm_arena_config *")
    config.base_page = _linux.base_page_size()
    config.decay_ms = int(round(_settings["decay"] * 1000))
    config.cache_limit = _settings["cache_limit"]
    pools = {size: _linux.hugepage_pool(size, None) for size in _linux.huge_page_sizes()}
    config.huge_2m = int(bool(pools.get(2 << 20) and pools[2 << 20].configured))
    config.huge_1g = int(bool(pools.get(1 << 30) and pools[1 << 30].configured))
    config.thp = int(_linux.thp_mode() in ("always", "madvise"))
    ERRORS.check("nm_arena_configure", lib.nm_arena_configure(config), "configuring the node arenas")


def ensure_configured(refresh: bool = False) -> None:
    """Configure the arenas once (and again when ``refresh``: the hugetlb pools may have grown)."""
    global _configured
    if _configured and not refresh:
        return
    with _lock:
        if not _configured or refresh:
            _configure_now()
            _configured = True


def arena_configure(decay: float, cache_limit: int) -> None:
    with _lock:
        _settings.update(decay=decay, cache_limit=cache_limit)
        _configure_now()
        global _configured
        _configured = True


def _arena_buffer_type() -> type:
    address = lib.nm_arena_buffer_type()
    if not address:
        raise RuntimeError("numamap could not create its ArenaBuffer type")
    made = ctypes.cast(address, ctypes.py_object).value
    ctypes.pythonapi.Py_DecRef(ctypes.py_object(made))
    return made


#: The base class of arena blocks (C, _linux_buffer.c): buffer protocol, address, nbytes.
ArenaBuffer = _arena_buffer_type()


#: Seconds between looks at the hugetlb pools from the allocation path: a pool made after the
#: first allocation is taken within this long (a new numamap.policy looks at once).
POOL_RECHECK = 1.0
_next_look = [0.0]


def arena_take(block, node: int | None, page_kind: str, nbytes: int, zero: bool) -> None:
    now = _monotonic()
    if now >= _next_look[0]:
        _next_look[0] = now + POOL_RECHECK
        ensure_configured(refresh=True)
    error = block._nm_take(-1 if node is None else node, KINDS[page_kind], nbytes, zero)
    if error:
        ERRORS.check("nm_arena_alloc", error, f"taking {nbytes} bytes from the arena of node "
                     f"{node}, {page_kind} pages")


def block_record(info) -> BlockInfo:
    kind = {lib.NM_BLOCK_MALLOC: "malloc", lib.NM_BLOCK_SMALL: "small", lib.NM_BLOCK_LARGE: "large"}
    return BlockInfo(kind[info.kind], int(info.size), int(info.length), int(info.page_size),
                     None if info.node < 0 else int(info.node), KIND_NAMES[info.page_kind])


def arena_block_info(address: int) -> BlockInfo | None:
    info = ffi.new("nm_block_info *")
    if lib.nm_handler_block_info(ffi.cast("void *", address), 0, info) != 0:
        return None
    return block_record(info)


def arena_stats() -> list[ArenaStats]:
    capacity = 16
    while True:
        out = ffi.new("nm_arena_stats[]", capacity)
        count = lib.nm_arena_get_stats(out, capacity)
        if count <= capacity:
            break
        capacity = count
    return [ArenaStats(None if s.node < 0 else int(s.node), KIND_NAMES[s.kind], int(s.page_size),
                       int(s.mapped), int(s.in_use), int(s.cached), int(s.hits), int(s.misses),
                       int(s.returned), int(s.failures), int(s.last_error))
            for s in out[0:count]]


def arena_trim() -> int:
    return int(lib.nm_arena_trim())


def arena_check(node: int | None, page_kind: str) -> int:
    ensure_configured()
    return int(lib.nm_arena_check(-1 if node is None else node, KINDS[page_kind]))
