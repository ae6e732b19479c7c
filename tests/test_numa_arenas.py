"""Node arenas in the multi-node tier: arrays of every size land on the node asked for.

Run in the guests (``python -m numamap.testing.vm --topology two -- python -m pytest -m numa
tests/test_numa_arenas.py``, and ``four``, whose node 3 has memory and no CPU). Placement is read
with move_pages (``numamap.where``) over each array's own pages; a 16-byte array shares its page
with other blocks of the same arena, which the arena placed on the same node, so the check
holds for it too.
"""
import os
import threading

import numpy as np
import pytest

import numamap
from numamap import block_info, policy

pytestmark = [pytest.mark.numa, pytest.mark.linux]

KiB, MiB = 1 << 10, 1 << 20
#: The sizes of the issue (16 bytes, 8 KiB, 800 KiB), and a block well past the small ones.
SIZES = (16, 8 * KiB, 800 * KiB, 4 * MiB)


def memory_nodes() -> list[int]:
    """Every node with memory, those without CPUs included."""
    return [n.id for n in numamap.topology().nodes if n.has_memory]


def on_node(arr, node) -> bool:
    placement = numamap.where(arr)
    return placement.fraction_on(node) == 1.0 and placement.touched_fraction == 1.0


def made_under_policy(node, page_size="auto") -> dict:
    """numpy's arrays of each size under ``policy(node)``, every byte written."""
    with policy(node, page_size=page_size):
        made = {f"ones({n})": np.ones(n, np.uint8) for n in SIZES}
        made["empty(16), filled"] = np.empty(2)
        made["empty(16), filled"][:] = 1.0
        made["ufunc 8 KiB"] = np.arange(KiB, dtype=np.float64) * 2
        made["concatenate 800 KiB"] = np.concatenate([np.ones(50 * KiB), np.zeros(50 * KiB)])
    return made


def test_the_guest_has_several_memory_nodes():
    nodes = memory_nodes()
    assert len(nodes) >= 2, numamap.topology()
    from numamap.testing.vm import current_topology

    guest = current_topology()
    if guest is not None:
        assert nodes == list(guest.memory_nodes)  # the CPU-less node of 'four' included


@pytest.mark.parametrize("page_size", ["auto", "4K"])
def test_small_and_large_arrays_land_on_the_policys_node(page_size):
    for node in memory_nodes():
        made = made_under_policy(node, page_size)
        for what, arr in made.items():
            info = block_info(arr)
            assert info is not None and info.node == node, (node, what, info)
            assert info.kind == ("small" if arr.nbytes <= 256 * KiB else "large"), (what, info)
            assert on_node(arr, node), (node, what, numamap.where(arr))


def test_hugetlb_arenas_land_on_the_policys_node(hugepage_pool):
    nodes = memory_nodes()
    for node in nodes:
        hugepage_pool(2048, 16, node=node)  # a pool on every node: hugetlb chunks are bound
    for node in nodes:
        made = made_under_policy(node, "2M")
        for what, arr in made.items():
            info = block_info(arr)
            assert (info.node, info.page_kind) == (node, "hugetlb"), (node, what, info)
            assert on_node(arr, node), (node, what, numamap.where(arr))
        del made
    numamap.trim()  # the pools shrink back after the test


def test_numamap_constructors_carve_each_nodes_arena():
    for node in memory_nodes():
        arrays = {"ones(256)": numamap.ones(256, node=node)}
        for n in SIZES:
            arrays[f"zeros({n})"] = numamap.zeros(n, dtype=np.uint8, node=node)
            arrays[f"full({n})"] = numamap.full(n, 3, dtype=np.uint8, node=node)
        arrays["ones_like"] = numamap.ones_like(np.empty((3, 5)), node=node)
        for what, arr in arrays.items():
            block = arr.base
            assert isinstance(block, numamap.ArenaBlock), (what, type(block))
            assert block.node == node and block.nodes == (node,), (what, block)
            arr[...] = 1  # zeros leaves a reused block touched, a fresh one maybe not
            assert on_node(arr, node), (node, what, numamap.where(arr))
            assert block.verified is True and block.where().fraction_on(node) == 1.0, block.summary()


def test_blocks_freed_and_reused_stay_on_their_node():
    for node in memory_nodes():
        for _ in range(3):  # reuse of cached blocks, then of memory the arena gives back
            made = made_under_policy(node)
            kept = {what: arr for what, arr in made.items() if "ones" in what}
            del made
            for what, arr in kept.items():
                assert on_node(arr, node), (node, what, numamap.where(arr))
            numamap.trim()


def test_threads_pinned_on_one_cpu_place_on_their_own_policys_node():
    nodes = memory_nodes()
    cpu = min(os.sched_getaffinity(0))
    start = threading.Barrier(len(nodes))
    results: dict[int, object] = {}

    def work(node, neighbours_arrays):
        try:
            os.sched_setaffinity(0, {cpu})  # this thread only: every worker shares one CPU
            start.wait(timeout=60)
            mine = []
            with policy(node):
                for round_ in range(20):
                    batch = [np.full(n, round_ % 250 + 1, np.uint8) for n in SIZES]
                    mine.extend(batch[:: 3 if round_ % 2 else 1])  # keep some, free the rest
                neighbours_arrays.append(mine[-len(SIZES):])  # handed to the next thread to free
                start.wait(timeout=60)
                taken = neighbours_arrays.pop(0)  # another node's blocks, freed in this thread
                del taken
                mine.extend(np.ones(n, np.uint8) for n in SIZES)
            results[node] = (os.sched_getaffinity(0), mine)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            results[node] = exc

    handed: list = []
    threads = [threading.Thread(target=work, args=(node, handed)) for node in nodes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for node in nodes:
        got = results[node]
        assert not isinstance(got, BaseException), (node, got)
        affinity, arrays = got
        assert affinity == {cpu}
        for arr in arrays:
            info = block_info(arr)
            assert info.node == node, (node, arr.nbytes, info)
            assert on_node(arr, node), (node, arr.nbytes, numamap.where(arr))


def test_a_policy_on_a_node_without_memory_is_refused():
    topo = numamap.topology()
    memoryless = [n.id for n in topo.nodes if not n.has_memory]
    if not memoryless:
        pytest.skip("needs a node with CPUs and no memory (the 'four' guest)")
    for node in memoryless:
        with pytest.raises(ValueError, match=f"node {node}"):
            policy(node)
        with pytest.raises(ValueError, match=f"node {node}"):
            numamap.ones(256, node=node)
