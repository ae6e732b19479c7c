"""Run numpy's own test suites with numamap's NEP 49 handler installed for every allocation.

Usage::

    python -m numamap.testing.numpy_suites [--node N|none] [--suite NAME ...] [PYTEST ARGS ...]

The suites are numpy's installed ``test_multiarray.py``, ``test_mem_policy.py`` and
``test_umath.py`` (``numpy/_core/tests``; ``numpy/core/tests`` on numpy 1.x); ``--suite``
(repeatable: ``multiarray``, ``mem_policy``, ``umath``) runs some of them only, and any other
argument goes to pytest as it is (``-k``, ``-x``, ``-q``...). The exit status is pytest's.

What the run guarantees
-----------------------
- ``numamap.policy(node, min_size=0)`` is installed with :meth:`~numamap.memory_handler.Policy.install`
  in the main thread before pytest starts, so test collection (numpy's test modules allocate at
  import) and every test run under it.
- numpy keeps its handler in a context variable, and a new thread starts with an empty context,
  that is with numpy's default handler (Python 3.14 can make threads inherit the creator's
  context instead). So the plugin also installs the policy at the start of every thread started
  through :mod:`threading` (``Thread`` and its subclasses, ``concurrent.futures`` pools, timers),
  with :func:`threading.setprofile`: a one-shot hook that installs the policy as the thread's
  ``run()`` is called and removes itself. Threads started otherwise (``_thread.start_new_thread``,
  threads of C libraries that call into Python) keep numpy's default: no Python hook runs there.
- It checks, loudly: before the session and after it, that the current handler is numamap's
  (its name starts with ``numamap_``) and that arrays of several sizes allocated then are blocks
  of numamap's handler (:func:`numamap.handler_name` and :func:`numamap.block_info`); and around
  every test's call, in the test's own thread and context, that the handler is numamap's and a
  probe array gets it. A failed check fails the test (the handler is then installed again so the
  rest of the run stays under it) or, at the session's ends, the run (exit status 3 before it,
  1 after). Every thread that started under the hook checks its handler too, and the summary
  counts those threads.

Tests run with a difference
---------------------------
``numpy/_core/tests/test_mem_policy.py::test_thread_locality`` asserts that a new thread starts
with numpy's default handler (``default_allocator``): that is numpy's own context-variable
semantics, which the thread hook above deliberately overrides. The test runs, in full, with the
handler installed in its main thread; only the thread hook is off while it runs, so its two
threads start as numpy starts them.

Deselected tests
----------------
None: :data:`DESELECTED` is empty. The other tests of ``test_mem_policy`` that swap handlers
(``test_set_policy``, ``test_default_policy_singleton``, ``test_context_locality``) compare with
whatever handler was current when they started and restore it, so they pass under numamap's.
An entry would need an exact node id and a reason, printed in the summary; a test that fails
because numamap's handler has a bug is never deselected.

Requirements: pytest, hypothesis (numpy's conftest imports it), and for ``test_mem_policy``
meson, ninja and a C compiler (its fixture builds a small extension module with
``numpy.testing.extbuild``). meson installed in this interpreter's environment is found even when
that environment is not activated.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import sysconfig
import tempfile
import threading
from pathlib import Path

import pytest

SUITES = {"multiarray": "test_multiarray.py", "mem_policy": "test_mem_policy.py",
          "umath": "test_umath.py"}

#: node id -> why it cannot run with numamap's handler installed. Empty: see the module docstring.
DESELECTED: dict[str, str] = {}

#: node id (below the numpy package's parent) -> why its threads must start with numpy's default
#: handler: the thread hook is off while the test runs.
NUMPY_DEFAULT_IN_THREADS: dict[str, str] = {
    "numpy/_core/tests/test_mem_policy.py::test_thread_locality":
        "asserts numpy's own semantics: a new thread starts with numpy's default handler",
}

# Sizes of the arrays checked at the session's ends: empty, tiny, small size classes, large blocks.
_PROBE_BYTES = (0, 8, 16, 100, 8 << 10, 256 << 10, 800 << 10, 4 << 20)
_PREFIX = "numamap_"


class HandlerCheckError(AssertionError):
    """numamap's handler is not the one numpy uses, or an array did not get it."""


def numpy_tests_dir() -> Path:
    """The directory holding numpy's installed core test files (``_core/tests`` or ``core/tests``)."""
    spec = importlib.util.find_spec("numpy")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("numpy is not installed in this environment")
    package = Path(list(spec.submodule_search_locations)[0])
    for sub in ("_core/tests", "core/tests"):  # numpy 2.x, then 1.x
        if (package / sub / SUITES["multiarray"]).is_file():
            return package / sub
    raise FileNotFoundError(f"numpy at {package} has no test files (_core/tests/test_multiarray.py "
                            "or core/tests/test_multiarray.py): install a numpy that ships its tests")


