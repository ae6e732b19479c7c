"""The Windows backend against a fake kernel32 (tests/fake_kernel32.py): the rules of the seed
pages that Wine cannot show, each as a test.

The real backend code runs, with its cffi structures; only the exports are stubs, which enforce
the rules the pages state. These tests need no DLL, so they run in the host tier and again in
the Windows tier (under Wine, with the Windows builds of CPython, numpy and cffi).
"""
import os

import numpy as np
import pytest

from numamap import _windows as w
from numamap import _windows_exports as exports
from numamap import _windows_sections as sections
from numamap import _windows_topology as topology
from numamap._records import NodeFacts, PoolFacts, TopologyFacts

from fake_kernel32 import (GRAN, LARGE, PAGE, WINE_8_GROUPS, WINE_8_NUMA, FakeKernel32, Machine,
                           one_node_spanning_groups, two_groups_four_nodes)

GiB = 1 << 30
SPLIT = exports.MEM_RELEASE | exports.MEM_PRESERVE_PLACEHOLDER


@pytest.fixture
def install(monkeypatch):
    """``install(machine, **options)``: the fake becomes the backend's kernel32 for the test."""
    fakes = []

    def make(machine=None, **options):
        fake = FakeKernel32(machine or two_groups_four_nodes(), **options).install(monkeypatch)
        fakes.append(fake)
        return fake

    yield make
    for fake in fakes:
        fake.uninstall()


@pytest.fixture
def fake(install):
    return install()


def file_section(fake, tmp_path, size, section_size=None):
    """A section over a ``size``-byte file, as create_section would make it (its call is stubbed)."""
    path = tmp_path / "data.bin"
    path.write_bytes(b"\1" * size)
    section_size = section_size or size
    handle = fake.CreateFileMappingNumaW(None, exports.ffi.NULL, exports.PAGE_READWRITE, 0, section_size,
                                         exports.ffi.NULL, exports.NUMA_NO_PREFERRED_NODE)
    return sections.SectionHandle(fake._int(handle), section_size, None, "rw", str(path),
                                  fd=os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0)))


# ----------------------------------------------------------------------------------------------
# Processor groups and nodes


def test_the_buffers_recorded_under_wine_parse_to_one_node_of_two_cpus(install):
    install(Machine(numa=WINE_8_NUMA, groups=WINE_8_GROUPS, group_masks=[0x3], node_masks={0: [(0, 0x3)]}))
    layout = topology.numa_layout()
    assert layout.cpus == {0: (0, 1)} and layout.source == "GetLogicalProcessorInformationEx"
    assert topology.group_bases() == (0,) and topology.all_cpus() == (0, 1)


def test_two_groups_four_nodes_with_a_memory_only_node(fake):
    facts = w.read_topology()
    assert isinstance(facts, TopologyFacts) and all(isinstance(n, NodeFacts) for n in facts.nodes)
    cpus = {n.id: n.cpus for n in facts.nodes}
    assert cpus == {0: tuple(range(32)), 1: tuple(range(32, 64)), 2: tuple(range(64, 128)), 3: ()}
    node3 = facts.nodes[3]
    assert node3.has_memory and not node3.has_cpus and node3.memory_free == 64 * GiB
    assert facts.online == (0, 1, 2, 3) and facts.allowed_memory_nodes == (0, 1, 2, 3)
    assert w.memory_nodes() == frozenset({0, 1, 2, 3}) and w.node_memory_free(3) == 64 * GiB
    assert topology.group_bases() == (0, 64)
    assert topology.group_of(64) == (1, 0) and topology.cpu_number(1, 63) == 127


def test_a_memory_only_node_absent_from_the_records_is_found(install):
    install(two_groups_four_nodes(memory_only_listed=False))
    assert topology.numa_layout().cpus[3] == ()
    assert 3 in w.memory_nodes()


def test_relation_numa_node_ex_gives_every_group_of_a_node(install):
    fake = install(one_node_spanning_groups())
    assert topology.numa_layout().cpus == {0: tuple(range(96))}
    assert fake.calls_to("GetLogicalProcessorInformationEx")[0] == (exports.RELATION_NUMA_NODE_EX,)


def test_before_server_2022_relation_numa_node_is_used(install):
    machine = one_node_spanning_groups()
    machine.numa_ex = None  # refused with error 87, as older Windows does
    install(machine)
    assert topology.numa_layout().cpus == {0: tuple(range(64))}  # the primary group only, as Windows says


