"""Topology from synthetic sysfs trees (host tier) and from this machine."""
import os

import pytest
from hypothesis import given, strategies as st

import numamap
from numamap.numa_topology import _cpulist

pytestmark = pytest.mark.linux

GiB = 1 << 30


def make_tree(root, nodes, *, cpus_online=None, mems_allowed=None, cpus_allowed=None,
              pools=None, thp="always [madvise] never"):
    """Write a sysfs/procfs tree: ``nodes`` maps node id -> (cpulist, memory bytes)."""
    ndir = root / "sys/devices/system/node"
    ndir.mkdir(parents=True)
    ids = sorted(nodes)
    (ndir / "online").write_text(_cpulist(ids) + "\n")
    (ndir / "possible").write_text(f"0-{max(ids) + 1}\n")
    (ndir / "has_memory").write_text(_cpulist([n for n in ids if nodes[n][1]]) + "\n")
    (ndir / "has_cpu").write_text(_cpulist([n for n in ids if nodes[n][0]]) + "\n")
    for n in ids:
        cpulist, mem = nodes[n]
        d = ndir / f"node{n}"
        d.mkdir()
        (d / "cpulist").write_text(cpulist + "\n")
        (d / "meminfo").write_text(f"Node {n} MemTotal:       {mem // 1024} kB\n"
                                   f"Node {n} MemFree:        {mem // 2048} kB\n")
        (d / "distance").write_text(" ".join("10" if m == n else "21" for m in ids) + "\n")
        for kib, (total, free) in (pools or {}).get(n, {}).items():
            p = d / f"hugepages/hugepages-{kib}kB"
            p.mkdir(parents=True)
            (p / "nr_hugepages").write_text(f"{total}\n")
            (p / "free_hugepages").write_text(f"{free}\n")
    hp = root / "sys/kernel/mm/hugepages"
    for kib in (2048, 1048576):
        (hp / f"hugepages-{kib}kB").mkdir(parents=True)
        (hp / f"hugepages-{kib}kB/nr_hugepages").write_text("0\n")
        (hp / f"hugepages-{kib}kB/free_hugepages").write_text("0\n")
    thp_dir = root / "sys/kernel/mm/transparent_hugepage"
    thp_dir.mkdir(parents=True)
    (thp_dir / "enabled").write_text(thp + "\n")
    cpu = root / "sys/devices/system/cpu"
    cpu.mkdir(parents=True)
    (cpu / "online").write_text((cpus_online or ",".join(nodes[n][0] for n in ids if nodes[n][0])) + "\n")
    status = root / "proc/self"
    status.mkdir(parents=True)
    lines = []
    if cpus_allowed:
        lines.append(f"Cpus_allowed_list:\t{cpus_allowed}")
    if mems_allowed:
        lines.append(f"Mems_allowed_list:\t{mems_allowed}")
    (status / "status").write_text("\n".join(lines) + "\n")
    return str(root)


@pytest.mark.parametrize("count", [1, 2, 4, 8])
def test_n_nodes(tmp_path, count):
    nodes = {n: (f"{2 * n}-{2 * n + 1}", 4 * GiB) for n in range(count)}
    topo = numamap.topology(make_tree(tmp_path, nodes))
    assert topo.node_ids == tuple(range(count))
    assert topo.online_nodes == tuple(range(count))
    assert topo.possible_nodes == tuple(range(count + 1))
    for n in topo.nodes:
        assert n.cpus == (2 * n.id, 2 * n.id + 1)
        assert n.memory_total == 4 * GiB and n.memory_free == 2 * GiB
        assert n.has_memory and n.has_cpus
        assert len(n.distances) == count and n.distances[topo.node_ids.index(n.id)] == 10
    assert topo.thp_mode == "madvise"
    assert topo.allowed_cpus == tuple(range(2 * count))


def test_node_without_memory_and_node_without_cpus(tmp_path):
    topo = numamap.topology(make_tree(tmp_path, {0: ("0-1", 4 * GiB), 1: ("2-3", 0), 2: ("", 2 * GiB)}))
    assert topo.node(1).has_cpus and not topo.node(1).has_memory
    assert topo.node(2).has_memory and not topo.node(2).has_cpus and topo.node(2).cpus == ()
    assert "node" in repr(topo) and "-" in repr(topo).splitlines()[3]


def test_non_contiguous_ids(tmp_path):
    topo = numamap.topology(make_tree(tmp_path, {0: ("0-3", GiB), 2: ("4-7", GiB)}))
    assert topo.node_ids == (0, 2)
    assert topo.node(2).cpus == (4, 5, 6, 7)
    assert topo.distance_matrix == ((10, 21), (21, 10))
    with pytest.raises(ValueError, match="node 1 is not online"):
        topo.node(1)


def test_more_than_64_cpus_and_ranges(tmp_path):
    topo = numamap.topology(make_tree(tmp_path, {0: ("0-3,8-11,64-99", GiB), 1: ("4-7,12-63,100-127", GiB)},
                                      cpus_allowed="0-127", mems_allowed="0-1"))
    assert topo.node(0).cpus == (0, 1, 2, 3, 8, 9, 10, 11, *range(64, 100))
    assert len(topo.node(1).cpus) == 4 + 52 + 28
    assert topo.allowed_cpus == tuple(range(128))
    assert topo.allowed_memory_nodes == (0, 1)


