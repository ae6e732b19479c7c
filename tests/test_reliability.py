"""Issue 12, sections and policies: pickling, planted files, copy-on-write access, leaks of
dropped sections, policy blocks left out of order, and arena blocks across fork."""
import copy
import gc
import os
import pickle
import shutil
import signal
import tempfile
import uuid

import numpy as np
import pytest

from fuzzing import expect, in_child, kill_on_timeout, run_forked
import numamap

G = numamap.allocation_granularity()
linux = pytest.mark.linux


def _unique_name() -> str:
    return f"test-{os.getpid()}-{uuid.uuid4().hex[:12]}"


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit status {os.WEXITSTATUS(status)}"


# -- item 4: pickling and deep copies --------------------------------------------------------

@pytest.mark.parametrize("dump", [pickle.dumps, copy.deepcopy, copy.copy])
def test_an_anonymous_section_refuses_to_be_pickled_or_copied(dump):
    with numamap.Section(G) as sec:
        with pytest.raises(TypeError, match="cannot pickle an anonymous numamap.Section"):
            dump(sec)


@pytest.mark.parametrize("clone", [lambda s: pickle.loads(pickle.dumps(s)), copy.deepcopy])
def test_a_named_section_pickles_by_name_and_reopens(clone):
    name = _unique_name()
    with numamap.Section(2 * G, name=name) as sec:
        np.asarray(sec.map())[:4] = [1, 2, 3, 4]
        other = clone(sec)
        assert isinstance(other, numamap.Section) and other is not sec
        assert (other.name, other.access, other.size) == (name, "rw", 2 * G)
        view = other.map()
        assert np.asarray(view)[:4].tolist() == [1, 2, 3, 4]
        np.asarray(view)[4] = 5  # the very same memory, both ways
        assert np.asarray(sec.map())[4] == 5
        other.close()  # a reopened copy does not own the name
        numamap.Section.open(name).close()
    with pytest.raises(ValueError, match="closed section"):
        pickle.dumps(sec)


# -- item 5: planted files in /dev/shm --------------------------------------------------------

def _planted(make) -> tuple[str, str]:
    name = _unique_name()
    path = f"/dev/shm/numamap.{name}"
    make(path)
    return name, path


@linux
@pytest.mark.parametrize("access", ["rw", "r", "cow"])
def test_open_refuses_a_planted_symlink(tmp_path, access):
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious" * 512)
    name, path = _planted(lambda p: os.symlink(victim, p))
    try:
        with pytest.raises(PermissionError, match="symbolic link"):
            numamap.Section.open(name, access=access)
    finally:
        os.unlink(path)
    assert victim.read_bytes() == b"precious" * 512


@linux
@pytest.mark.parametrize("access", ["rw", "r"])
def test_open_refuses_a_planted_fifo_without_blocking(access):
    name, path = _planted(os.mkfifo)

    def give_up(signum, frame):
        raise TimeoutError("Section.open blocked on a FIFO")

    # A guard, not a synchronisation: an open that blocks is the failure being tested.
    previous = signal.signal(signal.SIGALRM, give_up)
    signal.alarm(20)
    try:
        with pytest.raises(PermissionError, match="not a regular file"):
            numamap.Section.open(name, access=access)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        os.unlink(path)


@linux
def test_open_refuses_a_file_others_can_write():
    name, path = _planted(lambda p: open(p, "wb").close())
    try:
        os.chmod(path, 0o666)
        with pytest.raises(PermissionError, match="lets group or others write"):
            numamap.Section.open(name)
        os.chmod(path, 0o600)
        numamap.Section.open(name).close()  # the same file, as numamap creates them, opens
    finally:
        os.unlink(path)


@linux
@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                    reason="needs root to plant a file owned by another user")
def test_open_refuses_a_file_of_another_user():
    name, path = _planted(lambda p: open(p, "wb").close())
    try:
        os.chmod(path, 0o600)
        os.chown(path, 65534, -1)
        with pytest.raises(PermissionError, match="belongs to uid 65534"):
            numamap.Section.open(name)
    finally:
        os.unlink(path)