def test_without_processor_records_the_node_masks_keep_their_group(fake, monkeypatch):
    monkeypatch.setitem(exports.api, "GetLogicalProcessorInformationEx",
                        exports.Missing("GetLogicalProcessorInformationEx"))
    monkeypatch.setitem(exports.api, "GetNumaNodeProcessorMask2", exports.Missing("GetNumaNodeProcessorMask2"))
    layout = topology.numa_layout()  # GetNumaNodeProcessorMaskEx: GROUP_AFFINITY.Group counts
    assert layout.source == "GetNumaNodeProcessorMask2/Ex"
    assert layout.cpus[2] == tuple(range(64, 128)) and layout.cpus[1] == tuple(range(32, 64))
    assert layout.cpus[3] == ()


def test_getnumanodeprocessormask2_gives_every_group(install, monkeypatch):
    install(one_node_spanning_groups()).machine.highest_node = 1
    monkeypatch.setitem(exports.api, "GetLogicalProcessorInformationEx",
                        exports.Missing("GetLogicalProcessorInformationEx"))
    assert topology.numa_layout().cpus[0] == tuple(range(96))


def test_getnumaprocessornodeex_numbers_each_processor_globally(fake, monkeypatch):
    for name in ("GetLogicalProcessorInformationEx", "GetNumaNodeProcessorMask2", "GetNumaNodeProcessorMaskEx"):
        monkeypatch.setitem(exports.api, name, exports.Missing(name))
    layout = topology.numa_layout()
    assert layout.source == "GetNumaProcessorNodeEx"
    assert layout.cpus[0] == tuple(range(32)) and layout.cpus[2] == tuple(range(64, 128))


def test_a_process_in_group_1_is_reported_with_global_cpu_ids(fake):
    fake.process_groups, fake.thread_affinity, fake.process_mask = [1], (1, 0xF0), 0xF0
    assert w.allowed_cpus() == (68, 69, 70, 71)
    assert w.read_topology().allowed_cpus == (68, 69, 70, 71)


def test_a_process_over_two_groups_may_use_both(fake):
    fake.process_groups = [0, 1]
    assert w.read_topology().allowed_cpus == tuple(range(128))


def test_pinning_a_thread_to_cpus_of_group_1(fake):
    assert w.pin_thread([64, 65]) == (64, 65) and w.current_cpu() == 64
    assert fake.calls_to("SetThreadGroupAffinity")[-1][1:] == (1, 0b11)
    # CPUs spanning groups: the thread goes to the group holding most of them
    assert w.pin_thread([62, 63, 64]) == (62, 63)
    with pytest.raises(ValueError, match="CPU 128 does not exist"):
        w.pin_thread([128])


def test_pinning_the_process(fake):
    assert w.pin_process([1, 2]) == (1, 2)
    assert fake.calls_to("SetProcessAffinityMask") == [(0b110,)]
    assert fake.other_threads == {11: (0, 0b110), 12: (0, 0b110)}
    # another group: every thread of the process is moved on its own
    assert w.pin_process([100]) == (100,)
    assert fake.other_threads == {11: (1, 1 << 36), 12: (1, 1 << 36)}


# ----------------------------------------------------------------------------------------------
# Placeholders: split and replace with one size, the exact-match rule enforced


def test_a_10240_byte_file_maps_into_a_placeholder_as_whole_pages(fake, tmp_path):
    section = file_section(fake, tmp_path, 10240)
    try:
        assert w.capabilities()["placeholders"]
        base = w.reserve_range(4 * GRAN, GRAN)
        fake.calls.clear()
        got = w.map_view(10240, section=section, offset=0, access="rw", page_size=None, address=base + GRAN)
        assert got == base + GRAN
        splits = [c for c in fake.calls_to("VirtualFree") if c[2] == SPLIT]
        assert splits == [(base, GRAN, SPLIT), (base + GRAN, 12288, SPLIT)]
        assert fake.calls_to("MapViewOfFile3") == [(base + GRAN, 0, 12288, exports.MEM_REPLACE_PLACEHOLDER, None)]
        w.return_to_reservation(got, 10240)
        assert fake.region_at(got).kind == "placeholder" and fake.region_at(got).size == 12288
        w.release_range(base, 4 * GRAN)
        assert fake.regions == []
    finally:
        section.close()


