"""Array constructors, lifetimes, where(), asarray and migrate on this machine's node 0."""
import gc
import os
import sys

import numpy as np
import pytest

from fuzzing import arena_defaults
import numamap

linux = pytest.mark.linux


@pytest.mark.numa_calls
def test_constructors_values_and_placement():
    for make, expect in ((numamap.zeros, 0), (numamap.ones, 1)):
        a = make((64, 1024), node=0, populate=True)
        assert a.dtype == np.float64 and a.shape == (64, 1024) and (a == expect).all()
        assert type(a) is np.ndarray and a.flags.c_contiguous
        assert numamap.where(a).fraction_on(0) == 1.0
        assert a.base.node == 0 and a.base.verified is True
    f = numamap.full((3, 4), 2.5, dtype=np.float32, order="F")
    assert f.flags.f_contiguous and f.dtype == np.float32 and (f == 2.5).all()
    e = numamap.empty(10, dtype=np.int16)
    assert e.shape == (10,) and e.dtype == np.int16


def test_like_variants():
    src = np.asfortranarray(np.arange(12, dtype=np.int32).reshape(3, 4))
    for make in (numamap.empty_like, numamap.zeros_like, numamap.ones_like):
        out = make(src, node=0)
        assert out.shape == src.shape and out.dtype == src.dtype and out.flags.f_contiguous
    full = numamap.full_like(src, 7)
    assert (full == 7).all() and full.dtype == np.int32


@pytest.mark.parametrize("shape", [(0,), (3, 0), ()])
def test_zero_size_and_zero_d(shape):
    a = numamap.zeros(shape)
    assert a.shape == shape and a.size == int(np.prod(shape))
    assert numamap.view_of(a) is a.base and isinstance(a.base, numamap.ArenaBlock)
    assert a.base.nbytes == a.nbytes and a.base.kind == "small"
    own = numamap.zeros(shape, page_size="4K")
    assert own.shape == shape and isinstance(numamap.view_of(own), numamap.View)


@pytest.mark.numa_calls
def test_arena_arrays_say_where_their_block_is():
    a = numamap.ones(1000, node=0)  # 8000 bytes: a small block of node 0's arena
    block = a.base
    assert isinstance(block, numamap.ArenaBlock) and numamap.view_of(a[10:]) is block
    assert (block.node, block.nodes, block.kind) == (0, (0,), "small")
    assert block.nbytes == block.size == a.nbytes and block.address == a.__array_interface__["data"][0]
    assert block.page_kind in ("hugetlb", "thp", "base") and block.page_size % 4096 == 0
    assert block.policy == ("bind" if block.page_kind == "hugetlb" else "preferred")
    assert block.verified is True and block.verify() is True and block.fallback is None
    assert block.where().fraction_on(0) == 1.0 and numamap.where(a).fraction_on(0) == 1.0
    assert "node 0" in block.summary() and "small arena block" in block.summary()
    assert "placement verified" in repr(block) and "numamap.ArenaBlock" in block._repr_html_()
    big = numamap.empty(1 << 20, dtype=np.uint8, node=0)
    assert big.base.kind == "large" and big.base.verified in (None, True)  # hugetlb: faulted in
    big[:] = 1
    assert big.base.verified is True
    loose = numamap.zeros(10)  # no node: first touch, nothing to verify against
    assert loose.base.node is None and loose.base.nodes == () and loose.base.verified is None


@pytest.mark.numa_calls  # placed arena blocks: the kernel's mbind and move_pages
def test_arena_blocks_are_reused_and_zeros_clears_them():
    like = np.empty(0, np.uint8)
    with arena_defaults():
        for n in (100, 10_000, 1 << 20):
            made = {}
            for make in (numamap.zeros, lambda n, **kw: numamap.zeros_like(like, shape=n, **kw)):
                dirty = numamap.full(n, 7, dtype=np.uint8, node=0)
                address = dirty.base.address
                del dirty
                made[address] = make(n, dtype=np.uint8, node=0)  # the freed block, cleared
            for address, arr in made.items():
                assert arr.base.address == address and not arr.any()
                assert arr.base.where().touched_fraction == 1.0  # reused as it was: faulted in


