"""examples/notebook.ipynb runs top to bottom in a fresh kernel (nbclient): a background sweep
watched through its handle, rows as a DataFrame, a curve drawn, the landmarks view queried;
its sweep goes under the folder it is given, nowhere else."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "examples" / "notebook.ipynb"

pytestmark = [pytest.mark.slow, pytest.mark.ray]  # local Ray in the kernel: about 45 s here


def _outputs(nb, kind: str) -> list:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if kind in o]


def test_the_notebook_runs_and_writes_its_own_sweep_only(tmp_path, monkeypatch):
    results, cwd = tmp_path / "results", tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.setenv("DD_NOTEBOOK_RESULTS", str(results))
    path = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    monkeypatch.setenv("PYTHONPATH", path)  # the kernel imports the dd under test
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
    )
    client.execute()
    assert sorted(p.name for p in results.iterdir()) == ["notebook_demo"]
    assert list((results / "notebook_demo" / "packs").glob("*.parquet"))
    assert list(cwd.iterdir()) == [], "nothing written where the kernel ran"
    text = "\n".join(o["text"] for o in _outputs(nb, "text"))
    assert "21/21 trials done" in text
    assert any("image/png" in o["data"] for o in _outputs(nb, "data")), "the curve was drawn"
    landmarks = _outputs(nb, "data")[-1]["data"]["text/plain"]
    assert "model_wise" in landmarks and "threshold_x" in landmarks
