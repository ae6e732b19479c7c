"""Running numpy and numamap side by side: alternating rounds, until the ratios settle.

A round runs every side of a workload once, in an order that rotates from round to round (A B,
then B A), so that neither side always follows the other and a slow spell of the machine
lands on both. After the minimum number of rounds, rounds go on until every ratio's interval
spans at most ``Plan.target``, or until the next round would end past the workload's deadline.
"""
from __future__ import annotations

import gc
import sys
import time
from dataclasses import dataclass
from typing import Callable

from .stats import Measure, Ratio

#: The smallest number of rounds behind any figure.
MIN_REPEAT = 5

#: The clock of work done on one thread: that thread's CPU time (user and kernel, page faults
#: included), so that the time other processes hold the CPU is not counted, where it is precise
#: (Linux: nanoseconds); wall time where it is not (Windows counts CPU time in 15.6 ms ticks).
CPU_CLOCK: Callable[[], float] = time.thread_time if sys.platform.startswith("linux") else time.perf_counter
CLOCK_NAME = "thread CPU time" if CPU_CLOCK is not time.perf_counter else "wall time"


@dataclass(frozen=True)
class Plan:
    """How long one workload's rounds may go on.

    ``min_rounds`` always run, whatever the time; after them a round starts only while some
    ratio's interval is wider than ``target`` (high / low) and the round is expected to end
    before ``deadline`` (a ``time.perf_counter()`` value; None: no deadline).
    """

    min_rounds: int = MIN_REPEAT
    max_rounds: int = 400
    target: float = 1.10
    deadline: float | None = None

    def until(self, deadline: float) -> "Plan":
        return Plan(self.min_rounds, self.max_rounds, self.target, deadline)


@dataclass(frozen=True)
class Outcome:
    """Seconds per run of each side, one per round in round order, and how the rounds ended."""

    seconds: dict[str, list[float]]
    rounds: int
    elapsed: float
    settled: bool
    missing: dict[str, str]

    def measure(self, side: str, amount: float | None = None, scale: float = 1e9) -> Measure | None:
        """A side's figures: ``amount / seconds / scale`` per run (a rate), or, without
        ``amount``, seconds per run times ``scale`` (a time: 1e9 gives ns). None when the side
        could not run."""
        if side not in self.seconds:
            return None
        if amount is None:
            return Measure.of([t * scale for t in self.seconds[side]], higher_is_better=False)
        return Measure.of([amount / t / scale for t in self.seconds[side]])

    def describe(self) -> str:
        why = "settled" if self.settled else "stopped at its time limit"
        return f"{self.rounds} alternating rounds in {self.elapsed:.1f} s, {why}"


def timed(make: Callable[[], object], clock: Callable[[], float] = CPU_CLOCK) -> float:
    """Seconds of one ``make()`` by ``clock``, with the cyclic garbage collector held off (as
    timeit does); what ``make`` returns is dropped, and so freed, after the clock stops."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        start = clock()
        keep = make()
        elapsed = clock() - start
    finally:
        if enabled:
            gc.enable()
    del keep
    return elapsed


def _widths(seconds: dict[str, list[float]], pairs) -> list[float]:
    return [Ratio.paired(Measure.of(seconds[a], higher_is_better=False),
                         Measure.of(seconds[b], higher_is_better=False)).width
            for a, b in pairs]


def alternate(sides: dict[str, Callable[[], float]], pairs=(), plan: Plan = Plan()) -> Outcome:
    """Run every side once per round (after one warm-up each), rotating the order.

    Parameters
    ----------
    sides : dict of str to callable
        Each returns the seconds of one run (a side times itself, so that it can leave its
        setup and clean-up out). A side whose warm-up raises NotImplementedError is left out,
        and ``Outcome.missing`` says why.
    pairs : sequence of (str, str)
        (numpy side, numamap side) whose ratio decides when the rounds have settled.
    plan : Plan
    """
    missing: dict[str, str] = {}
    gc.collect()  # earlier workloads' garbage goes now, not inside these rounds
    for name in list(sides):
        try:
            sides[name]()  # warm-up: first-use costs (imports, caches, pools) stay out
        except NotImplementedError as exc:  # a feature this platform lacks: the row says so
            missing[name] = str(exc)
    names = [name for name in sides if name not in missing]
    pairs = [(a, b) for a, b in pairs if a in names and b in names]
    if not names:
        return Outcome({}, 0, 0.0, True, missing)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    clock = time.perf_counter  # deadlines are wall time, whatever clock the sides use
    start = clock()
    rounds, settled, longest = 0, False, 0.0
    while rounds < plan.max_rounds:
        if rounds >= plan.min_rounds:
            settled = not pairs or max(_widths(seconds, pairs)) <= plan.target
            if settled or (plan.deadline is not None and clock() + longest > plan.deadline):
                break
        began = clock()
        shift = rounds % len(names)
        for name in names[shift:] + names[:shift]:
            seconds[name].append(float(sides[name]()))
        longest = max(longest, clock() - began)
        rounds += 1
    else:
        settled = not pairs or max(_widths(seconds, pairs)) <= plan.target
    return Outcome(seconds, rounds, clock() - start, settled, missing)
