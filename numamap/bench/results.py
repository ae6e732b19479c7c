"""What ``numamap bench`` measured: one :class:`Row` per workload, and the :class:`BenchResults`.

A row compares two sides measured in alternating rounds, numpy's and numamap's, and sometimes
a limit. Its ratio is numamap over numpy (numpy's time over numamap's for times), so more than
1 means numamap did better; a ratio whose confidence interval is wider than the run can support
is not given: the row says "unstable" instead.
"""
from __future__ import annotations

import html
import json
import math
import textwrap
from dataclasses import dataclass, field

from .._units import format_bytes
from .stats import STABLE_WIDTH, Measure, Ratio, number, percent

#: Tables fit terminals this wide.
WIDTH = 100


@dataclass
class Row:
    """One workload: numpy, numamap, and the machine's limit where one exists.

    ``workload`` is the row's key (``results.row("fill")``); ``name`` says what its ratio
    compares. ``numpy`` or ``numamap`` is None when that side could not be measured, and
    ``note`` says why. ``limit`` is the limit's own measurement (C memcpy, mmap); the limit the
    row reports, ``limit_best``, is the best of it and of both sides in the same run.
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
    name: str = ""
    rounds: str = ""

    def __post_init__(self) -> None:
        self.name = self.name or self.workload

    @property
    def paired(self) -> Ratio | None:
        """The per-round ratios' median and interval, whether or not the run supports them."""
        if self.numpy is None or self.numamap is None:
            return None
        return Ratio.paired(self.numpy, self.numamap)

    @property
    def stable(self) -> bool | None:
        """Whether the ratio's interval is narrow enough to report (None without a ratio to judge)."""
        paired = self.paired
        return None if paired is None else paired.stable

    @property
    def ratio(self) -> float | None:
        """numamap over numpy, the median of the per-round ratios; more than 1 means numamap
        did better. None when a side is missing or the row is unstable."""
        paired = self.paired
        return paired.median if paired is not None and paired.stable else None

    @property
    def ratio_range(self) -> tuple[float, float] | None:
        """The ratio's confidence interval (None where ``ratio`` is None)."""
        paired = self.paired
        return (paired.ci_low, paired.ci_high) if paired is not None and paired.stable else None

    @property
    def limit_best(self) -> float | None:
        """The best of the limit's own measurement and of numpy's and numamap's best runs,
        so that the limit is never below what either side reached in the same run."""
        if self.limit is None:
            return None
        figures = [m.best for m in (self.limit, self.numpy, self.numamap) if m is not None]
        return max(figures) if self.higher_is_better else min(figures)

    @property
    def limit_by(self) -> str | None:
        """Which measurement set ``limit_best``: 'limit', 'numpy' or 'numamap'."""
        best = self.limit_best
        if best is None:
            return None
        for label, m in (("limit", self.limit), ("numpy", self.numpy), ("numamap", self.numamap)):
            if m is not None and m.best == best:
                return label
        return None

    @property
    def of_limit(self) -> float | None:
        """numamap's median as a share of the limit (1.0 is at the limit)."""
        best = self.limit_best
        if best is None or self.numamap is None or not self.numamap.median:
            return None
        return self.numamap.median / best if self.higher_is_better else best / self.numamap.median

    def notes(self) -> str:
        """The row's note, with why there is no ratio when there is none."""
        parts = [self.note] if self.note else []
        paired = self.paired
        if paired is not None and not paired.stable:
            parts.append(f"ratio unstable: its {paired.confidence:.0%} interval "
                         f"{number(paired.ci_low)}-{number(paired.ci_high)} spans more than "
                         f"{STABLE_WIDTH}x")
        if self.rounds:
            parts.append(self.rounds)
        if self.limit_by in ("numpy", "numamap"):
            parts.append(f"limit: {self.limit_by}'s best run beat the limit's own measurement")
        return "; ".join(parts)

    def cells(self) -> tuple[str, ...]:
        paired = self.paired
        if paired is None:
            ratio = "-"
        elif paired.stable:
            ratio = f"{number(paired.median)} {percent(paired.half_width)}"
        else:
            ratio = "unstable"
        best, share = self.limit_best, self.of_limit
        return (self.name, self.unit, self.numpy.format() if self.numpy else "-",
                self.numamap.format() if self.numamap else "-", ratio,
                "-" if best is None else number(best), "-" if share is None else f"{share:.0%}")

    def to_dict(self) -> dict:
        paired = self.paired
        return {"workload": self.workload, "name": self.name, "unit": self.unit,
                "higher_is_better": self.higher_is_better,
                "numpy": self.numpy.to_dict() if self.numpy else None,
                "numamap": self.numamap.to_dict() if self.numamap else None,
                "limit": self.limit.to_dict() if self.limit else None,
                "limit_best": self.limit_best, "limit_by": self.limit_by,
                "ratio": self.ratio, "ratio_range": list(self.ratio_range) if self.ratio_range else None,
                "stable": self.stable, "paired": paired.to_dict() if paired else None,
                "of_limit": self.of_limit, "numpy_does": self.numpy_does,
                "numamap_does": self.numamap_does, "note": self.notes()}