# -- item 6: copy-on-write needs read access only ---------------------------------------------

@linux
def test_cow_and_read_only_sections_open_the_file_read_only(tmp_path):
    import fcntl

    path = tmp_path / "data"
    path.write_bytes(bytes(range(256)) * 16)
    for access, mode in (("cow", os.O_RDONLY), ("r", os.O_RDONLY), ("rw", os.O_RDWR)):
        with numamap.Section(0, file=path, access=access) as sec:
            assert fcntl.fcntl(sec._handle.fd, fcntl.F_GETFL) & os.O_ACCMODE == mode, access


@linux
def test_a_user_who_can_only_read_a_file_maps_it_copy_on_write():
    folder = tempfile.mkdtemp(prefix="numamap-cow-")
    try:
        os.chmod(folder, 0o755)
        path = os.path.join(folder, "read-only")
        with open(path, "wb") as handle:
            handle.write(b"\x01" * G)
        os.chmod(path, 0o444)

        def body():
            if os.geteuid() == 0:  # root reads and writes anything: become a plain user
                os.setgid(65534)
                os.setuid(65534)
            with pytest.raises(PermissionError):
                open(path, "r+b")  # this user really cannot write the file
            with numamap.Section(0, file=path, access="cow") as sec:
                arr = np.asarray(sec.map())
                arr[:2] = [7, 7]  # private to this view
                assert arr[:3].tolist() == [7, 7, 1]

        status = in_child(body)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, _describe(status)
        with open(path, "rb") as handle:
            assert handle.read(3) == b"\x01\x01\x01"  # the file never changed
    finally:
        shutil.rmtree(folder)


# -- item 7: a dropped Section gives back its handle and memory -------------------------------

def _section_fds() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("/memfd:numamap")
        except OSError:
            pass
    return count


@linux
def test_dropped_sections_close_their_handles():
    gc.collect()
    before_all, before = len(os.listdir("/proc/self/fd")), _section_fds()
    keep = []
    for i in range(3000):
        numamap.Section(G)                      # dropped at once
        numamap.Section(G).map()                # the view too
        sec = numamap.Section(G)
        view = sec.map()
        del sec                                 # the view outlives its section
        np.asarray(view)[:2] = [i % 256, 1]
        if i % 1000 == 0:
            keep.append((i % 256, view))
    gc.collect()
    assert _section_fds() == before
    assert len(os.listdir("/proc/self/fd")) <= before_all + 2
    for value, view in keep:  # views of dropped sections still hold their memory
        assert np.asarray(view)[:2].tolist() == [value, 1]


@linux
def test_a_dropped_named_section_takes_its_name_away():
    name = _unique_name()
    numamap.Section(G, name=name)
    gc.collect()
    assert not os.path.lexists(f"/dev/shm/numamap.{name}")
    with pytest.raises(FileNotFoundError):
        numamap.Section.open(name)


def test_close_then_drop_closes_once():
    sec = numamap.Section(G)
    sec.close()
    sec.close()
    assert sec.closed
    del sec
    gc.collect()


# -- item 21: policy blocks left out of order --------------------------------------------------

@pytest.mark.numa_calls
@linux
def test_leaving_nested_policies_out_of_order_raises_and_changes_nothing():
    outer, inner = numamap.policy(0), numamap.policy(None)
    before = numamap.handler_name()
    outer.__enter__()
    try:
        inner.__enter__()
        try:
            with pytest.raises(RuntimeError, match="out of order"):
                outer.__exit__(None, None, None)
            assert numamap.handler_name() == inner.name  # the inner block's handler stays
        finally:
            inner.__exit__(None, None, None)
        assert numamap.handler_name() == outer.name
    finally:
        outer.__exit__(None, None, None)
    assert numamap.handler_name() == before
    with pytest.raises(RuntimeError, match="not entered"):
        outer.__exit__(None, None, None)


