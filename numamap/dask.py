"""Dask on NUMA nodes: one worker process per node, pinned, with the node's memory policy.

Needs the ``dask`` extra (``pip install 'numamap[dask]'``; from a clone,
``pip install -e '.[dask]'``); ``import numamap`` never imports Dask. Three ways in:

* :class:`NumaCluster`, a :class:`distributed.LocalCluster` with one worker per node;
* the preload ``dask worker SCHEDULER --preload numamap.dask --nworkers N --name HOST`` on
  each machine of a bigger cluster (:func:`dask_setup`);
* :class:`NodePlugin`, to pin the workers of a cluster started some other way.

Every such worker carries the resource ``numa<k>`` for its node ``k``. :func:`partitioned` and
:func:`map_blocks` build dask arrays whose chunks are made, and worked on, by the worker of
their node.
"""
from __future__ import annotations

import errno
import functools
import logging
import os
import re
import sys

import dask
import dask.array as da
import numpy as np
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph
from dask.utils import has_keyword
from distributed import LocalCluster, Nanny, WorkerPlugin
from distributed.worker_memory import parse_memory_limit

from ._backend import backend
from ._errors import FallbackError
from .memory_handler import policy as node_policy
from .numa_topology import topology
from .request import node_list

__all__ = ["NodePlugin", "NumaCluster", "dask_setup", "map_blocks", "node_of_worker", "partitioned",
           "pin_process", "resource", "thread_affinities", "workers_by_node"]

logger = logging.getLogger("numamap.dask")
_RESOURCE = re.compile(r"^numa(\d+)$")


def resource(node: int) -> str:
    """The Dask resource that marks a worker of ``node``: ``'numa<node>'``."""
    return f"numa{int(node)}"


def _usable_nodes() -> list[int]:
    return list(topology().working_nodes)


def _check_nodes(nodes) -> list[int]:
    usable = _usable_nodes()
    if nodes is None:
        if not usable:
            raise ValueError("no node has both memory and CPUs this process may run on")
        return usable
    nodes = node_list(nodes)
    for n in nodes:
        if n not in usable:
            raise ValueError(f"node {n} is unknown or lacks memory or usable CPUs: nodes with both "
                             f"are {usable}")
    return nodes


# -- pinning and the policy, inside a worker process -----------------------------------------------

def pin_process(cpus) -> tuple[int, ...]:
    """Pin every thread of this worker process to ``cpus``; returns the CPUs it now runs on.

    Threads keep the mask they have, so the backend pins each existing thread; threads started
    later inherit the caller's mask.
    """
    return backend.pin_process(cpus)


def thread_affinities() -> dict[int, tuple[int, ...]]:
    """``{thread id: CPUs}`` for every thread of this process (Linux)."""
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            out[int(tid)] = tuple(sorted(os.sched_getaffinity(int(tid))))
        except ProcessLookupError:
            pass
    return out


def node_of_worker(worker=None) -> int | None:
    """The node a worker serves, read from its ``numa<k>`` resource (None if it has none).

    Without an argument: the worker running the current task (:func:`distributed.get_worker`).
    """
    if worker is None:
        from distributed import get_worker

        worker = get_worker()
    found = [int(m.group(1)) for name in worker.state.total_resources
             if (m := _RESOURCE.match(str(name)))]
    if len(found) > 1:
        raise ValueError(f"worker {worker.name} has several numa resources: {sorted(found)}")
    return found[0] if found else None


def _pin_worker(worker, node: int) -> None:
    cpus = topology().cpus_of(node)
    try:
        got = pin_process(cpus)
    except (NotImplementedError, OSError) as exc:
        logger.warning("numamap: worker %s of node %s is not pinned: %s", worker.name, node, exc)
        return
    logger.info("numamap: worker %s pinned to node %d (CPUs %s)", worker.name, node, list(got))
    if worker.state.nthreads > len(cpus):
        logger.warning("numamap: worker %s runs %d task threads on node %d's %d CPUs; start it "
                       "with --nthreads %d", worker.name, worker.state.nthreads, node, len(cpus),
                       len(cpus))