def test_allowed_subsets(tmp_path):
    topo = numamap.topology(make_tree(tmp_path, {0: ("0-1", GiB), 1: ("2-3", GiB)},
                                      cpus_allowed="1-2", mems_allowed="1"))
    assert topo.allowed_cpus == (1, 2)
    assert topo.allowed_memory_nodes == (1,)
    assert topo.cpus_of(0) == (1,) and topo.cpus_of(1) == (2,)


def test_hugepage_pools_per_node(tmp_path):
    topo = numamap.topology(make_tree(tmp_path, {0: ("0", GiB), 1: ("1", GiB)},
                                      pools={1: {2048: (16, 12)}}))
    pool = topo.node(1).hugepages[2 << 20]
    assert (pool.total, pool.free, pool.free_bytes) == (16, 12, 12 * (2 << 20))
    assert 2 << 20 not in topo.node(0).hugepages
    assert topo.huge_page_sizes == (2 << 20, 1 << 30)


def test_no_node_directory_means_one_node(tmp_path):
    (tmp_path / "proc/self").mkdir(parents=True)
    (tmp_path / "proc/meminfo").write_text("MemTotal:  8000000 kB\nMemFree: 100 kB\nMemAvailable: 4000000 kB\n")
    (tmp_path / "sys/devices/system/cpu").mkdir(parents=True)
    (tmp_path / "sys/devices/system/cpu/online").write_text("0-5\n")
    topo = numamap.topology(str(tmp_path))
    assert topo.node_ids == (0,)
    assert topo.node(0).cpus == tuple(range(6))
    assert topo.node(0).memory_total == 8000000 * 1024
    assert topo.source == "fallback" and "one node 0 holds every CPU" in topo.notes[0]
    assert topo.thp_mode == "unsupported"


def empty_node_directory(root):
    """A tree whose sysfs has the node directory with nothing in it (some containers show this),
    and this machine's CPUs, so that threads can pin to them."""
    cpus = _cpulist(sorted(os.sched_getaffinity(0)))
    (root / "sys/devices/system/node").mkdir(parents=True)
    (root / "sys/devices/system/cpu").mkdir(parents=True)
    (root / "sys/devices/system/cpu/online").write_text(cpus + "\n")
    (root / "proc/self").mkdir(parents=True)
    (root / "proc/self/status").write_text(f"Cpus_allowed_list:\t{cpus}\n")
    (root / "proc/meminfo").write_text("MemTotal:  8000000 kB\nMemFree: 100 kB\nMemAvailable: 4000000 kB\n")
    return str(root)


def test_an_empty_node_directory_means_one_node(tmp_path):
    topo = numamap.topology(empty_node_directory(tmp_path))
    assert topo.node_ids == (0,) and topo.source == "fallback"
    assert topo.node(0).has_memory and topo.working_nodes == (0,)
    assert set(topo.cpus_of(0)) == os.sched_getaffinity(0)
    assert any("node" in note for note in topo.notes), topo.notes


def test_partitioned_and_nodepool_work_with_an_empty_node_directory(tmp_path, monkeypatch):
    from numamap import partitioning, workers

    tree = empty_node_directory(tmp_path)

    def synthetic():
        return numamap.topology(tree)

    monkeypatch.setattr(partitioning, "topology", synthetic)
    monkeypatch.setattr(workers, "topology", synthetic)
    arr = numamap.partitioned((64, 16), fill=2.0)
    assert [(node, s.start, s.stop) for node, s in numamap.blocks(arr)] == [(0, 0, 64)]
    with workers.NodePool() as pool:
        assert pool.nodes == (0,)
        assert pool.map_blocks(lambda block: float(block.sum()), arr) == [2.0 * arr.size]


def test_topology_is_immutable():
    topo = numamap.topology()
    with pytest.raises(AttributeError):
        topo.nodes = ()
    with pytest.raises(TypeError):
        topo.nodes[0].hugepages[123] = None


def test_this_machine_matches_sysfs():
    topo = numamap.topology()
    assert topo.base_page_size == os.sysconf("SC_PAGE_SIZE")
    assert topo.allocation_granularity == topo.base_page_size
    assert set(topo.allowed_cpus) == os.sched_getaffinity(0)
    assert sum(len(n.cpus) for n in topo.nodes) == len(os.listdir("/sys/devices/system/cpu")) - sum(
        1 for d in os.listdir("/sys/devices/system/cpu") if not d.startswith("cpu") or not d[3:].isdigit())
    html = topo._repr_html_()
    assert html.startswith("<table>") and "<td>0</td>" in html


@given(st.sets(st.integers(0, 300)))
def test_cpulist_round_trip(cpus):
    from numamap._linux import parse_cpulist

    assert parse_cpulist(_cpulist(cpus)) == tuple(sorted(cpus))
