"""Random API calls (host tier): every call ends in a result or a documented exception.

Hypothesis draws batches of calls across the public API with valid and hostile arguments
(shapes of floats, bools, strings and huge ints; object, zero-size and sub-array dtypes; unknown
nodes and page sizes; sizes up to 2**64 and beyond). Each batch runs in a forked child, so a
crash (SIGSEGV, SIGBUS, abort) or a hang is seen, and reported with the call that caused it.

Allowed outcomes are a result that passes the call's invariants (shape and dtype as numpy gives
them, data written can be read back, placement figures in whole pages...) or one of the
exceptions numamap documents: ValueError, TypeError, MemoryError, OSError and its subclasses
(PermissionError, FallbackError), NotImplementedError, and BufferError (reservations).

Bounded and deterministic: ``derandomize=True``, no example database, no shrinking (each failure
is reported call by call, so a minimal example is not needed), and memory-touching calls
(``populate``, fills, copies) keep to small sizes or sizes no machine can back. The child runs
under RLIMIT_AS, so a call that would map many GiB fails with MemoryError instead.
``NUMAMAP_FUZZ_EXAMPLES`` raises the number of batches for a longer local run.
"""
from __future__ import annotations

import itertools
import math
import os
import random
import select
import signal

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings, strategies as st

import numamap
from fuzzing import SHM_PREFIX, Broken, Findings, address_limit, expect, remove_named_sections, run_forked

