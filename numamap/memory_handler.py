"""numpy's own allocations on a NUMA node: a NEP 49 memory handler, installed by a ``with`` block.

``numamap.policy(node)`` installs a PyDataMem_Handler written in C (``_arena_handler.c``, in the
Linux cffi module and the Windows DLL): inside the block every array numpy allocates
(``np.ones``, ufunc outputs, ``np.concatenate``, ``np.loadtxt``...) takes its data from the
node's arena (:mod:`numamap.arenas`), small arrays included: blocks carved by size class from
placed, huge-page-aligned chunks, reused while they stay faulted in, larger ones cached whole.
Blocks under ``min_size`` (0 by default) come from malloc.

How the pieces meet, without numpy's headers at build time:

- the C side makes the handler struct and its context in one heap block, and gives the address of
  a capsule destructor that frees it;
- this module wraps the block in a PyCapsule named ``"mem_handler"`` with ``ctypes.pythonapi``,
  and calls ``PyDataMem_SetHandler`` through numpy's C API table (the ``_ARRAY_API`` capsule;
  slots 304 and 305 since numpy 1.22, checked once against ``get_handler_name()``).

numpy keeps the handler in a context variable, so the block's effect is scoped as numpy scopes
handlers: to the current thread (a new thread starts with numpy's default handler on regular
builds) and to the current asyncio task. Each array holds a reference to the capsule that
allocated it, so the handler lives as long as any of its arrays.
"""
from __future__ import annotations

import contextvars
import errno
import ctypes
import functools
import importlib
import os
from dataclasses import dataclass

import numpy as np

from ._backend import backend
from ._errors import CONTAINER_HINT, NUMA_REFUSED, FallbackError, warn_fallback
from ._records import BlockInfo, HandlerConfig
from ._units import format_bytes, page_size_name, parse_page_size, parse_size

#: Blocks of at least this many bytes come from the node's arena; smaller ones from malloc. 0:
#: every block is placed. Before the arenas each block was a mapping of its own, faulted in page
#: by page, and 2 MiB was the measured break-even; arena blocks are reused faulted in, and cost
#: about what malloc costs at every size (docs/policy.md, "Choosing min_size").
DEFAULT_MIN_SIZE = 0

HANDLER_PREFIX = "numamap_"
#: handler_check codes that mean "not allowed" (a container's seccomp profile, a missing right)
_REFUSALS = {"linux": (errno.EPERM, errno.EACCES), "windows": (5, 1314)}
_SET_HANDLER, _GET_HANDLER = 304, 305  # slots of numpy's C API table, stable since numpy 1.22

# (policy, the handler its ``with`` block replaced) pairs, innermost last: a context variable,
# like numpy's own, so each thread and asyncio task restores its own.
_saved: contextvars.ContextVar[tuple] = contextvars.ContextVar("numamap_policy_saved", default=())


# --------------------------------------------------------------------------------------------
# numpy's and Python's C API, reached through ctypes


def _multiarray():
    try:
        return importlib.import_module("numpy._core.multiarray")
    except ImportError:  # numpy 1.x
        return importlib.import_module("numpy.core.multiarray")


def _python_function(name: str, restype, *argtypes):
    function = ctypes.pythonapi[name]  # a fresh object: ctypes.pythonapi's own stays untouched
    function.restype = restype
    function.argtypes = argtypes
    return function


@dataclass(frozen=True)
class _CApi:
    capsule_pointer: object
    set_handler: object
    get_handler: object


