import sys

from setuptools import setup

# cffi has no pyproject key for its build scripts; everything else lives in pyproject.toml.
BUILD_SCRIPTS = {"linux": "numamap/_build_linux.py:ffibuilder", "win32": "numamap/_build_windows.py:ffibuilder"}
setup(cffi_modules=[s for p, s in BUILD_SCRIPTS.items() if sys.platform.startswith(p)])
