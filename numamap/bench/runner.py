"""``numamap.bench.run``: every workload, numpy and numamap side by side, within a time budget."""
from __future__ import annotations

import contextlib
import datetime
import time

import numpy as np

from .._backend import backend
from .._units import GiB, KiB, MiB, format_bytes, page_size_name, parse_size
from ..numa_topology import topology
from .allocation import alloc_row, loop_row
from .arenas import EXPRESSION_SIZES, churn_row, expression_row
from .fill import fill_rows
from .gather import gather_rows
from .machine import last_level_cache, machine_facts
from .pools import HugePageReservation, is_root
from .progress import Progress
from .results import BenchResults, Row
from .sampling import CLOCK_NAME, MIN_REPEAT, Plan
from .stream import stream_rows

#: Defaults of ``quick`` and of the full run. Quick runs use small arrays and many short rounds:
#: on a busy machine a short run is more often undisturbed, so medians settle sooner.
QUICK = {"size": 64 * MiB, "gathers": 1_000_000, "loop": 2_000, "allocs": 100, "churn": 20_000,
         "budget": 50.0}
FULL = {"size": 4 * GiB, "gathers": 32_000_000, "loop": 20_000, "allocs": 2_000, "churn": 400_000,
        "budget": 300.0}
#: Each workload's share of the time budget (its setup included), in the order they run.
SHARES = {"stream": 0.24, "fill": 0.17, "gather": 0.14, "loop": 0.05, "alloc small": 0.08,
          "alloc large": 0.1, "expressions": 0.16, "churn": 0.06}
SMALL_ALLOC = 16 * KiB
LARGE_ALLOC = 64 * MiB
#: The order of the table's rows.
ORDER = ["fill", "fill vs 4K pages", "copy", "triad", "gather", "gather vs 4K pages",
         "small-array loop", f"allocate {format_bytes(SMALL_ALLOC)}", f"allocate {format_bytes(LARGE_ALLOC)}",
         *(f"a*b+d {format_bytes(size)}" for size in EXPRESSION_SIZES), "allocate in threads"]


def check_arguments(quick: bool, size, repeat, reserve_hugepages: bool, budget) -> tuple[int, float]:
    """Refuse bad arguments before anything is measured; returns (size, budget)."""
    defaults = QUICK if quick else FULL
    if isinstance(repeat, bool) or not isinstance(repeat, (int, np.integer)):
        raise TypeError(f"repeat must be an int, not {type(repeat).__name__}")
    if repeat < MIN_REPEAT:
        raise ValueError(f"repeat={repeat}: every figure is a median of at least {MIN_REPEAT} runs")
    size = defaults["size"] if size is None else parse_size(size, name="size")
    if size < 1 * MiB:
        raise ValueError(f"size={size} is too small: use at least 1M")
    budget = defaults["budget"] if budget is None else float(budget)
    if not budget > 0:
        raise ValueError(f"budget={budget}: the time budget must be a positive number of seconds")
    if reserve_hugepages and not is_root():
        raise PermissionError("reserve_hugepages (--reserve-hugepages) needs root: the default "
                              "changes no system setting")
    return size, budget


