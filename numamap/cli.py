"""The ``numamap`` command: ``info``, ``check`` and ``bench``."""
from __future__ import annotations

import argparse
import sys

from .check import format_results, run_check
from .numa_topology import topology


def _info(args) -> int:
    print(topology())
    return 0


def _check(args) -> int:
    results = run_check()
    print(format_results(results))
    failed = sum(r.passed is False for r in results)
    print(f"\n{sum(r.passed is True for r in results)} passed, {failed} failed, "
          f"{sum(r.passed is None for r in results)} skipped")
    return 1 if failed else 0


def _bench(args) -> int:
    from .bench import main as bench_main

    return bench_main(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="numamap", description="NUMA-aware numpy arrays")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("info", help="print the NUMA topology").set_defaults(run=_info)
    commands.add_parser("check", help="allocate, touch and verify placement on every node and "
                        "page size; exit 1 on any failure").set_defaults(run=_check)
    bench = commands.add_parser("bench", help="numamap against plain numpy and the machine's "
                                "limit, as ratios (median of >= 5 runs, with the spread)")
    bench.add_argument("--quick", action="store_true",
                       help="512 MiB arrays and fewer gathers: under a minute on a small machine")
    bench.add_argument("--size", default=None,
                       help="bytes of each big array (fill, gather, each STREAM array), e.g. 4G "
                            "(default 4G, 512M with --quick)")
    bench.add_argument("--repeat", type=int, default=None,
                       help="measured runs per figure after a warm-up (>= 5, default 5)")
    bench.add_argument("--json", metavar="FILE", default=None,
                       help="also write the results as JSON to FILE ('-': JSON on stdout instead "
                            "of the table)")
    bench.add_argument("--plot", metavar="FILE.png", default=None,
                       help="draw the ratios as a chart (needs matplotlib: pip install numamap[plot])")
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
