"""The numamap command."""
import subprocess
import sys

import pytest

import numamap
from numamap.cli import main
from test_topology import empty_node_directory, make_tree

pytestmark = pytest.mark.linux


def test_info_prints_the_table(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:2] == ["node", "cpus"] and "THP:" in out


def test_check_passes_here(capsys):
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert "FAIL" not in out and "pass" in out and " 0 failed" in out


@pytest.mark.numa_calls
def test_check_strict_passes_where_no_call_is_refused(capsys):
    assert main(["check", "--strict"]) == 0  # the container tier checks the findings
    assert "finding" not in capsys.readouterr().out


def test_python_dash_m_and_bad_command():
    done = subprocess.run([sys.executable, "-m", "numamap", "info"], capture_output=True, text=True)
    assert done.returncode == 0 and "node" in done.stdout
    bad = subprocess.run([sys.executable, "-m", "numamap", "nope"], capture_output=True, text=True)
    assert bad.returncode == 2 and "invalid choice" in bad.stderr and bad.stdout == ""


def test_check_fails_when_it_checked_nothing(tmp_path, monkeypatch, capsys):
    from numamap import check, cli

    # nodes listed, none with memory: there is nothing to allocate on
    tree = make_tree(tmp_path / "cpus-only", {0: ("0-1", 0), 1: ("2-3", 0)})
    monkeypatch.setattr(check, "topology", lambda: numamap.topology(tree))
    results = check.run_check()
    assert [r.passed for r in results] == [False]
    assert "nothing was checked" in results[0].detail and "no node with memory" in results[0].detail
    assert cli.main(["check"]) == 1
    out = capsys.readouterr().out
    assert "0 passed, 1 failed" in out and "nothing was checked" in out


def test_check_with_an_empty_node_directory_checks_node_0(tmp_path, monkeypatch, capsys):
    from numamap import check, cli

    tree = empty_node_directory(tmp_path)
    monkeypatch.setattr(check, "topology", lambda: numamap.topology(tree))
    assert cli.main(["check"]) == 0
    out = capsys.readouterr().out
    assert " 0 failed" in out and "pass" in out and "nothing was checked" not in out
