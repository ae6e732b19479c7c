"""Memory tiers: HMAT figures in the topology, and the node selectors that follow them.

Host tier: synthetic sysfs trees with HMAT variants, the selection rules on synthetic facts,
and every entry point taking a selector on this machine. Multi-node tier (``numa``): in each
guest, the figures against sysfs and each selector from each CPU against move_pages; the
``hmat`` guest (python -m numamap.testing.vm --topology hmat) has the firmware's figures.
"""
import os
import threading

import numpy as np
import pytest

import numamap
from numamap import node_selectors as selectors
from numamap._backend import backend
from numamap._records import NodeFacts, TopologyFacts
from numamap.request import check_request
from numamap.node_selectors import SELECTORS, choose
from numamap.testing.vm import current_topology
from test_topology import make_tree

MiB = 1 << 20


# -- synthetic trees ------------------------------------------------------------------------------

def add_hmat(root, figures, *, cpu_figures=None, tiers=None):
    """Write HMAT files: ``figures`` maps node -> (initiators, read MB/s, write MB/s, read ns, write ns)."""
    for access, table in (("access0", figures), ("access1", cpu_figures or {})):
        for node, (initiators, rbw, wbw, rlat, wlat) in table.items():
            d = root / f"sys/devices/system/node/node{node}/{access}/initiators"
            d.mkdir(parents=True)
            for name, value in (("read_bandwidth", rbw), ("write_bandwidth", wbw),
                                ("read_latency", rlat), ("write_latency", wlat)):
                if value is not None:
                    (d / name).write_text(f"{value}\n")
            for initiator in initiators:
                (d / f"node{initiator}").mkdir()  # stands in for the kernel's symlink
    for tier, nodelist in (tiers or {}).items():
        d = root / f"sys/devices/virtual/memory_tiering/memory_tier{tier}"
        d.mkdir(parents=True)
        (d / "nodelist").write_text(nodelist + "\n")


THREE = {0: ("0", 4 << 30), 1: ("1", 4 << 30), 2: ("", 16 << 30)}
GUEST_LIKE = {0: ((0,), 20480, 20000, 80, 90), 1: ((1,), 20480, 20000, 80, 90),
              2: ((0, 1), 4096, 4000, 250, 260)}


@pytest.mark.linux
def test_hmat_figures_are_read_in_bytes_per_second_and_ns(tmp_path):
    root = make_tree(tmp_path, THREE)
    add_hmat(tmp_path, GUEST_LIKE, cpu_figures={2: ((0, 1), 3000, None, 300, None)},
             tiers={4: "0-1", 5: "2"})
    facts = backend.read_topology(root)
    n0, n1, n2 = facts.nodes
    assert (n0.read_bandwidth, n0.write_bandwidth, n0.read_latency, n0.write_latency) == \
        (20480 * 10**6, 20000 * 10**6, 80, 90)
    assert n0.initiators == (0,) and n2.initiators == (0, 1)
    assert n2.read_bandwidth == 4096 * 10**6 and n2.write_latency == 260
    assert (n2.cpu_read_bandwidth, n2.cpu_read_latency) == (3000 * 10**6, 300)
    assert n0.cpu_read_bandwidth is None
    assert (n0.tier, n1.tier, n2.tier) == (4, 4, 5)
    topo = numamap.topology(root)
    assert topo.has_hmat and topo.has_tiers
    node = topo.node(2)
    assert (node.read_bandwidth, node.read_latency, node.tier, node.initiators) == \
        (4096 * 10**6, 250, 5, (0, 1))
    text = repr(topo)
    assert "bandwidth r/w" in text and "20.5 GB/s/20 GB/s" in text and "250 ns/260 ns" in text
    assert "tier" in text.splitlines()[0]
    html = topo._repr_html_()
    assert "<th>latency r/w</th>" in html and "4.1 GB/s" in html


