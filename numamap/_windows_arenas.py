"""Node arenas and the NEP 49 memory handler on Windows: ``_numamap_arena.dll`` in ABI mode.

The DLL is the C allocator core that Linux compiles into its cffi module (``_arena.c``,
``_arena_runs.c``, ``_arena_handler.c``) over the Win32 hooks of ``_windows_arena_os.c``
(VirtualAlloc2 with a NumaNode parameter), cross-compiled with mingw-w64 by
``_build_windows_dll.py``. Its declarations are the cdef regions of ``_arena.h`` and
``_arena_handler.h``: ``_windows_arena_native.py`` when ``_build_windows.py`` generated it, else
parsed from the headers on first use.

Nothing loads before the first call. Where the DLL is missing every entry point raises
NotImplementedError naming it and how to build it: there is no silent fallback.

Error codes from the DLL are Windows error codes, except the core's own refusals, which are
errno values on every system (EINVAL, ENOMEM); :func:`_winerror` turns those two into their
Windows equivalents before the error table (``_windows_errors``) raises.
"""
from __future__ import annotations

import ctypes
import errno
import math
import operator
import os
import sys
import threading
from typing import Any

from . import _windows_large_pages as _large_pages
from . import _windows_topology as _topology
from ._records import ArenaStats, BlockInfo, HandlerConfig, HandlerStats
from ._windows_errors import (ERROR_INVALID_PARAMETER, ERROR_NOT_ENOUGH_MEMORY, ERRORS,
                              LARGE_PAGE_ALLOC)

DLL_NAME = "_numamap_arena.dll"
DLL_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), DLL_NAME)
BUILD_HINT = (f"build it on Linux with `python numamap/_build_windows_dll.py` (needs Debian's "
              f"gcc-mingw-w64-x86-64: apt-get install gcc-mingw-w64-x86-64), which writes "
              f"numamap/{DLL_NAME}, then install numamap with it")

#: The page kinds of :class:`HandlerConfig` and of ``arena_block``, by their C names.
PAGE_KINDS = {"auto": "NM_ARENA_AUTO", "base": "NM_ARENA_BASE", "thp": "NM_ARENA_THP",
              "2M": "NM_ARENA_HUGE_2M", "1G": "NM_ARENA_HUGE_1G"}
#: The C core's own defaults (_arena.c): cached memory idle 1 s goes back; 1 GiB of whole large
#: mappings cached per arena.
DEFAULT_DECAY_MS = 1000
DEFAULT_CACHE_LIMIT = 1 << 30
_BLOCK_KINDS = {"NM_BLOCK_MALLOC": "malloc", "NM_BLOCK_SMALL": "small", "NM_BLOCK_LARGE": "large"}


class _Dll:
    """The loaded DLL: its ffi and lib, the arena configuration it was given, ctypes' capsule
    calls. One per process, made by :func:`dll`."""

    def __init__(self, ffi, lib):
        self.ffi, self.lib = ffi, lib
        self.kinds = {name: int(getattr(lib, c_name)) for name, c_name in PAGE_KINDS.items()}
        self.page_kind_names = {self.kinds["base"]: "base", self.kinds["thp"]: "thp",
                                self.kinds["2M"]: "hugetlb", self.kinds["1G"]: "hugetlb"}
        self.block_kinds = {int(getattr(lib, c_name)): name for c_name, name in _BLOCK_KINDS.items()}
        self.huge = frozenset((self.kinds["2M"], self.kinds["1G"]))
        self.config_lock = threading.Lock()
        self.config = ffi.new("nm_arena_config *")
        new = ctypes.pythonapi["PyCapsule_New"]  # fresh objects: ctypes.pythonapi's own stay untouched
        new.restype, new.argtypes = ctypes.py_object, (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)
        pointer = ctypes.pythonapi["PyCapsule_GetPointer"]
        pointer.restype, pointer.argtypes = ctypes.c_void_p, (ctypes.py_object, ctypes.c_char_p)
        self.capsule_new, self.capsule_pointer = new, pointer

    def pointer(self, address: int):
        return self.ffi.cast("void *", address)

    def address(self, pointer) -> int:
        return int(self.ffi.cast("uintptr_t", pointer))


_load_lock = threading.Lock()
_loaded: _Dll | None = None