def test_a_slice_keeps_its_arena_block_and_the_last_array_frees_it():
    with arena_defaults():
        a = numamap.full(5000, 3, dtype=np.uint8)
        block, address = a.base, a.base.address
        tail = a[-10:]
        del a
        gc.collect()
        other = numamap.full(5000, 4, dtype=np.uint8)  # the block is still taken: another one
        assert other.base.address != address and (tail == 3).all() and tail.base.base is block
        del block, tail
        gc.collect()
        again = numamap.empty(5000, dtype=np.uint8)  # now free: the same class gets it back
        assert again.base.address == address


def test_structured_dtype():
    dt = np.dtype([("id", "<i4"), ("pos", "<f8", (3,))])
    a = numamap.zeros(5, dtype=dt)
    a["pos"][2] = [1, 2, 3]
    assert a.dtype == dt and a["pos"][2].tolist() == [1.0, 2.0, 3.0]


def test_object_dtype_refused():
    with pytest.raises(TypeError, match="holds Python objects"):
        numamap.empty(3, dtype=object)
    with pytest.raises(TypeError, match="holds Python objects"):
        numamap.zeros(3, dtype=[("a", object)])


@pytest.mark.parametrize("kwargs, exc, text", [
    (dict(shape=-1), ValueError, "negative dimension"),
    (dict(shape="x"), TypeError, "shape must be"),
    (dict(shape=3, order="K"), ValueError, "order='K'"),
    (dict(shape=3, page_size="7K"), ValueError, "not a page size"),
    (dict(shape=3, policy="interleave", node=0, nodes=[0, 1]), ValueError, "either node= or nodes="),
    (dict(shape=3, nodes=5), TypeError, "sequence of node ids"),
    (dict(shape=3, node=True), TypeError, "node must be an int"),
    (dict(shape=3, node=-1), ValueError, "node -1 is unknown"),
])
def test_bad_array_arguments(kwargs, exc, text):
    with pytest.raises(exc, match=text):
        numamap.empty(**kwargs)


def _mapped(address):
    with open("/proc/self/maps") as handle:
        for line in handle:
            low, high = (int(x, 16) for x in line.split()[0].split("-"))
            if low <= address < high:
                return True
    return False


def _vma_count():
    with open("/proc/self/maps") as handle:
        return sum(1 for _ in handle)


@linux
def test_slice_keeps_memory_and_last_reference_unmaps():
    gc.collect()
    before = _vma_count()
    a = numamap.ones(1 << 20, node=0, policy="bind", page_size="4K")
    address = a.base.address
    assert _mapped(address) and _vma_count() > before
    tail = a[-10:]
    del a
    gc.collect()
    assert _mapped(address) and tail.sum() == 10
    del tail
    gc.collect()
    assert not _mapped(address)
    assert _vma_count() == before


@pytest.mark.numa_calls
def test_asarray_copies_only_when_needed():
    plain = np.arange(1000.0)
    on_node = numamap.asarray(plain, node=0)
    assert on_node is not plain and (on_node == plain).all() and on_node.base.node == 0
    assert numamap.asarray(on_node, node=0) is on_node
    assert numamap.asarray([1, 2, 3], node=0).tolist() == [1, 2, 3]


@pytest.mark.numa_calls
def test_where_on_plain_numpy_and_bad_input():
    a = np.ones(1 << 18)
    placement = numamap.where(a)
    assert placement.fraction_on(0) == 1.0 and placement.bytes_per_node[0] >= a.nbytes
    assert placement.touched_fraction == 1.0
    with pytest.raises(TypeError, match="where\\(\\) takes"):
        numamap.where([1, 2])


@pytest.mark.numa_calls
def test_untouched_pages_are_reported_as_such():  # a View: arena blocks may be reused, touched
    a = numamap.empty(1 << 20, dtype=np.uint8, page_size="4K")
    placement = numamap.where(a)
    assert placement.fraction_on(0) == 0.0 and -1 in placement.bytes_per_node
    assert a.base.verified is None
    a[: 1 << 19] = 1
    assert numamap.where(a).fraction_on(0) == pytest.approx(0.5)
    assert a.base.verify() is True


@linux
def test_page_size_4k_means_no_thp():
    a = numamap.ones(8 << 20, dtype=np.uint8, page_size="4K")
    sizes = numamap.where(a).page_sizes
    assert list(sizes) == [4096] and sizes[4096] == a.nbytes


