"""Pictures of what numamap reports: where an array's pages are, and the machine's topology.

matplotlib is optional (``pip install numamap[plot]``); this module imports it only when a
function is called, and without it every function raises ImportError saying what to install.
Each function returns a :class:`matplotlib.figure.Figure`. In a notebook it shows once, as the
cell's value (end the line with ``;`` or assign it to keep it from showing); in a script, save
it with ``fig.savefig("placement.png")``, or call ``matplotlib.pyplot.show()`` with an
interactive backend.

:meth:`numamap.Placement.plot` and :meth:`numamap.Topology.plot` call these functions.
"""
from __future__ import annotations

import numpy as np

from ._units import format_bytes, page_size_name

INSTALL_HINT = "pip install numamap[plot]"

#: Largest number of columns the placement strip draws; longer ranges are binned.
STRIP_COLUMNS = 2048

_UNTOUCHED = -1
_MIXED = -2
_UNTOUCHED_COLOR = "#d9d9d9"
_MIXED_COLOR = "#404040"


def _pyplot():
    """matplotlib.pyplot, or ImportError that says how to install it."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(f"numamap's plots need matplotlib ({INSTALL_HINT}): {exc}") from exc
    return plt


def _new_figure(**kwargs):
    """A pyplot Figure that a notebook shows once when it is a cell's value.

    Under Jupyter's inline backend pyplot would also draw every open figure at the end of the
    cell, so a returned figure would show twice: it is closed (released by pyplot) and shows
    as the cell's value only. With any other backend it stays open, for ``plt.show()``.
    """
    plt = _pyplot()
    figure = plt.figure(**kwargs)
    if "inline" in plt.get_backend():
        plt.close(figure)
    return figure


def _node_color(node: int):
    if node == _UNTOUCHED:
        return _UNTOUCHED_COLOR
    if node == _MIXED:
        return _MIXED_COLOR
    import matplotlib

    return matplotlib.colormaps["tab10"](node % 10)


def _bytes_axis(axis, top: float) -> None:
    """Ticks at multiples of a power of two (so they read 4 MiB, 8 MiB, ...) up to ``top``."""
    from matplotlib.ticker import FuncFormatter, MultipleLocator

    step = 2.0 ** np.ceil(np.log2(max(top, 4.0) / 4))
    axis.set_major_locator(MultipleLocator(step))
    axis.set_major_formatter(FuncFormatter(lambda value, _pos: format_bytes(value) if value else "0"))


# -- placement ---------------------------------------------------------------------------------


def _resolve(obj):
    """(Placement, blocks or None) for a Placement, a View or an ndarray."""
    from .arrays import view_of, where
    from .placement import Placement
    from .view import View

    if isinstance(obj, Placement):
        return obj, None
    if isinstance(obj, View):
        view, placement = obj, obj.where()
    elif isinstance(obj, np.ndarray):
        view, placement = view_of(obj), where(obj)
    else:
        raise TypeError(f"plot_placement() takes a Placement, a numamap View or a numpy array, "
                        f"not {type(obj).__name__}")
    layout = getattr(view, "blocks", None)
    if not layout:
        return placement, None
    shift = view.address - placement.address  # block offsets are relative to the View
    blocks = []
    for node, start, end in layout:
        low, high = max(start + shift, 0), min(end + shift, placement.size)
        if low < high:
            blocks.append((node, low, high))
    return placement, blocks


def _by_page_size(placement) -> tuple[dict[int, dict[int, float]], bool]:
    """{node: {page size: bytes}} for the bar chart, and whether page sizes were apportioned.

    The kernel reports page sizes for the whole range, not per page. Bytes in pages larger
    than the range's smallest page size are touched ones, the rest of the touched bytes are
    in the smallest; when several nodes hold touched pages, each node's bytes are split in
    those proportions.
    """
    per_node = placement.bytes_per_node
    touched = {n: b for n, b in per_node.items() if n >= 0}
    touched_total = float(sum(touched.values()))
    reported = {s: float(b) for s, b in placement.page_sizes.items() if b > 0}
    smallest = min(reported, default=placement.page_size)
    larger = {s: b for s, b in reported.items() if s != smallest}
    scale = min(1.0, touched_total / sum(larger.values())) if larger else 1.0
    mix = {s: b * scale for s, b in larger.items()}
    mix[smallest] = max(touched_total - sum(mix.values()), 0.0)
    mix = {s: b for s, b in sorted(mix.items()) if b > 0}
    out = {}
    for node, nbytes in per_node.items():
        if node < 0:
            out[node] = {placement.page_size: float(nbytes)}
        else:
            out[node] = {s: nbytes * b / touched_total for s, b in mix.items()}
    return out, len(mix) > 1 and len(touched) > 1


def _strip_columns(nodes: np.ndarray, columns: int) -> tuple[np.ndarray, int]:
    """Bin ``nodes`` into at most ``columns`` columns: a bin of one node shows that node,
    a bin of several shows as mixed. Returns the binned row and pages per column."""
    if nodes.size <= columns:
        return nodes.astype(np.int64), 1
    per = -(-nodes.size // columns)
    padded = np.concatenate([nodes, np.repeat(nodes[-1:], per * columns - nodes.size)])
    grid = padded.reshape(columns, per)
    low, high = grid.min(axis=1), grid.max(axis=1)
    return np.where(low == high, low, _MIXED).astype(np.int64), per


def plot_placement(obj, *, blocks=None, title: str | None = None, figsize=None):
    """Plot where memory is: bytes per node split by page size, and a strip along the range.

    Parameters
    ----------
    obj : Placement, View or numpy.ndarray
        A :class:`numamap.Placement`, or something :func:`numamap.where` takes, which is
        asked where its pages are now.
    blocks : sequence of (node, start, stop), optional
        The requested layout in byte offsets from the start of the range; drawn as a second
        strip above the one showing where the pages are. Found by itself for arrays from
        :func:`numamap.partitioned` and their Views.
    title : str, optional
        The figure's title; by default the size of the range.
    figsize : (float, float), optional
        Passed to :func:`matplotlib.pyplot.figure`.

    Returns
    -------
    matplotlib.figure.Figure
        Top: a bar per node (and one for untouched pages), stacked by page size. Bottom: the
        range from its first byte to its last, coloured by the node of each page (grey where
        no page is yet, dark where one column covers pages of several nodes).
    """
    placement, found = _resolve(obj)
    _pyplot()  # ImportError naming the extra
    import matplotlib
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    blocks = found if blocks is None else [(int(n), int(a), int(b)) for n, a, b in blocks]

    figure = _new_figure(figsize=figsize or (7.0, 4.2 if blocks else 3.8), layout="constrained")
    bars_ax, strip_ax = figure.subplots(2, 1, height_ratios=(4, 1.4 if blocks else 1))

    split, apportioned = _by_page_size(placement)
    node_ids = sorted(split, key=lambda n: (n < 0, n))
    labels = ["untouched" if n < 0 else f"node {n}" for n in node_ids]
    sizes = sorted({s for parts in split.values() for s in parts})
    shades = matplotlib.colormaps["Blues"](np.linspace(0.45, 0.9, max(len(sizes), 1)))
    bottom = np.zeros(len(node_ids))
    for shade, size in zip(shades, sizes):
        heights = np.array([split[n].get(size, 0.0) if n >= 0 else 0.0 for n in node_ids])
        if heights.any():
            bars_ax.bar(labels, heights, bottom=bottom, color=shade, label=f"{page_size_name(size)} pages")
            bottom += heights
    if _UNTOUCHED in split:
        heights = np.array([split[n][placement.page_size] if n < 0 else 0.0 for n in node_ids])
        bars_ax.bar(labels, heights, bottom=bottom, color=_UNTOUCHED_COLOR, label="not touched yet")
    for x, node in enumerate(node_ids):
        share = sum(split[node].values()) / max(placement.size, 1)
        bars_ax.annotate(f"{share:.0%}", (x, sum(split[node].values())), ha="center", va="bottom",
                         fontsize="small")
    _bytes_axis(bars_ax.yaxis, max((sum(parts.values()) for parts in split.values()), default=0))
    bars_ax.set_ylabel("bytes")
    bars_ax.margins(y=0.15)
    if bars_ax.get_legend_handles_labels()[0]:
        bars_ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False,
                       title="split in the range's\nproportions" if apportioned else None,
                       title_fontsize="small")
    bars_ax.set_title(title or f"Placement of {format_bytes(placement.size)}")

    start = placement.address - placement.address % placement.page_size
    row, per = _strip_columns(placement.nodes, STRIP_COLUMNS)
    left = start - placement.address
    right = left + row.size * per * placement.page_size
    strip_ids = sorted(set(row.tolist()) | {n for n, _, _ in blocks or ()}) or [_UNTOUCHED]
    index = {n: i for i, n in enumerate(strip_ids)}
    colors = ListedColormap([_node_color(n) for n in strip_ids])
    rows = [np.vectorize(index.get)(row)] if row.size else [np.zeros(1, np.int64)]
    tick_labels = ["pages"]
    extent_rows = 1
    if blocks:
        requested = np.full(row.size or 1, index[blocks[0][0]])
        centres = left + (np.arange(row.size or 1) + 0.5) * per * placement.page_size
        for node, low, high in blocks:
            requested[(centres >= low) & (centres < high)] = index[node]
        rows = [rows[0], requested]
        tick_labels = ["pages", "blocks"]
        extent_rows = 2
    strip_ax.imshow(np.array(rows), aspect="auto", cmap=colors, vmin=-0.5, vmax=len(strip_ids) - 0.5,
                    interpolation="nearest", origin="lower",
                    extent=(left, right if row.size else max(placement.size, 1), -0.5, extent_rows - 0.5))
    for _node, low, _high in (blocks or ())[1:]:
        strip_ax.axvline(low, color="black", linewidth=0.8)
    strip_ax.set_yticks(range(extent_rows), tick_labels)
    strip_ax.set_xlim(0, max(placement.size, 1))
    _bytes_axis(strip_ax.xaxis, placement.size)
    strip_ax.set_xlabel("offset in the range" + (f" (one column = {per} pages)" if per > 1 else ""))
    handles = [Patch(color=_node_color(n), label="untouched" if n == _UNTOUCHED else
                     "several nodes" if n == _MIXED else f"node {n}") for n in strip_ids]
    strip_ax.legend(handles=handles, fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0),
                    frameon=False)
    return figure


# -- topology ----------------------------------------------------------------------------------


def plot_topology(topo=None, *, figsize=None):
    """Plot the node distance matrix as a heat map, beside each node's CPUs and memory.

    Parameters
    ----------
    topo : Topology, optional
        What to draw; :func:`numamap.topology` by default.
    figsize : (float, float), optional
        Passed to :func:`matplotlib.pyplot.figure`.

    Returns
    -------
    matplotlib.figure.Figure
        Left: the distances (10 is local; larger is farther). Right: each node's memory, the
        free part darker, labelled with its CPU count and huge-page pools.
    """
    _pyplot()  # ImportError naming the extra, before anything else
    if topo is None:
        from .numa_topology import topology

        topo = topology()
    count = len(topo.nodes)
    figure = _new_figure(figsize=figsize or (8.0, 1.6 + 0.55 * max(count, 2)), layout="constrained")
    dist_ax, mem_ax = figure.subplots(1, 2, width_ratios=(1, 1.4))
    names = [f"node {n.id}" for n in topo.nodes]

    matrix = np.array(topo.distance_matrix, dtype=float) if all(topo.distance_matrix) else np.empty((0, 0))
    if matrix.shape == (count, count) and count:
        image = dist_ax.imshow(matrix, cmap="viridis_r", vmin=min(10.0, matrix.min()),
                               vmax=max(matrix.max(), 20.0))
        middle = (image.norm.vmin + image.norm.vmax) / 2
        for i in range(count):
            for j in range(count):
                dist_ax.text(j, i, f"{matrix[i, j]:.0f}", ha="center", va="center",
                             color="white" if matrix[i, j] > middle else "black")
        dist_ax.set_xticks(range(count), names, rotation=45 if count > 4 else 0)
        dist_ax.set_yticks(range(count), names)
        figure.colorbar(image, ax=dist_ax, shrink=0.8, label="distance")
    else:
        dist_ax.text(0.5, 0.5, "no distances reported\n(Windows reports none)", ha="center",
                     va="center", transform=dist_ax.transAxes)
        dist_ax.set_xticks([])
        dist_ax.set_yticks([])
    dist_ax.set_title("node distances")

    y = np.arange(count)
    total = np.array([n.memory_total for n in topo.nodes], dtype=float)
    free = np.array([n.memory_free for n in topo.nodes], dtype=float)
    mem_ax.barh(y, total, color="#c6dbef", label="in use")
    mem_ax.barh(y, np.minimum(free, total) if total.any() else free, color="#4292c6", label="free")
    for i, node in enumerate(topo.nodes):
        pools = ", ".join(f"{page_size_name(s)}: {p.free}/{p.total}" for s, p in node.hugepages.items()
                          if p.total)
        if pools:
            mem_ax.annotate(f"huge pages free/total {pools}", (0, i), xytext=(4, 0),
                            textcoords="offset points", va="center", fontsize="small",
                            bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.8})
    cpus = [len(n.cpus) for n in topo.nodes]
    mem_ax.set_yticks(y, [f"{name}\n{k} CPU{'s' if k != 1 else ''}" for name, k in zip(names, cpus)])
    mem_ax.invert_yaxis()
    _bytes_axis(mem_ax.xaxis, float(max(total.max(initial=0), free.max(initial=0))))
    mem_ax.set_title("CPUs and memory per node")
    mem_ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    figure.suptitle(f"{topo.platform}: {count} node{'s' if count != 1 else ''}, "
                    f"{len(topo.allowed_cpus)} CPUs allowed, THP {topo.thp_mode}")
    return figure
