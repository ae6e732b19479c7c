"""Sections, views, reservations and ring buffers: the same tests on both backends."""
import gc
import sys

import numpy as np
import pytest

import numamap

G = numamap.allocation_granularity()


def test_views_of_one_section_are_coherent():
    with numamap.Section(4 * G) as sec:
        a, b = sec.map(), sec.map(offset=G, size=G)
        np.asarray(a)[G:G + 4] = [1, 2, 3, 4]
        assert np.asarray(b)[:4].tolist() == [1, 2, 3, 4]
        assert (a.size, b.size) == (4 * G, G)


def test_size_zero_maps_to_the_end():
    with numamap.Section(3 * G) as sec:
        assert sec.map(offset=G).size == 2 * G


@pytest.mark.numa_calls
def test_view_reports_what_it_got():
    with numamap.Section(G) as sec:
        v = sec.map(node=0, populate=True)
    assert v.node == 0 and v.nodes == (0,) and v.policy == "preferred"
    assert v.page_size == numamap.topology().base_page_size
    assert v.populated and v.verified is True and v.fallback is None
    assert "node 0" in v.summary() and "placement verified" in v.summary()


def test_numpy_array_on_a_view_keeps_the_mapping():
    sec = numamap.Section(2 * G)
    view = sec.map()
    arr = view.ndarray((2, G // 8), np.float64)
    arr[1, -1] = 7.5
    sec.close()
    view.close()
    del view, sec
    gc.collect()
    assert arr[1, -1] == 7.5
    assert isinstance(numamap.view_of(arr), numamap.View)


def test_closed_view_refuses_use():
    with numamap.Section(G) as sec:
        v = sec.map()
    v.close()
    with pytest.raises(ValueError, match="closed"):
        v.address
    with pytest.raises(ValueError, match="closed"):
        np.asarray(v)


@pytest.mark.parametrize("offset", [1, G // 2, G + 4096 if G > 4096 else G + 1])
def test_misaligned_offset(offset):
    with numamap.Section(4 * G) as sec:
        with pytest.raises(ValueError, match="multiple of the allocation granularity"):
            sec.map(offset=offset)


def test_range_beyond_the_section():
    with numamap.Section(2 * G) as sec:
        with pytest.raises(ValueError, match="runs past the end"):
            sec.map(offset=G, size=2 * G)
        with pytest.raises(ValueError, match="at or beyond the end"):
            sec.map(offset=2 * G)


def test_unknown_node():
    with numamap.Section(G) as sec:
        with pytest.raises(ValueError, match="node 999 is unknown or has no memory"):
            sec.map(node=999)
        with pytest.raises(TypeError, match="node='0'"):
            sec.map(node="0")


@pytest.mark.parametrize("kwargs, exc, text", [
    (dict(size=-1), ValueError, "size must be > 0"),
    (dict(size=0), ValueError, "size must be > 0"),
    (dict(size=1.5), TypeError, "size must be an int"),
    (dict(size=4096, access="x"), ValueError, "access='x'"),
    (dict(size=4096, page_size="3M"), ValueError, "not a page size"),
    (dict(size=4096, page_size="auto"), ValueError, "'auto' is for views"),
])
def test_bad_section_arguments(kwargs, exc, text):
    with pytest.raises(exc, match=text):
        numamap.Section(**kwargs)


def test_bad_map_arguments():
    with numamap.Section(G) as sec:
        with pytest.raises(ValueError, match="policy='local'"):
            sec.map(policy="local")
        with pytest.raises(ValueError, match="needs node= or nodes="):
            sec.map(policy="bind")
        with pytest.raises(ValueError, match="takes one node"):
            sec.map(nodes=[0, 0])
        with pytest.raises(TypeError, match="offset must be an int"):
            sec.map(offset=1.0)
        with pytest.raises(ValueError, match="section was created with"):
            sec.map(page_size="2M") if 2 << 20 in numamap.topology().huge_page_sizes else sec.map(page_size="1G")


def test_read_only_section_view():
    with numamap.Section(G, access="r") as sec:
        arr = np.asarray(sec.map())
    assert not arr.flags.writeable


def test_named_section_opens_elsewhere():
    name = f"test-{id(object())}"
    with numamap.Section(G, name=name) as sec:
        np.asarray(sec.map())[:3] = [9, 8, 7]
        with numamap.Section.open(name) as again:
            assert np.asarray(again.map())[:3].tolist() == [9, 8, 7]
        with pytest.raises(FileExistsError):
            numamap.Section(G, name=name)
    with pytest.raises(FileNotFoundError):
        numamap.Section.open(name)


def test_reserve_and_map_into_the_reservation():
    with numamap.Section(2 * G) as sec:
        res = numamap.reserve(4 * G, alignment=4 * G if 4 * G >= G else G)
        assert res.address % (4 * G) == 0
        v = sec.map(address=res.address + G, size=G)
        assert v.address == res.address + G
        with pytest.raises(ValueError, match="overlaps a live view"):
            sec.map(address=res.address + G, size=G)
        with pytest.raises(BufferError, match="still mapped"):
            res.close()
        v.close()
        gc.collect()
        again = sec.map(address=res.address + G, size=G)  # the range went back to the reservation
        assert again.address == res.address + G
        again.close()
        gc.collect()
        res.close()


def test_map_outside_a_reservation_is_refused():
    with numamap.Section(G) as sec:
        plain = sec.map()
        with pytest.raises(ValueError, match="not inside a live numamap reservation"):
            sec.map(address=plain.address)


@pytest.mark.parametrize("size, alignment, exc", [(0, None, ValueError), (G, 3 * G, ValueError),
                                                   (G, G // 2, ValueError), ("1", None, TypeError)])
def test_bad_reservations(size, alignment, exc):
    with pytest.raises(exc):
        numamap.reserve(size, alignment)


def test_ring_buffer_wraps():
    ring = numamap.ring_buffer(G, dtype=np.uint32)
    n = len(ring) // 2
    ring[n - 2:n + 2] = [1, 2, 3, 4]
    assert ring[:2].tolist() == [3, 4]
    assert ring[2 * n - 2:].tolist() == [1, 2]
    assert ring.base.size == 2 * G


def test_ring_buffer_bad_input():
    with pytest.raises(ValueError, match="nbytes must be > 0"):
        numamap.ring_buffer(0)
    with pytest.raises(ValueError, match="not a multiple"):
        numamap.ring_buffer(G, dtype=np.dtype("V3"))
