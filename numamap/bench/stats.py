"""The figures ``numamap bench`` reports: medians with a distribution-free confidence interval.

A benchmark sample is not normally distributed: a neighbour's burst, a page fault storm or a
migration makes a long right tail. So every figure is a median, and its interval comes from
order statistics (the sign test), which assumes nothing about the shape: with ``n`` samples the
interval ``[x(k), x(n-k+1)]`` holds the true median with probability ``1 - 2 P(B < k)``, where
``B`` is binomial(n, 1/2).

A ratio is computed per round, from the two samples taken side by side in that round
(``numamap.bench.sampling.alternate`` runs numpy and numamap alternately), so that a slow
spell of the machine slows both and cancels out. Its median and interval come the same way.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

#: The coverage asked of every interval.
CONFIDENCE = 0.95
#: A ratio is reported only when its interval spans at most this factor (high / low).
STABLE_WIDTH = 1.25


def median_interval(n: int, confidence: float = CONFIDENCE) -> tuple[int, int, float]:
    """0-based ranks ``(lo, hi)`` of the sorted samples that bracket the median, and the coverage.

    The narrowest symmetric pair whose coverage is at least ``confidence``; with too few samples
    for that (n < 6 at 95%), the extremes and the coverage they do give.
    """
    if n < 1:
        raise ValueError("an interval needs at least one sample")
    def coverage(k: int) -> float:  # of [x(k), x(n-k+1)], 1-based; exact integer sums
        return 1 - 2 * sum(math.comb(n, j) for j in range(k)) / 2 ** n

    k = 1
    while k + 1 <= (n + 1) // 2 and coverage(k + 1) >= confidence:
        k += 1
    return k - 1, n - k, coverage(k)


@dataclass(frozen=True)
class Measure:
    """The median of several samples, with its confidence interval and their extremes.

    ``low`` and ``high`` are the lowest and highest sample (the spread); ``ci_low`` and
    ``ci_high`` bound the median at ``confidence``. ``best`` is the fastest run: the highest
    sample for rates, the lowest for times.
    """

    median: float
    ci_low: float
    ci_high: float
    low: float
    high: float
    samples: tuple[float, ...]
    higher_is_better: bool = True
    confidence: float = CONFIDENCE

    @classmethod
    def of(cls, samples, higher_is_better: bool = True) -> "Measure":
        samples = tuple(float(s) for s in samples)
        if not samples:
            raise ValueError("a Measure needs at least one sample")
        ordered = sorted(samples)
        lo, hi, coverage = median_interval(len(ordered))
        return cls(statistics.median(ordered), ordered[lo], ordered[hi], ordered[0], ordered[-1],
                   samples, bool(higher_is_better), coverage)

    @property
    def best(self) -> float:
        """The fastest run (the highest rate, or the shortest time)."""
        return self.high if self.higher_is_better else self.low

    @property
    def spread(self) -> float:
        """(highest - lowest) / median."""
        return (self.high - self.low) / self.median if self.median else math.nan

    @property
    def half_width(self) -> float:
        """The interval's larger side over the median (0.05 means within +-5%)."""
        if not self.median:
            return math.nan
        return max(self.ci_high - self.median, self.median - self.ci_low) / abs(self.median)

    def to_dict(self) -> dict:
        return {"median": self.median, "ci": [self.ci_low, self.ci_high],
                "confidence": self.confidence, "min": self.low, "max": self.high,
                "best": self.best, "spread": self.spread, "samples": list(self.samples)}

    def format(self) -> str:
        """``median +-x%``: the interval's larger side as a share of the median."""
        return f"{number(self.median)} {percent(self.half_width)}"


@dataclass(frozen=True)
class Ratio:
    """numamap over numpy, one value per round, as a median with its interval."""

    median: float
    ci_low: float
    ci_high: float
    rounds: int
    confidence: float = CONFIDENCE

    @classmethod
    def paired(cls, numpy: Measure, numamap: Measure) -> "Ratio":
        """Round i's ratio is numamap_i / numpy_i for rates and numpy_i / numamap_i for times,
        so more than 1 means numamap did better in that round."""
        if len(numpy.samples) != len(numamap.samples):
            raise ValueError(f"paired samples needed: {len(numpy.samples)} numpy runs against "
                             f"{len(numamap.samples)} numamap runs")
        if numpy.higher_is_better:
            values = [b / a if a else math.nan for a, b in zip(numpy.samples, numamap.samples)]
        else:
            values = [a / b if b else math.nan for a, b in zip(numpy.samples, numamap.samples)]
        ordered = sorted(values)
        lo, hi, coverage = median_interval(len(ordered))
        return cls(statistics.median(ordered), ordered[lo], ordered[hi], len(ordered), coverage)

    @property
    def width(self) -> float:
        """The interval's high over its low (1.1 means the ratio is known to within about 10%)."""
        return self.ci_high / self.ci_low if self.ci_low > 0 else math.inf

    @property
    def stable(self) -> bool:
        """Whether the run supports a ratio (its interval spans at most STABLE_WIDTH)."""
        return self.width <= STABLE_WIDTH

    @property
    def half_width(self) -> float:
        return max(self.ci_high - self.median, self.median - self.ci_low) / self.median \
            if self.median else math.nan

    def to_dict(self) -> dict:
        return {"median": self.median, "ci": [self.ci_low, self.ci_high],
                "confidence": self.confidence, "rounds": self.rounds, "width": self.width,
                "stable": self.stable}


def number(value: float) -> str:
    """A figure for a table: 4 significant digits at most, never scientific notation."""
    if value != value:  # nan
        return "nan"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:.0f}"
    if magnitude >= 100:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    if magnitude == 0:
        return "0"
    digits = 2 - math.floor(math.log10(magnitude))  # 3 significant digits
    return f"{value:.{digits}f}"


def percent(share: float) -> str:
    """``+-5%`` (ASCII: tables go to terminals of every encoding)."""
    if share != share:
        return "+-?"
    if share < 0.01:
        return "+-<1%"
    return f"+-{share:.0%}"
