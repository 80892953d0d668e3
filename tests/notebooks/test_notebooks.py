"""The teaching notebooks (notebooks/*.ipynb) run top to bottom without error, teach with asserts,
are committed without outputs, and are linked from the README.

Each notebook is executed with nbclient in a fresh ``python3`` kernel whose working directory is
notebooks/ and whose PYTHONPATH starts with this repository, so the kernel imports the code under
test. Any exception in any cell, a failing ``assert`` cell included, fails the test.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from conftest import REPO_ROOT

NOTEBOOK_DIR = REPO_ROOT / "notebooks"
#: The notebooks of issue 9, in reading order. A notebook missing from disk fails the test.
NOTEBOOKS = (
    "01_fp4_microscaling.ipynb",
    "02_inside_one_sm.ipynb",
    "03_the_20_pflops_asterisk.ipynb",
    "04_sparsity_2_4.ipynb",
    "05_the_rack_is_the_gpu.ipynb",
    "06_trace_replay.ipynb",
    "07_what_if_sweep.ipynb",
)
CELL_TIMEOUT_S = 240


def _load(name: str) -> dict:
    return json.loads((NOTEBOOK_DIR / name).read_text(encoding="utf-8"))


def _code_cells(nb: dict) -> list[str]:
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]


def test_every_notebook_on_disk_is_listed():
    assert sorted(p.name for p in NOTEBOOK_DIR.glob("*.ipynb")) == sorted(NOTEBOOKS)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_without_outputs(name):
    for i, cell in enumerate(_load(name)["cells"]):
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [], f"{name} cell {i} has outputs: clear them before committing"
            assert cell["execution_count"] is None, f"{name} cell {i} has an execution count"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_has_an_assert_cell(name):
    """Each notebook checks at least one number it teaches with a plain assert statement."""
    asserts = [src for src in _code_cells(_load(name)) if re.search(r"^assert ", src, re.MULTILINE)]
    assert asserts, f"{name} has no cell with an assert statement"


def test_readme_links_every_notebook():
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Notebooks", 1)
    assert len(section) == 2, "README.md has no '## Notebooks' section"
    body = section[1].split("\n## ", 1)[0]
    for name in NOTEBOOKS:
        assert f"(notebooks/{name})" in body, f"README's Notebooks section does not link {name}"


def _execute(path: Path, monkeypatch) -> object:
    """Run the notebook at ``path`` in a fresh kernel; returns the executed notebook."""
    nbformat = pytest.importorskip("nbformat", reason="install the test extras: pip install -e '.[test]'")
    nbclient = pytest.importorskip("nbclient", reason="install the test extras: pip install -e '.[test]'")
    pytest.importorskip("ipykernel", reason="install the test extras: pip install -e '.[test]'")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("MPLBACKEND", "Agg")  # figures are drawn but not rendered to PNG
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOK_DIR)}})
    client.execute()  # raises CellExecutionError at the first cell that fails
    return nb


def test_a_failing_assert_cell_fails_the_run(tmp_path, monkeypatch):
    """The harness really stops on an error: a notebook whose assert fails raises."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1"),
                                         nbformat.v4.new_code_cell("assert x == 2, 'taught number is wrong'")])
    path = tmp_path / "failing.ipynb"
    nbformat.write(nb, path)
    with pytest.raises(nbclient.exceptions.CellExecutionError, match="taught number is wrong"):
        _execute(path, monkeypatch)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_executes(name, monkeypatch):
    nb = _execute(NOTEBOOK_DIR / name, monkeypatch)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