@functools.lru_cache(maxsize=None)
def _c_api() -> _CApi:
    """The C functions this module calls, with numpy's table slots checked once."""
    capsule_pointer = _python_function("PyCapsule_GetPointer", ctypes.c_void_p, ctypes.py_object,
                                       ctypes.c_char_p)
    umath = None
    for name in ("numpy._core._multiarray_umath", "numpy.core._multiarray_umath"):
        try:
            umath = importlib.import_module(name)
            break
        except ImportError:
            continue
    table_capsule = getattr(umath, "_ARRAY_API", None)
    if table_capsule is None:
        raise RuntimeError(f"numpy {np.__version__} exposes no _ARRAY_API capsule: numamap.policy "
                           "needs numpy 1.22 or newer")
    table = ctypes.cast(capsule_pointer(table_capsule, None), ctypes.POINTER(ctypes.c_void_p))
    api = _CApi(capsule_pointer,
                ctypes.PYFUNCTYPE(ctypes.py_object, ctypes.py_object)(table[_SET_HANDLER]),
                ctypes.PYFUNCTYPE(ctypes.py_object)(table[_GET_HANDLER]))
    # Slot 305 must give the capsule of the handler numpy names as current.
    current = api.get_handler()
    handler = capsule_pointer(current, b"mem_handler")
    expected = _multiarray().get_handler_name()
    if not handler or ctypes.string_at(handler) != expected.encode():
        raise RuntimeError(f"numpy {np.__version__}'s C API table does not hold PyDataMem_GetHandler "
                           f"at slot {_GET_HANDLER}: numamap.policy cannot install its handler")
    return api


# --------------------------------------------------------------------------------------------
# Which handler owns an array


def _owner(arr):
    """The ndarray that owns ``arr``'s data (walking ``.base``), or None."""
    obj = arr
    while obj is not None:
        if isinstance(obj, np.ndarray):
            if obj.flags.owndata:
                return obj
            obj = obj.base
        elif isinstance(obj, memoryview):
            obj = obj.obj
        else:
            return None
    return None


def handler_name(arr=None) -> str | None:
    """The name of the NEP 49 handler that allocated ``arr``'s data, or of the current one.

    numpy's ``get_handler_name(arr)`` answers None for arrays that do not own their data (views,
    slices, reshapes); this walks ``.base`` to the array that does. None when no ndarray owns the
    data (arrays over numamap Views, ``np.frombuffer`` over bytes...).

    Parameters
    ----------
    arr : numpy.ndarray, optional
        Without it: the handler installed in the current context.

    Examples
    --------
    >>> import numpy as np, numamap
    >>> numamap.handler_name(np.arange(10)[::2])
    'default_allocator'
    """
    get_name = _multiarray().get_handler_name
    if arr is None:
        return get_name()
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"handler_name() takes a numpy array, not {type(arr).__name__}")
    owner = _owner(arr)
    return None if owner is None else get_name(owner)


def block_info(arr) -> BlockInfo | None:
    """The block under ``arr`` if a numamap handler allocated it (walking ``.base``), else None."""
    owner = _owner(arr) if isinstance(arr, np.ndarray) else None
    if owner is None or not (handler_name(owner) or "").startswith(HANDLER_PREFIX):
        return None
    return backend.handler_block_info(owner.__array_interface__["data"][0])


# --------------------------------------------------------------------------------------------
# The policy