@pytest.mark.linux
def test_missing_figures_read_as_none_never_zero(tmp_path):
    root = make_tree(tmp_path, THREE)
    # a node with only latencies, one with a 0 (the kernel's "not given"), one with none at all
    add_hmat(tmp_path, {0: ((0,), None, None, 80, 90), 1: ((1,), 0, 0, 0, 0)})
    n0, n1, n2 = backend.read_topology(root).nodes
    assert n0.read_bandwidth is None and n0.read_latency == 80
    assert (n1.read_bandwidth, n1.read_latency, n1.write_bandwidth, n1.write_latency) == (None,) * 4
    assert (n2.read_bandwidth, n2.initiators, n2.tier) == (None, (), None)
    topo = numamap.topology(root)
    assert not topo.has_tiers and "tier" not in repr(topo).splitlines()[0]


@pytest.mark.linux
def test_a_tree_without_hmat_has_no_tier_columns(tmp_path):
    topo = numamap.topology(make_tree(tmp_path, THREE))
    assert not topo.has_hmat and not topo.has_tiers
    assert repr(topo).splitlines()[0].split() == ["node", "cpus", "memory", "free", "huge", "pages",
                                                  "free/total", "distances"]
    assert all(n.read_bandwidth is None and n.tier is None for n in topo.nodes)


@pytest.mark.linux
def test_plot_shows_the_tiers(tmp_path):
    pytest.importorskip(
        "matplotlib", reason="matplotlib comes with the plot extra: pip install 'numamap[plot]', "
                      "or from a clone: pip install -e '.[plot]'")
    root = make_tree(tmp_path, THREE)
    add_hmat(tmp_path, GUEST_LIKE, tiers={4: "0-1", 5: "2"})
    figure = numamap.topology(root).plot()
    titles = [ax.get_title() for ax in figure.axes]
    assert "memory tiers" in titles
    tier_ax = figure.axes[titles.index("memory tiers")]
    widths = [patch.get_width() for patch in tier_ax.patches]
    assert widths == pytest.approx([20.48, 20.48, 4.096])
    labels = [t.get_text() for t in tier_ax.texts]
    assert "250 ns, tier 5, no CPUs" in labels
    plain = numamap.topology(make_tree(tmp_path / "plain", THREE)).plot()
    assert "memory tiers" not in [ax.get_title() for ax in plain.axes]


# -- the selection rules, on synthetic facts --------------------------------------------------------

def facts(nodes, *, platform="linux"):
    return TopologyFacts(tuple(nodes), tuple(n.id for n in nodes), tuple(n.id for n in nodes), (0, 1, 2),
                         tuple(n.id for n in nodes if n.has_memory), "madvise", 4096, 4096, (), "test",
                         (), platform)


def node(id, cpus, free, distances, *, bw=None, lat=None, cpu_bw=None, memory=True):
    return NodeFacts(id, cpus, free * 2, free, distances, (), memory, bool(cpus), read_bandwidth=bw,
                     read_latency=lat, cpu_read_bandwidth=cpu_bw)


GB = 10**9
DIST = ((10, 21, 28), (21, 10, 28), (28, 28, 10))
HMAT = facts([node(0, (0,), 1 * GB, DIST[0], bw=20 * GB, lat=80),
              node(1, (1,), 2 * GB, DIST[1], bw=20 * GB, lat=80),
              node(2, (), 9 * GB, DIST[2], bw=4 * GB, lat=250)])


@pytest.mark.parametrize("cpu", [0, 1])
def test_hmat_selectors_from_each_cpu(cpu):
    memory = {0, 1, 2}
    for selector in ("local", "fastest", "nearest"):
        assert choose(selector, HMAT, memory, cpu).node == cpu, selector
    assert choose("slowest", HMAT, memory, cpu).node == 2
    assert choose("largest", HMAT, memory, cpu).node == 2
    reason = choose("fastest", HMAT, memory, cpu).reason
    assert f"CPU {cpu} (node {cpu})" in reason and "highest read bandwidth (20 GB/s" in reason
    assert "tied with nodes" in reason  # nodes 0 and 1 tie; the calling CPU's node is nearer


