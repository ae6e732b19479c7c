"""Linux backend: the NEP 49 memory handler written in C (``_linux_policy.c``), made and read.

``handler_new`` wraps the C handler in the PyCapsule numpy wants; ``_linux`` re-exports these
as the contract's names.
"""
from __future__ import annotations

import ctypes

from ._linux_cffi import ffi, lib
from ._linux_errors import ERRORS
from ._records import BlockInfo, HandlerConfig, HandlerStats


_THP_ADVICE = {"leave": "NM_POLICY_THP_LEAVE", "ask": "NM_POLICY_THP_ASK", "forbid": "NM_POLICY_THP_FORBID"}
_BLOCK_KINDS = {lib.NM_BLOCK_SMALL: "small", lib.NM_BLOCK_MAPPED: "mapped", lib.NM_BLOCK_HUGETLB: "hugetlb"}


def _capsule_api():
    new = ctypes.pythonapi["PyCapsule_New"]  # a fresh object: ctypes.pythonapi's own stays untouched
    new.restype, new.argtypes = ctypes.py_object, (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)
    pointer = ctypes.pythonapi["PyCapsule_GetPointer"]
    pointer.restype, pointer.argtypes = ctypes.c_void_p, (ctypes.py_object, ctypes.c_char_p)
    return new, pointer


_CAPSULE_NEW, _CAPSULE_POINTER = _capsule_api()


def handler_new(config: HandlerConfig):
    """A C handler for ``config`` in a PyCapsule named 'mem_handler' whose destructor frees it."""
    if len(config.auto_huge_pages) > lib.NM_POLICY_AUTO_SIZES:
        raise ValueError(f"at most {lib.NM_POLICY_AUTO_SIZES} automatic huge page sizes")
    native = ffi.new("nm_policy_config *")
    name = ffi.new("char[]", config.name.encode())
    native.name = name
    native.node = config.node
    native.min_size = config.min_size
    native.base_page = config.base_page
    native.thp = getattr(lib, _THP_ADVICE[config.thp])
    native.thp_size = config.thp_size
    native.huge_page = config.huge_page
    for i, size in enumerate(config.auto_huge_pages):
        native.auto_huge_pages[i] = size
    out = ffi.new("void **")
    ERRORS.check("nm_policy_new", lib.nm_policy_new(native, out), "creating the memory handler")
    try:
        return _CAPSULE_NEW(int(ffi.cast("uintptr_t", out[0])),
                            int(ffi.cast("uintptr_t", lib.nm_policy_capsule_name())),
                            int(lib.nm_policy_capsule_destructor()))
    except BaseException:
        lib.nm_policy_delete(out[0])
        raise


def _handler_of(capsule):
    return ffi.cast("void *", _CAPSULE_POINTER(capsule, b"mem_handler"))


def handler_check(capsule) -> int:
    """errno of placing one page as the handler would (0: it can)."""
    return int(lib.nm_policy_check(_handler_of(capsule)))


def handler_stats(capsule) -> HandlerStats:
    out = ffi.new("nm_policy_stats *")
    lib.nm_policy_get_stats(_handler_of(capsule), out)
    return HandlerStats(*(int(getattr(out, name)) for name in HandlerStats._fields))


def handler_block_info(address: int) -> BlockInfo | None:
    info = ffi.new("nm_block_info *")
    if lib.nm_policy_block_info(ffi.cast("void *", address), info) != 0:
        return None
    return BlockInfo(_BLOCK_KINDS[info.kind], int(info.size), int(info.length), int(info.page_size))
