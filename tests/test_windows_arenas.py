"""The node arenas and the NEP 49 handler on Windows: numamap/_numamap_arena.dll.

Windows tier (``@windows``, under Wine 8.0 by tools/wine-python; the DLL is built first with
``python numamap/_build_windows_dll.py``): blocks of many sizes, reuse, trimming, threads, the
handler under numpy. Each test holds on real Windows too. What Wine cannot show: placement on a
node other than 0 (Wine has one node and ignores the NumaNode parameter) and large pages (Wine
refuses MEM_LARGE_PAGES with error 87): there the tests check the refusal and the fallback.

Host tier: the module says where the arenas come from off Windows, and the DLL build says what
to install when the cross compiler is missing.
"""
import contextlib
import importlib.util
import pathlib
import subprocess
import sys
import threading
import types

import numpy as np
import pytest

import numamap
from numamap import _windows as windows_backend
from numamap import _windows_arenas as arenas
from numamap import _windows_exports as exports
from numamap import _windows_large_pages as large_pages
from numamap import _windows_placeholders as placeholders
from numamap import _windows_working_set as working_set
from numamap._records import HandlerConfig

windows = pytest.mark.windows

KiB, MiB = 1 << 10, 1 << 20
MEM_FREE = 0x10000
SIZES = (16, 100, 4 * KiB, 64 * KiB, 256 * KiB, 256 * KiB + 1, MiB, 8 * MiB, 64 * MiB)
SMALL_MAX = 262144  # NM_ARENA_SMALL_MAX
ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture
def a():
    """The arenas with the decay time out of the way (nothing goes back while a test runs),
    restored afterwards."""
    arenas.arena_configure(3600.0, 1 << 30)
    yield arenas
    arenas.arena_configure(arenas.DEFAULT_DECAY_MS / 1000, arenas.DEFAULT_CACHE_LIMIT)


def take(node, page_kind, nbytes, zero=False):
    block = arenas.ArenaBuffer()
    arenas.arena_take(block, node, page_kind, nbytes, zero)
    return block


def stats_of(node, page_kind, page_size=None):
    """The counters of one arena (None when it does not exist yet)."""
    for s in arenas.arena_stats():
        if s.node == node and s.page_kind == page_kind and page_size in (None, s.page_size):
            return s
    return None


def pattern(nbytes, seed):
    return (np.arange(nbytes, dtype=np.uint32) * 2654435761 + seed).astype(np.uint8)


def get_handler_name(arr=None):
    multiarray = getattr(np, "_core", None) or np.core
    return multiarray.multiarray.get_handler_name(*(() if arr is None else (arr,)))


@contextlib.contextmanager
def installed(capsule):
    """``capsule`` as numpy's handler in this context, as numamap.policy installs it."""
    from numamap.memory_handler import _c_api

    previous = _c_api().set_handler(capsule)
    try:
        yield
    finally:
        _c_api().set_handler(previous)


# ------------------------------------------------------------------------------------------------
# Host tier


@pytest.mark.linux
def test_off_windows_the_arena_entries_say_where_the_arenas_come_from():
    for call in (lambda: arenas.arena_take(arenas.ArenaBuffer(), 0, "base", 16, False),
                 lambda: arenas.arena_stats(), lambda: arenas.arena_trim(),
                 lambda: arenas.handler_new(HandlerConfig("numamap_x", 0, 0, "auto"))):
        with pytest.raises(NotImplementedError, match="_numamap_arena.dll .*Linux backend"):
            call()
    assert arenas.ArenaBuffer().address == 0 and arenas.ArenaBuffer().nbytes == 0


