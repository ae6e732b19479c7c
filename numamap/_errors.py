"""Exception and warning types, and the error boundary every backend applies.

Each backend owns one :class:`ErrorTable`: a map from (call, code) to the exception type and a
hint, over a per-code default. Every failing system call is turned into a Python exception by
that table and nowhere else, so the same condition raises the same type on every system:

=================================================  ===============
condition (Linux errno / Windows error)             exception
=================================================  ===============
EINVAL / ERROR_INVALID_PARAMETER                    ValueError
ENOMEM / ERROR_NOT_ENOUGH_MEMORY, COMMITMENT_LIMIT  MemoryError
EPERM, EACCES / ERROR_PRIVILEGE_NOT_HELD            PermissionError
anything else                                       OSError (errno or winerror)
=================================================  ===============
"""
from __future__ import annotations

import errno as _errno
import functools
import os
import sys
import warnings
from typing import Callable, Mapping, NamedTuple

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


class FallbackError(OSError):
    """``strict=True`` was given and numamap could not get exactly what was asked for."""


class FallbackWarning(UserWarning):
    """An explicit request (a node binding, a page size) could not be honoured and numamap fell
    back; the result's ``fallback`` attribute says what it got instead."""


#: Why a NUMA call fails with EPERM on a machine that has nodes, and the two ways to fix it.
CONTAINER_HINT = ("the kernel refused the NUMA call (EPERM): inside a container this needs "
                  "CAP_SYS_NICE (docker run --cap-add SYS_NICE) or a seccomp profile that allows "
                  "mbind, set_mempolicy, get_mempolicy and move_pages (see docs/containers.md)")


class Rule(NamedTuple):
    """What one (call, code) pair raises, and the hint added to its message."""

    exception: type[BaseException]
    hint: str = ""


class ErrorTable:
    """One backend's boundary from system error codes to exceptions.

    Parameters
    ----------
    by_code : mapping of int to exception type
        The default type for a code, whatever the call.
    rules : mapping of (str, int) to Rule
        Overrides for one call and code, with the hint a user needs.
    describe : callable
        ``code -> str``: the system's message for a code.
    winerror : bool
        Whether codes are Windows error codes (carried as ``winerror``) rather than errno.
    """

    def __init__(self, by_code: Mapping[int, type[BaseException]],
                 rules: Mapping[tuple[str, int], Rule], describe: Callable[[int], str], *,
                 winerror: bool = False):
        self.by_code = dict(by_code)
        self.rules = dict(rules)
        self.describe = describe
        self.winerror = winerror

    def exception(self, call: str, code: int, detail: str = "") -> BaseException:
        """The exception for ``call`` failing with ``code``; ``detail`` says what was asked."""
        rule = self.rules.get((call, code)) or Rule(self.by_code.get(code, OSError))
        label = f"winerror {code}" if self.winerror else (_errno.errorcode.get(code, str(code)))
        text = f"{call}{' (' + detail + ')' if detail else ''}: {self.describe(code).strip()} ({label})"
        if rule.hint:
            text += f". {rule.hint}"
        kind = rule.exception
        if not issubclass(kind, OSError):
            return kind(text)
        if not self.winerror:
            return kind(code, text)
        exc = kind(_WINERROR_ERRNO.get(code), text, None, code)
        if getattr(exc, "winerror", None) != code:
            exc.winerror = code  # OSError keeps winerror only on Windows; tests read it anywhere
        return exc

    def check(self, call: str, code: int, detail: str = "") -> None:
        """Raise for a non-zero ``code`` returned by ``call``; do nothing for 0."""
        if code:
            raise self.exception(call, code, detail)

    def boundary(self, call: str):
        """Decorator for an entry point: an OSError raised inside (by ``os``, say) leaves it
        converted by this table, with the original kept as the cause."""
        def wrap(function):
            @functools.wraps(function)
            def entry(*args, **kwargs):
                try:
                    return function(*args, **kwargs)
                except OSError as exc:
                    code = getattr(exc, "winerror", None) if self.winerror else exc.errno
                    if not code or type(exc) is not OSError and (call, code) not in self.rules:
                        raise  # already specific (FileNotFoundError...) or already converted
                    raise self.exception(call, code, exc.filename or "") from exc
            return entry
        return wrap


# The errno Python gives each Windows error it knows (so PermissionError etc. still match).
_WINERROR_ERRNO = {2: _errno.ENOENT, 5: _errno.EACCES, 8: _errno.ENOMEM, 14: _errno.ENOMEM,
                   87: _errno.EINVAL, 1314: _errno.EPERM, 1455: _errno.ENOMEM, 183: _errno.EEXIST}

#: The shared defaults of the table above: errno values.
ERRNO_DEFAULTS = {_errno.EINVAL: ValueError, _errno.ENOMEM: MemoryError, _errno.EPERM: PermissionError,
                  _errno.EACCES: PermissionError, _errno.ENOENT: FileNotFoundError,
                  _errno.EEXIST: FileExistsError}
#: ... and Windows error codes.
WINERROR_DEFAULTS = {87: ValueError, 8: MemoryError, 14: MemoryError, 1455: MemoryError,
                     5: PermissionError, 1314: PermissionError, 2: FileNotFoundError,
                     183: FileExistsError}


_warned_once: set[str] = set()

#: The condition of a container (seccomp, no CAP_SYS_NICE) refusing NUMA calls: placement refused
#: and placement unreadable are one story, told once per process.
NUMA_REFUSED = "the kernel refuses NUMA calls"


def warn_fallback(message: str, *, once: str | None = None) -> None:
    """Warn with FallbackWarning at the first caller outside numamap, however deep the call.

    ``once`` names a condition that is warned about once per process (a container refusing
    every NUMA call, say): later fallbacks for it are still recorded, but not warned again.
    """
    if once is not None:
        if once in _warned_once:
            return
        _warned_once.add(once)
    frame, level = sys._getframe(1), 2
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE_DIR + os.sep):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, FallbackWarning, stacklevel=level)
