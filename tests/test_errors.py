"""The error boundary: each backend's table from (call, code) to exception type and hint."""
import errno
import importlib

import pytest

from numamap import _errors
from numamap._linux_errors import ERRORS as LINUX

# The same condition raises the same type on both systems (issue: one error boundary).
SAME_CONDITION = [
    (errno.EINVAL, 87, ValueError),
    (errno.ENOMEM, 8, MemoryError),
    (errno.ENOMEM, 1455, MemoryError),  # ERROR_COMMITMENT_LIMIT
    (errno.EPERM, 1314, PermissionError),  # ERROR_PRIVILEGE_NOT_HELD
    (errno.EACCES, 5, PermissionError),
]


def _windows_table():
    try:
        return importlib.import_module("numamap._windows_errors").ERRORS
    except ImportError as exc:  # pragma: no cover - the failure is the finding
        pytest.fail(f"the Windows error table must import on every host: {exc}")


@pytest.mark.parametrize("code, winerror, kind", SAME_CONDITION)
def test_same_condition_same_type_on_both_systems(code, winerror, kind):
    linux = LINUX.exception("some_call", code, "what was asked")
    windows = _windows_table().exception("SomeCall", winerror, "what was asked")
    assert type(linux) is kind and type(windows) is kind
    assert "some_call (what was asked)" in str(linux) and "SomeCall (what was asked)" in str(windows)
    if issubclass(kind, OSError):
        assert linux.errno == code
        assert windows.winerror == winerror


def test_unknown_codes_are_oserror_carrying_the_code():
    linux = LINUX.exception("mmap", errno.ENODEV)
    assert type(linux) is OSError and linux.errno == errno.ENODEV and "ENODEV" in str(linux)
    windows = _windows_table().exception("VirtualAlloc2", 1450)  # ERROR_NO_SYSTEM_RESOURCES
    assert type(windows) is OSError and windows.winerror == 1450 and "winerror 1450" in str(windows)


def test_rules_add_the_hint_a_user_needs():
    refused = LINUX.exception("mbind", errno.EPERM)
    assert isinstance(refused, PermissionError) and "CAP_SYS_NICE" in str(refused)
    assert "seccomp" in str(LINUX.exception("move_pages", errno.EPERM))
    assert isinstance(LINUX.exception("populate", errno.EFAULT), MemoryError)
    assert "cpuset" in str(LINUX.exception("mbind", errno.EINVAL))


def test_check_passes_zero_and_raises_the_rest():
    LINUX.check("munmap", 0)
    with pytest.raises(ValueError, match="munmap"):
        LINUX.check("munmap", errno.EINVAL)


def test_boundary_converts_plain_oserrors_and_keeps_specific_ones():
    table = _errors.ErrorTable(_errors.ERRNO_DEFAULTS, {("call", errno.EIO): _errors.Rule(OSError, "look")},
                               lambda code: "message")

    @table.boundary("call")
    def raises(exc):
        raise exc

    with pytest.raises(ValueError) as info:
        raises(OSError(errno.EINVAL, "bad"))
    assert isinstance(info.value.__cause__, OSError)
    with pytest.raises(FileNotFoundError, match="gone"):  # already specific: left alone
        raises(FileNotFoundError(errno.ENOENT, "gone"))
    with pytest.raises(OSError, match="look"):
        raises(OSError(errno.EIO, "io"))


def test_every_backend_call_goes_through_its_table():
    """No backend module raises from an errno or winerror by hand: they use ERRORS."""
    import pathlib
    import re

    package = pathlib.Path(_errors.__file__).parent
    for path in list(package.glob("_linux*.py")) + list(package.glob("_windows*.py")):
        text = path.read_text()
        assert not re.search(r"raise (OSError|MemoryError|ValueError)\(\s*(err|rc|code)\b", text), path.name
        assert "raise_errno" not in text, path.name
