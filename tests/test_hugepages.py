"""Huge pages on this machine's node 0, with pools the tests reserve and give back."""
import multiprocessing
import os
import signal
import warnings

import numpy as np
import pytest

from fuzzing import in_child
import numamap

pytestmark = pytest.mark.linux
M2 = 2 << 20
G1 = 1 << 30


@pytest.mark.numa_calls
def test_zeros_on_2m_pages_are_all_on_node_0(hugepage_pool):
    hugepage_pool(2048, 600)
    a = numamap.zeros(2**27, page_size="2M")
    assert a.base.page_size == M2 and a.base.page_kind == "hugetlb" and a.base.fallback is None
    a[::512] = 1.0  # one write per 4 KiB touches every huge page
    placement = numamap.where(a)
    assert placement.fraction_on(0) == 1.0
    assert placement.page_sizes == {M2: a.nbytes}


@pytest.mark.numa_calls
def test_1g_pages(hugepage_pool):
    hugepage_pool(1048576, 1)
    a = numamap.ones(G1 // 8, node=0, page_size="1G", strict=True)
    assert a.base.page_size == G1 and a.base.verified is True
    assert numamap.where(a).page_sizes == {G1: G1}


def test_auto_takes_the_pool_when_it_can_serve(hugepage_pool):
    hugepage_pool(2048, 8)
    a = numamap.zeros(4 << 20, dtype=np.uint8, node=0)
    assert a.base.page_kind == "hugetlb" and a.base.page_size == M2
    small = numamap.zeros(1024, dtype=np.uint8, node=0)
    assert small.base.page_kind == "base"  # no 2 MiB page burnt on a 1 KiB array


def _beyond_node0_pool() -> tuple[int, int]:
    """Free 2M pages on node 0 now, and a byte count that needs more than that."""
    free = numamap.topology().node(0).hugepages[M2].free
    return free, (free + 4) * M2


def test_empty_pool_strict_error_names_the_pool(hugepage_pool):
    hugepage_pool(2048, 1)
    free, nbytes = _beyond_node0_pool()
    with pytest.raises(MemoryError, match=rf"node 0's 2M huge-page pool has {free} free of \d+ pages.*"
                       r"echo N > /sys/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages"):
        numamap.zeros(nbytes, dtype=np.uint8, node=0, page_size="2M", strict=True)


@pytest.mark.numa_calls
def test_an_explicit_page_size_is_a_contract_even_without_strict(hugepage_pool):
    hugepage_pool(2048, 1)
    free, nbytes = _beyond_node0_pool()
    with pytest.raises(MemoryError, match=rf"node 0's 2M huge-page pool has {free} free.*nr_hugepages"):
        numamap.zeros(nbytes, dtype=np.uint8, node=0, page_size="2M")
    a = numamap.zeros(nbytes, dtype=np.uint8, node=0)  # 'auto' takes what the machine serves
    assert a.base.page_kind in ("thp", "base") and a.base.fallback is None


@pytest.mark.numa_calls
def test_large_page_section_views(hugepage_pool):
    hugepage_pool(2048, 4)
    with numamap.Section(4 << 20, page_size="2M") as sec:
        a, b = sec.map(node=0, populate=True), sec.map(offset=M2, size=M2)
        assert a.page_size == M2 and a.verified is True
        np.asarray(a)[M2:M2 + 2] = [5, 6]
        assert np.asarray(b)[:2].tolist() == [5, 6]
        with pytest.raises(ValueError, match="multiple of the section's page size"):
            sec.map(offset=4096, size=4096)
        with pytest.raises(ValueError, match="does not match the section's 2M pages"):
            sec.map(page_size="4K")


def test_large_pages_on_a_small_page_section_is_an_error():
    with numamap.Section(4 << 20) as sec:
        with pytest.raises(ValueError, match="created with 4K pages"):
            sec.map(page_size="2M")


def test_hugetlb_section_beyond_the_pool_fails_at_map_time(hugepage_pool):
    hugepage_pool(2048, 1)
    with numamap.Section(_beyond_node0_pool()[1], page_size="2M") as sec:
        with pytest.raises(MemoryError, match="huge-page pool"):
            sec.map(node=0)


# -- huge pages and fork (issue 12, item 3) ---------------------------------------------------

_FORKED = {}  # what a fork-pool worker finds: the array of the test that forked it


def _global_free_2m() -> int:
    base = "/sys/kernel/mm/hugepages/hugepages-2048kB"
    with open(f"{base}/free_hugepages") as free, open(f"{base}/resv_hugepages") as reserved:
        return int(free.read()) - int(reserved.read())


def _pool_sized_array(hugepage_pool) -> np.ndarray:
    """A 2M-page array holding every free page of the pool, all faulted in."""
    hugepage_pool(2048, 4)
    a = numamap.zeros(_global_free_2m() * M2, dtype=np.uint8, page_size="2M", strict=True)
    assert a.base.page_kind == "hugetlb"
    a[::4096] = 1
    assert _global_free_2m() == 0  # no spare page left for any copy
    return a


def test_a_forked_child_writes_a_hugetlb_array_with_the_pool_empty(hugepage_pool):
    a = _pool_sized_array(hugepage_pool)

    def write():
        a[::4096] = 2

    status = in_child(write)
    assert not os.WIFSIGNALED(status), f"the child died of {signal.Signals(os.WTERMSIG(status)).name}"
    assert os.WEXITSTATUS(status) == 0
    # documented: anonymous hugetlb arrays are shared with forked children, never copied
    assert (a[::4096] == 2).all()
    del a


def _write_forked(value: int) -> int:
    a = _FORKED["a"]
    a[::4096] = value
    return int(a[::4096].sum())


def test_a_fork_pool_worker_writes_a_hugetlb_array(hugepage_pool):
    a = _pool_sized_array(hugepage_pool)
    _FORKED["a"] = a
    try:
        with multiprocessing.get_context("fork").Pool(1) as pool:
            # a timeout, not a wait: a worker killed by SIGBUS would never answer
            got = pool.apply_async(_write_forked, (3,)).get(timeout=120)
    finally:
        _FORKED.clear()
    assert got == 3 * (a.size // 4096)
    assert (a[::4096] == 3).all()
    del a


@pytest.mark.numa_calls
def test_partitioned_hugetlb_blocks_survive_a_forked_writer(hugepage_pool):
    hugepage_pool(2048, 4)
    a = numamap.partitioned(_global_free_2m() * M2, dtype=np.uint8, nodes=[0], page_size="2M", fill=1)
    assert a.base.page_kind == "hugetlb" and _global_free_2m() == 0

    def write():
        a[::4096] = 5

    status = in_child(write)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert (a[::4096] == 5).all()
    del a


def test_large_page_sections_refuse_copy_on_write():
    sizes = numamap.topology().huge_page_sizes
    if not sizes:
        pytest.skip("this kernel has no huge page sizes")
    with pytest.raises(ValueError, match="access='cow' is not available for large-page sections"):
        numamap.Section(sizes[0], page_size=sizes[0], access="cow")