def _ffi():
    try:
        from ._windows_arena_native import ffi
    except ImportError:  # not generated: parse the headers' declarations now (needs pycparser)
        import cffi

        from ._build_windows import arena_cdef

        ffi = cffi.FFI()
        ffi.cdef(arena_cdef())
    return ffi


def _open() -> _Dll:
    if sys.platform != "win32":
        raise NotImplementedError(f"{DLL_NAME} is numamap's node arenas for Windows; on {sys.platform} "
                                  "they come with the Linux backend's compiled module")
    if not os.path.isfile(DLL_PATH):
        raise NotImplementedError(f"numamap's node arenas and numamap.policy on Windows need {DLL_NAME}, "
                                  f"which is missing from {os.path.dirname(DLL_PATH)}: {BUILD_HINT}")
    ffi = _ffi()
    try:
        lib = ffi.dlopen(DLL_PATH)
    except OSError as exc:
        raise OSError(f"could not load {DLL_PATH} ({exc}): rebuild it: {BUILD_HINT}") from exc
    try:
        loaded = _Dll(ffi, lib)
        getter = ctypes.cast(ctypes.pythonapi.PyCapsule_GetPointer, ctypes.c_void_p).value
        ERRORS.check("nm_handler_set_capsule_api", _winerror(lib.nm_handler_set_capsule_api(getter)))
    except (AttributeError, ffi.error) as exc:  # a DLL older than the headers lacks an export
        raise OSError(f"{DLL_PATH} does not match numamap's headers ({exc}): rebuild it: {BUILD_HINT}") from exc
    config = loaded.config
    config.base_page = _topology.system_info()[0]
    config.decay_ms = DEFAULT_DECAY_MS
    config.cache_limit = DEFAULT_CACHE_LIMIT
    config.huge_2m = int(_large_pages_work())
    config.huge_1g = 0  # 1 GiB pages are Windows' nonpaged huge pages: asked for by name only
    config.thp = 0      # Windows has no transparent huge pages
    ERRORS.check("nm_arena_configure", _winerror(lib.nm_arena_configure(config)), "the defaults")
    return loaded


def dll() -> _Dll:
    """The DLL, loaded and configured on first use; NotImplementedError/OSError saying how to
    build it where it is missing or stale."""
    global _loaded
    if _loaded is None:
        with _load_lock:
            if _loaded is None:
                _loaded = _open()
    return _loaded


def _large_pages_work() -> bool:
    """Whether 'auto' should try large pages: the backend's probe (which enables the right)."""
    try:
        return _large_pages.status()[0]
    except (OSError, NotImplementedError):
        return False


_privilege_tried = threading.Event()


def _allow_large_pages() -> None:
    """Enable SeLockMemoryPrivilege, once, where the account has it (it stays enabled in the
    token): without it VirtualAlloc2 answers ERROR_PRIVILEGE_NOT_HELD, which the error table
    explains."""
    if _privilege_tried.is_set():
        return
    try:
        _large_pages.enable_lock_memory_privilege()
    except (OSError, NotImplementedError):
        pass
    _privilege_tried.set()


def _winerror(code: int) -> int:
    """A code from the DLL as a Windows error: the core's errno refusals mapped (see above)."""
    return {errno.EINVAL: ERROR_INVALID_PARAMETER, errno.ENOMEM: ERROR_NOT_ENOUGH_MEMORY}.get(code, code)


def _kind(d: _Dll, page_kind: str, *, name: str = "page_kind") -> int:
    if page_kind not in PAGE_KINDS:
        raise ValueError(f"{name}={page_kind!r} is not one of {', '.join(map(repr, PAGE_KINDS))}")
    kind = d.kinds[page_kind]
    if kind in d.huge:
        _allow_large_pages()
    return kind


def _node(node: int | None, *, allow_minus_one: bool = False) -> int:
    if node is None:
        return -1
    if isinstance(node, bool) or not isinstance(node, int):
        raise TypeError(f"node must be an int or None, not {type(node).__name__}")
    if allow_minus_one and node == -1:
        return -1
    if not 0 <= node <= 63:
        raise ValueError(f"node={node} is out of range: the arenas serve nodes 0-63 (None: no binding)")
    return node


def _node_out(node: int) -> int | None:
    return None if node < 0 else int(node)


