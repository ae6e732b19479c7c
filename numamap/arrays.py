"""ndarrays on node-placed memory: constructors, asarray, where() and migrate()."""
from __future__ import annotations

import math
import errno
from dataclasses import dataclass

import numpy as np

from ._backend import backend
from ._errors import FallbackError
from ._shapes import check_dtype, check_shape, fold_subarray
from ._units import MAX_BYTES, format_bytes, parse_page_size
from .placement import Placement, page_nodes, query
from .progress import Progress, in_steps
from .request import check_request
from .arenas import ArenaBlock, new_block
from .view import View, map_memory


_INTP_MAX = int(np.iinfo(np.intp).max)


def _nbytes(shape: tuple[int, ...], dtype: np.dtype) -> int:
    """Bytes of an array, or ValueError when no address space could hold it."""
    limit = _INTP_MAX
    if len(shape) == 1 and shape[0] * dtype.itemsize <= limit:  # the common case, quickly
        return shape[0] * dtype.itemsize
    if any(s > limit for s in shape):
        raise ValueError(f"shape={shape} has a dimension larger than numpy's limit ({limit})")
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes > MAX_BYTES:
        raise ValueError(f"shape={shape} of {dtype} needs {nbytes} bytes: more than any address "
                         "space can map (numamap takes at most 2**62 bytes)")
    return nbytes


_PLACEMENT = ("node", "policy", "nodes", "page_size", "populate", "strict")


def _check_numpy_keywords(function: str, like, device, placement: dict) -> None:
    """numpy 2's ``like=`` (NEP 35) and ``device=``, and no keyword numamap doesn't know, with
    errors that name the function the user called."""
    unknown = sorted(key for key in placement if key not in _PLACEMENT)
    if unknown:
        raise TypeError(f"{function}() got an unexpected keyword argument {unknown[0]!r}")
    if like is not None and not isinstance(like, np.ndarray):
        raise TypeError(f"{function}(like=...) takes a numpy array or None: numamap makes numpy "
                        f"arrays, not {type(like).__name__}")
    if device not in (None, "cpu"):
        raise ValueError(f"{function}(device={device!r}): numamap arrays live in CPU memory; "
                         "pass device='cpu' or leave it out")


def empty(shape, dtype=float, order: str = "C", *, node=None, policy: str = "preferred", nodes=None,
          page_size="auto", populate: bool = False, strict: bool = False, like=None,
          device=None) -> np.ndarray:
    """An uninitialised array on node-placed memory.

    With the defaults (policy 'preferred', page_size 'auto', no populate) the array is carved
    from the node's arena (:mod:`numamap.arenas`): memory already mapped, placed and faulted in
    is reused, so this costs about what ``np.empty`` costs. Any other placement, page size or
    populate=True gives the array a mapping of its own.

    Parameters
    ----------
    shape : int or tuple of int
        Integers only, as in numpy (floats, strings and bools raise TypeError).
    dtype : data-type
        Object dtypes are refused. As in numpy, a sub-array dtype such as ``('f8', (2,))``
        adds its dimensions to the shape, and 'S0'/'U0' mean one character.
    order : {'C', 'F'}
    node : int, optional
        The node for the pages; None leaves placement to first touch.
    policy : {'preferred', 'bind', 'interleave'}
    nodes : sequence of int, optional
        The nodes for 'interleave' or 'bind'.
    page_size : {'auto', '4K', '2M', '1G'}
        'auto' takes the arena's pages: hugetlb chunks while the node's 2 MiB pool can serve
        (1 GiB pages for blocks of 1 GiB and more when that pool exists), else transparent
        huge pages, else base pages; ``arr.base`` says which. An explicit size maps the array
        on its own, with hugetlb pages of that size when the pool can serve. Hugetlb arrays are
        mapped shared: a forked child sees them and its writes reach the parent, since a
        private copy of a huge page could kill the child with SIGBUS (docs/hugepages.md).
    populate : bool
        Fault every page in now and verify its node.
    strict : bool
        Raise instead of falling back when a node or page size cannot be honoured.
    like : numpy.ndarray, optional
        As in numpy (NEP 35): numamap makes numpy arrays, so only a numpy array or None.
    device : {'cpu', None}
        As in numpy 2: the arrays live in CPU memory.

    Returns
    -------
    numpy.ndarray
        A plain ndarray whose ``.base`` keeps the memory alive and says what it got: an
        :class:`~numamap.arenas.ArenaBlock` for arena arrays, else the :class:`View` of its
        own mapping. Both report ``node``, ``page_size``, ``page_kind`` and ``verified``.

    Examples
    --------
    >>> import numamap
    >>> numamap.empty(1000, node=0).base.kind
    'small'
    >>> a = numamap.empty((2, 3), node=0, populate=True)
    >>> a.shape, a.base.node, a.base.verified
    ((2, 3), 0, True)
    """
    if like is not None or device is not None:
        _check_numpy_keywords("empty", like, device, {})
    return _allocate(shape, dtype, order, False, node, policy, nodes, page_size, populate, strict)


