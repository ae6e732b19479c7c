"""The mapping plan: every decision before any system call, tested without a kernel."""
import pytest

from numamap import FallbackError
from numamap._records import PoolFacts
from numamap.plan import MachineFacts, plan_mapping
from numamap.request import Request

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30


def facts(*, pools=None, thp="madvise", shmem="advise", free=None, available=16 * GiB):
    """A machine of two nodes with 4 KiB base pages and 2M/1G hugetlb sizes."""
    pools = pools or {}

    def pool(size, node):
        free_pages = pools.get((size, node))
        if free_pages is None:
            return None
        return PoolFacts(size, free_pages, free_pages, node, f"/sys/.../hugepages-{size // KiB}kB",
                         "grow it with 'echo N > ...' as root")

    return MachineFacts(4 * KiB, (2 * MiB, GiB), thp, shmem, pool,
                        lambda node: (free or {}).get(node), lambda: available)


ON0 = Request("preferred", (0,))
NOWHERE = Request("preferred", ())


def test_auto_takes_hugetlb_when_the_node_pool_serves_it_all():
    plan = plan_mapping(64 * MiB, ON0, facts(pools={(2 * MiB, 0): 32}))
    assert (plan.hugetlb, plan.page_kind, plan.length, plan.populate) == (2 * MiB, "hugetlb", 64 * MiB, True)


def test_auto_prefers_the_largest_size_that_fits():
    plan = plan_mapping(2 * GiB, ON0, facts(pools={(2 * MiB, 0): 2000, (GiB, 0): 2}))
    assert plan.hugetlb == GiB


def test_auto_falls_to_thp_when_the_pool_is_short_and_says_nothing():
    plan = plan_mapping(64 * MiB, ON0, facts(pools={(2 * MiB, 0): 31}))
    assert (plan.hugetlb, plan.page_kind, plan.thp_advice, plan.fallback) == (None, "thp", True, None)


def test_small_arrays_get_base_pages_without_advice():
    plan = plan_mapping(100, ON0, facts())
    assert (plan.page_kind, plan.page_size, plan.length, plan.thp_advice) == ("base", 4 * KiB, 4 * KiB, None)


def test_four_k_means_base_pages_even_under_thp():
    plan = plan_mapping(64 * MiB, ON0, facts(thp="always"), page_size="4K")
    assert (plan.page_kind, plan.thp_advice) == ("base", False)


@pytest.mark.parametrize("strict", [False, True])
def test_explicit_size_is_a_contract_the_pool_must_serve(strict):
    with pytest.raises(MemoryError, match="node 0's 2M huge-page pool has 0 free.*page_size='auto'"):
        plan_mapping(64 * MiB, ON0, facts(pools={(2 * MiB, 0): 0}), page_size="2M", strict=strict)
    with pytest.raises(MemoryError, match="no such pool"):
        plan_mapping(64 * MiB, ON0, facts(), page_size="1G", strict=strict)


def test_auto_strict_refuses_base_pages_for_big_arrays_when_thp_is_off():
    with pytest.raises(FallbackError, match="transparent huge pages are off"):
        plan_mapping(64 * MiB, ON0, facts(thp="never"), strict=True)


def test_unknown_page_size_is_a_value_error_naming_what_the_machine_serves():
    with pytest.raises(ValueError, match="serves 4K and 2M, 1G pages"):
        plan_mapping(64 * MiB, ON0, facts(), page_size="16K")


def test_hugetlb_sections_fix_the_page_size_and_offset_rule():
    plan = plan_mapping(4 * MiB, NOWHERE, facts(), section_page_size=2 * MiB, is_section=True)
    assert plan.hugetlb == 2 * MiB and not plan.populate  # no node: faulted on first touch
    with pytest.raises(ValueError, match="offset=4096 must be a multiple"):
        plan_mapping(4 * MiB, NOWHERE, facts(), section_page_size=2 * MiB, is_section=True, offset=4096)
    with pytest.raises(ValueError, match="does not match the section"):
        plan_mapping(4 * MiB, NOWHERE, facts(), section_page_size=2 * MiB, is_section=True, page_size="1G")


def test_a_bound_hugetlb_section_the_pool_cannot_serve_is_a_memory_error():
    with pytest.raises(MemoryError, match="cannot map 4 MiB of 2M pages"):
        plan_mapping(4 * MiB, ON0, facts(pools={(2 * MiB, 0): 1}), section_page_size=2 * MiB, is_section=True)


def test_base_page_sections_refuse_a_huge_page_size():
    with pytest.raises(ValueError, match="create it with Section"):
        plan_mapping(4 * MiB, ON0, facts(), is_section=True, page_size="2M")


def test_read_only_mappings_are_neither_advised_nor_populated():
    plan = plan_mapping(64 * MiB, ON0, facts(), access="r", populate=True)
    assert plan.thp_advice is None and not plan.populate


def test_populate_checks_memory_before_touching():
    with pytest.raises(MemoryError, match="has 1 GiB available"):
        plan_mapping(20 * GiB, ON0, facts(available=GiB), populate=True)
    assert not plan_mapping(20 * GiB, ON0, facts(available=GiB)).populate  # lazily: fine


def test_bind_populate_checks_the_bound_nodes():
    bound = Request("bind", (0, 1))
    with pytest.raises(MemoryError, match="bound to nodes \\[0, 1\\]"):
        plan_mapping(3 * GiB, bound, facts(free={0: GiB, 1: GiB}), populate=True)
    assert plan_mapping(GiB, bound, facts(free={0: GiB, 1: GiB}), populate=True).populate


def test_interleave_uses_the_machine_pool():
    plan = plan_mapping(8 * MiB, Request("interleave", (0, 1)), facts(pools={(2 * MiB, None): 4, (2 * MiB, 0): 0}))
    assert plan.hugetlb == 2 * MiB


def test_bind_where_only_a_preferred_node_exists_is_a_fallback():
    windows_like = facts()._replace(bind=False)
    plan = plan_mapping(MiB, Request("bind", (0,)), windows_like)
    assert "preferred node" in plan.fallback
    with pytest.raises(FallbackError, match="policy='bind'"):
        plan_mapping(MiB, Request("bind", (0,)), windows_like, strict=True)
    assert plan_mapping(MiB, Request("bind", (0,)), facts()).fallback is None


def test_addresses_must_be_page_aligned():
    with pytest.raises(ValueError, match="multiple of the page size"):
        plan_mapping(MiB, ON0, facts(), address=4097)
