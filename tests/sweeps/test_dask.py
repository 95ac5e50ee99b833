"""Sweeps on a real Dask cluster (a scheduler and two worker processes on loopback) over a
real PostgreSQL storage: exact budgets, trials on both workers, a worker SIGKILLed mid-trial,
stop now, notebook targets; and the clear errors before any study exists."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from optuna.trial import TrialState

import nbops
from nbops.cluster import ClusterUnavailableError
from nbops.errors import InvalidValueError
from nbops.sweeps import SweepStorageError, load_sweep_file
from tests.conftest import DaskCluster, subprocess_env
from tests.sweeps.conftest import write_notebook

SPACE = {"x": {"type": "float", "low": -5.0, "high": 5.0}}


def _name(stem: str) -> str:
    return f"{stem}-{uuid.uuid4().hex[:8]}"


def _by_state(sweep: Any) -> Counter[TrialState]:
    return Counter(t.state for t in sweep.study.get_trials())


def _summary_config(sweep: Any) -> dict[str, Any]:
    from nbops.tracking import get_run

    return dict(get_run(sweep._summary_run.id).params)


@pytest.mark.slow
@pytest.mark.postgres
def test_six_trials_on_both_workers_exactly(dask_cluster: DaskCluster, postgres_url: str) -> None:
    seconds = 1.0

    def objective(params: dict[str, Any]) -> float:  # a closure: sent with cloudpickle
        time.sleep(seconds)
        return -((params["x"] - 2.0) ** 2)

    sweep = nbops.sweep(
        objective,
        space=SPACE,
        n_trials=6,
        seed=11,
        direction="maximize",
        storage=postgres_url,
        study_name=_name("dask-six"),
        executor=dask_cluster.url,
    )
    assert sweep.done
    trials = sweep.study.get_trials()
    assert _by_state(sweep) == {TrialState.COMPLETE: 6}, dask_cluster.logs()
    assert {t.user_attrs["nbops.dask_worker"] for t in trials} == {"w0", "w1"}
    assert len({t.params["x"] for t in trials}) == 6  # seeded slots draw distinct values
    config = _summary_config(sweep)
    assert config["executor"] == dask_cluster.url
    summary = sweep._summary_run.summary
    assert sum(summary["dask_workers"].values()) == 6
    assert summary["n_complete"] == 6
    from nbops.tracking import get_run

    for trial in trials:  # every trial is a tracked run in the store the workers share
        assert get_run(trial.user_attrs["nbops.run_id"]).status == "finished"


@pytest.mark.slow
@pytest.mark.postgres
def test_a_worker_killed_mid_trial(dask_cluster: DaskCluster, postgres_url: str) -> None:
    sweep = nbops.sweep(
        "tests.sweeps.objectives:pause",
        space={**SPACE, "seconds": {"type": "constant", "value": 2.0}},
        n_trials=6,
        seed=3,
        direction="maximize",
        storage=postgres_url,
        study_name=_name("dask-kill"),
        executor=dask_cluster.url,
        heartbeat_interval=1,
        grace_period=3,
        panel=True,  # in the background: this test kills a worker meanwhile
    )
    deadline = time.time() + 90
    while True:
        running = [
            t
            for t in sweep.study.get_trials(states=(TrialState.RUNNING,))
            if t.user_attrs.get("nbops.dask_worker") == "w0" and t.params
        ]
        if running:
            break
        assert time.time() < deadline, f"w0 never ran a trial\n{dask_cluster.logs()}"
        time.sleep(0.05)
    killed = running[0]
    dask_cluster.kill_worker("w0")
    sweep.wait(timeout=180)
    assert sweep.done, f"the sweep did not end\n{dask_cluster.logs()}"

    trials = sweep.study.get_trials()
    assert _by_state(sweep) == {TrialState.COMPLETE: 6, TrialState.FAIL: 1}
    (failed,) = [t for t in trials if t.state == TrialState.FAIL]
    assert failed.number == killed.number
    assert "died" in failed.user_attrs["nbops.error"]
    (retry,) = [t for t in trials if t.system_attrs.get("failed_trial") == killed.number]
    assert retry.state == TrialState.COMPLETE
    assert retry.params == killed.params  # the same parameters, run again
    assert retry.user_attrs["nbops.dask_worker"] == "w1"


@pytest.mark.slow
@pytest.mark.postgres
def test_stop_now_cancels_the_tasks_and_leaves_nothing_running(
    dask_cluster: DaskCluster, postgres_url: str
) -> None:
    sweep = nbops.sweep(
        "tests.sweeps.objectives:pause",
        space={**SPACE, "seconds": {"type": "constant", "value": 600.0}},
        n_trials=4,
        direction="maximize",
        storage=postgres_url,
        study_name=_name("dask-stop"),
        executor=dask_cluster.url,
        panel=True,
    )
    deadline = time.time() + 90
    while len([t for t in sweep.trials() if t.params]) < 2:  # both workers inside a trial
        assert time.time() < deadline, dask_cluster.logs()
        time.sleep(0.05)
    sweep.stop(now=True)
    sweep.wait(timeout=120)
    assert sweep.done
    assert sweep._dask is not None
    assert all(f.status == "cancelled" for f in sweep._dask.futures)
    trials = sweep.study.get_trials()
    assert _by_state(sweep) == {TrialState.FAIL: 2}  # nothing RUNNING, no trial started after
    for trial in trials:  # each task interrupted its own objective (not failed from outside)
        assert trial.user_attrs["nbops.error"] == "interrupted: the sweep's Dask task was cancelled"
    from nbops.tracking import get_run

    assert get_run(sweep._summary_run.id).status == "killed"


@pytest.mark.slow
@pytest.mark.postgres
def test_ctrl_c_on_the_cli_cancels_the_tasks(
    dask_cluster: DaskCluster, postgres_url: str, isolated_env: Path
) -> None:
    from nbops.sweeps import SweepError

    space = isolated_env / "space.yaml"
    space.write_text("x: {type: float, low: 0, high: 1}\nseconds: 600\n")
    name = _name("dask-ctrl-c")
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "nbops", "sweep", "run", "tests.sweeps.objectives:pause",
            "--space", str(space), "--n-trials", "4", "--direction", "maximize",
            "--storage", postgres_url, "--study", name, "--executor", dask_cluster.url,
        ],
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    deadline = time.time() + 120
    study = None
    while True:
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, dask_cluster.logs()
        try:
            study = study or nbops.load_sweep(name, storage=postgres_url).study
        except SweepError:  # not created yet
            time.sleep(0.2)
            continue
        if len([t for t in study.get_trials() if t.params]) >= 2:
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    trials = study.get_trials()
    assert Counter(t.state for t in trials) == {TrialState.FAIL: 2}, err
    for trial in trials:
        assert trial.user_attrs["nbops.error"] == "interrupted: the sweep's Dask task was cancelled"


@pytest.mark.slow
@pytest.mark.postgres
def test_a_cluster_left_without_workers_ends_the_sweep(
    dask_cluster: DaskCluster, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nbops.sweeps import SweepError, _dask

    monkeypatch.setattr(_dask, "NO_WORKERS_GRACE", 2.0)
    sweep = nbops.sweep(
        "tests.sweeps.objectives:pause",
        space={**SPACE, "seconds": {"type": "constant", "value": 600.0}},
        n_trials=4,
        direction="maximize",
        storage=postgres_url,
        study_name=_name("dask-empty"),
        executor=dask_cluster.url,
        panel=True,
    )
    deadline = time.time() + 90
    while len([t for t in sweep.trials() if t.params]) < 2:
        assert time.time() < deadline, dask_cluster.logs()
        time.sleep(0.05)
    dask_cluster.kill_worker("w0")
    dask_cluster.kill_worker("w1")
    with pytest.raises(SweepError, match="had no worker for 2 s"):
        sweep.wait(timeout=120)
    assert sweep.done
    assert _by_state(sweep) == {TrialState.FAIL: 2}  # nothing left RUNNING
    for trial in sweep.study.get_trials():
        assert trial.user_attrs["nbops.error"].startswith("its Dask worker w")


@pytest.mark.slow
@pytest.mark.kernel
@pytest.mark.postgres
def test_a_notebook_sweep_on_the_cluster(
    dask_cluster: DaskCluster, postgres_url: str, isolated_env: Path
) -> None:
    notebook = write_notebook(
        isolated_env / "train.ipynb", "x = 0.0", "import nbops\nnbops.log({'score': -(x - 2) ** 2})"
    )
    sweep = nbops.sweep(
        notebook,
        space=SPACE,
        metric="score",
        direction="maximize",
        n_trials=2,
        storage=postgres_url,
        study_name=_name("dask-nb"),
        executor=dask_cluster.url,
        jobs=2,
    )
    trials = sweep.study.get_trials()
    assert _by_state(sweep) == {TrialState.COMPLETE: 2}, sweep.errors
    for trial in trials:
        assert trial.value == pytest.approx(-((trial.params["x"] - 2) ** 2))
        assert trial.user_attrs["nbops.dask_worker"] in ("w0", "w1")


def test_a_notebook_absent_on_the_worker_is_written_there(tmp_path: Path) -> None:
    from nbops.sweeps import SweepSpec
    from nbops.sweeps._dask import _local_notebook

    spec = SweepSpec("s", "postgresql://h/db", "notebook", target="/nowhere/train.ipynb")
    local = _local_notebook(spec, b'{"cells": []}', tmp_path)
    assert local.target is not None and local.target != spec.target
    assert Path(local.target).read_bytes() == b'{"cells": []}'
    present = spec.replace(target=str(tmp_path / "here.ipynb"))
    Path(present.target or "").write_text("{}")
    assert _local_notebook(present, b"other", tmp_path) == present  # the worker's own file


# --- clear errors, before any study or trial -----------------------------------------------
def _quick(**options: Any) -> Any:
    return nbops.sweep(
        "tests.sweeps.objectives:quadratic",
        space=SPACE,
        n_trials=2,
        direction="maximize",
        study_name="never",
        **options,
    )


def test_no_storage_is_refused(isolated_env: Path) -> None:
    with pytest.raises(SweepStorageError, match="postgresql://USER@HOST:PORT/DB"):
        _quick(executor="dask://127.0.0.1:1")
    assert not (isolated_env / ".nbops" / "sweeps").exists()


@pytest.mark.parametrize(
    ("storage", "match"),
    [
        ("shared.journal", "shared_disk=True"),
        ("memory", "in-memory"),
        ("sqlite:///optuna.db", "SQLite"),
    ],
)
def test_a_storage_the_workers_cannot_share_is_refused(
    storage: str, match: str, isolated_env: Path
) -> None:
    with pytest.raises(SweepStorageError, match=match):
        _quick(executor="dask://127.0.0.1:1", storage=storage)
    assert not (isolated_env / "shared.journal").exists()
    assert not (isolated_env / "optuna.db").exists()


@pytest.mark.parametrize("url", ["dask://nohost", "http://127.0.0.1:8786", "dask://h:1/x"])
def test_a_bad_executor_url_is_refused(url: str) -> None:
    with pytest.raises(InvalidValueError, match="dask://HOST:PORT"):
        _quick(executor=url, storage="postgresql://u@127.0.0.1:1/db")


@pytest.mark.slow
def test_no_scheduler_is_a_clear_error_before_the_study(isolated_env: Path) -> None:
    journal = isolated_env / "shared.journal"
    with pytest.raises(ClusterUnavailableError, match="dask scheduler --host"):
        _quick(executor="dask://127.0.0.1:1", storage=str(journal), shared_disk=True)
    assert not journal.exists()


def test_the_cli_and_the_sweep_file_take_an_executor(cli: Any, isolated_env: Path) -> None:
    result = cli(
        "sweep", "run", "tests.sweeps.objectives:quadratic", "--n-trials", "2",
        "--direction", "maximize", "--executor", "dask://127.0.0.1:1",
    )  # fmt: skip
    assert result.exit_code != 0
    assert result.stderr.startswith("Error: ") and "postgresql://" in result.stderr
    assert "Traceback" not in result.stderr
    sweep_file = isolated_env / "sweep.yaml"
    sweep_file.write_text(
        "target: tests.sweeps.objectives:quadratic\n"
        "metric: {name: acc, goal: maximize}\n"
        "parameters: {x: {min: 0.0, max: 1.0}}\n"
        "run_cap: 4\n"
        "executor: dask://10.0.0.5:8786\n"
        "storage: postgresql://team@db/sweeps\n"
    )
    config = load_sweep_file(sweep_file)
    assert (config.executor, config.shared_disk) == ("dask://10.0.0.5:8786", False)
