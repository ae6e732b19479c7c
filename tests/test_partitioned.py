"""Partitioned arrays: one contiguous array, consecutive row blocks on successive nodes."""
import numpy as np
import pytest

import numamap
from numamap.partitioning import _split_rows

MiB = 1 << 20


def memory_nodes():
    return [n.id for n in numamap.topology().nodes if n.has_memory]


@pytest.mark.numa_calls
def test_one_ordinary_c_contiguous_array():
    a = numamap.partitioned((5000, 3), dtype=np.float32, fill=2.0)
    assert type(a) is np.ndarray and a.flags.c_contiguous and a.shape == (5000, 3)
    assert (a == 2.0).all() and a.base.verified is True
    covered = sum(s.stop - s.start for _, s in numamap.blocks(a))
    assert covered == 5000


def test_blocks_of_slices_are_clipped_and_relative():
    a = numamap.partitioned(100_000, dtype=np.float64, nodes=[0, 0], weights=[1, 3])
    full = numamap.blocks(a)
    assert [node for node, _ in full] == [0, 0]
    first_end = full[0][1].stop
    assert first_end % 512 == 0  # a 4 KiB page holds 512 float64: no page straddles two blocks
    assert 100_000 / 4 - 512 <= first_end <= 100_000 / 4 + 512
    part = a[first_end - 10:first_end + 5]
    assert numamap.blocks(part) == [(0, slice(0, 10)), (0, slice(10, 15))]
    reverse = a[::-1]
    rows = sorted((s.start, s.stop) for _, s in numamap.blocks(reverse))
    assert rows[0][0] == 0 and rows[-1][1] == 100_000
    assert numamap.blocks(a[first_end:first_end]) == []


def test_block_boundaries_fall_on_page_multiples_for_wide_rows():
    a = numamap.partitioned((4000, 1000), dtype=np.float64, nodes=[0, 0])
    boundary = numamap.blocks(a)[0][1].stop
    assert (boundary * 8000) % 4096 == 0


def test_split_rows_properties():
    assert _split_rows(1000, 10, [1, 1]) == [500, 500]
    assert _split_rows(1000, 512, [1, 1]) == [512, 488]
    assert _split_rows(10, 512, [1, 1]) == [0, 10]
    assert _split_rows(1000, 1, [0, 1]) == [0, 1000]


def test_zero_rows_and_bad_input():
    z = numamap.partitioned((0, 4))
    assert z.shape == (0, 4) and numamap.blocks(z) == []
    with pytest.raises(ValueError, match="only axis=0"):
        numamap.partitioned((4, 4), axis=1)
    with pytest.raises(ValueError, match="one per node"):
        numamap.partitioned(10, nodes=[0], weights=[1, 2])
    with pytest.raises(ValueError, match="not all zero"):
        numamap.partitioned(10, nodes=[0], weights=[0])
    with pytest.raises(ValueError, match="unknown or has no memory"):
        numamap.partitioned(10, nodes=[42])
    with pytest.raises(TypeError, match="numamap.partitioned"):
        numamap.blocks(np.ones(3))
    with pytest.raises(TypeError, match="holds Python objects"):
        numamap.partitioned(3, dtype=object)


@pytest.mark.numa
def test_each_block_is_on_its_node():
    nodes = memory_nodes()
    a = numamap.partitioned((len(nodes) * 512, 512), dtype=np.float64, nodes=nodes, page_size="4K", fill=1.0)
    parts = numamap.blocks(a)
    assert [n for n, _ in parts] == nodes
    for node, rows in parts:
        assert numamap.where(a[rows]).fraction_on(node) == 1.0, (node, numamap.where(a[rows]))
    assert a.base.verified is True


@pytest.mark.numa
def test_weights_shape_the_blocks():
    first, second = memory_nodes()[:2]
    a = numamap.partitioned(1 << 20, dtype=np.uint8, nodes=[first, second], weights=[3, 1], fill=7)
    (n0, s0), (n1, s1) = numamap.blocks(a)
    assert (n0, n1) == (first, second)
    assert (s0.stop - s0.start) == 3 * (s1.stop - s1.start)
    assert numamap.where(a[s1]).fraction_on(second) == 1.0
