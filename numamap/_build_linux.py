"""cffi build script for the Linux native layer (API mode, compiled by setuptools).

Run by ``pip install`` through ``setup.py``'s ``cffi_modules``. It must not import numamap.
Set ``NUMAMAP_WERROR=1`` to compile with ``-Wall -Wextra -Werror`` (CI does).

Every declaration is written once, in a header: each header marks a region between
``/* cdef begin */`` and ``/* cdef end */`` that the C sources include and that cffi parses as it
stands, so the region holds only what both read alike (prototypes, plain structs,
``#define NAME <integer>``). The only names listed here are the system's constants that Python
reads from ``lib``: their values come from the C library's headers, so cffi is told
``#define NAME ...`` and asks the compiler. ``_build_bench.py`` uses the helpers below too.
"""
import os
import pathlib
import re

import cffi

HERE = pathlib.Path(__file__).resolve().parent

HEADERS = ("_linux_native.h", "_arena.h", "_arena_handler.h", "_linux_buffer.h")
SOURCES = ("_linux_native.c", "_arena.c", "_arena_runs.c", "_linux_arena_os.c", "_arena_handler.c",
           "_linux_buffer.c")

# Constants of <sys/mman.h> and memfd_create that the backend passes to the calls above
# (_linux_native.h supplies them where an old C library lacks them).
SYSTEM_CONSTANTS = (
    "PROT_NONE", "PROT_READ", "PROT_WRITE",
    "MAP_SHARED", "MAP_PRIVATE", "MAP_ANONYMOUS", "MAP_FIXED", "MAP_NORESERVE", "MAP_HUGETLB",
    "MAP_HUGE_SHIFT",
    "MADV_HUGEPAGE", "MADV_NOHUGEPAGE",
    "MFD_CLOEXEC", "MFD_HUGETLB",
)

_REGION = re.compile(r"/\* cdef begin \*/(.*?)/\* cdef end \*/", re.S)
_PLAIN_DEFINE = re.compile(r"#define [A-Za-z_]\w* (0x[0-9A-Fa-f]+|[0-9]+)(\s|/\*|$)")


def header_cdef(name: str) -> str:
    """The cdef region of the header ``name`` (in this folder), checked to be one cffi can read."""
    path = HERE / name
    regions = _REGION.findall(path.read_text(encoding="utf-8"))
    if len(regions) != 1:
        raise RuntimeError(f"{path}: needs exactly one region between '/* cdef begin */' and "
                           f"'/* cdef end */', found {len(regions)}")
    for line in regions[0].splitlines():
        line = line.strip()
        if line.startswith("#") and not _PLAIN_DEFINE.match(line):
            raise RuntimeError(f"{path}: cffi cannot read {line!r}; the cdef region may hold "
                               "'#define NAME <integer>' but no other preprocessor line")
    return regions[0]


def make_cdef(headers, system_constants=()) -> str:
    """The whole cdef of a module: the system constants by name, then each header's region."""
    return "\n".join([*(f"#define {name} ..." for name in system_constants),
                      *(header_cdef(name) for name in headers)])


def compile_args() -> list:
    warnings = ["-Wall", "-Wextra", "-Werror"] if os.environ.get("NUMAMAP_WERROR") == "1" else []
    # -flto: the allocator's fast path crosses files (handler -> arena -> thread cache); link-time
    # optimisation inlines it into one function, as one file would
    return ["-std=gnu11", "-O2", "-pthread", "-flto", "-fno-semantic-interposition", *warnings]


def make_builder(module: str, headers, sources, system_constants=(), **kwargs) -> cffi.FFI:
    """An API-mode builder for ``module`` whose C part includes ``headers`` and compiles ``sources``."""
    builder = cffi.FFI()
    builder.cdef(make_cdef(headers, system_constants))
    builder.set_source(module, "".join(f'#include "{name}"\n' for name in headers),
                       sources=[str(HERE / name) for name in sources], include_dirs=[str(HERE)],
                       extra_compile_args=compile_args(), extra_link_args=["-flto", "-O2", "-fno-semantic-interposition"], **kwargs)
    return builder


# Not the limited API: _linux_buffer.c defines a type with buffer slots, which the limited API
# offers only from Python 3.11.
ffibuilder = make_builder("numamap._linux_cffi", HEADERS, SOURCES, SYSTEM_CONSTANTS,
                          py_limited_api=False)

if __name__ == "__main__":
    ffibuilder.compile(tmpdir=str(HERE.parent), verbose=True)
