"""Linux backend: the NEP 49 memory handler (C, ``_arena_handler.c``) over the node arenas.

``handler_new`` wraps the C handler in the PyCapsule numpy wants; ``_linux`` re-exports these
as the contract's names.
"""
from __future__ import annotations

import ctypes

from ._linux_arenas import KINDS, block_record, ensure_configured
from ._linux_cffi import ffi, lib
from ._linux_errors import ERRORS
from ._records import BlockInfo, HandlerConfig, HandlerStats


def _capsule_api():
    new = ctypes.pythonapi["PyCapsule_New"]  # a fresh object: ctypes.pythonapi's own stays untouched
    new.restype, new.argtypes = ctypes.py_object, (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)
    pointer = ctypes.pythonapi["PyCapsule_GetPointer"]
    pointer.restype, pointer.argtypes = ctypes.c_void_p, (ctypes.py_object, ctypes.c_char_p)
    return new, pointer


_CAPSULE_NEW, _CAPSULE_POINTER = _capsule_api()
ERRORS.check("nm_handler_set_capsule_api", lib.nm_handler_set_capsule_api(
    ctypes.cast(ctypes.pythonapi.PyCapsule_GetPointer, ctypes.c_void_p).value),
    "setting up the memory handler")


def handler_new(config: HandlerConfig):
    """A C handler for ``config`` in a PyCapsule named 'mem_handler' whose destructor frees it."""
    ensure_configured(refresh=True)
    native = ffi.new("nm_handler_config *")
    name = ffi.new("char[]", config.name.encode())
    native.name = name
    native.node = config.node
    native.kind = KINDS[config.page_kind]
    native.min_size = config.min_size
    out = ffi.new("void **")
    ERRORS.check("nm_handler_new", lib.nm_handler_new(native, out), "creating the memory handler")
    try:
        return _CAPSULE_NEW(int(ffi.cast("uintptr_t", out[0])),
                            int(ffi.cast("uintptr_t", lib.nm_handler_capsule_name())),
                            int(lib.nm_handler_capsule_destructor()))
    except BaseException:
        lib.nm_handler_delete(out[0])
        raise


def handler_pointer(capsule) -> int:
    """The address of the PyDataMem_Handler inside a 'mem_handler' capsule."""
    return _CAPSULE_POINTER(capsule, b"mem_handler")


def _handler_of(capsule):
    return ffi.cast("void *", handler_pointer(capsule))


def handler_check(capsule) -> int:
    """errno of placing one chunk as the handler would (0: it can)."""
    return int(lib.nm_handler_check(_handler_of(capsule)))


def handler_stats(capsule) -> HandlerStats:
    out = ffi.new("nm_handler_stats *")
    lib.nm_handler_get_stats(_handler_of(capsule), out)
    return HandlerStats(*(int(getattr(out, name)) for name in HandlerStats._fields))


def handler_block_info(address: int) -> BlockInfo | None:
    """The block a numamap handler gave at ``address`` (malloc'd when no arena knows it)."""
    info = ffi.new("nm_block_info *")
    lib.nm_handler_block_info(ffi.cast("void *", address), 1, info)
    return block_record(info)
