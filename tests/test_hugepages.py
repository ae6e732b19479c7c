"""Huge pages on this machine's node 0, with pools the tests reserve and give back."""
import multiprocessing
import os
import signal
import warnings

import gc

import numpy as np
import pytest

from fuzzing import assert_block, in_child
import numamap
from numamap import block_info, policy

pytestmark = pytest.mark.linux
M2 = 2 << 20
G1 = 1 << 30
MiB = 1 << 20
N = MiB // 8  # float64 elements in 1 MiB


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


@pytest.mark.numa_calls  # placed arena blocks: the kernel's mbind and move_pages
def test_auto_takes_the_pool_when_it_can_serve(hugepage_pool):
    numamap.trim()  # cached hugetlb blocks of earlier tests give their pages back
    hugepage_pool(2048, 8)
    a = numamap.zeros(4 << 20, dtype=np.uint8, node=0)
    assert isinstance(a.base, numamap.ArenaBlock) and a.base.kind == "large"
    assert a.base.page_kind == "hugetlb" and a.base.page_size == M2 and a.base.policy == "bind"
    assert numamap.where(a).page_sizes == {M2: 4 << 20}
    free = _global_free_2m()
    small = [numamap.zeros(1024, dtype=np.uint8, node=0) for _ in range(100)]
    assert {(s.base.kind, s.base.page_kind) for s in small} == {("small", "hugetlb")}
    assert all(not s.any() for s in small)
    # small arrays share 2 MiB chunks: 100 of 1 KiB take one huge page at most, not 100
    assert free - _global_free_2m() <= 1
    del a, small
    numamap.trim()


# -- policy() on huge pages ----------------------------------------------------------------
# 'auto' leaves hugetlb for a second after a hugetlb chunk fails: the tests that expect it to
# take the pool come first in this file, before any test runs the pool dry.

@pytest.mark.numa_calls
def test_auto_takes_huge_pages_while_the_pool_serves(hugepage_pool):
    numamap.trim()
    hugepage_pool(2048, 8, node=0)
    with policy(0):  # the pools are looked at as the policy is made
        big, small = np.ones(4 * N), np.ones(100)
    for arr in (big, small):
        info = assert_block(arr)
        assert (info.page_kind, info.page_size) == ("hugetlb", M2), info
    # a 800-byte array on a huge page: where() counts the page it lies on, as for numamap.zeros
    assert numamap.where(small).page_sizes == {M2: M2}
    assert numamap.where(numamap.zeros(100, node=0)).page_sizes == {M2: M2}
    del big, small
    numamap.trim()


@pytest.mark.numa_calls
def test_2m_pages_from_the_pool(hugepage_pool):
    numamap.trim()  # earlier tests' cached hugetlb blocks give their pages back
    hugepage_pool(2048, 8, node=0)
    p = policy(0, page_size="2M")
    with p:
        a = np.ones(3 * N)
    info = assert_block(a)
    assert (info.page_kind, info.page_size, info.length) == ("hugetlb", M2, 4 * MiB)
    placement = numamap.where(a)
    assert placement.fraction_on(0) == 1.0 and set(placement.page_sizes) == {M2}
    a[:] = np.arange(3 * N)
    a.resize(5 * N, refcheck=False)  # beyond the mapping: a new hugetlb block, data copied
    assert block_info(a).page_kind == "hugetlb" and (a[:3 * N] == np.arange(3 * N)).all()
    a.resize(100, refcheck=False)  # a small block of the same hugetlb arena
    info = block_info(a)
    assert (info.kind, info.node, info.page_kind) == ("small", 0, "hugetlb")
    assert (a == np.arange(100)).all()
    with p:
        exact = np.ones(2 * N)  # exactly one huge page
    assert (block_info(exact).kind, block_info(exact).length) == ("large", M2)
    assert_block(exact)
    del a, exact
    gc.collect()
    stats = p.stats()
    # every block served (by malloc, calloc or realloc: numpy's temporaries too) on hugetlb pages
    assert stats["hugetlb"] == stats["blocks"] == stats["freed"] >= 4, stats
    assert stats["errors"] == stats["hugetlb_fallbacks"] == 0, stats
    numamap.trim()


