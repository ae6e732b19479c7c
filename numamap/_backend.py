"""Picks the operating system's backend: ``_linux`` or ``_windows``.

Both implement the contract in ``_contract.py`` (same names, same signatures, the records of
``_records.py``), and each turns system errors into exceptions through its own
``_errors.ErrorTable``. Nothing above the backend touches the OS or a native module directly;
docs/architecture.md draws the layers.
"""
import sys

if sys.platform.startswith("linux"):
    from . import _linux as backend
elif sys.platform == "win32":
    from . import _windows as backend
else:  # pragma: no cover - other systems have no backend yet
    raise ImportError(f"numamap has no backend for {sys.platform}: Linux and Windows are supported")

__all__ = ["backend"]
