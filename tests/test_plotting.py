"""numamap.plotting, Placement.plot() and Topology.plot(): with matplotlib, and without it."""
import dataclasses
import re
import subprocess
import sys

import numpy as np
import pytest

import numamap
from numamap import plotting
from numamap.placement import Placement
from numamap.numa_topology import HugePagePool

KiB, MiB = 1 << 10, 1 << 20


@pytest.fixture
def plt():
    matplotlib = pytest.importorskip(
        "matplotlib", reason="matplotlib comes with the plot extra: " + plotting.INSTALL_HINT)
    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    yield pyplot
    pyplot.close("all")


@pytest.fixture
def no_matplotlib(monkeypatch):
    """Make ``import matplotlib`` fail, as it does where the plot extra is not installed."""
    for name in list(sys.modules):
        if name == "matplotlib" or name.startswith("matplotlib."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)


def synthetic_placement(nodes, page_sizes, page_size=4 * KiB, address=0x10000000):
    nodes = np.asarray(nodes, dtype=np.int32)
    return Placement(address, nodes.size * page_size, page_size, nodes, page_sizes)


def four_nodes(topo, distances=True):
    """The host's topology, made to look like a four-node machine."""
    rows = [[10, 21, 21, 31], [21, 10, 31, 21], [21, 31, 10, 21], [31, 21, 21, 10]]
    base = topo.nodes[0]
    nodes = tuple(dataclasses.replace(base, id=i, cpus=(2 * i, 2 * i + 1),
                                      distances=tuple(rows[i]) if distances else (),
                                      hugepages={2 * MiB: HugePagePool(2 * MiB, 8 * i, i)})
                  for i in range(4))
    return dataclasses.replace(topo, nodes=nodes, allowed_cpus=tuple(range(8)))


# -- without matplotlib ------------------------------------------------------------------------

def test_importing_numamap_does_not_import_matplotlib():
    code = "import sys, numamap, numamap.plotting; print('matplotlib' in sys.modules)"
    if sys.platform == "win32":
        pytest.skip("starts a subprocess interpreter")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_every_plot_says_how_to_install_matplotlib(no_matplotlib):
    arr = numamap.ones(64 * KiB, dtype="u1")
    calls = [lambda: plotting.plot_placement(arr), lambda: plotting.plot_topology(),
             lambda: numamap.where(arr).plot(), lambda: numamap.topology().plot()]
    for call in calls:
        with pytest.raises(ImportError, match=re.escape(plotting.INSTALL_HINT)):
            call()


# -- the data behind the pictures (no matplotlib needed) ---------------------------------------

def test_strip_columns_bins_long_ranges_and_marks_mixed_bins():
    row, per = plotting._strip_columns(np.array([0, 0, 1, 1, -1]), 8)
    assert per == 1 and row.tolist() == [0, 0, 1, 1, -1]
    nodes = np.repeat([0, 1], 5000)
    row, per = plotting._strip_columns(nodes, 100)
    assert per == 100 and row.size == 100
    assert set(row[:50].tolist()) == {0} and set(row[50:].tolist()) == {1}
    interleaved = np.tile([0, 1], 5000)
    row, _ = plotting._strip_columns(interleaved, 100)
    assert set(row.tolist()) == {plotting._MIXED}


def test_page_sizes_are_split_over_touched_bytes_only():
    # 4 pages touched on node 0, 4 untouched; the kernel reports 2M for 4 pages' worth.
    placement = synthetic_placement([0, 0, 0, 0, -1, -1, -1, -1], {4 * KiB: 16 * KiB, 2 * MiB: 16 * KiB})
    split, apportioned = plotting._by_page_size(placement)
    assert split[0] == {2 * MiB: 16 * KiB}
    assert split[-1] == {4 * KiB: 16 * KiB}
    assert not apportioned


def test_mixed_sizes_on_several_nodes_are_apportioned_and_add_up():
    placement = synthetic_placement([0, 0, 0, 1], {4 * KiB: 8 * KiB, 2 * MiB: 8 * KiB})
    split, apportioned = plotting._by_page_size(placement)
    assert apportioned
    assert sum(split[0].values()) == pytest.approx(12 * KiB)
    assert sum(split[1].values()) == pytest.approx(4 * KiB)
    assert split[0][2 * MiB] == pytest.approx(6 * KiB)


def test_plot_placement_refuses_other_objects():
    with pytest.raises(TypeError, match="Placement"):
        plotting.plot_placement([1, 2, 3])


# -- with matplotlib ---------------------------------------------------------------------------

@pytest.mark.numa_calls
def test_placement_plot_of_a_placed_array(plt):
    arr = numamap.zeros((512, 1024), node=0, populate=True)
    figure = numamap.where(arr).plot()
    bars, strip = figure.axes[:2]
    labels = [t.get_text() for t in bars.get_xticklabels()]
    assert labels == ["node 0"]
    heights = sum(p.get_height() for p in bars.patches)
    assert heights == pytest.approx(arr.nbytes, rel=0.01)
    assert [t.get_text() for t in strip.get_yticklabels()] == ["pages"]


