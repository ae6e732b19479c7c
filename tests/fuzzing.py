"""Helpers of the fuzzers (test_fuzz_api.py, test_fuzz_lifetime.py): run work in forked children;
and checks of arena blocks that the policy, huge-page and reliability tests share.

A crash (SIGSEGV, SIGBUS, abort) or a hang of numamap must never take pytest down with it, and
must be reported with the call that caused it: each batch of calls runs in a child made by
``os.fork()``, which reports one line per finished call through a pipe. Not a test module.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import select
import signal
import sys
import tempfile
import traceback
import warnings

import numpy as np

import numamap

MiB, GiB = 1 << 20, 1 << 30
SMALL_MAX = 256 << 10  # the largest small arena block
CALL_TIMEOUT = 30.0  # seconds one call may take before the child counts as hung
ADDRESS_LIMIT = 8 * GiB  # RLIMIT_AS headroom of a child, over what the parent has mapped
SHM_PREFIX = f"fuzz{os.getpid()}x"  # named sections of this run: /dev/shm/numamap.<prefix>*
#: What numamap documents that it raises for bad input or a system that cannot serve.
DOCUMENTED = (ValueError, TypeError, MemoryError, OSError, NotImplementedError, BufferError)


class Broken(AssertionError):
    """An invariant of a call's result does not hold."""


def expect(condition, message: str) -> None:
    if not condition:
        raise Broken(message)


def address_limit() -> int:
    """RLIMIT_AS for children: what this process maps now plus :data:`ADDRESS_LIMIT`, so a call
    that maps many GiB fails with MemoryError instead of touching a shared machine's memory."""
    with open("/proc/self/status") as handle:
        size = next(int(line.split()[1]) for line in handle if line.startswith("VmSize:"))
    return size * 1024 + ADDRESS_LIMIT


def _child(calls, execute, write_fd: int, limit: int | None) -> None:
    """Run in the forked child: one JSON line per call on ``write_fd``."""
    import resource  # POSIX only: this module must import on Windows too (the Wine tier)

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if limit is not None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
    warnings.simplefilter("ignore")
    for i, call in enumerate(calls):
        try:
            outcome = {"i": i, "ok": True, "what": execute(call)}
        except Broken as exc:
            outcome = {"i": i, "ok": False, "what": f"wrong result: {exc}"}
        except DOCUMENTED as exc:
            outcome = {"i": i, "ok": True, "what": type(exc).__name__}
        except BaseException as exc:  # noqa: BLE001 - every other exception is a finding
            outcome = {"i": i, "ok": False, "what": f"undocumented {type(exc).__name__}: {exc}"}
        os.write(write_fd, (json.dumps(outcome) + "\n").encode())
    sys.stdout.flush()


def run_forked(calls, execute, *, timeout: float = CALL_TIMEOUT, limit: int | None = None):
    """Run ``execute(call)`` for each call in one forked child.

    Returns ``(outcomes, problems)``: outcomes maps a call's index to its outcome (what
    ``execute`` returned, or the name of the documented exception); problems lists
    ``(index or None, text)`` for wrong results, undocumented exceptions, a crash (with the
    signal, at the call that was running), a hang, and anything printed on stdout.
    """
    read_fd, write_fd = os.pipe()
    stdout = tempfile.TemporaryFile()
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:
        status = 70
        try:
            os.close(read_fd)
            os.dup2(stdout.fileno(), 1)  # numamap must print nothing: the parent reads this file
            sys.stdout = open(1, "w", closefd=False)  # pytest's capture replaced sys.stdout
            _child(calls, execute, write_fd, limit)
            status = 0
        finally:
            os._exit(status)
    os.close(write_fd)
    buffer, outcomes, problems, hung = b"", {}, [], False
    try:
        while True:
            ready, _, _ = select.select([read_fd], [], [], timeout)
            if not ready:
                hung = True
                os.kill(pid, signal.SIGKILL)
                break
            chunk = os.read(read_fd, 65536)
            if not chunk:
                break
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                outcome = json.loads(line)
                outcomes[outcome["i"]] = outcome["what"]
                if not outcome["ok"]:
                    problems.append((outcome["i"], outcome["what"]))
    finally:
        os.close(read_fd)
        _, status = os.waitpid(pid, 0)
    current = len(outcomes)  # the call that was running when the child stopped
    if hung:
        problems.append((current, f"hang: no answer within {timeout:g} s"))
    elif os.WIFSIGNALED(status):
        problems.append((current, f"crash: killed by {signal.Signals(os.WTERMSIG(status)).name}"))
    elif os.WEXITSTATUS(status) != 0 or current < len(calls):
        problems.append((current, f"the child exited with status {os.WEXITSTATUS(status)}"))
    stdout.seek(0)
    printed = stdout.read()
    if printed:
        problems.append((None, f"printed on stdout: {printed[:200]!r}"))
    remove_named_sections()
    return outcomes, problems


def remove_named_sections() -> None:
    """Unlink the named sections this run's children left (a crashed child closes nothing)."""
    for entry in os.listdir("/dev/shm"):
        if entry.startswith(f"numamap.{SHM_PREFIX}"):
            try:
                os.unlink(os.path.join("/dev/shm", entry))
            except FileNotFoundError:
                pass


