"""Test tiers: host (default), multi-node (``numa``, inside VMs) and Windows (``windows``, Wine)."""
import os
import sys

import pytest

NUMA_SKIP = "needs several NUMA nodes: run the multi-node tier (python -m numamap.testing.vm)"
WINDOWS_SKIP = "needs the Windows backend: run the Windows tier (tools/wine-python -m pytest -m windows)"
LINUX_SKIP = "needs the Linux backend: runs in the host and multi-node tiers"
LEAK_SKIP = ("the 100k-cycle leak test runs in CI's leak step: NUMAMAP_LEAK_TEST=1 "
             "python -m pytest -rP tests/test_leaks.py (or pass --run-leak)")


def pytest_addoption(parser):
    parser.addoption("--run-leak", action="store_true", default=False,
                     help="run the tests marked leak (also NUMAMAP_LEAK_TEST=1)")


def _numa_nodes() -> int:
    try:
        import numamap

        return sum(1 for n in numamap.topology().nodes if n.has_memory)
    except Exception:  # the suite reports import errors itself
        return 1


def pytest_collection_modifyitems(config, items):
    several = None
    leak = config.getoption("--run-leak", default=False) or os.environ.get("NUMAMAP_LEAK_TEST") == "1"
    for item in items:
        if "leak" in item.keywords and not leak:
            item.add_marker(pytest.mark.skip(reason=LEAK_SKIP))
        if "windows" in item.keywords and sys.platform != "win32":
            item.add_marker(pytest.mark.skip(reason=WINDOWS_SKIP))
        if "linux" in item.keywords and not sys.platform.startswith("linux"):
            item.add_marker(pytest.mark.skip(reason=LINUX_SKIP))
        if "numa" in item.keywords:
            if several is None:
                several = _numa_nodes() > 1 or bool(os.environ.get("NUMAMAP_VM_TOPOLOGY"))
            if not several:
                item.add_marker(pytest.mark.skip(reason=NUMA_SKIP))


def _write(path: str, value) -> None:
    with open(path, "w") as handle:
        handle.write(str(value))


@pytest.fixture
def hugepage_pool():
    """Reserve huge pages for one test and give them back afterwards: ``hugepage_pool(size, count)``."""
    if not sys.platform.startswith("linux"):
        pytest.skip(LINUX_SKIP)
    restore = []

    def reserve(page_kib: int, count: int, node: int | None = None) -> int:
        if node is None:
            path = f"/sys/kernel/mm/hugepages/hugepages-{page_kib}kB/nr_hugepages"
        else:
            path = f"/sys/devices/system/node/node{node}/hugepages/hugepages-{page_kib}kB/nr_hugepages"
        if not os.path.exists(path):
            pytest.skip(f"this kernel has no {page_kib} kB huge pages ({path} is missing)")
        if not os.access(path, os.W_OK):
            pytest.skip(f"needs root to reserve huge pages ({path})")
        with open(path) as handle:
            before = int(handle.read())
        restore.append((path, before))
        _write(path, before + count)
        with open(path) as handle:
            got = int(handle.read()) - before
        if got < count:
            pytest.skip(f"the kernel gave {got} of {count} {page_kib} kB pages (memory too fragmented)")
        return got

    yield reserve
    import gc

    gc.collect()  # arrays of the test must let go of their pages before the pool shrinks
    if sys.platform.startswith("linux"):
        import numamap

        numamap.trim()  # and the arenas' cached hugetlb chunks theirs
    for path, before in reversed(restore):
        _write(path, before)


@pytest.fixture(scope="session", autouse=True)
def _no_automatic_numa_balancing():
    """In the multi-node guests, switch off the kernel's automatic NUMA balancing for the run.

    Balancing migrates pages in the background and marks them PROT_NONE for hinting faults,
    which some kernels' move_pages reports as absent: placement assertions would race it.
    """
    path = "/proc/sys/kernel/numa_balancing"
    if not os.environ.get("NUMAMAP_VM_TOPOLOGY") or not os.access(path, os.W_OK):
        yield
        return
    with open(path) as handle:
        before = handle.read().strip()
    _write(path, 0)
    yield
    _write(path, before)


@pytest.fixture(autouse=True)
def _fresh_once_warnings():
    """Each test sees numamap's once-per-process fallback warnings afresh."""
    from numamap import _errors

    _errors._warned_once.clear()
    yield