# ------------------------------------------------------------------------------------------------
# Arena blocks


class ArenaBuffer:
    """One node-arena block exported through the buffer protocol: the base class of arena
    blocks on Windows (a C type on Linux). ``arena_take`` fills a new instance; the block goes
    back to its arena exactly once, when the last reference to the instance, and to every buffer
    exported from it, is gone.

    The buffer protocol is ``__buffer__`` (Python 3.12+), which numpy takes first. Python hands
    the buffer to consumers through a wrapper of its own, so ``np.asarray(block).base.obj`` is
    that wrapper, not the block (on Linux it is the block). ``__array_interface__`` (a uint8
    vector) serves older Pythons, and arrays made through it have the block as ``.base``.
    """

    __slots__ = ("_nm_cdata", "_nm_nbytes", "_nm_exported")

    def __new__(cls, *args: Any, **kwargs: Any) -> ArenaBuffer:
        self = super().__new__(cls)
        self._nm_cdata, self._nm_nbytes, self._nm_exported = None, 0, 0
        return self

    @property
    def address(self) -> int:
        """Address of the block's first byte (0: none taken)."""
        return 0 if self._nm_cdata is None else dll().address(self._nm_cdata)

    @property
    def nbytes(self) -> int:
        """Bytes the block exports."""
        return self._nm_nbytes

    @property
    def _nm_exports(self) -> int:
        """Buffers exported and not yet released."""
        return self._nm_exported

    def _nm_fill(self, cdata, nbytes: int) -> None:
        self._nm_cdata, self._nm_nbytes = cdata, nbytes

    @property
    def __array_interface__(self) -> dict:
        if self._nm_cdata is None:
            raise AttributeError("this numamap arena block holds no memory (not taken)")
        return {"version": 3, "shape": (self._nm_nbytes,), "typestr": "|u1", "data": (self.address, False)}

    def __buffer__(self, flags: int) -> memoryview:
        if self._nm_cdata is None:
            raise BufferError("this numamap arena block holds no memory (not taken)")
        # The buffer holds the cdata, whose destructor gives the block back: it outlives us if need be.
        view = memoryview(dll().ffi.buffer(self._nm_cdata, self._nm_nbytes))
        self._nm_exported += 1
        return view

    def __release_buffer__(self, view: memoryview) -> None:
        self._nm_exported -= 1  # Python releases ``view`` itself


def arena_take(block: Any, node: int | None, page_kind: str, nbytes: int, zero: bool) -> None:
    """Fill ``block``, a new ArenaBuffer, with ``nbytes`` from the arena of (node, page_kind)."""
    if not isinstance(block, ArenaBuffer):
        raise TypeError(f"block must be a numamap ArenaBuffer, not {type(block).__name__}")
    d = dll()
    if block._nm_cdata is not None:
        raise ValueError("this arena block already holds memory")
    node_c = _node(node)
    kind = _kind(d, page_kind)
    nbytes = operator.index(nbytes)
    if nbytes < 0:
        raise ValueError(f"nbytes={nbytes} must be >= 0")
    error = d.ffi.new("int *")
    pointer = d.lib.nm_arena_alloc(node_c, kind, max(nbytes, 1), int(bool(zero)), error)
    if pointer == d.ffi.NULL:
        call = LARGE_PAGE_ALLOC if kind in d.huge else "nm_arena_alloc"
        raise ERRORS.exception(call, _winerror(error[0]), f"{nbytes} bytes from the arena of node {node}, "
                               f"page_kind={page_kind!r}")
    block._nm_fill(d.ffi.gc(pointer, d.lib.nm_arena_free, size=nbytes), nbytes)


def arena_block_info(address: int) -> BlockInfo | None:
    """How the arena block starting at ``address`` was served; None if it is not one."""
    d = dll()
    out = d.ffi.new("nm_arena_block *")
    if d.lib.nm_arena_block_info(d.pointer(address), out) != 0:
        return None
    return BlockInfo("large" if out.large else "small", int(out.size), int(out.block_size),
                     int(out.page_size), _node_out(out.node), d.page_kind_names[out.kind])


