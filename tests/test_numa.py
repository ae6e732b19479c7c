"""Multi-node tests: they run inside guests with emulated NUMA nodes (python -m numamap.testing.vm)."""
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

import numamap
from numamap.testing.vm import current_topology

pytestmark = [pytest.mark.numa, pytest.mark.linux]
MiB = 1 << 20


def memory_nodes():
    return [n.id for n in numamap.topology().nodes if n.has_memory]


def only_in(name):
    guest = current_topology()
    if guest is None or guest.name != name:
        pytest.skip(f"runs in the '{name}' guest of the multi-node tier")
    return guest


@pytest.mark.parametrize("policy", ["preferred", "bind"])
def test_single_node_policies_place_every_page(policy):
    for node in memory_nodes():
        a = numamap.ones(8 * MiB // 8, node=node, policy=policy, populate=True, page_size="4K")
        placement = numamap.where(a)
        assert placement.fraction_on(node) == 1.0, (node, placement)
        assert a.base.verified is True


def test_interleave_is_round_robin_over_the_nodes_asked_for():
    nodes = memory_nodes()
    for chosen in (nodes, nodes[:2]):
        a = numamap.ones(4 * MiB // 8, policy="interleave", nodes=chosen, populate=True, page_size="4K")
        seen = numamap.where(a).nodes
        assert set(seen.tolist()) == set(chosen)
        start = chosen.index(int(seen[0]))
        expected = np.array([chosen[(start + i) % len(chosen)] for i in range(len(seen))])
        assert (seen == expected).all()


def test_bind_beyond_the_node_raises_and_preferred_spills():
    topo = numamap.topology()
    node = min((n for n in topo.nodes if n.has_memory), key=lambda n: n.memory_free)
    request = node.memory_free + 32 * MiB
    with pytest.raises(MemoryError, match=f"bound to nodes \\[{node.id}\\]"):
        numamap.empty(request, dtype=np.uint8, node=node.id, policy="bind", populate=True, page_size="4K")
    spilled = numamap.empty(request, dtype=np.uint8, node=node.id, policy="preferred", populate=True,
                            page_size="4K")
    placement = numamap.where(spilled)
    others = {n: b for n, b in placement.bytes_per_node.items() if n not in (node.id, -1)}
    assert placement.fraction_on(node.id) > 0.5 and sum(others.values()) > 0, placement
    assert spilled.base.verified is False and "NOT as requested" in spilled.base.summary()


def _numactl():
    text = subprocess.run(["numactl", "-H"], capture_output=True, text=True, check=True).stdout
    cpus = {int(n): tuple(int(c) for c in cs.split()) for n, cs in re.findall(r"^node (\d+) cpus:(.*)$", text, re.M)}
    sizes = {int(n): int(mb) for n, mb in re.findall(r"^node (\d+) size: (\d+) MB", text, re.M)}
    header = re.search(r"^node distances:\nnode\s+(.*)$", text, re.M).group(1).split()
    rows = {int(m.group(1)): tuple(int(x) for x in m.group(2).split())
            for m in re.finditer(r"^\s+(\d+):\s+([\d\s]+)$", text, re.M)}
    return cpus, sizes, [int(h) for h in header], rows


@pytest.mark.skipif(shutil.which("numactl") is None, reason="needs numactl (apt-get install numactl)")
def test_topology_matches_numactl_and_the_guest_layout():
    cpus, sizes, ids, rows = _numactl()
    topo = numamap.topology()
    assert list(topo.node_ids) == ids == sorted(cpus)
    for node in topo.nodes:
        assert node.cpus == cpus[node.id]
        assert node.distances == rows[node.id]
        assert node.has_cpus == bool(cpus[node.id])
        assert node.has_memory == (sizes[node.id] > 0)
    guest = current_topology()
    if guest is not None:
        assert len(topo.nodes) == guest.num_nodes
        assert topo.distance_matrix == guest.distances
        for node in topo.nodes:
            assert node.cpus == guest.cpus[node.id]
            assert node.has_memory == (guest.memory_mib[node.id] > 0)


def test_check_passes_and_reports_each_node(capsys):
    from numamap.cli import main

    assert main(["check"]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines()[1:]]
    reported = {int(r[0]) for r in rows if len(r) > 2 and r[0].isdigit() and r[2] in ("pass", "FAIL", "skip")}
    assert reported == set(memory_nodes()) and "FAIL" not in out


def test_migrate_moves_pages_between_nodes():
    first, second = memory_nodes()[:2]
    a = numamap.ones(4 * MiB // 8, node=first, populate=True, page_size="4K")
    assert numamap.where(a).fraction_on(first) == 1.0
    moved = numamap.migrate(a, second)
    assert moved.after.fraction_on(second) == 1.0 and moved.moved_bytes == a.nbytes
    assert numamap.where(a).fraction_on(second) == 1.0 and (a == 1).all()


def test_memoryless_node_is_refused():
    topo = numamap.topology()
    empty = [n.id for n in topo.nodes if not n.has_memory]
    if not empty:
        only_in("four")
    with pytest.raises(ValueError, match=f"node {empty[0]} is unknown or has no memory"):
        numamap.zeros(10, node=empty[0])


def test_section_views_on_different_nodes():
    first, second = memory_nodes()[:2]
    with numamap.Section(4 * MiB) as sec:
        low = sec.map(0, 2 * MiB, node=first, policy="bind", populate=True)
        high = sec.map(2 * MiB, 2 * MiB, node=second, policy="bind", populate=True)
        assert low.verified and high.verified
        assert numamap.where(low).fraction_on(first) == 1.0
        assert numamap.where(high).fraction_on(second) == 1.0


def test_per_node_hugepage_pool(hugepage_pool):
    only_in("hugepages")
    hugepage_pool(2048, 16, node=1)
    a = numamap.zeros(8 * MiB // 8, node=1, page_size="2M")
    placement = numamap.where(a)
    assert a.base.page_kind == "hugetlb" and placement.fraction_on(1) == 1.0
    assert placement.page_sizes == {2 * MiB: a.nbytes}
    with pytest.raises(MemoryError, match=r"node 0's 2M huge-page pool has 0 free.*node0/hugepages"):
        numamap.zeros(8 * MiB // 8, node=0, page_size="2M", strict=True)
    with pytest.raises(MemoryError, match="node 0's 2M huge-page pool"):
        numamap.zeros(8 * MiB // 8, node=0, page_size="2M", populate=True)
    b = numamap.zeros(8 * MiB // 8, node=0, populate=True)  # 'auto': node 0 has no pool, THP
    assert b.base.page_kind != "hugetlb" and numamap.where(b).fraction_on(0) == 1.0