class Policy:
    """A NEP 49 handler that places numpy's allocations on a node: see :func:`policy`.

    Use it as a context manager (``with``), or :meth:`install` it for the rest of a thread's
    life. One Policy may be entered any number of times, nested, and from several threads.

    Attributes
    ----------
    node : int or None
        The node of mapped blocks; None leaves placement to the kernel (first touch).
    name : str
        The handler's name, as ``numpy.get_handler_name`` and :func:`handler_name` report it.
    page_size : int or None
        The hugetlb or base page size asked for; None for 'auto'.
    min_size : int
        Blocks of at least this many bytes come from the arena; smaller ones are malloc'd.
    fallback : str or None
        What could not be honoured (placement refused on a one-node machine) and what it does instead.
    """

    def __init__(self, node=None, *, page_size="auto", min_size=DEFAULT_MIN_SIZE, strict=False):
        from .request import check_request

        request = check_request(node, "preferred", None)
        self.node = request.node
        # 'local' is the node of whichever thread enters the block: see _for_this_thread
        self._local = {} if request.selector == "local" else None
        self._options = dict(page_size=page_size, min_size=min_size, strict=strict)
        self.min_size = parse_size(min_size, name="min_size")
        self.page_size = parse_page_size(page_size)
        self.fallback = None
        base = backend.base_page_size()
        huge_sizes = backend.huge_page_sizes()
        if self.page_size is not None and self.page_size != base and self.page_size not in huge_sizes:
            raise ValueError(f"page_size={page_size!r}: this machine serves {page_size_name(base)} and "
                             f"{', '.join(page_size_name(s) for s in huge_sizes) or 'no huge'} pages")
        self.name = HANDLER_PREFIX + (f"node{self.node}" if self.node is not None else "local")

        if self.page_size is None:
            page_kind = "auto"
        elif self.page_size == base:  # '4K': base pages, even where THP is 'always'
            page_kind = "base"
        else:
            page_kind = page_size_name(self.page_size)
        self.page_kind = page_kind
        config = HandlerConfig(self.name, -1 if self.node is None else self.node, self.min_size,
                               page_kind)
        capsule = backend.handler_new(config)
        if self.node is not None:
            err = backend.handler_check(capsule)
            if err:
                text = os.strerror(err) if backend.PLATFORM == "linux" else f"Windows error {err}"
                why = f"the kernel refused to place memory on node {self.node} ({text})"
                refused = err in _REFUSALS.get(backend.PLATFORM, ())
                if strict or not (refused or len(backend.memory_nodes()) == 1):
                    hint = f": {CONTAINER_HINT}" if refused else ""
                    raise FallbackError(err, f"numamap.policy cannot place memory on node {self.node}: "
                                        f"{why}{hint}")
                self.fallback = (f"{why}; numpy's blocks get the kernel's default placement"
                                 + (f" ({CONTAINER_HINT})" if refused else ""))
                warn_fallback(self.fallback, once=NUMA_REFUSED if refused else None)
                self.name += "_unplaced"
                capsule = backend.handler_new(config._replace(node=-1, name=self.name))
        self._capsule = capsule  # what numpy and every array it allocates hold

    # -- installing ----------------------------------------------------------------------------
    def _for_this_thread(self) -> "Policy":
        """This policy, or for node='local' entered on another node's CPU, that node's own."""
        if self._local is None:
            return self
        from .node_selectors import resolve

        node = resolve("local").node
        if node == self.node:
            return self
        if node not in self._local:  # a race makes two, and one is kept: harmless
            self._local[node] = Policy(node, **self._options)
        return self._local[node]

    def __enter__(self) -> "Policy":
        previous = _c_api().set_handler(self._for_this_thread()._capsule)
        _saved.set(_saved.get() + ((self, previous),))
        return self

    def __exit__(self, *exc) -> None:
        saved = _saved.get()
        if not any(entered is self for entered, _ in saved):
            raise RuntimeError("numamap.policy: leaving a block that was not entered in this "
                               "context (thread or task)")
        if saved[-1][0] is not self:
            # Restoring what this block replaced would drop the inner block's handler while
            # that block still runs: refuse, and change nothing.
            raise RuntimeError(f"numamap.policy: leaving {self.name!r} out of order: the block of "
                               f"{saved[-1][0].name!r} entered inside it must be left first")
        _saved.set(saved[:-1])
        _c_api().set_handler(saved[-1][1])

    def __call__(self, function):
        """Use the policy as a decorator: ``function`` runs inside ``with self:`` at every call.

        Examples
        --------
        >>> import numpy as np, numamap
        >>> @numamap.policy(0)
        ... def make():
        ...     return np.ones(1 << 20)
        >>> numamap.handler_name(make())
        'numamap_node0'
        """
        if not callable(function):
            raise TypeError(f"a Policy decorates a function, not {type(function).__name__}")

        @functools.wraps(function)
        def placed(*args, **kwargs):
            with self:
                return function(*args, **kwargs)

        return placed

    def install(self) -> None:
        """Make this the handler of the current context from now on, with no block to leave.

        For thread initializers: a pool thread that installs its node's policy keeps it for the
        thread's whole life. Use ``with`` everywhere else.
        """
        _c_api().set_handler(self._for_this_thread()._capsule)

    # -- reporting -----------------------------------------------------------------------------
    def stats(self) -> dict[str, int]:
        """The handler's counters: arena blocks served and freed, of those served how many on
        hugetlb pages, hugetlb fallbacks (explicit page sizes only: THP pages given instead),
        reallocs that kept their block, failed allocations and the errno of the latest. The
        arenas' own counters are :func:`numamap.arena_stats`."""
        return backend.handler_stats(self._capsule)._asdict()

    def __repr__(self) -> str:
        where = f"node {self.node}" if self.node is not None else "the kernel's placement"
        pages = "auto" if self.page_size is None else page_size_name(self.page_size)
        text = (f"<numamap.policy {self.name!r}: blocks >= {format_bytes(self.min_size)} from the "
                f"arena of {where}, pages {pages}")
        return text + (f"; fallback: {self.fallback}>" if self.fallback else ">")


