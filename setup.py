import sys

from setuptools import setup

# cffi has no pyproject key for its build scripts; everything else lives in pyproject.toml.
setup(cffi_modules=["numamap/_build_linux.py:ffibuilder"] if sys.platform.startswith("linux") else [])
