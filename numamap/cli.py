"""The ``numamap`` command: ``info``, ``check`` and ``bench``."""
from __future__ import annotations

import argparse
import sys

from .check import findings, format_findings, format_results, run_check
from .numa_topology import topology


def _info(args) -> int:
    print(topology())
    print(_selector_line())
    print(_arena_lines())
    return 0


def _arena_lines() -> str:
    """The node arenas: settings, what page_size='auto' takes, and this process's counters."""
    from .arenas import arena_stats, arena_settings

    settings = arena_settings()
    head = (f"node arenas: decay {settings['decay']:g} s, large-block cache {settings['cache_limit'] >> 20} MiB "
            f"per arena; page_size='auto' takes {settings['auto_pages']}")
    return f"{head}\n{arena_stats()}"


def _selector_line() -> str:
    """Where each node selector points from this thread's CPU (docs/tiers.md)."""
    from .node_selectors import SELECTORS, calling_cpu, resolve

    try:
        cpu = calling_cpu()[0]
    except NotImplementedError as exc:
        return f"selectors: {exc}"
    chosen = []
    for selector in SELECTORS:
        try:
            chosen.append(f"{selector!r} -> node {resolve(selector).node}")
        except NotImplementedError:  # the figures it needs are not published here
            chosen.append(f"{selector!r} -> unavailable")
    return f"selectors from CPU {cpu}: {', '.join(chosen)}"


def _check(args) -> int:
    refusals = findings()
    results = run_check(refusals=refusals)
    print(format_results(results))
    if refusals:
        print("\n" + format_findings(refusals))
    failed = sum(r.passed is False for r in results)
    print(f"\n{sum(r.passed is True for r in results)} passed, {failed} failed, "
          f"{sum(r.passed is None for r in results)} skipped"
          + (f"; {len(refusals)} finding{'s' * (len(refusals) > 1)}"
             + ("" if args.strict else " (--strict fails on findings)") if refusals else ""))
    return 1 if failed or (args.strict and refusals) else 0


def _bench(args) -> int:
    from .bench import main as bench_main

    return bench_main(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="numamap", description="NUMA-aware numpy arrays")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("info", help="print the NUMA topology").set_defaults(run=_info)
    check = commands.add_parser("check", help="allocate, touch and verify placement on every node "
                                "and page size; exit 1 on any failure")
    check.add_argument("--strict", action="store_true",
                       help="also exit 1 on a finding: a NUMA call the system refuses (a "
                            "container without CAP_SYS_NICE, say), where numamap falls back")
    check.set_defaults(run=_check)
    bench = commands.add_parser("bench", help="numamap against plain numpy and the machine's "
                                "limit, as ratios (medians of alternating rounds, with 95%% "
                                "intervals)")
    bench.add_argument("--quick", action="store_true",
                       help="512 MiB arrays and fewer gathers: under a minute on a small machine")
    bench.add_argument("--size", default=None,
                       help="bytes of each big array (fill, gather, each STREAM array), e.g. 4G "
                            "(default 4G, 512M with --quick)")
    bench.add_argument("--repeat", type=int, default=None,
                       help="the fewest alternating rounds behind a figure, after a warm-up (>= 5, default 5)")
    bench.add_argument("--budget", type=float, default=None, metavar="SECONDS",
                       help="time the alternating rounds may take in all (default 40 with --quick, "
                            "240 otherwise); every figure still gets at least --repeat rounds")
    bench.add_argument("--json", metavar="FILE", default=None,
                       help="also write the results as JSON to FILE ('-': JSON on stdout instead "
                            "of the table)")
    bench.add_argument("--plot", metavar="FILE.png", default=None,
                       help="draw the ratios as a chart (needs matplotlib: pip install "
                            "'numamap[plot]', from a clone pip install -e '.[plot]')")
    bench.add_argument("--reserve-hugepages", action="store_true",
                       help="as root, grow the hugetlb pools for the fill and gather runs and shrink "
                            "them back after (by default nothing on the system is changed)")
    bench.set_defaults(run=_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (OSError, MemoryError, ValueError) as exc:
        print(f"numamap {args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