@pytest.mark.numa_calls
@linux
def test_migrate_reports_what_moved():
    a = numamap.ones(1 << 16, node=0, page_size="4K")  # a mapping of its own: it can move
    moved = numamap.migrate(a[10:], 0)
    assert moved.after.fraction_on(0) == 1.0 and moved.moved_bytes == 0
    assert a.base.policy == "bind" or numamap.view_of(a[10:]).policy == "bind"
    with pytest.raises(TypeError, match="made by numamap"):
        numamap.migrate(np.ones(4), 0)
    with pytest.raises(ValueError, match="unknown or has no memory"):
        numamap.migrate(a, 99)
    carved = numamap.ones(1 << 16, node=0)  # an arena block shares its pages with other arrays
    with pytest.raises(ValueError, match="arena.*numamap.asarray"):
        numamap.migrate(carved[10:], 0)
    assert (carved == 1).all() and carved.base.verified is True


@linux
def test_bind_larger_than_node_raises_memory_error():
    free = numamap.topology().node(0).memory_free
    with pytest.raises(MemoryError, match="bound to nodes \\[0\\]"):
        numamap.empty(free + (1 << 30), dtype=np.uint8, node=0, policy="bind", populate=True)


@pytest.mark.numa_calls
def test_interleave_defaults_to_all_memory_nodes():
    a = numamap.ones(1 << 18, policy="interleave", populate=True)
    nodes = tuple(n.id for n in numamap.topology().nodes if n.has_memory)
    assert a.base.nodes == nodes and a.base.verified is True


def test_untouched_thp_array_reports_no_huge_pages():
    numamap.ones(8 << 20, dtype=np.uint8)  # a touched neighbour whose mapping may merge with ours
    fresh = numamap.empty(8 << 20, dtype=np.uint8, node=0, policy="bind")  # fresh: a mapping of its own
    if fresh.base.page_kind == "hugetlb":  # a 2M pool on this machine served it: pages are reserved
        assert numamap.where(fresh).page_sizes == {2 << 20: 8 << 20}
    else:
        assert numamap.where(fresh).page_sizes.get(2 << 20, 0) == 0


# -- numpy's conventions (issue: user experience) -------------------------------------------------

def test_like_and_device_follow_numpy_2():
    x = np.ones(3)
    assert numamap.zeros((3, 4), like=x).shape == (3, 4)
    assert numamap.ones(2, device="cpu").tolist() == [1.0, 1.0]
    assert numamap.full_like(x, 2, device="cpu").tolist() == [2.0, 2.0, 2.0]
    with pytest.raises(TypeError, match=r"^zeros\(like=\.\.\.\) takes a numpy array"):
        numamap.zeros(3, like=[1, 2])
    with pytest.raises(ValueError, match=r"^ones\(device='cuda'\)"):
        numamap.ones(3, device="cuda")


@pytest.mark.parametrize("call, name", [
    (lambda: numamap.zeros(3, colour=1), "zeros"), (lambda: numamap.ones(3, colour=1), "ones"),
    (lambda: numamap.full(3, 1, colour=1), "full"), (lambda: numamap.ones_like(np.ones(2), colour=1), "ones_like"),
])
def test_errors_name_the_function_called(call, name):
    with pytest.raises(TypeError, match=rf"^{name}\(\) got an unexpected keyword argument 'colour'"):
        call()


@pytest.mark.numa_calls
def test_asarray_returns_an_untouched_array_already_on_the_node():
    z = numamap.zeros(1 << 20, node=0)
    assert numamap.asarray(z, node=0) is z
    assert numamap.asarray(z, node=0, copy=True) is not z
    with pytest.raises(ValueError, match="copy=False"):
        numamap.asarray(np.ones(3), node=0, copy=False)
    assert numamap.asarray(z, node=0, copy=False) is z


@pytest.mark.numa_calls
@pytest.mark.linux  # numamap.policy() is Linux-only for now
def test_copies_made_inside_a_policy_are_placed():
    import copy
    import pickle

    a = numamap.ones(1 << 18, node=0)
    with numamap.policy(0, min_size=0):
        b = copy.deepcopy(a)
    assert numamap.handler_name(b) == "numamap_node0" and (b == 1).all()
    c = pickle.loads(pickle.dumps(a))  # numpy keeps the pickled bytes: placed by asarray only
    placed = numamap.asarray(c, node=0)
    assert placed is not c and numamap.view_of(placed).node == 0 and (placed == 1).all()
