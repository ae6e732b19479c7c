"""Picks the operating system's backend. Both backends define the same names:

Facts: ``PLATFORM``, ``base_page_size()``, ``allocation_granularity()``, ``huge_page_sizes()``,
``thp_mode()``, ``memory_nodes()``, ``node_memory_free(node)``, ``hugepage_pool(size, node)``,
``read_topology(root)``, ``capabilities()``.

Objects: ``create_section(...)``/``open_section(name, access)`` return a section handle;
``map_view(...)`` maps (part of) one, or anonymous memory, with a placement request and returns
the address; ``unmap_view``; ``reserve_range``/``release_range``/``return_to_reservation``.

Placement: ``populate``, ``page_nodes``, ``page_size_breakdown``, ``move_range``.

Nothing above the backend touches the OS directly.
"""
import sys

if sys.platform.startswith("linux"):
    from . import _linux as backend
elif sys.platform == "win32":
    from . import _windows as backend
else:  # pragma: no cover - other systems have no backend yet
    raise ImportError(f"numamap has no backend for {sys.platform}: Linux and Windows are supported")

__all__ = ["backend"]
