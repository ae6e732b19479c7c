"""Print tools/arena-candidates/run's results as markdown tables.

Usage: table.py RESULTS_TSV. Each table cell is the median over rounds of one round's median
ns per malloc+free pair. Run by the candidates' venv Python, so install sizes are read there.
"""

import statistics
import sys
from collections import defaultdict
from importlib import metadata

SIZES = (16, 16384, 262144, 2097152)
SIZE_NAMES = {16: "16 B", 16384: "16 KiB", 262144: "256 KiB", 2097152: "2 MiB"}
MODES = {
    "pair": "malloc then free at once, one byte written",
    "batch": "16 blocks live, then freed; one byte written per 4 KiB page",
}


def installed_size(name):
    """Bytes of the files a distribution installed (the numbers pip's RECORD lists)."""
    try:
        files = metadata.distribution(name).files or []
    except metadata.PackageNotFoundError:
        return None
    return sum(f.size or 0 for f in files)


def main(path):
    cells = defaultdict(list)
    order = []
    notes = set()
    with open(path, encoding="utf-8") as results:
        for line in results:
            fields = line.rstrip("\n").split("\t")
            if len(fields) > 1 and fields[1] == "#":
                notes.add(f"{fields[0]}: {' '.join(fields[2:-1])}")
                continue
            if len(fields) != 9:
                continue
            platform, variant, size, threads, mode, median = fields[:6]
            key = (platform, variant)
            if key not in order:
                order.append(key)
            cells[(platform, variant, int(size), int(threads), mode)].append(float(median))

    rounds = max((len(v) for v in cells.values()), default=0)
    print(f"ns per malloc+free pair, median of {rounds} round(s) x 9 repetitions\n")
    for platform in ("linux", "wine"):
        for threads in (1, 2):
            for mode, what in MODES.items():
                rows = []
                for plat, variant in order:
                    if plat != platform:
                        continue
                    values = [cells.get((plat, variant, s, threads, mode)) for s in SIZES]
                    if any(values):
                        rows.append((variant, values))
                if not rows:
                    continue
                print(f"### {platform}, {threads} thread(s), {mode}: {what}\n")
                print("| candidate | " + " | ".join(SIZE_NAMES[s] for s in SIZES) + " |")
                print("|---|" + "---:|" * len(SIZES))
                for variant, values in rows:
                    text = [f"{statistics.median(v):,.0f}" if v else "" for v in values]
                    print(f"| {variant} | " + " | ".join(text) + " |")
                print()
    for note in sorted(notes):
        print(f"- {note}")
    for name in ("umf", "tcmlib", "tbb", "cmeel-mimalloc", "numpy"):
        size = installed_size(name)
        if size is not None:
            print(f"- installed size of {name}: {size / 2**20:.1f} MiB")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: table.py RESULTS_TSV")
    main(sys.argv[1])
