"""Exception and warning types, and the one place errno values become Python exceptions."""
from __future__ import annotations

import errno as _errno
import os
import sys
import warnings

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


class FallbackError(OSError):
    """``strict=True`` was given and numamap could not get exactly what was asked for."""


class FallbackWarning(UserWarning):
    """An explicit request (a node binding, a page size) could not be honoured and numamap fell
    back; the result's ``fallback`` attribute says what it got instead."""


def raise_errno(err: int, what: str, hint: str = "") -> None:
    """Raise the exception that fits ``err`` for the call described by ``what``.

    ENOMEM becomes MemoryError, EINVAL ValueError, anything else OSError carrying errno.
    """
    if err == 0:
        return
    message = f"{what}: {os.strerror(err)}"
    if hint:
        message += f". {hint}"
    if err == _errno.ENOMEM:
        raise MemoryError(message)
    if err == _errno.EINVAL:
        raise ValueError(message)
    raise OSError(err, message)


def warn_fallback(message: str) -> None:
    """Warn with FallbackWarning at the first caller outside numamap, however deep the call."""
    frame, level = sys._getframe(1), 2
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE_DIR + os.sep):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, FallbackWarning, stacklevel=level)
