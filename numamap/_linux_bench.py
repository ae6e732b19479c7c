"""Linux backend: the native helpers of ``numamap bench``.

``copy_bandwidth`` runs the pthread copy loop of ``_bench_native.c`` (its own cffi module,
``numamap._bench_cffi``, outside the core bindings); ``map_unmap_cost`` gives the benchmark the
kernel's bare mmap + munmap to compare numamap's allocations with. ``_linux`` re-exports both
as the contract's names. Arguments are checked here, so the C code sees only what it accepts;
what the kernel refuses goes through the backend's one table, ``_linux_errors.ERRORS``.
"""
from __future__ import annotations

import operator
from typing import Callable, Sequence

from ._bench_cffi import ffi as bench_ffi, lib as bench_lib
from ._linux_cffi import ffi, lib
from ._linux_errors import ERRORS

_INT_MAX = 2**31 - 1
_SIZE_MAX = 2 ** (8 * ffi.sizeof("size_t")) - 1


def _whole(name: str, value) -> int:
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(value).__name__}") from None


def _cpu_list(cpus: Sequence[int]) -> list[int]:
    try:
        out = [operator.index(cpu) for cpu in cpus]
    except TypeError:
        raise TypeError(f"cpus must be a sequence of CPU numbers (ints), got {cpus!r}") from None
    if not out:
        raise ValueError("cpus is empty: name at least one CPU, e.g. sorted(os.sched_getaffinity(0))")
    if len(out) > bench_lib.NMB_MAX_THREADS:
        raise ValueError(f"cpus names {len(out)} CPUs; at most {bench_lib.NMB_MAX_THREADS} threads "
                         "are measured at once")
    bad = [cpu for cpu in out if not 0 <= cpu <= _INT_MAX]
    if bad:
        raise ValueError(f"cpus holds {bad}, which are not CPU numbers (CPUs count from 0)")
    return out


def copy_bandwidth(cpus: Sequence[int], bytes_per_thread: int, repeat: int) -> list[float]:
    """GB/s (bytes read + bytes written, 1e9 bytes/s) of memcpy on pinned threads, per timed pass.

    One thread per entry of ``cpus``, pinned to that CPU, copies its own ``bytes_per_thread``
    buffers (first touched by that thread, so they sit on its node); after a warm-up pass, all
    threads start together ``repeat`` times. Raises ValueError for an empty ``cpus``, a CPU
    this process may not use, or ``bytes_per_thread``/``repeat`` out of range, and MemoryError
    when the buffers cannot be had.
    """
    cpus = _cpu_list(cpus)
    bytes_per_thread = _whole("bytes_per_thread", bytes_per_thread)
    repeat = _whole("repeat", repeat)
    if not 1 <= repeat <= bench_lib.NMB_MAX_REPEAT:
        raise ValueError(f"repeat={repeat}: pass 1 to {bench_lib.NMB_MAX_REPEAT} timed passes")
    if bytes_per_thread < bench_lib.NMB_MIN_BYTES:
        raise ValueError(f"bytes_per_thread={bytes_per_thread}: pass at least "
                         f"{bench_lib.NMB_MIN_BYTES} bytes")
    if bytes_per_thread > _SIZE_MAX // 4 // len(cpus):
        raise ValueError(f"bytes_per_thread={bytes_per_thread} is more than the address space "
                         f"holds for {len(cpus)} threads")
    out = bench_ffi.new("double[]", repeat)
    code = bench_lib.nmb_copy_bandwidth(bench_ffi.new("int[]", cpus), len(cpus), bytes_per_thread,
                                        repeat, out)
    ERRORS.check("copy_bandwidth", code, f"cpus={cpus}, bytes_per_thread={bytes_per_thread}")
    return list(out)


def map_unmap_cost(nbytes: int) -> Callable[[], None]:
    """A callable that maps ``nbytes`` of private anonymous memory and unmaps it, once per call.

    What the kernel's calls cost with nothing of numamap around them; raises (through the
    backend's error table) when either call fails.
    """
    nbytes = _whole("nbytes", nbytes)
    if not 0 < nbytes <= _SIZE_MAX:
        raise ValueError(f"nbytes={nbytes}: map at least one byte")
    out = ffi.new("void **")
    prot = lib.PROT_READ | lib.PROT_WRITE
    flags = lib.MAP_PRIVATE | lib.MAP_ANONYMOUS

    def mmap_munmap() -> None:
        # Inline checks: this is the loop being timed, so no call is added on success.
        code = lib.nm_mmap(ffi.NULL, nbytes, prot, flags, -1, 0, out)
        if code:
            raise ERRORS.exception("mmap", code, f"{nbytes} bytes")
        code = lib.nm_munmap(out[0], nbytes)
        if code:
            raise ERRORS.exception("munmap", code, f"{nbytes} bytes")

    return mmap_munmap


def handler_churn(capsules: Sequence, pairs: int, max_size: int) -> float:
    """Seconds for one thread per capsule (a numamap.policy handler) to malloc and free ``pairs``
    blocks of 1 to ``max_size`` bytes through that handler, all threads starting together."""
    from ._linux_handler import handler_pointer

    pairs, max_size = _whole("pairs", pairs), _whole("max_size", max_size)
    if not capsules or len(capsules) > bench_lib.NMB_MAX_THREADS:
        raise ValueError(f"capsules: pass 1 to {bench_lib.NMB_MAX_THREADS} handlers, one per thread")
    if pairs < 1 or max_size < 1:
        raise ValueError(f"pairs={pairs} and max_size={max_size} must both be at least 1")
    handlers = bench_ffi.new("void *[]", [bench_ffi.cast("void *", handler_pointer(c)) for c in capsules])
    seconds = bench_ffi.new("double *")
    ERRORS.check("handler_churn", bench_lib.nmb_handler_churn(handlers, len(capsules), pairs, max_size,
                                                             seconds), "churning allocations")
    return float(seconds[0])