def test_ties_go_to_the_nearest_node_then_the_lowest_id():
    flat = facts([node(0, (0,), GB, (10, 30, 20), bw=5 * GB), node(1, (1,), GB, (30, 10, 20), bw=5 * GB),
                  node(2, (), GB, (20, 20, 10), bw=5 * GB)])
    assert choose("fastest", flat, {1, 2}, 0).node == 2  # node 0 is not allowed: 2 is nearer than 1
    assert choose("largest", flat, {0, 1, 2}, 1).node == 1
    equal = facts([node(0, (), GB, (10, 20, 20)), node(1, (1,), GB, (20, 10, 20)),
                   node(2, (2,), GB, (20, 20, 10))])
    assert choose("nearest", equal, {0, 2}, 1).node == 0  # equal distances: the lowest id


def test_access1_figures_win_over_access0():
    gpu_best = facts([node(0, (0,), GB, DIST[0], bw=20 * GB, cpu_bw=10 * GB),
                      node(1, (1,), GB, DIST[1], bw=15 * GB),
                      node(2, (), GB, DIST[2], bw=30 * GB, cpu_bw=5 * GB)])
    assert choose("fastest", gpu_best, {0, 1, 2}, 0).node == 1
    assert choose("slowest", gpu_best, {0, 1, 2}, 0).node == 2


def test_without_hmat_distances_decide():
    plain = facts([node(0, (0,), GB, DIST[0]), node(1, (1,), GB, DIST[1]), node(2, (), 5 * GB, DIST[2])])
    for cpu in (0, 1):
        assert choose("fastest", plain, {0, 1, 2}, cpu).node == cpu
        assert choose("nearest", plain, {0, 1, 2}, cpu).node == cpu
        choice = choose("slowest", plain, {0, 1, 2}, cpu)
        assert choice.node == 2 and "distance decides" in choice.reason
    assert choose("slowest", plain, {0, 1}, 0).node == 1


def test_a_node_without_a_figure_is_left_out_and_said_so():
    partial = facts([node(0, (0,), GB, DIST[0], lat=80), node(1, (1,), GB, DIST[1], lat=60),
                     node(2, (), GB, DIST[2])])
    choice = choose("nearest", partial, {0, 1, 2}, 0)
    assert choice.node == 1 and "nodes [2] publish no figure" in choice.reason


def test_local_on_a_cpu_whose_node_has_no_memory_takes_the_nearest_node_with_memory():
    four = facts([node(0, (0,), GB, (10, 21, 12, 28)), node(1, (1,), GB, (21, 10, 23, 17)),
                  node(2, (2,), 0, (12, 23, 10, 26), memory=False), node(3, (), GB, (28, 17, 26, 10))])
    choice = choose("local", four, {0, 1, 3}, 2)
    assert choice.node == 0 and "has no memory" in choice.reason and "distance 12" in choice.reason


def test_without_figures_or_distances_only_local_and_largest_work():
    windows = facts([node(0, (0,), GB, ()), node(1, (1,), 3 * GB, ())], platform="windows")
    assert choose("local", windows, {0, 1}, 1).node == 1
    assert choose("largest", windows, {0, 1}, 0).node == 1
    for selector in ("fastest", "nearest", "slowest"):
        with pytest.raises(NotImplementedError, match=r"HMAT.*SLIT.*windows does not publish"):
            choose(selector, windows, {0, 1}, 0)
    one = facts([node(0, (0, 1), GB, ())], platform="windows")
    assert choose("slowest", one, {0}, 1).node == 0  # one node: nothing to choose between


def test_bad_selectors_name_the_choices():
    with pytest.raises(TypeError, match=r"node='fast' is neither a node id nor a selector.*'fastest'"):
        check_request("fast", "preferred", None)
    with pytest.raises(TypeError, match=r"each entry of nodes='near'"):
        numamap.partitioned((4096, 2), nodes=["near"])
    with pytest.raises(TypeError, match="int node id or a selector"):
        numamap.empty(10, node=1.0)


# -- on this machine ------------------------------------------------------------------------------------

@pytest.mark.linux
def test_current_cpu_is_the_pinned_cpu():
    seen = {}

    def run(cpu):
        os.sched_setaffinity(0, {cpu})
        seen[cpu] = backend.current_cpu()

    for cpu in sorted(os.sched_getaffinity(0))[:4]:
        thread = threading.Thread(target=run, args=(cpu,))
        thread.start()
        thread.join()
    assert seen and all(cpu == got for cpu, got in seen.items())


