"""numamap bench: statistics, alternating rounds, the table, JSON, the limit, the command.

Tiny sizes and short budgets, and no timing assertions: these check shapes and contracts, not
speed. The statistics are checked on made-up samples.
"""
import contextlib
import io
import itertools
import json
import math
import os
import re
import signal
import subprocess
import sys
import textwrap

import pytest

from numamap import bench
from numamap._backend import backend
from numamap.bench import allocation, sampling, stats
from numamap.cli import main
from numamap.plotting import INSTALL_HINT

TINY = ["--quick", "--size", "4M", "--budget", "3"]
WORKLOADS = ["fill", "fill vs 4K pages", "copy", "triad", "gather", "gather vs 4K pages",
             "small-array loop", "allocate 16 KiB", "allocate 64 MiB", "a*b+d 256 KiB", "a*b+d 2 MiB",
             "a*b+d 16 MiB", "a*b+d 128 MiB", "allocate in threads"]
HUGE_2M = "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"

linux = pytest.mark.linux


def _nr_hugepages():
    with open(HUGE_2M) as f:
        return f.read()


def _tiny_run(**kwargs):
    return bench.run(quick=True, size="4M", budget=3, **kwargs)


@pytest.fixture(scope="module")
def quiet_run():
    """One small run through the Python API, with everything it writes captured."""
    out, err, steps = io.StringIO(), io.StringIO(), []
    pools_before = _nr_hugepages()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        results = _tiny_run(progress=lambda done, total, label: steps.append((done, total, label)))
    return results, out.getvalue(), err.getvalue(), steps, pools_before


# -- statistics ----------------------------------------------------------------------------------

def _coverage(n, lo, hi):
    """P(x(lo) <= median <= x(hi)), 0-based ranks, by counting sign patterns."""
    return sum(math.comb(n, j) for j in range(lo + 1, hi + 1)) / 2 ** n


@pytest.mark.parametrize("n", [1, 2, 5, 6, 9, 16, 30, 101])
def test_median_interval_is_the_narrowest_that_covers(n):
    lo, hi, coverage = stats.median_interval(n)
    assert lo + hi == n - 1 and 0 <= lo <= hi < n  # symmetric order statistics
    assert coverage == pytest.approx(_coverage(n, lo, hi))
    if n >= 6:
        assert coverage >= stats.CONFIDENCE
        assert _coverage(n, lo + 1, hi - 1) < stats.CONFIDENCE  # one rank narrower falls short
    else:
        assert (lo, hi) == (0, n - 1)  # too few samples for 95%: the extremes


def test_best_is_fastest_for_times_and_highest_for_rates():
    samples = [5.0, 1.0, 3.0, 2.0, 4.0]
    assert stats.Measure.of(samples).best == 5.0
    assert stats.Measure.of(samples, higher_is_better=False).best == 1.0
    m = stats.Measure.of(samples)
    assert (m.low, m.median, m.high) == (1.0, 3.0, 5.0)
    assert m.ci_low <= m.median <= m.ci_high and m.samples == tuple(samples)


def test_ratio_is_per_round_and_numamap_better_above_one():
    slow = stats.Measure.of([1.0, 2.0, 4.0, 8.0, 16.0])
    fast = stats.Measure.of([2.0, 4.0, 8.0, 16.0, 32.0])  # twice as fast in every round
    assert stats.Ratio.paired(slow, fast).median == 2.0
    assert stats.Ratio.paired(slow, fast).width == 1.0  # the machine's drift cancels out
    times_numpy = stats.Measure.of([1.0] * 5, higher_is_better=False)
    times_numamap = stats.Measure.of([2.0] * 5, higher_is_better=False)
    assert stats.Ratio.paired(times_numpy, times_numamap).median == 0.5
    with pytest.raises(ValueError, match="paired"):
        stats.Ratio.paired(slow, stats.Measure.of([1.0] * 4))


def test_an_unstable_row_has_no_ratio_and_says_why():
    numpy = bench.Measure.of([1.0] * 7)
    wild = bench.Measure.of([0.5, 2.0, 0.6, 1.9, 0.7, 1.8, 1.0])
    row = bench.Row("fill", "GB/s", numpy, wild, name="fill: THP vs np.zeros")
    assert row.stable is False and row.ratio is None and row.ratio_range is None
    assert row.paired.median == 1.0
    assert row.cells()[4] == "unstable" and "ratio unstable" in row.notes()
    steady = bench.Row("fill", "GB/s", numpy, bench.Measure.of([2.0] * 7))
    assert steady.stable and steady.ratio == 2.0 and steady.ratio_range == (2.0, 2.0)
    assert bench.Row("x", "GB/s", numpy, None).ratio is None


