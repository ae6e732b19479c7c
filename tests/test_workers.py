"""NodePool: thread pools pinned to nodes (host tier, Windows tier, and numa tests in the guests)."""
import os
import sys
import threading
import time
import traceback

import numpy as np
import pytest

import numamap
from numamap.workers import NodePool, current_node

MiB = 1 << 20
LINUX = sys.platform.startswith("linux")


def usable_nodes():
    topo = numamap.topology()
    return [n.id for n in topo.nodes if n.has_memory and topo.cpus_of(n.id)]


def policy_available():
    """Whether numamap.policy can make its handler here (Linux; Windows with its arena DLL)."""
    try:
        numamap.policy(None)
    except NotImplementedError:
        return False
    return True


def handler_name(arr=None):
    from numamap.memory_handler import handler_name

    return handler_name(arr)


def running_cpu() -> int:
    """The CPU this thread is on now: field 39 ('processor') of /proc/thread-self/stat."""
    with open("/proc/thread-self/stat") as handle:
        text = handle.read()
    return int(text[text.rindex(")") + 2:].split()[39 - 3])


def multi_block(rows=3000, cols=512):
    """A partitioned array of several blocks even on one node (nodes may repeat)."""
    nodes = usable_nodes()
    try:
        return numamap.partitioned((rows, cols), nodes=(nodes * 3)[:3], page_size="4K")
    except ValueError as exc:
        pytest.skip(f"partitioned() refuses repeated nodes here ({exc})")


# -- host tier --------------------------------------------------------------------------------------

def test_submit_runs_in_a_thread_of_the_node():
    with NodePool() as pool:
        assert pool.nodes == tuple(usable_nodes())
        for node in pool.nodes:
            got = pool.submit(node, lambda x, y=0: (x + y, current_node(), threading.current_thread().name),
                              40, y=2).result()
            assert got[0] == 42 and got[1] == node and got[2].startswith(f"numamap-node{node}")
            assert len(pool.threads(node)) == len(pool.cpus(node)) == len(numamap.topology().cpus_of(node))
    assert current_node() is None


def test_threads_per_node_and_thread_records():
    with NodePool(threads_per_node=3) as pool:
        threads = pool.threads()
        assert len(threads) == 3 * len(pool.nodes)
        assert len({t.native_id for t in threads}) == len(threads)
        alive = {t.ident for t in threading.enumerate()}
        assert all(t.ident in alive for t in threads)
    with NodePool(threads_per_node={pool.nodes[0]: 1}) as pool:
        assert len(pool.threads(pool.nodes[0])) == 1
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="threads_per_node must be a positive int"):
            NodePool(threads_per_node=bad)


@pytest.mark.linux
def test_threads_are_pinned_to_their_nodes_cpus():
    with NodePool() as pool:
        assert pool.pinning == "sched_setaffinity"
        for t in pool.threads():
            assert t.cpus == pool.cpus(t.node)
            assert os.sched_getaffinity(t.native_id) == set(pool.cpus(t.node))


def test_map_blocks_returns_results_in_block_order():
    arr = multi_block()
    arr[...] = np.arange(arr.shape[0])[:, None]
    layout = numamap.blocks(arr)
    assert len(layout) >= 2

    def first_row(block, delay):
        time.sleep(delay * (arr.shape[0] - block[0, 0]) / arr.shape[0])  # later blocks finish first
        return int(block[0, 0]), block.shape[0], current_node()

    with NodePool(threads_per_node=len(layout)) as pool:
        got = pool.map_blocks(first_row, arr, 0.05)
        assert got == [(s.start, s.stop - s.start, node) for node, s in layout]
        # views of the array: blocks clipped to the view, in the view's order
        view = arr[500:2500]
        assert pool.map_blocks(lambda b: int(b[0, 0]), view) == [500 + s.start for _, s in numamap.blocks(view)]


