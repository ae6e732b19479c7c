"""Huge pages on this machine's node 0, with pools the tests reserve and give back."""
import warnings

import numpy as np
import pytest

import numamap

pytestmark = pytest.mark.linux
M2 = 2 << 20
G1 = 1 << 30


def test_zeros_on_2m_pages_are_all_on_node_0(hugepage_pool):
    hugepage_pool(2048, 600)
    a = numamap.zeros(2**27, page_size="2M")
    assert a.base.page_size == M2 and a.base.page_kind == "hugetlb" and a.base.fallback is None
    a[::512] = 1.0  # one write per 4 KiB touches every huge page
    placement = numamap.where(a)
    assert placement.fraction_on(0) == 1.0
    assert placement.page_sizes == {M2: a.nbytes}


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


def test_empty_pool_without_strict_falls_back_and_says_so(hugepage_pool):
    hugepage_pool(2048, 1)
    with pytest.warns(numamap.FallbackWarning, match="cannot get 2M pages") as record:
        a = numamap.zeros(_beyond_node0_pool()[1], dtype=np.uint8, node=0, page_size="2M")
    assert record[0].filename == __file__  # the warning points at the caller's line
    assert a.base.page_kind in ("thp", "base") and "cannot get 2M pages" in a.base.fallback
    assert "fallback" in a.base.summary()


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