HEADER = ("row: numamap vs numpy", "unit", "numpy", "numamap", "ratio", "limit", "of limit")


@dataclass
class BenchResults:
    """What :func:`numamap.bench.run` measured. ``str()`` is the table; notebooks show HTML."""

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
        """The row with this key (``'fill'``, ``'copy'``, ...)."""
        for r in self.rows:
            if r.workload == workload:
                return r
        raise KeyError(f"no row {workload!r}: rows are {[r.workload for r in self.rows]}")

    def _heading(self) -> list[str]:
        return [f"numamap bench {self.date}: {format_bytes(self.size)} arrays, {self.elapsed:.0f} s",
                f"medians of >= {self.repeat} alternating rounds, +-: their 95% confidence interval",
                "ratio: numamap / numpy (times: numpy / numamap), > 1 means numamap did better"]

    def table(self) -> str:
        """The results as text no wider than 100 columns: the table, then each row's note."""
        cells = [HEADER, *(r.cells() for r in self.rows)]
        widths = [max(len(c[i]) for c in cells) for i in range(len(HEADER))]
        left = {0, 1}  # names and units read from the left, figures from the right
        lines = ["  ".join(c.ljust(w) if i in left else c.rjust(w)
                           for i, (c, w) in enumerate(zip(row, widths))).rstrip() for row in cells]
        out = [*self._heading(), *lines, "notes:"]
        wrap = textwrap.TextWrapper(width=WIDTH, subsequent_indent="    ", break_on_hyphens=False)
        for r in self.rows:
            out += wrap.wrap(f"  {r.name}: {r.notes() or '-'}")
        for n in self.notes:
            out += wrap.wrap(f"  {n}")
        return "\n".join(out)

    __str__ = table

    def __repr__(self) -> str:
        return f"<BenchResults {len(self.rows)} rows, {format_bytes(self.size)} arrays>\n{self.table()}"

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in (*HEADER, "note"))
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in (*r.cells(), r.notes()))
                       + "</tr>" for r in self.rows)
        notes = "".join(f"<br>note: {html.escape(n)}" for n in self.notes)
        return ("<b>" + "<br>".join(html.escape(line) for line in self._heading()) + "</b>"
                f"<table><tr>{head}</tr>{body}</table><small>{notes}</small>")

    def to_dict(self) -> dict:
        return {"date": self.date, "machine": self.machine, "topology": self.topology,
                "size": self.size, "repeat": self.repeat, "quick": self.quick,
                "elapsed_s": self.elapsed, "stable_width": STABLE_WIDTH, "notes": list(self.notes),
                "rows": [r.to_dict() for r in self.rows]}

    def to_json(self, path=None) -> str:
        """The results as strict JSON text (no NaN); also written to ``path`` when given."""
        text = json.dumps(_finite(self.to_dict()), indent=2, allow_nan=False)
        if path is not None:
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(text + "\n")
        return text

    def plot(self, path=None):
        """The ratios on a log axis centred on 1, and numamap against the limit.

        Needs matplotlib (see :mod:`numamap.plotting`). Saves a PNG to ``path`` when given;
        returns the matplotlib Figure.
        """
        from ..plotting import plot_bench

        fig = plot_bench(self)
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