def _fit(n: int, count: int, available: int, what: str, notes: list[str]) -> int:
    """Elements per array when ``count`` arrays of ``n`` float64 must fit in half the memory."""
    if count * n * 8 <= available // 2:
        return n
    cut = max(available // 2 // count // 8, 1)
    notes.append(f"{what} cut to {format_bytes(cut * 8)} each to fit in memory")
    return cut


def _reservation(size: int, notes: list[str]):
    sizes = sorted(backend.huge_page_sizes(), reverse=True)
    page = next((s for s in sizes if size >= s), sizes[-1] if sizes else None)
    if page is None:
        notes.append("no hugetlb page sizes on this system: nothing reserved")
        return contextlib.nullcontext()
    return HugePageReservation(page, -(-size // page))


def run(quick: bool = False, size=None, repeat: int = MIN_REPEAT, *, reserve_hugepages: bool = False,
        progress=False, budget: float | None = None) -> BenchResults:
    """Measure every workload, numpy and numamap side by side, and the machine's limits.

    Each workload runs numpy and numamap alternately, round after round, until every ratio's
    95% confidence interval spans at most 10%, or its share of the time budget is spent.
    Work on one thread is timed by that thread's CPU time where it is precise (Linux), so that
    other processes' turns on the CPU are not counted; see ``numamap.bench.sampling``. A
    ratio whose interval stays wider than :data:`numamap.bench.STABLE_WIDTH` is not reported:
    the row says "unstable".

    Parameters
    ----------
    quick : bool
        Smaller defaults: 64 MiB arrays (STREAM's at least 4x the last-level cache), 1 M
        gathers, a 40 s budget. Under a minute, even on a busy machine.
    size : int or str, optional
        Bytes of each big array (fill, gather, each of the 3 STREAM arrays); 4 GiB by default.
    repeat : int
        The fewest rounds behind any figure (each side once per round, after a warm-up); >= 5.
    reserve_hugepages : bool
        As root, grow the hugetlb pools for the fill and gather workloads and shrink them back
        after (also on SIGTERM). Off by default: the benchmark changes no system setting
        unless asked.
    progress : bool or callable
        Report progress on stderr (True), or call ``progress(done, total, label)``.
    budget : float, optional
        Seconds the whole run should take (40 with ``quick``, 240 otherwise), shared among the
        workloads. Every workload runs at least ``repeat`` rounds whatever it says, so a very
        busy machine can overrun it.

    Returns
    -------
    BenchResults
    """
    size_given = size
    size, budget = check_arguments(quick, size, repeat, reserve_hugepages, budget)
    defaults = QUICK if quick else FULL
    started = time.perf_counter()
    date = datetime.datetime.now(datetime.timezone.utc).astimezone().isoformat(timespec="seconds")
    notes: list[str] = []
    n = size // 8

    import psutil

    available = psutil.virtual_memory().available
    if size > available // 2:
        raise MemoryError(f"size={format_bytes(size)} needs more than half of the "
                          f"{format_bytes(available)} available: use a smaller --size")
    gather_n = _fit(n, 3, available, "gather arrays (3 at once)", notes)
    stream_n = n
    llc = last_level_cache()
    if quick and size_given is None and llc and 4 * llc > size:  # STREAM wants 4x the LLC
        stream_n = 4 * llc // 8
    stream_n = _fit(stream_n, 6, available, "STREAM arrays (numpy's 3 and numamap's 3 at once)", notes)

    notes.append(f"times are {CLOCK_NAME} (for NodePool, of its slowest thread): what other "
                 "processes take of the CPU is not counted" if CLOCK_NAME != "wall time" else
                 "times are wall time: other processes' use of the CPU counts")
    deadline = started + budget
    remaining = dict(SHARES)

    def plan_for(workload: str) -> Plan:
        """The workload's share of the time left, so that an overrun shortens the later ones."""
        share = remaining.pop(workload) / (sum(remaining.values()) + SHARES[workload])
        now = time.perf_counter()
        return Plan(min_rounds=int(repeat)).until(now + max(deadline - now, 0.0) * share)

    bar = Progress(len(SHARES), progress)
    rows: list[Row] = []
    bar.step("copy and triad: numpy, NodePool and the C memcpy limit")
    rows += stream_rows(stream_n, plan_for("stream"))
    reservation = _reservation(size, notes) if reserve_hugepages else contextlib.nullcontext()
    with reservation as got:
        if got is not None:
            notes.append(f"reserved {got.pages} {page_size_name(got.page_size)} huge pages for fill "
                         "and gather, released after")
        bar.step("fill: np.zeros, numpy on 4 KiB pages and numamap.empty")
        rows += fill_rows(n, plan_for("fill"))
        bar.step("gather: np.ones, numpy on 4 KiB pages and numamap.empty")
        rows += gather_rows(gather_n, defaults["gathers"], plan_for("gather"))
    bar.step("small-array loop: numpy's default handler and numamap.policy()")
    rows.append(loop_row(defaults["loop"], plan_for("loop")))
    bar.step(f"allocate {format_bytes(SMALL_ALLOC)}: np.empty and numamap.empty")
    rows.append(alloc_row(SMALL_ALLOC, defaults["allocs"], plan_for("alloc small"), False))
    bar.step(f"allocate {format_bytes(LARGE_ALLOC)}: np.empty, numamap.empty and the OS's map + unmap")
    rows.append(alloc_row(LARGE_ALLOC, defaults["allocs"], plan_for("alloc large"), True))
    bar.step("a*b+d at 256 KiB to 128 MiB: numpy's default handler and numamap.policy()")
    expressions = plan_for("expressions")
    for nbytes in EXPRESSION_SIZES:  # each size gets an equal part of the share
        now = time.perf_counter()
        left = EXPRESSION_SIZES[EXPRESSION_SIZES.index(nbytes):]
        share = max((expressions.deadline or now) - now, 0.0) / len(left)
        rows.append(expression_row(nbytes, Plan(min_rounds=int(repeat)).until(now + share)))
    bar.step("allocation throughput: threads each under their node's policy, against one")
    rows.append(churn_row(defaults["churn"], plan_for("churn")))
    bar.finish()
    rows.sort(key=lambda r: ORDER.index(r.workload) if r.workload in ORDER else len(ORDER))
    return BenchResults(rows=rows, topology=repr(topology()), size=size, repeat=int(repeat),
                        quick=quick, date=date, machine=machine_facts(),
                        elapsed=time.perf_counter() - started, notes=notes)
