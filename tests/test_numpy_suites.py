"""numamap.testing.numpy_suites: numpy's own tests under numamap's handler (host tier, a subset).

The whole run (test_multiarray, test_mem_policy, test_umath) is a CI step of its own; here
numpy's ``test_mem_policy`` runs in a subprocess, which is the suite that swaps handlers and
builds an extension module, and the runner's checks are shown to fail when the handler is not
numamap's.
"""
import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = [pytest.mark.linux, pytest.mark.numa_calls,  # the runner checks a placing handler
              pytest.mark.skipif(not sys.platform.startswith("linux"),
                                 reason="needs the Linux backend: runs in the host and multi-node tiers")]

RUNNER = "numamap.testing.numpy_suites"


def run(*args: str, code: str | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", code] if code else [sys.executable, "-m", RUNNER]
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run([*command, *args], capture_output=True, text=True, env=env, timeout=600)


def test_numpy_mem_policy_suite_passes_under_numamaps_handler():
    done = run("--suite", "mem_policy", "-q", "-rs")
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    assert " passed" in out and " failed" not in out and " error" not in out, out[-4000:]
    assert "handler 'numamap_node0' (min_size=0) installed for the session" in out, out[-4000:]
    assert "HANDLER CHECK FAILED" not in out, out[-4000:]
    # the suite's own handler swaps ran, and the runner checked around each of them
    assert "checked around 0 test" not in out, out[-4000:]


def test_thread_locality_test_sees_numpy_default_in_its_threads_only():
    done = run("--suite", "mem_policy", "-q", "-k", "test_thread_locality or test_context_locality")
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    assert "2 passed" in out, out[-4000:]
    assert "threads start with numpy's default handler in numpy/_core/tests/test_mem_policy.py::" \
           "test_thread_locality" in out, out[-4000:]


def test_threads_started_during_a_test_get_the_handler():
    code = textwrap.dedent("""
        import sys, threading
        import numpy as np
        import numamap
        from numamap.testing import numpy_suites

        seen = []

        class StartsAThread:
            def pytest_runtest_call(self, item):
                def work():
                    seen.append((numamap.handler_name(), numamap.handler_name(np.ones(3))))
                thread = threading.Thread(target=work)
                thread.start()
                thread.join()

        status = numpy_suites.main(sys.argv[1:], plugins=[StartsAThread()])
        print("threads saw", sorted(set(seen)), file=sys.stderr)
        sys.exit(status)
    """)
    done = run("--suite", "mem_policy", "-q", "-k", "test_policy_propagation", code=code)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    assert "threads saw [('numamap_node0', 'numamap_node0')]" in out, out[-4000:]
    assert "1 thread(s) got it at their start" in out, out[-4000:]


# The runner must fail loudly, not pass quietly, when numpy is not using numamap's handler.
_BROKEN = textwrap.dedent("""
    import sys
    from numamap import memory_handler
    from numamap.testing import numpy_suites

    default = memory_handler._c_api().get_handler()  # numpy's default, before the runner installs

    class Sabotage:
        def pytest_runtest_call(self, item):
            if item.name == "test_policy_propagation":
                memory_handler._c_api().set_handler(default)

    sys.exit(numpy_suites.main(sys.argv[1:], plugins=[Sabotage()]))
""")


def test_a_test_left_under_numpys_default_handler_fails_the_run():
    done = run("--suite", "mem_policy", "-q", "-k", "test_policy_propagation or test_owner_is_base",
               code=_BROKEN)
    out = done.stdout + done.stderr
    assert done.returncode == 1, out[-4000:]
    assert "1 failed, 1 passed" in out, out[-4000:]
    assert "HandlerCheckError" in out and "'default_allocator', not numamap's" in out, out[-4000:]
    assert "HANDLER CHECK FAILED" in out, out[-4000:]


def test_a_session_without_the_handler_stops_before_any_test():
    code = textwrap.dedent("""
        import sys
        from numamap.testing import numpy_suites

        numpy_suites.NumpyHandlerPlugin.install = lambda self: None  # forget to install it
        sys.exit(numpy_suites.main(sys.argv[1:]))
    """)
    done = run("--suite", "mem_policy", "-q", code=code)
    out = done.stdout + done.stderr
    assert done.returncode == 3, out[-4000:]
    assert "at the session's start: numpy's current handler is 'default_allocator'" in out, out[-4000:]
    assert " passed" not in out, out[-4000:]


def test_bad_arguments_are_refused_with_the_option_named():
    done = run("--node", "-1")
    assert done.returncode == 2
    assert "--node" in done.stderr and done.stdout == ""
    done = run("--suite", "linalg")
    assert done.returncode == 2
    assert "--suite" in done.stderr and done.stdout == ""
