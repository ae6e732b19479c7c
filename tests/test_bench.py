"""numamap bench: the table, JSON, the limit, plotting and quiet library functions.

Tiny sizes and no timing assertions: these check shapes and contracts, not speed.
"""
import contextlib
import io
import json
import math
import sys

import pytest

from numamap import bench
from numamap.cli import main

pytestmark = pytest.mark.linux

TINY = ["--quick", "--size", "4M"]
WORKLOADS = ["fill", "copy", "triad", "gather", "small-array loop"]


def _nr_hugepages():
    with open("/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages") as f:
        return f.read()


@pytest.fixture(scope="module")
def quiet_run():
    """One small run through the Python API, with everything it writes captured."""
    out, err, steps = io.StringIO(), io.StringIO(), []
    pools_before = _nr_hugepages()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        results = bench.run(quick=True, size="4M",
                            progress=lambda done, total, label: steps.append((done, total, label)))
    return results, out.getvalue(), err.getvalue(), steps, pools_before


def test_library_writes_nothing_and_changes_no_pool(quiet_run):
    results, out, err, steps, pools_before = quiet_run
    assert out == "" and err == ""
    assert steps and all(total == steps[0][1] for _, total, _ in steps)
    assert [done for done, _, _ in steps] == list(range(len(steps)))
    assert _nr_hugepages() == pools_before


def test_results_hold_every_workload_with_medians_and_spreads(quiet_run):
    results = quiet_run[0]
    names = [r.workload for r in results.rows]
    for name in WORKLOADS:
        assert name in names
    assert names.index("fill") < names.index("copy") < names.index("gather")
    for row in results.rows:
        assert row.numpy is not None and len(row.numpy.samples) >= bench.MIN_REPEAT
        assert row.numpy.low <= row.numpy.median <= row.numpy.high
        if row.numamap is not None:
            assert row.numamap.low <= row.numamap.median <= row.numamap.high
            assert row.ratio > 0
    assert results.row("copy").limit is not None and results.row("copy").of_limit > 0
    assert results.row("gather").limit is None


def test_html_and_json_of_results(quiet_run):
    results = quiet_run[0]
    page = results._repr_html_()
    assert page.count("<tr>") == len(results.rows) + 1 and "small-array loop" in page
    data = json.loads(results.to_json())
    assert data["repeat"] >= 5 and len(data["rows"]) == len(results.rows)
    assert str(results).splitlines()[1].split()[:2] == ["workload", "unit"]


def test_cli_prints_topology_then_table_and_writes_json(tmp_path, capsys):
    path = tmp_path / "bench.json"
    assert main(["bench", *TINY, "--json", str(path)]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0].split()[:2] == ["node", "cpus"]
    header = next(i for i, line in enumerate(lines) if line.startswith("workload"))
    for column in ("numpy", "numamap", "ratio", "limit", "note"):
        assert column in lines[header]
    rows = {line.split("  ")[0] for line in lines[header + 1:] if not line.startswith("note:")}
    for name in WORKLOADS:
        assert name in rows
    copy_line = next(line for line in lines if line.startswith("copy "))
    assert copy_line.count("(") >= 3  # numpy, numamap and the limit, each with its spread
    # Progress went to stderr (plain lines: not a terminal), never to stdout.
    assert "numamap bench: [1/" in captured.err and "numamap bench: [" not in captured.out

    data = json.loads(path.read_text())  # strict JSON: no NaN
    assert data["size"] == 4 << 20 and data["repeat"] == 5 and data["quick"] is True
    by_name = {r["workload"]: r for r in data["rows"]}
    for name in WORKLOADS:
        numpy = by_name[name]["numpy"]
        assert numpy["min"] <= numpy["median"] <= numpy["max"] and len(numpy["samples"]) == 5
        assert numpy["spread"] >= 0
    assert by_name["copy"]["limit"]["max"] > 0


def test_cli_json_dash_is_json_on_stdout(capsys):
    assert main(["bench", *TINY, "--json", "-"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {"rows", "topology", "machine", "date"} <= set(data)


@pytest.mark.parametrize("repeat", ["4", "1", "0"])
def test_repeat_below_five_is_refused(repeat, capsys):
    assert main(["bench", *TINY, "--repeat", repeat]) == 1
    captured = capsys.readouterr()
    assert "at least 5" in captured.err and captured.out == ""  # refused before measuring
    with pytest.raises(ValueError, match="at least 5"):
        bench.run(quick=True, size="4M", repeat=int(repeat))


def test_machine_limit_is_positive():
    limit = bench.machine_limit(8 << 20, repeat=5)
    assert len(limit.samples) == 5 and all(s > 0 and math.isfinite(s) for s in limit.samples)
    assert limit.best == max(limit.samples) > 0
    one = bench.machine_limit(2 << 20, repeat=5, cpus=[sorted(bench._allowed_cpus())[0]])
    assert one.best > 0


def test_machine_limit_reports_a_cpu_it_cannot_use():
    with pytest.raises(OSError):
        bench.machine_limit(2 << 20, repeat=5, cpus=[4095])


def _synthetic():
    m = bench.Measure.of([1.0, 2.0, 3.0, 4.0, 5.0])
    rows = [bench.Row("copy", "GB/s", m, bench.Measure.of([2.0] * 5), m),
            bench.Row("small-array loop", "ns/iter", m, None, higher_is_better=False,
                      note="numamap.policy is not available")]
    return bench.BenchResults(rows=rows, topology="", size=1 << 20, repeat=5, quick=True,
                              date="2026-11-22T00:00:00", machine={})


def _hide_matplotlib(monkeypatch):
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends",
                 "matplotlib.backends.backend_agg", "matplotlib.pyplot"):
        monkeypatch.setitem(sys.modules, name, None)  # import raises ImportError


def test_plot_without_matplotlib_says_what_to_install(monkeypatch, tmp_path, capsys):
    _hide_matplotlib(monkeypatch)
    with pytest.raises(ImportError, match=r"pip install numamap\[plot\]"):
        _synthetic().plot(tmp_path / "x.png")
    # The command refuses before measuring anything.
    assert main(["bench", *TINY, "--plot", str(tmp_path / "x.png")]) == 1
    captured = capsys.readouterr()
    assert "pip install numamap[plot]" in captured.err and captured.out == ""
    assert not (tmp_path / "x.png").exists()


def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "ratios.png"
    fig = _synthetic().plot(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and fig is not None


def test_ratio_is_numamap_over_numpy_for_rates_and_times():
    fast, slow = bench.Measure.of([2.0] * 5), bench.Measure.of([1.0] * 5)
    assert bench.Row("r", "GB/s", slow, fast).ratio == 2.0
    assert bench.Row("t", "ns", slow, fast, higher_is_better=False).ratio == 0.5
    assert bench.Row("x", "GB/s", slow, None).ratio is None


def test_hugepage_reservation_needs_root(monkeypatch):
    import os

    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    reservation = bench.HugePageReservation(2 << 20, 10 ** 6)  # more than any pool has free
    with pytest.raises(PermissionError, match="root"):
        reservation.reserve()
    with pytest.raises(PermissionError, match="root"):
        bench.run(quick=True, size="4M", reserve_hugepages=True)


def test_library_functions_print_nothing(capfd):
    bench.last_level_cache()
    bench.machine_limit(2 << 20, repeat=5)
    bench.small_array_loop(10)
    arr = bench.numpy_base_pages(1 << 20)
    arr.fill(1.0)
    str(_synthetic())
    _synthetic()._repr_html_()
    captured = capfd.readouterr()
    assert captured.out == "" and captured.err == ""
