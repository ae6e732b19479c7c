"""Issue 12, arrays: shapes, huge sizes, sub-array and zero-size dtypes, where() at the edges,
blocks() of rows without bytes, asarray's layout keywords and empty_like's order."""

import numpy as np
import pytest

import numamap

G = numamap.allocation_granularity()
linux = pytest.mark.linux


# -- item 13: shapes are integers, as in numpy -------------------------------------------------

@pytest.mark.parametrize("shape", [(2.9, 3.99), ["7", True], 2.0, True, (3, True), (np.float64(2),),
                                   "7", [[2]]])
def test_shapes_must_be_integers(shape):
    with pytest.raises(TypeError):
        np.empty(shape)  # numpy's rule, which numamap follows
    for make in (numamap.empty, numamap.zeros, numamap.ones, numamap.partitioned):
        with pytest.raises(TypeError, match="shape"):
            make(shape)


def test_integer_like_dimensions_are_taken():
    assert numamap.zeros((np.int64(2), np.uint8(3))).shape == (2, 3)
    assert numamap.zeros(np.array(4)).shape == (4,)
    assert numamap.empty(np.array([2, 3])).shape == (2, 3)


# -- item 14: sizes of 2**63 and up ------------------------------------------------------------

@pytest.mark.parametrize("call, name", [
    (lambda: numamap.Section(2**63), "size"),
    (lambda: numamap.Section(2**64, name="huge"), "size"),
    (lambda: numamap.reserve(2**64), "size"),
    (lambda: numamap.reserve(G, alignment=2**64), "alignment"),
    (lambda: numamap.empty(10**20), "shape"),
    (lambda: numamap.zeros((2**40, 2**40)), "shape"),
    (lambda: numamap.empty((0, 2**70)), "shape"),
    (lambda: numamap.ring_buffer(2**64), "nbytes"),
    (lambda: numamap.partitioned(2**63), "shape"),
])
def test_sizes_past_any_address_space_name_the_parameter(call, name):
    with pytest.raises(ValueError, match=rf"^{name}=.*(2\*\*62 bytes|numpy's limit)"):
        call()


@pytest.mark.parametrize("min_size", [2**64, 2**63, "99999999999999999999999999T", "9" * 400])
def test_policy_min_size_past_any_address_space(min_size):
    with pytest.raises(ValueError, match="min_size="):
        numamap.policy(min_size=min_size)


@pytest.mark.parametrize("call", [
    lambda: numamap.Section(2**62).map(),
    lambda: numamap.reserve(2**62, alignment=2**62),
    lambda: numamap.empty(2**59),
    lambda: numamap.ring_buffer(2**61),
])
def test_sizes_within_the_limit_but_past_the_machine_are_memory_errors(call):
    with pytest.raises(MemoryError):
        call()


def test_a_map_past_the_section_is_a_value_error():
    with numamap.Section(G) as sec:
        with pytest.raises(ValueError, match="runs past the end"):
            sec.map(size=2**64)
        with pytest.raises(ValueError, match="at or beyond the end"):
            sec.map(offset=2**64)


@pytest.mark.parametrize("page_size", ["auto", "4K"])
@pytest.mark.parametrize("weights", [[1e308], [1e308, 1e308], [1e308, 0.0], [5e-324, 5e-324]])
def test_extreme_weights_split_by_their_ratios(weights, page_size):
    nodes = [0] * len(weights)
    a = numamap.partitioned((4 * G, 2), dtype="u1", nodes=nodes, weights=weights, page_size=page_size)
    counts = [s.stop - s.start for _, s in numamap.blocks(a)]
    assert sum(counts) == 4 * G
    if len(weights) == 2 and weights[0] == weights[1]:
        assert counts == [2 * G, 2 * G]


def test_weights_that_are_not_numbers():
    with pytest.raises(TypeError, match="weights"):
        numamap.partitioned(10, nodes=[0], weights=["heavy"])
    with pytest.raises(ValueError, match="finite"):
        numamap.partitioned(10, nodes=[0], weights=[float("inf")])


# -- item 15: sub-array dtypes ------------------------------------------------------------------

@pytest.mark.numa_calls
@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("own, base", [({}, numamap.ArenaBlock), ({"page_size": "4K"}, numamap.View)])
def test_sub_array_dtypes_keep_the_numamap_memory_as_base(order, own, base):
    dtype = np.dtype(("f8", (2,)))
    a = numamap.zeros((3, 4), dtype, order, node=0, **own)
    like = np.zeros((3, 4), dtype, order)
    assert (a.shape, a.dtype, a.strides) == (like.shape, like.dtype, like.strides)
    assert isinstance(a.base, base) and "node 0" in a.base.summary() and a.base.size >= a.nbytes
    full = numamap.full(3, [1.5, 2.5], dtype=dtype, **own)
    assert full.tolist() == np.full(3, [1.5, 2.5], dtype=dtype).tolist()


def test_partitioned_fill_with_a_sub_array_dtype():
    a = numamap.partitioned((10, 3), dtype=("i4", (2, 2)), fill=1)
    assert a.shape == (10, 3, 2, 2) and a.dtype == np.int32 and (a == 1).all()
    assert isinstance(a.base, numamap.View) and a.base.verified is not False
    assert sum(s.stop - s.start for _, s in numamap.blocks(a)) == 10


