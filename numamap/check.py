"""``numamap check``: allocate, touch and verify on every node and page size the machine serves."""
from __future__ import annotations

from dataclasses import dataclass

from ._units import MiB, format_bytes, page_size_name
from .arrays import empty, where
from .numa_topology import Topology, topology


@dataclass(frozen=True)
class CheckResult:
    node: int
    page_size: str
    passed: bool | None  # None: skipped, with the reason
    detail: str


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


def run_check(topo: Topology | None = None) -> list[CheckResult]:
    """Run every case; a failure is reported in its row, never raised."""
    topo = topo or topology()
    results = []
    for node, kind, skip in _cases(topo):
        if skip:
            results.append(CheckResult(node, kind, None, skip))
            continue
        try:
            page = kind
            nbytes = 8 * MiB if kind in ("4K", "auto") else (1 << 30 if kind == "1G" else 4 * MiB)
            arr = empty(nbytes, dtype="u1", node=node, policy="bind", page_size=page,
                        populate=True, strict=True)
            arr[::4096] = 1
            found = where(arr)
            view = arr.base
            on_node = found.fraction_on(node)
            if on_node != 1.0:
                results.append(CheckResult(node, kind, False, f"only {on_node:.1%} of pages on node {node}: {found!r}"))
                continue
            if kind != "auto" and found.page_sizes.get(view.page_size, 0) < nbytes:
                results.append(CheckResult(node, kind, False, f"pages are not {kind}: {found.page_sizes}"))
                continue
            detail = f"{format_bytes(nbytes)} 100% on node {node}; {view.summary()}"
            if kind == "auto":
                detail = f"{format_bytes(found.page_sizes.get(2 * MiB, 0))} of {format_bytes(nbytes)} in 2M pages; " + detail
            results.append(CheckResult(node, kind, True, detail))
            del arr, view
        except (OSError, MemoryError, ValueError) as exc:
            results.append(CheckResult(node, kind, False, f"{type(exc).__name__}: {exc}"))
    return results


def format_results(results: list[CheckResult]) -> str:
    rows = [("node", "pages", "result", "detail")]
    for r in results:
        rows.append((str(r.node), r.page_size, {True: "pass", False: "FAIL", None: "skip"}[r.passed], r.detail))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join("  ".join([*(c.ljust(w) for c, w in zip(row[:3], widths)), row[3]]) for row in rows)
