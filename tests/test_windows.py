"""The Windows backend.

Host tier (any system): the backend imports with every export missing, it defines the contract's
names, and its error table maps each Windows error to the documented exception.

Windows tier (``@windows``, run under Wine 8.0 by tools/wine-python): each test holds on real
Windows too. Where Wine lacks something (an export, placeholders, large pages, NUMA memory
facts) the test checks the documented fallback, and where Windows has it the real thing. The
rules Wine cannot show are tested against the fake kernel32 in test_windows_fake.py.
"""
import gc
import inspect
import os
import sys
import warnings

import numpy as np
import pytest

import numamap
from numamap import _windows as w
from numamap import _windows_errors as errors
from numamap import _windows_exports as exports
from numamap import _windows_large_pages as large_pages
from numamap import _windows_placeholders as placeholders
from numamap import _windows_sections as sections
from numamap import _windows_topology as topology
from numamap import _windows_working_set as working_set
from numamap._contract import NAMES, Backend

windows = pytest.mark.windows

KiB, MiB = 1 << 10, 1 << 20
GRAN = 64 * KiB
MAP_CALLS = ("MapViewOfFile3", "MapViewOfFile3FromApp", "MapViewOfFileExNuma", "MapViewOfFileNuma2",
             "MapViewOfFile2")
# The export each map call needs (MapViewOfFile2 is an inline over MapViewOfFileNuma2).
NEEDS = {"MapViewOfFile2": "MapViewOfFileNuma2"}


@pytest.fixture
def forced_fallback(monkeypatch):
    """Run the test as if placeholders were missing (they are missing under Wine anyway)."""
    monkeypatch.setitem(large_pages.probe_results, "placeholders", (False, "forced off by the test"))


def _bytes(address, size):
    return np.asarray(working_set.Bytes(address, size))


def _state(address):
    return int(placeholders.query(address).State)


# ----------------------------------------------------------------------------------------------
# Host tier: the module imports anywhere, and its error table


def test_the_windows_backend_imports_on_any_system_with_the_contract_names():
    for name in NAMES:
        assert hasattr(w, name), name
    for name in NAMES[3:]:  # after PLATFORM and the two base classes, which are not functions
        ours = inspect.signature(getattr(w, name))
        theirs = inspect.signature(getattr(Backend, name))
        assert list(ours.parameters) == list(theirs.parameters)[1:], name
    assert w.PLATFORM == "windows"
    for name in ("PoolFacts", "SectionHandle", "map_with", "api"):  # private to the backend modules
        assert name not in vars(w) or name == "PoolFacts" and vars(w)[name] is numamap._records.PoolFacts
    if sys.platform != "win32":  # no DLL loads: every export is missing, and says what it needs
        assert not any(exports.available(name) for name in exports.EXPORTS)
        assert all(exports.exported_by[name] is None for name in exports.EXPORTS)
        with pytest.raises(NotImplementedError, match="MapViewOfFile3 .*1803"):
            exports.api["MapViewOfFile3"](None)
        with pytest.raises(NotImplementedError, match="CreateFileMappingNumaW .*Vista"):
            w.map_unmap_cost(4096)


def test_the_windows_bandwidth_names_say_what_is_missing():
    # the handler and arena names are tests/test_windows_arenas.py's (the DLL, present or not)
    with pytest.raises(NotImplementedError, match="pthreads"):
        w.handler_churn([None], 1, 1)
    with pytest.raises(NotImplementedError, match="copy-bandwidth"):
        w.copy_bandwidth([0], 4096, 1)
    with pytest.raises(ValueError, match="nbytes"):
        w.map_unmap_cost(0)


@pytest.mark.parametrize("code, kind", [
    (errors.ERROR_INVALID_PARAMETER, ValueError),
    (errors.ERROR_NOT_ENOUGH_MEMORY, MemoryError),
    (errors.ERROR_OUTOFMEMORY, MemoryError),
    (errors.ERROR_COMMITMENT_LIMIT, MemoryError),
    (errors.ERROR_PRIVILEGE_NOT_HELD, PermissionError),
    (errors.ERROR_ACCESS_DENIED, PermissionError),
    (errors.ERROR_FILE_NOT_FOUND, FileNotFoundError),
    (errors.ERROR_INVALID_ADDRESS, OSError),
])
def test_the_error_table_gives_the_documented_types(code, kind):
    exc = errors.ERRORS.exception("VirtualAlloc2", code, "a detail")
    assert type(exc) is kind
    assert f"winerror {code}" in str(exc) and "VirtualAlloc2 (a detail)" in str(exc)
    if isinstance(exc, OSError):
        assert exc.winerror == code
    with pytest.raises(kind):
        errors.fail("VirtualAlloc2", code=code)