@functools.lru_cache(maxsize=None)
def _policy_for(node: int):
    """This process's numamap.policy(node), made once and shared (a Policy may be entered from
    any number of threads); None where there is none (Windows)."""
    try:
        return node_policy(node, strict=True)
    except FallbackError as exc:
        if exc.errno not in (errno.EPERM, errno.EACCES):
            raise
        logger.warning("numamap: no NEP 49 policy for node %s (%s): placement is left to first "
                       "touch by the pinned worker threads, which still lands on node %s",
                       node, exc.strerror, node)
        return None
    except NotImplementedError as exc:
        logger.info("numamap: no NEP 49 policy for node %s: %s", node, exc)
        return None


class NodePlugin(WorkerPlugin):
    """Pins each worker's whole process to the CPUs of its node.

    Parameters
    ----------
    node : int, optional
        The node; by default each worker's own ``numa<k>`` resource says which.

    Notes
    -----
    Register it on a cluster whose workers carry ``numa<k>`` resources
    (``client.register_plugin(NodePlugin())``), or give it to one worker (``plugins=``).
    A plugin's setup runs outside the context that tasks inherit, so it cannot install the
    NEP 49 policy for them: the preload (:func:`dask_setup`) does that, and :func:`map_blocks`
    enters the policy around each of its tasks. Workers must be processes of their own
    (``processes=False`` would pin the client's process).
    """

    name = "numamap-node"

    def __init__(self, node: int | None = None):
        self.node = None if node is None else int(node)

    def setup(self, worker) -> None:
        node = self.node if self.node is not None else node_of_worker(worker)
        if node is None:
            raise ValueError(f"worker {worker.name} has no numa<k> resource: give NodePlugin a node")
        _pin_worker(worker, node)


def _index_from_name(name) -> int | None:
    """``'host-3'`` -> 3 (``dask worker --nworkers N --name host``), ``3`` -> 3."""
    if isinstance(name, (int, np.integer)):
        return int(name)
    match = re.search(r"-(\d+)$", str(name))
    return int(match.group(1)) if match else None


def dask_setup(worker) -> None:
    """Preload entry point: ``dask worker SCHEDULER --preload numamap.dask --nworkers N --name HOST``.

    Runs in each worker process before it registers with the scheduler. The node is the
    worker's ``numa<k>`` resource if it has one; else worker ``HOST-i`` serves the i-th node with
    memory and CPUs of its machine, and gets the resource ``numa<k>`` (a name without ``-i``
    means node 0, on one-node machines only: ``--nworkers 1`` keeps the name as given). Then
    the whole process is pinned to the node's CPUs, and :func:`numamap.policy` for the node is
    installed in the context that the worker's tasks run in copies of, so the arrays they
    allocate land on the node.
    """
    node = node_of_worker(worker)
    if node is None:
        nodes = _usable_nodes()
        index = _index_from_name(worker.name)
        if index is None:  # --nworkers 1 keeps the name as given; no --name: the address
            if len(nodes) > 1:
                raise ValueError(f"numamap.dask: worker name {worker.name!r} does not end in "
                                 f"-<index> and this machine has {len(nodes)} nodes: start "
                                 f"workers with --nworkers {len(nodes)} --name HOST, or give each "
                                 "one --resources numa<k>=1")
            index = 0
        if index >= len(nodes):
            raise ValueError(f"numamap.dask: worker {worker.name!r} is number {index}, but this "
                             f"machine has {len(nodes)} nodes with memory and CPUs ({nodes}): "
                             f"start it with --nworkers {len(nodes)}")
        node = nodes[index]
        for state in (worker.state.total_resources, worker.state.available_resources):
            state[resource(node)] = 1
    _pin_worker(worker, node)
    manager = _policy_for(node)
    if manager is not None:
        # For the worker's life: the worker's connection to the scheduler, and so each task,
        # runs in a copy of this context.
        if hasattr(manager, "install"):
            manager.install()
        else:
            manager.__enter__()


