"""The Windows backend, run under Wine 8.0 in the Windows tier (tools/wine-python -m pytest -m windows).

Each test holds on real Windows too: where Wine lacks something (an export, placeholders, large
pages, NUMA memory facts) the test checks the documented fallback, and where Windows has it the
test checks the real thing.
"""
import gc
import os
import sys
import warnings

import numpy as np
import pytest

import numamap

pytestmark = pytest.mark.windows

KiB, MiB = 1 << 10, 1 << 20
GRAN = 64 * KiB
MAP_CALLS = ("MapViewOfFile3", "MapViewOfFile3FromApp", "MapViewOfFileExNuma", "MapViewOfFileNuma2",
             "MapViewOfFile2")
# The export each map call needs (MapViewOfFile2 is an inline over MapViewOfFileNuma2).
NEEDS = {"MapViewOfFile2": "MapViewOfFileNuma2"}


@pytest.fixture
def w():
    from numamap import _windows

    return _windows


@pytest.fixture
def forced_fallback(w, monkeypatch):
    """Run the test as if placeholders were missing (they are missing under Wine anyway)."""
    monkeypatch.setitem(w._probe_results, "placeholders", (False, "forced off by the test"))
    return w


def _bytes(w, address, size):
    return np.asarray(w._Bytes(address, size))


def _state(w, address):
    return int(w._query(address).State)


# ----------------------------------------------------------------------------------------------
# Bindings and exports


def test_the_package_imports_without_the_linux_module():
    assert numamap.PLATFORM == "windows"
    assert "numamap._linux_cffi" not in sys.modules
    assert "numamap._linux" not in sys.modules


def test_generated_bindings_are_python_with_the_documented_layouts(w):
    from numamap import _windows_native

    assert _windows_native.__file__.endswith(".py")
    ffi = _windows_native.ffi
    assert ffi.sizeof("MEM_EXTENDED_PARAMETER") == 16
    assert ffi.sizeof("MEM_ADDRESS_REQUIREMENTS") == 24
    assert ffi.sizeof("PSAPI_WORKING_SET_EX_INFORMATION") == 16
    assert ffi.sizeof("GROUP_AFFINITY") == 16
    assert ffi.sizeof("PROCESSOR_NUMBER") == 4
    assert ffi.offsetof("NUMA_NODE_RELATIONSHIP", "GroupMasks") == 24


def test_every_export_is_resolved_or_flagged(w):
    caps = numamap.capabilities()
    for name in w._EXPORT_FLAGS:
        assert caps[name] == w.available(name)
        assert (w.exported_by[name] is not None) == caps[name]
    assert caps["MapViewOfFile2"] == caps["MapViewOfFileNuma2"]
    for name in ("CreateFileMappingNumaW", "MapViewOfFileExNuma", "UnmapViewOfFile", "VirtualFree",
                 "K32QueryWorkingSetEx", "GetSystemInfo"):
        assert w.available(name), name  # present on every supported Windows, and in Wine 8.0


def test_missing_exports_raise_not_implemented_naming_call_and_version(w):
    missing = [name for name in w._EXPORTS if not w.available(name)]
    if not missing:  # a Windows with everything: check the mechanism on a stand-in
        missing = ["CreateFileMapping2"]
        w = type("W", (), {"api": {"CreateFileMapping2": w.Missing("CreateFileMapping2")}})
    for name in missing:
        with pytest.raises(NotImplementedError, match=name) as info:
            w.api[name](0)
        assert "Windows" in str(info.value)
        assert not w.api[name]


def test_mapviewoffile2_is_numa2_with_no_preferred_node(w, monkeypatch):
    seen = []
    monkeypatch.setitem(w.api, "MapViewOfFileNuma2", lambda *args: seen.append(args) or w.ffi.NULL)
    w.MapViewOfFile2("h", "p", 0, None, 4096, 0, 4)
    assert seen[0][-1] == w.NUMA_NO_PREFERRED_NODE
    assert seen[0][:-1] == ("h", "p", 0, None, 4096, 0, 4)


