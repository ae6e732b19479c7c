"""Views: one account shared with every array, verification by move_pages only, and lifetimes."""
import gc
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import numamap
from numamap._backend import backend


@pytest.mark.numa_calls
def test_a_view_and_its_arrays_share_one_account():
    view = numamap.Section(1 << 20).map(node=0)
    arr = view.ndarray(1000, dtype="f8")
    arr[:] = 1.0
    assert view.verified is None and arr.base.verified is None
    assert arr.base.verify() is True
    assert view.verified is True  # seen through the View Section.map returned
    other = numamap.view_of(np.asarray(view)) if numamap.PLATFORM == "linux" else view.ndarray(8).base
    assert other.verified is True
    view.fallback = "noted"
    assert arr.base.fallback == "noted" and other.fallback == "noted"


@pytest.mark.numa_calls
@pytest.mark.linux
def test_migrate_updates_every_holder():
    a = numamap.ones(1 << 16, node=0, page_size="4K")  # a mapping of its own, not an arena block
    b = a.base.ndarray(16, dtype="u1")  # another array over the same view
    numamap.migrate(a, 0)
    assert a.base.request.policy == "bind" and b.base.request.policy == "bind"
    assert a.base.verified is True and b.base.verified is True


@pytest.mark.numa_calls
def test_verify_asks_move_pages_only(monkeypatch):
    def no_smaps(*args):
        raise AssertionError("verification read /proc/self/smaps")

    monkeypatch.setattr(backend, "page_size_breakdown", no_smaps)
    a = numamap.zeros(1 << 15, node=0, populate=True)
    assert a.base.verified is True and a.base.verify() is True


@pytest.mark.parametrize("close", ["a.base.close()", "numamap.view_of(a).close()",
                                   "a.base.__enter__(); a.base.__exit__(None, None, None)"])
@pytest.mark.parametrize("make", ["numamap.zeros(1 << 20, dtype='u1', page_size='4K')",
                                  "numamap.zeros(1 << 20, dtype='u1', policy='bind', node=0)",
                                  "numamap.ring_buffer(1 << 16)",
                                  "numamap.partitioned(1 << 20, dtype='u1')",
                                  "numamap.Section(1 << 20).map().ndarray(1 << 20)"])
def test_closing_an_arrays_view_keeps_its_memory(make, close):
    code = textwrap.dedent(f"""
        import gc, numamap
        a = {make}
        {close}
        gc.collect()
        a[:] = 7
        assert int(a[-1]) == 7 and a.base.closed
        print("alive")
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "alive", done.stderr


def test_a_closed_views_arrays_keep_the_mapping():
    view = numamap.Section(1 << 20).map()
    arr = view.ndarray(1 << 20)
    view.close()
    gc.collect()
    arr[:] = 3
    assert arr.sum() == 3 << 20
    with pytest.raises(ValueError, match="closed"):
        view.ndarray(4)


@pytest.mark.parametrize("dtype", [object, [("a", "f8"), ("b", object)]])
def test_object_dtypes_are_refused(dtype):
    view = numamap.Section(1 << 16).map()
    with pytest.raises(TypeError, match="Python objects"):
        view.ndarray(4, dtype=dtype)
