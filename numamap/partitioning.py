"""Partitioned arrays: one contiguous ndarray whose consecutive row blocks live on successive nodes."""
from __future__ import annotations

import math

import numpy as np

from ._backend import backend
from ._units import MiB, format_bytes, page_size_name, parse_page_size, round_up
from ._shapes import check_dtype, check_shape, fold_subarray
from .arrays import _nbytes, view_of
from .reservation import reserve
from .numa_topology import topology
from .request import node_list
from .view import combine, map_memory


def _default_nodes_and_weights(nodes, weights):
    topo = topology()
    if nodes is None:
        nodes = list(topo.working_nodes) or [n.id for n in topo.nodes if n.has_memory]
    else:
        nodes = node_list(nodes, repeats=True)  # several blocks may share a node
    if weights is None:
        weights = [max(len(topo.cpus_of(n)) if n in topo.node_ids else 0, 1) for n in nodes]
    else:
        try:
            weights = [float(w) for w in weights]
        except (TypeError, ValueError):
            raise TypeError(f"weights must be a sequence of numbers, one per node, not {weights!r}") from None
        if len(weights) != len(nodes):
            raise ValueError(f"weights has {len(weights)} entries for {len(nodes)} nodes: give one per node")
        if any(w < 0 or not math.isfinite(w) for w in weights) or max(weights) <= 0:
            raise ValueError(f"weights={weights} must be finite, >= 0 and not all zero")
        # Only the ratios matter: scale to a largest weight of 1, so that no sum overflows
        # (weights=[1e308, 1e308] would sum to infinity).
        top = max(weights)
        weights = [w / top for w in weights]
    return nodes, weights


def _split_rows(rows: int, step: int, weights) -> list[int]:
    """Row counts per node, proportional to ``weights``, each a multiple of ``step`` but the last."""
    total = sum(weights)
    bounds, acc = [0], 0.0
    for w in weights[:-1]:
        acc += w
        ideal = rows * acc / total
        bounds.append(min(max(int(round(ideal / step)) * step, bounds[-1]), rows))
    bounds.append(rows)
    return [b - a for a, b in zip(bounds, bounds[1:])]


