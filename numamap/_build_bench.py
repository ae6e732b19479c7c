"""cffi build script for ``numamap bench``'s native part: ``numamap._bench_cffi``.

A module of its own, outside the core bindings: the benchmark's pthread code is no part of
what numamap needs to map memory. Run by ``pip install`` through ``setup.py``'s
``cffi_modules``; like ``_build_linux.py`` (whose helpers it loads by path) it must not import
numamap, and ``NUMAMAP_WERROR=1`` compiles with ``-Wall -Wextra -Werror``. The declarations are
the cdef region of ``_bench_native.h``.
"""
import importlib.util
import pathlib

HERE = pathlib.Path(__file__).resolve().parent


def _linux_build_helpers():
    spec = importlib.util.spec_from_file_location("_numamap_build_linux", HERE / "_build_linux.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


HEADERS = ("_bench_native.h",)
SOURCES = ("_bench_native.c", "_bench_churn.c")

ffibuilder = _linux_build_helpers().make_builder("numamap._bench_cffi", HEADERS, SOURCES,
                                                 libraries=["pthread"])

if __name__ == "__main__":
    ffibuilder.compile(tmpdir=str(HERE.parent), verbose=True)
