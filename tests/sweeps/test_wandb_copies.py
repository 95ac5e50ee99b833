"""Trials' W&B copies with the default (offline) mirror: written from the store after each
trial, off the trial's path, and complete when ``nbops.sweep`` returns.

Real parts: wandb writing offline runs, each ``.wandb`` file read back and compared with the
store; worker processes for ``jobs=2``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from optuna.trial import TrialState

import nbops
from nbops.mirror import (
    COMPLETE,
    METADATA_KEY,
    deferred_state,
    find_offline_runs,
    incomplete_copies,
)
from nbops.store import open_store
from tests.mirror.test_copy_completion import assert_copy_equals_store
from tests.sweeps import objectives
from tests.sweeps.conftest import write_notebook

SPACE = {"x": {"type": "float", "low": -1.0, "high": 1.0}}


@pytest.fixture
def default_mirror(isolated_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The default mirror: no NBOPS_WANDB and no API key, so offline; returns WANDB_DIR."""
    monkeypatch.delenv("NBOPS_WANDB")
    wandb_dir = isolated_env / "wandb-runs"
    wandb_dir.mkdir()
    monkeypatch.setenv("WANDB_DIR", str(wandb_dir))
    return wandb_dir


@pytest.mark.parametrize("jobs", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_every_trial_copy_is_complete_and_equals_the_store(
    default_mirror: Path, jobs: int, capfd: pytest.CaptureFixture[str]
) -> None:
    sweep = nbops.sweep(
        objectives.curve_without_live_mirror,
        space=SPACE,
        n_trials=5,
        jobs=jobs,
        study_name=f"copies-{jobs}",
        direction="maximize",
    )
    trials = sweep.trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 5, sweep.errors
    store = open_store()
    on_disk = {p.resolve() for p in find_offline_runs(default_mirror)}
    for trial in trials:
        run_id = trial.user_attrs["nbops.run_id"]
        state = store.get_metadata(run_id)["wandb"]
        assert state["copy"] == COMPLETE and "after the trial" in state["reason"], state
        run_dir = Path(state["run_dir"])
        assert run_dir.resolve() in on_disk
        assert_copy_equals_store(store, run_id, run_dir)
        logged = [p for p in store.get_metrics(run_id) if not p.key.startswith("system/")]
        assert len(logged) == 6  # 3 steps x 2 metrics, all in the copy
    # one copy per trial plus the sweep's summary run, nothing left over
    assert len(on_disk) == 5 + 1
    err = capfd.readouterr().err  # the copy helper process writes to this process's stderr
    assert "Warning" not in err and "Traceback" not in err, err


def test_a_copy_owed_by_a_dead_process_is_marked_for_sync(default_mirror: Path) -> None:
    """Until written, a deferred copy counts as partial, so `nbops sync --offline` finds it."""
    run = nbops.init(name="trial-like", wandb="disabled", capture=False)
    run.set_metadata(METADATA_KEY, deferred_state().to_dict(), deferred=True)
    run.log({"a": 1.0})
    run.finish()
    assert [run_id for run_id, _ in incomplete_copies(run.store)] == [run.id]


@pytest.mark.kernel
def test_a_notebook_trials_copy_holds_what_its_kernel_logged(default_mirror: Path) -> None:
    notebook = write_notebook(
        default_mirror.parent / "train.ipynb",
        "x = 0.0",
        "import nbops\nfor step in range(3):\n    nbops.log({'score': -(x - 0.3) ** 2 - step})",
    )
    sweep = nbops.sweep(
        notebook, space=SPACE, metric="score", n_trials=2, study_name="nb-copies",
        direction="maximize",
    )  # fmt: skip
    store = open_store()
    for trial in sweep.trials():
        assert trial.state == TrialState.COMPLETE, sweep.errors
        run_id = trial.user_attrs["nbops.run_id"]
        state = store.get_metadata(run_id)["wandb"]
        assert state["copy"] == COMPLETE, state
        assert_copy_equals_store(store, run_id, Path(state["run_dir"]))
        assert [p.key for p in store.get_metrics(run_id)].count("score") == 3