def suite_files(names=tuple(SUITES)) -> list[Path]:
    """The installed test files of the suites ``names`` (keys of :data:`SUITES`)."""
    unknown = [name for name in names if name not in SUITES]
    if unknown:
        raise ValueError(f"suite: unknown {unknown}; choose from {sorted(SUITES)}")
    directory = numpy_tests_dir()
    files = [directory / SUITES[name] for name in names]
    missing = [str(path) for path in files if not path.is_file()]
    if missing:
        raise FileNotFoundError(f"numpy's test files are missing: {', '.join(missing)}")
    return files


def _numpy_relative(node_id: str) -> str:
    """A node id with the 1.x ``numpy/core/tests`` spelled as 2.x's ``numpy/_core/tests``."""
    return node_id.replace("numpy/core/tests/", "numpy/_core/tests/", 1)


class NumpyHandlerPlugin:
    """A pytest plugin: numamap's handler for every allocation of the session, checked.

    Parameters
    ----------
    node : int or None
        The policy's node (None: no binding, the kernel's placement).
    """

    def __init__(self, node: int | None = 0):
        import numamap

        self.policy = numamap.policy(node, min_size=0)
        self.name = self.policy.name
        self.checked_tests = 0
        self.threads_installed = 0
        self.thread_failures: list[str] = []
        self.failures: list[str] = []
        self.deselected: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._threads_on = True
        self.blocks: int | None = None

    # -- installing -------------------------------------------------------------------------------
    def install(self) -> None:
        """Install the policy in this thread and the hook that installs it in new threads."""
        self.policy.install()
        threading.setprofile(self._thread_hook)

    def uninstall(self) -> None:
        threading.setprofile(None)

    def _thread_hook(self, frame, event, arg):
        sys.setprofile(None)  # one shot: the thread runs unprofiled from here on
        if not self._threads_on:
            return
        try:
            self.policy.install()
            self.check("a thread started under the hook", probes=(64,))
        except BaseException as exc:  # reported at the session's end: a thread cannot fail a test
            with self._lock:
                self.thread_failures.append(f"{threading.current_thread().name}: {exc}")
            return
        with self._lock:
            self.threads_installed += 1

    # -- checking ---------------------------------------------------------------------------------
    def check(self, where: str, probes=(64,)) -> None:
        """Raise HandlerCheckError unless numamap's handler is current and ``probes`` get it."""
        import numpy as np
        import numamap

        current = numamap.handler_name()
        if current != self.name or not current.startswith(_PREFIX):
            raise HandlerCheckError(f"{where}: numpy's current handler is {current!r}, not numamap's "
                                    f"{self.name!r}")
        for nbytes in probes:
            probe = np.empty(nbytes, dtype=np.uint8)
            got = numamap.handler_name(probe)
            if not (got or "").startswith(_PREFIX):
                raise HandlerCheckError(f"{where}: an array of {nbytes} bytes was allocated by "
                                        f"{got!r}, not numamap's handler")
            if numamap.block_info(probe) is None:
                raise HandlerCheckError(f"{where}: an array of {nbytes} bytes named {got!r} is not "
                                        "a block numamap's handler knows (block_info is None)")

    def _check_or_reinstall(self, where: str) -> str | None:
        try:
            self.check(where)
        except HandlerCheckError as exc:
            self.policy.install()  # the rest of the run stays under numamap's handler
            return str(exc)
        return None

    def _blocks(self) -> int | None:
        """Blocks the handler has allocated so far, by its own count (None if it keeps none)."""
        stats = self.policy.stats()
        return stats.get("blocks", stats.get("mapped"))

    # -- pytest hooks -----------------------------------------------------------------------------
    def pytest_sessionstart(self, session):
        try:
            self.check("at the session's start", probes=_PROBE_BYTES)
        except HandlerCheckError as exc:
            pytest.exit(f"numamap.testing.numpy_suites: {exc}", returncode=3)

    def pytest_collection_modifyitems(self, session, config, items):
        keep, dropped = [], []
        for item in items:
            reason = DESELECTED.get(_numpy_relative(item.nodeid))
            if reason is None:
                keep.append(item)
            else:
                dropped.append(item)
                self.deselected.append((item.nodeid, reason))
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = keep

    @pytest.hookimpl(wrapper=True)
    def pytest_pyfunc_call(self, pyfuncitem):
        # Wraps the call of the test function itself, in its thread and context: the probes
        # here are allocated as the test's own arrays are.
        numpy_default = _numpy_relative(pyfuncitem.nodeid) in NUMPY_DEFAULT_IN_THREADS
        problem = self._check_or_reinstall(f"before {pyfuncitem.nodeid}")
        self._threads_on = not numpy_default
        try:
            result = yield
        finally:
            self._threads_on = True
        problem = problem or self._check_or_reinstall(f"after {pyfuncitem.nodeid}")
        with self._lock:
            self.checked_tests += 1
        if problem:
            self.failures.append(problem)
            raise HandlerCheckError(problem)
        return result

    def pytest_sessionfinish(self, session, exitstatus):
        try:
            self.check("at the session's end", probes=_PROBE_BYTES)
        except HandlerCheckError as exc:
            self.failures.append(str(exc))
        self.blocks = self._blocks()
        if self.blocks is not None and self.blocks < 2 * self.checked_tests:
            self.failures.append(f"the handler counts {self.blocks} blocks, fewer than the "
                                 f"{2 * self.checked_tests} probes of the tests alone")
        if self.thread_failures:
            self.failures.append(f"{len(self.thread_failures)} thread(s) did not get numamap's "
                                 f"handler: {self.thread_failures[:5]}")
        if self.failures and session.exitstatus == 0:
            session.exitstatus = 1

    def pytest_terminal_summary(self, terminalreporter):
        tr = terminalreporter
        tr.section("numamap handler", sep="-")
        tr.line(f"handler {self.name!r} (min_size=0) installed for the session; checked around "
                f"{self.checked_tests} test call(s); {self.threads_installed} thread(s) got it "
                f"at their start; {self.blocks} blocks allocated through it")
        for node_id, reason in NUMPY_DEFAULT_IN_THREADS.items():
            tr.line(f"threads start with numpy's default handler in {node_id}: {reason}")
        for node_id, reason in self.deselected:
            tr.line(f"deselected {node_id}: {reason}")
        for failure in self.failures:
            tr.line(f"HANDLER CHECK FAILED: {failure}", red=True, bold=True)


