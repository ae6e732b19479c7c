"""Node arenas (numamap.arenas): reuse without faults, statistics, trim, decay, and bounded RSS.

Host tier: everything here holds on one node. Placement on several nodes is tests/test_numa_arenas.py
(multi-node tier); the Windows DLL is tests/test_windows_arenas.py (Windows tier).
"""
import gc
import sys
import threading
import time

import numpy as np
import pytest

import numamap
from numamap.arenas import ArenaBlock, arena_settings

if sys.platform == "win32":
    pytest.skip("needs the Linux backend: runs in the host and multi-node tiers (the Windows tier "
                "runs tests/test_windows_arenas.py)", allow_module_level=True)
import resource  # noqa: E402 - after the skip: Windows has no resource module

pytestmark = [pytest.mark.linux, pytest.mark.numa_calls]

MiB = 1 << 20


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


def _faults() -> int:
    return resource.getrusage(resource.RUSAGE_THREAD).ru_minflt


def _totals():
    return numamap.arena_stats().totals()


@pytest.fixture(autouse=True)
def _default_settings():
    numamap.configure_arenas(decay=1.0, cache_limit=1 << 30)
    yield
    numamap.configure_arenas(decay=1.0, cache_limit=1 << 30)
    gc.collect()


@pytest.mark.parametrize("nbytes", [16, 8 << 10, 200 << 10, 4 * MiB, 64 * MiB])
def test_a_freed_block_is_reused_without_faulting_again(nbytes):
    first = numamap.empty(nbytes, np.uint8, node=0)
    first[:] = 1  # faulted in
    address = first.base.address
    del first
    misses = _totals()["misses"]
    before = _faults()
    again = numamap.empty(nbytes, np.uint8, node=0)
    again[:] = 2
    faults = _faults() - before
    assert again.base.address == address  # the same block, straight back
    assert _totals()["misses"] == misses
    assert faults < 16, f"{faults} page faults writing a reused {nbytes}-byte block"


def test_zeros_clears_a_reused_block():
    dirty = numamap.ones(1000, node=0)
    address = dirty.base.address
    del dirty
    clean = numamap.zeros(1000, node=0)
    assert clean.base.address == address
    assert not clean.any()