def test_a_fill_too_big_for_the_nodes_is_a_memory_error_before_touching(monkeypatch):
    """partitioned(fill=...) writes every page: it checks the nodes can back them first."""
    from numamap import _backend

    monkeypatch.setattr(_backend, "node_memory_free", lambda node, root="/": 1 << 20)
    with pytest.raises(MemoryError, match="bound to nodes"):
        numamap.partitioned(64 << 20, dtype="u1", fill=1, page_size="4K")
    a = numamap.partitioned(64 << 20, dtype="u1", page_size="4K")  # no fill: nothing touched
    assert a.nbytes == 64 << 20


# -- fork and the node arenas ------------------------------------------------------------------

FORK_SIZES = (64, 8 << 10, 800 << 10)  # two small classes and a large block


def _arena_arrays(page_size: str, value: int) -> list:
    """Arrays of node 0's arena for ``page_size``, every byte ``value``: numpy's, under a
    policy, then one of numamap's own ('auto')."""
    with numamap.policy(0, page_size=page_size):
        made = [np.full(n, value, np.uint8) for n in FORK_SIZES]
    return made + [numamap.full(1000, value, dtype=np.uint8)]


def _fork_against_the_arenas(page_size: str) -> str:
    """Parent and child allocate, free and write arena blocks at the same time; each checks
    that the other's work never reached its own arrays. Run in a child of pytest (see below)."""
    kept = _arena_arrays(page_size, 7)
    kind = numamap.block_info(kept[0]).page_kind
    expect(kind == {"4K": "base", "2M": "hugetlb"}.get(page_size, kind), f"{page_size}: {kind} pages")
    dropped = _arena_arrays(page_size, 9)
    del dropped  # free blocks, in the thread's cache and the arena, as the child inherits them
    to_child, to_parent = os.pipe(), os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop two inherited arrays, write one, make and check its own
        code = 1
        try:
            os.close(to_child[1])
            os.close(to_parent[0])
            del kept[1], kept[-1]
            gc.collect()
            mine = _arena_arrays(page_size, 0xC1)
            kept[0][:] = 0xEE
            os.write(to_parent[1], b"r")
            os.read(to_child[0], 1)  # the parent has made and written its new arrays
            code = 0 if all((m == 0xC1).all() for m in mine) else 2
        finally:
            os._exit(code)
    os.close(to_child[0])
    os.close(to_parent[1])
    theirs = []
    try:
        ready = kill_on_timeout(pid, to_parent[0], 20)  # b"" when the child died or hung
        if ready:
            theirs = _arena_arrays(page_size, 0x3C)  # the blocks freed before the fork, reused
            os.write(to_child[1], b"g")
            kill_on_timeout(pid, to_parent[0], 20)  # its end of the pipe closes as it exits
    finally:
        os.close(to_child[1])
        os.close(to_parent[0])
        status = os.waitpid(pid, 0)[1]
    expect(ready == b"r" and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0,
           f"the forked child: {_describe(status)} (2: its own new arrays were overwritten)")
    expect(all((t == 0x3C).all() for t in theirs), "the child's new blocks overlap the parent's")
    # the child's writes reach the parent only through shared (hugetlb) memory, as documented
    expect((kept[0] == (0xEE if kind == "hugetlb" else 7)).all(), f"{kind} block written by the child")
    damaged = [int((k != 7).sum()) for k in kept[1:]]
    expect(not any(damaged), f"bytes changed in the arrays the child dropped: {damaged}")
    return "result"


@pytest.mark.numa_calls
@linux
@pytest.mark.parametrize("page_size", ["4K", "auto", "2M"])
def test_a_forked_child_and_its_parent_never_share_arena_blocks(page_size, request):
    if page_size == "2M":
        numamap.trim()
        request.getfixturevalue("hugepage_pool")(2048, 16)
    # in a child of pytest: damage to the allocator's state (a hang, a crash) stays there
    outcomes, problems = run_forked([page_size], _fork_against_the_arenas, timeout=60)
    assert not problems and outcomes == {0: "result"}, problems
