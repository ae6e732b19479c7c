"""ndarrays on node-placed memory: constructors, asarray, where() and migrate()."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._backend import backend
from ._units import format_bytes
from .placement import Placement, query
from .view import View, check_request, map_memory


def _check_dtype(dtype) -> np.dtype:
    dtype = np.dtype(dtype)
    if dtype.hasobject:
        raise TypeError(f"dtype={dtype} holds Python objects, whose memory numpy manages itself: "
                        "numamap places only plain data (numbers, bytes, structured records)")
    return dtype


def _shape(shape) -> tuple[int, ...]:
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (int(shape),)
    try:
        if isinstance(shape, (str, bytes)):
            raise TypeError
        shape = tuple(int(s) for s in shape)
    except (TypeError, ValueError):
        raise TypeError(f"shape must be an int or a sequence of ints, not {type(shape).__name__}") from None
    if any(s < 0 for s in shape):
        raise ValueError(f"shape={shape} has a negative dimension")
    return shape


def empty(shape, dtype=float, order: str = "C", *, node=None, policy: str = "preferred", nodes=None,
          page_size="auto", populate: bool = False, strict: bool = False) -> np.ndarray:
    """An uninitialised array on node-placed memory (freshly mapped memory reads as zeros).

    Parameters
    ----------
    shape : int or tuple of int
    dtype : data-type
        Object dtypes are refused.
    order : {'C', 'F'}
    node : int, optional
        The node for the pages; None leaves placement to first touch.
    policy : {'preferred', 'bind', 'interleave'}
    nodes : sequence of int, optional
        The nodes for 'interleave' or 'bind'.
    page_size : {'auto', '4K', '2M', '1G'}
        'auto' takes hugetlb pages when the node's pool can serve the whole array, else
        transparent huge pages, else base pages; ``arr.base`` says which.
    populate : bool
        Fault every page in now and verify its node.
    strict : bool
        Raise instead of falling back when a node or page size cannot be honoured.

    Returns
    -------
    numpy.ndarray
        A plain ndarray whose ``.base`` is the :class:`View` that keeps the memory mapped.

    Examples
    --------
    >>> import numamap
    >>> a = numamap.empty((2, 3), node=0, populate=True)
    >>> a.shape, a.base.node, a.base.verified
    ((2, 3), 0, True)
    """
    dtype = _check_dtype(dtype)
    shape = _shape(shape)
    if order not in ("C", "F"):
        raise ValueError(f"order={order!r} must be 'C' or 'F'")
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    view = map_memory(nbytes, node=node, policy=policy, nodes=nodes, page_size=page_size,
                      populate=populate, strict=strict)
    return view.ndarray(shape, dtype, order)


def zeros(shape, dtype=float, order: str = "C", **placement) -> np.ndarray:
    """Like :func:`empty`, filled with zeros (new mappings are zeroed by the kernel: no pass)."""
    return empty(shape, dtype, order, **placement)


def full(shape, fill_value, dtype=None, order: str = "C", **placement) -> np.ndarray:
    """Like :func:`empty`, filled with ``fill_value``."""
    if dtype is None:
        dtype = np.array(fill_value).dtype
    arr = empty(shape, dtype, order, **placement)
    arr[...] = fill_value
    return arr


def ones(shape, dtype=float, order: str = "C", **placement) -> np.ndarray:
    """Like :func:`empty`, filled with ones."""
    return full(shape, 1, dtype, order, **placement)


def _like(a, dtype, order, shape):
    a = np.asanyarray(a)
    dtype = a.dtype if dtype is None else dtype
    if order in ("K", "A"):
        order = "F" if a.flags.f_contiguous and not a.flags.c_contiguous else "C"
    return (a.shape if shape is None else shape), dtype, order


def empty_like(a, dtype=None, order: str = "K", *, shape=None, **placement) -> np.ndarray:
    """:func:`empty` with the shape and dtype of ``a``."""
    return empty(*_like(a, dtype, order, shape), **placement)


def zeros_like(a, dtype=None, order: str = "K", *, shape=None, **placement) -> np.ndarray:
    """:func:`zeros` with the shape and dtype of ``a``."""
    return zeros(*_like(a, dtype, order, shape), **placement)


def ones_like(a, dtype=None, order: str = "K", *, shape=None, **placement) -> np.ndarray:
    """:func:`ones` with the shape and dtype of ``a``."""
    return ones(*_like(a, dtype, order, shape), **placement)


def full_like(a, fill_value, dtype=None, order: str = "K", *, shape=None, **placement) -> np.ndarray:
    """:func:`full` with the shape and dtype of ``a``."""
    shape, dtype, order = _like(a, dtype, order, shape)
    return full(shape, fill_value, dtype, order, **placement)


def view_of(arr: np.ndarray) -> View | None:
    """The numamap View under ``arr`` (walking ``.base``), or None for other arrays."""
    obj = arr
    while obj is not None:
        if isinstance(obj, View):
            return obj
        # np.asarray(view) on Python 3.12+ goes through View.__buffer__: a memoryview whose
        # .obj is the array over the View.
        obj = obj.obj if isinstance(obj, memoryview) else getattr(obj, "base", None)
    return None


def _array_range(arr: np.ndarray) -> tuple[int, int]:
    """The byte range an array's elements span (any strides)."""
    if arr.size == 0:
        return arr.__array_interface__["data"][0], 0
    low = high = arr.__array_interface__["data"][0]
    for extent, stride in zip(arr.shape, arr.strides):
        reach = (extent - 1) * stride
        low, high = (low + reach, high) if reach < 0 else (low, high + reach)
    return low, high + arr.itemsize - low


def where(obj) -> Placement:
    """Where the pages of a View or an ndarray (numamap's or not) are now.

    Returns
    -------
    Placement
        The node of every page (-1 untouched), bytes per node, bytes per page size, and
        ``fraction_on(node)``.

    Examples
    --------
    >>> import numamap
    >>> a = numamap.ones(1 << 16, node=0)
    >>> numamap.where(a).fraction_on(0)
    1.0
    """
    if isinstance(obj, View):
        return obj.where()
    if not isinstance(obj, np.ndarray):
        raise TypeError(f"where() takes a numamap View or a numpy array, not {type(obj).__name__}")
    view = view_of(obj)
    page = view.page_size if view is not None else backend.base_page_size()
    address, size = _array_range(obj)
    return query(address, size, page)


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
    request = check_request(node, "bind", None)
    before = view.where()
    backend.move_range(view.address, -(-view.size // view.page_size) * view.page_size, request.nodes[0])
    view.request = request
    after = view.where()
    return Migration(request.nodes[0], before, after)


def asarray(a, dtype=None, order: str = "K", *, node: int, **placement) -> np.ndarray:
    """``a`` as an array on ``node``: ``a`` itself when all its pages are there already, else a copy.

    Examples
    --------
    >>> import numpy as np, numamap
    >>> b = numamap.asarray(np.arange(5), node=0)
    >>> b.base.node
    0
    """
    if isinstance(a, np.ndarray) and (dtype is None or np.dtype(dtype) == a.dtype):
        view = view_of(a)
        if view is not None and a.size and where(a).fraction_on(node) == 1.0:
            return a
    source = np.asarray(a, dtype=dtype)
    out = empty_like(source, order=order, node=node, **placement)
    np.copyto(out, source)
    return out