# -- the cluster -----------------------------------------------------------------------------------

class NumaCluster(LocalCluster):
    """A :class:`distributed.LocalCluster` with one worker process per NUMA node.

    The worker of node ``k`` is named ``numa<k>``, has the resource ``numa<k>`` (one unit: a task
    asking for it takes the whole token, so such tasks run one at a time; :func:`workers_by_node`
    gives addresses for ``workers=`` restrictions instead), runs :func:`dask_setup` as a preload
    (pinning, policy) and :class:`NodePlugin`. Its memory limit defaults to the machine's memory
    split evenly among the workers.

    Parameters
    ----------
    nodes : sequence of int, optional
        One worker for each; every node with memory and CPUs by default.
    threads_per_node : int or mapping of int to int, optional
        Task threads of each worker; the node's usable CPU count by default.
    **kwargs
        Passed on to LocalCluster (``dashboard_address``, ``memory_limit``, ...);
        ``n_workers``, ``threads_per_worker`` and ``processes=False`` are refused.

    Examples
    --------
    >>> import numamap
    >>> from distributed import Client
    >>> from numamap.dask import NumaCluster, node_of_worker
    >>> with NumaCluster(dashboard_address=":0") as cluster, Client(cluster) as client:
    ...     on_node = client.submit(node_of_worker, resources={"numa0": 1}).result()
    ...     names = sorted(w["name"] for w in client.scheduler_info()["workers"].values())
    >>> on_node, names[0]
    (0, 'numa0')
    """

    def __init__(self, nodes=None, *, threads_per_node=None, **kwargs):
        for name in ("n_workers", "threads_per_worker"):
            if name in kwargs:
                raise TypeError(f"NumaCluster starts one worker per node: give nodes= and "
                                f"threads_per_node= rather than {name}=")
        if kwargs.pop("processes", True) is False:
            raise ValueError("NumaCluster needs one process per node (processes=False would put "
                             "every node's worker in one process, which cannot be pinned apart)")
        nodes = _check_nodes(nodes)
        topo = topology()
        self.nodes: tuple[int, ...] = tuple(nodes)
        self._numa_threads = {}
        for n in nodes:
            count = (threads_per_node.get(n) if isinstance(threads_per_node, dict) else threads_per_node)
            count = len(topo.cpus_of(n)) if count is None else count
            if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
                raise ValueError(f"threads_per_node must be a positive int (or a dict of them), not {count!r}")
            self._numa_threads[n] = int(count)
        if "memory_limit" not in kwargs:
            kwargs["memory_limit"] = parse_memory_limit("auto", 1, len(nodes), logger=logger)
        super().__init__(n_workers=0, threads_per_worker=1, processes=True, **kwargs)

    @staticmethod
    def worker_name(node: int) -> str:
        """Name of the worker of ``node``."""
        return f"numa{int(node)}"

    def _node_spec(self, node: int) -> dict:
        options = dict(self.new_spec["options"])
        options["nthreads"] = self._numa_threads[node]
        options["resources"] = {**(options.get("resources") or {}), resource(node): 1}
        preload = options.get("preload") or []
        preload = [preload] if isinstance(preload, str) else list(preload)
        options["preload"] = preload + ["numamap.dask"]
        options["plugins"] = set(options.get("plugins") or ()) | {NodePlugin(node)}
        return {"cls": self.new_spec.get("cls", Nanny), "options": options}

    async def _start(self):
        for node in self.nodes:
            self.worker_spec.setdefault(self.worker_name(node), self._node_spec(node))
        await super()._start()

    def new_worker_spec(self):
        """The spec of the first node without a worker (``scale`` goes up to one per node)."""
        for node in self.nodes:
            if self.worker_name(node) not in self.worker_spec:
                return {self.worker_name(node): self._node_spec(node)}
        raise ValueError(f"NumaCluster runs one worker per node and has them all: nodes {list(self.nodes)}")


