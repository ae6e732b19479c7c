"""Views speak the buffer protocol on every Python numamap supports (3.10 and 3.11 included,
where a Python class cannot define __buffer__): CI runs this file on the oldest one too."""
import gc
import sys

import numpy as np
import pytest

import numamap


def test_memoryview_and_frombuffer_share_the_mapping():
    view = numamap.Section(1 << 16).map()
    m = memoryview(view)
    assert (m.nbytes, m.readonly, m.format, m.ndim) == (1 << 16, False, "B", 1)
    a = np.frombuffer(view, dtype="f8")
    a[:] = 2.0
    assert np.asarray(view.ndarray(8192, dtype="f8")).sum() == 2.0 * 8192
    m[0] = 7
    assert view.ndarray(1)[0] == 7


def test_read_only_views_export_read_only_buffers(tmp_path):
    path = tmp_path / "data"
    path.write_bytes(bytes(range(256)) * 16)
    view = numamap.Section(4096, file=str(path), access="r").map()
    assert memoryview(view).readonly
    arr = np.frombuffer(view, dtype="u1")
    assert arr[255] == 255 and not arr.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        arr[0] = 1


def test_a_memoryview_keeps_a_closed_views_memory():
    view = numamap.Section(1 << 20).map()
    m = memoryview(view)
    view.close()
    gc.collect()
    m[-1] = 9  # the mapping is still there: a closed view whose buffer is out keeps it
    assert m[-1] == 9 and view.closed
    del m
    gc.collect()


def test_closed_views_export_nothing():
    view = numamap.Section(1 << 16).map()
    view.close()
    with pytest.raises(BufferError, match="maps no memory"):
        memoryview(view)


def test_arrays_keep_their_view_as_base():
    a = numamap.zeros(100, page_size="4K")  # a mapping of its own
    assert isinstance(a.base, numamap.View)  # numpy took __array_interface__, not a buffer
    with pytest.raises(BufferError):
        memoryview(a.base)


def test_arena_arrays_keep_their_block_as_base_and_share_its_buffer():
    a = numamap.zeros(100)  # carved from an arena: the block exports its bytes
    assert isinstance(a.base, numamap.ArenaBlock) and numamap.view_of(a) is a.base
    m = memoryview(a.base)
    assert (m.nbytes, m.readonly, m.format, m.ndim) == (a.nbytes, False, "B", 1)
    assert np.shares_memory(np.frombuffer(m, dtype="f8"), a)
    a[:] = 1.5
    assert np.frombuffer(m, dtype="f8")[-1] == 1.5
    m[:8] = np.float64(2.5).tobytes()
    assert a[0] == 2.5
    del a
    gc.collect()
    assert np.frombuffer(m, dtype="f8")[0] == 2.5  # the exported buffer keeps the block


@pytest.mark.linux  # Windows' Python-level __buffer__ hides the View behind a wrapper (documented)
def test_arrays_made_through_the_buffer_lead_back_to_the_view():
    b = np.asarray(numamap.Section(1 << 16).map())
    assert numamap.view_of(b) is not None


def test_the_interpreter_is_one_numamap_supports():
    assert sys.version_info >= (3, 10)
