"""Lifetime sequences (host tier): constructors, slices, close(), gc, pickling and fork, interleaved.

Hypothesis draws short programs; each runs in a forked child, one operation at a time, against a
model of what every live array must hold. The operations make arrays (carved from the node
arenas by ``numamap.zeros`` and friends or by a policy's handler, or with mappings of their own:
partitioned, ring buffers, section views, ``View.ndarray``, explicit placements), slice them,
close their Views (``arr.base.close()``, ``view_of(arr).close()``, ``with arr.base:``) and their
sections, drop them, collect garbage, pickle and deep-copy arrays, Views and Sections, and fork:
the grandchild checks and writes every array, makes and writes arrays of its own (which must
land on none of the inherited ones) and exits, and the program checks that private memory kept
its bytes and shared memory (sections, ring buffers, hugetlb pages) took the grandchild's. After every operation, every array still
alive must hold what the model says. A crash, a hang, a wrong byte or an undocumented exception
is reported with the operations that led to it.
"""
from __future__ import annotations

import copy
import gc
import os
import pickle
import random
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings, strategies as st

import numamap
from fuzzing import (CALL_TIMEOUT, DOCUMENTED, SHM_PREFIX, Broken, address_limit, expect, in_child,
                     remove_named_sections, run_forked)

pytestmark = [pytest.mark.linux,
              pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork: runs in the host tier")]

PROGRAMS = int(os.environ.get("NUMAMAP_FUZZ_PROGRAMS", "80"))
OPERATIONS = ["make", "make", "make", "make", "slice", "slice", "write", "write", "close_base",
              "close_view_of", "with_base", "close_section", "drop", "drop", "gc", "pickle",
              "deepcopy", "pickle_base", "pickle_section", "fork", "reserve_close"]
MAKERS = ["zeros", "ones", "full", "partitioned", "ring", "section", "section_cow", "named",
          "view_ndarray", "asarray", "populated", "policy", "policy", "bound"]
#: Placements that give an array a mapping of its own (a View) instead of an arena block.
OWN_MAPPING = [{"page_size": "4K"}, {"populate": True}, {"node": 0, "policy": "bind"}]


class Root:
    """Memory that arrays share, and the byte every one of its bytes must hold now."""

    def __init__(self, value: int, shared: bool, section=None, name=None):
        self.value, self.shared, self.section, self.name = value, shared, section, name


class Program:
    """The child's state: live arrays with their roots (built fresh in each forked child)."""

    def __init__(self):
        # (array, its root, whether it covers every byte of the root)
        self.slots: list[tuple[np.ndarray, Root, bool]] = []
        self.serial = 0

    # -- model ------------------------------------------------------------------------------------
    def check_all(self) -> None:
        for index, (arr, root, _) in enumerate(self.slots):
            data = raw(arr)
            if data.size > 1 << 16:  # every byte of small arrays, a sample of large ones
                data = np.concatenate([data[:4096], data[4096::4099], data[-4096:]])
            if data.size:
                bad = np.flatnonzero(data != root.value)
                expect(not bad.size, f"slot {index}: {bad.size} of {data.size} bytes are not "
                                     f"{root.value:#x} (first at byte {bad[:1]}: {data[bad[:1]]})")

    def check_all_written(self, value: int) -> None:
        """In a forked grandchild that wrote ``value`` to every whole array: all hold it now."""
        for root in {id(r): r for _, r, whole in self.slots if whole}.values():
            root.value = value
        self.check_all()

    def pick(self, rnd):
        return rnd.randrange(len(self.slots)) if self.slots else None

    # -- operations -------------------------------------------------------------------------------
    def make(self, rnd) -> str:
        kind = rnd.choice(MAKERS)
        n = rnd.choice([1, 4096, 5000, 65536, 65536, 1 << 20, 3 << 20 if rnd.random() < 0.3 else 8192])
        value = rnd.randrange(1, 256)
        shared, section, name = False, None, None
        if kind == "zeros":
            arr = numamap.zeros(n, dtype="u1")
        elif kind == "ones":
            arr = numamap.ones((n // 8 + 1, 2), dtype="f4")
        elif kind == "full":
            arr = numamap.full(n, value, dtype="u1", page_size=rnd.choice(["auto", "4K"]))
        elif kind == "partitioned":
            arr = numamap.partitioned((n // 64 + 1, 64), dtype="u1", nodes=[0, 0], page_size="4K")
        elif kind == "ring":
            arr, shared = numamap.ring_buffer(n), True
        elif kind in ("section", "section_cow", "named"):
            if kind == "named":
                self.serial += 1
                name = f"{SHM_PREFIX}{os.getpid()}_{self.serial}"
            section = numamap.Section(n, name=name, access="cow" if kind == "section_cow" else "rw")
            arr, shared = section.map().ndarray(n, "u1"), kind != "section_cow"
        elif kind == "view_ndarray":
            view = numamap.empty(n + 64, dtype="u1", **rnd.choice(OWN_MAPPING)).base
            arr = view.ndarray((n // 4,), "i4", offset=64)
        elif kind == "asarray":
            arr = numamap.asarray(np.arange(n, dtype=np.uint16), node=0)
        elif kind == "populated":
            arr = numamap.empty(n, dtype="u1", node=0, populate=True)
        elif kind == "bound":
            arr = numamap.empty(n, dtype="u1", node=0, policy="bind")
        else:
            with numamap.policy(0, page_size=rnd.choice(["auto", "auto", "4K"])):
                arr = np.ones(n // 8 + 1)
        raw(arr)[...] = value
        # hugetlb memory is mapped shared (a forked child's writes never need a pool page), so a
        # forked child's writes show in this process, as a section's do: Views, arena blocks
        # (view_of gives the ArenaBlock) and a policy's blocks alike
        view, block = numamap.view_of(arr), numamap.block_info(arr)
        shared = shared or (view is not None and view.page_kind in ("hugetlb", "mixed")) or (
            block is not None and block.page_kind == "hugetlb")
        root = Root(value, shared, section, name)
        self.slots.append((arr, root, True))
        # a second map of a shared section is the same memory through another View
        if section is not None and rnd.random() < 0.5:
            self.slots.append((section.map().ndarray(n, "u1"), root if shared else Root(0, False), True))
            if not shared:
                raw(self.slots[-1][0])[...] = 0
        return f"make {kind}({n}) = {value:#x} -> slot {len(self.slots) - 1}"

    def slice(self, rnd) -> str:
        index = self.pick(rnd)
        if index is None:
            return "slice: nothing alive"
        arr, root, _ = self.slots[index]
        flat = arr.reshape(-1) if arr.flags.c_contiguous else arr
        start, step = rnd.randrange(max(len(flat), 1)), rnd.choice([1, 2, 7, -1, -3])
        self.slots.append((flat[start::step], root, False))
        return f"slot {len(self.slots) - 1} = slot {index}.reshape(-1)[{start}::{step}]"

    def write(self, rnd) -> str:
        index = self.pick(rnd)
        if index is None:
            return "write: nothing alive"
        root = self.slots[index][1]
        whole = next((a for a, r, w in self.slots if r is root and w), None)
        if whole is None:
            return f"write: slot {index} has no whole array left"
        root.value = rnd.randrange(256)
        raw(whole)[...] = root.value
        return f"write {root.value:#x} to the root of slot {index}"

    def _close(self, rnd, how: str) -> str:
        index = self.pick(rnd)
        if index is None:
            return f"{how}: nothing alive"
        arr = self.slots[index][0]
        view = numamap.view_of(arr)
        if view is None:
            return f"{how}: slot {index} has no View (numpy allocated it under a policy)"
        if isinstance(view, numamap.ArenaBlock):  # no View to close: the block lives while arrays do
            expect(not hasattr(view, "close"), "an ArenaBlock grew a close()")
            return f"{how}: slot {index} is an arena block"
        # a slice's .base is the array it was cut from (numpy stops at the View's array)
        base = arr.base if isinstance(arr.base, numamap.View) else view
        if how == "close_base":
            base.close()
        elif how == "close_view_of":
            view.close()
        else:
            with base:
                pass
        gc.collect()
        return f"{how} of slot {index}, then gc"

    def close_base(self, rnd) -> str:
        return self._close(rnd, "close_base")

    def close_view_of(self, rnd) -> str:
        return self._close(rnd, "close_view_of")

    def with_base(self, rnd) -> str:
        return self._close(rnd, "with_base")

    def close_section(self, rnd) -> str:
        roots = [r for _, r, _ in self.slots if r.section is not None]
        if not roots:
            return "close_section: none alive"
        root = rnd.choice(roots)
        root.section.close()
        try:
            root.section.map()
        except ValueError:
            pass
        else:
            raise Broken("a closed Section mapped a new view")
        return f"close the section of value {root.value:#x}"

    def drop(self, rnd) -> str:
        index = self.pick(rnd)
        if index is None:
            return "drop: nothing alive"
        del self.slots[index]
        return f"drop slot {index}"

    def gc(self, rnd) -> str:
        gc.collect()
        return "gc.collect()"

    def pickle(self, rnd) -> str:
        return self._copy(rnd, lambda a: pickle.loads(pickle.dumps(a)), "pickle")

    def deepcopy(self, rnd) -> str:
        return self._copy(rnd, copy.deepcopy, "deepcopy")

    def _copy(self, rnd, make_copy, label) -> str:
        index = self.pick(rnd)
        if index is None:
            return f"{label}: nothing alive"
        arr, root, _ = self.slots[index]
        twin = make_copy(arr)
        expect(twin.shape == arr.shape and twin.dtype == arr.dtype, f"{label} changed the array's layout")
        expect(np.array_equal(raw(twin), raw(arr)), f"{label} changed the array's bytes")
        if twin.size and twin.flags.writeable:
            raw(twin)[...] = root.value ^ 0xFF  # the copy is a copy: the original keeps its bytes
        return f"{label} slot {index}"

    def pickle_base(self, rnd) -> str:
        index = self.pick(rnd)
        if index is None:
            return "pickle_base: nothing alive"
        arr = self.slots[index][0]
        view = numamap.view_of(arr)
        if view is None:
            return f"pickle_base: slot {index} has no View"
        if isinstance(view, numamap.ArenaBlock):
            try:
                pickle.dumps(view)
            except TypeError:
                return f"pickle slot {index}'s ArenaBlock: TypeError"
            raise Broken("an ArenaBlock pickled: a block's address means nothing elsewhere")
        try:
            twin = pickle.loads(pickle.dumps(view))
        except DOCUMENTED as exc:
            return f"pickle slot {index}'s View: {type(exc).__name__}"
        # whatever came back must not be a second owner of this process's mapping
        data = np.asarray(twin)
        expect(not np.shares_memory(data, arr), "an unpickled View maps the original's memory")
        return f"pickle slot {index}'s View: a copy"

    def pickle_section(self, rnd) -> str:
        roots = [r for _, r, _ in self.slots if r.section is not None and not r.section.closed]
        if not roots:
            return "pickle_section: none open"
        root = rnd.choice(roots)
        try:
            twin = pickle.loads(pickle.dumps(root.section))
        except DOCUMENTED as exc:
            expect(root.name is None, f"a named Section did not pickle: {exc!r}")
            return f"pickle anonymous section: {type(exc).__name__}"
        expect(root.name is not None, "an anonymous Section pickled (its fd number means nothing elsewhere)")
        expect(raw(twin.map().ndarray(1, "u1"))[0] == root.value, "the unpickled named Section maps other memory")
        twin.close()
        return f"pickle named section {root.name!r}"

    def fork(self, rnd) -> str:
        value = rnd.randrange(256)

        def grandchild():
            self.check_all()
            for arr, _, whole in self.slots:
                if whole:
                    raw(arr)[...] = value
            self.check_all_written(value)
            own = [numamap.zeros(n, dtype="u1") for n in (64, 5000, 1 << 20)]
            with numamap.policy(0):
                own += [np.zeros(n, dtype="u1") for n in (64, 5000, 1 << 20)]
            for arr in own:
                arr[...] = value ^ 0xFF
            self.check_all_written(value)  # no new array landed on an inherited one

        status = in_child(grandchild, timeout=CALL_TIMEOUT / 2)  # killed if it hangs
        expect(os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0,
               f"the forked grandchild failed: {'signal ' + str(os.WTERMSIG(status)) if os.WIFSIGNALED(status) else 'status ' + str(os.WEXITSTATUS(status))}")
        for _, root, whole in self.slots:
            if root.shared and whole:
                root.value = value  # shared memory took the grandchild's writes
        return f"fork: the grandchild wrote {value:#x}"

    def reserve_close(self, rnd) -> str:
        reservation = numamap.reserve(1 << 20)
        section = numamap.Section(1 << 16)
        view = section.map(address=reservation.address)
        try:
            reservation.close()
        except BufferError:
            pass
        else:
            raise Broken("a reservation with a live view closed")
        view.close()
        section.close()
        return "reserve, map into it, close refused while mapped"


def raw(arr) -> np.ndarray:
    """Every byte of ``arr`` as a flat uint8 array (a view where the layout allows)."""
    if arr.flags.c_contiguous or arr.flags.f_contiguous:
        return arr.reshape(-1, order="A").view(np.uint8)
    return np.ascontiguousarray(arr).view(np.uint8).reshape(-1)


def replay(ops, limit=None):
    """Run one program, ``[(operation, seed), ...]``, in a forked child: (outcomes, problems)."""
    state = Program()  # the child gets its own copy, fresh

    def execute(op):
        name, seed = op
        what = getattr(state, name)(random.Random(seed))
        state.check_all()
        return what

    return run_forked(ops, execute, limit=limit)


def test_lifetime_sequences_keep_every_live_array_intact():
    limit = address_limit()
    problems: dict[str, str] = {}
    counts = {"programs": 0, "operations": 0}

    @settings(max_examples=PROGRAMS, deadline=None, derandomize=True, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(st.lists(st.tuples(st.sampled_from(OPERATIONS), st.integers(0, 2**32 - 1)), min_size=8, max_size=30))
    def program(ops):
        outcomes, found = replay(ops, limit)
        counts["programs"] += 1
        counts["operations"] += len(outcomes)
        for index, text in found:
            key = re.sub(r"0x[0-9a-f]+|\d+", "N", text)[:100]  # one entry per kind of problem
            if key not in problems:
                last = min(index if index is not None else len(ops) - 1, len(ops) - 1)
                steps = [outcomes.get(i, f"{ops[i][0]}") for i in range(last + 1)]
                problems[key] = (f"{text}\n    after: " + "; ".join(steps)
                                 + f"\n    replay(ops={ops[:last + 1]!r})")

    try:
        program()
    finally:
        remove_named_sections()
    print(f"{counts['programs']} programs, {counts['operations']} operations")
    assert not problems, f"{len(problems)} distinct problems:\n" + "\n".join(problems.values())