def test_the_stub_refuses_a_replacement_that_does_not_match_the_placeholder(fake):
    section = sections.new_section(GRAN, page_size=None, access="rw")
    base = w.reserve_range(4 * GRAN, GRAN)
    with pytest.raises(ValueError, match="winerror 87"):  # the whole 256 KiB placeholder, a 64 KiB view
        sections.map_with("MapViewOfFile3", section, 0, GRAN, address=base, replace_placeholder=True)
    assert w.map_view(GRAN, section=section, offset=0, access="rw", page_size=None, address=base) == base
    w.return_to_reservation(base, GRAN)
    w.release_range(base, 4 * GRAN)
    assert fake.regions == []
    section.close()


def test_replace_placeholder_is_refused_where_the_call_does_not_document_it(fake):
    section = sections.new_section(GRAN, page_size=None, access="rw")
    for call in ("MapViewOfFileExNuma", "MapViewOfFileNuma2", "MapViewOfFile2"):
        with pytest.raises(ValueError, match=f"{call} does not document MEM_REPLACE_PLACEHOLDER"):
            sections.map_with(call, section, 0, GRAN, address=fake.base, replace_placeholder=True)
    assert not fake.calls_to("MapViewOfFileExNuma")
    with pytest.raises(ValueError, match="MapViewOfFile2 takes no node"):
        sections.map_with("MapViewOfFile2", section, 0, GRAN, node=0)


def test_mapviewoffile3_views_are_whole_pages(fake):
    section = sections.new_section(3 * GRAN + 100, page_size=None, access="rw")
    assert section.extent == 3 * GRAN + PAGE  # the pagefile section is made of whole pages
    sections.map_with("MapViewOfFile3", section, 0, 5000)
    sections.map_with("MapViewOfFile3", section, GRAN, 0)
    assert [c[2] for c in fake.calls_to("MapViewOfFile3")] == [2 * PAGE, 2 * GRAN + PAGE]


def test_a_file_view_reaching_its_last_partial_page_maps_to_the_end(fake, tmp_path):
    section = file_section(fake, tmp_path, GRAN + 100)
    try:
        sections.map_with("MapViewOfFile3", section, GRAN, 100)
        assert fake.calls_to("MapViewOfFile3")[-1][2] == 0  # to the section's end, whole pages
    finally:
        section.close()


def test_a_reservation_past_the_address_space_is_a_memory_error(fake):
    with pytest.raises(MemoryError, match="address space"):
        w.reserve_range(1 << 62, 1 << 62)
    assert not fake.calls_to("VirtualAlloc2")


def test_unaligned_ranges_count_every_page_they_touch(fake):
    address = w.map_view(4 * PAGE, section=None, offset=0, access="rw", page_size=None, address=None)
    assert w.page_size_breakdown(address + PAGE - 5, 10) == {PAGE: 2 * PAGE}


def test_placeholders_are_probed_and_the_wine_behaviour_falls_back(install):
    install(placeholders=False)
    assert w.capabilities()["placeholders"] is False


# ----------------------------------------------------------------------------------------------
# Sizes and files


def test_an_oversized_view_is_refused_first_and_would_be_error_5(fake):
    section = sections.new_section(2 * GRAN, page_size=None, access="rw")
    with pytest.raises(ValueError, match="past the end"):
        sections.map_with("MapViewOfFile3", section, 0, 4 * GRAN)
    assert not fake.calls_to("MapViewOfFile3")
    section.size = section.extent = 4 * GRAN  # a handle that believes the section is larger
    with pytest.raises(PermissionError, match="error 5 .*not 87") as info:
        sections.map_with("MapViewOfFile3", section, 0, 4 * GRAN)
    assert info.value.winerror == 5


def test_a_file_view_never_runs_past_the_end_of_the_file(fake, tmp_path):
    section = file_section(fake, tmp_path, 10240, section_size=3 * GRAN)  # the file shrank since
    try:
        with pytest.raises(ValueError, match="file is 10240 bytes now.*EXCEPTION_IN_PAGE_ERROR"):
            sections.map_with("MapViewOfFileExNuma", section, 0, 0)
        with pytest.raises(ValueError, match="file is 10240 bytes now"):
            w.map_view(GRAN, section=section, offset=GRAN, access="rw", page_size=None, address=None)
        assert not fake.calls_to("MapViewOfFileExNuma") and not fake.calls_to("MapViewOfFile3")
        sections.map_with("MapViewOfFileExNuma", section, 0, 8192)  # within the file: fine
    finally:
        section.close()


# ----------------------------------------------------------------------------------------------
# Large pages, with the privilege granted