def show(value) -> str:
    """A value as a reproducer shows it."""
    if isinstance(value, type):
        return value.__name__
    if isinstance(value, np.ndarray):
        return f"<{value.dtype} array shape={value.shape} strides={value.strides}>"
    return repr(value)


def describe(call) -> str:
    """A ``(kind, params)`` call as a line that names everything needed to repeat it."""
    kind, params = call
    return f"{kind}({', '.join(f'{k}={show(v)}' for k, v in params.items())})"


class Findings:
    """Problems of a whole fuzzing run, each distinct one kept once with its first reproducer."""

    def __init__(self, execute, limit: int | None):
        self.execute, self.limit = execute, limit
        self.calls = 0
        self.outcomes: dict[str, int] = {}
        self.problems: dict[str, tuple[str, str]] = {}  # signature -> (reproducer, problem)
        self.counts: dict[str, int] = {}

    def record(self, calls, outcomes, problems) -> None:
        self.calls += len(outcomes)
        for what in outcomes.values():
            key = what if len(what) < 30 else "other"
            self.outcomes[key] = self.outcomes.get(key, 0) + 1
        for index, text in problems:
            call = calls[index] if index is not None and index < len(calls) else None
            kind = call[0] if call else "-"
            key = kind + ": " + re.sub(r"0x[0-9a-f]+|\d+", "N", text)[:120]  # numbers aside
            self.counts[key] = self.counts.get(key, 0) + 1
            if key in self.problems:
                continue
            if call is not None and text.startswith(("crash", "hang")):
                alone = run_forked([call], self.execute, limit=self.limit)[1]
                text += "; alone in a fresh child: " + ("the same" if alone else "no problem")
            self.problems[key] = (describe(call) if call else "(no single call)", text)

    def summary(self) -> str:
        ranked = dict(sorted(self.outcomes.items(), key=lambda kv: -kv[1]))
        return f"{self.calls} calls; outcomes: {ranked}"

    def report(self) -> str:
        lines = [f"{len(self.problems)} distinct problems in {self.calls} calls:"]
        lines += [f"- [{self.counts[key]}x] {text}\n    {call}" for key, (call, text) in self.problems.items()]
        return "\n".join(lines)


def class_size(nbytes: int) -> int:
    """The size class of a block of ``nbytes``: 16 to 128 by 16, then four classes per doubling."""
    if nbytes <= 128:
        return max(16, -(-nbytes // 16) * 16)
    power = 1 << ((nbytes - 1).bit_length() - 1)
    step = power // 4
    return power + -(-(nbytes - power) // step) * step


def assert_block(arr, node=0, *, kind=None):
    """``arr`` is a block a policy's handler took from the arena of ``node``, of the kind its
    size calls for (or ``kind``), with every page of its own byte range on ``node``."""
    info = numamap.block_info(arr)
    expected = kind or ("small" if arr.nbytes <= SMALL_MAX else "large")
    assert info is not None and info.kind == expected and info.node == node, info
    if info.kind == "small":  # size and length are the size class
        assert info.size == info.length == class_size(info.size) >= arr.nbytes, info
    else:  # a mapping of its own: whole pages, at least a size class
        assert info.length >= class_size(info.size) and info.size >= arr.nbytes, info
        assert info.length % info.page_size == 0 and address(arr) % info.page_size == 0, info
    assert address(arr) % 16 == 0
    if arr.nbytes:
        assert numamap.where(arr).fraction_on(node) == 1.0, numamap.where(arr)
    return info


def address(arr) -> int:
    return arr.__array_interface__["data"][0]


@contextlib.contextmanager
def arena_defaults():
    """The arenas' default decay and cache limit for the block (another test may have changed
    them), restored afterwards: reuse of freed blocks is asserted under these."""
    arenas = numamap.arenas
    before = dict(arenas._settings)
    arenas.configure_arenas(decay=arenas.DEFAULT_DECAY, cache_limit=arenas.DEFAULT_CACHE_LIMIT)
    try:
        yield
    finally:
        arenas.configure_arenas(decay=before["decay"], cache_limit=before["cache_limit"])


def in_child(body, timeout: float = 120.0) -> int:
    """Run ``body`` in a forked child; its wait status (exit 0 when ``body`` returned).

    A child still running after ``timeout`` seconds is killed (SIGKILL, which the status then
    shows): a hung child must never outlive the test, spinning on a CPU.
    """
    alive_r, alive_w = os.pipe()  # the child holds the write end: EOF here when it is gone
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 1
        try:
            os.close(alive_r)
            body()
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    os.close(alive_w)
    try:
        if not select.select([alive_r], [], [], timeout)[0]:
            os.kill(pid, signal.SIGKILL)
    finally:
        os.close(alive_r)
    return os.waitpid(pid, 0)[1]


def kill_on_timeout(pid: int, fd: int, timeout: float) -> bytes:
    """One byte from ``fd``, which child ``pid`` writes; b"" when it died first, and when it did
    not answer within ``timeout`` seconds (it is killed then, so that it never outlives us)."""
    if select.select([fd], [], [], timeout)[0]:
        return os.read(fd, 1)
    os.kill(pid, signal.SIGKILL)
    return b""
