"""Allocation, realloc and free from many threads under numamap's handler (host tier).

Hypothesis draws one program per thread (4 to 8 threads): allocations of 0 B to 4 MiB, mostly
small and with the size-class edges drawn often (``np.empty/zeros/ones`` under the thread's
``numamap.policy(..., min_size=0)``, and ``numamap.empty/zeros/ones(..., node=0)``), reallocs
(``ndarray.resize(refcheck=False)``: numpy's realloc through the handler that allocated the
array; arrays over numamap's own memory cannot be resized, so for them a realloc is a new array,
the data copied), frees (``del``), and hand-overs between threads (an array given to a shared
queue is taken, checked, reallocated or freed by whichever thread takes it). Every fourth
thread holds ``policy(None)`` (the kernel's placement), the others ``policy(0)``.

Every array is filled with its own pattern, and checked before it is freed, after every realloc
(its data kept up to the smaller size, numpy's zeros beyond it) and when taken from another
thread; fresh zeros and ones are checked before they are filled, and every data pointer must be
16-byte aligned. Each program runs in a forked child (tests/fuzzing.py), so a crash or a hang is
reported with the program that caused it and Hypothesis can shrink it; a program whose failure
needs a particular interleaving of threads may be reported as flaky instead of shrunk.

Bounded and deterministic in what it draws (``derandomize=True``, no example database); the run
counts the operations it performed, at least :data:`MIN_OPERATIONS`.
"""
from __future__ import annotations

import os
import queue
import sys
import threading
import traceback

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import numamap
from fuzzing import Broken, expect, run_forked

pytestmark = [pytest.mark.linux,
              pytest.mark.skipif(not hasattr(os, "fork") or not sys.platform.startswith("linux"),
                                 reason="needs the Linux backend and os.fork: runs in the host tier")]

KiB, MiB = 1 << 10, 1 << 20
MAX_BYTES = 4 * MiB
MIN_OPERATIONS = 10_000
EXAMPLES = 100  # about 20 s on 2 cores; the count of operations performed is asserted
THREAD_BUDGET = 24 * MiB  # live bytes a thread may hold: the oldest arrays are freed past it
MAKERS = ("np.empty", "np.zeros", "np.ones", "numamap.empty", "numamap.zeros", "numamap.ones")
# Sizes where an allocator changes its mind: pages, the arena's small maximum and chunk size.
EDGES = (1, 15, 16, 17, 4095, 4096, 4097, 65535, 65536, 65537, 262143, 262144, 262145,
         2 * MiB - 1, 2 * MiB, 2 * MiB + 1, MAX_BYTES)
# Random bytes: array k holds PATTERN[seed_k : seed_k + nbytes], so arrays differ from each other.
PATTERN = np.random.default_rng(20251202).integers(0, 256, MAX_BYTES + 8192, dtype=np.uint8)

# Weighted toward small: 5 draws in 10 up to 256 B, 2 up to 64 KiB, 1 up to 1 MiB, 1 up to
# 4 MiB, 1 an edge. Buckets first: Hypothesis shrinks toward the first, smallest one.
_BUCKETS = [(0, 256)] * 5 + [(257, 64 * KiB)] * 2 + [(64 * KiB + 1, MiB), (MiB + 1, MAX_BYTES)]
SIZES = st.one_of(*(st.integers(low, high) for low, high in _BUCKETS), st.sampled_from(EDGES))
SLOT = st.integers(0, 63)  # which live array an operation acts on (modulo how many there are)
# "skip" first: the shrinker turns every operation a failure does not need into one, and the
# report leaves them out (programs keep at least 40 steps, so every example does real work).
OPERATION = st.one_of(
    st.tuples(st.just("skip")),
    st.tuples(st.just("alloc"), st.sampled_from(MAKERS), SIZES),
    st.tuples(st.just("free"), SLOT),
    st.tuples(st.just("realloc"), SLOT, SIZES),
    st.tuples(st.just("give"), SLOT),
    st.tuples(st.just("take")),
)
PROGRAMS = st.lists(st.lists(OPERATION, min_size=40, max_size=120), min_size=4, max_size=8)