def test_mapviewoffile2_missing_export_path(w, monkeypatch):
    monkeypatch.setitem(w.api, "MapViewOfFileNuma2", w.Missing("MapViewOfFileNuma2"))
    section = w.create_section(GRAN, page_size=None, access="rw")
    try:
        with pytest.raises(NotImplementedError, match="MapViewOfFileNuma2.*1703"):
            w.map_with("MapViewOfFile2", section, 0, GRAN)
        with pytest.raises(NotImplementedError, match="MapViewOfFileNuma2"):
            w.MapViewOfFile2(None, None, 0, None, 0, 0, 4)
    finally:
        section.close()


def test_windows_errors_become_the_documented_exceptions(w):
    with pytest.raises(MemoryError, match="winerror 8"):
        w._fail("x", w.ERROR_NOT_ENOUGH_MEMORY)
    with pytest.raises(MemoryError):
        w._fail("x", w.ERROR_COMMITMENT_LIMIT)
    with pytest.raises(ValueError):
        w._fail("x", w.ERROR_INVALID_PARAMETER, bad_input=True)
    with pytest.raises(OSError) as info:
        w._fail("x", w.ERROR_INVALID_PARAMETER)
    assert info.value.winerror == 87 and not isinstance(info.value, ValueError)
    with pytest.raises(FileNotFoundError) as info:
        w._fail("opening", w.ERROR_FILE_NOT_FOUND)
    assert info.value.winerror == 2 and w.ffi.getwinerror(2)[1].strip() in str(info.value)
    with pytest.raises(PermissionError):
        w._fail("x", w.ERROR_ACCESS_DENIED)


# ----------------------------------------------------------------------------------------------
# Sections and views: every map call Wine exports, end to end


@pytest.mark.parametrize("call", MAP_CALLS)
def test_each_map_call_shares_data_between_views(w, call):
    section = w.create_section(4 * GRAN, page_size=None, access="rw")
    try:
        if not w.available(NEEDS.get(call, call)):
            with pytest.raises(NotImplementedError, match=NEEDS.get(call, call)):
                w.map_with(call, section, 0, GRAN)
            return
        node = None if call == "MapViewOfFile2" else 0
        first = w.map_with(call, section, 0, 4 * GRAN, node=node)
        second = w.map_with(call, section, GRAN, GRAN, node=node)
        try:
            _bytes(w, first, 4 * GRAN)[GRAN:GRAN + 4] = [1, 2, 3, 4]
            assert _bytes(w, second, GRAN)[:4].tolist() == [1, 2, 3, 4]
            _bytes(w, second, GRAN)[-1] = 9
            assert _bytes(w, first, 4 * GRAN)[2 * GRAN - 1] == 9
        finally:
            w.unmap_view(first, 4 * GRAN)
            w.unmap_view(second, GRAN)
    finally:
        section.close()


