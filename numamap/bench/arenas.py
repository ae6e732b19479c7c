"""The node arenas' rows: numpy expressions inside numamap.policy(), and threads allocating."""
from __future__ import annotations

import os

import numpy as np

from .._backend import backend
from .._units import KiB, MiB, format_bytes
from ..memory_handler import policy
from .results import Row
from .sampling import Plan, alternate, timed

#: Array sizes of the expression rows (issue 11's targets).
EXPRESSION_SIZES = (256 * KiB, 2 * MiB, 16 * MiB, 128 * MiB)
#: Threads of the throughput row, and what each allocates.
CHURN_THREADS = 8
CHURN_MAX = 64 * KiB


def _first_node() -> int:
    return min(backend.memory_nodes())


def expression_row(nbytes: int, plan: Plan) -> Row:
    """Row 'a*b+d <size>': ``c = a*b + d`` with numpy's default handler against the same inside
    ``numamap.policy(node)``, each side's operands made under its own handler."""
    n = nbytes // 8
    made: dict[str, object] = {}
    repeats = max(1, (64 * MiB) // max(nbytes, 1))  # enough work per round to time

    def loop(a, b, d):
        for _ in range(repeats):
            c = a * b + d  # noqa: F841 - the temporaries are the point
        return None

    def numpy_side() -> float:
        if "numpy" not in made:
            made["numpy"] = (np.ones(n), np.ones(n), np.ones(n))
        return timed(lambda: loop(*made["numpy"]))

    def numamap_side() -> float:
        if "policy" not in made:
            made["policy"] = policy(_first_node())  # NotImplementedError: no handler here
            with made["policy"]:
                made["numamap"] = (np.ones(n), np.ones(n), np.ones(n))
        with made["policy"]:
            return timed(lambda: loop(*made["numamap"]))

    out = alternate({"numpy": numpy_side, "numamap": numamap_side}, [("numpy", "numamap")], plan)
    per_call = 1e3 / repeats  # seconds per round -> ms per expression
    note = f"c = a*b + d on {format_bytes(nbytes)} float64 arrays, {repeats} per round"
    if "numamap" in out.missing:
        note += f"; numamap.policy not measured: {out.missing['numamap']}"
    size = format_bytes(nbytes)
    return Row(f"a*b+d {size}", "ms", out.measure("numpy", scale=per_call),
               out.measure("numamap", scale=per_call), higher_is_better=False,
               name=f"a*b+d {size}: policy vs numpy", numpy_does="default NEP 49 handler",
               numamap_does="inside numamap.policy(node)", rounds=out.describe(), note=note)


def churn_row(pairs: int, plan: Plan) -> Row:
    """Row 'allocate in threads': malloc+free pairs per second of CHURN_THREADS native threads,
    each through its own node's policy handler, against one such thread."""
    nodes = sorted(backend.memory_nodes())
    threads = min(CHURN_THREADS, os.cpu_count() or 1)
    held: dict[str, list] = {}

    def capsules(count: int) -> list:
        if "policies" not in held:  # one policy per node; thread i takes node i mod nodes
            held["policies"] = [policy(node) for node in nodes]
        return [held["policies"][i % len(nodes)]._capsule for i in range(count)]

    def one() -> float:
        return backend.handler_churn(capsules(1), pairs, CHURN_MAX)

    def many() -> float:
        return backend.handler_churn(capsules(threads), pairs, CHURN_MAX) / threads

    out = alternate({"one": one, "many": many}, [("one", "many")], plan)
    note = (f"{pairs} malloc+free pairs of 1 B to {format_bytes(CHURN_MAX)} per thread, through "
            f"numamap.policy handlers on nodes {nodes}; {threads} threads on {os.cpu_count()} CPUs: "
            "the ratio is the aggregate rate over one thread's")
    if out.missing:
        note += f"; not measured: {'; '.join(out.missing.values())}"
    # 'many' returns its wall time over the thread count, so pairs over it is the aggregate rate
    one_m, many_m = out.measure("one", amount=pairs, scale=1e6), out.measure("many", amount=pairs, scale=1e6)
    return Row("allocate in threads", "M/s", one_m, many_m, higher_is_better=True,
               name=f"alloc/free: {threads} threads vs 1", numpy_does="1 thread, its node's policy",
               numamap_does=f"{threads} threads, each its node's policy", rounds=out.describe(),
               note=note)
