"""``notebooks/quickstart.ipynb`` run in a real JupyterLab by a real browser, then read back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import nbops
from tests.browser import _lab

pytestmark = pytest.mark.browser


def test_quickstart_run_all_is_tracked_with_its_real_path(
    lab_server: Any, lab_page: Any, artifacts: Path
) -> None:
    page = lab_page
    _lab.open_notebook(page, lab_server, "quickstart.ipynb")
    _lab.run_all(page)
    _lab.wait_all_executed(page)
    _lab.screenshot(page, artifacts / "quickstart.png")

    text = _lab.notebook_text(page)
    assert _lab.error_outputs(page) == []
    assert "Loading widget" not in text
    assert "nbops: Tracking run" in text
    assert "test accuracy with 100 trees" in text

    runs = nbops.runs("quickstart", store=str(lab_server.store))
    assert len(runs) == 1, runs
    run = nbops.get_run(runs["id"][0], store=str(lab_server.store))
    assert run.status == "finished"
    served = (lab_server.root / "quickstart.ipynb").resolve()
    notebook = run.metadata["notebook"]
    assert Path(notebook["path"]).resolve() == served
    assert notebook["source"] == "jupyter-server", notebook
    snapshot = notebook["snapshot"]
    assert not snapshot["error"], snapshot
    assert len(snapshot["code_cells"]) == 6

    # One record per executed cell, in order, matching the served cells by id and code hash.
    # The parameters cell ran before `%load_ext nbops`: it is back-filled from the kernel's
    # history, which knows its code but not its cell id. `%nbops stop` finishes the run while it
    # runs, so its record is stored with its outcome still unknown.
    saved = snapshot["code_cells"]
    cells = run.metadata["cells"]
    assert [cell["n"] for cell in cells] == [1, 2, 3, 4, 5, 6]
    assert [cell["hash"] for cell in cells] == [cell["sha256"] for cell in saved]
    assert cells[0]["id"] is None
    assert [cell["id"] for cell in cells[1:]] == [cell["id"] for cell in saved[1:]]
    assert cells[-1]["ok"] is None
    assert [cell["id"] for cell in saved] == [
        "bf086cb6",
        "ab8f4fba",
        "42d3db1d",
        "48fd1ac6",
        "e1ceb909",
        "5436df19",
    ]
    assert all(cell["ok"] for cell in cells[1:-1])
    provenance = run.metadata["provenance"]
    assert provenance["reproducible"], provenance
    assert provenance["notebook"] is not None
    assert Path(provenance["notebook"]).resolve() == served
    assert provenance["executions"] == 6
    assert provenance["errors"] == []
    assert run.params["n_estimators"] == 100
    assert run.summary["final_accuracy"] > 0.9
