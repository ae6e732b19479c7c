"""``numamap bench``: numamap against plain numpy on this machine, and both against its limit.

Everything is measured in the same run: every figure is the median of at least five runs after
a warm-up, kept with its spread (min-max). Ratios are numamap over numpy, where more than 1
means numamap is better (for times, numpy's time over numamap's). The machine's limit is the
best aggregate bandwidth of a memcpy loop in C, one pinned thread per allowed CPU, each copying
its own buffers; like every copy figure here it counts the bytes read plus the bytes written.

Python use::

    import numamap.bench

    results = numamap.bench.run(quick=True)   # a BenchResults; a table in notebooks
    print(results)                            # the same table as text
    results.row("gather").ratio               # numamap / numpy
    results.to_json("bench.json")
    results.plot("bench.png")                 # needs matplotlib: pip install numamap[plot]

Nothing here writes to stdout; progress goes to stderr only when asked for (``progress=True``).
"""
from __future__ import annotations

import contextlib
import datetime
import gc
import html
import json
import math
import os
import platform
import statistics
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ._backend import backend
from ._errors import FallbackWarning
from ._units import GiB, KiB, MiB, format_bytes, page_size_name, parse_size, round_up
from .arrays import empty
from .numa_topology import topology

__all__ = ["BenchResults", "HugePageReservation", "Measure", "Row", "last_level_cache", "numpy_base_pages",
           "machine_limit", "run", "small_array_loop", "main"]

#: The smallest number of measured runs behind any figure.
MIN_REPEAT = 5
PLOT_HINT = "pip install numamap[plot]"

_QUICK = {"size": 512 * MiB, "gathers": 4_000_000, "loop": 2_000, "allocs": 200}
_FULL = {"size": 4 * GiB, "gathers": 32_000_000, "loop": 20_000, "allocs": 2_000}
_SMALL_ALLOC = 16 * KiB
#: Row order of the table (measuring runs in another order, to share arrays and pools).
_ORDER = ["fill", "fill vs 4K pages", "copy", "triad", "gather", "gather vs 4K pages",
          "small-array loop", "allocate 16 KiB", "allocate 64 MiB"]
_LARGE_ALLOC = 64 * MiB


# -- figures ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Measure:
    """The median of several measured runs, with the spread (lowest and highest run)."""

    median: float
    low: float
    high: float
    samples: tuple[float, ...]

    @classmethod
    def of(cls, samples) -> "Measure":
        samples = tuple(float(s) for s in samples)
        if not samples:
            raise ValueError("a Measure needs at least one sample")
        return cls(statistics.median(samples), min(samples), max(samples), samples)

    @property
    def best(self) -> float:
        return self.high

    @property
    def spread(self) -> float:
        """(highest - lowest) / median."""
        return (self.high - self.low) / self.median if self.median else math.nan

    def to_dict(self) -> dict:
        return {"median": self.median, "min": self.low, "max": self.high,
                "spread": self.spread, "samples": list(self.samples)}

    def format(self, digits: int = 2) -> str:
        return f"{_num(self.median, digits)} ({_num(self.low, digits)}-{_num(self.high, digits)})"


def _num(value: float, digits: int) -> str:
    if value != value:  # nan
        return "nan"
    if abs(value) >= 1000:
        return f"{value:.0f}"
    return f"{value:.{digits}f}" if abs(value) >= 1 else f"{value:.{digits + 1}g}"


@dataclass
class Row:
    """One workload: plain numpy, numamap, and the machine's limit where one exists.

    ``numpy`` or ``numamap`` is None when that side could not be measured (``note`` says why).
    """

    workload: str
    unit: str
    numpy: Measure | None
    numamap: Measure | None
    limit: Measure | None = None
    higher_is_better: bool = True
    numpy_does: str = ""
    numamap_does: str = ""
    note: str = ""

    @property
    def ratio(self) -> float | None:
        """numamap over numpy (medians); more than 1 means numamap is better."""
        if self.numpy is None or self.numamap is None:
            return None
        a, b = (self.numamap.median, self.numpy.median) if self.higher_is_better else \
            (self.numpy.median, self.numamap.median)
        return a / b if b else math.nan

    @property
    def ratio_range(self) -> tuple[float, float] | None:
        """The ratio's worst and best case over the spreads of both sides."""
        if self.numpy is None or self.numamap is None:
            return None
        if self.higher_is_better:
            return self.numamap.low / self.numpy.high, self.numamap.high / self.numpy.low
        return self.numpy.low / self.numamap.high, self.numpy.high / self.numamap.low

    @property
    def of_limit(self) -> float | None:
        """numamap's median as a fraction of the limit (its best run)."""
        if self.limit is None or self.numamap is None:
            return None
        if self.higher_is_better:
            return self.numamap.median / self.limit.best
        return self.limit.low / self.numamap.median

    def to_dict(self) -> dict:
        return {"workload": self.workload, "unit": self.unit, "higher_is_better": self.higher_is_better,
                "numpy": self.numpy.to_dict() if self.numpy else None,
                "numamap": self.numamap.to_dict() if self.numamap else None,
                "limit": self.limit.to_dict() if self.limit else None,
                "ratio": self.ratio, "ratio_range": list(self.ratio_range) if self.ratio_range else None,
                "of_limit": self.of_limit, "numpy_does": self.numpy_does,
                "numamap_does": self.numamap_does, "note": self.note}


