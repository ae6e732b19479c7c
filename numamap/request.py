"""Placement requests: a user's ``node``, ``nodes`` and ``policy``, checked once against the machine.

Every entry point that takes node ids (constructors, ``Section.map``, ``policy()``,
``NodePool``, ``partitioned``, ``migrate``, Dask) checks them here, so the rules and the
messages are the same everywhere. A node id may also be a selector ('local', 'fastest',
'nearest', 'slowest', 'largest': see :mod:`numamap.node_selectors`), resolved here, for the calling
thread's CPU, when the request is checked.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._backend import backend
from .node_selectors import Choice, is_selector, resolve

POLICIES = ("preferred", "bind", "interleave")


@dataclass(frozen=True)
class Request:
    """A checked placement request: which nodes, which policy."""

    policy: str
    nodes: tuple[int, ...]  # empty: no binding, the kernel's first-touch default
    selector: str | None = None  # the selector that chose the one node, if one did
    reason: str | None = None  # why it chose that node

    @property
    def node(self) -> int | None:
        return self.nodes[0] if len(self.nodes) == 1 else None


def _node_choice(value, name: str) -> tuple[int, Choice | None]:
    """``value`` as an int node id (a selector resolved now), and the selector's choice if any."""
    if isinstance(value, str):
        if not is_selector(value):  # a wrong kind of value, as a float would be
            raise TypeError(f"{name}={value!r} is neither a node id nor a selector: use an int, or "
                            "one of 'local', 'fastest', 'nearest', 'slowest', 'largest'")
        choice = resolve(value, name=name)
        return choice.node, choice
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int node id or a selector such as 'local', not "
                        f"{type(value).__name__}")
    return int(value), None


def check_node_id(value, name: str = "node") -> int:
    """``value`` as an int node id (a selector is resolved now), or TypeError naming ``name``."""
    return _node_choice(value, name)[0]


def node_list(nodes, *, name: str = "nodes", repeats: bool = False, hint: str = "") -> list[int]:
    """Check a user's sequence of node ids: ints, not empty, and no repeats unless ``repeats``.

    Entries may be selectors, resolved now; a lone selector string stands for a list of one.
    Whether the nodes exist and suit the purpose is the caller's to check.
    """
    if isinstance(nodes, (int, np.integer)):
        raise TypeError(f"{name} must be a sequence of node ids, e.g. {name}=[0, 1]{hint}")
    if isinstance(nodes, str):
        nodes = [nodes]  # a selector; anything else is refused by the entry check below
    out = [check_node_id(value, f"each entry of {name}") for value in nodes]
    if not out:
        raise ValueError(f"{name} must not be empty")
    if not repeats and len(set(out)) != len(out):
        raise ValueError(f"{name}={out} repeats a node")
    return out


def check_request(node, policy: str, nodes) -> Request:
    """Validate ``node``/``policy``/``nodes`` against the machine's memory nodes."""
    if policy not in POLICIES:
        raise ValueError(f"policy={policy!r} is not one of {', '.join(map(repr, POLICIES))}")
    choice = None
    if node is not None:
        node, choice = _node_choice(node, "node")
    if nodes is not None:
        if not isinstance(nodes, (str, int, np.integer)) and hasattr(nodes, "__iter__"):
            nodes = list(nodes)  # looked at twice below
        if choice is None and _one_selector(nodes):  # record why the one node was chosen
            picked, choice = _node_choice(nodes if isinstance(nodes, str) else nodes[0], "nodes")
            nodes = [picked]
        # repeats are refused below, after the per-policy checks
        nodes = tuple(node_list(nodes, repeats=True, hint="; use node= for one"))
        if node is not None and nodes != (node,):
            raise ValueError("give either node= or nodes=, not both")
        if policy == "preferred" and len(nodes) > 1:
            raise ValueError("policy='preferred' takes one node; use policy='bind' or 'interleave' "
                             "for several")
    chosen = nodes if nodes is not None else ((node,) if node is not None else ())
    memory = backend.memory_nodes()
    if policy == "interleave" and not chosen:
        chosen = tuple(sorted(memory))
    if policy == "bind" and not chosen:
        raise ValueError("policy='bind' needs node= or nodes=")
    for n in chosen:
        if n not in memory:
            raise ValueError(f"node {n} is unknown or has no memory: nodes with memory are "
                             f"{sorted(memory)} (see numamap.topology())")
    if len(set(chosen)) != len(chosen):
        raise ValueError(f"nodes={list(chosen)} repeats a node")
    if choice is not None and chosen == (choice.node,):
        return Request(policy, chosen, choice.selector, choice.reason)
    return Request(policy, tuple(chosen))


def _one_selector(nodes) -> bool:
    """Whether ``nodes`` is a selector, or a list holding one selector and nothing else."""
    return is_selector(nodes) or (isinstance(nodes, list) and len(nodes) == 1 and is_selector(nodes[0]))
