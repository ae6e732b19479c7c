"""Allocation costs: numpy's small-array loop inside numamap.policy(), and allocating arrays."""
from __future__ import annotations

import time

import numpy as np

from .._backend import backend
from .._units import format_bytes
from ..arrays import empty
from ..memory_handler import policy
from .results import Row
from .sampling import Plan, alternate, timed


def small_array_loop(iterations: int) -> float:
    """Seconds per iteration of ``np.empty(100)`` plus ``np.add`` of two 1 KiB arrays."""
    x = np.ones(128)
    y = np.ones(128)
    add, new = np.add, np.empty
    start = time.perf_counter()
    for _ in range(iterations):
        new(100)
        add(x, y)
    return (time.perf_counter() - start) / iterations


def loop_row(iterations: int, plan: Plan) -> Row:
    """Row 'small-array loop': numpy's default handler against the same loop inside a policy."""
    held = []

    def inside_policy() -> float:
        if not held:
            held.append(policy())  # NotImplementedError where there is no C handler (Windows)
        with held[0]:
            return timed(lambda: small_array_loop(iterations))

    out = alternate({"default": lambda: timed(lambda: small_array_loop(iterations)),
                     "policy": inside_policy}, [("default", "policy")], plan)
    per_iteration = 1e9 / iterations  # seconds per loop -> ns per iteration
    note = f"{iterations} x (np.empty(100) + np.add on 1 KiB arrays)"
    if "policy" in out.missing:
        note += f"; numamap.policy not measured: {out.missing['policy']}"
    return Row("small-array loop", "ns", out.measure("default", scale=per_iteration),
               out.measure("policy", scale=per_iteration), higher_is_better=False,
               name="small arrays: policy vs default", numpy_does="default NEP 49 handler",
               numamap_does="inside numamap.policy()", rounds=out.describe(), note=note)


def _batch(make, count: int):
    def run():
        for _ in range(count):
            make()
    return run


def alloc_row(nbytes: int, count: int, plan: Plan, with_limit: bool) -> Row:
    """Row 'allocate <size>': ``np.empty`` against ``numamap.empty``, each then freed, and the
    OS's own map + unmap as the limit when ``with_limit``."""
    n = nbytes // 8
    held = []

    def raw() -> float:
        if not held:
            held.append(backend.map_unmap_cost(nbytes))  # NotImplementedError: no such limit here
        return timed(_batch(held[0], count))

    sides = {"numpy": lambda: timed(_batch(lambda: np.empty(n), count)),
             "numamap": lambda: timed(_batch(lambda: empty(n), count))}
    if with_limit:
        sides["os"] = raw
    out = alternate(sides, [("numpy", "numamap")], plan)
    per_call = 1e6 / count  # seconds per batch -> us per call
    note = f"empty() then free, {count} per run"
    if with_limit:
        note += ("; limit: the OS's map + unmap" if "os" not in out.missing
                 else f"; limit not measured: {out.missing['os']}")
    return Row(f"allocate {format_bytes(nbytes)}", "us", out.measure("numpy", scale=per_call),
               out.measure("numamap", scale=per_call), out.measure("os", scale=per_call),
               higher_is_better=False, name=f"allocate {format_bytes(nbytes)}: numamap vs np",
               numpy_does="np.empty", numamap_does="numamap.empty", rounds=out.describe(), note=note)