def _meson_on_path() -> None:
    """Put this environment's scripts directory (where pip puts meson) on PATH if meson is not."""
    import shutil

    if shutil.which("meson") is None:
        scripts = sysconfig.get_path("scripts")
        os.environ["PATH"] = scripts + os.pathsep + os.environ.get("PATH", "")


def _node(text: str):
    if text.lower() == "none":
        return None
    try:
        node = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--node: a node number or 'none', not {text!r}") from None
    if node < 0:
        raise argparse.ArgumentTypeError(f"--node: a node number >= 0 or 'none', not {node}")
    return node


def main(argv: list[str] | None = None, plugins=()) -> int:
    """Run the suites under numamap's handler; returns pytest's exit status.

    ``argv`` as on the command line (default ``sys.argv[1:]``); ``plugins`` are more pytest
    plugins for the session (tests of this module use one to break the handler on purpose).
    """
    parser = argparse.ArgumentParser(
        prog="python -m numamap.testing.numpy_suites", allow_abbrev=False,
        description="numpy's test_multiarray, test_mem_policy and test_umath with numamap's "
                    "NEP 49 handler installed for every allocation; other arguments go to pytest")
    parser.add_argument("--node", type=_node, default=0,
                        help="the policy's node, or 'none' for no binding (default 0)")
    parser.add_argument("--suite", action="append", choices=sorted(SUITES),
                        help="run this suite only (repeatable; default: all three)")
    options, pytest_args = parser.parse_known_args(argv)
    files = suite_files(options.suite or tuple(SUITES))
    numpy_dir = files[0].parent.parent.parent  # numpy/_core/tests/test_*.py
    package_parent = numpy_dir.parent
    _meson_on_path()
    try:
        plugin = NumpyHandlerPlugin(options.node)
    except (ValueError, OSError) as exc:  # a node this machine does not have, placement refused
        parser.error(f"--node {options.node}: {exc}")
    with tempfile.TemporaryDirectory(prefix="numamap-numpy-suites-") as tmp:
        # An empty ini of our own: the project's pyproject.toml (above .venv) must not apply its
        # addopts and testpaths to numpy's files. Node ids read numpy/_core/tests/...
        ini = Path(tmp) / "pytest.ini"
        ini.write_text("[pytest]\n")
        # An assertion that fails in a thread a test starts fails that test, not just warns.
        args = ["-c", str(ini), "--rootdir", str(package_parent), "--confcutdir", str(numpy_dir),
                "-p", "no:cacheprovider", "-W", "error::pytest.PytestUnhandledThreadExceptionWarning",
                *pytest_args, *map(str, files)]
        plugin.install()
        try:
            return int(pytest.main(args, plugins=[plugin, *plugins]))
        finally:
            plugin.uninstall()


if __name__ == "__main__":
    sys.exit(main())