def test_section_views_share_data_and_carry_numpy_arrays():
    with numamap.Section(4 * GRAN) as section:
        whole = section.map(node=0)
        part = section.map(offset=GRAN, size=GRAN)
        floats = whole.ndarray((4 * GRAN // 8,), np.float64)
        floats[GRAN // 8:GRAN // 8 + 3] = [1.5, 2.5, 3.5]
        assert part.ndarray((3,), np.float64).tolist() == [1.5, 2.5, 3.5]
        assert floats.base.section is whole.section
        assert isinstance(floats.base, numamap.View) and floats.base.node == 0
        assert numamap.view_of(floats) is not None


def test_offsets_at_the_64k_granularity():
    assert numamap.allocation_granularity() == GRAN
    with numamap.Section(8 * GRAN) as section:
        np.asarray(section.map()).view(np.uint32)[:] = np.arange(8 * GRAN // 4, dtype=np.uint32)
        for k in range(8):
            view = section.map(offset=k * GRAN, size=GRAN)
            assert int(view.ndarray((1,), np.uint32)[0]) == k * GRAN // 4


def test_map_view_passes_the_node_to_mapviewoffile3(w, monkeypatch):
    if not w.available("MapViewOfFile3"):
        pytest.skip("MapViewOfFile3 is not exported here (see the fallback tests)")
    calls = []
    real = w.api["MapViewOfFile3"]

    def spy(handle, process, base, offset, size, allocation, protect, params, count):
        calls.append((int(params[0].TypeAndReserved) & 0xFF, int(params[0].ULong)) if count else None)
        return real(handle, process, base, offset, size, allocation, protect, params, count)

    monkeypatch.setitem(w.api, "MapViewOfFile3", spy)
    a = numamap.zeros(1000, node=0)
    b = numamap.zeros(1000)
    assert calls == [(w.MEM_EXTENDED_PARAMETER_NUMA_NODE, 0), None]
    assert a.base.node == 0 and b.base.node is None


def test_mapviewoffileexnuma_fallback_carries_the_node(w, monkeypatch):
    calls = []
    real = w.api["MapViewOfFileExNuma"]
    monkeypatch.setitem(w.api, "MapViewOfFileExNuma", lambda *args: calls.append(args[-1]) or real(*args))
    monkeypatch.setattr(w, "MAP_CALLS", ("MapViewOfFileNuma2", "MapViewOfFileExNuma"))
    if not w.available("MapViewOfFileNuma2"):  # Wine: Numa2 missing, so ExNuma is taken
        arr = numamap.ones(5000, node=0)
        assert calls == [0]
        assert arr.sum() == 5000
    monkeypatch.setattr(w, "MAP_CALLS", ("MapViewOfFileExNuma",))
    calls.clear()
    with numamap.Section(GRAN) as section:
        view = section.map()
        np.asarray(view)[:2] = [5, 6]
        assert np.asarray(section.map()).tolist()[:2] == [5, 6]
    assert calls == [w.NUMA_NO_PREFERRED_NODE, w.NUMA_NO_PREFERRED_NODE]


def test_no_map_call_at_all_is_not_implemented(w, monkeypatch):
    monkeypatch.setattr(w, "MAP_CALLS", ("MapViewOfFileNuma2",))
    monkeypatch.setitem(w.api, "MapViewOfFileNuma2", w.Missing("MapViewOfFileNuma2"))
    with pytest.raises(NotImplementedError, match="MapViewOfFileNuma2"):
        numamap.zeros(10)


# ----------------------------------------------------------------------------------------------
# Bad input: the same exception types as on Linux


def test_bad_inputs_give_value_errors(w):
    with numamap.Section(2 * GRAN) as section:
        with pytest.raises(ValueError, match="granularity"):
            section.map(offset=4096)
        with pytest.raises(ValueError, match="past the end"):
            section.map(offset=GRAN, size=2 * GRAN)
        with pytest.raises(ValueError, match="beyond the end"):
            section.map(offset=2 * GRAN)
        with pytest.raises(ValueError, match="node 7"):
            section.map(node=7)
        with pytest.raises(ValueError):
            section.map(policy="sideways")
    with pytest.raises(ValueError, match="node 64"):
        numamap.zeros(10, node=64)
    with pytest.raises(ValueError):
        numamap.Section(GRAN, access="x")


def test_bad_inputs_are_caught_before_the_windows_call(w):
    section = w.create_section(2 * GRAN, page_size=None, access="rw")
    try:
        for call in ("MapViewOfFile3", "MapViewOfFileExNuma"):
            with pytest.raises(ValueError, match="granularity"):
                w.map_with(call, section, 4096, 4096)
            with pytest.raises(ValueError, match="past the end"):
                w.map_with(call, section, 0, 4 * GRAN)
            with pytest.raises(ValueError, match="node 9"):
                w.map_with(call, section, 0, GRAN, node=9)
    finally:
        section.close()
    with pytest.raises(ValueError, match="closed"):
        w.map_with("MapViewOfFile3", section, 0, GRAN)


def test_a_section_too_big_to_commit_is_a_memory_error():
    with pytest.raises(MemoryError):
        numamap.Section(1 << 46)


def test_unmapping_a_wrong_address_is_an_oserror(w):
    with pytest.raises(OSError) as info:
        w.unmap_view(0x1000, 4096)
    assert info.value.winerror == w.ERROR_INVALID_ADDRESS


# ----------------------------------------------------------------------------------------------
# Named and file-backed sections


def test_named_sections_open_and_share(w):
    name = f"test-{os.getpid()}"
    with numamap.Section(3 * GRAN + 100, name=name) as created:
        np.asarray(created.map())[:3] = [4, 5, 6]
        with pytest.raises(FileExistsError):
            numamap.Section(GRAN, name=name)
        opened = numamap.Section.open(name)
        # Windows (and Wine) may report a pagefile section's size rounded up to whole pages
        assert opened.size in (created.size, -(-created.size // 4096) * 4096)
        assert np.asarray(opened.map())[:3].tolist() == [4, 5, 6]
        with numamap.Section.open(name, access="r") as reader:
            view = reader.map()
            assert np.asarray(view)[:3].tolist() == [4, 5, 6]
            assert not np.asarray(view).flags.writeable
        opened.close()
    with pytest.raises(FileNotFoundError):
        numamap.Section.open(f"missing-{os.getpid()}")
    with pytest.raises(ValueError):
        numamap.Section(GRAN, name="a\\b")


def test_file_backed_sections(tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(bytes(range(256)) * 256)
    with numamap.Section(0, file=path) as section:
        assert section.size == 65536
        view = section.map()
        assert np.asarray(view)[:4].tolist() == [0, 1, 2, 3]
        np.asarray(view)[0] = 99
        del view
        gc.collect()
    assert path.read_bytes()[0] == 99

    with numamap.Section(3 * GRAN, file=str(path)) as grown:  # a larger size extends the file
        np.asarray(grown.map(offset=2 * GRAN))[-1] = 7
        gc.collect()
    assert os.path.getsize(path) == 3 * GRAN

    with numamap.Section(0, file=path, access="cow") as cow:
        np.asarray(cow.map())[1] = 42
        gc.collect()
    assert path.read_bytes()[1] == 1

    with pytest.raises(ValueError, match="beyond the end"):
        numamap.Section(4 * GRAN, file=path, access="r")
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        numamap.Section(0, file=empty)
    with open(path, "rb") as handle:  # an open file descriptor
        with numamap.Section(0, file=handle.fileno(), access="r") as by_fd:
            assert np.asarray(by_fd.map())[0] == 99
            gc.collect()


# ----------------------------------------------------------------------------------------------
# Reservations: placeholders, or the racy fallback Wine forces


def test_placeholder_support_is_probed_and_reported(w):
    works, reason = w.placeholder_status()
    assert numamap.capabilities()["placeholders"] is works
    if not works:  # Wine 8.0: VirtualAlloc2 refuses MEM_RESERVE_PLACEHOLDER with error 87
        assert reason and "placeholder" in reason.lower()


def test_reserve_honours_the_alignment(w):
    with numamap.reserve(2 * MiB, alignment=2 * MiB) as reservation:
        assert reservation.address % (2 * MiB) == 0
        assert _state(w, reservation.address) == w.MEM_RESERVE


@pytest.mark.parametrize("placeholders", ["probed", "forced-off"])
def test_views_map_into_a_reservation_and_go_back_to_it(w, monkeypatch, placeholders):
    if placeholders == "forced-off":
        monkeypatch.setitem(w._probe_results, "placeholders", (False, "forced off by the test"))
    reservation = numamap.reserve(4 * GRAN)
    base = reservation.address
    with numamap.Section(GRAN) as section:
        view = section.map(address=base + GRAN, node=0)
        assert view.address == base + GRAN
        np.asarray(view)[:2] = [1, 2]
        # the parts of the reservation around the view stay reserved
        assert _state(w, base) == w.MEM_RESERVE
        assert _state(w, base + 2 * GRAN) == w.MEM_RESERVE
        with pytest.raises(ValueError, match="overlaps"):
            section.map(address=base + GRAN)
        with pytest.raises(ValueError, match="granularity"):
            section.map(address=base + 2 * GRAN + 4096, size=4096)
        view.close()
        del view
        gc.collect()
        assert _state(w, base + GRAN) == w.MEM_RESERVE  # handed back, still reserved
        again = section.map(address=base + GRAN)
        assert np.asarray(again)[:2].tolist() == [1, 2]
        del again
        gc.collect()
    reservation.close()
    assert _state(w, base) == w.MEM_FREE and _state(w, base + 3 * GRAN) == w.MEM_FREE


def test_ring_buffer_wraps_around(w):
    ring = numamap.ring_buffer(GRAN, dtype=np.uint32, node=0)
    n = len(ring) // 2
    ring[n + 3] = 77
    assert ring[3] == 77
    ring[n - 1] = 5
    assert ring[2 * n - 1] == 5
    assert ring.base.address + 4 * n == ring.base.address + GRAN
    del ring
    gc.collect()


def test_fallback_retries_when_another_allocation_wins_the_race(forced_fallback, monkeypatch):
    w = forced_fallback
    real = w.map_with
    attempts = []

    def racing(call, section, offset, size, **kwargs):
        attempts.append(kwargs.get("address"))
        if len(attempts) == 1:  # as if another thread had grabbed the range for a moment
            raise OSError(None, "taken", None, w.ERROR_INVALID_ADDRESS)
        return real(call, section, offset, size, **kwargs)

    monkeypatch.setattr(w, "map_with", racing)
    with numamap.reserve(2 * GRAN) as reservation, numamap.Section(GRAN) as section:
        view = section.map(address=reservation.address)
        assert view.address == reservation.address
        assert attempts == [reservation.address, reservation.address]
        assert _state(w, reservation.address + GRAN) == w.MEM_RESERVE
        view.close()
        del view
        gc.collect()


def test_fallback_gives_up_cleanly_when_the_range_is_lost(forced_fallback, monkeypatch):
    w = forced_fallback
    stolen = []

    def thief(call, section, offset, size, **kwargs):
        address = kwargs["address"]
        got = w.api["VirtualAlloc"](w._ptr(address), GRAN, w.MEM_RESERVE, w.PAGE_NOACCESS)
        stolen.append(got)
        raise OSError(None, "taken", None, w.ERROR_INVALID_ADDRESS)

    monkeypatch.setattr(w, "map_with", thief)
    reservation = numamap.reserve(2 * GRAN)
    with numamap.Section(GRAN) as section:
        with pytest.raises(OSError, match="racy"):
            section.map(address=reservation.address)
    assert reservation.live_views == 0
    for got in stolen:
        if got:
            w.api["VirtualFree"](got, 0, w.MEM_RELEASE)
    reservation.close()


# ----------------------------------------------------------------------------------------------
# Large pages


def test_large_pages_work_or_fail_clearly(w):
    sizes = w.huge_page_sizes()
    caps = numamap.capabilities()
    if not sizes:
        pytest.skip("no large pages on this processor")
    assert sizes[0] == w.api["GetLargePageMinimum"]()
    if caps["large_pages"]:
        with numamap.Section(1, page_size=sizes[0]) as section:
            assert section.size == sizes[0]
            view = section.map(node=0, populate=True)
            assert view.where().page_sizes == {sizes[0]: sizes[0]}
        return
    # Wine: either the privilege is missing (error 1300) or SEC_LARGE_PAGES gives small pages
    with pytest.raises(OSError, match="Lock pages in memory|large pages are not available") as info:
        numamap.Section(GRAN, page_size=sizes[0])
    if isinstance(info.value, PermissionError):
        assert "secpol.msc" in str(info.value) and not caps["large_page_privilege"]
    assert w.hugepage_pool(sizes[0]) is None


def test_missing_privilege_tells_how_to_grant_it(w):
    if numamap.capabilities()["large_page_privilege"]:
        pytest.skip("this account holds SeLockMemoryPrivilege")
    with pytest.raises(PermissionError) as info:
        w.enable_lock_memory_privilege()
    message = str(info.value)
    assert "Lock pages in memory" in message and "User Rights Assignment" in message
    assert "log off" in message and info.value.winerror == w.ERROR_NOT_ALL_ASSIGNED


def test_arrays_asking_for_large_pages_fall_back_or_fail_as_asked(w):
    sizes = w.huge_page_sizes()
    if not sizes or numamap.capabilities()["large_pages"]:
        pytest.skip("large pages work here")
    with pytest.warns(numamap.FallbackWarning, match="base pages"):
        arr = numamap.zeros(4 * MiB // 8, page_size="2M", node=0)
    assert arr.base.page_size == w.base_page_size() and "base pages" in arr.base.fallback
    with pytest.raises(MemoryError):
        numamap.zeros(4 * MiB // 8, page_size="2M", strict=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        auto = numamap.zeros(4 * MiB // 8)  # 'auto' quietly takes base pages
    assert auto.base.page_kind == "base"


# ----------------------------------------------------------------------------------------------
# Topology and placement


def test_topology_from_windows(w):
    topo = numamap.topology()
    assert topo.platform == "windows" and topo.allocation_granularity == GRAN
    assert topo.thp_mode == "unsupported" and 0 in topo.node_ids
    assert set(topo.allowed_cpus) <= {c for n in topo.nodes for c in n.cpus}
    caps = numamap.capabilities()
    assert caps["numa_info"] == (topo.source != "fallback")
    if not caps["numa_memory_info"]:  # Wine: GetNumaAvailableMemoryNodeEx fails (error 120)
        assert any("GetNumaAvailableMemoryNodeEx" in note for note in topo.notes)
    assert "note:" in repr(topo) or not topo.notes


def test_topology_falls_back_to_one_node_and_says_so(w, monkeypatch):
    def broken(relation):
        raise OSError(None, "not available", None, 120)

    monkeypatch.setattr(w, "_processor_records", broken)
    monkeypatch.setitem(w.api, "GetNumaHighestNodeNumber", w.Missing("GetNumaHighestNodeNumber"))
    facts = w.read_topology()
    assert facts["source"] == "fallback"
    assert [n["id"] for n in facts["nodes"]] == [0]
    assert len(facts["nodes"][0]["cpus"]) == os.cpu_count()
    assert any("one node 0 holding every CPU" in note for note in facts["notes"])


def test_zeros_on_node_zero_and_where():
    arr = numamap.zeros(10**6, node=0)
    assert arr.shape == (10**6,) and arr.dtype == np.float64 and not arr.any()
    untouched = numamap.where(arr)
    assert (untouched.nodes == -1).all() or untouched.fraction_on(0) > 0
    arr[:] = 1.0
    found = numamap.where(arr)
    assert found.fraction_on(0) == 1.0
    assert found.page_sizes == {4096: found.size + found.address % 4096} or sum(found.page_sizes.values()) > 0
    assert arr.base.verify() is True


def test_populate_verifies_placement(w):
    arr = numamap.empty((256, 256), node=0, populate=True)
    assert arr.base.populated and arr.base.verified is True
    assert "placement verified" in arr.base.summary()
    nodes = w.page_nodes(arr.base.address, arr.base.size, 4096)
    assert (nodes == 0).all()


def test_the_other_constructors_and_asarray():
    source = np.arange(1000.0)
    copy = numamap.asarray(source, node=0)
    assert copy.base.node == 0 and (copy == source).all()
    assert numamap.asarray(copy, node=0) is not None
    assert numamap.full((3, 4), 2.5, node=0).sum() == 30
    assert numamap.ones_like(copy, node=0).sum() == 1000
    assert numamap.empty(7, dtype=np.int16, order="F").dtype == np.int16


def test_migrate_points_at_asarray(w):
    arr = numamap.ones(10, node=0)
    with pytest.raises(NotImplementedError, match="asarray"):
        numamap.migrate(arr, 0)
    with pytest.raises(NotImplementedError, match="asarray"):
        w.move_range(arr.base.address, 4096, 0)


def test_set_policy_checks_only(w):
    arr = numamap.zeros(100, node=0, policy="bind")
    assert arr.base.policy == "bind" and arr.base.fallback is None
    w.set_policy(arr.base.address, 4096, "preferred", (0,))
    with pytest.raises(OSError, match="one preferred node"):
        w.set_policy(arr.base.address, 4096, "interleave", (0, 0))
    with pytest.raises(ValueError):
        w.set_policy(arr.base.address, 4096, "bind", (5,))
    interleaved = numamap.zeros(100, policy="interleave")  # over the one memory node
    assert interleaved.base.nodes == tuple(sorted(w.memory_nodes()))


def test_facts(w):
    assert w.base_page_size() == 4096
    assert w.thp_mode() == w.shmem_thp_mode() == "unsupported"
    assert 0 in w.memory_nodes()
    free = w.node_memory_free(0)
    assert free is None or free > 0
    w.advise_thp(0, 0, True)  # a no-op