def _allocate(shape, dtype, order, zero, node, policy, nodes, page_size, populate, strict) -> np.ndarray:
    dtype = check_dtype(dtype)
    shape, dtype = fold_subarray(check_shape(shape), dtype)
    if order not in ("C", "F"):
        raise ValueError(f"order={order!r} must be 'C' or 'F'")
    nbytes = _nbytes(shape, dtype)
    if policy == "preferred" and nodes is None and page_size == "auto" and not populate:
        arr = _from_arena(shape, dtype, order, nbytes, node, zero, strict)
        if arr is not None:
            return arr
    view = map_memory(nbytes, node=node, policy=policy, nodes=nodes, page_size=page_size,
                      populate=populate, strict=strict)
    return view.ndarray(shape, dtype, order)  # a fresh mapping reads as zeros


def _from_arena(shape, dtype, order, nbytes, node, zero, strict) -> np.ndarray | None:
    """An array carved from the node's arena; None when the node's placement is refused and
    ``strict`` is off (the caller's own mapping then reports the fallback)."""
    if node is not None and not (type(node) is int and node in _arena_nodes()):
        node = check_request(node, "preferred", None).node  # selectors, and clear errors
    try:
        block = new_block(nbytes, node, zero=zero)
    except PermissionError:  # the binding is refused (a container): the mapping path reports it
        return None          # on .base (fallback, summary), as FallbackError under strict
    return np.ndarray(shape, dtype, block, 0, None, order)  # positional: numpy parses keywords slowly


_memory_nodes_seen: frozenset = frozenset()


def _arena_nodes() -> frozenset:
    """The memory nodes, read once (a node that appears later goes through check_request)."""
    global _memory_nodes_seen
    if not _memory_nodes_seen:
        _memory_nodes_seen = frozenset(backend.memory_nodes())
    return _memory_nodes_seen


def zeros(shape, dtype=float, order: str = "C", *, like=None, device=None, **placement) -> np.ndarray:
    """Like :func:`empty`, filled with zeros (arena blocks are cleared; fresh mappings already
    read as zeros)."""
    _check_numpy_keywords("zeros", like, device, placement)
    return _allocate(shape, dtype, order, True, *_placement_args(placement))


def _placement_args(placement: dict) -> tuple:
    return (placement.get("node"), placement.get("policy", "preferred"), placement.get("nodes"),
            placement.get("page_size", "auto"), placement.get("populate", False),
            placement.get("strict", False))


def full(shape, fill_value, dtype=None, order: str = "C", *, like=None, device=None,
         **placement) -> np.ndarray:
    """Like :func:`empty`, filled with ``fill_value``."""
    _check_numpy_keywords("full", like, device, placement)
    return _filled(shape, fill_value, dtype, order, placement)


def _filled(shape, fill_value, dtype, order, placement) -> np.ndarray:
    if dtype is None:
        dtype = np.array(fill_value).dtype
    arr = empty(shape, dtype, order, **placement)
    arr[...] = fill_value
    return arr


def ones(shape, dtype=float, order: str = "C", *, like=None, device=None, **placement) -> np.ndarray:
    """Like :func:`empty`, filled with ones."""
    _check_numpy_keywords("ones", like, device, placement)
    return _filled(shape, 1, dtype, order, placement)


def _like(a, dtype, order, shape):
    a = np.asanyarray(a)
    dtype = a.dtype if dtype is None else dtype
    if order in ("K", "A"):
        fortran = a.flags.f_contiguous and not a.flags.c_contiguous
        if order == "K" and shape is not None and len(check_shape(shape)) != a.ndim:
            fortran = False  # as numpy: 'K' cannot keep a layout across a change of ndim
        order = "F" if fortran else "C"
    return (a.shape if shape is None else shape), dtype, order


def empty_like(a, dtype=None, order: str = "K", *, shape=None, device=None, **placement) -> np.ndarray:
    """:func:`empty` with the shape and dtype of ``a``."""
    _check_numpy_keywords("empty_like", None, device, placement)
    return empty(*_like(a, dtype, order, shape), **placement)