def arena_stats() -> list[ArenaStats]:
    """Counters of every arena that exists (error codes are Windows error codes)."""
    d = dll()
    capacity = 16
    while True:
        out = d.ffi.new("nm_arena_stats[]", capacity)
        count = int(d.lib.nm_arena_get_stats(out, capacity))
        if count <= capacity:
            break
        capacity = count  # arenas were made meanwhile: ask again with room for all
    return [ArenaStats(_node_out(s.node), d.page_kind_names[s.kind], int(s.page_size), int(s.mapped),
                       int(s.in_use), int(s.cached), int(s.hits), int(s.misses), int(s.returned),
                       int(s.failures), _winerror(s.last_error)) for s in out[0:count]]


def arena_trim() -> int:
    """Give every cached byte back to Windows now (release, or decommit); return how many."""
    return int(dll().lib.nm_arena_trim())


def arena_configure(decay: float, cache_limit: int) -> None:
    """Seconds cached memory may idle before it goes back; bytes of large blocks cached per arena."""
    d = dll()
    if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not math.isfinite(decay) or decay < 0:
        raise ValueError(f"decay={decay!r} must be a finite number of seconds >= 0")
    cache_limit = operator.index(cache_limit)
    if cache_limit < 0:
        raise ValueError(f"cache_limit={cache_limit} must be >= 0 bytes")
    with d.config_lock:
        d.config.decay_ms = round(decay * 1000)
        d.config.cache_limit = cache_limit
        ERRORS.check("nm_arena_configure", _winerror(d.lib.nm_arena_configure(d.config)),
                     f"decay={decay}, cache_limit={cache_limit}")


def arena_check(node: int | None, page_kind: str) -> int:
    """Windows error of mapping one chunk of (node, page_kind) as an allocation would; 0 if it can."""
    d = dll()
    node_c = _node(node)
    return _winerror(int(d.lib.nm_arena_check(node_c, _kind(d, page_kind))))


# ------------------------------------------------------------------------------------------------
# The NEP 49 handler


def handler_new(config: HandlerConfig) -> Any:
    """A C handler for ``config`` in a PyCapsule named 'mem_handler' whose destructor frees it."""
    d = dll()
    kind = _kind(d, config.page_kind, name="page_kind")
    node = _node(config.node, allow_minus_one=True)
    min_size = operator.index(config.min_size)
    if min_size < 0:
        raise ValueError(f"min_size={min_size} must be >= 0")
    native = d.ffi.new("nm_handler_config *")
    name = d.ffi.new("char[]", config.name.encode())
    native.name, native.node, native.kind, native.min_size = name, node, kind, min_size
    out = d.ffi.new("void **")
    ERRORS.check("nm_handler_new", _winerror(d.lib.nm_handler_new(native, out)), "creating the memory handler")
    try:
        return d.capsule_new(d.address(out[0]), d.address(d.lib.nm_handler_capsule_name()),
                             int(d.lib.nm_handler_capsule_destructor()))
    except BaseException:
        d.lib.nm_handler_delete(out[0])
        raise


def _handler_of(d: _Dll, capsule):
    return d.pointer(d.capsule_pointer(capsule, b"mem_handler"))


def handler_check(capsule: Any) -> int:
    """Windows error of mapping one chunk as the handler would (0: it can, or it falls back)."""
    d = dll()
    return _winerror(int(d.lib.nm_handler_check(_handler_of(d, capsule))))


def handler_stats(capsule: Any) -> HandlerStats:
    """The handler's counters."""
    d = dll()
    out = d.ffi.new("nm_handler_stats *")
    d.lib.nm_handler_get_stats(_handler_of(d, capsule), out)
    stats = HandlerStats(*(int(getattr(out, name)) for name in HandlerStats._fields))
    return stats._replace(last_error=_winerror(stats.last_error))


def handler_block_info(address: int) -> BlockInfo | None:
    """The block a numamap handler gave at ``address`` (malloc'd when no arena knows it)."""
    d = dll()
    out = d.ffi.new("nm_block_info *")
    if d.lib.nm_handler_block_info(d.pointer(address), 1, out) != 0:
        return None
    kind = d.block_kinds[out.kind]
    page_size = int(out.page_size) or _topology.system_info()[0]  # malloc's: base pages
    return BlockInfo(kind, int(out.size), int(out.length), page_size, _node_out(out.node),
                     d.page_kind_names[out.page_kind])