def policy(node=None, *, page_size="auto", min_size=DEFAULT_MIN_SIZE, strict: bool = False) -> Policy:
    """A context manager that makes numpy allocate its arrays on ``node``.

    Inside ``with numamap.policy(node):`` every allocation numpy makes comes from the node's
    arena (:mod:`numamap.arenas`): small arrays from size classes carved out of placed chunks,
    large ones from whole mappings cached by size, all bound to ``node`` (MPOL_PREFERRED for base
    and THP pages, so pages spill to other nodes only when the node is full; MPOL_BIND for
    hugetlb pages). Freed blocks stay faulted in and are reused, so placed arrays cost about
    what numpy's own cost. The handler is C: no Python runs per allocation. Arrays made inside
    the block stay valid after it ends, and after the thread that made them ends.

    Parameters
    ----------
    node : int or str, optional
        The node for the allocations. None binds nothing: pages go where the kernel puts them
        (the first-touching thread's node), but blocks still come from an arena, with its
        reuse and huge pages. A selector ('local', 'fastest', 'nearest', 'slowest', 'largest': see
        :mod:`numamap.node_selectors`) is resolved for the calling thread's CPU now; 'local' is
        resolved again in each thread that enters the block (or installs the policy), so one
        ``policy(node='local')`` used in :class:`~numamap.workers.NodePool` workers places each
        worker's arrays on its own node.
    page_size : {'auto', '4K', '2M', '1G'}
        'auto': chunks of 2 MiB hugetlb pages while the node's pool can serve them (the pool
        must exist as the policy is created; blocks of 1 GiB or more try 1 GiB pages first when
        that pool exists), else base pages with transparent huge pages asked for. '4K': base
        pages only, even where THP is 'always'. '2M' or '1G': hugetlb pages for every block
        (1 GiB pages serve whole blocks of their own); when the pool cannot serve, THP pages
        (counted in :meth:`Policy.stats` as ``hugetlb_fallbacks``).
    min_size : int or str
        The smallest allocation that comes from the arena (default 0: every allocation;
        docs/policy.md). Smaller ones come from malloc.
    strict : bool
        Raise FallbackError when the node cannot be bound. Without it, a binding the system
        refuses (EPERM/EACCES: a container's seccomp profile) or any failure on a one-node
        machine warns once and leaves placement to the kernel (the handler's name then ends in
        '_unplaced'); any other failure on a machine with several nodes raises.

    Returns
    -------
    Policy

    Raises
    ------
    NotImplementedError
        On Windows when the arena DLL (``numamap/_numamap_arena.dll``) is not built.

    Examples
    --------
    >>> import numpy as np, numamap
    >>> with numamap.policy(0):
    ...     a = np.ones(1 << 20)          # 8 MiB: a large block on node 0
    ...     b = np.ones(16)               # 128 bytes: a small block on node 0
    >>> numamap.handler_name(a), numamap.where(a).fraction_on(0), numamap.block_info(b).kind
    ('numamap_node0', 1.0, 'small')
    """
    return Policy(node, page_size=page_size, min_size=min_size, strict=strict)


__all__ = ["DEFAULT_MIN_SIZE", "BlockInfo", "Policy", "block_info", "handler_name", "policy"]
