"""Sections: memory that views map, the analogue of CreateFileMappingNuma / CreateFileMapping2."""
from __future__ import annotations

import html
import os
import weakref

from ._backend import backend
from ._units import check_byte_count, format_bytes, page_size_name, parse_page_size, round_up
from .view import View, map_memory

ACCESS_MODES = ("rw", "r", "cow")


def _check_access(access: str) -> str:
    if access not in ACCESS_MODES:
        raise ValueError(f"access={access!r} is not one of 'rw', 'r', 'cow'")
    return access


def _refuse_large_page_cow(access: str) -> None:
    if access == "cow":
        raise ValueError("access='cow' is not available for large-page sections: a copied huge "
                         "page comes from the pool when first written, and a forked child that "
                         "finds the pool empty dies of SIGBUS; use access='rw' or 'r'")


def _reopen(name: str, access: str) -> "Section":
    """Unpickle a named Section: open its name again in this process."""
    return Section.open(name, access=access)


class Section:
    """Memory that one or more views map, backed by anonymous memory or a file.

    Parameters
    ----------
    size : int
        Bytes. For a file, 0 means the file's size; a larger size extends the file.
    file : str, os.PathLike or int, optional
        A path or an open file descriptor to back the section. Anonymous memory (memfd, or a
        pagefile-backed section on Windows) when omitted.
    name : str, optional
        Makes the section openable from another process with :meth:`Section.open` (created with
        mode 0600; the name goes away when this Section is closed).
    access : {'rw', 'r', 'cow'}
        Read-write, read-only, or copy-on-write (each view's writes are private to it). A file
        is opened read-only for 'r' and 'cow'. Large-page sections refuse 'cow' (see
        docs/hugepages.md: a private huge page copied in a forked child can fail with SIGBUS).
    page_size : {'4K', '2M', '1G'}
        '2M' and '1G' make a large-page section (hugetlb on Linux, SEC_LARGE_PAGES on Windows).

    Notes
    -----
    A Section that is dropped without :meth:`close` is closed when it is garbage collected
    (its handle, and its name if it has one); views mapped from it stay valid either way.
    Named sections pickle (and ``copy.deepcopy``) by name: unpickling reopens the name with
    :meth:`Section.open`. Anonymous sections refuse to pickle: their handle means nothing in
    another process.

    Examples
    --------
    >>> import numpy as np, numamap
    >>> with numamap.Section(1 << 20) as sec:
    ...     a, b = sec.map(), sec.map()
    ...     np.asarray(a)[:3] = [1, 2, 3]
    ...     np.asarray(b)[:3].tolist()
    [1, 2, 3]
    """

    def __init__(self, size: int, *, file=None, name: str | None = None, access: str = "rw",
                 page_size="4K"):
        if isinstance(size, bool) or not isinstance(size, int):
            raise TypeError(f"size must be an int number of bytes, not {type(size).__name__}")
        if size < 0 or (size == 0 and file is None):
            raise ValueError(f"size must be > 0 (0 is allowed only with file=, meaning its size), got {size}")
        check_byte_count(size, "size")
        _check_access(access)
        huge = parse_page_size(page_size)
        if huge is None:
            raise ValueError("page_size='auto' is for views; a section is '4K', '2M' or '1G'")
        if huge == backend.base_page_size():
            huge = None
        elif huge not in backend.huge_page_sizes():
            raise ValueError(f"page_size={page_size!r}: this system has no {page_size_name(huge)} pages")
        if huge is not None:
            if file is not None:
                raise ValueError("large-page sections are anonymous: drop file= or use page_size='4K'")
            _refuse_large_page_cow(access)
            size = round_up(size, huge)
        if name is not None and file is not None:
            raise ValueError("give either name= or file=, not both")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str, not {type(name).__name__}")
        path = fd = None
        if isinstance(file, int) and not isinstance(file, bool):
            fd = file
        elif file is not None:
            path = os.fspath(file)
        self._adopt(backend.create_section(size, page_size=huge, access=access, path=path,
                                           fd=fd, name=name), name, access)

    @classmethod
    def open(cls, name: str, *, access: str = "rw") -> "Section":
        """Open a named section that this or another process created."""
        if not isinstance(name, str):
            raise TypeError(f"name must be a str, not {type(name).__name__}")
        self = cls.__new__(cls)
        handle = backend.open_section(name, _check_access(access))
        if handle.page_size is not None and access == "cow":
            handle.close()
            _refuse_large_page_cow(access)
        self._adopt(handle, name, access)
        return self

    def _adopt(self, handle, name: str | None, access: str) -> None:
        self._handle = handle
        self.name = name
        self.access = access
        # Closes the handle (and unlinks the name) when the Section is dropped without close().
        # Views hold the handle, never the Section, and need no open handle: the mapping holds
        # the memory. So the finalizer runs as soon as the Section itself is unreachable.
        self._finalizer = weakref.finalize(self, handle.close)

    def __reduce__(self):
        if self.name is None:
            raise TypeError("cannot pickle an anonymous numamap.Section: its handle means nothing "
                            "in another process. Create it with name= (the copy reopens it with "
                            "Section.open), or share it with a forked child")
        if self.closed:
            raise ValueError(f"cannot pickle the closed section {self.name!r}")
        return _reopen, (self.name, self.access)

    @property
    def size(self) -> int:
        return self._handle.size

    @property
    def page_size(self) -> int:
        """The section's page size in bytes (the base page for ordinary sections)."""
        return self._handle.page_size or backend.base_page_size()

    @property
    def closed(self) -> bool:
        return self._handle.closed

    def map(self, offset: int = 0, size: int = 0, *, node=None, policy: str = "preferred",
            nodes=None, page_size="auto", populate: bool = False, address: int | None = None,
            strict: bool = False) -> View:
        """Map a view of the section: the analogue of MapViewOfFile3 / MapViewOfFileExNuma.

        Parameters
        ----------
        offset : int
            A multiple of :func:`numamap.allocation_granularity` (and of the page size for
            large-page sections).
        size : int
            Bytes; 0 means to the end of the section.
        node : int, optional
            The node for the view's pages (``MemExtendedParameterNumaNode``).
        policy : {'preferred', 'bind', 'interleave'}
            How strictly the pages keep to the node(s).
        nodes : sequence of int, optional
            Nodes for 'bind' or 'interleave' (all memory nodes for 'interleave' by default).
        page_size : {'auto', '4K', '2M', '1G'}
            Must match a large-page section; 'auto' takes the section's.
        populate : bool
            Fault every page in now, and verify where it landed.
        address : int, optional
            Map exactly here, inside a :func:`numamap.reserve` range not used by a live view.
        strict : bool
            Turn any fallback into an error.

        Returns
        -------
        View
        """
        if self.closed:
            raise ValueError("this section is closed")
        for label, value in (("offset", offset), ("size", size)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{label} must be an int, not {type(value).__name__}")
            if value < 0:
                raise ValueError(f"{label} must be >= 0, got {value}")
        granularity = backend.allocation_granularity()
        if offset % granularity:
            raise ValueError(f"offset={offset} must be a multiple of the allocation granularity "
                             f"({granularity}, numamap.allocation_granularity())")
        if offset >= self.size:
            raise ValueError(f"offset={offset} is at or beyond the end of the {self.size}-byte section")
        if size == 0:
            size = self.size - offset
        if offset + size > self.size:
            raise ValueError(f"offset={offset} + size={size} runs past the end of the "
                             f"{self.size}-byte section")
        return map_memory(size, section=self._handle, offset=offset, access=self.access, node=node,
                          policy=policy, nodes=nodes, page_size=page_size, populate=populate,
                          address=address, strict=strict)

    def close(self) -> None:
        """Close the section's handle (and its name). Views already mapped stay valid."""
        self._finalizer()

    def __enter__(self) -> "Section":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        label = f" {self.name!r}" if self.name else ""
        state = ", closed" if self.closed else ""
        return (f"<numamap.Section{label} {format_bytes(self.size)}, {page_size_name(self.page_size)} "
                f"pages, access={self.access!r}{state}>")

    def _repr_html_(self) -> str:
        rows = [("name", self.name or "(anonymous)"), ("size", format_bytes(self.size)),
                ("pages", page_size_name(self.page_size)), ("access", self.access),
                ("state", "closed" if self.closed else "open")]
        body = "".join(f"<tr><th>{k}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
        return f"<b>numamap.Section</b><table>{body}</table>"
