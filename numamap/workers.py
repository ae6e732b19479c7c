"""Thread pools pinned to NUMA nodes: work runs on the node whose memory it touches.

:class:`NodePool` owns one :class:`concurrent.futures.ThreadPoolExecutor` per node. Every thread
of a node's pool pins itself to that node's CPUs when it starts and installs the node's NEP 49
policy (:func:`numamap.policy`) for its whole life, so the arrays it allocates and the pages it
faults in land on its node.
"""
from __future__ import annotations

import concurrent.futures as cf
import errno
import os
import sys
import threading
import weakref
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ._backend import backend
from ._errors import NUMA_REFUSED, FallbackError, warn_fallback
from ._units import format_bytes
from .memory_handler import policy as node_policy
from .numa_topology import topology
from .progress import Progress
from .request import check_node_id, node_list

__all__ = ["NodePool", "WorkerThread", "current_node"]

_local = threading.local()

#: ``threads_per_node`` may ask for at most this many threads per usable CPU of the node (and at
#: least :data:`MIN_THREAD_CAP` threads): more only exhausts the process, never the node's CPUs.
THREADS_PER_CPU_CAP = 4
MIN_THREAD_CAP = 32

# Open pools, so that a forked child can mark them: their threads stayed in the parent.
_live_pools: "weakref.WeakSet[NodePool]" = weakref.WeakSet()


@dataclass(frozen=True)
class WorkerThread:
    """One thread of a :class:`NodePool`, as it reported itself when it started.

    Attributes
    ----------
    node : int
        The node it serves.
    name : str
        ``threading`` name, ``numamap-node<N>_<i>``.
    ident, native_id : int
        ``threading.get_ident()`` and the OS thread id (``os.sched_getaffinity(native_id)``
        reads its CPU mask on Linux).
    cpus : tuple of int or None
        The CPUs it may run on, read back after pinning; None when it is not pinned.
    policy : bool
        Whether the node's NEP 49 policy is installed in it.
    """

    node: int
    name: str
    ident: int
    native_id: int
    cpus: tuple[int, ...] | None
    policy: bool


def current_node() -> int | None:
    """The node of the :class:`NodePool` thread calling this; None outside pool threads."""
    return getattr(_local, "node", None)


# -- pinning ---------------------------------------------------------------------------------------

def _pinning_method() -> str:
    """How threads are pinned here, for reports."""
    return "SetThreadGroupAffinity" if backend.PLATFORM == "windows" else "sched_setaffinity"


# -- the pool --------------------------------------------------------------------------------------