# -- arrays ----------------------------------------------------------------------------------------

def workers_by_node(client=None) -> dict[int, list[str]]:
    """``{node: [worker address, ...]}`` from the workers' ``numa<k>`` resources."""
    if client is None:
        from distributed import get_client

        client = get_client()
    out: dict[int, list[str]] = {}
    for address, info in client.scheduler_info(n_workers=-1)["workers"].items():
        for name in info.get("resources") or {}:
            if match := _RESOURCE.match(str(name)):
                out.setdefault(int(match.group(1)), []).append(address)
    return {n: sorted(a) for n, a in sorted(out.items())}


# Node of each chunk row, by dask array name, for the arrays built here.
_layouts: dict[str, tuple[int, ...]] = {}


class _Placement:
    """Global annotation (evaluated by the scheduler for each task of one update): the workers of
    the node of the task's chunk row, ``key[1]``; any numa worker for other keys."""

    def __init__(self, layout: tuple[int, ...], workers: dict[int, list[str]]):
        self.layout = layout
        self.workers = workers

    def __call__(self, key):
        if (isinstance(key, tuple) and len(key) > 1 and isinstance(key[1], int)
                and 0 <= key[1] < len(self.layout)):
            return self.workers[self.layout[key[1]]]
        return sorted({a for addresses in self.workers.values() for a in addresses})


def _persist_on_nodes(arr, layout: tuple[int, ...], client):
    """``client.persist(arr)`` with the task of chunk row i restricted to node ``layout[i]``.

    The restriction is a global annotation, applied by the scheduler to every task of the
    update: layer annotations of dask arrays do not survive the low-level fusion that
    optimization does by default. 'restrictions' is the scheduler's other name for 'workers';
    unlike 'workers', blockwise fusion leaves it alone should a layer pick it up.
    """
    workers = workers_by_node(client)
    missing = sorted(set(layout) - set(workers))
    if missing:
        raise ValueError(f"no worker serves nodes {missing}: workers serve nodes {sorted(workers)} "
                         "(start a NumaCluster, or workers with the numamap.dask preload)")
    with dask.annotate(restrictions=_Placement(tuple(layout), workers), allow_other_workers=False):
        out = client.persist(arr)
    _layouts[out.name] = tuple(layout)
    return out


def _client(client):
    if client is None:
        from distributed import get_client

        client = get_client()
    return client


def _make_chunk(shape, dtype, fill, node):
    from .arrays import empty

    out = empty(shape, dtype, node=node)
    if fill is not None:
        out[...] = fill
    return out


