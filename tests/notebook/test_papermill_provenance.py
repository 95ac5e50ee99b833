"""Cell provenance on clean Run All notebooks executed by papermill in real kernels.

nbclient sends no cell ids, so cells are matched by position and content; nothing here may be
reported as hidden state.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import nbops
from tests.notebook.test_papermill_tracking import _cell, execute

pytestmark = pytest.mark.kernel


def _write(path: Path, sources: list[str]) -> None:
    cells = [
        _cell(src, f"c{i}", ["parameters"] if i == 0 else None) for i, src in enumerate(sources)
    ]
    path.write_text(
        json.dumps(
            {
                "nbformat": 4,
                "nbformat_minor": 5,
                "cells": cells,
                "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
            }
        )
    )


def _output_of(notebook: Path, index: int) -> str:
    cell = json.loads(notebook.read_text())["cells"][index]
    return "".join(
        "".join(out.get("text", "")) for out in cell["outputs"] if out["output_type"] == "stream"
    )


def test_run_all_with_duplicates_status_and_a_cell_after_stop_is_clean(
    isolated_env: Path,
) -> None:
    project = isolated_env
    notebook = project / "clean.ipynb"
    _write(
        notebook,
        [
            "n = 1",
            "%load_ext nbops\n%nbops track --project prov",
            "total = 0",
            "total += n",  # the same code twice: each copy matched in turn
            "total += n",
            "import nbops\nnbops.active_run().wait_background()  # the capture is done",
            "%nbops status",
            "nbops.log({'total': total})",
            "%nbops stop",
            "after = 'a cell after the stop'",
        ],
    )
    done = execute(project, notebook)
    assert done.returncode == 0, done.stderr[-3000:]

    (row,) = nbops.runs(project="prov").itertuples()
    run = nbops.get_run(row.id)
    assert run.status == "finished"
    provenance = run.metadata["provenance"]
    assert provenance["reproducible"] is True, provenance
    assert provenance["out_of_order"] == [] and provenance["not_executed"] == []
    assert provenance["not_in_notebook"] == [] and provenance["edited_after_run"] == []
    assert provenance["not_reached"] == ["cell 10"]  # after the stop cell: neutral

    status = _output_of(project / "out.ipynb", 6)
    assert "no hidden-state problems found" in status, status
    assert "never ran" not in status and "out of order" not in status
    assert "not run yet: cell 8, cell 9, cell 10" in status
    assert "notebook: " + str(notebook) in status


def test_a_notebook_stopping_on_an_exception_is_a_failed_run(isolated_env: Path, cli: Any) -> None:
    project = isolated_env
    notebook = project / "broken.ipynb"
    _write(
        notebook,
        [
            "n = 1",
            "%load_ext nbops\n%nbops track --project prov",
            "import nbops\nnbops.log({'before': 1.0})",
            "raise ValueError('the data is bad')",
            "never = 'not reached'",
        ],
    )
    done = execute(project, notebook)
    assert done.returncode != 0  # papermill reports the failing cell

    (row,) = nbops.runs(project="prov").itertuples()
    run = nbops.get_run(row.id)
    assert run.status == "failed"
    error = run.metadata["error"]
    assert error["cell"] == 4 and error["error"] == "ValueError: the data is bad"
    assert error["notebook"] == str(project / "out.ipynb")
    provenance = run.metadata["provenance"]
    assert provenance["not_executed"] == [] and provenance["not_reached"] == ["cell 5"]
    assert provenance["errors"] == ["In [4]: ValueError: the data is bad"]
    assert run.summary["before"] == 1.0
    shown = cli("runs", "show", run.id).output
    assert "failed in cell 4: ValueError: the data is bad" in shown