def test_large_pages_with_the_privilege_granted(install):
    fake = install(lock_memory=True)
    caps = w.capabilities()
    assert caps["large_page_privilege"] and caps["large_pages"] and caps["hugetlb"]
    fake.calls.clear()
    address = w.map_view(2 * LARGE, section=None, offset=0, access="rw", page_size=LARGE, address=None, node=2)
    created = fake.calls_to("CreateFileMappingNumaW")
    assert created[0][0] & exports.SEC_LARGE_PAGES and created[0][3] == 2  # the node goes to the section
    view = fake.calls_to("MapViewOfFile3")[0]
    assert view[3] & exports.MEM_LARGE_PAGES and view[4] == 2 and address % LARGE == 0
    w.populate(address, 2 * LARGE, LARGE)
    assert w.page_size_breakdown(address, 2 * LARGE) == {LARGE: 2 * LARGE}
    assert (w.page_nodes(address, 2 * LARGE, LARGE) == 2).all()
    pool = w.hugepage_pool(LARGE, 2)
    assert isinstance(pool, PoolFacts) and pool.node == 2 and pool.free == 29 * GiB // LARGE
    assert [p.page_size for p in w.read_topology().nodes[2].hugepages] == [LARGE]
    w.unmap_view(address, 2 * LARGE)


def test_without_the_privilege_large_pages_say_how_to_grant_it(install):
    install(lock_memory=False)
    assert not w.capabilities()["large_page_privilege"] and not w.capabilities()["large_pages"]
    with pytest.raises(PermissionError, match="secpol.msc") as info:
        w.create_section(LARGE, page_size=LARGE, access="rw")
    assert info.value.winerror == 1300
    assert w.hugepage_pool(LARGE) is None


def test_opening_a_large_page_section_enables_the_privilege(install):
    fake = install(lock_memory=True)
    created = w.create_section(LARGE, page_size=LARGE, access="rw", name="big")
    fake.lock_memory_enabled = False  # as in another process
    opened = w.open_section("big", "rw")
    assert opened.page_size == LARGE and fake.lock_memory_enabled
    address = sections.map_with("MapViewOfFile3", opened, 0, LARGE)
    assert fake.region_at(address).large
    opened.close()
    created.close()


# ----------------------------------------------------------------------------------------------
# QueryWorkingSetEx: nodes other than 0, trimmed pages


def test_working_set_answers_on_other_nodes_and_trimmed_pages(fake):
    on_two = w.map_view(8 * PAGE, section=None, offset=0, access="rw", page_size=None, address=None, node=2)
    on_three = w.map_view(4 * PAGE, section=None, offset=0, access="rw", page_size=None, address=None, node=3)
    fake.trimmed |= {on_two + 2 * PAGE, on_two + 3 * PAGE}
    assert w.page_nodes(on_two, 8 * PAGE, PAGE).tolist() == [2, 2, -1, -1, 2, 2, 2, 2]
    assert w.page_nodes(on_three, 4 * PAGE, PAGE).tolist() == [3] * 4
    assert w.page_size_breakdown(on_two, 8 * PAGE) == {PAGE: 8 * PAGE}
    assert w.page_nodes(fake.limit - GRAN, 2 * PAGE, PAGE).tolist() == [-1, -1]  # nothing mapped there


# ----------------------------------------------------------------------------------------------
# Versions and the bind fallback


def test_minimum_versions_are_those_of_the_seed_pages():
    assert exports.NEEDS["MapViewOfFileNuma2"].startswith("Windows 10 version 1703 / Windows Server 2016")
    assert "api-ms-win-core-memory-l1-1-5.dll" in exports.NEEDS["MapViewOfFileNuma2"]
    assert exports.NEEDS["MapViewOfFile3"] == "Windows 10 version 1803 / Windows Server 2016"
    assert exports.NEEDS["MapViewOfFile3FromApp"] == "Windows 10 / Windows Server 2016"
    assert exports.NEEDS["MapViewOfFileExNuma"] == "Windows Vista / Windows Server 2008"
    with pytest.raises(NotImplementedError, match="MapViewOfFileNuma2 .*1703"):
        exports.Missing("MapViewOfFileNuma2")()


def test_bind_is_reported_as_a_preferred_node_only(fake):
    assert w.capabilities()["bind"] is False
    w.set_policy(fake.base, PAGE, "bind", (2,))  # accepted: the node went to the map call
    with pytest.raises(OSError, match="one preferred node"):
        w.set_policy(fake.base, PAGE, "bind", (0, 2))
    assert np.int32(-1) in w.page_nodes(fake.base, PAGE, PAGE)
