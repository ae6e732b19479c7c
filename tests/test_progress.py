"""Feedback on long work: shown only when someone watches, only on standard error."""
import io

import pytest

import numamap
from numamap import progress, view


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_silent_when_output_is_not_interactive(monkeypatch, capsys):
    monkeypatch.delenv("NUMAMAP_PROGRESS", raising=False)
    monkeypatch.setattr(progress, "DELAY_SECONDS", 0.0)
    assert not progress.interactive()  # pytest captures: not a terminal
    with progress.Progress(100, "work") as bar:
        bar.advance(100)
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


def test_a_terminal_sees_a_bar_on_stderr_only(monkeypatch, capsys):
    terminal = _Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    monkeypatch.delenv("NUMAMAP_PROGRESS", raising=False)
    monkeypatch.setattr(progress, "DELAY_SECONDS", 0.0)
    with progress.Progress(4 << 20, "populating 4 MiB") as bar:
        bar.advance(2 << 20)
        assert "50%" in terminal.getvalue() and "2 MiB of 4 MiB" in terminal.getvalue()
        bar.advance(2 << 20)
    assert terminal.getvalue().endswith("\n") and "100%" in terminal.getvalue()
    assert capsys.readouterr().out == ""


def test_short_work_shows_nothing(monkeypatch):
    terminal = _Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    monkeypatch.setattr(progress, "DELAY_SECONDS", 3600.0)
    with progress.Progress(10, "quick") as bar:
        bar.advance(10)
    assert terminal.getvalue() == ""


@pytest.mark.numa_calls
def test_populate_reports_in_steps(monkeypatch):
    terminal = _Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    monkeypatch.setenv("NUMAMAP_PROGRESS", "1")
    monkeypatch.setattr(progress, "DELAY_SECONDS", 0.0)
    monkeypatch.setattr(view, "POPULATE_STEP", 1 << 20)
    a = numamap.zeros(4 << 20, dtype="u1", node=0, page_size="4K", populate=True)
    assert a.base.verified is True
    text = terminal.getvalue()
    assert text.count("populating 4 MiB on nodes [0]") >= 4 and "100%" in text


def test_steps_cover_the_work():
    assert list(progress.in_steps(10, 4)) == [(0, 4), (4, 4), (8, 2)]
    assert list(progress.in_steps(0, 4)) == []