def _unit_candidates(page_size, nbytes: int, nodes, weights) -> list[tuple[int | None, int]]:
    """(hugetlb page size or None, boundary unit) pairs to try, best first."""
    wanted = parse_page_size(page_size)
    base = backend.base_page_size()
    granularity = backend.allocation_granularity()
    if wanted is not None and wanted != base:
        return [(wanted, max(wanted, granularity))]
    out: list[tuple[int | None, int]] = []
    if wanted is None:
        for size in sorted(backend.huge_page_sizes(), reverse=True):
            # each block needs its share in whole pages, plus one for rounding at the boundaries
            needed = [-(-int(nbytes * w / sum(weights)) // size) + 1 for w in weights]
            pools = [backend.hugepage_pool(size, n) for n in nodes]
            if all(p is not None and p.free >= k for p, k in zip(pools, needed)) and nbytes >= size * len(nodes):
                out.append((size, max(size, granularity)))
        if backend.thp_mode() in ("always", "madvise") and nbytes >= 2 * MiB * len(nodes):
            out.append((None, max(2 * MiB, granularity)))
    out.append((None, max(base, granularity)))
    return out


def partitioned(shape, dtype=float, *, nodes=None, axis: int = 0, weights=None, page_size="auto",
                fill=None, populate: bool = False, strict: bool = False) -> np.ndarray:
    """A C-contiguous array whose consecutive blocks along axis 0 live on successive nodes.

    Parameters
    ----------
    shape : int or tuple of int
    dtype : data-type
    nodes : sequence of int, optional
        The nodes, in block order; every node with memory and CPUs by default.
    axis : int
        Must be 0 (the only axis whose blocks are contiguous in a C-ordered array).
    weights : sequence of float, optional
        Relative block sizes; each node's count of usable CPUs by default.
    page_size : {'auto', '4K', '2M', '1G'}
        Block boundaries fall on multiples of this, so no page straddles two nodes. Hugetlb
        blocks are shared with forked children, as for :func:`numamap.empty`.
    fill : scalar, optional
        Fill value; None leaves the (zeroed) memory untouched.
    populate, strict
        As for :func:`numamap.empty`.

    Returns
    -------
    numpy.ndarray
        One ndarray over one reservation, one view per block, each bound to its node
        (``policy='bind'``). :func:`blocks` says which rows are on which node.

    Examples
    --------
    >>> import numamap
    >>> a = numamap.partitioned((1000, 8), fill=1.0)
    >>> [(node, s.start, s.stop) for node, s in numamap.blocks(a)][:1]
    [(0, 0, 1000)]
    """
    dtype = check_dtype(dtype)
    shape = check_shape(shape)
    if axis not in (0, -len(shape) if shape else 0):
        raise ValueError(f"axis={axis}: only axis=0 blocks are contiguous in a C-ordered array; "
                         "partition along axis 0 and use np.moveaxis on the result")
    shape, dtype = fold_subarray(shape, dtype)  # a sub-array dtype adds trailing dimensions
    nodes, weights = _default_nodes_and_weights(nodes, weights)
    nbytes = _nbytes(shape, dtype)
    rows = shape[0] if shape else 1
    row_bytes = math.prod(shape[1:]) * dtype.itemsize if shape else dtype.itemsize

    candidates = _unit_candidates(page_size, nbytes, nodes, weights)
    for i, (huge, unit) in enumerate(candidates):
        step = unit // math.gcd(unit, row_bytes) if row_bytes else 1
        counts = _split_rows(rows, step, weights)
        if i == len(candidates) - 1 or all(c > 0 for c, w in zip(counts, weights) if w > 0):
            break
    explicit_base = parse_page_size(page_size) == backend.base_page_size()
    block_page = page_size_name(huge) if huge else ("4K" if explicit_base else "auto")

    total = round_up(max(nbytes, 1), unit)
    reservation = reserve(total, alignment=unit)
    views, layout, start_row = [], [], 0
    for node, count in zip(nodes, counts):
        if count == 0 or nbytes == 0:  # rows of no bytes share one mapping, made below
            continue
        start = start_row * row_bytes
        end = total if start_row + count == rows else (start_row + count) * row_bytes
        # Filling touches every page: populating first checks the nodes can back them, so a
        # fill too big is a MemoryError here rather than the OOM killer halfway through.
        views.append(map_memory(end - start, node=node, policy="bind", page_size=block_page,
                                populate=populate or fill is not None, address=reservation.address + start,
                                strict=strict, hugetlb=huge is not None))
        layout.append((node, start, end))
        start_row += count
    if not views:  # no bytes: still one mapping, so the array has a View like any other
        views.append(map_memory(total, node=nodes[0], policy="bind", page_size=block_page,
                                address=reservation.address, strict=strict, hugetlb=huge is not None))
        layout.append((nodes[0], 0, total))
    whole = combine(views, address=reservation.address, size=max(nbytes, 1), reservation=reservation)
    whole.blocks = tuple(layout)
    arr = whole.ndarray(shape, dtype)
    if fill is not None:
        arr[...] = fill
        arr.base.verify()
    return arr


def blocks(arr: np.ndarray) -> list[tuple[int, slice]]:
    """``[(node, slice), ...]`` along axis 0 of ``arr``, for any array over a :func:`partitioned` one.

    Works on slices and views too: each slice indexes ``arr`` itself and covers only the rows
    it has. Rows are attributed by where they start.

    Examples
    --------
    >>> import numamap
    >>> a = numamap.partitioned(4096, dtype="u1")
    >>> numamap.blocks(a[100:200])
    [(0, slice(0, 100, None))]
    """
    view = view_of(arr) if isinstance(arr, np.ndarray) else None
    layout = getattr(view, "blocks", None)
    if layout is None:
        raise TypeError("blocks() takes an array made by numamap.partitioned() (or a view of one)")
    if arr.ndim == 0:
        raise ValueError("blocks() needs an array with at least one dimension")
    rows, stride = arr.shape[0], arr.strides[0]
    first = arr.__array_interface__["data"][0] - view.address
    if arr.size == 0:  # rows of no bytes: they all start where the array does
        if rows == 0:
            return []
        node = next((n for n, start, end in layout if start <= first < end), layout[0][0])
        return [(node, slice(0, rows))]
    if rows and stride == 0:
        raise ValueError("blocks() cannot split an array broadcast along axis 0 (stride 0)")
    out = []
    for node, start, end in layout:
        if rows == 0:
            break
        if stride > 0:
            low, high = -(-(start - first) // stride), -(-(end - first) // stride)
        else:
            low, high = (end - first) // stride + 1, (start - first) // stride + 1
        low, high = max(low, 0), min(high, rows)
        if low < high:
            out.append((node, slice(low, high)))
    return sorted(out, key=lambda item: item[1].start)


def describe(arr: np.ndarray) -> str:
    """One line per block: node, rows and bytes."""
    view = view_of(arr)
    return "\n".join(f"node {node}: rows {s.start}-{s.stop - 1} ({format_bytes((s.stop - s.start) * abs(arr.strides[0]))})"
                     for node, s in blocks(arr)) + (f"\n{view.summary()}" if view is not None else "")
