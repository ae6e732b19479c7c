"""numamap.policy, the NEP 49 memory handler over the node arenas: host tier, one multi-node
(numa) test, and tests that run on Windows too (its arena DLL serves the same handler).

Every allocation comes from the node's arena by default (``min_size=0``): small blocks (up to
256 KiB) by size class from chunks placed on the node, large ones from mappings of their own
cached whole. Tests that need malloc'd blocks ask for them with ``min_size=MIN``.
"""
import asyncio
import contextvars
import ctypes
import errno
import warnings
import gc
import importlib
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import numamap
from numamap.memory_handler import DEFAULT_MIN_SIZE, block_info, handler_name, policy
from fuzzing import SMALL_MAX, address, arena_defaults, assert_block, class_size

policy_module = importlib.import_module("numamap.memory_handler")

KiB, MiB = 1 << 10, 1 << 20
MIN = 64 * KiB
N = MiB // 8  # float64 elements in 1 MiB: a large block
DEFAULT = "default_allocator"
NODE0 = "numamap_node0"
STATS = {"blocks", "freed", "hugetlb", "hugetlb_fallbacks", "in_place", "errors", "last_error"}
# Python 3.14 can make new threads inherit the creating thread's context (free-threaded default).
THREADS_INHERIT = bool(getattr(sys.flags, "thread_inherit_context", False))

try:
    _multiarray = importlib.import_module("numpy._core.multiarray")
except ImportError:  # numpy 1.x
    _multiarray = importlib.import_module("numpy.core.multiarray")
get_handler_name, get_handler_version = _multiarray.get_handler_name, _multiarray.get_handler_version


def vm_flags(arr) -> set:
    """The VmFlags of the mapping that holds ``arr``'s data (from /proc/self/smaps)."""
    at = address(arr)
    inside = False
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            head = line.split()[0]
            if "-" in head and ":" not in head:
                low, high = (int(x, 16) for x in head.split("-"))
                inside = low <= at < high
            elif inside and line.startswith("VmFlags:"):
                return set(line.split()[1:])
    raise AssertionError(f"no mapping holds {at:#x}")


class Allocator:
    """The handler's C functions, called directly through ctypes."""

    def __init__(self, p):
        self.policy = p  # keeps the handler alive
        handler = policy_module._c_api().capsule_pointer(p._capsule, b"mem_handler")
        ctx, malloc, calloc, realloc, free = (ctypes.c_void_p * 5).from_address(handler + 128)
        vp, size = ctypes.c_void_p, ctypes.c_size_t
        self.ctx = ctx
        self.malloc = ctypes.CFUNCTYPE(vp, vp, size)(malloc)
        self.calloc = ctypes.CFUNCTYPE(vp, vp, size, size)(calloc)
        self.realloc = ctypes.CFUNCTYPE(vp, vp, vp, size)(realloc)
        self.free = ctypes.CFUNCTYPE(None, vp, vp, size)(free)


# --------------------------------------------------------------------------------------------
# Every platform (these run in the Windows tier too)


@pytest.mark.numa_calls
def test_policy_serves_numpy_from_the_arena_on_every_platform():
    p = policy(0)
    with p:
        small, large = np.arange(10.0), np.ones(N)
    assert handler_name(small) == handler_name(large) == p.name
    assert block_info(small).kind == "small" and block_info(large).kind == "large"
    assert small.sum() == 45.0 and large.sum() == N
    assert set(p.stats()) == STATS and p.stats()["blocks"] >= 2


def test_handler_name_of_numpys_own_arrays():
    a = np.arange(10)
    assert handler_name(a[::2]) == handler_name(a) == handler_name() == get_handler_name(a)
    assert block_info(a) is None and block_info(a[1:]) is None


# --------------------------------------------------------------------------------------------
# Installing and naming


