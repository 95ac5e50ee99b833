"""``notebooks/sweep_panel.ipynb`` executed for real by papermill, headless to the end.

Real parts: a Jupyter kernel per execution, the sweep file and module the notebook writes,
the Optuna journals and the run store read back by this process.
"""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import pytest
from optuna.trial import TrialState

import nbops
from nbops.sweeps import list_sweeps, load_sweep

pytestmark = [pytest.mark.kernel, pytest.mark.slow]

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "sweep_panel.ipynb"


def test_the_sweep_panel_notebook_runs_to_the_end(isolated_env: Path) -> None:
    import papermill

    folder = isolated_env / "tutorial"
    folder.mkdir()
    source = shutil.copy(NOTEBOOK, folder / NOTEBOOK.name)
    output = folder / "out.ipynb"
    papermill.execute_notebook(
        str(source),
        str(output),
        parameters={"n_trials": 6, "wait": True},
        cwd=str(folder),
        progress_bar=False,
        kernel_name="python3",
    )
    text = output.read_text()
    assert "6 trials, one per combination" in text
    assert "TPE, seed 0: best" in text

    names = list_sweeps()
    assert len(names) == 3, names
    sweeps = [load_sweep(name) for name in names]
    by_kind = {s.spec.kind: s for s in sweeps if s.spec.kind != "params"}
    params = [s for s in sweeps if s.spec.kind == "params"]
    grid, tpe = sorted(params, key=lambda s: len(s.trials()))
    # the sweep file's grid: every combination exactly once
    combos = sorted((t.params["lr"], t.params["layers"]) for t in grid.trials())
    assert combos == sorted(itertools.product([0.01, 0.1, 0.3], [1, 2]))
    assert len(tpe.trials()) == 8
    panel = by_kind["trial"]  # the define-by-run objective, run on a thread (panel=True)
    assert len(panel.trials()) == 6
    for sweep in sweeps:
        states = {t.state for t in sweep.trials()}
        assert states == {TrialState.COMPLETE}, (sweep.name, sweep.errors)
    runs = nbops.runs("sweep-panel")
    assert len(runs) == 6 + 8 + 6 + 3  # a run per trial plus each sweep's summary run
    assert set(runs["status"]) == {"finished"}, runs[["name", "status"]]
