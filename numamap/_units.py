"""Byte sizes and page sizes: parsing what users type and printing what they got."""
from __future__ import annotations

import re
from fractions import Fraction

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30

_SUFFIX = {"": 1, "B": 1, "K": KiB, "M": MiB, "G": GiB, "T": GiB * KiB}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*$", re.IGNORECASE)

#: The largest byte count numamap accepts: more than any 64-bit address space can map, and small
#: enough that sizes rounded up or added to an alignment still fit the system calls' size_t.
MAX_BYTES = 1 << 62

#: Names accepted for ``page_size``; ``'auto'`` picks the best the machine can serve.
PAGE_SIZE_NAMES = ("auto", "4K", "2M", "1G")


def check_byte_count(value: int, name: str = "size") -> int:
    """``value`` if it is at most :data:`MAX_BYTES`, else ValueError naming ``name``.

    Sizes of 2**63 and up would otherwise overflow the native calls (OverflowError).
    """
    if value > MAX_BYTES:
        shown = str(value) if value < 10**24 else f"about 10**{len(str(value)) - 1}"
        raise ValueError(f"{name}={shown} bytes is more than any address space can map: numamap "
                         f"takes at most 2**62 bytes ({format_bytes(MAX_BYTES)})")
    return value


def parse_size(value: int | str, *, name: str = "size") -> int:
    """Return a byte count from an int or a string such as ``'4G'`` or ``'512 MiB'``."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int or a string like '4G', not bool")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
        return check_byte_count(value, name)
    if isinstance(value, str):
        match = _SIZE_RE.match(value)
        if match is None:
            raise ValueError(f"{name}={value!r} is not a size: use bytes or a suffix, e.g. '64K', '4G'")
        # Fraction, not float: exact, and a long string of digits cannot overflow to infinity
        return check_byte_count(int(Fraction(match.group(1)) * _SUFFIX[match.group(2).upper()]), name)
    raise TypeError(f"{name} must be an int or a string like '4G', not {type(value).__name__}")


def parse_page_size(value: int | str | None, *, name: str = "page_size") -> int | None:
    """Return the page size in bytes, or None for ``'auto'``.

    Accepts ``'auto'``, ``'4K'``, ``'2M'``, ``'1G'`` and the same sizes as ints.
    """
    if value is None or (isinstance(value, str) and value.strip().lower() == "auto"):
        return None
    try:
        size = parse_size(value, name=name)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{exc}; {name} must be one of {', '.join(PAGE_SIZE_NAMES)}") from None
    if size not in (4 * KiB, 16 * KiB, 64 * KiB, 2 * MiB, 32 * MiB, 512 * MiB, 1 * GiB):
        raise ValueError(f"{name}={value!r} is not a page size: use one of {', '.join(PAGE_SIZE_NAMES)}")
    return size


def format_bytes(n: int | float) -> str:
    """``1536`` -> ``'1.5 KiB'``; exact powers print without decimals (``'2 MiB'``)."""
    n = float(n)
    for unit, scale in (("TiB", GiB * KiB), ("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if abs(n) >= scale:
            value = n / scale
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{n:.0f} B"


def page_size_name(size: int) -> str:
    """``2097152`` -> ``'2M'``, the spelling ``page_size=`` accepts."""
    for unit, scale in (("G", GiB), ("M", MiB), ("K", KiB)):
        if size >= scale and size % scale == 0:
            return f"{size // scale}{unit}"
    return str(size)


def round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def file_section_size(size: int, current: int, access: str) -> int:
    """The size of a file-backed section: ``size``, or the file's ``current`` size when 0.

    Raises ValueError for an empty file with no size, or a size past the end of the file that
    ``access`` cannot extend (both backends extend files only for ``access='rw'``).
    """
    size = size or current
    if size == 0:
        raise ValueError("size=0 and the file is empty: give a size to extend it")
    if size > current and access != "rw":
        raise ValueError(f"size={size} is beyond the end of the file ({current} bytes) and "
                         f"access={access!r} cannot extend it: use access='rw'")
    return size
