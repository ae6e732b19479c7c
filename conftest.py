"""Doctest collection for the package (pytest runs ``--doctest-modules`` over ``numamap/``).

Modules that cannot be imported on this system are left out: the other system's backend and
build script, and integrations whose optional dependency is missing.
"""
import importlib.util
import sys

if sys.platform == "win32":
    collect_ignore = ["numamap/_linux.py", "numamap/_build_linux.py"]
else:
    collect_ignore = ["numamap/_windows.py", "numamap/_windows_native.py", "numamap/_build_windows.py"]

if importlib.util.find_spec("dask") is None or importlib.util.find_spec("distributed") is None:
    collect_ignore.append("numamap/dask.py")
