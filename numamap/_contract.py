"""The backend contract, as code: what ``_linux`` and ``_windows`` each provide, and nothing else.

The layers above the backend (mapping, arrays, topology, workers, policy, integrations) reach
the operating system only through these names. Each backend is a module whose public names and
signatures match :class:`Backend` exactly; ``tests/test_contract.py`` checks both modules
against it, on any host. A backend that cannot do something on its system still defines the
name and raises NotImplementedError saying what is missing.

Errors cross one boundary per backend: every failing system call goes through
``_errors.raise_os_error(call, code, table, ...)`` with the backend's own table.
"""
from __future__ import annotations

from typing import Any, Callable, Protocol, Sequence, runtime_checkable

import numpy as np

from ._records import ArenaStats, BlockInfo, HandlerConfig, HandlerStats, PoolFacts, TopologyFacts


@runtime_checkable
class Backend(Protocol):
    """One operating system's half of numamap. Module-level functions, listed as methods."""

    PLATFORM: str
    #: The base class of View: ``_nm_set_buffer(address, length, readonly, refuse)`` says what
    #: memory an instance exports through the buffer protocol, ``_nm_exports`` how many buffers
    #: are out. A C type on Linux (every Python); on Windows a Python class (Python 3.12+).
    MappedBuffer: type
    #: The base class of arena blocks: exports one block through the buffer protocol, has
    #: ``address`` and ``nbytes``, and gives the block back to its arena when deallocated.
    ArenaBuffer: type

    # -- facts about the machine -----------------------------------------------------------------
    def base_page_size(self) -> int:
        """Bytes per base page."""

    def allocation_granularity(self) -> int:
        """View offsets and reservation addresses must be multiples of this."""

    def huge_page_sizes(self, root: str = "/") -> tuple[int, ...]:
        """Huge page sizes the system knows, smallest first (their pools may be empty)."""

    def thp_mode(self, root: str = "/") -> str:
        """Transparent huge pages for private memory: 'always', 'madvise', 'never' or 'unsupported'."""

    def shmem_thp_mode(self, root: str = "/") -> str:
        """Transparent huge pages for section (shared) memory."""

    def thp_page_size(self, root: str = "/") -> int:
        """The size of one transparent huge page (the PMD size)."""

    def memory_nodes(self, root: str = "/") -> frozenset[int]:
        """Online nodes that have memory."""

    def node_memory_free(self, node: int, root: str = "/") -> int | None:
        """Free bytes on ``node``, or None when the system doesn't say."""

    def hugepage_pool(self, page_size: int, node: int | None = None, root: str = "/") -> PoolFacts | None:
        """The pool serving ``page_size`` pages on ``node`` (None: machine-wide), or None."""

    def read_topology(self, root: str = "/") -> TopologyFacts:
        """Every topology fact at once (``root`` points Linux at a synthetic sysfs tree)."""

    def capabilities(self) -> dict[str, bool]:
        """What this system lets the process do, probed by behaviour."""

    # -- sections and views ------------------------------------------------------------------------
    def create_section(self, size: int, *, page_size: int | None, access: str, path: str | None = None,
                       fd: int | None = None, name: str | None = None) -> Any:
        """The OS object behind a Section: anonymous, named, or a user's file."""

    def open_section(self, name: str, access: str) -> Any:
        """Open a named section another Section created."""

    def map_view(self, size: int, *, section: Any, offset: int, access: str, page_size: int | None,
                 address: int | None, node: int | None = None) -> int:
        """Map ``size`` bytes of ``section`` (or private memory); return the address."""

    def unmap_view(self, address: int, size: int) -> None:
        """Unmap a view made by :meth:`map_view` outside any reservation."""

    def reserve_range(self, size: int, alignment: int) -> int:
        """Reserve address space (a placeholder) aligned to ``alignment``; return its start."""

    def release_range(self, address: int, size: int) -> None:
        """Give a whole reservation back."""

    def return_to_reservation(self, address: int, size: int) -> None:
        """Turn a view inside a reservation back into reserved space."""

    # -- placement ---------------------------------------------------------------------------------
    def set_policy(self, address: int, size: int, policy: str, nodes: tuple[int, ...], *,
                   move: bool = False) -> None:
        """Bind a range: 'preferred', 'bind' or 'interleave' over ``nodes``."""

    def advise_thp(self, address: int, size: int, enable: bool) -> None:
        """Ask for (or refuse) transparent huge pages over a range."""

    def populate(self, address: int, size: int, page_size: int) -> None:
        """Fault every page of a range in for writing, now."""

    def page_nodes(self, address: int, size: int, page_size: int) -> np.ndarray:
        """Node of each page of a range (int32); -1 where no page is there yet."""

    def page_size_breakdown(self, address: int, size: int) -> dict[int, int]:
        """Bytes of a range by the page size backing them."""

    def move_range(self, address: int, size: int, node: int) -> None:
        """Move a range's pages to ``node`` and keep them there."""

    # -- threads and processes ---------------------------------------------------------------------
    def pin_thread(self, cpus: Sequence[int]) -> tuple[int, ...]:
        """Pin the calling thread to ``cpus``; return the CPUs it got."""

    def pin_process(self, cpus: Sequence[int]) -> tuple[int, ...]:
        """Pin every thread of this process to ``cpus``; return the CPUs the caller got."""

    def allowed_cpus(self) -> tuple[int, ...]:
        """CPUs the calling thread may run on, numbered globally."""

    def current_cpu(self) -> int:
        """The CPU the calling thread runs on now, numbered globally (it may move at any time)."""

    # -- the NEP 49 memory handler (C) -------------------------------------------------------------
    def handler_new(self, config: HandlerConfig) -> Any:
        """A new C memory handler in a PyCapsule named 'mem_handler' that frees it."""

    def handler_check(self, capsule: Any) -> int:
        """errno of placing one page as the handler would; 0 when it can."""

    def handler_stats(self, capsule: Any) -> HandlerStats:
        """The handler's counters."""

    def handler_block_info(self, address: int) -> BlockInfo | None:
        """How a numamap handler served the block at ``address``; None if none did."""

    # -- node arenas (C: _arena.c) -----------------------------------------------------------------
    def arena_take(self, block: Any, node: int | None, page_kind: str, nbytes: int, zero: bool) -> None:
        """Fill ``block``, a new instance of (a subclass of) ``ArenaBuffer``, with ``nbytes``
        from the arena of (node, page_kind) (as in :class:`HandlerConfig`); zeroed if ``zero``."""

    def arena_block_info(self, address: int) -> BlockInfo | None:
        """How the arena block starting at ``address`` was served; None if it is not one."""

    def arena_stats(self) -> list[ArenaStats]:
        """Counters of every arena that exists."""

    def arena_trim(self) -> int:
        """Give every cached byte back to the OS now; return how many."""

    def arena_configure(self, decay: float, cache_limit: int) -> None:
        """Seconds cached memory may idle before it goes back; bytes of large blocks cached."""

    def arena_check(self, node: int | None, page_kind: str) -> int:
        """errno/winerror of mapping and placing one chunk as an allocation would; 0 if it can."""

    # -- the benchmark's native helpers ------------------------------------------------------------
    def copy_bandwidth(self, cpus: Sequence[int], bytes_per_thread: int, repeat: int) -> list[float]:
        """GB/s of pinned memcpy threads, one figure per timed pass (see ``numamap bench``)."""

    def handler_churn(self, capsules: Sequence[Any], pairs: int, max_size: int) -> float:
        """Seconds for one native thread per handler capsule to malloc and free ``pairs`` blocks
        of up to ``max_size`` bytes through it, all starting together (``numamap bench``)."""

    def map_unmap_cost(self, nbytes: int) -> Callable[[], None]:
        """A callable that maps and unmaps ``nbytes`` once, with the OS's own calls."""


#: The names every backend module defines, in the contract's order.
NAMES: tuple[str, ...] = ("PLATFORM", "MappedBuffer", "ArenaBuffer") + tuple(
    name for name, value in vars(Backend).items() if callable(value) and not name.startswith("_"))