_HEADER = ("workload", "unit", "numpy median (min-max)", "numamap median (min-max)", "ratio",
           "limit best (min-max)", "of limit", "note")


@dataclass
class BenchResults:
    """What :func:`run` measured. ``str()`` is the table; ``_repr_html_`` shows it in notebooks."""

    rows: list[Row]
    topology: str
    size: int
    repeat: int
    quick: bool
    date: str
    machine: dict
    elapsed: float = 0.0
    notes: list[str] = field(default_factory=list)

    def row(self, workload: str) -> Row:
        for r in self.rows:
            if r.workload == workload:
                return r
        raise KeyError(f"no row {workload!r}: rows are {[r.workload for r in self.rows]}")

    def _cells(self) -> list[tuple[str, ...]]:
        out = []
        for r in self.rows:
            ratio = "-" if r.ratio is None else f"{r.ratio:.2f}"
            of_limit = "-" if r.of_limit is None else f"{r.of_limit:.0%}"
            limit = "-"
            if r.limit is not None:
                limit = f"{_num(r.limit.best, 2)} ({_num(r.limit.low, 2)}-{_num(r.limit.high, 2)})"
            out.append((r.workload, r.unit, r.numpy.format() if r.numpy else "-",
                        r.numamap.format() if r.numamap else "-", ratio, limit, of_limit, r.note))
        return out

    def table(self) -> str:
        """The results as a fixed-width text table (the note column last, unpadded)."""
        rows = [_HEADER, *self._cells()]
        widths = [max(len(row[i]) for row in rows) for i in range(len(_HEADER) - 1)]
        lines = ["  ".join([*(c.ljust(w) for c, w in zip(row[:-1], widths)), row[-1]]).rstrip()
                 for row in rows]
        head = (f"numamap bench, {self.date}: median of {self.repeat} runs after a warm-up, "
                f"(min-max) the spread; ratio = numamap / numpy, > 1 means numamap is better")
        return "\n".join([head, *lines, *(f"note: {n}" for n in self.notes)])

    __str__ = table

    def __repr__(self) -> str:
        return f"<BenchResults {len(self.rows)} rows, {format_bytes(self.size)} arrays>\n{self.table()}"

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in _HEADER)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                       for row in self._cells())
        notes = "".join(f"<br>note: {html.escape(n)}" for n in self.notes)
        return (f"<b>numamap bench</b> {html.escape(self.date)}, {format_bytes(self.size)} arrays, "
                f"median of {self.repeat} runs (min-max); ratio = numamap / numpy, &gt; 1 is better"
                f"<table><tr>{head}</tr>{body}</table><small>{notes}</small>")

    def to_dict(self) -> dict:
        return {"date": self.date, "machine": self.machine, "topology": self.topology,
                "size": self.size, "repeat": self.repeat, "quick": self.quick,
                "elapsed_s": self.elapsed, "notes": list(self.notes),
                "rows": [r.to_dict() for r in self.rows]}

    def to_json(self, path=None) -> str:
        """The results as JSON text; also written to ``path`` when given."""
        text = json.dumps(_finite(self.to_dict()), indent=2, allow_nan=False)
        if path is not None:
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(text + "\n")
        return text

    def plot(self, path=None):
        """A bar chart of the ratios (with their range), and of numamap against the limit.

        Needs matplotlib (``pip install numamap[plot]``). Saves a PNG to ``path`` when given;
        returns the matplotlib Figure.
        """
        Figure, FigureCanvasAgg = _matplotlib()
        rows = [r for r in self.rows if r.ratio is not None]
        fig = Figure(figsize=(8, 0.45 * len(rows) + 1.6), layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        y = np.arange(len(rows))[::-1]
        ratios = np.array([r.ratio for r in rows])
        low = np.array([r.ratio_range[0] for r in rows])
        high = np.array([r.ratio_range[1] for r in rows])
        colors = ["#2a9d8f" if v >= 1 else "#e76f51" for v in ratios]
        ax.barh(y, ratios, color=colors, xerr=np.vstack([ratios - low, high - ratios]).clip(min=0),
                capsize=3, label="numamap / numpy (median; whiskers: min-max)")
        limited = [(yy, r.of_limit) for yy, r in zip(y, rows) if r.of_limit is not None]
        if limited:
            ax.scatter([v for _, v in limited], [yy for yy, _ in limited], marker="D", color="black",
                       zorder=3, label="numamap / machine limit")
        ax.axvline(1.0, color="grey", linestyle="--", linewidth=1)
        ax.set_yticks(y, [r.workload for r in rows])
        ax.set_xlabel("ratio (> 1: numamap better)")
        ax.set_title(f"numamap bench {self.date[:10]}: {format_bytes(self.size)} arrays, "
                     f"median of {self.repeat}")
        ax.legend(loc="lower right", fontsize="small")
        if path is not None:
            fig.savefig(path, dpi=120)
        return fig


def _finite(obj):
    """``obj`` with every nan or infinity replaced by None: strict JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _matplotlib():
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(f"numamap bench plots need matplotlib: {PLOT_HINT} ({exc})") from exc
    return Figure, FigureCanvasAgg


# -- machine facts ---------------------------------------------------------------------------------

def last_level_cache() -> int | None:
    """Bytes of the last-level cache CPU 0 sees (Linux sysfs); None when unknown."""
    root = "/sys/devices/system/cpu/cpu0/cache"
    best = (0, None)
    try:
        entries = os.listdir(root)
    except OSError:
        return None
    for entry in entries:
        if not entry.startswith("index"):
            continue
        try:
            with open(f"{root}/{entry}/level") as f:
                level = int(f.read())
            with open(f"{root}/{entry}/size") as f:
                size = parse_size(f.read().strip().replace("K", "KiB").replace("M", "MiB"))
        except (OSError, ValueError):
            continue
        if level > best[0] or (level == best[0] and best[1] is not None and size > best[1]):
            best = (level, size)
    return best[1]


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("model name", "Model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _machine() -> dict:
    import psutil

    from . import __version__

    return {"cpu": _cpu_model(), "cpus": len(_allowed_cpus()), "memory": psutil.virtual_memory().total,
            "llc": last_level_cache(), "kernel": platform.release(), "platform": sys.platform,
            "python": platform.python_version(), "numpy": np.__version__, "numamap": __version__,
            "thp": backend.thp_mode()}


def _allowed_cpus() -> list[int]:
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def machine_limit(nbytes: int = 1 * GiB, repeat: int = MIN_REPEAT, cpus=None) -> Measure:
    """The machine's copy bandwidth in GB/s (bytes read + bytes written), measured now.

    One thread per CPU in ``cpus`` (every allowed CPU by default), each pinned and copying its
    own ``nbytes / len(cpus)`` bytes with memcpy, all starting together; one warm-up pass, then
    ``repeat`` timed passes. The limit is ``.best``; nothing is cached.
    """
    if repeat < 1:
        raise ValueError(f"repeat={repeat} must be >= 1")
    if not sys.platform.startswith("linux"):
        raise NotImplementedError("the machine limit is measured on Linux only")
    from ._linux_cffi import ffi, lib

    cpus = _allowed_cpus() if cpus is None else [int(c) for c in cpus]
    if not cpus:
        raise ValueError("cpus must not be empty")
    per_thread = max(round_up(nbytes // len(cpus), 4 * KiB), 1 * MiB)
    out = ffi.new("double[]", repeat)
    rc = lib.nmb_copy_bandwidth(ffi.new("int[]", cpus), len(cpus), per_thread, repeat, out)
    if rc:
        raise OSError(rc, f"measuring the copy limit on CPUs {cpus}: {os.strerror(rc)}")
    return Measure.of(list(out))


# -- huge-page pools -------------------------------------------------------------------------------

class HugePageReservation:
    """Grow the machine's ``page_size`` hugetlb pool so that ``pages`` are free; shrink it back after.

    A context manager (also ``reserve()``/``release()``). Needs root: raises PermissionError
    otherwise, and MemoryError (with the pool as it was put back) when the kernel cannot find
    the pages. Nothing is changed when enough pages are free already.
    """

    def __init__(self, page_size: int, pages: int):
        self.page_size = int(page_size)
        self.pages = int(pages)
        self.path = f"/sys/kernel/mm/hugepages/hugepages-{self.page_size // KiB}kB/nr_hugepages"
        self._previous: int | None = None

    def _pool(self):
        return backend.hugepage_pool(self.page_size, None)

    def reserve(self) -> "HugePageReservation":
        pool = self._pool()
        name = page_size_name(self.page_size)
        if pool is None:
            raise MemoryError(f"this kernel has no {name} huge-page pool")
        if pool.free >= self.pages:
            return self
        if not hasattr(os, "geteuid") or os.geteuid() != 0:
            raise PermissionError(f"reserving {self.pages} {name} huge pages needs root "
                                  f"({pool.describe()})")
        self._previous = pool.total
        self._write(pool.total + self.pages - pool.free)
        got = self._pool()
        if got is None or got.free < self.pages:
            self.release()
            raise MemoryError(f"the kernel could not find {self.pages} free {name} huge pages "
                              f"(memory too fragmented or too small): "
                              f"{got.describe() if got else 'no pool'}")
        return self

    def _write(self, total: int) -> None:
        with open(self.path, "w") as f:
            f.write(f"{int(total)}\n")

    def release(self) -> None:
        """Put the pool back to its size before :meth:`reserve` (when it changed it)."""
        if self._previous is not None:
            previous, self._previous = self._previous, None
            self._write(previous)

    def __enter__(self) -> "HugePageReservation":
        return self.reserve()

    def __exit__(self, *exc) -> None:
        self.release()


def _pool_note() -> str:
    """Why numamap did not use hugetlb pages: what the pools hold now."""
    pools = []
    for size in backend.huge_page_sizes():
        pool = backend.hugepage_pool(size, None)
        if pool is not None:
            pools.append(f"{page_size_name(size)}: {pool.free} free")
    held = ", ".join(pools) or "none on this kernel"
    return (f"hugetlb pools too small ({held}; root: --reserve-hugepages)"
            if pools else f"hugetlb pages: {held}")


# -- measuring -------------------------------------------------------------------------------------

class _Progress:
    """Progress on stderr: a bar on a terminal, plain lines otherwise; silent when disabled."""

    def __init__(self, total: int, enabled) -> None:
        self.total, self.done = total, 0
        self.callback = enabled if callable(enabled) else None
        self.enabled = bool(enabled) and self.callback is None
        self.tty = self.enabled and sys.stderr.isatty()
        self.start = time.perf_counter()

    def step(self, label: str) -> None:
        if self.callback is not None:
            self.callback(self.done, self.total, label)
        elif self.tty:
            width = 24
            filled = int(width * self.done / self.total)
            sys.stderr.write(f"\r\x1b[K[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} "
                             f"{time.perf_counter() - self.start:5.1f}s {label}")
            sys.stderr.flush()
        elif self.enabled:
            print(f"numamap bench: [{self.done + 1}/{self.total}] {label}", file=sys.stderr, flush=True)
        self.done += 1

    def finish(self) -> None:
        if self.tty:
            sys.stderr.write(f"\r\x1b[Kdone in {time.perf_counter() - self.start:.1f}s\n")
            sys.stderr.flush()


def _times(make: Callable[[], object], repeat: int, warmup: int = 1) -> list[float]:
    """Seconds of ``make()`` over ``repeat`` runs after ``warmup``; what it returns is dropped
    (and so freed) outside the timing."""
    times = []
    for i in range(warmup + repeat):
        gc.collect()
        t0 = time.perf_counter()
        keep = make()
        elapsed = time.perf_counter() - t0
        del keep
        if i >= warmup:
            times.append(elapsed)
    return times


def _rates(amount: float, times, scale: float = 1e9) -> Measure:
    return Measure.of([amount / t / scale for t in times])


def _collect() -> None:
    gc.collect()  # drop cycles now, so that the big arrays are unmapped before the next


def numpy_base_pages(n: int) -> np.ndarray:
    """``np.empty(n)`` whose pages are kept at the base size (MADV_NOHUGEPAGE before any touch)."""
    arr = np.empty(n)
    address = arr.__array_interface__["data"][0]
    page = backend.base_page_size()
    start = round_up(address, page)
    end = (address + arr.nbytes) // page * page
    if end > start:
        backend.advise_thp(start, end - start, False)
    return arr


def _thp_faults() -> int | None:
    try:
        with open("/proc/vmstat") as f:
            for line in f:
                if line.startswith("thp_fault_alloc "):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _kind(arr: np.ndarray) -> str:
    view = arr.base
    if view is None or not hasattr(view, "page_kind"):
        return "numpy memory"
    if view.page_kind == "hugetlb":
        return f"{page_size_name(view.page_size)} hugetlb pages"
    if view.page_kind == "thp":
        return "THP"
    return f"{page_size_name(view.page_size)} pages"


def _fill_rows(n: int, repeat: int, progress: _Progress) -> list[Row]:
    nbytes = n * 8

    def numpy_zeros_fill():
        a = np.zeros(n)
        a.fill(1.0)
        return a

    def numpy_4k_fill():
        a = numpy_base_pages(n)
        a.fill(1.0)
        return a

    kinds = []

    def numamap_fill():
        a = empty(n)
        a.fill(1.0)
        kinds.append(_kind(a))
        return a

    progress.step("fill: numpy (np.zeros + fill)")
    before = _thp_faults()
    numpy_times = _times(numpy_zeros_fill, repeat)
    after = _thp_faults()
    numpy_thp = ""
    if before is not None and after is not None:
        share = min((after - before) * 2 * MiB / (nbytes * (repeat + 1)), 1.0)
        numpy_thp = f"; numpy got THP for ~{share:.0%} of its pages"
    if nbytes <= 32 * MiB:  # glibc's largest mmap threshold: below it freed blocks get reused
        numpy_thp += "; at this size numpy's malloc may reuse memory already touched"
    progress.step("fill: numamap (numamap.empty + fill)")
    numamap_times = _times(numamap_fill, repeat)
    got = " and ".join(sorted(set(kinds)))
    progress.step("fill: numpy on 4 KiB pages (MADV_NOHUGEPAGE)")
    base_times = _times(numpy_4k_fill, repeat)
    pools = "" if "hugetlb" in got else f"; {_pool_note()}"
    numamap_measure = _rates(nbytes, numamap_times)
    return [
        Row("fill", "GB/s", _rates(nbytes, numpy_times), numamap_measure,
            numpy_does="np.zeros + fill", numamap_does="numamap.empty + fill",
            note=f"{format_bytes(nbytes)}; numamap on {got}{pools}{numpy_thp}"),
        Row("fill vs 4K pages", "GB/s", _rates(nbytes, base_times), numamap_measure,
            numpy_does="np.empty, MADV_NOHUGEPAGE, fill", numamap_does="numamap.empty + fill",
            note=f"numpy column on 4 KiB pages; numamap on {got}"),
    ]


def _stream_arrays_numpy(n: int):
    return [np.full(n, v) for v in (0.0, 1.0, 2.0)]


def _node_pool_class():
    """numamap.NodePool, or None while this build has none."""
    try:
        from .workers import NodePool
    except ImportError:
        return None
    return NodePool


def _chunks(pool, arr: np.ndarray):
    """(node, row slice) pieces of a partitioned ``arr``: each block split among its node's threads."""
    from .partitioning import blocks

    out = []
    for node, rows in blocks(arr):
        threads = max(len(pool.threads(node)), 1)
        for piece in np.array_split(np.arange(rows.start, rows.stop), threads):
            if len(piece):
                out.append((node, slice(int(piece[0]), int(piece[-1]) + 1)))
    return out


def _copy(a, c):
    np.copyto(c, a)


def _triad(a, b, c, scalar=3.0):
    np.multiply(c, scalar, out=a)
    np.add(a, b, out=a)


def _stream_rows(n: int, repeat: int, limit: Measure | None, limit_note: str,
                 progress: _Progress) -> list[Row]:
    nbytes = n * 8
    copy_bytes, triad_bytes = 2 * nbytes, 3 * nbytes
    progress.step("copy: numpy")
    a, b, c = _stream_arrays_numpy(n)
    numpy_copy = _rates(copy_bytes, _times(lambda: _copy(a, c), repeat))
    progress.step("triad: numpy")
    numpy_triad = _rates(triad_bytes, _times(lambda: _triad(a, b, c), repeat))
    del a, b, c
    _collect()

    pool_class = _node_pool_class()
    if pool_class is None:
        progress.step("copy: numamap arrays (numamap.NodePool not available)")
        a, b, c = (empty(n) for _ in range(3))
        for arr, v in zip((a, b, c), (0.0, 1.0, 2.0)):
            arr.fill(v)
        numamap_copy = _rates(copy_bytes, _times(lambda: _copy(a, c), repeat))
        progress.step("triad: numamap arrays")
        numamap_triad = _rates(triad_bytes, _times(lambda: _triad(a, b, c), repeat))
        does = "numamap.empty arrays, one thread (NodePool not available yet)"
    else:
        from .partitioning import partitioned

        progress.step("copy: numamap NodePool on partitioned arrays")
        with pool_class() as pool:
            with warnings.catch_warnings():  # pools too small for the arrays: THP, no warning
                warnings.simplefilter("ignore", FallbackWarning)
                a, b, c = (partitioned(n) for _ in range(3))
            for arr, v in zip((a, b, c), (0.0, 1.0, 2.0)):
                pool.first_touch(arr, v)
            pieces = _chunks(pool, a)

            def run_all(kernel, *arrays):
                futures = [pool.submit(node, kernel, *(x[rows] for x in arrays)) for node, rows in pieces]
                for f in futures:
                    f.result()

            numamap_copy = _rates(copy_bytes, _times(lambda: run_all(_copy, a, c), repeat))
            progress.step("triad: numamap NodePool on partitioned arrays")
            numamap_triad = _rates(triad_bytes, _times(lambda: run_all(_triad, a, b, c), repeat))
            threads = len(pool.threads())
        does = (f"numamap.partitioned arrays, NodePool: {len(pieces)} pieces on {threads} pinned "
                "threads, each on its node's block")
    del a, b, c
    _collect()
    llc = last_level_cache()
    small = f"; arrays < 4x the LLC ({format_bytes(llc)})" if llc and nbytes < 4 * llc else ""
    return [
        Row("copy", "GB/s", numpy_copy, numamap_copy, limit, numpy_does="np.copyto, one thread",
            numamap_does=does, note=f"3 arrays of {format_bytes(nbytes)}, read+write bytes{small}; "
                                     f"limit: {limit_note}"),
        Row("triad", "GB/s", numpy_triad, numamap_triad, limit,
            numpy_does="a = b + 3*c (np.multiply, np.add), one thread", numamap_does=does,
            note="STREAM bytes (3 arrays); numpy takes two passes; limit: the copy limit"),
    ]


def _gather_rows(n: int, gathers: int, repeat: int, progress: _Progress) -> list[Row]:
    rng = np.random.default_rng(12345)
    index = rng.integers(0, n, size=min(gathers, n), dtype=np.int64)
    out = np.empty(index.size)
    million = index.size / 1e6

    def measure(arr: np.ndarray) -> Measure:
        return _rates(million, _times(lambda: np.take(arr, index, out=out, mode="clip"), repeat), 1.0)

    progress.step("gather: numpy (np.ones, THP)")
    arr = np.ones(n)
    numpy_rate = measure(arr)
    del arr
    _collect()
    progress.step("gather: numamap")
    arr = empty(n)
    got = _kind(arr)
    arr.fill(1.0)
    numamap_rate = measure(arr)
    del arr
    _collect()
    progress.step("gather: numpy on 4 KiB pages")
    arr = numpy_base_pages(n)
    arr.fill(1.0)
    base_rate = measure(arr)
    del arr
    _collect()
    pools = "" if "hugetlb" in got else f"; {_pool_note()}"
    what = f"{index.size / 1e6:.0f} M random 8-byte reads over {format_bytes(n * 8)}"
    return [
        Row("gather", "M/s", numpy_rate, numamap_rate, numpy_does="np.take on np.ones (THP)",
            numamap_does="np.take on numamap.empty", note=f"{what}; numamap on {got}{pools}"),
        Row("gather vs 4K pages", "M/s", base_rate, numamap_rate,
            numpy_does="np.take on np.empty + MADV_NOHUGEPAGE", numamap_does="np.take on numamap.empty",
            note=f"numpy column on 4 KiB pages; numamap on {got}"),
    ]


def _policy_factory():
    """numamap.policy (the function), or None while this build has none."""
    try:
        from .memory_handler import policy
    except ImportError:
        return None
    return policy if callable(policy) else None


def small_array_loop(iterations: int) -> float:
    """Seconds per iteration of ``np.empty(100)`` plus ``np.add`` of two 1 KiB arrays."""
    x = np.ones(128)
    y = np.ones(128)
    add, new = np.add, np.empty
    t0 = time.perf_counter()
    for _ in range(iterations):
        new(100)
        add(x, y)
    return (time.perf_counter() - t0) / iterations


def _loop_row(iterations: int, repeat: int, progress: _Progress) -> Row:
    def measure() -> Measure:
        small_array_loop(iterations)  # warm-up
        return Measure.of([small_array_loop(iterations) * 1e9 for _ in range(repeat)])

    progress.step("small-array loop: numpy's default handler")
    plain = measure()
    progress.step("small-array loop: inside numamap.policy()")
    factory = _policy_factory()
    note = f"{iterations} x (np.empty(100) + np.add on 1 KiB arrays)"
    if factory is None:
        return Row("small-array loop", "ns/iter", plain, None, higher_is_better=False,
                   numpy_does="default NEP 49 handler",
                   note=note + "; numamap.policy is not available in this build")
    with factory():
        placed = measure()
    return Row("small-array loop", "ns/iter", plain, placed, higher_is_better=False,
               numpy_does="default NEP 49 handler", numamap_does="inside numamap.policy()", note=note)


def _alloc_times(make, count: int, repeat: int) -> Measure:
    def batch():
        for _ in range(count):
            make()

    return Measure.of([t / count * 1e6 for t in _times(batch, repeat)])


def _raw_mmap(nbytes: int) -> Callable[[], None] | None:
    if not sys.platform.startswith("linux"):
        return None
    from ._linux_cffi import ffi, lib

    out = ffi.new("void **")
    prot = lib.PROT_READ | lib.PROT_WRITE
    flags = lib.MAP_PRIVATE | lib.MAP_ANONYMOUS

    def mmap_munmap():
        rc = lib.nm_mmap(ffi.NULL, nbytes, prot, flags, -1, 0, out)
        if rc:
            raise OSError(rc, os.strerror(rc))
        rc = lib.nm_munmap(out[0], nbytes)
        if rc:
            raise OSError(rc, os.strerror(rc))

    return mmap_munmap


def _alloc_rows(count: int, repeat: int, progress: _Progress) -> list[Row]:
    rows = []
    for nbytes in (_SMALL_ALLOC, _LARGE_ALLOC):
        n = nbytes // 8
        name = f"allocate {format_bytes(nbytes)}"
        progress.step(f"{name}: numpy")
        plain = _alloc_times(lambda: np.empty(n), count, repeat)
        progress.step(f"{name}: numamap")
        placed = _alloc_times(lambda: empty(n), count, repeat)
        limit, note = None, f"empty() then free, {count} per run"
        raw = _raw_mmap(nbytes) if nbytes >= 64 * KiB else None
        if raw is not None:
            progress.step(f"{name}: mmap + munmap")
            limit = _alloc_times(raw, count, repeat)
            note += "; limit: mmap + munmap through cffi"
        rows.append(Row(name, "us", plain, placed, limit, higher_is_better=False,
                        numpy_does="np.empty", numamap_does="numamap.empty", note=note))
    return rows


def _steps(with_raw_mmap: bool) -> int:
    # limit 1, stream 4, fill 3, gather 3, loop 2, allocations 4 (+1 for mmap)
    return 1 + 4 + 3 + 3 + 2 + 4 + int(with_raw_mmap)


def run(quick: bool = False, size=None, repeat: int = MIN_REPEAT, *, reserve_hugepages: bool = False,
        progress=False) -> BenchResults:
    """Measure every workload, numpy and numamap side by side, and the machine's limit.

    Parameters
    ----------
    quick : bool
        Smaller defaults (512 MiB arrays, 4 M gathers): under a minute on a small machine.
    size : int or str, optional
        Bytes of each big array (fill, gather, each of the 3 STREAM arrays); 4 GiB by default.
    repeat : int
        Measured runs per figure, each after one warm-up; at least 5.
    reserve_hugepages : bool
        As root, grow the hugetlb pools for the fill and gather workloads and shrink them back
        after. Off by default: the benchmark changes no system setting unless asked.
    progress : bool or callable
        Report progress on stderr (True), or call ``progress(done, total, label)``.

    Returns
    -------
    BenchResults
    """
    if isinstance(repeat, bool) or not isinstance(repeat, (int, np.integer)):
        raise TypeError(f"repeat must be an int, not {type(repeat).__name__}")
    if repeat < MIN_REPEAT:
        raise ValueError(f"repeat={repeat}: every figure is a median of at least {MIN_REPEAT} runs")
    defaults = _QUICK if quick else _FULL
    size = defaults["size"] if size is None else parse_size(size, name="size")
    if size < 1 * MiB:
        raise ValueError(f"size={size} is too small: use at least 1M")
    if reserve_hugepages and (not hasattr(os, "geteuid") or os.geteuid() != 0):
        raise PermissionError("reserve_hugepages (--reserve-hugepages) needs root: the default "
                              "changes no system setting")
    started = time.perf_counter()
    date = datetime.datetime.now(datetime.timezone.utc).astimezone().isoformat(timespec="seconds")
    notes: list[str] = []
    n = size // 8

    import psutil

    available = psutil.virtual_memory().available
    stream_n = n
    if 3 * size > available // 2:
        stream_n = max(available // 2 // 3 // 8, 1)
        notes.append(f"STREAM arrays cut to {format_bytes(stream_n * 8)} each to fit in memory")
    if size > available // 2:
        raise MemoryError(f"size={format_bytes(size)} needs more than half of the "
                          f"{format_bytes(available)} available: use a smaller --size")

    raw = sys.platform.startswith("linux")
    bar = _Progress(_steps(raw), progress)
    rows: list[Row] = []

    bar.step("machine limit: memcpy on every allowed CPU")
    cpus = _allowed_cpus()
    limit, limit_note = None, "not measured"
    try:
        limit = machine_limit(stream_n * 8, repeat, cpus)  # measured once: this run's cache
        limit_note = (f"C memcpy, {len(cpus)} pinned threads, {format_bytes(stream_n * 8 // len(cpus))} "
                      "each, best run")
    except NotImplementedError as exc:
        notes.append(str(exc))
    rows += _stream_rows(stream_n, repeat, limit, limit_note, bar)

    reservation = contextlib.nullcontext()
    if reserve_hugepages:
        sizes = sorted(backend.huge_page_sizes(), reverse=True)
        page = next((s for s in sizes if size >= s), sizes[-1] if sizes else None)
        if page is None:
            notes.append("no hugetlb page sizes on this kernel: nothing reserved")
        else:
            reservation = HugePageReservation(page, -(-size // page))
    with reservation as got:
        if got is not None:
            notes.append(f"reserved {got.pages} {page_size_name(got.page_size)} huge pages for fill "
                         "and gather, released after")
        rows += _fill_rows(n, repeat, bar)
        rows += _gather_rows(n, defaults["gathers"], repeat, bar)
    rows.append(_loop_row(defaults["loop"], repeat, bar))
    rows += _alloc_rows(defaults["allocs"], repeat, bar)
    bar.finish()
    rows.sort(key=lambda r: _ORDER.index(r.workload) if r.workload in _ORDER else len(_ORDER))
    return BenchResults(rows=rows, topology=repr(topology()), size=size, repeat=int(repeat),
                        quick=quick, date=date, machine=_machine(),
                        elapsed=time.perf_counter() - started, notes=notes)


# -- the command -----------------------------------------------------------------------------------

def main(args) -> int:
    """``numamap bench``: the topology, then the table on stdout (or JSON with ``--json -``)."""
    if args.plot:
        try:
            _matplotlib()  # fail now, not after a minute of measuring
        except ImportError as exc:
            print(f"numamap bench: {exc}", file=sys.stderr)
            return 1
    repeat = MIN_REPEAT if args.repeat is None else args.repeat
    if repeat < MIN_REPEAT:
        raise ValueError(f"--repeat {repeat}: every figure is a median of at least {MIN_REPEAT} runs")
    json_to_stdout = args.json == "-"
    if not json_to_stdout:
        print(topology(), flush=True)
        print(flush=True)
    results = run(quick=args.quick, size=args.size, repeat=repeat,
                  reserve_hugepages=args.reserve_hugepages, progress=True)
    if json_to_stdout:
        print(results.to_json())
    else:
        print(results.table())
        if args.json:
            results.to_json(args.json)
    if args.plot:
        results.plot(args.plot)
    return 0