def test_the_limit_is_never_below_either_side():
    limit = bench.Measure.of([10.0] * 5)
    numpy = bench.Measure.of([11.0, 12.0, 12.5, 12.0, 11.5])
    row = bench.Row("copy", "GB/s", numpy, bench.Measure.of([9.0] * 5), limit)
    assert row.limit_best == 12.5 and row.limit_by == "numpy"
    assert row.of_limit == pytest.approx(9.0 / 12.5)
    times = bench.Row("allocate 64 MiB", "us", bench.Measure.of([3.0] * 5, higher_is_better=False),
                      bench.Measure.of([50.0] * 5, higher_is_better=False),
                      bench.Measure.of([4.0, 5.0, 6.0, 5.0, 5.0], higher_is_better=False),
                      higher_is_better=False)
    assert times.limit_best == 3.0 and times.of_limit == pytest.approx(3.0 / 50.0)


# -- alternating rounds --------------------------------------------------------------------------

def test_rounds_alternate_the_order_and_warm_up_once():
    calls = []

    def side(name, seconds):
        def run():
            calls.append(name)
            return seconds
        return run

    out = sampling.alternate({"a": side("a", 1.0), "b": side("b", 1.0)}, [("a", "b")],
                             sampling.Plan(min_rounds=5))
    assert calls[:2] == ["a", "b"]  # the warm-ups
    rounds = [tuple(calls[i:i + 2]) for i in range(2, len(calls), 2)]
    assert rounds[:4] == [("a", "b"), ("b", "a"), ("a", "b"), ("b", "a")]
    assert out.rounds == 5 and out.settled  # identical times: settled at the minimum
    assert out.seconds == {"a": [1.0] * 5, "b": [1.0] * 5}


def test_rounds_go_on_until_the_ratio_settles():
    noise = itertools.cycle([1.0, 1.6, 0.7, 1.3, 0.8, 1.0])
    steady = itertools.cycle([1.0])
    out = sampling.alternate({"a": lambda: next(steady), "b": lambda: next(noise)}, [("a", "b")],
                             sampling.Plan(min_rounds=5, max_rounds=40))
    assert out.rounds == 40 and not out.settled  # never narrower than 1.10: stops at the cap


def test_rounds_stop_at_the_deadline_after_the_minimum():
    noise = itertools.cycle([1.0, 3.0])
    out = sampling.alternate({"a": lambda: 1.0, "b": lambda: next(noise)}, [("a", "b")],
                             sampling.Plan(min_rounds=6, deadline=0.0))
    assert out.rounds == 6 and not out.settled and "time limit" in out.describe()


def test_a_side_the_platform_lacks_is_left_out_with_its_reason():
    def missing():
        raise NotImplementedError("no such thing here")

    out = sampling.alternate({"a": lambda: 1.0, "b": missing}, [("a", "b")], sampling.Plan())
    assert out.missing == {"b": "no such thing here"} and out.measure("b") is None
    assert len(out.seconds["a"]) == sampling.MIN_REPEAT


# -- a real run ----------------------------------------------------------------------------------

@linux
def test_library_writes_nothing_and_changes_no_pool(quiet_run):
    results, out, err, steps, pools_before = quiet_run
    assert out == "" and err == ""
    assert steps and all(total == steps[0][1] for _, total, _ in steps)
    assert [done for done, _, _ in steps] == list(range(len(steps)))
    assert _nr_hugepages() == pools_before


@linux
def test_results_hold_every_workload_with_paired_medians(quiet_run):
    results = quiet_run[0]
    assert [r.workload for r in results.rows] == WORKLOADS
    for row in results.rows:
        assert row.numpy is not None and row.numamap is not None, row.notes()
        assert len(row.numpy.samples) == len(row.numamap.samples) >= bench.MIN_REPEAT
        for m in (row.numpy, row.numamap):
            assert m.low <= m.ci_low <= m.median <= m.ci_high <= m.high
        if row.stable:
            low, high = row.ratio_range
            assert 0 < low <= row.ratio <= high and high / low <= bench.STABLE_WIDTH
        else:
            assert row.ratio is None and "unstable" in row.notes()
    for name in ("copy", "triad"):
        row = results.row(name)
        assert row.limit is not None and row.limit_best >= row.numpy.best
        assert 0 < row.of_limit <= 1
    assert results.row("gather").limit is None


