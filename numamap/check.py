"""``numamap check``: allocate, touch and verify on every node and page size the machine serves."""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from ._backend import backend
from ._errors import FallbackWarning
from ._units import MiB, format_bytes, page_size_name
from .arrays import empty, where
from .numa_topology import Topology, topology
from .progress import Progress


@dataclass(frozen=True)
class CheckResult:
    node: int
    page_size: str
    passed: bool | None  # None: skipped, with the reason
    detail: str


@dataclass(frozen=True)
class Finding:
    """A capability the system refuses (a container's seccomp profile, say): not a failure of
    numamap, which falls back and says so, but something to fix for placement to work."""

    capability: str
    calls: str
    effect: str
    fix: str


#: How to be granted the calls: Docker's default profile allows mbind, set_mempolicy and
#: get_mempolicy to containers with CAP_SYS_NICE, and move_pages to none (Podman's neither).
_PLACE_FIX = ("inside a container, add CAP_SYS_NICE (docker run --cap-add SYS_NICE) or use a "
              "seccomp profile that allows mbind, set_mempolicy and get_mempolicy "
              "(docs/containers.md)")
_READ_FIX = ("inside a container, use a seccomp profile that allows move_pages: Docker's and "
             "Podman's default profiles refuse it whatever the capabilities (docs/containers.md)")


def findings() -> list[Finding]:
    """The NUMA capabilities this process is refused, probed by behaviour."""
    found = []
    if backend.PLATFORM == "linux" and not backend.capabilities()["numa_policy"]:
        found.append(Finding(
            "placing memory on a node", "mbind, set_mempolicy, get_mempolicy",
            "arrays, policy() and NodePool get the kernel's default placement, with one "
            "FallbackWarning; strict=True raises FallbackError", _PLACE_FIX))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FallbackWarning)  # reported here as a finding instead
        probe = np.ones(backend.base_page_size() // 8)
        placement = where(probe)
    if not placement.known:
        found.append(Finding(
            "reading where pages are", "move_pages",
            "where() reports every page's node as unknown (-1), with the reason, and verify() "
            "returns None", _READ_FIX))
    return found


def format_findings(found: list[Finding]) -> str:
    return "\n".join(f"finding: {f.capability} ({f.calls}) is refused by the kernel\n"
                     f"  effect: {f.effect}\n  fix: {f.fix}" for f in found)


def _cases(topo: Topology):
    base = page_size_name(topo.base_page_size)
    for node in topo.nodes:
        if not node.has_memory:
            continue
        yield node.id, base, None
        if topo.thp_mode in ("always", "madvise"):
            yield node.id, "auto", None
        for size in topo.huge_page_sizes:
            pool = node.hugepages.get(size)
            if pool is None or pool.free == 0:
                yield node.id, page_size_name(size), "skipped: the node's pool is empty (reserve pages to test it)"
            else:
                yield node.id, page_size_name(size), None


def run_check(topo: Topology | None = None, refusals: list[Finding] | None = None) -> list[CheckResult]:
    """Run every case; a failure is reported in its row, never raised.

    Under ``refusals`` (see :func:`findings`; probed when not given) a row whose placement the
    system will not place or tell is skipped, saying what was checked; it fails only on what
    could be checked (allocating, touching, page sizes).
    """
    topo = topo or topology()
    refusals = findings() if refusals is None else refusals
    refused = bool(refusals)
    results = []
    cases = list(_cases(topo))
    with Progress(len(cases), "checking every node and page size", unit="cases") as bar:
        for node, kind, skip in cases:
            results.append(_check_case(node, kind, skip, refused))
            bar.advance(1)
    if not any(r.passed is True for r in results) and not (refused and results):
        # A check that verified nothing must not pass: no node with memory, or every case skipped.
        memory = [n.id for n in topo.nodes if n.has_memory]
        why = (f"no node with memory was found (source {topo.source}: {topo.node_ids or 'no nodes'})"
               if not memory else "every case was skipped")
        results.append(CheckResult(memory[0] if memory else -1, "-", False,
                                   f"nothing was checked: {why}"))
    return results


def _check_case(node: int, kind: str, skip: str | None, refused: bool) -> CheckResult:
    """One row: allocate, touch and verify on ``node`` in ``kind`` pages."""
    if skip:
        return CheckResult(node, kind, None, skip)
    nbytes = 8 * MiB if kind in ("4K", "auto") else (1 << 30 if kind == "1G" else 4 * MiB)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FallbackWarning)  # a finding says why, once
            arr = empty(nbytes, dtype="u1", node=node, policy="bind", page_size=kind,
                        populate=True, strict=not refused)
            arr[::4096] = 1
            found = where(arr)
    except (OSError, MemoryError, ValueError) as exc:
        return CheckResult(node, kind, False, f"{type(exc).__name__}: {exc}")
    view = arr.base
    right_pages = kind == "auto" or found.page_sizes.get(view.page_size, 0) >= nbytes
    if not right_pages:
        return CheckResult(node, kind, False, f"pages are not {kind}: {found.page_sizes}")
    if refused and (view.fallback or not found.known):
        return CheckResult(node, kind, None, f"placement not checked (see the findings); "
                           f"{format_bytes(nbytes)} allocated and touched in "
                           f"{page_size_name(view.page_size)} pages")
    on_node = found.fraction_on(node)
    if on_node != 1.0:
        return CheckResult(node, kind, False, f"only {on_node:.1%} of pages on node {node}: {found!r}")
    detail = f"{format_bytes(nbytes)} 100% on node {node}; {view.summary()}"
    if kind == "auto":
        detail = f"{format_bytes(found.page_sizes.get(2 * MiB, 0))} of {format_bytes(nbytes)} in 2M pages; " + detail
    return CheckResult(node, kind, True, detail)


def format_results(results: list[CheckResult]) -> str:
    rows = [("node", "pages", "result", "detail")]
    for r in results:
        rows.append((str(r.node) if r.node >= 0 else "-", r.page_size, {True: "pass", False: "FAIL", None: "skip"}[r.passed], r.detail))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join("  ".join([*(c.ljust(w) for c, w in zip(row[:3], widths)), row[3]]) for row in rows)