def partitioned(shape, dtype=float, *, nodes=None, chunks_per_node: int = 1, fill=0, client=None):
    """A persisted dask array whose row chunks were made by, and stay on, the workers of their node.

    Each chunk is a :func:`numamap.empty` array on its node, made by a task restricted to the
    workers of that node; the array is persisted (its chunks are being made when this returns).
    :func:`map_blocks` keeps the work on the same workers.

    Parameters
    ----------
    shape : int or tuple of int
    dtype : data-type
    nodes : sequence of int, optional
        Nodes in chunk order; every node that has a worker by default.
    chunks_per_node : int
        Row chunks per node. Rows are split among the nodes by their workers' thread counts.
    fill : scalar or None
        Fill value; None leaves the (zeroed) memory untouched.
    client : distributed.Client, optional
        The default client by default.
    """
    client = _client(client)
    shape = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(s) for s in shape)
    if not shape:
        raise ValueError("partitioned() needs at least one dimension")
    dtype = np.dtype(dtype)
    if isinstance(chunks_per_node, bool) or not isinstance(chunks_per_node, (int, np.integer)) \
            or chunks_per_node < 1:
        raise ValueError(f"chunks_per_node={chunks_per_node!r} must be a positive int")
    workers = workers_by_node(client)
    nodes = sorted(workers) if nodes is None else [int(n) for n in nodes]
    if not nodes:
        raise ValueError("no worker carries a numa<k> resource: start a NumaCluster, or workers "
                         "with the numamap.dask preload")
    missing = sorted(set(nodes) - set(workers))
    if missing:
        raise ValueError(f"no worker serves nodes {missing}: workers serve nodes {sorted(workers)}")
    info = client.scheduler_info(n_workers=-1)["workers"]
    weights = [sum(info[a]["nthreads"] for a in workers[n]) for n in nodes]
    rows, total, bounds, acc = shape[0], sum(weights), [0], 0
    for w in weights:
        acc += w
        bounds.append(rows * acc // total)
    layout, row_chunks = [], []
    for node, low, high in zip(nodes, bounds, bounds[1:]):
        for part in np.array_split(np.arange(low, high), chunks_per_node):
            if len(part):
                layout.append(node)
                row_chunks.append(len(part))
    if not row_chunks:  # zero rows: one empty chunk on the first node
        layout, row_chunks = [nodes[0]], [0]
    name = "numamap-partitioned-" + tokenize(shape, dtype, tuple(layout), tuple(row_chunks), fill)
    rest = shape[1:]
    dsk = {(name, i) + (0,) * len(rest): (_make_chunk, (count,) + rest, dtype, fill, node)
           for i, (node, count) in enumerate(zip(layout, row_chunks))}
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=())
    chunks = (tuple(row_chunks),) + tuple((s,) for s in rest)
    return _persist_on_nodes(da.Array(graph, name, chunks, dtype=dtype), tuple(layout), client)


class _OnNode:
    """A map_blocks function run under its chunk's node policy."""

    def __init__(self, fn, layout):
        self.fn = fn
        self.layout = layout
        self.wants_block_id = has_keyword(fn, "block_id")
        # dask names the output after the function; no __wrapped__, whose signature would hide
        # block_id from dask.
        self.__name__ = getattr(fn, "__name__", type(fn).__name__)

    def __call__(self, *blocks, block_id=None, **kwargs):
        if self.wants_block_id:
            kwargs["block_id"] = block_id
        manager = _policy_for(self.layout[block_id[0]])
        if manager is None:
            return self.fn(*blocks, **kwargs)
        with manager:
            return self.fn(*blocks, **kwargs)


def map_blocks(fn, arr, *args, nodes=None, client=None, **kwargs):
    """:func:`dask.array.map_blocks`, each chunk's task on the workers of its node; persisted.

    Parameters
    ----------
    fn : callable
        Called as ``fn(chunk, *args, **kwargs)`` inside :func:`numamap.policy` for the chunk's
        node (where that exists), so the arrays it allocates land there too.
    arr : dask.array.Array
        From :func:`partitioned` or from this function; other arrays need ``nodes``.
    nodes : sequence of int, optional
        The node of each chunk row of ``arr``.
    client : distributed.Client, optional
    **kwargs
        For :func:`dask.array.map_blocks` (``dtype``, ``chunks``, ...) and for ``fn``.

    Returns
    -------
    dask.array.Array
        Persisted: its tasks are running when this returns. Chunk row i of the result is on
        the node of chunk row i of ``arr``.
    """
    client = _client(client)
    layout = tuple(int(n) for n in nodes) if nodes is not None else _layouts.get(arr.name)
    if layout is None:
        raise ValueError("map_blocks() needs an array from numamap.dask.partitioned() (or from "
                         "map_blocks), or nodes= giving the node of each chunk row")
    if len(layout) != arr.numblocks[0]:
        raise ValueError(f"nodes gives {len(layout)} nodes for {arr.numblocks[0]} chunk rows")
    out = da.map_blocks(_OnNode(fn, layout), arr, *args, **kwargs)
    if not out.ndim or out.numblocks[0] != len(layout):
        raise ValueError("map_blocks() keeps one output chunk row per input chunk row: fn must not "
                         "drop or rechunk axis 0")
    return _persist_on_nodes(out, layout, client)
