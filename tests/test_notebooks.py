"""The notebooks in notebooks/ are committed clean: valid, and without outputs.

They are executed in CI with ``pytest --nbmake notebooks/`` and again by the documentation
build (myst-nb), which shows them with outputs. CI checks that they are stripped with
``nbstripout --verify`` (the options are in .ci/run and docs/notebooks.md). This file checks
the same things with the standard library, so it runs in every tier, and runs nbstripout's own
check too where the jupyter extra installed it.
"""
import json
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
EXPECTED = ["01-tour.ipynb", "02-local-workers.ipynb", "03-performance.ipynb", "04-windows.ipynb"]
STRIP_HINT = "strip it as docs/notebooks.md says (nbstripout --keep-id --extra-keys ...)"

# What nbstripout removes with CI's options, and what the committed files may keep.
CELL_METADATA_STRIPPED = {"collapsed", "ExecuteTime", "execution", "heading_collapsed", "hidden",
                          "scrolled", "jupyter"}
NOTEBOOK_METADATA_KEPT = {"kernelspec", "language_info"}


def _ci_strip_options() -> list[str]:
    """nbstripout's options as .ci/run passes them: one place says what 'stripped' means."""
    text = (ROOT / ".ci" / "run").read_text(encoding="utf-8").replace("\\\n", " ")
    match = re.search(r'nbstripout --verify (.*?)--extra-keys "([^"]*)"', text)
    assert match, ".ci/run no longer checks the notebooks with nbstripout --verify"
    return [*match.group(1).split(), "--extra-keys", " ".join(match.group(2).split())]


def _load(path: pathlib.Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def test_the_notebooks_are_there():
    names = [p.name for p in NOTEBOOKS]
    assert set(EXPECTED) <= set(names), f"missing: {sorted(set(EXPECTED) - set(names))}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_committed_without_outputs(path):
    notebook = _load(path)
    assert notebook["nbformat"] == 4
    assert notebook["metadata"]["kernelspec"]["name"] == "python3"
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, (
                f"{path.name} has outputs: {STRIP_HINT}")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_has_no_metadata_that_changes_with_each_run(path):
    notebook = _load(path)
    extra = set(notebook["metadata"]) - NOTEBOOK_METADATA_KEPT
    assert not extra, f"{path.name} has notebook metadata {sorted(extra)}: {STRIP_HINT}"
    language = set(notebook["metadata"].get("language_info", {})) - {"name"}
    assert not language, f"{path.name} records the interpreter ({sorted(language)}): {STRIP_HINT}"
    for index, cell in enumerate(notebook["cells"]):
        assert "id" in cell, f"{path.name} cell {index} has no id (nbformat 4.5 wants one)"
        stale = CELL_METADATA_STRIPPED & set(cell.get("metadata", {}))
        assert not stale, f"{path.name} cell {index} has editor state {sorted(stale)}: {STRIP_HINT}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_says_what_several_nodes_would_show(path):
    cells = _load(path)["cells"]
    text = " ".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    assert "several nodes" in text


def _nbstripout() -> list[str]:
    pytest.importorskip("nbstripout", reason="nbstripout comes with the jupyter extra: pip install "
                        "'numamap[jupyter]', or from a clone: pip install -e '.[jupyter]'")
    return [sys.executable, "-m", "nbstripout"]


def _as_if_run(notebook: dict) -> dict:
    """The notebook with what running it in Jupyter adds: outputs, counts, timings, versions."""
    ran = json.loads(json.dumps(notebook))
    code = next(c for c in ran["cells"] if c["cell_type"] == "code")
    code["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "hello\n"}]
    code["execution_count"] = 3
    code["metadata"]["execution"] = {"iopub.status.busy": "2024-01-01T00:00:00"}
    code["metadata"]["jupyter"] = {"source_hidden": False}
    ran["metadata"]["language_info"] = {"name": "python", "version": "3.11.7",
                                        "pygments_lexer": "ipython3", "mimetype": "text/x-python"}
    return ran


def test_nbstripout_with_the_ci_options_strips_to_exactly_the_committed_form(tmp_path):
    """Committed notebooks come out unchanged; a run one comes out as it was before the run."""
    command = _nbstripout()
    copies = []
    for path in NOTEBOOKS:
        shutil.copy(path, tmp_path / path.name)
        copies.append(tmp_path / path.name)
    ran = tmp_path / "ran.ipynb"
    ran.write_text(json.dumps(_as_if_run(_load(NOTEBOOKS[0]))), encoding="utf-8")
    # One call for all: starting nbstripout costs seconds.
    subprocess.run([*command, *_ci_strip_options(), *map(str, copies), str(ran)], check=True,
                   timeout=300)
    for path, copy in zip(NOTEBOOKS, copies):
        assert copy.read_text(encoding="utf-8") == path.read_text(encoding="utf-8"), (
            f"nbstripout would change {path.name}: {STRIP_HINT}")
    assert ran.read_text(encoding="utf-8") == NOTEBOOKS[0].read_text(encoding="utf-8")
