import sys

from setuptools import setup

# cffi has no pyproject key for its build scripts; everything else lives in pyproject.toml.
BUILD_SCRIPTS = {
    "linux": ["numamap/_build_linux.py:ffibuilder", "numamap/_build_bench.py:ffibuilder"],
    "win32": ["numamap/_build_windows.py:ffibuilder", "numamap/_build_windows.py:arena_ffibuilder"],
}
setup(cffi_modules=[script for platform, scripts in BUILD_SCRIPTS.items()
                    if sys.platform.startswith(platform) for script in scripts])