def zeros_like(a, dtype=None, order: str = "K", *, shape=None, device=None, **placement) -> np.ndarray:
    """:func:`zeros` with the shape and dtype of ``a``."""
    _check_numpy_keywords("zeros_like", None, device, placement)
    return zeros(*_like(a, dtype, order, shape), **placement)


def ones_like(a, dtype=None, order: str = "K", *, shape=None, device=None, **placement) -> np.ndarray:
    """:func:`ones` with the shape and dtype of ``a``."""
    _check_numpy_keywords("ones_like", None, device, placement)
    shape, dtype, order = _like(a, dtype, order, shape)
    return _filled(shape, 1, dtype, order, placement)


def full_like(a, fill_value, dtype=None, order: str = "K", *, shape=None, device=None,
              **placement) -> np.ndarray:
    """:func:`full` with the shape and dtype of ``a``."""
    _check_numpy_keywords("full_like", None, device, placement)
    shape, dtype, order = _like(a, dtype, order, shape)
    return _filled(shape, fill_value, dtype, order, placement)


#: Migrating goes this many bytes at a time, so long work can show progress.
MIGRATE_STEP = 256 << 20


def view_of(arr: np.ndarray) -> View | ArenaBlock | None:
    """The numamap memory under ``arr`` (walking ``.base``): the View of its own mapping, or the
    :class:`~numamap.arenas.ArenaBlock` it was carved from; None for other arrays. Both say
    ``node``, ``page_size``, ``page_kind`` and ``verified``, and have ``where()`` and ``summary()``."""
    obj = arr
    while obj is not None:
        if isinstance(obj, (View, ArenaBlock)):
            return obj
        # np.asarray(view) on Python 3.12+ goes through View.__buffer__: a memoryview whose
        # .obj is the array over the View.
        obj = obj.obj if isinstance(obj, memoryview) else getattr(obj, "base", None)
    return None


def _handler_page_size(arr: np.ndarray) -> int:
    """The page size under an array numpy allocated itself: its arena block's, when numamap's
    handler gave it one (walking ``.base`` to the array that owns the data), else the base page."""
    owner = arr
    while isinstance(owner, np.ndarray) and not owner.flags.owndata:
        owner = owner.base
    info = (backend.arena_block_info(owner.__array_interface__["data"][0])
            if isinstance(owner, np.ndarray) else None)
    return info.page_size if info is not None else backend.base_page_size()


def _array_range(arr: np.ndarray) -> tuple[int, int]:
    """The byte range an array's elements span (any strides)."""
    if arr.size == 0:
        return arr.__array_interface__["data"][0], 0
    low = high = arr.__array_interface__["data"][0]
    for extent, stride in zip(arr.shape, arr.strides):
        reach = (extent - 1) * stride
        low, high = (low + reach, high) if reach < 0 else (low, high + reach)
    return low, high + arr.itemsize - low


def where(obj, *, strict: bool = False) -> Placement:
    """Where the pages of a View or an ndarray (numamap's or not) are now.

    Parameters
    ----------
    obj : numamap.View or numpy.ndarray
    strict : bool
        Raise FallbackError when the system refuses to say (a container refusing move_pages)
        instead of returning a Placement whose nodes are all unknown, with its ``reason``.

    Returns
    -------
    Placement
        The node of every page (-1 untouched or unknown), bytes per node, bytes per page size,
        ``fraction_on(node)``, and ``reason`` when placement could not be read.

    Examples
    --------
    >>> import numamap
    >>> a = numamap.ones(1 << 16, node=0)
    >>> numamap.where(a).fraction_on(0)
    1.0
    """
    if isinstance(obj, View):
        found = obj.where()
    elif isinstance(obj, np.ndarray):
        view = view_of(obj)
        page = view.page_size if view is not None else _handler_page_size(obj)
        address, size = _array_range(obj)
        found = query(address, size, page)
    else:
        raise TypeError(f"where() takes a numamap View or a numpy array, not {type(obj).__name__}")
    if strict and found.reason:
        raise FallbackError(errno.EPERM, found.reason)
    return found


@dataclass(frozen=True)
class Migration:
    """What :func:`migrate` did: placement before and after, and the bytes that moved."""

    node: int
    before: Placement
    after: Placement

    @property
    def moved_bytes(self) -> int:
        moved = (self.before.nodes != self.node) & (self.after.nodes == self.node)
        return int(moved.sum()) * self.after.page_size

    def __repr__(self) -> str:
        return (f"<Migration to node {self.node}: moved {format_bytes(self.moved_bytes)}, now "
                f"{self.after.fraction_on(self.node):.0%} of the pages there>")