def test_the_base_tells_node_pages_kind_and_placement():
    small, large = numamap.ones(100, node=0), numamap.ones(4 * MiB // 8, node=0)
    for arr, kind in ((small, "small"), (large, "large")):
        block = arr.base
        assert isinstance(block, ArenaBlock) and numamap.view_of(arr) is block
        assert (block.node, block.kind, block.nbytes) == (0, kind, arr.nbytes)
        assert block.page_kind in ("hugetlb", "thp", "base")
        assert block.page_size in (4096, 2 * MiB)
        assert block.verified is True  # written by ones(): every touched page on node 0
        assert numamap.where(arr).fraction_on(0) == 1.0
        assert "node 0" in block.summary() and "placement verified" in block.summary()
        assert "<table>" in block._repr_html_() and "ArenaBlock" in repr(block)


def test_untouched_blocks_say_so():
    arr = numamap.empty(64 * MiB, np.uint8, node=0)
    numamap.trim()
    fresh = numamap.empty(256 * MiB, np.uint8, node=0)  # a new mapping: nothing touched yet
    if fresh.base.page_kind != "hugetlb":  # hugetlb chunks are faulted in when mapped
        assert fresh.base.verified is None
    del arr


def test_stats_count_use_cache_hits_misses_and_what_went_back():
    numamap.trim()
    start = _totals()
    arrays = [numamap.ones(n, node=0) for n in (10, 1000, 100_000, 3_000_000)]
    during = _totals()
    assert during["in_use"] - start["in_use"] >= sum(a.nbytes for a in arrays)
    assert during["mapped"] >= during["in_use"]
    del arrays
    after = _totals()
    assert after["in_use"] <= during["in_use"] - 3_000_000 * 8
    assert after["cached"] > start["cached"]
    reused = numamap.ones(3_000_000, node=0)
    assert _totals()["hits"] > after["hits"]
    given = numamap.trim()
    assert given >= 0 and _totals()["returned"] >= after["returned"] + given
    table = numamap.arena_stats()
    assert "node" in str(table) and "<table>" in table._repr_html_()
    del reused


def test_trim_brings_rss_back_after_a_gigabyte_is_freed():
    numamap.trim()
    start = _rss()
    with numamap.policy(0):
        arrays = [np.ones(2 * MiB) for _ in range(56)] + [np.ones(8192) for _ in range(2048)]
    assert sum(a.nbytes for a in arrays) == 1 << 30
    del arrays
    assert numamap.trim() > 0
    assert _rss() - start < 64 * MiB, f"RSS is {(_rss() - start) / MiB:.0f} MiB above the start"


def test_rss_stays_bounded_in_a_loop_that_allocates_and_frees():
    rng = np.random.default_rng(1)
    sizes = rng.integers(1, 32 * MiB, 400)

    def loop():
        for size in sizes:
            arr = numamap.empty(int(size), np.uint8, node=0)
            arr[:: 4096] = 1  # touch every page
            del arr

    loop()
    settled = _rss()
    for _ in range(3):
        loop()
    assert _rss() - settled < 256 * MiB, "RSS grew over loops that free all they allocate"


def test_idle_memory_goes_back_after_the_decay_time():
    numamap.configure_arenas(decay=0.2)
    numamap.trim()
    arr = numamap.ones(32 * MiB // 8, node=0)
    returned = _totals()["returned"]
    del arr
    deadline = time.monotonic() + 20  # the decay thread wakes every 0.1 s here
    while _totals()["returned"] < returned + 32 * MiB and time.monotonic() < deadline:
        time.sleep(0.02)  # polling the counter: the condition, not the sleep, is what is waited for
    assert _totals()["returned"] >= returned + 32 * MiB


def test_cache_limit_bounds_cached_large_blocks():
    numamap.configure_arenas(cache_limit="64M", decay=3600)
    numamap.trim()
    arrays = [numamap.ones(16 * MiB // 8, node=0) for _ in range(8)]
    del arrays
    large_cached = _totals()["cached"]
    assert large_cached <= 64 * MiB + 8 * MiB  # chunks of small blocks aside


def test_configure_arenas_refuses_nonsense():
    with pytest.raises(ValueError, match="decay"):
        numamap.configure_arenas(decay=-1)
    with pytest.raises(ValueError, match="decay"):
        numamap.configure_arenas(decay=True)
    with pytest.raises((ValueError, TypeError), match="cache_limit"):
        numamap.configure_arenas(cache_limit="lots")
    assert numamap.configure_arenas()["decay"] == 1.0
    assert "auto_pages" in arena_settings()


def test_realloc_stays_in_place_when_the_block_fits():
    with numamap.policy(0) as placed:
        arr = np.ones(1000)  # 8000 B: class 8192
        address = arr.__array_interface__["data"][0]
        arr.resize(1010, refcheck=False)
        assert arr.__array_interface__["data"][0] == address
        assert placed.stats()["in_place"] >= 1
        arr[:] = 3
        arr.resize(100_000, refcheck=False)  # grows past the class: moves, data kept
        assert (arr[:1010] == 3).all() and numamap.block_info(arr).node == 0


def test_threads_allocating_under_their_policies_keep_their_data():
    errors = []
    start = threading.Barrier(4)

    def work(seed):
        rng = np.random.default_rng(seed)
        try:
            with numamap.policy(0):
                start.wait()
                live = []
                for i in range(3000):
                    arr = np.full(int(rng.integers(1, 40_000)), seed * 10_000 + i, dtype=np.int64)
                    live.append(arr)
                    if len(live) > 32:
                        old = live.pop(int(rng.integers(0, len(live))))
                        if not (old == old[0]).all():
                            errors.append(f"thread {seed}: an array changed under it")
        except Exception as exc:  # reported below, with the thread's seed
            errors.append(f"thread {seed}: {exc!r}")

    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_numamap_info_shows_the_arenas(capsys):
    from numamap.cli import main

    numamap.ones(10, node=0)
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "node arenas: decay" in out and "hits" in out


def test_a_forked_child_never_writes_into_its_parents_hugetlb_blocks(hugepage_pool):
    """Hugetlb chunks are MAP_SHARED: a child's frees and new blocks must leave the parent's
    memory alone (a free list link written into a shared block would change the parent's data)."""
    from fuzzing import in_child

    hugepage_pool(2048, 8)
    with numamap.policy(0):
        keep = np.full(1000, 7.0)
        cached = np.full(1000, 1.0)
    if numamap.block_info(keep).page_kind != "hugetlb":
        pytest.fail(f"the policy did not take the reserved pool: {numamap.block_info(keep)}")
    kept_at = keep.__array_interface__["data"][0]
    del cached  # a free block in this thread's cache: its link lives in the shared page

    def child():
        nonlocal keep
        with numamap.policy(0):
            fresh = [np.full(1000, 3.0) for _ in range(64)]
        assert kept_at not in {a.__array_interface__["data"][0] for a in fresh}
        del keep  # the child frees its inherited view of the parent's block
        assert all((a == 3.0).all() for a in fresh)

    assert in_child(child) == 0
    assert (keep == 7.0).all(), "the child wrote into the parent's block"
    with numamap.policy(0):
        again = [np.full(1000, 5.0) for _ in range(64)]
    assert all((a == 5.0).all() for a in again) and (keep == 7.0).all()
