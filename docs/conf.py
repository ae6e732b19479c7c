"""Sphinx configuration for numamap's documentation (MyST markdown, napoleon, furo).

Build it with ``sphinx-build -W --keep-going -b html docs docs/_build/html``. Nothing here
reaches the network: there is no intersphinx, and the API pages import the installed package.
"""
import importlib.util

import numamap

project = "numamap"
author = "the numamap authors"
copyright = "the numamap authors"
release = numamap.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# API reference: numpy-style docstrings through napoleon.
autodoc_member_order = "bysource"
autodoc_typehints = "none"  # the docstrings give the types
autodoc_default_options = {"show-inheritance": False}
# numamap.dask needs Dask; without it installed, its page is built from stand-ins.
autodoc_mock_imports = [name for name in ("dask", "distributed") if importlib.util.find_spec(name) is None]
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_ivar = True  # "Attributes" sections as fields, not separate (duplicate) entries
napoleon_use_rtype = False

html_theme = "furo"
html_title = f"numamap {release}"
html_static_path = []
