"""``numamap bench``: numamap against plain numpy on this machine, measured in the same run.

Every figure is the median of at least five runs after a warm-up, with the spread (min-max).
Ratios are numamap over numpy, where more than 1 means numamap is better.
"""
from __future__ import annotations

import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass

import numpy as np

from ._units import GiB, MiB, format_bytes, parse_size
from .arrays import empty
from .check import format_results, run_check
from .topology import topology


@dataclass
class Row:
    workload: str
    unit: str
    numpy: float
    numpy_spread: tuple[float, float]
    numamap: float
    numamap_spread: tuple[float, float]
    higher_is_better: bool
    note: str = ""

    @property
    def ratio(self) -> float:
        if self.higher_is_better:
            return self.numamap / self.numpy if self.numpy else float("nan")
        return self.numpy / self.numamap if self.numamap else float("nan")


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _measure(fn, repeat: int) -> tuple[float, tuple[float, float]]:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), (min(times), max(times))


def _rate(nbytes: int, timing) -> tuple[float, tuple[float, float]]:
    median, (low, high) = timing
    return nbytes / median / 1e9, (nbytes / high / 1e9, nbytes / low / 1e9)


def _fill_row(nbytes: int, repeat: int) -> Row:
    n = nbytes // 8

    def with_numpy():
        a = np.empty(n)
        a.fill(1.0)

    def with_numamap():
        a = empty(n)
        a.fill(1.0)

    got = empty(n).base
    return Row("fill (first touch)", "GB/s", *_rate(nbytes, _measure(with_numpy, repeat)),
               *_rate(nbytes, _measure(with_numamap, repeat)), True,
               f"numamap on {got.page_kind} {format_bytes(got.page_size)} pages")


def _stream_rows(nbytes: int, repeat: int) -> list[Row]:
    n = nbytes // 8
    rows = []
    arrays = {"numpy": [np.ones(n) for _ in range(3)], "numamap": [empty(n) for _ in range(3)]}
    for a in arrays["numamap"]:
        a.fill(1.0)
    for name, moved, kernel in (
        ("copy", 2, lambda a, b, c: np.copyto(c, a)),
        ("triad", 3, lambda a, b, c: (np.multiply(b, 3.0, out=c), np.add(c, a, out=c))),
    ):
        results = {k: _rate(moved * nbytes, _measure(lambda v=v: kernel(*v), repeat)) for k, v in arrays.items()}
        rows.append(Row(name, "GB/s", *results["numpy"], *results["numamap"], True))
    return rows


def _gather_row(nbytes: int, repeat: int) -> Row:
    n = nbytes // 8
    rng = np.random.default_rng(0)
    index = rng.integers(0, n, size=min(n, 4_000_000))
    plain = np.ones(n)
    placed = empty(n)
    placed.fill(1.0)
    results = [_measure(lambda a=a: a[index].sum(), repeat) for a in (plain, placed)]
    per = [(len(index) / t / 1e6, (len(index) / s[1] / 1e6, len(index) / s[0] / 1e6)) for t, s in results]
    return Row("random gather", "Mgathers/s", *per[0], *per[1], True,
               f"numamap on {placed.base.page_kind} {format_bytes(placed.base.page_size)} pages")


def run(size: int, repeat: int) -> list[Row]:
    rows = []
    for label, make in (("fill", lambda: [_fill_row(size, repeat)]),
                        ("copy and triad", lambda: _stream_rows(size, repeat)),
                        ("gather", lambda: [_gather_row(size, repeat)])):
        _progress(f"numamap bench: {label} on {format_bytes(size)} arrays...")
        rows.extend(make())
    return rows


def format_rows(rows: list[Row]) -> str:
    table = [("workload", "unit", "numpy (min-max)", "numamap (min-max)", "ratio", "note")]
    for r in rows:
        table.append((r.workload, r.unit, f"{r.numpy:.2f} ({r.numpy_spread[0]:.2f}-{r.numpy_spread[1]:.2f})",
                      f"{r.numamap:.2f} ({r.numamap_spread[0]:.2f}-{r.numamap_spread[1]:.2f})",
                      f"{r.ratio:.2f}", r.note))
    widths = [max(len(row[i]) for row in table) for i in range(5)]
    return "\n".join("  ".join([*(c.ljust(w) for c, w in zip(row[:5], widths)), row[5]]).rstrip()
                     for row in table)


def main(args) -> int:
    size = parse_size(args.size, name="--size") if args.size else (256 * MiB if args.quick else 4 * GiB)
    repeat = args.repeat or 5
    if repeat < 5:
        raise ValueError("--repeat must be at least 5: figures are medians of five runs or more")
    topo = topology()
    print(topo)
    print()
    print(format_results(run_check(topo)))
    print()
    rows = run(size, repeat)
    print(f"median of {repeat} runs after a warm-up; ratio = numamap / numpy (higher is better)")
    print(format_rows(rows))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"size": size, "repeat": repeat,
                       "rows": [dict(asdict(r), ratio=r.ratio) for r in rows]}, handle, indent=2)
    return 0
