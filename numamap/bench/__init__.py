"""``numamap bench``: numamap against plain numpy on this machine, and both against its limit.

Every workload runs numpy and numamap alternately, round after round, in the same process, so
that both meet the same machine: a neighbour's burst slows the round it lands in, on both
sides. Rounds go on until each ratio is known to within about 10%, or the workload's share of
the time budget is spent. Every figure is a median with its 95% confidence interval (order
statistics: no assumption about the shape of the noise). Ratios are numamap over numpy, where
more than 1 means numamap did better (for times: numpy's time over numamap's), computed per
round and reported as the median of those; a ratio whose interval spans more than
:data:`STABLE_WIDTH` is not reported, and the row says "unstable". The copy limit is the best
of a C memcpy on every allowed CPU and of numpy's and numamap's own best copies in the same run,
so that it is never below either.

Python use::

    import numamap.bench

    results = numamap.bench.run(quick=True)   # a BenchResults; a table in notebooks
    print(results)                            # the same table as text, 100 columns wide
    results.row("gather").ratio               # numamap / numpy, or None when unstable
    results.to_json("bench.json")
    results.plot("bench.png")                 # needs matplotlib (the plot extra)

Nothing here writes to stdout; progress goes to stderr only when asked for (``progress=True``).
The modules: ``stats`` (medians and intervals), ``sampling`` (alternating rounds), ``results``
(rows and tables), ``machine`` (machine facts and the copy limit), ``pools`` (huge-page pools),
``pages`` (which pages an array got), one module per workload (``fill``, ``stream``,
``gather``, ``allocation``), ``runner`` (:func:`run`) and ``command`` (the CLI).
"""
from __future__ import annotations

from .allocation import small_array_loop
from .command import main
from .machine import last_level_cache, machine_limit
from .pages import numpy_base_pages
from .pools import HugePageReservation
from .results import BenchResults, Row
from .runner import run
from .sampling import MIN_REPEAT, Plan
from .stats import CONFIDENCE, STABLE_WIDTH, Measure, Ratio

__all__ = ["BenchResults", "CONFIDENCE", "HugePageReservation", "MIN_REPEAT", "Measure", "Plan",
           "Ratio", "Row", "STABLE_WIDTH", "last_level_cache", "machine_limit", "main",
           "numpy_base_pages", "run", "small_array_loop"]
