"""numamap.dask: NumaCluster, the preload, NodePlugin and the array helpers.

Host tier: one node. Multi-node tier: the `two` guest only (Dask is slow under TCG).
Needs the dask extra (pip install 'numamap[dask]'; from a clone pip install -e '.[dask]'); the
tests skip without it, naming the extra.
"""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import numamap

MiB = 1 << 20


@pytest.fixture(scope="module")
def nd():
    pytest.importorskip(
        "distributed", reason="Dask comes with the dask extra: pip install 'numamap[dask]', "
                      "or from a clone: pip install -e '.[dask]'")
    import numamap.dask as nd

    return nd


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


def only_in_two():
    from numamap.testing.vm import current_topology

    guest = current_topology()
    if guest is None or guest.name != "two":
        pytest.skip("runs in the 'two' guest of the multi-node tier (Dask is slow under TCG)")


def start_method() -> dict:
    """Worker processes by fork inside the guests: spawn re-imports distributed in every worker,
    about 25 s each under TCG; fork reuses this process's imports. The host keeps spawn."""
    if os.environ.get("NUMAMAP_VM"):
        return {"distributed.worker.multiprocessing-method": "fork"}
    return {}


@pytest.fixture(scope="module")
def client(nd):
    import dask
    from distributed import Client

    with dask.config.set(start_method()):
        cluster = nd.NumaCluster(dashboard_address=":0")
    with cluster, Client(cluster) as client:
        client.wait_for_workers(len(cluster.nodes), timeout=120)
        yield client


def by_node(client, nd):
    """{node: (address, worker info)} from the scheduler."""
    out = {}
    for address, info in client.scheduler_info(n_workers=-1)["workers"].items():
        (name,) = [r for r in info["resources"] if r.startswith("numa")]
        out[int(name[4:])] = (address, info)
    return out


# task functions (module level: they travel to the workers by reference)

def running_cpu() -> int:
    with open("/proc/thread-self/stat") as handle:
        text = handle.read()
    return int(text[text.rindex(")") + 2:].split()[39 - 3])


