"""The numamap command."""
import subprocess
import sys

import pytest

from numamap.cli import main

pytestmark = pytest.mark.linux


def test_info_prints_the_table(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:2] == ["node", "cpus"] and "THP:" in out


def test_check_passes_here(capsys):
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert "FAIL" not in out and "pass" in out and " 0 failed" in out


def test_python_dash_m_and_bad_command():
    done = subprocess.run([sys.executable, "-m", "numamap", "info"], capture_output=True, text=True)
    assert done.returncode == 0 and "node" in done.stdout
    bad = subprocess.run([sys.executable, "-m", "numamap", "nope"], capture_output=True, text=True)
    assert bad.returncode == 2 and "invalid choice" in bad.stderr and bad.stdout == ""