def migrate(arr: np.ndarray, node: int) -> Migration:
    """Move the pages of a numamap array to ``node`` (mbind with MPOL_MF_MOVE on Linux).

    The whole view under ``arr`` moves, and from then on new pages are bound to ``node`` too.
    On Windows, where pages cannot be moved, use :func:`asarray` to copy instead.
    """
    view = view_of(arr) if isinstance(arr, np.ndarray) else None
    if view is None:
        raise TypeError("migrate() takes an array made by numamap (its .base is a numamap View); "
                        "use numamap.asarray(a, node=...) to copy other arrays onto a node")
    if isinstance(view, ArenaBlock):
        raise ValueError("migrate() moves an array's own mapping, and this array was carved from "
                         f"node {view.node}'s arena, whose pages it shares with other arrays: copy it "
                         "with numamap.asarray(a, node=...), or make arrays you will migrate with a "
                         "mapping of their own (populate=True, or an explicit page_size)")
    request = check_request(node, "bind", None)
    before = view.where()
    if before.reason:  # nothing is moved that could not be checked afterwards
        raise PermissionError(errno.EPERM, f"migrate cannot move pages it cannot see: {before.reason}")
    length = -(-view.size // view.page_size) * view.page_size
    step = max(MIGRATE_STEP - MIGRATE_STEP % view.page_size, view.page_size)
    with Progress(length, f"migrating {format_bytes(length)} to node {request.nodes[0]}") as bar:
        for offset, size in in_steps(length, step):
            backend.move_range(view.address + offset, size, request.nodes[0])
            bar.advance(size)
    view.request = request  # the account every holder of the mapping shares
    view.verify()
    after = view.where()
    return Migration(request.nodes[0], before, after)


def _placed_on(a: np.ndarray, view: View, node: int) -> bool:
    """Whether ``a``'s pages are on ``node``: every touched one, and the untouched ones by the
    view's own request (they will land on ``node`` when touched)."""
    address, size = _array_range(a)
    nodes = page_nodes(address, size, view.page_size)[1]  # move_pages only: no smaps on this path
    touched = nodes >= 0
    if not touched.all() and view.nodes != (node,):
        return False
    return bool((nodes[touched] == node).all())


def _already_fits(a: np.ndarray, view: View, order: str, placement: dict) -> bool:
    """Whether ``a`` meets asarray's layout and placement keywords as it is (nodes aside)."""
    if (order == "C" and not a.flags.c_contiguous) or (order == "F" and not a.flags.f_contiguous):
        return False
    wanted = parse_page_size(placement.get("page_size", "auto"))
    if wanted is not None and wanted != view.page_size:
        return False
    if "policy" in placement and placement["policy"] != view.policy:
        return False
    if placement.get("nodes") is not None:
        return False  # let the copy's request check judge the nodes
    return True


def asarray(a, dtype=None, order: str = "K", *, node: int, copy: bool | None = None,
            device=None, **placement) -> np.ndarray:
    """``a`` as an array on ``node``: ``a`` itself when it already is what was asked, else a copy.

    ``a`` itself comes back when it is a numamap array on ``node`` (every touched page there,
    and untouched pages asked for there, so a fresh ``zeros(..., node=node)`` qualifies) and it
    meets every other request: ``dtype``, ``order`` ('C' or 'F' contiguity), an explicit
    ``page_size``, and ``policy``/``nodes`` when given. Anything else copies onto new memory,
    placed as the keywords say.

    Parameters
    ----------
    a : array_like
    dtype : data-type, optional
    order : {'K', 'A', 'C', 'F'}
    node : int
    copy : bool, optional
        As in numpy 2: None copies only when needed, True always copies, False never does
        (ValueError when a copy would be needed).
    device : {'cpu', None}
    **placement
        ``policy``, ``nodes``, ``page_size``, ``populate`` and ``strict``, as for :func:`empty`.

    Examples
    --------
    >>> import numpy as np, numamap
    >>> b = numamap.asarray(np.arange(5), node=0)
    >>> b.base.node
    0
    """
    _check_numpy_keywords("asarray", None, device, {"node": node, **placement})
    if copy not in (None, True, False):
        raise ValueError(f"copy={copy!r} must be True, False or None")
    if copy is not True and isinstance(a, np.ndarray) and (dtype is None or np.dtype(dtype) == a.dtype):
        view = view_of(a)
        if (view is not None and a.size and _already_fits(a, view, order, placement)
                and _placed_on(a, view, node)):
            return a
    if copy is False:
        raise ValueError(f"asarray(copy=False): the array is not already on node {node} as asked, "
                         "so it would have to be copied; pass copy=None to allow that")
    source = np.asarray(a, dtype=dtype)
    out = empty_like(source, order=order, node=node, **placement)
    np.copyto(out, source)
    return out
