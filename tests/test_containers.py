"""Container tier: numamap under a seccomp filter that refuses the NUMA calls (issue 16).

Docker's default seccomp profile, without CAP_SYS_NICE, makes mbind, set_mempolicy,
get_mempolicy and move_pages fail with EPERM. tools/seccomp-numa.c installs such a filter and
runs a command under it; CI runs these tests that way on the host (one node) and in the ``two``
guest (two nodes)::

    build/seccomp-numa python -m pytest -m seccomp tests/

Everywhere else they are skipped, with a message naming that tier. What must hold under the
refusal: placement falls back to the kernel's default with one FallbackWarning per process and
an account naming both fixes, ``strict=True`` makes it an error, reading placement gives
"unknown" rather than an exception, and ``numamap check`` reports the refusal as a finding.
"""
import errno
import sys
import warnings

import numpy as np
import pytest

import numamap
from numamap import FallbackError, FallbackWarning

SECCOMP_SKIP = ("needs the NUMA calls refused by seccomp: run the container tier "
                "(build/seccomp-numa python -m pytest -m seccomp tests/)")


def _filtered() -> bool:
    """Whether this process runs under a seccomp filter that refuses the NUMA calls."""
    if not sys.platform.startswith("linux"):
        return False
    with open("/proc/self/status") as status:
        mode = next((line.split()[1] for line in status if line.startswith("Seccomp:")), "0")
    # mode 2 is a filter; get_mempolicy refused is what tells it is the NUMA-refusing one
    return mode == "2" and not numamap.capabilities()["numa_policy"]


FILTERED = _filtered()
pytestmark = [pytest.mark.seccomp, pytest.mark.skipif(not FILTERED, reason=SECCOMP_SKIP)]

N = 1 << 19  # float64 elements: 4 MiB, a large arena block
#: The last node with memory: node 1 in the ``two`` guest, node 0 on a one-node host.
NODE = max((n.id for n in numamap.topology().nodes if n.has_memory), default=0) if FILTERED else 0


def _fallback_warnings(caught) -> list:
    return [w for w in caught if issubclass(w.category, FallbackWarning)]


def _names_both_fixes(text) -> bool:
    return bool(text) and "CAP_SYS_NICE" in text and "seccomp" in text


