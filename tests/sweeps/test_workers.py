"""Worker processes: a killed worker's trial is retried, the coordinator's death stops its
workers, and a worker joining from elsewhere runs the sweep its creator stored."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import TrialState

import nbops
from nbops.process import pid_alive
from nbops.sweeps import _optuna
from tests.conftest import subprocess_env

SPACE = {"x": {"type": "float", "low": -5.0, "high": 5.0}}


def _wait_for(condition: object, seconds: float, what: str) -> None:
    deadline = time.time() + seconds
    while not condition():  # type: ignore[operator]
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_reaped_killed_worker_on_this_machine_has_its_trial_retried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NBOPS_TEST_SLEEP", "0.6")
    if True:
        sweep = nbops.sweep(
            "tests.sweeps.objectives:slow",
            space=SPACE,
            n_trials=8,
            jobs=2,
            panel=True,  # in the background: this test kills a worker meanwhile
            study_name="killed-local",
            direction="maximize",
        )

        def victim_running() -> bool:
            return any(
                t.params and t.user_attrs.get("nbops.pid") == sweep.pids[0]
                for t in sweep.study.get_trials(states=(TrialState.RUNNING,))
            )

        _wait_for(victim_running, 60, "the first worker to run a trial")
        (lost,) = [
            t
            for t in sweep.study.get_trials(states=(TrialState.RUNNING,))
            if t.user_attrs.get("nbops.pid") == sweep.pids[0]
        ]
        os.kill(sweep.pids[0], signal.SIGKILL)
        sweep._procs[0].wait()  # reaped at once: not a zombie
        sweep.wait(timeout=120)
    trials = sweep.study.get_trials()
    states = Counter(t.state for t in trials)
    assert states == {TrialState.COMPLETE: 8, TrialState.FAIL: 1}, states
    failed = next(t for t in trials if t.state == TrialState.FAIL)
    assert failed.number == lost.number and "died" in failed.user_attrs["nbops.error"]
    (retry,) = [t for t in trials if t.system_attrs.get("failed_trial") == lost.number]
    assert retry.state == TrialState.COMPLETE and retry.params == lost.params


COORDINATOR = """
import nbops
nbops.sweep(
    "tests.sweeps.objectives:slow",
    space={"x": {"type": "float", "low": -5.0, "high": 5.0}},
    n_trials=40,
    jobs=2,
    study_name="orphans",
    direction="maximize",
)
"""


def test_killing_the_coordinator_stops_its_workers(isolated_env: Path) -> None:
    script = isolated_env / "coordinator.py"
    script.write_text(textwrap.dedent(COORDINATOR))
    env = subprocess_env(NBOPS_TEST_SLEEP="1.0")
    coordinator = subprocess.Popen(
        [sys.executable, str(script)], env=env, cwd=isolated_env, stdout=subprocess.DEVNULL
    )
    journal = isolated_env / ".nbops" / "sweeps" / "orphans.journal"
    try:
        _wait_for(journal.exists, 60, "the sweep's journal")
        storage = JournalStorage(JournalFileBackend(str(journal)))
        _wait_for(lambda: "orphans" in optuna.get_all_study_names(storage), 30, "the study")
        study = optuna.load_study(study_name="orphans", storage=storage)

        def two_running() -> bool:
            return len(study.get_trials(states=(TrialState.RUNNING,))) == 2

        _wait_for(two_running, 60, "both workers to run a trial")
        workers = {
            t.user_attrs["nbops.pid"] for t in study.get_trials() if "nbops.pid" in t.user_attrs
        }
    finally:
        coordinator.kill()  # as a kernel restart does
        coordinator.wait()
    _wait_for(lambda: not any(pid_alive(p) for p in workers), 20, "the workers to stop")
    trials = study.get_trials()
    assert len(trials) < 10  # they did not run the rest of the budget
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    stopped = [t for t in trials if t.state == TrialState.FAIL]
    assert all("coordinator" in t.user_attrs["nbops.error"] for t in stopped)


def test_a_worker_from_elsewhere_runs_the_stored_sweep(isolated_env: Path) -> None:
    sweep = nbops.sweep(
        "tests.sweeps.objectives:reports",
        n_trials=100,
        timeout=4,
        jobs=0,  # only create it
        pruner=optuna.pruners.ThresholdPruner(upper=10.0),
        sampler="random",
        seed=5,
        study_name="stored",
        wandb="disabled",
        direction="maximize",
    )
    journal = sweep.spec.storage.removeprefix("journal:")
    started = time.time()
    worker = subprocess.run(
        [
            sys.executable,
            "-m",
            "nbops",
            "sweep",
            "worker",
            "--study",
            "stored",
            "--storage",
            journal,
        ],
        env=subprocess_env(NBOPS_TEST_SLEEP="0.3"),
        cwd=isolated_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert worker.returncode == 0, worker.stderr
    trials = nbops.load_sweep("stored").trials()
    assert 1 <= len(trials) < 100  # the stored timeout ended it
    assert time.time() - started < 60
    states = Counter(t.state for t in trials)
    # the stored pruner prunes every value above 10 (Optuna's default pruner never would)
    pruned = [t for t in trials if t.user_attrs.get("reported", 0) > 10]
    assert pruned and all(t.state == TrialState.PRUNED for t in pruned), states
    first = trials[0].params["x"]
    assert (
        first
        == nbops.sweep(  # the stored seed: the same first draw in a fresh sweep
            "tests.sweeps.objectives:reports",
            n_trials=1,
            sampler="random",
            seed=5,
            study_name="stored-again",
            wandb="disabled",
            direction="maximize",
        )
        .trials()[0]
        .params["x"]
    )


def test_the_optuna_names_nbops_relies_on_exist() -> None:
    assert _optuna.check() == []
