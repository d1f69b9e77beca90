"""Both notebooks execute top to bottom (tiny settings); a failing cell fails the build."""

import os

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import ROOT


@pytest.mark.slow
@pytest.mark.parametrize("name", ["01_quickstart.ipynb", "02_serving.ipynb"])
def test_notebook_runs_top_to_bottom(name, tmp_path, monkeypatch):
    path = os.path.join(ROOT, "notebooks", name)
    notebook = nbformat.read(path, as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), \
        "commit notebooks without outputs"
    for key, value in {"KGAN_NB_PRESET": "tiny", "KGAN_NB_SONGS": "4", "KGAN_NB_STEPS": "20",
                       "KGAN_NB_WORK": str(tmp_path / "work"), "TF_CPP_MIN_LOG_LEVEL": "3"}.items():
        monkeypatch.setenv(key, value)
    NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": ROOT}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("audio" in str(o.get("data", {})).lower() for o in outputs)  # something to listen to