pytestmark = [pytest.mark.linux,
              pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork: runs in the host tier")]

MiB = 1 << 20
BATCH = 10  # calls per forked child
EXAMPLES = int(os.environ.get("NUMAMAP_FUZZ_EXAMPLES", "520"))
MIN_CALLS = 5000
TOUCH_LIMIT = 64 * MiB  # calls that touch their memory stay below this ...
NO_MACHINE = 1 << 46  # ... or above this, which no test machine can back


# ---------------------------------------------------------------------------------------------
# Reference answers from numpy


def numpy_layout(shape, dtype):
    """(shape, dtype) numpy gives ``np.empty(shape, dtype)``, or the exception it raises.

    A shape is checked against a zero-size dtype, so huge shapes cost no memory.
    """
    try:
        dims = np.empty(shape, "V0").shape
        probe = np.empty((0,), dtype)
    except Exception as exc:  # noqa: BLE001 - numpy's verdict is the reference
        return exc
    return dims + probe.shape[1:], probe.dtype


def nbytes_of(shape, dtype) -> int:
    got = numpy_layout(shape, dtype)
    if isinstance(got, Exception):
        return 0
    dims, dt = got
    return math.prod(dims) * dt.itemsize


def from_arena(placement: dict) -> bool:
    """Whether a constructor given these keywords carves its array from a node arena (the
    defaults) rather than giving it a mapping of its own."""
    if placement.get("node") is not None and _numa_refused():
        return False  # a refused binding takes the mapping path, whose .base reports the fallback
    return (placement.get("policy", "preferred") == "preferred" and placement.get("nodes") is None
            and placement.get("page_size", "auto") == "auto" and not placement.get("populate", False))


def _numa_refused() -> bool:
    """Whether this process may not bind memory (the container tier's seccomp filter)."""
    return not numamap.capabilities()["numa_policy"]


def check_array(arr, shape, dtype, *, order="C", writable=True, arena=False) -> str:
    """Invariants of an array a numamap constructor returned for ``shape`` and ``dtype``: a
    View of its own mapping, or an ArenaBlock when ``arena``."""
    expect(isinstance(arr, np.ndarray), f"returned {type(arr).__name__}, not an ndarray")
    reference = numpy_layout(shape, dtype)
    expect(not isinstance(reference, Exception),
           f"accepted shape={shape!r}, dtype={dtype!r}, which numpy refuses ({reference!r})")
    dims, dt = reference
    expect(not dt.hasobject, f"accepted an object dtype ({dt})")
    if zero_subarray(dtype) and (arr.shape, arr.dtype) == (dims + np.dtype(dtype).shape, np.dtype(dtype).base):
        dims, dt = arr.shape, arr.dtype  # expanded as numpy expands every other sub-array: right too
    expect(arr.shape == dims, f"shape {arr.shape}, numpy gives {dims}")
    expect(arr.dtype == dt, f"dtype {arr.dtype}, numpy gives {dt}")
    view = numamap.view_of(arr)
    expected = numamap.ArenaBlock if arena else numamap.View
    expect(isinstance(arr.base, expected),
           f".base is {type(arr.base).__name__}, not a numamap {expected.__name__}")
    arr.base.summary()
    if arena:
        check_block(arr)
    else:
        expect(arr.nbytes <= view.size, f"{arr.nbytes} bytes of array over a {view.size}-byte view")
    if arr.ndim > 1 and arr.size > 1 and order in ("C", "F"):
        flag = "c_contiguous" if order == "C" else "f_contiguous"
        expect(getattr(arr.flags, flag), f"order={order!r} but the array is not {flag}")
    if writable and arr.size and arr.itemsize:
        round_trip(arr)
    return "result"


def check_block(arr) -> None:
    """An arena array: its block holds exactly its bytes, aligned, and knows its arena."""
    block, start = arr.base, arr.__array_interface__["data"][0]
    expect(block.nbytes == block.size == arr.nbytes, f"{arr.nbytes} bytes over a {block.nbytes}-byte block")
    expect(block.address == start and start % 16 == 0, f"array at {start:#x}, block at {block.address:#x}")
    expect(block.kind == ("small" if arr.nbytes <= (256 << 10) else "large"), f"{block.kind} block, {arr.nbytes} B")
    expect(block.page_kind in ("hugetlb", "thp", "base"), f"page_kind {block.page_kind!r}")
    expect(block.verified in (True, None), f"an arena block off its node: {block.summary()}")


def zero_subarray(dtype) -> bool:
    """numpy turns a sub-array dtype of zero elements (('i4', (0,))) into 'V0' and leaves the
    shape alone; numamap may expand it as numpy expands every other sub-array."""
    try:
        return 0 in np.dtype(dtype).shape
    except Exception:  # noqa: BLE001 - not a dtype at all
        return False


def round_trip(arr) -> None:
    """Write through one path, read back through another."""
    raw = arr.reshape(-1, order="A").view(np.uint8)
    expect(np.shares_memory(raw, arr), "reshape copied a contiguous array")
    raw[-1], raw[0] = 0x5A, 0xA5
    data = arr.tobytes(order="A")
    expect(data[0] == 0xA5 and (len(data) == 1 or data[-1] == 0x5A), "bytes written do not read back")


def element_bytes(value, dtype) -> bytes | None:
    """The bytes numpy stores for ``value`` in one element of ``dtype`` (None: numpy refuses)."""
    try:
        probe = np.zeros((1,), dtype)
        probe[...] = value
    except Exception:  # noqa: BLE001 - numamap may refuse it too
        return None
    return probe.tobytes()


def as_numpy_fills(fill, dtype, make):
    """``make()``, except that an OverflowError numpy raises for this fill too is numpy's answer
    (``np.full(1, -2**70, 'u1')`` raises it), not numamap's."""
    try:
        return make()
    except OverflowError:
        try:
            np.full((1,), fill, dtype)
        except OverflowError:
            return None
        raise


def check_fill(arr, value) -> None:
    if not arr.size or not arr.itemsize:
        return
    want = element_bytes(value, arr.dtype)
    if want is None:
        return
    flat = arr.reshape(-1, order="A")
    for index in (0, -1):
        expect(flat[index:index + 1 or None].tobytes() == want,
               f"element {index} holds {flat[index]!r}, filled with {value!r}")


def check_placement(found, array) -> None:
    """Invariants of a Placement for ``array``'s bytes: whole pages, nothing for empty arrays."""
    expect(isinstance(found, numamap.Placement), f"where() returned {type(found).__name__}")
    base = os.sysconf("SC_PAGE_SIZE")
    for node, count in found.bytes_per_node.items():
        expect(count % found.page_size == 0, f"bytes_per_node {node}: {count} is not whole pages")
    for size, count in found.page_sizes.items():
        expect(count % base == 0 and count >= 0, f"page_sizes {{{size}: {count}}} is not whole pages")
    if array is not None and array.size == 0:
        touched = sum(c for n, c in found.bytes_per_node.items() if n >= 0)
        expect(touched == 0 and not sum(found.page_sizes.values()),
               f"an empty array reported {found.bytes_per_node} and page sizes {found.page_sizes}")


# ---------------------------------------------------------------------------------------------
# Arguments
#
# Hypothesis draws each call's kind and a seed; the seed picks the arguments from the tables
# below (a draw per argument made generating 5,000 calls slower than running them). Valid values
# come up more often than hostile ones, so that calls get past the checks into the mapping code.

WEIRD_DIMS = [-1, -(2**63), 2**31, 2**62, 2**63, 2**64, 10**20, 2.9, 3.0, True, False, "7", None,
              np.int64(3), np.uint64(2), np.float64(2.0), b"3", 1j]
ODD_SHAPES = [(), "7", None, {}, 2.5, (2, (3,)), np.array([2, 3]), range(3)]
VALID_DTYPES = ["f8", "u1", "i2", "c16", "?", "f2", ">i8", "S5", "U3", "V7", "M8[s]", "m8[ns]",
                [("a", "i4"), ("b", "f8")], np.dtype("f4")]
HOSTILE_DTYPES = ["S0", "U0", "V0", ("f8", (2,)), ("u1", (3, 2)), ("i4", (0,)),
                  [("a", "u1"), ("b", "S0")], "O", object, [("a", "O")], ("O", (2,)), float, int,
                  bool, None, "nope", 3, "f16x"]
NODES_OF = {"node": [0, 0, 0, None, None, 1, -1, 2**31, 2**63, 2**64, True, 0.0, "0", np.int32(0),
                     np.uint64(0)],
            "policy": ["preferred", "preferred", "bind", "interleave", "local", "", None, 0],
            "nodes": [None, None, [0], [0, 0], [], [1], (0,), 0, [2**64], ["a"], [0, 1], np.array([0]), [-1]],
            "page_size": ["auto", "auto", "4K", "2M", "1G", "3K", 4096, 2**21, 0, -1, 2**64, None, "x",
                          "4k", "64K", 1.5, "2M "],
            "populate": [False, False, True], "strict": [False, True]}
ORDERS = ["C", "C", "F", "F", "K", "A", "X", None, "c"]
ODD_SIZES = [0, 1, 4095, 4096, 4097, 2**21, 2**21 + 1, 2**30, 2**31, 2**40, 2**47, 2**62, 2**63 - 1,
             2**63, 2**64 - 1, 2**64, 2**64 + 1, 10**30, -1, -4096, -(2**63), 1.5, True, "4096", None,
             np.int64(4096), np.uint64(2**63)]
ALIGNMENTS = [None, None, 4096, 2**21, 2**30, 2**40, 2**63, 2**64, 3, 0, -4096, 1.5, True, "4096",
              np.int64(8192)]
FILLS = [0, 1, -1, 1.5, float("nan"), float("inf"), 2**64, -(2**70), "a", b"x", None, True, 1j, [1, 2],
         (1,), "1.5"]
WEIGHTS = [None, None, [1], [0], [1e308], [1e308, 1e308], [float("inf")], [float("nan")], [-1], [1, 1],
           [2**64], ["a"], 1, [1, 0], []]
OFFSETS = [0, 0, 8, 4096, -8, 2**64, 1.5, None]
MIN_SIZES = [0, 0, 4096, 2 * MiB, 2**64, -1, "2M", "1x", 1.5, None]
OWN_MAPPING = [{"page_size": "4K"}, {"populate": True}, {"node": 0, "policy": "bind"},  # Views, not
               {"page_size": "2M"}]  # arena blocks
SECTION_NAMES = [None, None, None, "fresh", "", "a/b", "..", "x" * 300, "\x00", "é", 5]


def dim(rnd):
    return rnd.randint(0, 24) if rnd.random() < 0.85 else rnd.choice(WEIRD_DIMS)


def shape(rnd):
    roll = rnd.random()
    if roll < 0.3:
        return dim(rnd)
    if roll < 0.9:
        return tuple(dim(rnd) for _ in range(rnd.randint(0, 4)))
    return rnd.choice(ODD_SHAPES)


def dtype(rnd):
    return rnd.choice(VALID_DTYPES if rnd.random() < 0.7 else HOSTILE_DTYPES)


def size(rnd):
    return rnd.randint(0, 1 << 22) if rnd.random() < 0.6 else rnd.choice(ODD_SIZES)


def placement(rnd):
    """A random subset of the placement keywords, each valid more often than not."""
    return {key: rnd.choice(values) for key, values in NODES_OF.items() if rnd.random() < 0.4}


def plain_array(rnd):
    """A plain ndarray, possibly F-ordered or strided, of a valid dtype."""
    arr = np.zeros(tuple(rnd.randint(0, 12) for _ in range(rnd.randint(0, 3))), rnd.choice(VALID_DTYPES),
                   order=rnd.choice("CF"))
    if arr.size:
        arr.reshape(-1, order="A").view(np.uint8)[::7] = 3
    return arr[::rnd.choice([1, 1, 2, -1])] if arr.ndim else arr


def numamap_array_spec(rnd):
    """What :func:`build_numamap_array` makes in the child: kind, length, touched or not."""
    return {"kind": rnd.choice(["zeros", "ones", "partitioned", "ring", "section", "slice", "empty0",
                                "own", "bound"]),
            "n": rnd.randint(1, 300_000), "touch": rnd.random() < 0.5}


def build_numamap_array(spec):
    n, kind = spec["n"], spec["kind"]
    if kind == "zeros":
        arr = numamap.zeros(n, dtype="u1")
    elif kind == "ones":
        arr = numamap.ones((n // 8 + 1, 8))
    elif kind == "partitioned":
        arr = numamap.partitioned((n // 16 + 1, 16), dtype="u1", nodes=[0, 0, 0], page_size="4K")
    elif kind == "ring":
        arr = numamap.ring_buffer(n)
    elif kind == "section":
        arr = numamap.Section(n).map().ndarray(n // 4, "i4")
    elif kind == "slice":
        arr = numamap.zeros(n, dtype="f8")[n // 3::-3]
    elif kind in ("own", "bound"):  # Views: zeros and ones above are carved from the arenas
        arr = numamap.zeros(n, dtype="u1", **OWN_MAPPING[0 if kind == "own" else 2])
    else:
        arr = numamap.zeros(0)
    if spec["touch"] and arr.size and arr.flags.writeable:
        arr.reshape(-1, order="A")[::512] = 1
    return arr


def _source(rnd):
    roll = rnd.random()
    if roll < 0.45:
        return plain_array(rnd)
    if roll < 0.9:
        return numamap_array_spec(rnd)
    return rnd.choice([[1, 2, 3], 5, "abc", None, [[1], [2, 3]]])


BUILDERS = {
    "numamap.empty": lambda r: {"shape": shape(r), "dtype": dtype(r), "order": r.choice(ORDERS),
                                "placement": placement(r)},
    "numamap.zeros": lambda r: {"shape": shape(r), "dtype": dtype(r), "order": r.choice(ORDERS),
                                "placement": placement(r)},
    "numamap.ones": lambda r: {"shape": shape(r), "dtype": dtype(r), "order": r.choice(ORDERS),
                               "placement": placement(r)},
    "numamap.full": lambda r: {"shape": shape(r), "fill": r.choice(FILLS),
                               "dtype": None if r.random() < 0.3 else dtype(r),
                               "order": r.choice(ORDERS), "placement": placement(r)},
    "numamap.empty_like": lambda r: _like_params(r),
    "numamap.zeros_like": lambda r: _like_params(r),
    "numamap.ones_like": lambda r: _like_params(r),
    "numamap.full_like": lambda r: dict(_like_params(r), fill=r.choice(FILLS)),
    "numamap.asarray": lambda r: {"source": _source(r), "dtype": None if r.random() < 0.6 else dtype(r),
                                  "order": r.choice(ORDERS), "node": r.choice(NODES_OF["node"]),
                                  "placement": placement(r)},
    "numamap.partitioned": lambda r: {
        "shape": shape(r), "dtype": dtype(r), "nodes": r.choice(NODES_OF["nodes"]),
        "axis": r.choice([0, 0, 0, -1, 1, 5, None, 0.0]), "weights": r.choice(WEIGHTS),
        "page_size": r.choice(NODES_OF["page_size"]), "fill": None if r.random() < 0.5 else r.choice(FILLS),
        "populate": r.random() < 0.3, "strict": r.random() < 0.5,
        "slice": (r.randint(-50, 50), r.randint(-50, 50), r.choice([1, 1, 2, 3, -1, -2]))},
    "numamap.ring_buffer": lambda r: {"nbytes": size(r), "dtype": dtype(r), "node": r.choice(NODES_OF["node"]),
                                      "policy": r.choice(NODES_OF["policy"]), "populate": r.random() < 0.3,
                                      "strict": r.random() < 0.5},
    "numamap.reserve": lambda r: {"size": size(r), "alignment": r.choice(ALIGNMENTS)},
    "Section.map.ndarray": lambda r: {
        "size": size(r), "named": r.choice(SECTION_NAMES), "access": r.choice(["rw", "rw", "r", "cow", "x", None]),
        "section_page_size": r.choice(["4K", "4K", "2M", "1G", "auto", 4096, None]),
        "offset": r.choice([0, 0, 0, 4096, 8192, 1, -4096, 2**64, 1.5]),
        "map_size": r.choice([0, 0, 4096, 1, 2**20, 2**64, -1, None]), "placement": placement(r),
        "shape": shape(r), "dtype": dtype(r), "order": r.choice(ORDERS), "array_offset": r.choice(OFFSETS)},
    "View.ndarray": lambda r: {"n": r.randint(1, 1 << 20), "shape": shape(r), "dtype": dtype(r),
                               "order": r.choice(ORDERS), "offset": r.choice(OFFSETS),
                               "own": r.choice(OWN_MAPPING)},
    "numamap.where": lambda r: {"obj": (numamap_array_spec(r) if r.random() < 0.6 else plain_array(r))
                                if r.random() < 0.9 else r.choice(["view", "block", [1, 2], None, 3]),
                                "index": r.choice([None, None, "first", "empty", "reverse", "scalar"])},
    "numamap.migrate": lambda r: {"obj": numamap_array_spec(r) if r.random() < 0.8 else plain_array(r),
                                  "node": r.choice(NODES_OF["node"])},
    "numamap.policy": lambda r: {"node": r.choice(NODES_OF["node"]), "page_size": r.choice(NODES_OF["page_size"]),
                                 "min_size": r.choice(MIN_SIZES), "strict": r.random() < 0.5,
                                 "elements": r.choice([0, 1, 100, 1 << 17, 1 << 19]),
                                 "program": r.choice(["one", "nested", "out-of-order", "reenter", "exit-only"])},
}


def _like_params(r):
    return {"prototype": plain_array(r), "dtype": None if r.random() < 0.5 else dtype(r),
            "order": r.choice(ORDERS), "shape": None if r.random() < 0.6 else shape(r),
            "placement": placement(r)}


# Constructors and sections twice as often: they have the most arguments to get wrong.
KINDS = [*BUILDERS, "numamap.empty", "numamap.zeros", "numamap.full", "Section.map.ndarray"]


def make_call(kind: str, seed: int):
    return kind, BUILDERS[kind](random.Random(seed))


CALL = st.builds(make_call, st.sampled_from(KINDS), st.integers(0, 2**32 - 1))


def touches(call) -> int:
    """The bytes a call may fault in (0 when it touches nothing or only a little)."""
    kind, p = call
    placement = p.get("placement", {})
    populate = bool(placement.get("populate") or p.get("populate"))
    try:
        if kind in ("numamap.empty", "numamap.zeros", "numamap.ones", "numamap.full"):
            if populate or kind in ("numamap.ones", "numamap.full"):
                return nbytes_of(p["shape"], p["dtype"] if kind != "numamap.full" else "c16")
        elif kind.endswith("_like") and p["shape"] is not None:
            if populate or kind in ("numamap.ones_like", "numamap.full_like"):
                return nbytes_of(p["shape"], "c16")
        elif kind == "numamap.partitioned" and (populate or p["fill"] is not None):
            return nbytes_of(p["shape"], "c16")
        elif kind == "numamap.ring_buffer" and populate:
            return 2 * int(p["nbytes"])
        elif kind == "Section.map.ndarray" and populate:
            return int(p["size"])
    except (TypeError, ValueError, OverflowError):
        return 0
    return 0


def affordable(call) -> bool:
    """Small enough to touch quickly, or too big for any machine (it must fail cleanly)."""
    amount = touches(call)
    return amount < TOUCH_LIMIT or amount >= NO_MACHINE


# ---------------------------------------------------------------------------------------------
# Executing calls (in the child)


def _constructor(kind, p):
    function = getattr(numamap, kind.split(".")[1])
    if kind == "numamap.full":
        arr = as_numpy_fills(p["fill"], p["dtype"], lambda: function(p["shape"], p["fill"], p["dtype"],
                                                                     p["order"], **p["placement"]))
        if arr is None:
            return "OverflowError, as numpy"
    else:
        arr = function(p["shape"], p["dtype"], p["order"], **p["placement"])
    dtype = p["dtype"] if kind != "numamap.full" or p["dtype"] is not None else np.array(p["fill"]).dtype
    if kind == "numamap.ones":
        check_fill(arr, 1)
    elif kind == "numamap.full":
        check_fill(arr, p["fill"])
    elif kind == "numamap.zeros" and arr.size:
        expect(not arr.reshape(-1, order="A").view(np.uint8).any(), "zeros() is not all zeros")
    return check_array(arr, p["shape"], dtype, order=p["order"], arena=from_arena(p["placement"]))


def _like(kind, p):
    function = getattr(numamap, kind.split(".")[1])
    proto = p["prototype"]
    args = (proto, p["fill"]) if kind == "numamap.full_like" else (proto,)
    arr = as_numpy_fills(p.get("fill"), p["dtype"] or proto.dtype,
                         lambda: function(*args, p["dtype"], p["order"], shape=p["shape"], **p["placement"]))
    if arr is None:
        return "OverflowError, as numpy"
    dtype = p["dtype"] if p["dtype"] is not None else proto.dtype
    shape = p["shape"] if p["shape"] is not None else proto.shape
    reference = None
    if nbytes_of(shape, dtype) < TOUCH_LIMIT and not zero_subarray(dtype):
        try:
            reference = np.empty_like(proto, dtype=dtype, order=p["order"], shape=p["shape"])
        except Exception as exc:  # noqa: BLE001 - numpy's verdict
            raise Broken(f"accepted what numpy's empty_like refuses ({exc!r})") from None
        expect(arr.shape == reference.shape and arr.dtype == reference.dtype,
               f"{arr.shape} {arr.dtype}, numpy's empty_like gives {reference.shape} {reference.dtype}")
        # 'K' on a strided prototype is numpy's best effort at its layout: compare the rest
        specified = (p["order"] in ("C", "F") or arr.ndim != proto.ndim
                     or proto.flags.c_contiguous or proto.flags.f_contiguous)
        if arr.ndim > 1 and arr.size > 1 and specified:
            expect(arr.flags.c_contiguous == reference.flags.c_contiguous
                   and arr.flags.f_contiguous == reference.flags.f_contiguous,
                   f"memory order differs from numpy's empty_like (C {arr.flags.c_contiguous}, "
                   f"numpy C {reference.flags.c_contiguous})")
    if kind == "numamap.ones_like":
        check_fill(arr, 1)
    elif kind == "numamap.full_like":
        check_fill(arr, p["fill"])
    return check_array(arr, arr.shape, arr.dtype, order="K", arena=from_arena(p["placement"]))


def _asarray(p):
    source = p["source"]
    if isinstance(source, dict):
        source = build_numamap_array(source)
    kwargs = dict(p["placement"])
    if p["node"] is not None:
        kwargs["node"] = p["node"]
    out = numamap.asarray(source, p["dtype"], p["order"], **kwargs)
    expect(isinstance(out, np.ndarray) and numamap.view_of(out) is not None, "result is not a numamap array")
    try:
        reference = np.asarray(source, dtype=p["dtype"])
    except Exception as exc:  # noqa: BLE001 - numpy's verdict
        raise Broken(f"accepted what np.asarray refuses ({exc!r})") from None
    expect(out.shape == reference.shape and out.dtype == reference.dtype,
           f"{out.shape} {out.dtype}, np.asarray gives {reference.shape} {reference.dtype}")
    expect(np.ascontiguousarray(out).tobytes() == np.ascontiguousarray(reference).tobytes(),
           "values differ from the source")
    if p["order"] == "F" and out.ndim > 1 and out.size > 1:
        expect(out.flags.f_contiguous, "order='F' ignored")
    if kwargs.get("page_size") == "4K" and out.size:
        expect(numamap.view_of(out).page_size == os.sysconf("SC_PAGE_SIZE"), "page_size='4K' ignored")
    return "result"


def _partitioned(p):
    arr = as_numpy_fills(p["fill"], p["dtype"], lambda: numamap.partitioned(
        p["shape"], p["dtype"], nodes=p["nodes"], axis=p["axis"], weights=p["weights"],
        page_size=p["page_size"], fill=p["fill"], populate=p["populate"], strict=p["strict"]))
    if arr is None:
        return "OverflowError, as numpy"
    check_array(arr, p["shape"], p["dtype"], writable=p["fill"] is None)
    if p["fill"] is not None:
        check_fill(arr, p["fill"])
    if arr.ndim:
        start, stop, step = p["slice"]
        for target in (arr, arr[start:stop:step]):
            layout = numamap.blocks(target)
            covered = [i for _, s in layout for i in range(s.start, s.stop)]
            expect(covered == list(range(target.shape[0])),
                   f"blocks() of shape {target.shape} cover rows {[(n, s.start, s.stop) for n, s in layout]}")
    return "result"


def _ring(p):
    ring = numamap.ring_buffer(p["nbytes"], p["dtype"], node=p["node"], policy=p["policy"],
                               populate=p["populate"], strict=p["strict"])
    expect(ring.ndim == 1 and len(ring) % 2 == 0, f"ring of shape {ring.shape}")
    expect(ring.nbytes >= 2 * int(p["nbytes"]), f"{ring.nbytes} bytes for a ring of {p['nbytes']}")
    raw = ring.view(np.uint8)
    half = len(raw) // 2
    raw[half + 3] = 0x77
    raw[half - 1] = 0x66
    expect(raw[3] == 0x77 and raw[-1] == 0x66, "the second half does not mirror the first")
    return "result"


def _reserve(p):
    r = numamap.reserve(p["size"], p["alignment"])
    align = p["alignment"] or os.sysconf("SC_PAGE_SIZE")
    expect(r.address % int(align) == 0, f"address {r.address:#x} not aligned to {align}")
    expect(r.size >= int(p["size"]), f"reserved {r.size} < {p['size']}")
    r.close()
    expect(r.closed, "close() left it open")
    return "result"


def _section(p):
    name = p["named"]
    if name == "fresh":
        name = f"{SHM_PREFIX}{os.getpid()}_{next(_names)}"
    kwargs = {"access": p["access"], "page_size": p["section_page_size"]}
    if name is not None:
        kwargs["name"] = name
    section = numamap.Section(p["size"], **kwargs)
    try:
        view = section.map(p["offset"], p["map_size"], **p["placement"])
        expect(isinstance(view, numamap.View) and view.size >= 1, f"map() gave {view!r}")
        offset = p["array_offset"]
        arr = view.ndarray(p["shape"], p["dtype"], p["order"], offset)
        check_array(arr, p["shape"], p["dtype"], order=p["order"], writable=p["access"] != "r")
        if p["access"] == "r":
            expect(not arr.flags.writeable, "a read-only section gave a writable array")
        if p["access"] in ("rw", "cow") and arr.size and arr.itemsize:
            second = np.asarray(section.map(p["offset"], p["map_size"]))
            first = np.asarray(view)
            first[0] = 0x42
            expect((second[0] == 0x42) == (p["access"] == "rw"),
                   f"access={p['access']!r}: a write {'is not' if p['access'] == 'rw' else 'is'} seen by another view")
        if name is not None and p["access"] == "rw":
            other = numamap.Section.open(name)
            np.asarray(view)[1] = 0x24
            expect(np.asarray(other.map())[1] == 0x24, "Section.open(name) maps other memory")
            other.close()
    finally:
        section.close()
    return "result"


_names = itertools.count()


def _view_ndarray(p):
    view = numamap.zeros(p["n"], dtype="u1", **p["own"]).base
    arr = view.ndarray(p["shape"], p["dtype"], p["order"], p["offset"])
    check_array(arr, p["shape"], p["dtype"], order=p["order"])
    start = arr.__array_interface__["data"][0]
    expect(view.address <= start and start + arr.nbytes <= view.address + view.size,
           "the array reaches outside its view")
    return "result"


def _where(p):
    obj = p["obj"]
    if isinstance(obj, dict):
        obj = build_numamap_array(obj)
    elif obj == "view":
        obj = numamap.ones(5000, page_size="4K").base
    elif obj == "block":  # an arena block: where() takes arrays and Views
        obj = numamap.ones(5000).base
    index = p["index"]
    if isinstance(obj, np.ndarray) and obj.ndim:
        obj = {"first": obj[:1], "empty": obj[:0], "reverse": obj[::-1], None: obj,
               "scalar": obj[0] if obj.size else obj}[index]
    found = numamap.where(obj)
    check_placement(found, obj if isinstance(obj, np.ndarray) else None)
    return "result"


def _migrate(p):
    obj = p["obj"]
    if isinstance(obj, dict):
        obj = build_numamap_array(obj)
    moved = numamap.migrate(obj, p["node"])
    expect(isinstance(moved, numamap.Migration), f"returned {type(moved).__name__}")
    after = moved.after.nodes
    expect(bool(np.all(after[after >= 0] == moved.node)), f"pages left off node {moved.node}: {moved!r}")
    return "result"


def _policy(p):
    from numamap.memory_handler import handler_name

    def make():
        return numamap.policy(p["node"], page_size=p["page_size"], min_size=p["min_size"], strict=p["strict"])

    def allocate():
        arr = np.ones(p["elements"])
        expect(float(arr.sum()) == p["elements"], "an array allocated under the policy lost its data")
        return arr

    before = handler_name()
    program = p["program"]
    try:
        if program == "one":
            with make():
                kept = allocate()
        elif program == "nested":
            with make(), make():
                kept = allocate()
        elif program == "reenter":
            block = make()
            with block:
                with block:
                    kept = allocate()
                kept = allocate()
        elif program == "exit-only":
            try:
                make().__exit__(None, None, None)
            except RuntimeError:
                pass
            kept = allocate()
        else:  # enter p1, enter p2, exit p1, exit p2
            first, second = make(), make()
            first.__enter__()
            second.__enter__()
            kept = allocate()
            try:
                first.__exit__(None, None, None)
            except RuntimeError:
                second.__exit__(None, None, None)
                first.__exit__(None, None, None)
            else:
                second.__exit__(None, None, None)
    finally:
        after = handler_name()
    expect(after == before, f"{program}: the handler is {after!r} after the blocks, was {before!r}")
    expect(float(kept.sum()) == p["elements"], "an array made under the policy changed after the block")
    info = numamap.block_info(kept)
    if program == "exit-only":
        expect(info is None, f"an array made outside every block has a numamap block: {info}")
    elif p["min_size"] == 0:  # every allocation from the arena: a block of the size's kind
        want = "small" if kept.nbytes <= (256 << 10) else "large"
        expect(info is not None and info.kind == want, f"{kept.nbytes} bytes under min_size=0: {info}")
    return "result"


def execute(call):
    kind, p = call
    if kind in ("numamap.empty", "numamap.zeros", "numamap.ones", "numamap.full"):
        return _constructor(kind, p)
    if kind.endswith("_like"):
        return _like(kind, p)
    handler = {"numamap.asarray": _asarray, "numamap.partitioned": _partitioned,
               "numamap.ring_buffer": _ring, "numamap.reserve": _reserve,
               "Section.map.ndarray": _section, "View.ndarray": _view_ndarray, "numamap.where": _where,
               "numamap.migrate": _migrate, "numamap.policy": _policy}[kind]
    return handler(p)


# ---------------------------------------------------------------------------------------------
# The test


def test_random_api_calls_end_in_a_result_or_a_documented_exception():
    findings = Findings(execute, address_limit())

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(st.lists(CALL.filter(affordable), min_size=BATCH, max_size=BATCH))
    def batch(calls):
        findings.record(calls, *run_forked(calls, execute, limit=findings.limit))

    try:
        batch()
    finally:
        remove_named_sections()
    print(findings.summary())
    assert not findings.problems, findings.report()
    assert findings.calls >= MIN_CALLS, f"only {findings.calls} calls ran: {findings.summary()}"


def test_the_runner_sees_crashes_hangs_and_stdout():
    def crash(_):
        os.kill(os.getpid(), signal.SIGSEGV)

    def hang(_):
        select.select([], [], [], 60)

    def chatty(_):
        print("hello")
        return "result"

    def wrong(_):
        expect(False, "made up")

    assert run_forked([1, 2], crash)[1] == [(0, "crash: killed by SIGSEGV")]
    assert run_forked([1], hang, timeout=0.5)[1] == [(0, "hang: no answer within 0.5 s")]
    assert run_forked([1], chatty) == ({0: "result"}, [(None, "printed on stdout: b'hello\\n'")])
    assert run_forked([1, 2], wrong)[1] == [(0, "wrong result: made up"), (1, "wrong result: made up")]
    assert run_forked([1], lambda _: {}[1])[1] == [(0, "undocumented KeyError: 1")]
    calls = [("numamap.reserve", {"size": 1 << 16, "alignment": None}),
             ("numamap.reserve", {"size": -1, "alignment": None})]
    assert run_forked(calls, execute) == ({0: "result", 1: "ValueError"}, [])