def test_windows_current_cpu_says_what_is_missing():
    from numamap import _windows

    if _windows._available("GetCurrentProcessorNumberEx"):
        pytest.skip("the export is present: the Windows tier checks the call itself")
    with pytest.raises(NotImplementedError, match="GetCurrentProcessorNumberEx"):
        _windows.current_cpu()


def test_a_thread_pinned_within_one_node_has_a_node_without_current_cpu(monkeypatch):
    def missing():
        raise NotImplementedError("GetCurrentProcessorNumberEx is not exported")

    monkeypatch.setattr(backend, "current_cpu", missing)
    topo = numamap.topology()
    first = topo.nodes[0]
    if set(backend.allowed_cpus()) <= set(first.cpus):
        cpu, how = selectors.calling_cpu()
        assert how == "is pinned to" and cpu in first.cpus
        assert "is pinned to CPU" in selectors.resolve("local").reason
    else:
        with pytest.raises(NotImplementedError, match="not pinned within one node"):
            selectors.calling_cpu()


@pytest.mark.numa_calls
@pytest.mark.parametrize("selector", SELECTORS)
def test_every_entry_point_takes_a_selector(selector):
    expected = selectors.resolve(selector).node
    a = numamap.zeros(1 << 16, node=selector, populate=True)
    assert a.base.node == expected and a.base.request.selector == selector
    assert f"node chosen by {selector!r}: the calling thread" in a.base.summary()
    with numamap.Section(1 << 16) as section:
        view = section.map(node=selector)
        assert view.node == expected and selector in view.summary()
    b = numamap.empty(1 << 12, policy="bind", nodes=[selector])
    assert b.base.nodes == (expected,) and b.base.request.selector == selector
    if numamap.PLATFORM == "linux":  # Windows cannot move pages (NotImplementedError, documented)
        assert numamap.migrate(a, selector).node == expected
    assert a.base.request.selector == selector
    p = numamap.partitioned((4096, 2), nodes=[selector])
    assert [n for n, _ in numamap.blocks(p)] == [expected]
    if backend.PLATFORM == "linux":
        with numamap.policy(selector, min_size=0) as manager:
            c = np.ones(1 << 16)
        assert manager.node == expected and numamap.handler_name(c) == f"numamap_node{expected}"
    from numamap.workers import NodePool

    if expected in numamap.topology().working_nodes:
        with NodePool(nodes=[selector], threads_per_node=1) as pool:
            assert pool.nodes == (expected,)


# -- multi-node tier -----------------------------------------------------------------------------------

def _sysfs_figure(node, name):
    path = f"/sys/devices/system/node/node{node}/access0/initiators/{name}"
    try:
        with open(path) as handle:
            value = int(handle.read())
    except OSError:
        return None
    return value or None