@pytest.mark.linux
class TestInstalling:
    """Installing, restoring and naming handlers."""

    @pytest.mark.numa_calls
    def test_a_block_installs_the_handler_and_restores_the_previous_one(self):
        before = handler_name()
        p = policy(0)
        with p as entered:
            assert entered is p
            assert handler_name() == get_handler_name() == p.name == NODE0
            a = np.arange(10).reshape((2, 5))  # a view: the owner is a.base
        assert handler_name() == before == DEFAULT
        assert get_handler_name(a) is None and get_handler_version(a) is None
        assert get_handler_name(a.base) == NODE0 and get_handler_version(a.base) == 1
        assert handler_name(a) == NODE0

    def test_leaving_restores_the_very_same_handler_object(self):
        api = policy_module._c_api()
        before = api.get_handler()
        with policy(0):
            assert api.get_handler() is not before
        assert api.get_handler() is before

    @pytest.mark.numa_calls
    def test_nested_blocks_restore_in_order(self):
        outer, inner = policy(0), policy(None)
        with outer:
            with inner:
                assert handler_name() == "numamap_local"
                with outer:  # the same policy entered twice
                    assert handler_name() == NODE0
                assert handler_name() == "numamap_local"
            assert handler_name() == NODE0
        assert handler_name() == DEFAULT

    def test_leaving_a_block_never_entered_here_raises(self):
        with pytest.raises(RuntimeError, match="not entered in this context"):
            policy(0).__exit__(None, None, None)

    @pytest.mark.numa_calls
    def test_handler_name_walks_views_subclasses_and_memoryviews(self):
        class Sub(np.ndarray):
            pass

        with policy(0):
            a = np.arange(12.0)
        v = a.view(Sub).reshape(3, 4)[1:]
        assert get_handler_name(v) is None and get_handler_name(v.base) is None
        assert handler_name(v) == NODE0 and block_info(v) == block_info(a)
        assert handler_name(np.asarray(memoryview(a))) == NODE0
        assert handler_name(np.frombuffer(b"abcd", dtype=np.uint8)) is None
        # numamap's own arrays: an ArenaBlock or a View holds the memory, no ndarray owns it
        assert handler_name(numamap.zeros(10)) is None and block_info(numamap.zeros(10)) is None
        assert handler_name(numamap.zeros(10, page_size="4K")) is None
        assert handler_name(np.arange(3)) == DEFAULT and block_info(np.arange(3)) is None
        with pytest.raises(TypeError, match="numpy array"):
            handler_name([1, 2])

    def test_the_capsule_is_named_as_numpy_requires(self):
        is_valid = ctypes.pythonapi["PyCapsule_IsValid"]
        is_valid.restype, is_valid.argtypes = ctypes.c_int, (ctypes.py_object, ctypes.c_char_p)
        assert is_valid(policy(0)._capsule, b"mem_handler") == 1

    @pytest.mark.numa_calls
    def test_repr_and_arguments(self):
        p = policy(0, min_size="4M", page_size="auto")
        assert p.min_size == 4 * MiB and p.page_size is None and p.node == 0 and p.page_kind == "auto"
        assert repr(p) == ("<numamap.policy 'numamap_node0': blocks >= 4 MiB from the arena of node 0, "
                           "pages auto>")
        assert policy().name == "numamap_local" and policy().node is None
        assert policy(np.int64(0)).name == NODE0
        assert DEFAULT_MIN_SIZE == 0 and policy(0).min_size == 0  # every allocation is placed
        assert policy(0, page_size="4K").page_kind == "base"  # no THP, even where THP is 'always'
        assert policy(0, page_size="4K").page_size == os.sysconf("SC_PAGE_SIZE")
        assert set(p.stats()) == STATS and not any(p.stats().values())

    @pytest.mark.parametrize("kwargs, error", [
        (dict(node=4096), ValueError), (dict(node="0"), TypeError), (dict(node=True), TypeError),
        (dict(page_size="3M"), ValueError), (dict(min_size=-1), ValueError),
        (dict(min_size="lots"), ValueError),
    ])
    def test_bad_arguments_are_refused(self, kwargs, error):
        with pytest.raises(error):
            policy(**kwargs)


    @pytest.mark.numa_calls
    def test_refused_binding_warns_once_unless_strict(self, monkeypatch):
        monkeypatch.setattr(numamap._backend, "handler_check", lambda capsule: errno.EPERM)
        with pytest.raises(numamap.FallbackError, match="cannot place memory on node 0.*CAP_SYS_NICE"):
            policy(0, strict=True)
        with pytest.warns(numamap.FallbackWarning, match="refused to place memory on node 0"):
            p = policy(0)
        assert "kernel's default placement" in p.fallback and "fallback" in repr(p)
        assert p.name == "numamap_node0_unplaced"
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert policy(0).fallback == p.fallback  # warned once per process
        with p:
            a, b = np.ones(N), np.ones(10)
        # still served by the arenas, from the unbound ones (node None: the kernel's placement)
        assert (block_info(a).kind, block_info(a).node) == ("large", None)
        assert (block_info(b).kind, block_info(b).node) == ("small", None)
        assert handler_name(a) == p.name and numamap.where(a).fraction_on(0) == 1.0