@linux
def test_the_table_fits_100_columns_and_names_what_each_ratio_compares(quiet_run):
    results = quiet_run[0]
    text = results.table()
    assert max(len(line) for line in text.splitlines()) <= 100
    assert "fill: " in text and " vs 4K pages" in text and "NodePool vs 1 thread" in text
    header = next(line for line in text.splitlines() if line.startswith("row"))
    for column in ("numpy", "numamap", "ratio", "limit"):
        assert column in header


@linux
def test_html_and_json_of_results(quiet_run):
    results = quiet_run[0]
    page = results._repr_html_()
    assert page.count("<tr>") == len(results.rows) + 1 and "small arrays" in page
    data = json.loads(results.to_json())
    assert data["repeat"] >= 5 and len(data["rows"]) == len(results.rows)
    for row in data["rows"]:
        assert (row["ratio"] is None) == (row["stable"] is not True)
        assert row["numpy"]["ci"][0] <= row["numpy"]["median"] <= row["numpy"]["ci"][1]


@linux
def test_cli_prints_topology_then_table_and_writes_json(tmp_path, capsys):
    path = tmp_path / "bench.json"
    assert main(["bench", *TINY, "--json", str(path)]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0].split()[:2] == ["node", "cpus"]
    header = next(i for i, line in enumerate(lines) if line.startswith("row"))
    assert all(len(line) <= 100 for line in lines[header - 3:])
    # Progress went to stderr (plain lines: not a terminal), never to stdout.
    assert "numamap bench: [1/" in captured.err and "numamap bench: [" not in captured.out

    data = json.loads(path.read_text())  # strict JSON: no NaN
    assert data["size"] == 4 << 20 and data["repeat"] == 5 and data["quick"] is True
    assert [r["workload"] for r in data["rows"]] == WORKLOADS
    copy = data["rows"][WORKLOADS.index("copy")]
    assert copy["limit_best"] >= copy["numpy"]["best"]


@linux
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
        _tiny_run(repeat=int(repeat))


@pytest.mark.parametrize("where", ["missing folder", "a folder"])
def test_json_path_is_checked_before_the_run(where, tmp_path, capsys, monkeypatch):
    path = tmp_path / "no" / "such" / "bench.json" if where == "missing folder" else tmp_path
    monkeypatch.setattr(bench.command, "run", lambda **kw: pytest.fail("measured anyway"))
    assert main(["bench", *TINY, "--json", str(path)]) == 1
    captured = capsys.readouterr()
    assert "--json" in captured.err and captured.out == ""


def test_reserve_hugepages_as_non_root_fails_before_printing(monkeypatch, capsys):
    monkeypatch.setattr(os, "geteuid", lambda: 1000, raising=False)
    monkeypatch.setattr(bench.command, "run", lambda **kw: pytest.fail("measured anyway"))
    assert main(["bench", *TINY, "--reserve-hugepages"]) == 1
    captured = capsys.readouterr()
    assert "needs root" in captured.err and captured.out == ""


@linux
def test_machine_limit_is_positive():
    limit = bench.machine_limit(8 << 20, repeat=5)
    assert len(limit.samples) == 5 and all(s > 0 and math.isfinite(s) for s in limit.samples)
    assert limit.best == max(limit.samples) > 0
    one = bench.machine_limit(2 << 20, repeat=5, cpus=[sorted(backend.allowed_cpus())[0]])
    assert one.best > 0


@linux
def test_machine_limit_reports_a_cpu_it_cannot_use():
    with pytest.raises((ValueError, OSError)):
        bench.machine_limit(2 << 20, repeat=5, cpus=[4095])


# -- what a platform lacks ---------------------------------------------------------------------

@linux
def test_rows_say_what_the_platform_lacks(monkeypatch):
    """As on Windows: no copy limit, no map/unmap limit and no numamap.policy, and no crash."""
    def lacks(what):
        def refuse(*args, **kwargs):
            raise NotImplementedError(f"{what} is not available on this platform")
        return refuse

    monkeypatch.setattr(backend, "copy_bandwidth", lacks("copy_bandwidth"))
    monkeypatch.setattr(backend, "map_unmap_cost", lacks("map_unmap_cost"))
    monkeypatch.setattr(allocation, "policy", lacks("numamap.policy"))
    results = _tiny_run()
    assert [r.workload for r in results.rows] == WORKLOADS
    loop = results.row("small-array loop")
    assert loop.numamap is None and loop.ratio is None and loop.numpy is not None
    assert "numamap.policy is not available" in loop.notes()
    for name in ("copy", "triad"):
        assert results.row(name).limit is None and results.row(name).of_limit is None
    assert "copy_bandwidth is not available" in results.row("copy").notes()
    large = results.row("allocate 64 MiB")
    assert large.limit is None and "map_unmap_cost is not available" in large.notes()
    assert large.ratio is None or large.ratio > 0  # numpy and numamap still measured
    assert "small arrays: policy vs default" in results.table()
    json.loads(results.to_json())