def test_exceptions_propagate_with_their_traceback():
    def failing_inner(x):
        raise ValueError(f"bad value {x}")

    def failing_outer(x):
        return failing_inner(x)

    with NodePool() as pool:
        node = pool.nodes[0]
        with pytest.raises(ValueError, match="bad value 7") as info:
            pool.submit(node, failing_outer, 7).result()
        frames = [frame.name for frame in traceback.extract_tb(info.value.__traceback__)]
        assert frames[-2:] == ["failing_outer", "failing_inner"]

        arr = multi_block()
        arr[...] = np.arange(arr.shape[0])[:, None]
        done = []

        def fail_on_first(block):
            time.sleep(0.02)
            done.append(block.shape)
            if block[0, 0] == 0:  # the first block only
                raise KeyError("first call fails")
            return 1

        with pytest.raises(KeyError, match="first call fails"):
            pool.map_blocks(fail_on_first, arr)
        assert len(done) == len(numamap.blocks(arr))  # every block ran before the error came back
        # the pool still works after a failure
        assert pool.submit(node, lambda: 5).result() == 5


@pytest.mark.numa_calls
def test_first_touch_fills_every_block():
    arr = multi_block()
    with NodePool(threads_per_node=2) as pool:
        assert pool.first_touch(arr, 3.0) is arr
        assert (arr == 3.0).all()
        pool.first_touch(arr, np.arange(arr.shape[1]))
        assert (arr == np.arange(arr.shape[1])).all()
        pool.first_touch(arr[10:20], -1)
        assert (arr[10:20] == -1).all() and (arr[:10] == np.arange(arr.shape[1])).all()
    if LINUX:
        for node, s in numamap.blocks(arr):
            assert numamap.where(arr[s]).fraction_on(node) == 1.0


def test_closing_joins_every_thread():
    before = threading.active_count()
    pool = NodePool(threads_per_node=3)
    idents = [t.ident for t in pool.threads()]
    assert threading.active_count() == before + len(idents)
    pool.submit(pool.nodes[0], time.sleep, 0.1)  # queued work finishes before close returns
    pool.close()
    assert pool.closed and threading.active_count() == before
    assert not {t.ident for t in threading.enumerate()} & set(idents)
    pool.close()  # again: nothing
    with pytest.raises(RuntimeError, match="closed"):
        pool.submit(pool.nodes[0], int)
    with NodePool() as pool:
        pass
    assert threading.active_count() == before


def test_unknown_nodes_are_refused():
    valid = usable_nodes()
    with pytest.raises(ValueError, match=rf"node 99 is unknown: .*{valid}"):
        NodePool(nodes=[99])
    with pytest.raises(TypeError, match="sequence of node ids"):
        NodePool(nodes=0)
    with pytest.raises(ValueError, match="repeats"):
        NodePool(nodes=[valid[0], valid[0]])
    before = threading.active_count()
    with NodePool(nodes=valid[:1]) as pool:
        with pytest.raises(ValueError, match=rf"node 99 is not in this pool: its nodes are \[{valid[0]}\]"):
            pool.submit(99, int)
        with pytest.raises(ValueError, match=rf"node 99 is not in this pool: its nodes are \[{valid[0]}\]"):
            pool.cpus(99)
    assert threading.active_count() == before


def test_map_blocks_refuses_plain_arrays():
    with NodePool() as pool, pytest.raises(TypeError, match="partitioned"):
        pool.map_blocks(np.sum, np.zeros(10))


@pytest.mark.numa_calls
def test_pool_reports_pinning_and_policy():
    with NodePool() as pool:
        assert "NodePool open" in repr(pool)
        if LINUX:
            assert pool.pinning == "sched_setaffinity"
        elif sys.platform == "win32":
            # SetThreadGroupAffinity, or none with the reason recorded (Wine may refuse it)
            if pool.pinning is None:
                assert any("not pinned" in f for f in pool.fallbacks), pool.fallbacks
            else:
                assert pool.pinning == "SetThreadGroupAffinity"
                assert all(t.cpus == pool.cpus(t.node) for t in pool.threads())
        if policy_available():
            assert all(t.policy for t in pool.threads())
        else:
            assert not any(t.policy for t in pool.threads())
            assert any("NEP 49" in f for f in pool.fallbacks), pool.fallbacks
    with NodePool(policy=False) as pool:
        assert not any(t.policy for t in pool.threads())