def test_the_error_table_rules_add_hints():
    exc = errors.ERRORS.exception("AdjustTokenPrivileges", errors.ERROR_NOT_ALL_ASSIGNED)
    assert isinstance(exc, PermissionError) and exc.winerror == 1300 and "secpol.msc" in str(exc)
    exc = errors.ERRORS.exception("MapViewOfFile3", errors.ERROR_ACCESS_DENIED)
    assert isinstance(exc, PermissionError) and "error 5" in str(exc) and "not 87" in str(exc)
    exc = errors.ERRORS.exception("MapViewOfFileExNuma", errors.ERROR_MAPPED_ALIGNMENT)
    assert isinstance(exc, ValueError) and "granularity" in str(exc)
    exc = errors.ERRORS.exception("OpenFileMappingW", errors.ERROR_FILE_NOT_FOUND)
    assert isinstance(exc, FileNotFoundError) and "numamap.Section(size, name=" in str(exc)
    errors.check(1, "VirtualFree")  # a true result raises nothing


# ----------------------------------------------------------------------------------------------
# Bindings and exports


@windows
def test_the_package_imports_without_the_linux_module():
    assert numamap.PLATFORM == "windows"
    assert "numamap._linux_cffi" not in sys.modules
    assert "numamap._linux" not in sys.modules


@windows
def test_generated_bindings_are_python_with_the_documented_layouts():
    from numamap import _windows_native

    assert _windows_native.__file__.endswith(".py")
    ffi = _windows_native.ffi
    assert ffi.sizeof("MEM_EXTENDED_PARAMETER") == 16
    assert ffi.sizeof("MEM_ADDRESS_REQUIREMENTS") == 24
    assert ffi.sizeof("PSAPI_WORKING_SET_EX_INFORMATION") == 16
    assert ffi.sizeof("GROUP_AFFINITY") == 16
    assert ffi.sizeof("PROCESSOR_NUMBER") == 4
    assert ffi.sizeof("THREADENTRY32") == 28
    assert ffi.sizeof("MEMORY_BASIC_INFORMATION") == 48  # x64 only (numamap refuses 32-bit)
    assert ffi.offsetof("NUMA_NODE_RELATIONSHIP", "GroupMasks") == 24


@windows
def test_every_export_is_resolved_or_flagged():
    caps = numamap.capabilities()
    for name in w._EXPORT_FLAGS:
        assert caps[name] == exports.available(name)
        assert (exports.exported_by[name] is not None) == caps[name]
    assert caps["MapViewOfFile2"] == caps["MapViewOfFileNuma2"]
    assert caps["bind"] is False  # a preferred node is all the Windows calls offer
    for name in ("CreateFileMappingNumaW", "MapViewOfFileExNuma", "UnmapViewOfFile", "VirtualFree",
                 "K32QueryWorkingSetEx", "GetSystemInfo", "SetThreadGroupAffinity", "GetThreadGroupAffinity"):
        assert exports.available(name), name  # present on every supported Windows, and in Wine 8.0


@windows
def test_missing_exports_raise_not_implemented_naming_call_and_version():
    missing = [name for name in exports.EXPORTS if not exports.available(name)]
    api = exports.api
    if not missing:  # a Windows with everything: check the mechanism on a stand-in
        missing = ["CreateFileMapping2"]
        api = {"CreateFileMapping2": exports.Missing("CreateFileMapping2")}
    for name in missing:
        with pytest.raises(NotImplementedError, match=name) as info:
            api[name](0)
        assert "Windows" in str(info.value)
        assert not api[name]


@windows
def test_mapviewoffile2_is_numa2_with_no_preferred_node(monkeypatch):
    seen = []
    monkeypatch.setitem(exports.api, "MapViewOfFileNuma2", lambda *args: seen.append(args) or exports.ffi.NULL)
    exports.MapViewOfFile2("h", "p", 0, None, 4096, 0, 4)
    assert seen[0][-1] == exports.NUMA_NO_PREFERRED_NODE
    assert seen[0][:-1] == ("h", "p", 0, None, 4096, 0, 4)


