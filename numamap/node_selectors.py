"""Node selectors: 'local', 'fastest', 'nearest', 'slowest' and 'largest' in place of a node id.

Every entry point that takes a node id takes a selector too (``numamap.request`` resolves
them). A selector is resolved for the CPU the calling thread runs on at the moment the memory
is placed, among the nodes with memory this process may use:

==============  ==================================================================================
``'local'``     the calling CPU's node; when that node has no memory, the nearest node that has
``'fastest'``   the highest read bandwidth (the firmware's HMAT)
``'nearest'``   the lowest read latency (HMAT)
``'slowest'``   the lowest read bandwidth: the capacity tier, for big, cold arrays
``'largest'``   the most free memory now
==============  ==================================================================================

Ties go to the node nearest the calling CPU's node by the SLIT distance, then to the lowest
id. Without HMAT figures, distances alone decide: 'fastest' and 'nearest' take the nearest node,
'slowest' the farthest. The figures are the kernel's ``access1`` (best CPU initiators) where it
publishes them, else ``access0`` (best initiators of any kind).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

from ._backend import backend
from ._records import NodeFacts, TopologyFacts
from ._units import format_bytes

SELECTORS = ("local", "fastest", "nearest", "slowest", "largest")


@dataclass(frozen=True)
class Choice:
    """What a selector chose: the node, the selector, and one sentence saying why."""

    node: int
    selector: str
    reason: str


def is_selector(value) -> bool:
    """Whether ``value`` is one of :data:`SELECTORS`."""
    return isinstance(value, str) and value in SELECTORS


def check_selector(value, name: str = "node") -> str:
    """``value`` if it is a selector, else ValueError naming ``name`` and the choices."""
    if not is_selector(value):
        raise ValueError(f"{name}={value!r} is neither a node id nor a selector: use an int, or one "
                         f"of {', '.join(map(repr, SELECTORS))}")
    return value


def _bandwidth(node: NodeFacts) -> int | None:
    return node.cpu_read_bandwidth if node.cpu_read_bandwidth is not None else node.read_bandwidth


def _latency(node: NodeFacts) -> int | None:
    return node.cpu_read_latency if node.cpu_read_latency is not None else node.read_latency


def _rate(value: int) -> str:
    return f"{value / 1e9:.3g} GB/s"


@functools.lru_cache(maxsize=1)
def layout() -> TopologyFacts:
    """The machine's nodes, CPUs, distances and figures, read once per process (they change only
    when the hardware or the firmware does); ``layout.cache_clear()`` reads them again.

    Free memory, which 'largest' needs fresh, is read again at each resolution.
    """
    return backend.read_topology()


def calling_cpu() -> tuple[int, str]:
    """The calling thread's CPU now, and how it was learnt.

    Where the system cannot say which CPU runs the thread, a thread pinned within one node's
    CPUs still has a node: its lowest allowed CPU stands for it.
    """
    try:
        return backend.current_cpu(), "runs on"
    except NotImplementedError as exc:
        allowed = backend.allowed_cpus()
        nodes = {n.id for n in layout().nodes if set(allowed) & set(n.cpus)}
        if allowed and len(nodes) == 1:
            return min(allowed), "is pinned to"
        raise NotImplementedError(f"the calling thread's CPU is unknown ({exc}) and the thread is not "
                                  "pinned within one node: pin it (numamap.workers.NodePool does) or "
                                  "pass a node id") from None


def choose(selector: str, facts: TopologyFacts, memory_nodes, cpu: int, how: str = "runs on") -> Choice:
    """Resolve ``selector`` for ``cpu`` over ``facts`` among ``memory_nodes``: the pure decision.

    Raises NotImplementedError when the system publishes none of the figures the selector needs
    and more than one node could be meant.
    """
    check_selector(selector)
    order = [n.id for n in facts.nodes]
    home = next((n for n in facts.nodes if cpu in n.cpus), None)
    candidates = [n for n in facts.nodes if n.id in memory_nodes]
    if not candidates:
        raise ValueError(f"no node has memory this process may use: {sorted(memory_nodes)}")
    where = f"the calling thread {how} CPU {cpu}" + (f" (node {home.id})" if home else "")

    def distance(node: NodeFacts) -> int | None:
        if home is None or len(home.distances) != len(order):
            return None
        return home.distances[order.index(node.id)]

    has_distances = all(distance(n) is not None for n in candidates)

    def near(node: NodeFacts) -> tuple[int, int]:  # the tie-break: SLIT distance, then id
        return (distance(node) if has_distances else 0, node.id)

    if len(candidates) == 1:
        only = candidates[0]
        return Choice(only.id, selector, f"{where}; node {only.id} is the only node with memory")
    if selector == "local":
        if home is not None and home.id in memory_nodes:
            return Choice(home.id, selector, where)
        if not has_distances:
            raise NotImplementedError(_missing(selector, facts, "node distances (SLIT)",
                                               "the calling CPU's node has no memory"))
        best = min(candidates, key=near)
        return Choice(best.id, selector, f"{where}, which has no memory; node {best.id} is the nearest "
                      f"node with memory (distance {distance(best)})")
    if selector == "largest":
        free = {n.id: n.memory_free for n in candidates}  # read just now, with the rest
        best = min(candidates, key=lambda n: (-free[n.id], *near(n)))
        return Choice(best.id, selector, f"{where}; node {best.id} has the most free memory "
                      f"({format_bytes(free[best.id])})" + _tie(best, candidates, lambda n: free[n.id]))
    figure, label, show, sign = {
        "fastest": (_bandwidth, "the highest read bandwidth", _rate, -1),
        "slowest": (_bandwidth, "the lowest read bandwidth", _rate, 1),
        "nearest": (_latency, "the lowest read latency", lambda v: f"{v} ns", 1),
    }[selector]
    rated = [n for n in candidates if figure(n) is not None]
    if rated:
        best = min(rated, key=lambda n: (sign * figure(n), *near(n)))
        unrated = sorted(n.id for n in candidates if figure(n) is None)
        text = (f"{where}; node {best.id} has {label} ({show(figure(best))}, from the firmware's HMAT)"
                + _tie(best, rated, figure))
        if unrated:
            text += f"; nodes {unrated} publish no figure and were left out"
        return Choice(best.id, selector, text)
    if not has_distances:
        raise NotImplementedError(_missing(selector, facts, "memory bandwidth and latency (HMAT) "
                                           "or node distances (SLIT)"))
    if selector == "slowest":  # the farthest node, the nearest of them on a tie of distance
        best = min(candidates, key=lambda n: (-distance(n), n.id))
    else:
        best = min(candidates, key=near)
    return Choice(best.id, selector, f"{where}; no HMAT figures, so distance decides: node {best.id} is "
                  f"the {'farthest' if selector == 'slowest' else 'nearest'} node with memory "
                  f"(distance {distance(best)})")


def _tie(best: NodeFacts, rated, figure) -> str:
    tied = [n.id for n in rated if figure(n) == figure(best)]
    return f"; tied with nodes {[t for t in tied if t != best.id]}, nearest wins" if len(tied) > 1 else ""


def _missing(selector: str, facts: TopologyFacts, what: str, why: str = "") -> str:
    return (f"node={selector!r} needs {what}, which {facts.platform} does not publish here"
            + (f" ({why})" if why else "") + ": pass a node id instead (see numamap.topology())")


def resolve(selector: str, *, name: str = "node") -> Choice:
    """Resolve ``selector`` for the calling thread's CPU, now.

    Parameters
    ----------
    selector : {'local', 'fastest', 'nearest', 'slowest', 'largest'}
    name : str
        The parameter the selector was given as, for error messages.

    Returns
    -------
    Choice
        The node, and a sentence saying why it was chosen.

    Examples
    --------
    >>> import numamap
    >>> from numamap.node_selectors import resolve
    >>> resolve("local").node in numamap.topology().node_ids
    True
    """
    check_selector(selector, name)
    cpu, how = calling_cpu()
    facts = layout()
    if selector == "largest":
        fresh = []
        for node in facts.nodes:
            free = backend.node_memory_free(node.id) if node.has_memory else None
            fresh.append(node if free is None else node._replace(memory_free=free))
        facts = facts._replace(nodes=tuple(fresh))
    return choose(selector, facts, backend.memory_nodes(), cpu, how)


__all__ = ["SELECTORS", "Choice", "calling_cpu", "check_selector", "choose", "is_selector", "layout",
           "resolve"]