def _dll_builder():
    spec = importlib.util.spec_from_file_location("_build_windows_dll_under_test",
                                                  ROOT / "numamap" / "_build_windows_dll.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.linux  # the DLL is built on Linux
def test_the_dll_build_names_the_package_when_the_cross_compiler_is_missing():
    result = subprocess.run([sys.executable, str(ROOT / "numamap" / "_build_windows_dll.py")],
                            env={"NUMAMAP_MINGW_CC": "no-such-mingw-gcc", "PATH": "/nonexistent"},
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert "apt-get install gcc-mingw-w64-x86-64" in result.stderr and result.stdout == ""


def test_the_dll_exports_every_function_of_the_headers_cdef_regions():
    names = _dll_builder().declared_functions()
    headers = (ROOT / "numamap" / "_arena.h").read_text() + (ROOT / "numamap" / "_arena_handler.h").read_text()
    for name in ("nm_arena_alloc", "nm_arena_free", "nm_arena_trim", "nm_handler_new", "nm_handler_block_info",
                 "nm_handler_capsule_destructor"):
        assert name in names
    assert all(f"{name}(" in headers for name in names) and len(set(names)) == len(names)
    assert not any(name.startswith("nm_os_") for name in names)  # the OS hooks stay inside the DLL


# ------------------------------------------------------------------------------------------------
# Windows tier: the DLL


@windows
def test_a_missing_dll_raises_saying_how_to_build_it(monkeypatch):
    monkeypatch.setattr(arenas, "_loaded", None)
    monkeypatch.setattr(arenas, "DLL_PATH", str(ROOT / "numamap" / "no-such.dll"))
    for call in (lambda: arenas.arena_stats(), lambda: arenas.handler_new(HandlerConfig("numamap_x", 0, 0, "auto")),
                 lambda: arenas.handler_block_info(0)):
        with pytest.raises(NotImplementedError, match=r"_numamap_arena\.dll.*_build_windows_dll\.py.*"
                                                      r"gcc-mingw-w64-x86-64"):
            call()


@windows
@pytest.mark.parametrize("nbytes", SIZES)
def test_blocks_of_every_size_are_written_freed_and_reused(a, nbytes):
    block = take(0, "base", nbytes)
    data = np.frombuffer(block, dtype=np.uint8)  # the buffer protocol (__buffer__)
    assert data.size == nbytes and block.nbytes == nbytes
    data[:] = pattern(nbytes, 7)
    via_interface = np.asarray(types.SimpleNamespace(__array_interface__=block.__array_interface__))
    assert np.array_equal(via_interface, pattern(nbytes, 7))  # the same bytes
    info = a.arena_block_info(block.address)
    assert info.kind == ("small" if nbytes <= SMALL_MAX else "large")
    assert info.length >= nbytes and info.node == 0 and info.page_kind == "base" and info.page_size == 4096
    assert block.address % (4096 if info.kind == "large" else 16) == 0
    # The pages are where they were asked for (under Wine trivially: one node, and the NumaNode
    # parameter is ignored).
    start = block.address - block.address % 4096
    nodes = windows_backend.page_nodes(start, block.address + nbytes - start, 4096)
    assert np.mean(nodes == 0) >= 0.9
    del data, block
    before = stats_of(0, "base")
    again = take(0, "base", nbytes)
    after = stats_of(0, "base")
    assert after.hits == before.hits + 1 and after.misses == before.misses  # reused, not mapped
    assert before.in_use + nbytes <= after.in_use <= before.in_use + info.length
    np.frombuffer(again, dtype=np.uint8)[:] = 1


@windows
def test_a_zeroed_block_reads_zero_where_a_freed_one_held_data(a):
    for nbytes in (48, 200 * KiB, 3 * MiB):
        dirty = take(0, "base", nbytes)
        np.frombuffer(dirty, dtype=np.uint8)[:] = 0xFF
        del dirty
        clean = take(0, "base", nbytes, zero=True)
        assert not np.frombuffer(clean, dtype=np.uint8).any()


@windows
def test_a_block_goes_back_once_when_the_last_buffer_of_it_is_gone(a):
    block = take(0, "base", 2 * MiB)
    length = a.arena_block_info(block.address).length
    start = stats_of(0, "base").in_use
    view = memoryview(block)
    array = np.asarray(block)  # numpy takes the buffer protocol too
    assert block._nm_exports == 2
    del block
    assert stats_of(0, "base").in_use == start  # still out: the view and the array hold it
    view[:4] = b"abcd"
    assert bytes(array[:4]) == b"abcd"
    del view
    assert stats_of(0, "base").in_use == start
    del array
    assert stats_of(0, "base").in_use == start - length  # given back, once


@windows
def test_bad_requests_are_refused_by_name(a):
    block = take(None, "base", 64)
    with pytest.raises(ValueError, match="already holds"):
        a.arena_take(block, None, "base", 64, False)
    with pytest.raises(TypeError, match="ArenaBuffer"):
        a.arena_take(bytearray(8), None, "base", 64, False)
    with pytest.raises(ValueError, match="page_kind='4K'"):
        take(None, "4K", 64)
    with pytest.raises(ValueError, match="node=64"):
        take(64, "base", 64)
    with pytest.raises(ValueError, match="nbytes=-1"):
        take(None, "base", -1)
    with pytest.raises(ValueError, match="decay"):
        a.arena_configure(-1.0, 0)
    with pytest.raises(BufferError, match="not taken"):
        memoryview(a.ArenaBuffer())
    assert take(None, "base", 0).nbytes == 0  # an empty array still gets a block of its own


@windows
def test_trim_gives_the_cached_bytes_back(a):
    large = [take(0, "base", 4 * MiB) for _ in range(4)]
    small = [take(0, "base", 1000) for _ in range(100)]
    addresses = [b.address for b in large]
    del large, small
    before = {(s.node, s.page_kind, s.page_size): s for s in a.arena_stats()}
    assert before[(0, "base", 4096)].cached >= 4 * 4 * MiB
    infos = [placeholders.query(address) for address in addresses]  # made before: nothing maps between
    trimmed = a.arena_trim()
    for address, info in zip(addresses, infos):
        assert exports.api["VirtualQuery"](exports.ptr(address), info, exports.ffi.sizeof(info[0]))
    assert [int(info.State) for info in infos] == [MEM_FREE] * 4  # the whole mappings went back
    after = {(s.node, s.page_kind, s.page_size): s for s in a.arena_stats()}
    assert trimmed == sum(after[k].returned - before[k].returned for k in before)
    assert trimmed >= 4 * 4 * MiB
    assert after[(0, "base", 4096)].cached < before[(0, "base", 4096)].cached
    assert after[(0, "base", 4096)].mapped <= before[(0, "base", 4096)].mapped - 4 * 4 * MiB


@windows
def test_threads_take_and_free_blocks_at_once(a):
    errors, threads, start = [], 8, threading.Barrier(8)
    rng = np.random.default_rng(11)
    plans = [rng.integers(16, 400 * KiB, size=200) for _ in range(threads)]

    def work(index):
        try:
            start.wait()
            live = []
            for step, nbytes in enumerate(plans[index]):
                block = take(0, "thp", int(nbytes))
                mark = (index * 31 + step) % 255 + 1
                np.frombuffer(block, dtype=np.uint8)[:] = mark
                live.append((block, mark))
                if len(live) > 6:
                    old, mark = live.pop(0)
                    assert (np.frombuffer(old, dtype=np.uint8) == mark).all()
            for old, mark in live:
                assert (np.frombuffer(old, dtype=np.uint8) == mark).all()
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    assert not errors, errors
    assert stats_of(0, "thp").in_use == 0
    # The workers ended: their thread caches went back to the arena (the fiber-local exit
    # hook), so trimming leaves nothing of this arena mapped.
    a.arena_trim()
    assert stats_of(0, "thp").mapped == 0


# ------------------------------------------------------------------------------------------------
# Windows tier: the NEP 49 handler under numpy


@windows
def test_numpy_allocates_through_the_handler_and_names_it(a):
    name = "numamap_wine_node0"
    capsule = a.handler_new(HandlerConfig(name, 0, 0, "auto"))
    assert a.handler_check(capsule) == 0
    inputs = [(np.arange(n, dtype=np.float64), np.full(n, 3.0), np.full(n, 0.5)) for n in (1, 100, 10**5, 2 * 10**6)]
    with installed(capsule):
        assert get_handler_name() == name
        made = [(x * y + z, np.ones(len(x))) for x, y, z in inputs]
    for (result, ones), (x, y, z) in zip(made, inputs):
        assert numamap.handler_name(result) == name == get_handler_name(result)
        assert np.array_equal(result, x * 3.0 + 0.5) and ones.sum() == len(x)
        info = a.handler_block_info(result.ctypes.data)
        assert info.kind in ("small", "large") and info.node == 0 and info.page_kind == "base"
    stats = a.handler_stats(capsule)
    assert stats.blocks >= 2 * len(inputs) and stats.errors == 0
    freed = stats.freed
    del made, result, ones
    assert a.handler_stats(capsule).freed == freed + 2 * len(inputs)


@windows
def test_small_arrays_come_from_malloc_under_min_size(a):
    capsule = a.handler_new(HandlerConfig("numamap_min", -1, 4096, "auto"))
    with installed(capsule):
        small, big = np.zeros(10), np.zeros(1000)
    assert a.handler_block_info(small.ctypes.data).kind == "malloc"
    assert a.handler_block_info(small.ctypes.data).page_size == 4096
    big_info = a.handler_block_info(big.ctypes.data)
    assert big_info.kind == "small" and big_info.node is None
    assert a.arena_block_info(small.ctypes.data) is None  # not an arena block


@windows
def test_realloc_stays_in_place_when_it_fits_and_moves_the_data_when_not(a):
    capsule = a.handler_new(HandlerConfig("numamap_realloc", 0, 0, "base"))
    with installed(capsule):
        for count, fits, grown in ((1000, 1010, 200_000), (600_000, 640_000, 3_000_000)):
            arr = np.arange(count, dtype=np.float64)
            address, before = arr.ctypes.data, a.handler_stats(capsule).in_place
            arr.resize(fits, refcheck=False)  # within its size class (8 KiB; a 5 MiB mapping)
            assert arr.ctypes.data == address and a.handler_stats(capsule).in_place == before + 1
            arr.resize(grown, refcheck=False)
            assert np.array_equal(arr[:count], np.arange(count, dtype=np.float64))
            assert a.handler_block_info(arr.ctypes.data).length >= grown * 8
            del arr


@windows
def test_threads_allocate_under_their_own_handler(a):
    capsule = a.handler_new(HandlerConfig("numamap_threads", 0, 0, "auto"))
    errors, start = [], threading.Barrier(4)

    def work(seed):
        try:
            with installed(capsule):  # numpy's handler is per thread (a context variable)
                start.wait()
                rng = np.random.default_rng(seed)
                for _ in range(200):
                    n = int(rng.integers(1, 50_000))
                    x = np.arange(n, dtype=np.int64) + seed
                    assert get_handler_name(x) == "numamap_threads"
                    assert int(x[-1]) == n - 1 + seed and int(x.sum()) == n * (n - 1) // 2 + n * seed
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    assert not errors, errors
    stats = a.handler_stats(capsule)
    assert stats.blocks >= 800 and stats.errors == 0 and stats.freed == stats.blocks


@windows
def test_refused_large_pages_are_reported_and_the_handler_falls_back(a):
    works = large_pages.status()[0]
    if works:  # real Windows with "Lock pages in memory" granted
        block = take(None, "2M", 2 * MiB)
        assert a.arena_block_info(block.address).page_kind == "hugetlb"
    else:  # Wine (87), or an account without the right (1314)
        with pytest.raises((MemoryError, PermissionError), match="MEM_LARGE_PAGES") as caught:
            take(None, "2M", 2 * MiB)
        assert "winerror 87" in str(caught.value) or "winerror 1314" in str(caught.value)
        refused = stats_of(None, "hugetlb", 2 * MiB)
        assert refused.failures >= 1 and refused.last_error in (87, 1314, 1450)
        assert a.arena_check(None, "2M") == refused.last_error
    capsule = a.handler_new(HandlerConfig("numamap_2M", -1, 0, "2M"))
    assert a.handler_check(capsule) == 0  # a pool that cannot serve is not a refusal
    with installed(capsule):
        arr = np.ones(MiB // 8)
    assert arr.sum() == MiB // 8
    info, stats = a.handler_block_info(arr.ctypes.data), a.handler_stats(capsule)
    if works:
        assert info.page_kind == "hugetlb" and stats.hugetlb == 1
    else:
        assert info.page_kind in ("thp", "base") and stats.hugetlb == 0
        assert stats.hugetlb_fallbacks == stats.blocks >= 1  # every block, counted as a fallback
    # 'auto' does not try large pages where they do not work
    auto = a.handler_new(HandlerConfig("numamap_auto", -1, 0, "auto"))
    with installed(auto):
        arr = np.ones(MiB // 8)
    assert a.handler_block_info(arr.ctypes.data).page_kind == ("hugetlb" if works else "base")


@windows
def test_policy_places_numpy_arrays_through_the_arenas(a):
    with numamap.policy(0) as placed:
        big, small = np.ones(1 << 20), np.ones(16)
    assert numamap.handler_name(big) == numamap.handler_name(small) == "numamap_node0" == get_handler_name(big)
    assert numamap.block_info(small).kind == "small" and numamap.block_info(big).kind == "large"
    assert numamap.block_info(big).node == 0 and numamap.block_info(big).page_kind == "base"
    assert numamap.where(big).fraction_on(0) == 1.0
    assert big.sum() == 1 << 20 and small.sum() == 16
    assert placed.stats()["errors"] == 0 and placed.stats()["blocks"] >= 2
    with numamap.policy(0, page_size="2M") as huge:
        arr = np.ones(1 << 20)
    assert arr.sum() == 1 << 20
    if not large_pages.status()[0]:  # Wine: refused, and said so in the counters
        assert huge.stats()["hugetlb_fallbacks"] >= 1 and huge.stats()["hugetlb"] == 0
        assert numamap.block_info(arr).page_kind != "hugetlb"


@windows
def test_trim_decommits_the_free_units_of_a_chunk_still_in_use(a):
    keep = take(None, "base", 1000)  # keeps its chunk mapped
    blocks = [take(None, "base", 100 * KiB) for _ in range(8)]
    for block in blocks:
        np.frombuffer(block, dtype=np.uint8)[:] = 0xAB  # faulted in: in the working set
    pages = [(b.address + 4095) // 4096 * 4096 for b in blocks]
    assert all(working_set.attributes(p, 8, 4096)[0] & 1 for p in pages)
    before = stats_of(None, "base").returned
    del blocks, block
    a.arena_trim()
    assert stats_of(None, "base").returned - before >= 8 * 64 * KiB  # whole 64 KiB units
    valid = np.concatenate([working_set.attributes(p, 8, 4096) & 1 for p in pages])
    assert not valid.any()  # decommitted: the pages went back
    again = take(None, "base", 100 * KiB)  # and the range serves blocks again
    np.frombuffer(again, dtype=np.uint8)[:] = 1
    assert np.frombuffer(keep, dtype=np.uint8).size == 1000
