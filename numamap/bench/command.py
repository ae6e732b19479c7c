"""The ``numamap bench`` command: arguments checked, then the topology and the table."""
from __future__ import annotations

import os
import sys

from ..numa_topology import topology
from .runner import check_arguments, run
from .sampling import MIN_REPEAT


def check_output(path, option: str) -> None:
    """Refuse, before measuring, an output path the results could not be written to."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"{option} {path}: is a directory; name a file")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{option} {path}: the folder {folder} does not exist")
    target = path if os.path.exists(path) else folder
    if not os.access(target, os.W_OK):
        raise PermissionError(f"{option} {path}: {target} is not writable")


def _matplotlib_check() -> None:
    from ..plotting import _pyplot

    _pyplot()  # ImportError naming what to install


def main(args) -> int:
    """``numamap bench``: the topology, then the table on stdout (or JSON with ``--json -``).

    Everything that can be refused is refused before anything is printed or measured: the
    arguments, ``--reserve-hugepages`` without root, output paths, and ``--plot`` without
    matplotlib.
    """
    repeat = MIN_REPEAT if args.repeat is None else args.repeat
    budget = getattr(args, "budget", None)
    check_arguments(args.quick, args.size, repeat, args.reserve_hugepages, budget)
    json_to_stdout = args.json == "-"
    if args.json and not json_to_stdout:
        check_output(args.json, "--json")
    if args.plot:
        check_output(args.plot, "--plot")
        try:
            _matplotlib_check()
        except ImportError as exc:
            print(f"numamap bench: {exc}", file=sys.stderr)
            return 1
    if not json_to_stdout:
        print(topology(), flush=True)
        print(flush=True)
    results = run(quick=args.quick, size=args.size, repeat=repeat, budget=budget,
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
