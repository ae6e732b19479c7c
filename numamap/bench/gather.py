"""Random gather: reads scattered over a big array, where the page size decides the TLB misses."""
from __future__ import annotations

import numpy as np

from .._units import format_bytes
from ..arrays import empty
from .pages import numpy_base_pages, page_kind
from .pools import pool_note
from .results import Row
from .sampling import Plan, alternate, timed


def gather_rows(n: int, gathers: int, plan: Plan) -> list[Row]:
    """Rows 'gather' (numamap against ``np.ones``) and 'gather vs 4K pages', from the same rounds."""
    rng = np.random.default_rng(12345)
    index = rng.integers(0, n, size=min(gathers, n), dtype=np.int64)
    out = np.empty(index.size)
    arrays: dict[str, np.ndarray] = {}

    def side(name: str, make):
        def run() -> float:
            if name not in arrays:  # made at the warm-up, kept for every round
                arrays[name] = make()
                arrays[name].fill(1.0)
            return timed(lambda: np.take(arrays[name], index, out=out, mode="clip"))
        return run

    sides = {"numpy": side("numpy", lambda: np.ones(n)),
             "numpy 4K": side("numpy 4K", lambda: numpy_base_pages(n)),
             "numamap": side("numamap", lambda: empty(n))}
    result = alternate(sides, [("numpy", "numamap"), ("numpy 4K", "numamap")], plan)
    got = page_kind(arrays["numamap"]) if "numamap" in arrays else "-"
    arrays.clear()
    million = index.size / 1e6
    rate = lambda name: result.measure(name, million, 1.0)  # noqa: E731 - M/s
    pools = "" if "hugetlb" in got else f"; {pool_note()}"
    missing = "".join(f"; {name} not measured: {why}" for name, why in result.missing.items())
    what = f"{million:.0f} M random 8-byte reads (np.take) over {format_bytes(n * 8)}"
    return [
        Row("gather", "M/s", rate("numpy"), rate("numamap"), name=f"gather: {got} vs np.ones",
            numpy_does="np.take on np.ones", numamap_does="np.take on numamap.empty",
            rounds=result.describe(), note=f"{what}; numamap on {got}{pools}{missing}"),
        Row("gather vs 4K pages", "M/s", rate("numpy 4K"), rate("numamap"),
            name=f"gather: {got} vs 4K pages", numpy_does="np.take on np.empty kept on 4 KiB pages",
            numamap_does="np.take on numamap.empty",
            note=f"numpy column: np.empty kept on 4 KiB pages{missing}"),
    ]