def test_ring_buffer_with_a_sub_array_dtype():
    ring = numamap.ring_buffer(G, dtype=("f4", (4,)))
    n = len(ring) // 2
    assert ring.shape == (2 * G // 16, 4) and isinstance(ring.base, numamap.View)
    ring[n + 1] = [1, 2, 3, 4]
    assert ring[1].tolist() == [1, 2, 3, 4]


# -- item 16: zero-size dtypes -------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["S0", "U0", "V0", ">U0"])
def test_zero_size_dtypes_become_what_numpy_makes(dtype):
    assert numamap.zeros(3, dtype).dtype == np.zeros(3, dtype).dtype
    assert numamap.partitioned(3, dtype).dtype == np.zeros(3, dtype).dtype


def test_ring_buffer_of_unsized_dtypes():
    ring = numamap.ring_buffer(G, dtype="S0")
    assert ring.dtype == np.dtype("S1") and len(ring) == 2 * G
    ring[G + 3] = b"x"
    assert ring[3] == b"x"
    with pytest.raises(ValueError, match="no bytes"):
        numamap.ring_buffer(G, dtype="V0")  # numpy keeps V0 at 0 bytes: no ring of those


# -- item 17: where() at the edges ---------------------------------------------------------------

@pytest.mark.parametrize("arr", [np.zeros(0), np.zeros((3, 0)), np.zeros(10)[5:5]])
def test_where_of_no_bytes_reports_no_pages(arr):
    placement = numamap.where(arr)
    assert placement.bytes_per_node == {} and placement.page_sizes == {}
    assert placement.nodes.size == 0 and placement.size == 0
    empty = numamap.zeros(0, node=0)
    assert numamap.where(empty).page_sizes == {} and numamap.where(empty[:0]).bytes_per_node == {}


def assert_whole_pages(placement, expected_total):
    sizes = placement.page_sizes
    assert all(count % size == 0 for size, count in sizes.items()), sizes
    assert sum(sizes.values()) == expected_total, sizes


@pytest.mark.numa_calls
@linux
def test_where_of_a_policy_block_counts_whole_pages():
    with numamap.policy(0):
        a = np.ones(1 << 20)  # an 8 MiB block, THP asked for where THP is on
    assert_whole_pages(numamap.where(a), a.nbytes)
    assert_whole_pages(numamap.where(a[1:-1]), a.nbytes)  # partial first and last pages count whole
    page = numamap.where(a).page_size  # the block's: 2 MiB on a hugetlb arena, else the base page
    assert_whole_pages(numamap.where(a[100:1000]), 2 * page if 100 * 8 // page != 1000 * 8 // page else page)


@pytest.mark.numa_calls
def test_where_of_unaligned_ranges_counts_whole_pages():
    P = numamap._backend.base_page_size()  # where() counts pages, not allocation granules
    a = numamap.ones(5 * P + 100, dtype="u1", node=0, page_size="4K")
    assert_whole_pages(numamap.where(a), 6 * P)
    assert_whole_pages(numamap.where(a[P // 2:P // 2 + 10]), P)
    assert_whole_pages(numamap.where(a[P - 5:P + 5]), 2 * P)


# -- item 18: blocks() of rows without bytes --------------------------------------------------------

def test_blocks_of_rows_without_bytes_cover_every_row():
    a = numamap.partitioned((55, 55, 0, 55), "V7")
    parts = numamap.blocks(a)
    assert len(parts) == 1 and parts[0][1] == slice(0, 55)
    assert [s for _, s in numamap.blocks(a[10:20])] == [slice(0, 10)]
    assert numamap.blocks(a[:0]) == []


def test_partitioned_rows_without_bytes_over_several_blocks():
    a = numamap.partitioned((6, 0), nodes=[0, 0, 0])
    assert a.shape == (6, 0) and isinstance(a.base, numamap.View)
    assert [s for _, s in numamap.blocks(a)] == [slice(0, 6)]


# -- item 19: asarray honours order, page_size, policy --------------------------------------------

@pytest.mark.numa_calls
@pytest.mark.numa_calls
def test_asarray_copies_when_the_layout_differs():
    a = numamap.ones((40, 50), node=0, populate=True)
    assert numamap.asarray(a, node=0) is a
    assert numamap.asarray(a, node=0, order="C") is a
    b = numamap.asarray(a, node=0, order="F")
    assert b is not a and b.flags.f_contiguous and not b.flags.c_contiguous
    assert (b == a).all() and b.base.node == 0
    assert numamap.asarray(b, node=0, order="F") is b
    assert numamap.asarray(b, node=0, order="C").flags.c_contiguous


@pytest.mark.numa_calls
@pytest.mark.numa_calls
def test_asarray_copies_when_placement_keywords_differ():
    a = numamap.ones(4 * G, dtype="u1", node=0, page_size="4K", populate=True)
    assert numamap.asarray(a, node=0, page_size="4K", populate=True) is a
    assert numamap.asarray(a, node=0, page_size="auto") is a
    try:
        b = numamap.asarray(a, node=0, page_size="2M")
    except MemoryError:  # no 2M pool here: an explicit page size is a contract
        pass
    else:
        assert b is not a and b.base.page_kind == "hugetlb" and (b == 1).all()
    c = numamap.asarray(a, node=0, policy="bind")
    assert c is not a and c.base.policy == "bind" and (c == 1).all()


# -- item 20: empty_like and the order of a new ndim ------------------------------------------------

@pytest.mark.parametrize("shape", [(2, 3, 4), (12,), (4, 3)])
@pytest.mark.parametrize("order", ["K", "A"])
def test_like_functions_take_numpys_order_with_a_new_shape(shape, order):
    f = numamap.zeros((3, 4), order="F")
    expect = np.empty_like(np.asfortranarray(np.zeros((3, 4))), order=order, shape=shape)
    for like in (numamap.empty_like, numamap.zeros_like, numamap.ones_like):
        got = like(f, order=order, shape=shape)
        assert got.shape == shape
        assert (got.flags.c_contiguous, got.flags.f_contiguous) == \
            (expect.flags.c_contiguous, expect.flags.f_contiguous)