@pytest.mark.numa_calls
def test_untouched_pages_get_their_own_bar(plt):
    arr = numamap.empty(4 * MiB, dtype="u1", node=0, page_size="4K")  # hugetlb pages would be faulted at once
    arr[: 1 * MiB] = 1
    figure = plotting.plot_placement(arr, title="a quarter written")
    bars = figure.axes[0]
    assert [t.get_text() for t in bars.get_xticklabels()] == ["node 0", "untouched"]
    assert bars.get_title() == "a quarter written"


def test_views_and_synthetic_placements_plot(plt):
    with numamap.Section(1 * MiB) as section:
        view = section.map(populate=True)
        assert len(plotting.plot_placement(view).axes) >= 2
    placement = synthetic_placement(np.repeat([0, 1, 2, -1], 3000), {4 * KiB: 12000 * 4 * KiB})
    figure = placement.plot()
    labels = [t.get_text() for t in figure.axes[0].get_xticklabels()]
    assert labels == ["node 0", "node 1", "node 2", "untouched"]


def test_partitioned_arrays_show_their_blocks(plt):
    arr = numamap.partitioned((2000, 512), fill=1.0)
    figure = plotting.plot_placement(arr)
    strip = figure.axes[1]
    assert [t.get_text() for t in strip.get_yticklabels()] == ["pages", "blocks"]
    layout = [(0, 0, arr.nbytes // 2), (1, arr.nbytes // 2, arr.nbytes)]
    figure = numamap.where(arr).plot(blocks=layout)
    assert len(figure.axes[1].lines) == 1  # one boundary between the two blocks


def test_topology_plot(plt):
    topo = numamap.topology()
    figure = topo.plot()
    distances = figure.axes[0]
    n = len(topo.nodes)
    assert [t.get_text() for t in distances.get_yticklabels()] == [f"node {i}" for i in topo.node_ids]
    assert len(distances.texts) == n * n


def test_topology_plot_of_four_nodes_with_and_without_distances(plt):
    topo = four_nodes(numamap.topology())
    figure = plotting.plot_topology(topo)
    assert len(figure.axes[0].texts) == 16
    assert "31" in [t.get_text() for t in figure.axes[0].texts]
    memory = figure.axes[-1] if len(figure.axes) == 2 else figure.axes[1]
    assert [t.get_text() for t in memory.get_yticklabels()][3] == "node 3\n2 CPUs"
    windows_like = four_nodes(numamap.topology(), distances=False)
    figure = windows_like.plot()
    assert "no distances reported" in figure.axes[0].texts[0].get_text()


def test_an_empty_range_plots_without_warnings(plt):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        figure = synthetic_placement([], {}).plot()
    assert figure.axes[0].get_title() == "Placement of 0 B"


# -- numamap bench -----------------------------------------------------------------------------

def _bench_results():
    from numamap import bench

    m = bench.Measure.of
    rows = [bench.Row("copy", "GB/s", m([10.0] * 7), m([30.0] * 7), m([40.0] * 7),
                      name="copy: NodePool vs 1 thread"),
            bench.Row("fill", "GB/s", m([4.0] * 7), m([2.0] * 7), name="fill: THP vs np.zeros"),
            bench.Row("gather", "M/s", m([1.0] * 7), m([0.5, 2.0, 0.6, 1.9, 0.7, 1.8, 1.0]),
                      name="gather: THP vs np.ones"),
            bench.Row("allocate 16 KiB", "us", m([1.0] * 7, higher_is_better=False),
                      m([90.0] * 7, higher_is_better=False), higher_is_better=False),
            bench.Row("small-array loop", "ns", m([1.0] * 7), None)]
    return bench.BenchResults(rows=rows, topology="", size=64 * MiB, repeat=5, quick=True,
                              date="2026-12-02T00:00:00", machine={})


def test_bench_plot_is_log_centred_on_one_with_a_legend_for_every_colour(plt, tmp_path):
    results = _bench_results()
    fig = results.plot(tmp_path / "bench.png")
    assert (tmp_path / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    low, high = ax.get_xlim()
    assert low * high == pytest.approx(1.0) and high >= 90  # symmetric: 1/90 fits as 90 would
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert sorted(labels) == sorted(r.name for r in results.rows if r.paired is not None)
    legend = ax.get_legend()
    texts = [t.get_text() for t in legend.get_texts()]
    assert any("numamap better" in t for t in texts) and any("numpy better" in t for t in texts)
    assert any("unstable" in t for t in texts) and any("limit" in t for t in texts)
    assert any("confidence interval" in t for t in texts)
    import matplotlib.colors as mcolors

    bar_colors = {mcolors.to_hex(p.get_facecolor()) for p in ax.patches}
    legend_colors = {mcolors.to_hex(h.get_facecolor()) for h in legend.legend_handles
                     if hasattr(h, "get_facecolor")}
    assert bar_colors <= legend_colors  # every bar colour is explained


def test_bench_plot_of_results_without_ratios(plt):
    from numamap import bench

    empty = bench.BenchResults(rows=[], topology="", size=MiB, repeat=5, quick=True,
                               date="2026-12-02T00:00:00", machine={})
    fig = empty.plot()
    assert fig.axes[0].get_xscale() == "log"