def probe_task():
    import numamap.dask as nd
    from numamap.memory_handler import handler_name

    node = nd.node_of_worker()
    made, small = np.ones(4 * MiB // 8), np.arange(100.0)  # a large and a small arena block
    return {"node": node, "cpu": running_cpu(), "mask": sorted(os.sched_getaffinity(0)),
            "fraction": min(numamap.where(made).fraction_on(node), numamap.where(small).fraction_on(node)),
            "handler": handler_name(made)}


def chunk_report(block):
    import numamap.dask as nd

    node = nd.node_of_worker()
    made = block * 2.0
    return np.array([[node, numamap.where(block).fraction_on(node), numamap.where(made).fraction_on(node)]])


# -- host tier ---------------------------------------------------------------------------------------

@pytest.mark.skipif(sys.platform == "win32", reason="starts a subprocess interpreter")
def test_importing_numamap_does_not_import_dask():
    code = ("import sys, numamap, numamap.workers\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_numa_cluster_refuses_what_it_cannot_do(nd):
    with pytest.raises(TypeError, match="one worker per node"):
        nd.NumaCluster(n_workers=2)
    with pytest.raises(TypeError, match="threads_per_node"):
        nd.NumaCluster(threads_per_worker=2)
    with pytest.raises(ValueError, match="one process per node"):
        nd.NumaCluster(processes=False)
    with pytest.raises(ValueError, match=rf"node 99 is unknown.*{usable_nodes()}"):
        nd.NumaCluster(nodes=[99])
    with pytest.raises(ValueError, match="positive int"):
        nd.NumaCluster(threads_per_node=0)
    assert nd.resource(3) == "numa3"


def test_numa_cluster_has_one_pinned_worker_per_node(client, nd):
    topo = numamap.topology()
    workers = by_node(client, nd)
    assert sorted(workers) == usable_nodes()
    client.submit(time.sleep, 0.01, pure=False).result()  # task threads exist now
    affinities = client.run(nd.thread_affinities)
    for node, (address, info) in workers.items():
        assert info["name"] == f"numa{node}" and info["resources"] == {f"numa{node}": 1}
        assert info["nthreads"] == len(topo.cpus_of(node))
        threads = affinities[address]
        assert len(threads) >= 2 and set(threads.values()) == {tuple(topo.cpus_of(node))}, threads
    assert nd.workers_by_node(client) == {n: [a] for n, (a, _) in workers.items()}
    with pytest.raises(ValueError, match="has them all"):
        client.cluster.new_worker_spec()


@pytest.mark.numa_calls
def test_tasks_run_with_the_node_resource(client, nd):
    for node in usable_nodes():
        got = client.submit(probe_task, resources={nd.resource(node): 1}, pure=False).result(timeout=120)
        assert got["node"] == node and got["mask"] == list(numamap.topology().cpus_of(node))
        assert got["fraction"] == 1.0
        if policy_available():
            assert got["handler"] == f"numamap_node{node}"  # the preload's policy reaches task threads


@pytest.mark.numa_calls
def test_partitioned_and_map_blocks_keep_chunks_on_their_node(client, nd):
    nodes = usable_nodes()
    x = nd.partitioned((1000, 8), chunks_per_node=3, fill=1.0)
    assert x.numblocks == (3 * len(nodes), 1) and sum(x.chunks[0]) == 1000
    layout = [n for n in nodes for _ in range(3)]
    y = nd.map_blocks(lambda b: b * 2, x, dtype=float)
    assert float(y.sum().compute()) == 16000.0
    report = nd.map_blocks(chunk_report, x, dtype=float, chunks=(1, 3)).compute()
    assert report[:, 0].tolist() == layout
    assert (report[:, 1:] == 1.0).all()
    # the scheduler holds the restrictions: each chunk's task to its node's workers
    addresses = nd.workers_by_node(client)

    def restrictions(dask_scheduler, name):
        return {ts.key[1]: sorted(ts.worker_restrictions or ()) for ts in dask_scheduler.tasks.values()
                if isinstance(ts.key, tuple) and ts.key[0] == name}

    got = client.run_on_scheduler(restrictions, name=y.name)
    assert got == {i: addresses[n] for i, n in enumerate(layout)}
    with pytest.raises(ValueError, match="needs an array from numamap.dask.partitioned"):
        nd.map_blocks(np.negative, y + 1)
    with pytest.raises(ValueError, match="no worker serves nodes \\[99\\]"):
        nd.partitioned(10, nodes=[99])


def test_pin_process_pins_threads_started_before(nd):
    if not sys.platform.startswith("linux"):
        pytest.skip("pinning a whole process is Linux-only")
    code = """
import os, threading, time
import numamap.dask as nd
stop = threading.Event()
threads = [threading.Thread(target=stop.wait) for _ in range(3)]
for t in threads: t.start()
cpu = min(os.sched_getaffinity(0))
pinned = nd.pin_process([cpu])
late = threading.Thread(target=lambda: print(sorted(os.sched_getaffinity(0))))
late.start(); late.join()
print(sorted(set(nd.thread_affinities().values())), pinned == (cpu,))
stop.set()
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    cpu = min(os.sched_getaffinity(0))
    assert out.split("\n")[:2] == [f"[{cpu}]", f"[({cpu},)] True"]


def test_node_plugin_pins_the_workers_of_another_cluster(nd):
    from distributed import Client, LocalCluster

    node = usable_nodes()[0]
    cpus = tuple(numamap.topology().cpus_of(node))
    with LocalCluster(n_workers=1, threads_per_worker=1, resources={nd.resource(node): 1},
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        client.register_plugin(nd.NodePlugin())
        assert set(*client.run(lambda: set(nd.thread_affinities().values())).values()) == {cpus}
        assert client.submit(nd.node_of_worker, pure=False).result(timeout=60) == node
    with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        with pytest.raises(ValueError, match="has no numa<k> resource"):
            client.register_plugin(nd.NodePlugin())


def run_preload_workers(nd, nodes, tmp_path):
    """`dask worker --preload numamap.dask --nworkers N --name testhost`, against a scheduler here."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=0, dashboard_address=":0") as cluster, Client(cluster) as client:
        command = [sys.executable, "-m", "dask", "worker", cluster.scheduler_address, "--preload",
                   "numamap.dask", "--nworkers", str(len(nodes)), "--name", "testhost",
                   "--nthreads", "1", "--no-dashboard"]
        # the tasks below are functions of this module: the workers import it by name
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [os.path.dirname(__file__)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
        env.update({"DASK_" + key.upper().replace(".", "__").replace("-", "_"): value
                    for key, value in start_method().items()})
        log = open(os.path.join(str(tmp_path), "workers.log"), "w+")
        worker = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log, env=env,
                                  start_new_session=True)
        try:
            try:
                client.wait_for_workers(len(nodes), timeout=180)
            except TimeoutError:
                log.seek(0)
                pytest.fail(f"the preload workers did not start: {log.read()[-3000:]}")
            info = client.scheduler_info(n_workers=-1)["workers"]
            names = {i["name"]: i["resources"] for i in info.values()}
            expected = "testhost" if len(nodes) == 1 else None
            for index, node in enumerate(nodes):
                name = expected or f"testhost-{index}"
                assert names[name] == {f"numa{node}": 1}, names
            results = {node: client.submit(probe_task, resources={nd.resource(node): 1},
                                           pure=False).result(timeout=120) for node in nodes}
            affinities = client.run(nd.thread_affinities)
            return info, results, affinities
        finally:
            os.killpg(worker.pid, signal.SIGTERM)
            try:
                worker.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait()
            log.close()


def check_preload(nd, nodes, tmp_path):
    topo = numamap.topology()
    info, results, affinities = run_preload_workers(nd, nodes, tmp_path)
    for node, got in results.items():
        assert got["node"] == node and got["mask"] == list(topo.cpus_of(node)) and got["fraction"] == 1.0
        assert got["cpu"] in topo.cpus_of(node)
        if policy_available():
            assert got["handler"] == f"numamap_node{node}"
    for address, threads in affinities.items():
        (node,) = [int(r[4:]) for r in info[address]["resources"]]
        assert set(threads.values()) == {tuple(topo.cpus_of(node))}


@pytest.mark.numa_calls
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="dask worker processes, Linux")
def test_preload_gives_each_worker_its_node(nd, tmp_path):
    check_preload(nd, usable_nodes(), tmp_path)


# -- multi-node tier (the `two` guest; the preload test first, before the cluster fixture starts) -------

@pytest.mark.numa
@pytest.mark.linux
def test_preload_workers_on_two_nodes(request, tmp_path):
    only_in_two()
    nd = request.getfixturevalue("nd")  # after the skip: other guests need not import dask
    check_preload(nd, usable_nodes(), tmp_path)


@pytest.mark.numa
@pytest.mark.linux
def test_tasks_run_on_the_worker_of_their_node_and_allocate_there(request):
    only_in_two()
    nd = request.getfixturevalue("nd")
    client = request.getfixturevalue("client")  # after the skip: no cluster in the other guests
    topo = numamap.topology()
    nodes = usable_nodes()
    assert len(nodes) == 2
    affinities = client.run(nd.thread_affinities)
    for node, (address, _) in by_node(client, nd).items():
        assert set(affinities[address].values()) == {tuple(topo.cpus_of(node))}
    for node in nodes:
        for _ in range(3):
            got = client.submit(probe_task, resources={nd.resource(node): 1}, pure=False).result(timeout=120)
            assert got["node"] == node and got["cpu"] in topo.cpus_of(node), got
            assert got["fraction"] == 1.0, got
            if policy_available():
                assert got["handler"] == f"numamap_node{node}"
    x = nd.partitioned((2048, 512), chunks_per_node=2, fill=1.0)
    report = nd.map_blocks(chunk_report, x, dtype=float, chunks=(1, 3)).compute()
    assert report[:, 0].tolist() == [0, 0, 1, 1]
    assert (report[:, 1:] == 1.0).all(), report