class Block:
    """A live array and the pattern it must hold: PATTERN[seed : seed + nbytes]."""

    def __init__(self, arr: np.ndarray, seed: int, what: str):
        self.arr, self.seed, self.what = arr, seed, what

    def expect_intact(self, when: str, nbytes: int | None = None) -> None:
        nbytes = self.arr.nbytes if nbytes is None else nbytes
        got = self.arr[:nbytes]
        want = PATTERN[self.seed:self.seed + nbytes]
        if not np.array_equal(got, want):
            first = int(np.flatnonzero(got != want)[0])
            raise Broken(f"{self.what}: byte {first} of {nbytes} is {got[first]}, not "
                         f"{want[first]}, {when}")

    def fill(self, start: int = 0) -> None:
        self.arr[start:] = PATTERN[self.seed + start:self.seed + self.arr.nbytes]


class Worker:
    """One thread's program: its live arrays, in order of allocation."""

    def __init__(self, index: int, program, shared: queue.SimpleQueue):
        self.index, self.program, self.shared = index, program, shared
        self.node = None if index % 4 == 3 else 0
        self.live: list[Block] = []
        self.operations = 0
        self.seeds = 0

    def _seed(self) -> int:
        self.seeds += 1
        return (self.index * 977 + self.seeds * 131) % 8192

    def _make(self, maker: str, nbytes: int, where: str) -> np.ndarray:
        module, name = maker.split(".")
        if module == "np":
            arr = getattr(np, name)(nbytes, dtype=np.uint8)
            owner = numamap.handler_name(arr) or ""
            expect(owner.startswith("numamap_"), f"{where}: allocated by {owner!r}, not numamap's handler")
        else:
            arr = getattr(numamap, name)(nbytes, dtype=np.uint8, node=0)
        expect(arr.nbytes == nbytes, f"{where}: {arr.nbytes} bytes, not {nbytes}")
        expect(arr.ctypes.data % 16 == 0, f"{where}: data at {arr.ctypes.data:#x}, not 16-byte aligned")
        initial = {"zeros": 0, "ones": 1}.get(name)
        if initial is not None and nbytes and not np.all(arr == initial):
            first = int(np.flatnonzero(arr != initial)[0])
            raise Broken(f"{where}: fresh {maker}({nbytes}) holds {arr[first]} at byte {first}")
        return arr

    def _free(self, position: int, where: str) -> None:
        block = self.live.pop(position)
        block.expect_intact(f"before its free ({where})")
        del block  # the only reference: numpy frees the data here
        self.operations += 1

    def _make_room(self, nbytes: int, where: str) -> None:
        while self.live and sum(b.arr.nbytes for b in self.live) + nbytes > THREAD_BUDGET:
            self._free(0, where)

    def alloc(self, where: str, maker: str, nbytes: int) -> None:
        self._make_room(nbytes, where)
        block = Block(self._make(maker, nbytes, where), self._seed(), f"{maker}({nbytes}) of {where}")
        block.fill()
        self.live.append(block)
        self.operations += 1

    def free(self, where: str, slot: int) -> None:
        if self.live:
            self._free(slot % len(self.live), where)

    def realloc(self, where: str, slot: int, nbytes: int) -> None:
        if not self.live:
            return
        position = slot % len(self.live)
        block = self.live[position]
        old = block.arr.nbytes
        self._make_room(max(nbytes - old, 0), where)
        if block not in self.live:  # freed to make room: nothing left to resize
            return
        block.expect_intact(f"before its realloc to {nbytes} ({where})")
        kept = min(old, nbytes)
        if block.arr.flags.owndata:
            block.arr.resize(nbytes, refcheck=False)  # numpy's realloc, through the handler
            expect(block.arr.nbytes == nbytes, f"{where}: resized to {block.arr.nbytes}, not {nbytes}")
            expect(block.arr.ctypes.data % 16 == 0, f"{where}: realloc'd data not 16-byte aligned")
            tail = block.arr[kept:]
            if tail.size and tail.any():  # numpy zeroes what a resize adds
                raise Broken(f"{block.what}: realloc {old} -> {nbytes} left non-zero bytes past "
                             f"{kept} ({where})")
        else:  # numamap's own memory cannot be resized: a new array, the data copied
            fresh = self._make("numamap.empty", nbytes, where)
            fresh[:kept] = block.arr[:kept]
            block.arr = fresh
        block.what += f" realloc'd to {nbytes}"
        block.expect_intact(f"after its realloc from {old} to {nbytes} ({where})", kept)
        block.fill(kept)
        self.operations += 1

    def skip(self, where: str) -> None:
        pass

    def give(self, where: str, slot: int) -> None:
        if self.live:
            self.shared.put(self.live.pop(slot % len(self.live)))

    def take(self, where: str) -> None:
        try:
            block = self.shared.get_nowait()
        except queue.Empty:
            return
        block.expect_intact(f"when thread {self.index} took it ({where})")
        self.live.append(block)

    def run(self, start: threading.Barrier) -> None:
        policy = numamap.policy(self.node, min_size=0)
        start.wait()
        with policy:
            steps = (op for op in self.program if op[0] != "skip")  # numbered as reports show them
            for step, (name, *args) in enumerate(steps):
                where = f"thread {self.index} (policy node {self.node}) step {step} {(name, *args)}"
                try:
                    getattr(self, name)(where, *args)
                except Broken:
                    raise
                except Exception as exc:  # numamap and numpy must not fail within the budget
                    stats = getattr(policy, "stats", lambda: None)()
                    raise Broken(f"{where}: {type(exc).__name__}: {exc}; handler stats {stats}") from exc
            while self.live:
                self._free(len(self.live) - 1, f"thread {self.index} at its end")