@windows
def test_mapviewoffile2_missing_export_path(monkeypatch):
    monkeypatch.setitem(exports.api, "MapViewOfFileNuma2", exports.Missing("MapViewOfFileNuma2"))
    section = w.create_section(GRAN, page_size=None, access="rw")
    try:
        with pytest.raises(NotImplementedError, match="MapViewOfFileNuma2.*1703 / Windows Server 2016"):
            sections.map_with("MapViewOfFile2", section, 0, GRAN)
        with pytest.raises(NotImplementedError, match="MapViewOfFileNuma2"):
            exports.MapViewOfFile2(None, None, 0, None, 0, 0, 4)
    finally:
        section.close()


@windows
def test_real_windows_errors_carry_the_system_message():
    with pytest.raises(FileNotFoundError) as info:
        errors.fail("opening", code=errors.ERROR_FILE_NOT_FOUND)
    assert info.value.winerror == 2 and exports.describe(2).strip() in str(info.value)


# ----------------------------------------------------------------------------------------------
# Sections and views: every map call Wine exports, end to end


@windows
@pytest.mark.parametrize("call", MAP_CALLS)
def test_each_map_call_shares_data_between_views(call):
    section = w.create_section(4 * GRAN, page_size=None, access="rw")
    try:
        if not exports.available(NEEDS.get(call, call)):
            with pytest.raises(NotImplementedError, match=NEEDS.get(call, call)):
                sections.map_with(call, section, 0, GRAN)
            return
        node = None if call == "MapViewOfFile2" else 0
        first = sections.map_with(call, section, 0, 4 * GRAN, node=node)
        second = sections.map_with(call, section, GRAN, GRAN, node=node)
        try:
            _bytes(first, 4 * GRAN)[GRAN:GRAN + 4] = [1, 2, 3, 4]
            assert _bytes(second, GRAN)[:4].tolist() == [1, 2, 3, 4]
            _bytes(second, GRAN)[-1] = 9
            assert _bytes(first, 4 * GRAN)[2 * GRAN - 1] == 9
        finally:
            w.unmap_view(first, 4 * GRAN)
            w.unmap_view(second, GRAN)
    finally:
        section.close()


@windows
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