@pytest.mark.numa_calls
def test_a_block_on_huge_pages_grows_when_the_pool_runs_dry(hugepage_pool):
    numamap.trim()
    hugepage_pool(2048, 4, node=0)
    p = policy(0, page_size="2M")
    with p:
        a = np.arange(N, dtype=np.float64)
    assert block_info(a).page_kind == "hugetlb"
    free = numamap.topology().node(0).hugepages[M2].free
    hog = numamap.empty(free * M2, np.uint8, node=0, page_size="2M") if free else None  # the rest
    with p:
        fresh = np.ones(8 * N)  # a new block: THP while the pool cannot serve, and counted
    assert block_info(fresh).page_kind != "hugetlb" and p.stats()["hugetlb_fallbacks"] >= 1
    a.resize(8 * N, refcheck=False)  # growing: other pages too, as a new block would take
    assert (a[:N] == np.arange(N)).all() and not a[N:].any()
    assert_block(a)
    del a, fresh, hog
    numamap.trim()


def test_explicit_huge_pages_fall_back_to_thp_and_count_it():
    if M2 not in numamap._backend.huge_page_sizes():
        pytest.skip("this kernel has no 2 MiB huge pages")
    numamap.trim()
    pool = numamap._backend.hugepage_pool(M2, None)
    more = ((pool.free if pool else 0) + 1) * M2  # more than the pool can serve
    p = policy(0, page_size="2M")
    with p:
        a = np.empty(more // 8)  # never touched: only address space
    info = block_info(a)
    fallback = "thp" if numamap._backend.thp_mode() in ("always", "madvise") else "base"
    assert (info.kind, info.page_kind) == ("large", fallback), info
    assert p.stats()["hugetlb_fallbacks"] == 1 and p.stats()["hugetlb"] == 0


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


ARENA_SIZES = (64, 8 << 10, 800 << 10, 3 << 20)  # two small classes, two large blocks


def test_a_forked_child_writes_hugetlb_arena_arrays_with_the_pool_empty(hugepage_pool):
    numamap.trim()
    hugepage_pool(2048, 8)
    with policy(0, page_size="2M"):
        made = [np.full(n, 1, np.uint8) for n in ARENA_SIZES]
    assert {block_info(a).page_kind for a in made} == {"hugetlb"}, [block_info(a) for a in made]
    free = _global_free_2m()
    hog = numamap.zeros(free * M2, dtype=np.uint8, page_size="2M") if free else None
    assert _global_free_2m() == 0  # no spare page left for a copy, nor for a new chunk

    def write():
        for a in made:
            a[:] = 2  # inherited blocks are shared: no copy-on-write page needed
        with policy(0, page_size="2M"):
            fresh = [np.full(n, 3, np.uint8) for n in ARENA_SIZES]
        fresh.append(numamap.full(1 << 20, 3, dtype=np.uint8))
        assert all((f == 3).all() for f in fresh) and all((a == 2).all() for a in made)
        # the pool is empty: the child's new blocks come from other pages, never SIGBUS
        assert "hugetlb" not in {numamap.view_of(f).page_kind for f in fresh[-1:]}
        assert "hugetlb" not in {block_info(f).page_kind for f in fresh[:-1]}

    status = in_child(write)
    assert not os.WIFSIGNALED(status), f"the child died of {signal.Signals(os.WTERMSIG(status)).name}"
    assert os.WEXITSTATUS(status) == 0
    assert all((a == 2).all() for a in made)  # documented: hugetlb blocks are shared with the child
    del made, hog
    numamap.trim()


def test_large_page_sections_refuse_copy_on_write():
    sizes = numamap.topology().huge_page_sizes
    if not sizes:
        pytest.skip("this kernel has no huge page sizes")
    with pytest.raises(ValueError, match="access='cow' is not available for large-page sections"):
        numamap.Section(sizes[0], page_size=sizes[0], access="cow")
