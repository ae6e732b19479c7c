"""numamap: numpy arrays in memory that lives where the work runs.

One façade over per-OS backends (``_linux``, ``_windows``) that share the contract of
``_contract.py``. Layers, each importing only those below it: native bindings -> backend ->
mapping (``request``, ``plan``, ``view``, ``section``, ``reservation``) -> arrays and topology
(``arrays``, ``partitioning``, ``ringbuffer``, ``numa_topology``, ``placement``) -> workers,
policy and integrations (``workers``, ``memory_handler``, ``dask``, ``bench``, ``check``,
``cli``). docs/architecture.md draws them.
"""
from ._backend import backend as _backend
from ._errors import FallbackError, FallbackWarning
from .arenas import ArenaBlock, ArenaStats, arena_stats, configure_arenas, trim
from .arrays import (Migration, asarray, empty, empty_like, full, full_like, migrate, ones,
                     ones_like, view_of, where, zeros, zeros_like)
from .partitioning import blocks, partitioned
from .placement import Placement
from .memory_handler import block_info, handler_name, policy
from .reservation import Reservation, reserve
from .ringbuffer import ring_buffer
from .section import Section
from .numa_topology import HugePagePool, Node, Topology, allocation_granularity, topology
from .view import View
from .workers import NodePool

__version__ = "0.1.0"
PLATFORM = _backend.PLATFORM


def capabilities() -> dict:
    """What this system lets numamap do, probed by behaviour (NUMA policy, huge pages, ...)."""
    return dict(_backend.capabilities())


__all__ = [
    "ArenaBlock", "ArenaStats", "arena_stats", "configure_arenas", "trim",
    "FallbackError", "FallbackWarning", "HugePagePool", "Migration", "Node", "NodePool", "PLATFORM",
    "Placement", "Reservation", "Section", "Topology", "View", "allocation_granularity",
    "asarray", "blocks", "capabilities", "empty", "empty_like", "full", "full_like", "handler_name", "migrate",
    "ones", "ones_like", "partitioned", "policy", "block_info", "reserve", "ring_buffer", "topology", "view_of", "where", "zeros", "zeros_like",
]
