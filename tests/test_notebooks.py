"""The notebooks in notebooks/ are committed clean: valid, and without outputs.

They are executed in CI with ``pytest --nbmake notebooks/`` (the jupyter extra); this file only
checks what can be checked without a kernel, so it runs in every tier.
"""
import importlib.machinery
import importlib.util
import json
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
EXPECTED = ["01-tour.ipynb", "02-local-workers.ipynb", "03-performance.ipynb"]


def _strip_tool():
    path = ROOT / "tools" / "strip-notebooks"
    loader = importlib.machinery.SourceFileLoader("strip_notebooks", str(path))
    spec = importlib.util.spec_from_loader("strip_notebooks", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_the_notebooks_are_there():
    names = [p.name for p in NOTEBOOKS]
    assert set(EXPECTED) <= set(names), f"missing: {sorted(set(EXPECTED) - set(names))}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_committed_without_outputs(path):
    notebook = json.loads(path.read_text(encoding="utf-8"))
    assert notebook["nbformat"] == 4
    assert notebook["metadata"]["kernelspec"]["name"] == "python3"
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, (
                f"{path.name} has outputs: run 'python tools/strip-notebooks {path.relative_to(ROOT)}'")
    tool = _strip_tool()
    assert tool.render(tool.stripped(notebook)) == path.read_text(encoding="utf-8"), (
        f"{path.name} has metadata to strip: run 'python tools/strip-notebooks {path.relative_to(ROOT)}'")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_says_what_several_nodes_would_show(path):
    text = " ".join("".join(c["source"]) for c in json.loads(path.read_text(encoding="utf-8"))["cells"]
                    if c["cell_type"] == "markdown")
    assert "several nodes" in text


def test_the_strip_tool_removes_outputs_and_reports_in_check_mode(tmp_path, capsys):
    tool = _strip_tool()
    source = json.loads(NOTEBOOKS[0].read_text(encoding="utf-8"))
    dirty = json.loads(json.dumps(source))
    code = next(c for c in dirty["cells"] if c["cell_type"] == "code")
    code["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "hello\n"}]
    code["execution_count"] = 3
    code["metadata"]["execution"] = {"iopub.status.busy": "2024-01-01T00:00:00"}
    dirty["metadata"]["language_info"] = {"name": "python", "version": "3.11.7"}
    path = tmp_path / "dirty.ipynb"
    path.write_text(json.dumps(dirty), encoding="utf-8")
    assert tool.main(["--check", str(path)]) == 1
    assert "dirty.ipynb" in capsys.readouterr().out
    assert tool.main([str(path)]) == 0
    assert tool.main(["--check", str(path)]) == 0
    assert path.read_text(encoding="utf-8") == tool.render(tool.stripped(source))
