"""``nbops sweep`` on the command line and ``%nbops sweep`` in IPython."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from optuna.trial import TrialState

import nbops
from tests.sweeps.conftest import write_notebook

SPACE_YAML = "x: {type: float, low: -5, high: 5}\n"


def test_run_status_and_shorthand(cli: Any, isolated_env: Path) -> None:
    (isolated_env / "space.yaml").write_text(SPACE_YAML)
    result = cli(
        "sweep",
        "run",
        "tests.sweeps.objectives:quadratic",
        "--space",
        "space.yaml",
        "--n-trials",
        "5",
        "--study",
        "cli-sweep",
        "--direction",
        "maximize",
        "--jobs",
        "2",
    )
    assert result.exit_code == 0, result.stderr
    assert "sweep cli-sweep" in result.output and "best: trial" in result.output
    short = cli(
        "sweep",
        "tests.sweeps.objectives:quadratic",
        "--space",
        "space.yaml",
        "--n-trials",
        "3",
        "--study",
        "cli-short",
        "--direction",
        "maximize",
        "--json",
    )
    assert short.exit_code == 0, short.stderr
    assert json.loads(short.output)["states"]["COMPLETE"] == 3
    status = cli("sweep", "status", "cli-sweep", "--json")
    doc = json.loads(status.output)
    assert doc["states"]["COMPLETE"] == 5 and doc["n_trials"] == 5
    assert doc["best"]["params"] == nbops.load_sweep("cli-sweep").best_params
    listing = cli("sweep", "status")
    assert "cli-sweep" in listing.output and "cli-short" in listing.output


def test_worker_joins_and_resumes(cli: Any) -> None:
    sweep = nbops.sweep(
        "tests.sweeps.objectives:quadratic",
        space={"x": {"type": "float", "low": -1, "high": 1}},
        n_trials=4,
        study_name="joinme",
        jobs=0,
        direction="maximize",
    )
    assert not sweep.trials(states=(TrialState.COMPLETE,))
    storage = sweep.spec.storage.removeprefix("journal:")
    result = cli("sweep", "worker", "--study", "joinme", "--storage", storage)
    assert result.exit_code == 0, result.stderr
    assert "ran 4 trial(s)" in result.output
    assert len(nbops.load_sweep("joinme").trials(states=(TrialState.COMPLETE,))) == 4


def test_usage_errors(cli: Any) -> None:
    assert cli("sweep", "run", "x:y").exit_code == 2  # no --n-trials / --timeout
    missing = cli("sweep", "run", "nope.ipynb", "--n-trials", "2")
    assert missing.exit_code == 2 and "no such notebook" in missing.stderr
    unknown = cli("sweep", "status", "never-ran")
    assert unknown.exit_code == 1 and "no sweep 'never-ran'" in unknown.stderr
    lam = nbops.sweep(
        lambda t: t.suggest_float("x", 0, 1), n_trials=1, study_name="lam", direction="maximize"
    )
    storage = lam.spec.storage.removeprefix("journal:")
    joined = cli("sweep", "worker", "--study", "lam", "--storage", storage)
    assert joined.exit_code == 1 and "module:function" in joined.stderr


@pytest.mark.kernel
def test_magic_starts_a_background_sweep(ipython: Any, isolated_env: Path) -> None:
    write_notebook(
        isolated_env / "nb.ipynb", "x = 0.0", "import nbops\nnbops.log({'score': -abs(x)})"
    )
    (isolated_env / "space.yaml").write_text(SPACE_YAML)
    ipython.run_line_magic("load_ext", "nbops")
    ipython.run_line_magic(
        "nbops",
        "sweep nb.ipynb --space space.yaml --n-trials 2 --metric score --direction maximize "
        "--study magic",
    )
    sweep = ipython.user_ns["nbops_sweep"]
    sweep.wait(timeout=120)
    assert len(sweep.trials(states=(TrialState.COMPLETE,))) == 2
    from IPython.core.error import UsageError

    with pytest.raises(UsageError):
        ipython.run_line_magic("nbops", "sweep nb.ipynb --n-trials 2")  # --space missing
    with pytest.raises(UsageError, match="direction"):  # no silent default
        ipython.run_line_magic(
            "nbops", "sweep nb.ipynb --space space.yaml --n-trials 2 --metric score"
        )


def test_magic_takes_an_executor_like_the_cli(ipython: Any, isolated_env: Path) -> None:
    from IPython.core.error import UsageError

    write_notebook(isolated_env / "nb.ipynb", "x = 0.0", "import nbops\nnbops.log({'s': x})")
    (isolated_env / "space.yaml").write_text(SPACE_YAML)
    ipython.run_line_magic("load_ext", "nbops")
    line = "sweep nb.ipynb --space space.yaml --n-trials 2 --metric s --direction maximize "
    with pytest.raises(UsageError, match="postgresql://"):  # a cluster needs a shared storage
        ipython.run_line_magic("nbops", line + "--executor dask://127.0.0.1:1")
    with pytest.raises(UsageError, match="executor 'nowhere' is not understood"):
        ipython.run_line_magic("nbops", line + "--executor nowhere")
    assert "nbops_sweep" not in ipython.user_ns
    assert not (isolated_env / ".nbops" / "sweeps").exists()


@pytest.mark.slow
@pytest.mark.kernel
@pytest.mark.postgres
def test_magic_sweeps_on_a_dask_cluster(
    ipython: Any, isolated_env: Path, dask_cluster: Any, postgres_url: str
) -> None:
    write_notebook(
        isolated_env / "nb.ipynb", "x = 0.0", "import nbops\nnbops.log({'score': -abs(x)})"
    )
    (isolated_env / "space.yaml").write_text(SPACE_YAML)
    ipython.run_line_magic("load_ext", "nbops")
    ipython.run_line_magic(
        "nbops",
        "sweep nb.ipynb --space space.yaml --n-trials 2 --metric score --direction maximize "
        f"--storage {postgres_url} --study magic-dask --executor {dask_cluster.url}",
    )
    sweep = ipython.user_ns["nbops_sweep"]
    sweep.wait(timeout=180)
    trials = sweep.trials(states=(TrialState.COMPLETE,))
    assert len(trials) == 2, sweep.errors
    assert {t.user_attrs["nbops.dask_worker"] for t in trials} <= {"w0", "w1"}
    for trial in trials:
        assert nbops.get_run(trial.user_attrs["nbops.run_id"]).status == "finished"


@pytest.mark.slow  # the Dask client waits for its connect timeout
def test_magic_shared_disk_lets_a_journal_through_to_the_cluster(
    ipython: Any, isolated_env: Path
) -> None:
    from IPython.core.error import UsageError

    write_notebook(isolated_env / "nb.ipynb", "x = 0.0", "import nbops\nnbops.log({'s': x})")
    (isolated_env / "space.yaml").write_text(SPACE_YAML)
    ipython.run_line_magic("load_ext", "nbops")
    line = (
        "sweep nb.ipynb --space space.yaml --n-trials 2 --metric s --direction maximize "
        "--storage shared.journal --executor dask://127.0.0.1:1"
    )
    with pytest.raises(UsageError, match="shared_disk=True"):
        ipython.run_line_magic("nbops", line)
    with pytest.raises(UsageError, match="no Dask scheduler answers"):  # past the storage check
        ipython.run_line_magic("nbops", line + " --shared-disk")
    assert not (isolated_env / "shared.journal").exists()