@pytest.fixture
def record():
    """Every warning raised in the block, none filtered out by 'once' rules of Python's own."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught


def test_everything_but_the_numa_calls_still_works():
    with numamap.Section(1 << 20) as section:  # memfd_create and mmap
        arr = section.map().ndarray(1 << 20)
        arr[:] = 7
        assert int(arr.sum()) == 7 << 20
    a = numamap.ones(N)  # no node asked: nothing to fall back from, nothing to warn about
    assert a.base.fallback is None and a.sum() == N


# -- placement: numamap.ones(n, node=...) ------------------------------------------------------


def test_ones_on_a_node_falls_back_with_one_warning(record):
    a = numamap.ones(N, node=NODE)
    b = numamap.ones(N, node=NODE, strict=False)  # the refusal is warned once per process
    assert a.sum() == N and b.sum() == N
    found = _fallback_warnings(record)
    assert len(found) == 1, [str(w.message) for w in found]
    assert found[0].filename == __file__  # points at the caller's line, not numamap's
    assert _names_both_fixes(str(found[0].message))
    for arr in (a, b):  # recorded on every result, warned or not
        assert _names_both_fixes(arr.base.fallback), arr.base.fallback
    assert _names_both_fixes(a.base.summary())


def test_ones_on_a_node_raises_under_strict():
    with pytest.raises(FallbackError, match="CAP_SYS_NICE") as info:
        numamap.ones(N, node=NODE, strict=True)
    assert info.value.errno == errno.EPERM
    assert "seccomp" in str(info.value)


def test_populate_fill_and_asarray_map_unplaced_memory(record):
    z = numamap.zeros(N, node=NODE, populate=True)
    p = numamap.partitioned((1024, 512), fill=2.0)
    c = numamap.asarray(np.arange(N, dtype=float), node=NODE)
    assert z.sum() == 0 and p.sum() == 2.0 * p.size and c[-1] == N - 1
    for arr in (z, p, c):
        assert arr.base.verified is None
    assert len(_fallback_warnings(record)) == 1


# -- policy(): numpy's own allocations ---------------------------------------------------------


def test_policy_installs_unplaced_and_warns_once(record):
    with numamap.policy(node=NODE) as p:
        x = np.ones(N)
        y = np.ones(N)
        small = np.arange(10.0)
        current = numamap.handler_name()
    assert x.sum() == N and y.sum() == N and small.sum() == 45.0
    found = _fallback_warnings(record)
    assert len(found) == 1, [str(w.message) for w in found]
    assert found[0].filename == __file__
    assert _names_both_fixes(p.fallback), p.fallback
    assert "unplaced" in current and numamap.handler_name(x) == current
    # still served by the arenas, the unbound ones (node None: the kernel's default placement)
    assert [(i.kind, i.node) for i in map(numamap.block_info, (x, small))] == [("large", None), ("small", None)]
    stats = p.stats()
    assert stats["blocks"] >= 3 and stats["errors"] == 0, stats


def test_policy_raises_under_strict_before_numpy_allocates():
    entered = False
    with pytest.raises(FallbackError, match="CAP_SYS_NICE"):
        with numamap.policy(node=NODE, strict=True):
            entered = True
    assert not entered


# -- NodePool: pinning is allowed, the memory policy is not -------------------------------------


def test_node_pool_pins_and_leaves_placement_to_first_touch(record):
    from numamap.workers import NodePool, current_node

    with NodePool() as pool:
        a = numamap.partitioned((2048, 512))
        pool.first_touch(a, 1.0)
        sums = pool.map_blocks(lambda block: float(block.sum()), a)
        ran_on = pool.map_blocks(lambda block: current_node(), a)
    assert sum(sums) == a.size
    assert pool.pinning == "sched_setaffinity"
    assert ran_on == [node for node, _ in numamap.blocks(a)]  # pinned to each block's node
    found = _fallback_warnings(record)
    assert len(found) == 1, [str(w.message) for w in found]
    assert "first touch" in str(found[0].message)
    assert any("first touch" in text for text in pool.fallbacks)


def test_partitioned_raises_under_strict():
    with pytest.raises(FallbackError, match="CAP_SYS_NICE"):
        numamap.partitioned((2048, 512), strict=True)


def test_node_pool_with_a_strict_policy_raises():
    from numamap.workers import NodePool

    with pytest.raises(FallbackError, match="CAP_SYS_NICE"):
        NodePool(policy={"strict": True})


# -- reading placement: move_pages refused ------------------------------------------------------


def test_where_reports_unknown_placement_with_a_reason(record):
    plain = np.ones(N)  # numpy's own memory: nothing numamap placed, only read back
    first, again = numamap.where(plain), numamap.where(plain)
    found = _fallback_warnings(record)
    assert len(found) == 1, [str(w.message) for w in found]
    assert found[0].filename == __file__
    a = numamap.ones(N, node=NODE)
    for placement in (first, again, numamap.where(a)):
        assert isinstance(placement, numamap.Placement)
        assert not placement.known and placement.reason
        assert placement.nodes.size > 0 and (placement.nodes == -1).all()
        assert "move_pages" in placement.reason
        assert "placement unknown" in repr(placement)
    assert sum(first.page_sizes.values()) >= N * 8  # page sizes come from smaps, still readable


def test_where_raises_under_strict():
    a = numamap.ones(N, node=NODE)
    with pytest.raises(FallbackError, match="CAP_SYS_NICE"):
        numamap.where(a, strict=True)


def test_verify_returns_none_and_summary_says_why():
    a = numamap.ones(N, node=NODE)
    assert a.base.verify() is None
    assert a.base.verified is None
    assert "unknown" in a.base.summary()


def test_migrate_raises_permission_error_naming_the_container_case():
    a = numamap.ones(N, node=NODE)
    with pytest.raises(PermissionError, match="CAP_SYS_NICE") as info:
        numamap.migrate(a, NODE)
    assert "seccomp" in str(info.value)
    assert a.sum() == N  # the array is untouched by the refusal


# -- numamap check -------------------------------------------------------------------------------


def test_check_reports_the_refusal_as_a_finding(capsys):
    from numamap.cli import main

    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert "finding" in out and "CAP_SYS_NICE" in out
    assert "mbind" in out and "move_pages" in out  # each refused capability, by its call


def test_check_strict_fails_on_findings(capsys):
    from numamap.cli import main

    assert main(["check", "--strict"]) == 1
    assert "finding" in capsys.readouterr().out