class NodePool:
    """One pinned thread pool per NUMA node.

    All threads start (and pin themselves) before the constructor returns, so a thread that
    cannot pin itself raises here. Use the pool as a context manager, or call :meth:`close`.

    Parameters
    ----------
    nodes : sequence of int, optional
        The nodes to serve; every node with memory and CPUs this process may use by default.
    threads_per_node : int or mapping of int to int, optional
        Threads of each node's pool; the node's usable CPU count by default. At most
        ``max(32, 4 * usable CPUs)`` per node: larger counts raise ValueError.
    policy : bool or dict
        Install :func:`numamap.policy` for the node in every thread (True, the default), not at
        all (False), or with these keyword arguments (a dict, e.g. ``{"page_size": "2M"}``).

    Attributes
    ----------
    nodes : tuple of int
    pinning : str or None
        How threads are pinned: 'sched_setaffinity' (Linux), 'SetThreadGroupAffinity'
        (Windows), or None when they could not be.
    fallbacks : tuple of str
        What could not be done (pinning, policy) and why.

    Notes
    -----
    After ``os.fork()`` (``multiprocessing``'s fork start method too) the child has none of the
    parent's threads. An open pool inherited by the child starts fresh threads, pinned to the
    same CPUs, on its first :meth:`submit` there; the parent's pool is untouched.

    Examples
    --------
    >>> import numamap
    >>> from numamap.workers import NodePool
    >>> a = numamap.partitioned((4096, 4))
    >>> with NodePool() as pool:
    ...     _ = pool.first_touch(a, 1.0)
    ...     sums = pool.map_blocks(lambda block: float(block.sum()), a)
    >>> sum(sums)
    16384.0
    """

    def __init__(self, nodes=None, threads_per_node=None, *, policy=True):
        topo = topology()
        if nodes is None:
            nodes = list(topo.working_nodes)
            if not nodes:
                raise ValueError("no node has both memory and CPUs this process may run on: "
                                 f"{topo!r}")
        else:
            nodes = node_list(nodes)
            usable = [n.id for n in topo.nodes if topo.cpus_of(n.id)]
            for n in nodes:
                if n not in topo.node_ids:
                    raise ValueError(f"node {n} is unknown: nodes with CPUs this process may use "
                                     f"are {usable}")
                if not topo.cpus_of(n):
                    raise ValueError(f"node {n} has no CPUs this process may run on: nodes with "
                                     f"such CPUs are {usable}")
        self.nodes: tuple[int, ...] = tuple(nodes)
        self._cpus = {n: tuple(topo.cpus_of(n)) for n in self.nodes}
        self._threads_wanted = {n: _thread_count(threads_per_node, n, len(self._cpus[n]))
                                for n in self.nodes}
        memory = {n.id for n in topo.nodes if n.has_memory}

        fallbacks: list[str] = []
        self.pinning: str | None = _pinning_method()
        # One Policy per node, made here so that errors surface in the constructor; a Policy
        # may be installed in any number of threads.
        self._policies: dict[int, Any] = {}
        if policy is not False and policy is not None:
            kwargs = dict(policy) if isinstance(policy, dict) else {}
            for n in self.nodes:
                if n not in memory:
                    fallbacks.append(f"node {n} has no memory: its threads allocate with the "
                                     "system's default policy")
                    continue
                try:
                    self._policies[n] = node_policy(n, **{"strict": True, **kwargs})
                except NotImplementedError as exc:
                    fallbacks.append(f"no NEP 49 policy in the threads: {exc}")
                    break
                except FallbackError as exc:
                    if kwargs.get("strict"):  # the caller asked for placement or an error
                        raise
                    if exc.errno not in (errno.EPERM, errno.EACCES):  # not a container's refusal
                        self._policies[n] = node_policy(n, **kwargs)
                        continue
                    self._policies.clear()
                    message = (f"no NEP 49 policy in the threads ({exc.strerror}); placement is "
                               "left to first touch by the pinned threads, which still lands on "
                               "their own node")
                    fallbacks.append(message)
                    warn_fallback(message, once=NUMA_REFUSED)
                    break
        self._fallbacks = fallbacks
        self._lock = threading.Lock()
        self._workers: dict[int, list[WorkerThread]] = {n: [] for n in self.nodes}
        self._init_errors: list[BaseException] = []
        self._closed = False
        self._forked = False  # set in a forked child: the threads are the parent's
        self._restart_lock = threading.Lock()
        self._executors: dict[int, cf.ThreadPoolExecutor] = {}
        try:
            self._spawn()
        except BaseException:
            self.close()
            raise
        _live_pools.add(self)

    def _spawn(self) -> None:
        """One executor per node, every thread started (and pinned) before this returns."""
        for n in self.nodes:
            self._executors[n] = cf.ThreadPoolExecutor(
                max_workers=self._threads_wanted[n], thread_name_prefix=f"numamap-node{n}",
                initializer=self._start_thread, initargs=(n,))
        self._start_all()

    def _restart_after_fork(self) -> None:
        """In a forked child: the parent's threads did not come along, so start this process's own."""
        with self._restart_lock:
            if not self._forked:
                return
            with self._lock:
                self._workers = {n: [] for n in self.nodes}
                self._init_errors = []
            self._spawn()
            self._forked = False

    # -- thread start ---------------------------------------------------------------------------
    def _start_thread(self, node: int) -> None:
        """Initializer of every pool thread: pin, install the policy, report."""
        try:
            cpus = None
            try:
                cpus = backend.pin_thread(self._cpus[node])
            except (OSError, NotImplementedError) as exc:
                with self._lock:
                    if self.pinning is not None:
                        self._fallbacks.append(f"threads are not pinned: {self.pinning} failed ({exc})")
                        self.pinning = None
            installed = False
            manager = self._policies.get(node)
            if manager is not None:
                if hasattr(manager, "install"):
                    manager.install()  # for the thread's whole life
                else:
                    manager.__enter__()  # never left: the thread's context ends with it
                _local.policy = manager
                installed = True
            _local.node = node
            current = threading.current_thread()
            info = WorkerThread(node, current.name, threading.get_ident(), threading.get_native_id(),
                                cpus, installed)
            with self._lock:
                self._workers[node].append(info)
        except BaseException as exc:
            with self._lock:
                self._init_errors.append(exc)
            raise

    def _start_all(self, timeout: float = 60.0) -> None:
        """Make every executor start all its threads now (they are lazy otherwise)."""
        total = sum(self._threads_wanted.values())
        barrier = threading.Barrier(total)
        futures = [self._executors[n].submit(barrier.wait, timeout)
                   for n in self.nodes for _ in range(self._threads_wanted[n])]
        for future in cf.as_completed(futures):
            if future.exception() is not None:
                barrier.abort()
        if self._init_errors:
            error = self._init_errors[0]
            raise RuntimeError(f"a NodePool thread could not start: {error!r}") from error
        for future in futures:
            future.result()

    # -- inspection -----------------------------------------------------------------------------
    def cpus(self, node: int) -> tuple[int, ...]:
        """The CPUs the threads of ``node`` are pinned to."""
        return self._cpus[self._check(node)]

    def threads(self, node: int | None = None) -> tuple[WorkerThread, ...]:
        """The pool's threads (of one node, or all), in start order."""
        with self._lock:
            if node is None:
                return tuple(t for n in self.nodes for t in self._workers[n])
            return tuple(self._workers[self._check(node)])

    @property
    def fallbacks(self) -> tuple[str, ...]:
        with self._lock:
            return tuple(self._fallbacks)

    @property
    def closed(self) -> bool:
        return self._closed

    def _check(self, node) -> int:
        node = check_node_id(node)
        if node not in self._executors:
            raise ValueError(f"node {node} is not in this pool: its nodes are {list(self.nodes)}")
        return node

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        nodes = ", ".join(f"node {n}: {self._threads_wanted[n]} thread"
                          f"{'s' if self._threads_wanted[n] != 1 else ''} on CPUs {list(self._cpus[n])}"
                          for n in self.nodes)
        return f"<NodePool {state}; {nodes}; pinning {self.pinning or 'unavailable'}>"

    # -- work -----------------------------------------------------------------------------------
    def submit(self, node: int, fn: Callable, /, *args, **kwargs) -> cf.Future:
        """Run ``fn(*args, **kwargs)`` in a thread of ``node``; a Future of its result.

        ``future.result()`` re-raises an exception of ``fn`` with its traceback.
        """
        node = self._check(node)
        if self._closed:
            raise RuntimeError("this NodePool is closed")
        if self._forked:
            self._restart_after_fork()
        return self._executors[node].submit(fn, *args, **kwargs)

    def _block_jobs(self, arr: np.ndarray) -> list[tuple[int, Any]]:
        from .partitioning import blocks

        jobs = [(node, arr[index]) for node, index in blocks(arr)]
        missing = sorted({node for node, _ in jobs} - set(self.nodes))
        if missing:
            raise ValueError(f"the array has blocks on nodes {missing}, which this pool does not "
                             f"serve: its nodes are {list(self.nodes)}")
        return jobs

    def map_blocks(self, fn: Callable, arr: np.ndarray, *args, **kwargs) -> list:
        """``[fn(block, *args, **kwargs) for each block of arr]``, each run on its block's node.

        ``arr`` is an array from :func:`numamap.partitioned` (or a view of one); the blocks are
        those of :func:`numamap.blocks`, passed as views of ``arr``. The results come back in block
        order once every call has finished; the first exception in block order is re-raised.
        """
        jobs = self._block_jobs(arr)
        futures = [self.submit(node, fn, block, *args, **kwargs) for node, block in jobs]
        return _gather(futures)

    def first_touch(self, arr: np.ndarray, value=0) -> np.ndarray:
        """Write ``value`` into every block of ``arr`` from its own node's threads; returns ``arr``.

        The first write to a page is what places it under the kernel's default policy and under
        'preferred', so this puts each block's pages on its node. A block is split among its
        node's threads. ``value`` is a scalar or anything that broadcasts to ``arr``.
        """
        from .partitioning import blocks

        value = np.asarray(value)
        jobs = []
        for node, index in blocks(arr):
            if node not in self._executors:
                raise ValueError(f"the array has a block on node {node}, which this pool does not "
                                 f"serve: its nodes are {list(self.nodes)}")
            rows = range(arr.shape[0])[index]
            for piece in np.array_split(np.arange(rows.start, rows.stop), self._threads_wanted[node]):
                if len(piece):
                    jobs.append((node, slice(int(piece[0]), int(piece[-1]) + 1)))
        source = value if value.ndim == 0 else np.broadcast_to(value, arr.shape)
        futures = [self.submit(node, _fill, arr[part], source if source.ndim == 0 else source[part])
                   for node, part in jobs]
        with Progress(len(futures), f"first touch of {format_bytes(arr.nbytes)}", unit="pieces") as bar:
            for _ in cf.as_completed(futures):
                bar.advance(1)
        _gather(futures)
        return arr

    # -- closing --------------------------------------------------------------------------------
    def close(self) -> None:
        """Wait for the queued work, then join every thread. Calling it again does nothing."""
        self._closed = True
        _live_pools.discard(self)
        if self._forked:  # the executors' threads live in the parent: nothing here to join
            return
        for executor in self._executors.values():
            executor.shutdown(wait=True)

    def __enter__(self) -> "NodePool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _fill(target: np.ndarray, value) -> None:
    target[...] = value


def _gather(futures: list[cf.Future]) -> list:
    cf.wait(futures)
    return [f.result() for f in futures]


def _thread_count(spec, node: int, cpus: int) -> int:
    if spec is None:
        return cpus
    if isinstance(spec, dict):
        count = spec.get(node, cpus)
    else:
        count = spec
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
        raise ValueError(f"threads_per_node must be a positive int (or a dict of them), not {count!r}")
    cap = max(MIN_THREAD_CAP, THREADS_PER_CPU_CAP * cpus)
    if count > cap:
        raise ValueError(f"threads_per_node={int(count)} for node {node} is more than {cap} "
                         f"(at most {THREADS_PER_CPU_CAP} per usable CPU, {cpus} here, and never "
                         f"fewer than {MIN_THREAD_CAP}): use fewer threads")
    return int(count)


def _after_fork_in_child() -> None:
    """A forked child has only the forking thread: mark every open pool so that its next
    :meth:`NodePool.submit` starts (and pins) fresh threads in the child, and renew the locks a
    parent thread may have held at the fork."""
    for pool in list(_live_pools):
        pool._lock = threading.Lock()
        pool._restart_lock = threading.Lock()
        pool._workers = {n: [] for n in pool.nodes}
        pool._forked = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