def run_program(programs) -> int:
    """Run one program per thread, all at once; the number of operations they performed."""
    shared: queue.SimpleQueue = queue.SimpleQueue()
    workers = [Worker(i, program, shared) for i, program in enumerate(programs)]
    start = threading.Barrier(len(workers))
    errors: list[BaseException] = []

    def body(worker: Worker) -> None:
        try:
            worker.run(start)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread below
            errors.append(exc)
            start.abort()  # threads still waiting must not wait for this one

    threads = [threading.Thread(target=body, args=(w,), name=f"fuzz-{w.index}") for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    real = [e for e in errors if not isinstance(e, threading.BrokenBarrierError)]
    if real:
        raise real[0]
    leftovers = Worker(len(workers), [], shared)  # arrays given and never taken: freed here
    while not shared.empty():
        leftovers.take("in the main thread after the join")
        leftovers._free(0, "in the main thread after the join")
    return sum(w.operations for w in workers) + leftovers.operations


def execute(programs) -> int:
    """:func:`run_program`, any exception a finding (run_forked lets documented ones pass)."""
    try:
        return run_program(programs)
    except Broken:
        raise
    except BaseException as exc:  # noqa: BLE001 - a MemoryError or OSError here is a bug too
        where = traceback.extract_tb(exc.__traceback__)[-1]
        raise Broken(f"{type(exc).__name__}: {exc} (at {os.path.basename(where.filename)}:"
                     f"{where.lineno})") from exc


def test_threads_allocate_realloc_and_free_with_data_intact():
    counts = {"programs": 0, "operations": 0}

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.large_base_example])
    @given(PROGRAMS)
    def program(programs):
        outcomes, problems = run_forked([programs], execute, timeout=120)
        if problems:
            steps = [[op for op in program if op[0] != "skip"] for program in programs]
            raise AssertionError("; ".join(text for _, text in problems)
                                 + f"\n  the same without its skips: run_program({steps!r})")
        counts["programs"] += 1
        counts["operations"] += outcomes[0]

    program()
    assert counts["operations"] >= MIN_OPERATIONS, counts