# -- huge pages ----------------------------------------------------------------------------------

@linux
def test_hugepage_reservation_needs_root(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000, raising=False)
    reservation = bench.HugePageReservation(2 << 20, 10 ** 6)  # more than any pool has free
    if backend.hugepage_pool(2 << 20, None) is None:
        pytest.skip("this system has no 2 MiB hugetlb pool")
    with pytest.raises(PermissionError, match="root"):
        reservation.reserve()
    with pytest.raises(PermissionError, match="root"):
        _tiny_run(reserve_hugepages=True)


@linux
def test_sigterm_puts_the_pool_back(tmp_path):
    if not os.access(HUGE_2M, os.W_OK) or os.geteuid() != 0:
        pytest.skip(f"needs root to grow the 2 MiB pool ({HUGE_2M}): the host tier runs as root in CI")
    pool = backend.hugepage_pool(2 << 20, None)
    before = _nr_hugepages()
    child = textwrap.dedent(f"""
        import signal, sys
        from numamap.bench import HugePageReservation
        with HugePageReservation({2 << 20}, {pool.free + 1}):
            print("reserved", flush=True)
            signal.pause()
        """)
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        if line.strip() != "reserved":
            proc.wait()
            pytest.skip("the kernel could not find one more 2 MiB page (memory fragmented)")
        assert int(_nr_hugepages()) == int(before) + 1
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == -signal.SIGTERM  # it still dies of the signal
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert _nr_hugepages() == before


# -- plots and quiet functions -------------------------------------------------------------------

def _synthetic():
    m = bench.Measure.of([1.0, 2.0, 3.0, 4.0, 5.0])
    rows = [bench.Row("copy", "GB/s", m, bench.Measure.of([2.0, 4.0, 6.0, 8.0, 10.0]), m),
            bench.Row("small-array loop", "ns", m, None, higher_is_better=False,
                      note="numamap.policy is not available")]
    return bench.BenchResults(rows=rows, topology="", size=1 << 20, repeat=5, quick=True,
                              date="2026-11-22T00:00:00", machine={})


def _hide_matplotlib(monkeypatch):
    for name in list(sys.modules):
        if name == "matplotlib" or name.startswith("matplotlib."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import raises ImportError
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)


def test_plot_without_matplotlib_says_what_to_install(monkeypatch, tmp_path, capsys):
    _hide_matplotlib(monkeypatch)
    with pytest.raises(ImportError, match=re.escape(INSTALL_HINT)):
        _synthetic().plot(tmp_path / "x.png")
    # The command refuses before measuring anything.
    monkeypatch.setattr(bench.command, "run", lambda **kw: pytest.fail("measured anyway"))
    assert main(["bench", *TINY, "--plot", str(tmp_path / "x.png")]) == 1
    captured = capsys.readouterr()
    assert INSTALL_HINT in captured.err and captured.out == ""
    assert not (tmp_path / "x.png").exists()


@linux
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


@pytest.mark.windows
def test_bench_runs_on_windows():
    """The Windows tier: rows whose feature Windows lacks say so, and nothing crashes."""
    results = _tiny_run()
    assert [r.workload for r in results.rows] == WORKLOADS
    loop = results.row("small-array loop")  # numamap.policy works on Windows too (the arena DLL)
    assert loop.numpy is not None and loop.numamap is not None, loop.notes()
    churn = results.row("allocate in threads")  # its native threads are Linux C (pthreads)
    assert churn.numpy is None and churn.numamap is None and "pthreads" in churn.notes()
    assert results.row("copy").limit is None and "memcpy limit not measured" in results.row("copy").notes()
    for row in results.rows:
        if row.workload != "allocate in threads":
            assert row.numpy is not None and row.numamap is not None, row.notes()
    assert max(len(line) for line in results.table().splitlines()) <= 100
    json.loads(results.to_json())