@pytest.mark.numa_calls
@pytest.mark.skipif(not policy_available(), reason="needs numamap.policy (Linux)")
def test_policy_is_installed_in_every_thread_and_only_there():
    with NodePool(threads_per_node=2) as pool:
        node = pool.nodes[0]
        names = [pool.submit(node, lambda: handler_name(np.ones(2 * MiB // 8))).result() for _ in range(4)]
        assert set(names) == {f"numamap_node{node}"}
        assert handler_name() == "default_allocator"
        made = pool.submit(node, np.ones, 2 * MiB // 8).result()
        small = pool.submit(node, np.arange, 100.0).result()  # through the thread's own cache
    assert made.sum() == 2 * MiB // 8 and small.sum() == 4950.0  # arrays outlive the pool's threads
    for arr, kind in ((made, "large"), (small, "small")):
        info = numamap.block_info(arr)
        assert (info.kind, info.node) == (kind, node)
        if LINUX:  # move_pages; Wine does not place pages on nodes
            assert numamap.where(arr).fraction_on(node) == 1.0


def test_absurd_thread_counts_are_refused():
    from numamap.workers import MIN_THREAD_CAP, THREADS_PER_CPU_CAP

    before = threading.active_count()
    node = usable_nodes()[0]
    cap = max(MIN_THREAD_CAP, THREADS_PER_CPU_CAP * len(numamap.topology().cpus_of(node)))
    for bad in (10**9, 2**63, cap + 1, {node: 10**6}):
        with pytest.raises(ValueError, match=r"threads_per_node=\d+ for node \d+ is more than"):
            NodePool(threads_per_node=bad)
    assert threading.active_count() == before  # refused before any thread started
    with NodePool(nodes=[node], threads_per_node=cap) as pool:
        assert len(pool.threads(node)) == cap


def _in_forked_child(work, timeout=60.0):
    """Run ``work()`` in a forked child; (exit status, what it wrote). A hung child is killed."""
    import select
    import signal

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report through the pipe, never return into pytest
        code = 1
        try:
            os.close(read_end)
            os.write(write_end, repr(work()).encode())
            code = 0
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            os.write(write_end, f"{type(exc).__name__}: {exc}".encode())
        finally:
            os._exit(code)
    os.close(write_end)
    ready, _, _ = select.select([read_end], [], [], timeout)
    if not ready:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(read_end)
        pytest.fail(f"the forked child did not answer within {timeout} s: it hangs")
    chunks = []
    while chunk := os.read(read_end, 65536):
        chunks.append(chunk)
    os.close(read_end)
    _, status = os.waitpid(pid, 0)
    return status, b"".join(chunks).decode()


@pytest.mark.linux
def test_a_pool_inherited_by_fork_works_in_the_child():
    arr = multi_block()
    with NodePool(threads_per_node=2) as pool:
        node = pool.nodes[0]
        parent_threads = {t.native_id for t in pool.threads()}

        def child():
            got = pool.submit(node, lambda: (os.getpid(), current_node())).result(timeout=30)
            assert got == (os.getpid(), node), got
            threads = pool.threads()
            assert len(threads) == 2 * len(pool.nodes) and not {t.native_id for t in threads} & parent_threads
            assert all(os.sched_getaffinity(t.native_id) == set(pool.cpus(t.node)) for t in threads)
            pool.first_touch(arr, 4.0)
            sums = pool.map_blocks(lambda block: float(block.sum()), arr)
            pool.close()
            return sum(sums)

        status, out = _in_forked_child(child)
        assert status == 0, out
        assert float(out) == 4.0 * arr.size
        # the parent's pool is untouched: same threads, still working, its array unchanged
        assert {t.native_id for t in pool.threads()} == parent_threads
        assert pool.submit(node, lambda: os.getpid()).result() == os.getpid()
        assert not arr.any()


@pytest.mark.linux
def test_a_closed_pool_stays_closed_in_a_forked_child():
    pool = NodePool(threads_per_node=1)
    pool.close()

    def child():
        with pytest.raises(RuntimeError, match="closed"):
            pool.submit(pool.nodes[0], int)
        return "ok"

    status, out = _in_forked_child(child)
    assert status == 0 and out == "'ok'", out


# -- multi-node tier --------------------------------------------------------------------------------

@pytest.mark.numa
@pytest.mark.linux
def test_a_thread_of_node_k_runs_only_on_node_k_cpus():
    from numamap.testing.vm import current_topology

    guest = current_topology()
    with NodePool() as pool:
        assert len(pool.nodes) >= 2
        for t in pool.threads():
            cpus = os.sched_getaffinity(t.native_id)
            assert cpus == set(numamap.topology().node(t.node).cpus), (t, cpus)
            if guest is not None:
                assert cpus == set(guest.cpus[t.node])
        for node in pool.nodes:
            seen = {pool.submit(node, running_cpu).result() for _ in range(20)}
            assert seen <= set(pool.cpus(node)), (node, seen)


@pytest.mark.numa
@pytest.mark.linux
def test_map_blocks_runs_each_block_on_its_nodes_cpus():
    arr = numamap.partitioned((4096, 1024), dtype=np.uint8, page_size="4K")
    layout = numamap.blocks(arr)
    assert len({node for node, _ in layout}) >= 2

    def where_run(block):
        block[...] = 1
        return current_node(), running_cpu(), os.sched_getaffinity(0)

    with NodePool() as pool:
        for _ in range(3):
            for (node, _), (ran_node, cpu, mask) in zip(layout, pool.map_blocks(where_run, arr)):
                assert ran_node == node and cpu in pool.cpus(node) and mask == set(pool.cpus(node))


@pytest.mark.numa
@pytest.mark.linux
def test_first_touch_puts_every_page_of_each_block_on_its_node():
    arr = numamap.partitioned((16 * MiB // 4096, 512), dtype=np.float64, page_size="4K")
    with NodePool() as pool:
        pool.first_touch(arr, 2.5)
        layout = numamap.blocks(arr)
        assert len({node for node, _ in layout}) >= 2
        for node, s in layout:
            placement = numamap.where(arr[s])
            assert placement.fraction_on(node) == 1.0, (node, placement)
        assert (arr == 2.5).all()
        # with no binding at all, the pinned threads' first touch alone places the pages
        for node in pool.nodes:
            loose = numamap.empty(8 * MiB, dtype=np.uint8, page_size="4K")
            assert loose.base.nodes == ()
            pool.submit(node, np.copyto, loose, 7).result()
            assert numamap.where(loose).fraction_on(node) == 1.0


@pytest.mark.numa
@pytest.mark.linux
@pytest.mark.skipif(not policy_available(), reason="needs numamap.policy (Linux)")
def test_the_policy_places_the_allocations_of_a_worker_on_its_node():
    def allocate():
        made = [np.ones(4 * MiB // 8), np.arange(3 * MiB // 8, dtype=np.float64) * 2,
                np.concatenate([np.zeros(MiB // 8), np.ones(MiB // 8)]),
                np.ones(2), np.arange(1024.0) + 1, np.ones(100 * 1024 // 8)]  # small blocks too
        return [(handler_name(a), numamap.where(a).fraction_on(current_node())) for a in made]

    with NodePool() as pool:
        for node in pool.nodes:
            for name, fraction in pool.submit(node, allocate).result():
                assert name == f"numamap_node{node}" and fraction == 1.0


@pytest.mark.numa
@pytest.mark.linux
def test_a_node_without_memory_gets_pinned_threads_and_no_policy():
    topo = numamap.topology()
    cpu_only = [n.id for n in topo.nodes if not n.has_memory and topo.cpus_of(n.id)]
    if not cpu_only:
        from numamap.testing.vm import current_topology

        guest = current_topology()
        if guest is None or guest.name != "four":
            pytest.skip("needs a node with CPUs and no memory (the 'four' guest)")
        pytest.fail(f"the 'four' guest should have a node with CPUs and no memory: {topo!r}")
    node = cpu_only[0]
    assert node not in NodePool(threads_per_node=1).nodes  # by default: nodes with memory only
    with NodePool(nodes=[node]) as pool:
        assert {os.sched_getaffinity(t.native_id) == set(topo.cpus_of(node)) for t in pool.threads()} == {True}
        assert not any(t.policy for t in pool.threads())
        if policy_available():
            assert any(f"node {node} has no memory" in f for f in pool.fallbacks), pool.fallbacks
        assert pool.submit(node, lambda: float(np.ones(MiB).sum())).result() == MiB