# --------------------------------------------------------------------------------------------
# Where numpy's allocations go


def _concatenate(n):
    return np.concatenate([np.ones(n // 2), np.full(n - n // 2, 2.0)])


ALLOCATIONS = {
    "ones": lambda n: np.ones(n),
    "arange": lambda n: np.arange(n, dtype=np.float64),
    "full": lambda n: np.full(n, 7.0),
    "concatenate": _concatenate,
    "ufunc": lambda n: np.add(np.arange(n, dtype=np.float64), 1.0),
    "operators": lambda n: np.ones(n) * 3 + 1,
    "copy": lambda n: np.ones(n)[::-1].copy(),
    "astype": lambda n: np.ones(n, dtype=np.float32).astype(np.float64),
    "2d": lambda n: np.ones((n // 64, 64)).T.copy(),
}


@pytest.mark.linux
class TestPlacement:
    """Which arena serves which allocation, on which node and pages, and resizing blocks."""

    @pytest.mark.numa_calls
    @pytest.mark.parametrize("n", [64, 2048, N], ids=["512B", "16KiB", "1MiB"])
    @pytest.mark.parametrize("make", ALLOCATIONS.values(), ids=ALLOCATIONS.keys())
    def test_every_allocation_comes_from_the_nodes_arena(self, make, n):
        with policy(0):
            arr = make(n)
        assert handler_name(arr) == NODE0
        info = assert_block(arr)
        if info.kind == "small":
            assert info.size == class_size(arr.nbytes)
        else:
            assert info.size == arr.nbytes

    @pytest.mark.numa_calls
    def test_small_blocks_are_carved_by_size_class(self):
        with policy(0, page_size="4K"):
            made = {size: np.empty(size, np.uint8) for size in (1, 16, 17, 128, 129, 160, 161, 8 * KiB,
                                                               8 * KiB + 1, 200 * KiB, SMALL_MAX)}
        expected = {1: 16, 16: 16, 17: 32, 128: 128, 129: 160, 160: 160, 161: 192, 8 * KiB: 8 * KiB,
                    8 * KiB + 1: 10 * KiB, 200 * KiB: 224 * KiB, SMALL_MAX: SMALL_MAX}
        assert {size: block_info(a).size for size, a in made.items()} == expected
        assert all(class_size(size) == expected[size] for size in made)
        with policy(0, page_size="4K"):
            big = np.empty(SMALL_MAX + 1, np.uint8)
        assert block_info(big).kind == "large"

    @pytest.mark.numa_calls
    def test_freed_blocks_are_reused_faulted_in_and_calloc_clears_them(self):
        p = policy(0, page_size="4K")  # base pages: one arena whatever pools the machine has
        for n in (100, 10 * KiB, N):
            with arena_defaults(), p:
                dirty = np.full(n, 3.0)
                first = address(dirty)
                del dirty
                zeros = np.zeros(n)  # calloc over the block just freed: cleared
                dirty = np.full(n, 3.0)
                second = address(dirty)
                del dirty
                objects = np.empty(n, dtype=object)  # calloc too: NULL pointers, read as None
            assert (address(zeros), address(objects)) == (first, second)
            assert not zeros.any() and all(x is None for x in objects)
            assert numamap.where(zeros).touched_fraction == 1.0  # it stayed faulted in
            assert_block(zeros)
        assert p.stats()["in_place"] == 0 and p.stats()["errors"] == 0

    @pytest.mark.numa_calls
    def test_the_default_min_size_places_every_allocation(self):
        with policy(0):
            made = [np.ones(2), np.ones(KiB), np.ones(100 * KiB), np.ones(N), np.empty(0)]
        assert [block_info(a).kind for a in made] == ["small", "small", "large", "large", "small"]
        for arr in made:
            assert handler_name(arr) == NODE0
            assert_block(arr)

    @pytest.mark.numa_calls
    def test_allocations_under_min_size_come_from_malloc_under_the_same_handler(self):
        p = policy(0, min_size=MIN)
        with p:
            small = [np.ones(0), np.ones(1), np.arange(100), np.zeros(MIN // 8 - 1), np.empty(0, "S3")]
            placed = np.ones(MIN // 8)
        for a in small:
            info = block_info(a)
            assert handler_name(a) == NODE0 and (info.kind, info.node) == ("malloc", None), info
        assert_block(placed)
        assert p.stats()["blocks"] == 1

    @pytest.mark.numa_calls
    def test_resize_in_place_when_the_block_fits_and_across_min_size_both_ways(self):
        p = policy(0, min_size=MIN, page_size="4K")
        with p:
            a = np.arange(1000, dtype=np.int64)
            assert block_info(a).kind == "malloc"
            a.resize(N, refcheck=False)  # malloc -> large: into the arena
            assert (a[:1000] == np.arange(1000)).all() and not a[1000:].any()
            assert_block(a)
            a[:] = np.arange(N)
            at = address(a)
            a.resize(3 * N // 4, refcheck=False)  # still a quarter of the mapping or more: in place
            assert address(a) == at and (a == np.arange(3 * N // 4)).all()
            a.resize(3 * N, refcheck=False)  # past the mapping: a new large block, data copied
            assert (a[:3 * N // 4] == np.arange(3 * N // 4)).all() and not a[3 * N // 4:].any()
            assert_block(a)
            a.resize(500, refcheck=False)  # large -> small, in the same arena (not malloc)
            assert_block(a)
            assert (a == np.arange(500)).all()
            at = address(a)
            a.resize(450, refcheck=False)  # 3600 bytes: the 4000-byte block's class still fits
            assert address(a) == at and (a == np.arange(450)).all()
        stats = p.stats()
        assert stats["in_place"] == 2, stats
        del a
        stats = p.stats()
        assert stats["blocks"] == stats["freed"] > 3 and stats["errors"] == 0, stats  # temporaries too

    @pytest.mark.numa_calls
    def test_resize_after_the_block_still_uses_the_arrays_own_handler(self):
        with policy(0, min_size=MIN):
            a = np.ones(100)
        with policy(0):
            b = np.ones(100)
        a.resize(N, refcheck=False)
        b.resize(2 * N, refcheck=False)
        assert handler_name(a) == handler_name(b) == NODE0
        assert_block(a)
        assert_block(b)
        assert a[:100].sum() == b[:100].sum() == 100 and not a[100:].any()

    @pytest.mark.numa_calls
    @pytest.mark.parametrize("page_size", ["4K", "auto"])
    def test_a_grown_block_keeps_its_node_policy(self, page_size):
        from numamap._linux_cffi import ffi, lib

        with policy(0, page_size=page_size):
            a = np.ones(N)
        a.resize(8 * N, refcheck=False)
        info = assert_block(a)
        mode, mask = ffi.new("int *"), ffi.new("unsigned long[16]")
        tail = ffi.cast("void *", address(a[-1:]))
        assert lib.nm_get_mempolicy(mode, mask, 16 * 64, tail, lib.NM_MPOL_F_ADDR) == 0
        wanted = lib.NM_MPOL_BIND if info.page_kind == "hugetlb" else lib.NM_MPOL_PREFERRED
        assert mode[0] == wanted and mask[0] == 1

    @pytest.mark.numa_calls
    def test_loadtxt_allocates_on_the_node(self, tmp_path):
        rows = 40_000  # 1.25 MiB of float64: loadtxt grows its buffer with realloc
        path = tmp_path / "data.txt"
        np.savetxt(path, np.arange(rows * 4).reshape(rows, 4), fmt="%d")
        with policy(0):
            table = np.loadtxt(path)
        assert table.shape == (rows, 4) and table[-1, -1] == rows * 4 - 1
        assert handler_name(table) == NODE0
        assert_block(table)

    def test_zero_size_arrays_free_cleanly_whatever_size_numpy_passes(self):
        p = policy(0)  # every block from the arena, even those of zero-size arrays
        with p:
            arrays = [np.empty(0), np.empty((0, 10)), np.zeros((5, 0), np.complex128), np.ones(0, "S7"),
                      np.arange(0), np.empty(0, dtype=object), np.ones(3)[3:].copy()]
            grown = np.empty(0)
            grown.resize(N, refcheck=False)
        assert {block_info(a).kind for a in arrays} == {"small"} and block_info(grown).kind == "large"
        del arrays, grown
        gc.collect()
        stats = p.stats()
        assert stats["blocks"] == stats["freed"] > 0 and stats["errors"] == 0, stats

    def test_object_and_string_arrays_on_arena_blocks(self):
        with policy(0):
            objs = np.empty(20_000, dtype=object)
            assert all(x is None for x in objs[:100])  # calloc'd: NULL pointers read as None
            objs[:] = [str(i) for i in range(20_000)]
            text = objs.astype("U8")
            order = np.argsort(np.arange(20_000)[::-1])
        assert text[19_999] == "19999" and order[0] == 19_999
        assert [block_info(x).kind for x in (objs, text, order)] == ["small", "large", "small"]
        del objs
        gc.collect()

    @pytest.mark.numa_calls
    def test_page_size_4k_forbids_thp_and_auto_asks_for_it(self):
        with policy(0, page_size="4K"):
            base, base_small = np.ones(4 * N), np.ones(100)
        with policy(0):
            auto = np.ones(4 * N)
        for arr in (base, base_small):
            info = assert_block(arr)
            assert "nh" in vm_flags(arr) and (info.page_size, info.page_kind) == (os.sysconf("SC_PAGE_SIZE"), "base")
        # 'auto' takes hugetlb pages where the machine has a pool; THP is asked for otherwise
        info = assert_block(auto)
        if info.page_kind == "thp":
            assert numamap._backend.thp_mode() in ("always", "madvise") and "hg" in vm_flags(auto)
            assert address(auto) % (2 * MiB) == 0  # aligned for THP
        elif info.page_kind == "hugetlb":
            assert "ht" in vm_flags(auto) and info.page_size == 2 * MiB
        else:
            assert numamap._backend.thp_mode() == "never"


# --------------------------------------------------------------------------------------------
# The C functions themselves


@pytest.mark.linux
class TestHandlerFunctions:
    """The C functions called directly, with the sizes and hints numpy could pass."""

    def test_handler_functions_called_directly(self):
        p = policy(0, min_size=MIN, page_size="4K")  # base pages, whatever pools the machine has
        h = Allocator(p)
        for size in (0, 1, 100, MIN - 1, MIN, MiB + 3):
            ptr = h.malloc(h.ctx, size)
            assert ptr and ptr % 16 == 0
            ctypes.memset(ptr, 0xAB, size)
            h.free(h.ctx, ptr, 7)  # a wrong size hint
        for count in (10, MIN, N):
            dirty = h.malloc(h.ctx, count * 8)
            ctypes.memset(dirty, 0xCD, count * 8)
            h.free(h.ctx, dirty, 0)
            ptr = h.calloc(h.ctx, count, 8)  # over the dirty block it may reuse: cleared
            assert ctypes.string_at(ptr, count * 8) == bytes(count * 8)
            h.free(h.ctx, ptr, 0)
        assert p.stats()["errors"] == 0
        assert not h.calloc(h.ctx, 1 << 62, 8)  # the product overflows
        assert not h.malloc(h.ctx, (1 << 64) - 10)
        h.free(h.ctx, None, 123)

        pattern = bytes(range(100))
        ptr = h.realloc(h.ctx, None, 100)  # realloc(NULL) is malloc
        ctypes.memmove(ptr, pattern, 100)
        served = p.stats()["blocks"]
        # malloc -> large -> large (moved) -> the same (in place) -> small
        for size in (2 * MiB, 4 * MiB + 5, 3 * MiB, 50):
            ptr = h.realloc(h.ctx, ptr, size)
            assert ctypes.string_at(ptr, min(size, 100)) == pattern[:size]
        assert h.realloc(h.ctx, ptr, (1 << 64) - 10) is None  # refused: the block stays as it was
        assert ctypes.string_at(ptr, 50) == pattern[:50]
        h.free(h.ctx, ptr, 1 << 40)

        stats = p.stats()
        assert stats["blocks"] - served == 3 and stats["in_place"] == 1, stats
        assert stats["blocks"] == stats["freed"] and stats["errors"] == 3, stats
        assert not h.malloc(h.ctx, 1 << 50)  # more address space than x86-64 and arm64 have
        assert p.stats()["errors"] == 4 and p.stats()["last_error"] == errno.ENOMEM


# --------------------------------------------------------------------------------------------
# Scope and lifetime


@pytest.mark.linux
class TestScopeAndLifetime:
    """Scoping by thread, task and context; arrays outliving what made them."""

    def test_a_new_thread_starts_with_numpys_default_handler(self):
        seen = []
        with policy(0):
            thread = threading.Thread(target=lambda: seen.append(handler_name()))
            thread.start()
            thread.join()
        assert seen == [NODE0 if THREADS_INHERIT else DEFAULT]

    @pytest.mark.numa_calls
    def test_a_thread_that_installs_a_policy_changes_only_itself(self):
        p = policy(0)
        installed, finish = threading.Event(), threading.Event()
        seen = {}

        def installer():
            p.install()
            seen["installer"] = handler_name()
            installed.set()
            finish.wait(10)

        def bystander():
            installed.wait(10)
            seen["bystander"] = handler_name()
            finish.set()

        threads = [threading.Thread(target=installer), threading.Thread(target=bystander)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert seen == {"installer": NODE0, "bystander": DEFAULT} and handler_name() == DEFAULT

    @pytest.mark.numa_calls
    def test_each_asyncio_task_keeps_its_own_handler(self):
        first, second = policy(0), policy(None)

        async def task(p, mine, theirs):
            with p:
                mine.set()
                await theirs.wait()  # the other task is inside its own block now
                await asyncio.sleep(0)
                return handler_name(), handler_name(np.ones(N))

        async def main():
            one, two = asyncio.Event(), asyncio.Event()
            results = await asyncio.gather(task(first, one, two), task(second, two, one))
            return results, handler_name()

        results, after = asyncio.run(main())
        assert results == [(NODE0, NODE0), ("numamap_local", "numamap_local")] and after == DEFAULT

    @pytest.mark.numa_calls
    def test_a_copied_context_inherits_the_handler(self):
        with policy(0):
            context = contextvars.copy_context()
        assert handler_name() == DEFAULT and context.run(handler_name) == NODE0

    def test_every_array_holds_a_reference_to_the_handler(self):
        p = policy(0, min_size=MIN)
        capsule = p._capsule
        before = sys.getrefcount(capsule)  # outside the asserts: pytest's rewriting holds their operands
        with p:
            arrays = [np.ones(10), np.ones(N)]  # malloc'd and from the arena
        holding = sys.getrefcount(capsule)
        del arrays
        after = sys.getrefcount(capsule)
        assert (holding, after) == (before + 2, before)

    @pytest.mark.numa_calls
    def test_arrays_outlive_the_block_the_thread_and_the_policy_object(self):
        made = []

        def work():
            with policy(0):  # the small block goes through the thread's own cache
                made.extend([np.arange(N, dtype=np.float64), np.arange(10.0)])
                np.ones(10) + 1  # blocks freed in the thread: its cache holds them when it ends

        thread = threading.Thread(target=work)
        thread.start()
        thread.join()
        gc.collect()  # the Policy object is gone: only the arrays hold the handler now
        large, small = made
        del made
        large += 1
        small += 1
        assert large[-1] == N and small[-1] == 10
        assert handler_name(large) == handler_name(small) == NODE0
        assert_block(large)
        assert_block(small)
        large.resize(2 * N, refcheck=False)  # realloc through the handler of a finished thread
        small.resize(1000, refcheck=False)
        assert large[N - 1] == N and not large[N:].any()
        assert small[9] == 10 and not small[10:].any()
        assert_block(small)
        del large, small
        gc.collect()

    @pytest.mark.skipif(os.environ.get("NUMAMAP_VM") == "1",
                        reason="slow under emulation; the host tier runs it")
    @pytest.mark.numa_calls
    def test_numpys_own_array_tests_pass_with_every_allocation_from_the_arena(self):
        candidates = [os.path.join(os.path.dirname(np.__file__), core, "tests", "test_multiarray.py")
                      for core in ("_core", "core")]  # numpy 2, numpy 1
        tests = next((path for path in candidates if os.path.exists(path)), None)
        if tests is None:
            pytest.skip("this numpy has no tests installed")
        script = (
            "import sys, pytest\n"
            "from numamap.memory_handler import handler_name, policy\n"
            "p = policy(0); p.install()\n"
            "assert handler_name() == 'numamap_node0'\n"
            "rc = pytest.main(['-q', '-p', 'no:cacheprovider', '-k', sys.argv[2], sys.argv[1]])\n"
            "s = p.stats(); assert s['blocks'] > 1000, s\n"
            "sys.exit(int(rc))\n")
        selection = ("TestResize or TestCreation or TestZeroSizeFlexible or TestPickling or "
                     "TestNewBufferProtocol")
        done = subprocess.run([sys.executable, "-c", script, tests, selection], capture_output=True,
                              text=True, timeout=600)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


# --------------------------------------------------------------------------------------------
# Multi-node tier


@pytest.mark.numa
@pytest.mark.linux
def test_policy_places_numpy_allocations_of_every_size_on_each_node(tmp_path):
    path = tmp_path / "table.txt"
    np.savetxt(path, np.arange(300_000).reshape(-1, 4), fmt="%d")  # 2.3 MiB as float64
    for node in [n.id for n in numamap.topology().nodes if n.has_memory]:
        with policy(node) as p:
            made = {
                "ones": np.ones(4 * N),
                "ufunc": np.multiply(np.arange(4 * N, dtype=np.float64), 2.0),
                "concatenate": _concatenate(6 * N),
                "loadtxt": np.loadtxt(path),
            }
            grown = np.ones(10)
            grown.resize(4 * N, refcheck=False)
            made["resize"] = grown
            made["small"] = np.ones(10)
            made["8 KiB"] = np.arange(KiB, dtype=np.float64)
            made["shrunk"] = np.ones(4 * N)
            made["shrunk"].resize(100, refcheck=False)
        for what, arr in made.items():
            assert handler_name(arr) == p.name == f"numamap_node{node}"
            assert block_info(arr).node == node, (what, block_info(arr))
            placement = numamap.where(arr)
            assert placement.fraction_on(node) == 1.0, (node, what, placement)
        assert block_info(made["small"]).kind == block_info(made["shrunk"]).kind == "small"
