"""The chapter's notebook: one line chooses the backend, and nbmake runs it in this environment's Python.

tox executes the notebook itself with ``pytest --nbmake notebooks`` after the suite; these tests check what
that run relies on.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook

import d2lconv as dc

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "conv-layer.ipynb"


def code_cells():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    return notebook, [cell.source for cell in notebook.cells if cell.cell_type == "code"]


def test_the_first_cell_chooses_the_backend_and_no_other_cell_names_one():
    _, cells = code_cells()
    assert 'BACKEND = os.environ.get("D2LCONV_BACKEND", "numpy")' in cells[0]
    assert "dc.set_backend(BACKEND)" in cells[0]
    alternatives = "|".join(dc.BACKENDS + tuple(dc.ALIASES))
    names = re.compile(rf"""["']({alternatives})["']""")
    for source in cells[1:]:
        assert not names.search(source), source
        assert "set_backend" not in source and "use_backend" not in source, source


def test_the_notebook_is_committed_with_its_outputs():
    notebook, _ = code_cells()
    nbformat.validate(notebook)
    executed = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.execution_count for cell in executed)
    assert not any(output.output_type == "error" for cell in executed for output in cell.outputs)
    figures = sum("image/png" in output.get("data", {}) for cell in executed for output in cell.outputs)
    assert figures >= 3  # the edge image, the loss curve, the feature maps


def test_its_kernel_runs_this_environments_python(tmp_path):
    notebook, _ = code_cells()
    probe = new_notebook(cells=[new_code_cell("import sys; print(sys.executable)")], metadata=notebook.metadata)
    NotebookClient(probe, timeout=120, kernel_name=notebook.metadata["kernelspec"]["name"],
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    printed = probe.cells[0].outputs[0]["text"].strip()
    assert Path(printed).resolve() == Path(sys.executable).resolve(), (printed, sys.executable)