def _on_cpu(cpu, fn):
    """``fn()`` in a new thread pinned to ``cpu``; its result, or its exception re-raised."""
    out = {}

    def run():
        try:
            os.sched_setaffinity(0, {cpu})
            out["value"] = fn()
        except BaseException as exc:  # re-raised in the test's thread
            out["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if "error" in out:
        raise out["error"]
    return out["value"]


def _guest():
    guest = current_topology()
    if guest is None:
        pytest.skip("runs in the guests of the multi-node tier (python -m numamap.testing.vm)")
    return guest


def _expected(guest, cpu, selector):
    """The node each selector should choose, from the guest's declared layout."""
    home = guest.node_of_cpu(cpu)
    memory = guest.memory_nodes

    def near(n):
        return (guest.distances[home][n], n)

    if selector == "local":
        return home if home in memory else min(memory, key=near)
    if guest.hmat:  # the kernel publishes each target's best initiator's figures
        bandwidth = {t: max(e.bandwidth_mbps for e in guest.hmat if e.target == t) for t in memory}
        latency = {t: min(e.latency_ns for e in guest.hmat if e.target == t) for t in memory}
        key = {"fastest": lambda n: (-bandwidth[n], *near(n)),
               "nearest": lambda n: (latency[n], *near(n)),
               "slowest": lambda n: (bandwidth[n], *near(n))}[selector]
        return min(memory, key=key)
    if selector == "slowest":
        return min(memory, key=lambda n: (-guest.distances[home][n], n))
    return min(memory, key=near)


@pytest.mark.numa
@pytest.mark.linux
def test_figures_match_sysfs():
    guest = _guest()
    topo = numamap.topology()
    for n in topo.nodes:
        for name in ("read_bandwidth", "write_bandwidth"):
            raw = _sysfs_figure(n.id, name)
            assert getattr(n, name) == (None if raw is None else raw * 10**6), (n.id, name)
        for name in ("read_latency", "write_latency"):
            assert getattr(n, name) == _sysfs_figure(n.id, name), (n.id, name)
    assert topo.has_hmat == bool(guest.hmat)
    if guest.hmat:
        slow = [n for n in topo.nodes if not n.cpus]
        fast = [n for n in topo.nodes if n.cpus]
        for s in slow:
            assert all(s.read_bandwidth < f.read_bandwidth and s.read_latency > f.read_latency for f in fast)
        figure = guest.hmat_entry(0, 0)
        assert topo.node(0).read_latency == figure.latency_ns
        assert topo.node(0).read_bandwidth == figure.bandwidth_mbps * 10**6


@pytest.mark.numa
@pytest.mark.linux
@pytest.mark.parametrize("selector", ["local", "fastest", "nearest", "slowest"])
def test_each_selector_from_each_cpu_places_where_move_pages_says(selector):
    guest = _guest()
    for cpu in range(guest.num_cpus):
        expected = _expected(guest, cpu, selector)

        def place():
            a = numamap.ones(4 * MiB // 8, node=selector, populate=True, page_size="4K")
            return a.base.node, numamap.where(a).fraction_on(expected), a.base.summary()

        got, fraction, summary = _on_cpu(cpu, place)
        assert got == expected and fraction == 1.0, (cpu, selector, summary)
        assert f"runs on CPU {cpu}" in summary
        if guest.name == "hmat":  # the "done when", said plainly
            assert got == (2 if selector == "slowest" else guest.node_of_cpu(cpu))


@pytest.mark.numa
@pytest.mark.linux
def test_largest_places_on_the_node_it_names():
    guest = _guest()
    for cpu in range(guest.num_cpus):
        a = _on_cpu(cpu, lambda: numamap.ones(4 * MiB // 8, node="largest", populate=True, page_size="4K"))
        assert numamap.where(a).fraction_on(a.base.node) == 1.0
        assert "has the most free memory" in a.base.summary()


@pytest.mark.numa
@pytest.mark.linux
def test_policy_local_places_numpy_allocations_on_the_callers_node():
    guest = _guest()
    shared = numamap.policy("local")  # made here, entered on every CPU
    for cpu in range(guest.num_cpus):
        expected = _expected(guest, cpu, "local")

        def allocate():
            with numamap.policy(node="local"):
                mine = np.ones(8 * MiB // 8)
            with shared:
                theirs = np.ones(8 * MiB // 8)
            return mine, theirs

        mine, theirs = _on_cpu(cpu, allocate)
        assert numamap.where(mine).fraction_on(expected) == 1.0, (cpu, numamap.where(mine))
        assert numamap.where(theirs).fraction_on(expected) == 1.0, (cpu, numamap.where(theirs))
        assert numamap.handler_name(theirs) == f"numamap_node{expected}"


@pytest.mark.numa
@pytest.mark.linux
def test_policy_local_in_nodepool_workers_uses_each_workers_node():
    from numamap.workers import NodePool

    _guest()
    shared = numamap.policy("local")

    def work():
        with shared:
            a = np.ones(8 * MiB // 8)
        with numamap.policy(node="local"):
            b = np.ones(8 * MiB // 8)
        return a, b

    with NodePool(policy=False) as pool:
        for node in pool.nodes:
            a, b = pool.submit(node, work).result()
            assert numamap.where(a).fraction_on(node) == 1.0, (node, numamap.where(a))
            assert numamap.where(b).fraction_on(node) == 1.0, (node, numamap.where(b))