@windows
def test_offsets_at_the_64k_granularity():
    assert numamap.allocation_granularity() == GRAN
    with numamap.Section(8 * GRAN) as section:
        np.asarray(section.map()).view(np.uint32)[:] = np.arange(8 * GRAN // 4, dtype=np.uint32)
        for k in range(8):
            view = section.map(offset=k * GRAN, size=GRAN)
            assert int(view.ndarray((1,), np.uint32)[0]) == k * GRAN // 4


@windows
def test_map_view_passes_the_node_to_mapviewoffile3(monkeypatch):
    if not exports.available("MapViewOfFile3"):
        pytest.skip("MapViewOfFile3 is not exported here (see the fallback tests)")
    calls = []
    real = exports.api["MapViewOfFile3"]

    def spy(handle, process, base, offset, size, allocation, protect, params, count):
        calls.append((int(params[0].TypeAndReserved) & 0xFF, int(params[0].ULong)) if count else None)
        return real(handle, process, base, offset, size, allocation, protect, params, count)

    monkeypatch.setitem(exports.api, "MapViewOfFile3", spy)
    a = numamap.zeros(1000, node=0, populate=True)  # populate: a mapping of its own, no arena
    b = numamap.zeros(1000, populate=True)
    assert calls == [(exports.MEM_EXTENDED_PARAMETER_NUMA_NODE, 0), None]
    assert a.base.node == 0 and b.base.node is None


@windows
def test_mapviewoffileexnuma_fallback_carries_the_node(monkeypatch):
    calls = []
    real = exports.api["MapViewOfFileExNuma"]
    monkeypatch.setitem(exports.api, "MapViewOfFileExNuma", lambda *args: calls.append(args[-1]) or real(*args))
    monkeypatch.setattr(sections, "MAP_CALLS", ("MapViewOfFileNuma2", "MapViewOfFileExNuma"))
    if not exports.available("MapViewOfFileNuma2"):  # Wine: Numa2 missing, so ExNuma is taken
        arr = numamap.ones(5000, node=0, populate=True)  # a mapping of its own, no arena
        assert calls == [0]
        assert arr.sum() == 5000
    monkeypatch.setattr(sections, "MAP_CALLS", ("MapViewOfFileExNuma",))
    calls.clear()
    with numamap.Section(GRAN) as section:
        view = section.map()
        np.asarray(view)[:2] = [5, 6]
        assert np.asarray(section.map()).tolist()[:2] == [5, 6]
    assert calls == [exports.NUMA_NO_PREFERRED_NODE, exports.NUMA_NO_PREFERRED_NODE]


@windows
def test_no_map_call_at_all_is_not_implemented(monkeypatch):
    monkeypatch.setattr(sections, "MAP_CALLS", ("MapViewOfFileNuma2",))
    monkeypatch.setitem(exports.api, "MapViewOfFileNuma2", exports.Missing("MapViewOfFileNuma2"))
    with pytest.raises(NotImplementedError, match="MapViewOfFileNuma2"):
        numamap.zeros(10, populate=True)


# ----------------------------------------------------------------------------------------------
# Bad input: the same exception types as on Linux


@windows
def test_bad_inputs_give_value_errors():
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


@windows
def test_bad_inputs_are_caught_before_the_windows_call():
    section = w.create_section(2 * GRAN, page_size=None, access="rw")
    try:
        for call in ("MapViewOfFile3", "MapViewOfFileExNuma"):
            with pytest.raises(ValueError, match="granularity"):
                sections.map_with(call, section, 4096, 4096)
            with pytest.raises(ValueError, match="past the end"):
                sections.map_with(call, section, 0, 4 * GRAN)
            with pytest.raises(ValueError, match="node 9"):
                sections.map_with(call, section, 0, GRAN, node=9)
    finally:
        section.close()
    with pytest.raises(ValueError, match="closed"):
        sections.map_with("MapViewOfFile3", section, 0, GRAN)


@windows
def test_a_section_too_big_to_commit_is_a_memory_error():
    with pytest.raises(MemoryError):
        numamap.Section(1 << 46)


@windows
def test_unmapping_a_wrong_address_is_an_oserror():
    with pytest.raises(OSError) as info:
        w.unmap_view(0x1000, 4096)
    assert info.value.winerror == errors.ERROR_INVALID_ADDRESS


# ----------------------------------------------------------------------------------------------
# Named and file-backed sections


@windows
def test_named_sections_open_and_share():
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


@windows
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


@windows
def test_placeholder_support_is_probed_and_reported():
    works, reason = placeholders.status()
    assert numamap.capabilities()["placeholders"] is works
    if not works:  # Wine 8.0: VirtualAlloc2 refuses MEM_RESERVE_PLACEHOLDER with error 87
        assert reason and "placeholder" in reason.lower()


@windows
def test_reserve_honours_the_alignment():
    with numamap.reserve(2 * MiB, alignment=2 * MiB) as reservation:
        assert reservation.address % (2 * MiB) == 0
        assert _state(reservation.address) == exports.MEM_RESERVE


@windows
@pytest.mark.parametrize("placeholders", ["probed", "forced-off"])
def test_views_map_into_a_reservation_and_go_back_to_it(monkeypatch, placeholders):
    if placeholders == "forced-off":
        monkeypatch.setitem(large_pages.probe_results, "placeholders", (False, "forced off by the test"))
    reservation = numamap.reserve(4 * GRAN)
    base = reservation.address
    with numamap.Section(GRAN) as section:
        view = section.map(address=base + GRAN, node=0)
        assert view.address == base + GRAN
        np.asarray(view)[:2] = [1, 2]
        # the parts of the reservation around the view stay reserved
        assert _state(base) == exports.MEM_RESERVE
        assert _state(base + 2 * GRAN) == exports.MEM_RESERVE
        with pytest.raises(ValueError, match="overlaps"):
            section.map(address=base + GRAN)
        with pytest.raises(ValueError, match="granularity"):
            section.map(address=base + 2 * GRAN + 4096, size=4096)
        view.close()
        del view
        gc.collect()
        assert _state(base + GRAN) == exports.MEM_RESERVE  # handed back, still reserved
        again = section.map(address=base + GRAN)
        assert np.asarray(again)[:2].tolist() == [1, 2]
        del again
        gc.collect()
    reservation.close()
    assert _state(base) == exports.MEM_FREE and _state(base + 3 * GRAN) == exports.MEM_FREE


@windows
def test_ring_buffer_wraps_around():
    ring = numamap.ring_buffer(GRAN, dtype=np.uint32, node=0)
    n = len(ring) // 2
    ring[n + 3] = 77
    assert ring[3] == 77
    ring[n - 1] = 5
    assert ring[2 * n - 1] == 5
    assert ring.base.address + 4 * n == ring.base.address + GRAN
    del ring
    gc.collect()


@windows
def test_fallback_retries_when_another_allocation_wins_the_race(forced_fallback, monkeypatch):
    real = sections.map_with
    attempts = []

    def racing(call, section, offset, size, **kwargs):
        attempts.append(kwargs.get("address"))
        if len(attempts) == 1:  # as if another thread had grabbed the range for a moment
            raise OSError(None, "taken", None, errors.ERROR_INVALID_ADDRESS)
        return real(call, section, offset, size, **kwargs)

    monkeypatch.setattr(sections, "map_with", racing)
    with numamap.reserve(2 * GRAN) as reservation, numamap.Section(GRAN) as section:
        view = section.map(address=reservation.address)
        assert view.address == reservation.address
        assert attempts == [reservation.address, reservation.address]
        assert _state(reservation.address + GRAN) == exports.MEM_RESERVE
        view.close()
        del view
        gc.collect()


@windows
def test_fallback_gives_up_cleanly_when_the_range_is_lost(forced_fallback, monkeypatch):
    stolen = []

    def thief(call, section, offset, size, **kwargs):
        address = kwargs["address"]
        got = exports.api["VirtualAlloc"](exports.ptr(address), GRAN, exports.MEM_RESERVE, exports.PAGE_NOACCESS)
        stolen.append(got)
        raise OSError(None, "taken", None, errors.ERROR_INVALID_ADDRESS)

    monkeypatch.setattr(sections, "map_with", thief)
    reservation = numamap.reserve(2 * GRAN)
    with numamap.Section(GRAN) as section:
        with pytest.raises(OSError, match="racy"):
            section.map(address=reservation.address)
    assert reservation.live_views == 0
    for got in stolen:
        if got:
            exports.api["VirtualFree"](got, 0, exports.MEM_RELEASE)
    reservation.close()


# ----------------------------------------------------------------------------------------------
# Large pages


@windows
def test_large_pages_work_or_fail_clearly():
    sizes = w.huge_page_sizes()
    caps = numamap.capabilities()
    if not sizes:
        pytest.skip("no large pages on this processor")
    assert sizes[0] == exports.api["GetLargePageMinimum"]()
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


@windows
def test_missing_privilege_tells_how_to_grant_it():
    if numamap.capabilities()["large_page_privilege"]:
        pytest.skip("this account holds SeLockMemoryPrivilege")
    with pytest.raises(PermissionError) as info:
        large_pages.enable_lock_memory_privilege()
    message = str(info.value)
    assert "Lock pages in memory" in message and "User Rights Assignment" in message
    assert "log off" in message and info.value.winerror == errors.ERROR_NOT_ALL_ASSIGNED


@windows
def test_arrays_asking_for_large_pages_fall_back_or_fail_as_asked():
    sizes = w.huge_page_sizes()
    if not sizes or numamap.capabilities()["large_pages"]:
        pytest.skip("large pages work here")
    with pytest.raises(MemoryError, match="no such pool"):  # an explicit size is a contract
        numamap.zeros(4 * MiB // 8, page_size="2M", node=0)
    with pytest.raises(MemoryError):
        numamap.zeros(4 * MiB // 8, page_size="2M", strict=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        auto = numamap.zeros(4 * MiB // 8)  # 'auto' quietly takes base pages
    assert auto.base.page_kind == "base"


# ----------------------------------------------------------------------------------------------
# Topology and placement


@windows
def test_topology_from_windows():
    topo = numamap.topology()
    assert topo.platform == "windows" and topo.allocation_granularity == GRAN
    assert topo.thp_mode == "unsupported" and 0 in topo.node_ids
    assert set(topo.allowed_cpus) <= {c for n in topo.nodes for c in n.cpus}
    caps = numamap.capabilities()
    assert caps["numa_info"] == (topo.source != "fallback")
    if not caps["numa_memory_info"]:  # Wine: GetNumaAvailableMemoryNodeEx fails (error 120)
        assert any("GetNumaAvailableMemoryNodeEx" in note for note in topo.notes)
    assert "note:" in repr(topo) or not topo.notes


@windows
def test_topology_falls_back_to_one_node_and_says_so(monkeypatch):
    def broken(relation):
        raise OSError(None, "not available", None, 120)

    monkeypatch.setattr(topology, "processor_records", broken)
    monkeypatch.setitem(exports.api, "GetNumaHighestNodeNumber", exports.Missing("GetNumaHighestNodeNumber"))
    facts = w.read_topology()
    assert isinstance(facts, numamap._records.TopologyFacts)
    assert facts.source == "fallback"
    assert [n.id for n in facts.nodes] == [0]
    assert len(facts.nodes[0].cpus) == os.cpu_count()
    assert any("one node 0 holding every CPU" in note for note in facts.notes)


@windows
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


@windows
def test_populate_verifies_placement():
    arr = numamap.empty((256, 256), node=0, populate=True)
    assert arr.base.populated and arr.base.verified is True
    assert "placement verified" in arr.base.summary()
    nodes = w.page_nodes(arr.base.address, arr.base.size, 4096)
    assert (nodes == 0).all()


@windows
def test_the_other_constructors_and_asarray():
    source = np.arange(1000.0)
    copy = numamap.asarray(source, node=0)
    assert copy.base.node == 0 and (copy == source).all()
    assert numamap.asarray(copy, node=0) is not None
    assert numamap.full((3, 4), 2.5, node=0).sum() == 30
    assert numamap.ones_like(copy, node=0).sum() == 1000
    assert numamap.empty(7, dtype=np.int16, order="F").dtype == np.int16


@windows
def test_migrate_points_at_asarray():
    arr = numamap.ones(10, node=0, populate=True)
    with pytest.raises(NotImplementedError, match="asarray"):
        numamap.migrate(arr, 0)
    with pytest.raises(NotImplementedError, match="asarray"):
        w.move_range(arr.base.address, 4096, 0)


@windows
def test_set_policy_checks_only():
    arr = numamap.zeros(100, node=0, policy="preferred")
    assert arr.base.policy == "preferred" and arr.base.fallback is None
    w.set_policy(arr.base.address, 4096, "preferred", (0,))
    w.set_policy(arr.base.address, 4096, "bind", (0,))  # a preferred node: capabilities()['bind'] is False
    with pytest.raises(OSError, match="one preferred node"):
        w.set_policy(arr.base.address, 4096, "interleave", (0, 0))
    with pytest.raises(ValueError):
        w.set_policy(arr.base.address, 4096, "bind", (5,))
    interleaved = numamap.zeros(100, policy="interleave")  # over the one memory node
    assert interleaved.base.nodes == tuple(sorted(w.memory_nodes()))


@windows
def test_facts():
    assert w.base_page_size() == 4096
    assert w.thp_mode() == w.shmem_thp_mode() == "unsupported"
    assert 0 in w.memory_nodes()
    free = w.node_memory_free(0)
    assert free is None or free > 0
    w.advise_thp(0, 0, True)  # a no-op


@windows
def test_facts_are_the_shared_records():
    facts = w.read_topology()
    assert isinstance(facts.nodes[0], numamap._records.NodeFacts)
    assert facts.allowed_cpus == tuple(sorted(facts.allowed_cpus)) and facts.nodes[0].hugepages == ()
    assert w.thp_page_size() == (w.huge_page_sizes() or (2 * MiB,))[0]


# ----------------------------------------------------------------------------------------------
# Threads, processes, and the benchmark's helper


@windows
def test_pinning_threads_and_the_process_to_global_cpu_ids():
    import threading

    every = w.allowed_cpus()
    assert set(every) <= set(topology.all_cpus())
    got = {}

    def worker():
        got["pinned"] = w.pin_thread([every[-1]])
        got["after"] = w.allowed_cpus()
        got["cpu"] = w.current_cpu()

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert got["pinned"] == got["after"] == (every[-1],) and got["cpu"] == every[-1]
    assert w.allowed_cpus() == every  # only that thread moved
    try:
        assert w.pin_process([every[0]]) == (every[0],)
        assert w.allowed_cpus() == (every[0],)
    finally:
        w.pin_process(every)
    assert w.allowed_cpus() == every
    with pytest.raises(ValueError, match="CPU 4096 does not exist"):
        w.pin_thread([4096])
    with pytest.raises(ValueError, match="empty"):
        w.pin_thread([])


@windows
def test_map_unmap_cost_maps_and_unmaps_once():
    once = w.map_unmap_cost(1 << 20)
    for _ in range(3):
        assert once() is None


@windows
def test_bind_becomes_a_preferred_node_and_says_so():
    with pytest.warns(numamap.FallbackWarning, match="preferred node"):
        arr = numamap.zeros(10, node=0, policy="bind")
    assert "policy='bind'" in arr.base.fallback
    with pytest.raises(numamap.FallbackError, match="preferred node"):
        numamap.zeros(10, node=0, policy="bind", strict=True)
