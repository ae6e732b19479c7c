"""Sphinx configuration for numamap's documentation (MyST markdown, napoleon, furo).

Build it with ``sphinx-build -n -W --keep-going -b html docs docs/_build/html``. Nothing here
reaches the network: there is no intersphinx, and the API pages import the installed package.

The notebooks of ``notebooks/`` (reached through the ``docs/notebooks`` symlink) are executed
by myst-nb during the build, on this machine, and shown with their outputs. Their outputs are
cached in ``docs/_build/.jupyter_cache`` and reused until a notebook changes; a notebook that
raises fails the build.
"""
import importlib
import importlib.util
import pathlib
import re

from sphinx.ext.autodoc import ClassDocumenter

import numamap

project = "numamap"
author = "the numamap authors"
copyright = "the numamap authors"
release = numamap.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_nb",  # MyST markdown for the pages, and executed notebooks
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**/.ipynb_checkpoints"]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# Notebooks: run once, outputs kept in the build folder until the notebook changes.
nb_execution_mode = "cache"
nb_execution_cache_path = str(pathlib.Path(__file__).parent / "_build" / ".jupyter_cache")
nb_execution_timeout = 600  # per cell; the benchmark cell of 03-performance is the longest
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_merge_streams = True
# Progress bars (ipywidgets) mean something only live: no widget JavaScript from a CDN, so the
# site stays self-contained and a finished bar simply does not show.
nb_ipywidgets_js = {}

# -n: every cross-reference must resolve. The build is offline, so names from other projects
# (numpy, Dask, matplotlib, the standard library) cannot link to their documentation; they are
# shown as code without a link. The second list holds numpydoc's words for kinds of values.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(numpy|dask|distributed|matplotlib|concurrent\.futures|os|collections\.abc)\..+"),
]
nitpick_ignore = [("py:class", word) for word in (
    "array_like", "data-type", "scalar", "sequence", "mapping", "callable", "path-like")]

# API reference: numpy-style docstrings through napoleon.
autodoc_member_order = "bysource"
autodoc_typehints = "none"  # the docstrings give the types
# No "Bases: object" lines; the exceptions ask for theirs (api.md). A False value here would
# still switch the option on.
autodoc_default_options = {}
# numamap.dask needs Dask; without it installed, its page is built from stand-ins.
autodoc_mock_imports = [name for name in ("dask", "distributed") if importlib.util.find_spec(name) is None]
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_ivar = True  # "Attributes" sections as fields, not separate (duplicate) entries
napoleon_use_rtype = False
# "{'auto', '2M'}, optional" as literals and a note, not as class names to look up
napoleon_preprocess_types = True

html_theme = "furo"
html_title = f"numamap {release}"
html_static_path = []


# -- two small adaptations of napoleon and the Python domain ---------------------------------------

_ATTRIBUTE_GROUP = re.compile(r"^(\s*)([A-Za-z_]\w*(?:, [A-Za-z_]\w*)+) : (.+)$")


def _split_attribute_groups(app, what, name, obj, options, lines):
    """numpydoc's ``a, b : int`` in an Attributes section, as one entry per name.

    napoleon reads ``a, b`` there as a type and a name (``:ivar a, b:``), so ``a`` became a
    reference to a class that does not exist. Runs before napoleon (priority 400).
    """
    out, section = [], None
    for index, line in enumerate(lines):
        if index + 1 < len(lines) and set(lines[index + 1].strip()) == {"-"}:
            section = line.strip()
        match = _ATTRIBUTE_GROUP.match(line) if section == "Attributes" else None
        if not match:
            out.append(line)
            continue
        indent, names, kind = match.groups()
        body = []
        for following in lines[index + 1:]:
            if following.strip() and len(following) - len(following.lstrip()) <= len(indent):
                break
            body.append(following)
        *others, last = names.split(", ")
        for other in others:
            out.extend([f"{indent}{other} : {kind}", *body])
        out.append(f"{indent}{last} : {kind}")  # the lines that follow are its description
    lines[:] = out


def _documented_objects(app, env):
    """Every documented Python object, by identity, with the name it is documented under."""
    cache = getattr(app, "_numamap_documented", None)  # on the app: ids mean nothing pickled
    if cache is None:
        cache = {}
        for fullname, entry in env.get_domain("py").objects.items():
            if entry.aliased:
                continue
            target = _import_dotted(fullname)
            if target is not _MISSING:
                cache.setdefault(id(target), (fullname, entry.objtype))
        app._numamap_documented = cache
    return cache


_MISSING = object()


def _import_dotted(dotted):
    """The object a dotted name reaches (a module, then attributes), or _MISSING."""
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            target = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        except Exception:  # a module that cannot be imported here (the Windows backend)
            return _MISSING
        for attr in parts[split:]:
            target = getattr(target, attr, _MISSING)
            if target is _MISSING:
                return _MISSING
        return target
    return _MISSING


def _resolve_by_identity(app, env, node, contnode):
    """Resolve a Python reference to an object documented under another of its names.

    The API page documents each public name where users import it (``numamap.policy``), while
    docstrings inside a module naturally say ``policy`` or ``numamap.memory_handler.policy``.
    When the name as written is not documented, this imports it and, when it is the same object
    as one documented, links there. Names that import nothing still fail the build.
    """
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"]
    module, klass = node.get("py:module"), node.get("py:class")
    candidates = [target]
    if module:
        candidates += [f"{module}.{target}"] + ([f"{module}.{klass}.{target}"] if klass else [])
    # In a docstring, also the scopes of the code that wrote it: ``Policy`` in the docstring of
    # numamap.memory_handler.policy, shown on the page as numamap.policy, means that module's.
    owner = re.search(r"docstring of ([\w.]+)", str(node.source or ""))
    if owner:
        parts = owner.group(1).split(".")
        candidates += [".".join(parts[:end] + [target]) for end in range(len(parts), 0, -1)]
    documented = _documented_objects(app, env)
    for candidate in candidates:
        found = _import_dotted(candidate)
        if found is _MISSING or found is None or isinstance(found, (int, float, str, bool)):
            continue  # constants are equal to many things; only name them as written
        hit = documented.get(id(found))
        if hit is not None and hit[0] != target:
            node["reftarget"] = hit[0]
            return env.get_domain("py").resolve_xref(
                env, node["refdoc"], app.builder, node["reftype"], hit[0], node, contnode)
    return None


class _PublicNameDocumenter(ClassDocumenter):
    """``autopublicclass``: a class under a public name that differs from its ``__name__``.

    ``numamap.HugePagePool`` is ``numamap._records.PoolFacts``; plain ``autoclass`` would show
    "alias of PoolFacts" and nothing else. This shows the class itself, under the public name.
    """

    objtype = "publicclass"
    directivetype = "class"
    priority = -100  # only when asked for by name

    def import_object(self, raiseerror=False):
        imported = super().import_object(raiseerror)
        self.doc_as_attr = False
        return imported


def setup(app):
    app.add_autodocumenter(_PublicNameDocumenter)
    app.connect("autodoc-process-docstring", _split_attribute_groups, priority=400)
    app.connect("missing-reference", _resolve_by_identity)
