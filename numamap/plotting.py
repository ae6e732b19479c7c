"""Pictures of what numamap reports: where an array's pages are, and the machine's topology.

matplotlib is optional (``pip install 'numamap[plot]'``; from a clone,
``pip install -e '.[plot]'``); this module imports it only when a function is called, and
without it every function raises ImportError saying what to install.
Each function returns a :class:`matplotlib.figure.Figure`. In a notebook it shows once, as the
cell's value (end the line with ``;`` or assign it to keep it from showing); in a script, save
it with ``fig.savefig("placement.png")``, or call ``matplotlib.pyplot.show()`` with an
interactive backend.

:meth:`numamap.Placement.plot` and :meth:`numamap.Topology.plot` call these functions.
"""
from __future__ import annotations

import numpy as np

from ._units import format_bytes, page_size_name

INSTALL_HINT = "pip install 'numamap[plot]', or from a clone: pip install -e '.[plot]'"

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
    obj : numamap.Placement, numamap.View or numpy.ndarray
        A :class:`numamap.Placement`, or something :func:`numamap.where` takes, which is
        asked where its pages are now.
    blocks : sequence of tuple, optional
        The requested layout, as ``(node, start, stop)`` in byte offsets from the start of the
        range; drawn as a second strip above the one showing where the pages are. Found by
        itself for arrays from :func:`numamap.partitioned` and their Views.
    title : str, optional
        The figure's title; by default the size of the range.
    figsize : tuple of float, optional
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
    topo : numamap.Topology, optional
        What to draw; :func:`numamap.topology` by default.
    figsize : tuple of float, optional
        Passed to :func:`matplotlib.pyplot.figure`.

    Returns
    -------
    matplotlib.figure.Figure
        Left: the distances (10 is local; larger is farther). Middle: each node's memory, the
        free part darker, labelled with its CPU count and huge-page pools. Right, where the
        firmware publishes an HMAT or the kernel has memory tiers: each node's read bandwidth,
        labelled with its read latency and tier (see docs/tiers.md).
    """
    _pyplot()  # ImportError naming the extra, before anything else
    if topo is None:
        from .numa_topology import topology

        topo = topology()
    count = len(topo.nodes)
    tiers = topo.has_hmat or topo.has_tiers
    figure = _new_figure(figsize=figsize or (12.0 if tiers else 8.0, 1.6 + 0.55 * max(count, 2)),
                         layout="constrained")
    if tiers:
        dist_ax, mem_ax, tier_ax = figure.subplots(1, 3, width_ratios=(1, 1.4, 1.2))
        _tier_panel(tier_ax, topo)
    else:
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


def _tier_panel(ax, topo) -> None:
    """Read bandwidth per node (HMAT), each bar labelled with read latency and memory tier."""
    y = np.arange(len(topo.nodes))
    bandwidth = np.array([(n.read_bandwidth or 0) / 1e9 for n in topo.nodes])
    tiers = sorted({n.tier for n in topo.nodes if n.tier is not None})
    colours = ["#08519c", "#6baed6", "#fd8d3c", "#a63603"]
    for i, node in enumerate(topo.nodes):
        colour = colours[min(tiers.index(node.tier), len(colours) - 1)] if node.tier in tiers else "#bdbdbd"
        ax.barh(i, bandwidth[i], color=colour)
        label = ", ".join(filter(None, (
            f"{node.read_latency} ns" if node.read_latency is not None else "",
            f"tier {node.tier}" if node.tier is not None else "",
            "" if node.cpus else "no CPUs")))
        ax.annotate(label or "no figures", (bandwidth[i], i), xytext=(4, 0), textcoords="offset points",
                    va="center", fontsize="small")
    ax.set_yticks(y, [f"node {n.id}" for n in topo.nodes])
    ax.invert_yaxis()
    if topo.has_hmat:
        ax.set_xlim(0, bandwidth.max() * 1.6 or 1)
        ax.set_xlabel("read bandwidth, GB/s (HMAT, best initiators)")
    else:
        ax.set_xlim(0, 1)
        ax.set_xticks([])
        ax.set_xlabel("no HMAT figures: the firmware publishes none")
    ax.set_title("memory tiers")


# -- numamap bench -----------------------------------------------------------------------------

_BETTER, _WORSE, _UNSTABLE = "#2a9d8f", "#e76f51", "#bdbdbd"
_RATIO_TICKS = (1e-3, 1e-2, 0.1, 0.5, 1.0, 2.0, 10.0, 100.0, 1e3)


def _ratio_label(value: float, _pos=None) -> str:
    return f"{value:g}" if value >= 1 else f"1/{1 / value:g}"


def plot_bench(results, *, figsize=None):
    """Plot the ratios of :func:`numamap.bench.run` on a log axis centred on 1.

    Parameters
    ----------
    results : numamap.bench.BenchResults
    figsize : tuple of float, optional
        Passed to :func:`matplotlib.pyplot.figure`.

    Returns
    -------
    matplotlib.figure.Figure
        One bar per row from 1 to its ratio (numamap / numpy; right of 1, numamap did better),
        with the ratio's 95% confidence interval; an unstable row shows its interval only. A
        diamond marks numamap as a share of the machine's limit where the row has one.
    """
    _pyplot()  # ImportError naming the extra, before anything else
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    rows = [r for r in results.rows if r.paired is not None]
    figure = _new_figure(figsize=figsize or (8.0, 1.9 + 0.42 * max(len(rows), 1)), layout="constrained")
    ax = figure.add_subplot()
    y = np.arange(len(rows))[::-1]
    extent, used = 2.0, set()
    for yy, row in zip(y, rows):
        p = row.paired
        if p.stable:
            kind = "better" if p.median >= 1 else "worse"
            ax.barh(yy, p.median - 1, left=1, height=0.6, color=_BETTER if kind == "better" else _WORSE)
            ax.errorbar(p.median, yy, xerr=[[p.median - p.ci_low], [p.ci_high - p.median]],
                        fmt="none", ecolor="black", capsize=3)
            used.update((kind, "interval"))
        else:
            ax.barh(yy, p.ci_high - p.ci_low, left=p.ci_low, height=0.6, color=_UNSTABLE,
                    hatch="//", edgecolor="grey")
            used.add("unstable")
        extent = max(extent, p.ci_high, 1 / p.ci_low if p.ci_low > 0 else extent)
        if row.of_limit is not None and row.of_limit > 0:
            ax.scatter([row.of_limit], [yy], marker="D", color="black", zorder=3)
            extent = max(extent, 1 / row.of_limit)
            used.add("limit")
    extent *= 1.25
    ax.set_xscale("log")
    ax.set_xlim(1 / extent, extent)  # symmetric about 1: as far left for 1/2 as right for 2
    ax.xaxis.set_major_locator(FixedLocator([t for t in _RATIO_TICKS if 1 / extent <= t <= extent]))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(_ratio_label))
    ax.axvline(1.0, color="grey", linestyle="--", linewidth=1)
    ax.set_yticks(y, [r.name for r in rows])
    ax.set_ylim(-0.7, max(len(rows), 1) - 0.3)
    ax.set_xlabel("numamap / numpy (log scale; right of 1: numamap did better)")
    ax.set_title(f"numamap bench {results.date[:10]}: {format_bytes(results.size)} arrays, "
                 f"medians of >= {results.repeat} alternating rounds")
    if not rows:
        ax.text(0.5, 0.5, "no row has both sides", ha="center", va="center", transform=ax.transAxes)
    legend = {"better": Patch(color=_BETTER, label="numamap better: ratio (median)"),
              "worse": Patch(color=_WORSE, label="numpy better: ratio (median)"),
              "interval": Line2D([], [], color="black", marker="|", markersize=8,
                                 label="95% confidence interval"),
              "unstable": Patch(facecolor=_UNSTABLE, hatch="//", edgecolor="grey",
                                label="unstable: the interval, no ratio"),
              "limit": Line2D([], [], color="black", marker="D", linestyle="none",
                              label="numamap / the machine's limit")}
    ax.legend(handles=[h for k, h in legend.items() if k in used], fontsize="small",
              loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    return figure
