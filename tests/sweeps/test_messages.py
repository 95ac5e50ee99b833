"""What a sweep says when things go wrong: a metric never logged, unknown sweeps, stops from
elsewhere, Ctrl-C with worker processes."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from optuna.trial import TrialState

import nbops
from nbops.sweeps import SweepError
from tests.conftest import subprocess_env

SPACE = {"x": {"type": "float", "low": -5.0, "high": 5.0}}


def _wait_for(condition: Any, seconds: float, what: str) -> None:
    deadline = time.time() + seconds
    while not condition():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_metric_never_logged_stops_the_sweep_after_the_first_trial(jobs: int) -> None:
    with pytest.raises(SweepError, match=r"never logged metric 'accuracy'.*it logged: acc, loss"):
        nbops.sweep(
            "tests.sweeps.objectives:logs_metric",
            space=SPACE,
            n_trials=20,
            metric="accuracy",
            direction="maximize",
            jobs=jobs,
            study_name=f"nometric-{jobs}",
        )
    assert len(nbops.load_sweep(f"nometric-{jobs}").trials()) <= jobs


def test_joining_an_unknown_sweep_creates_nothing(cli: Any, isolated_env: Path) -> None:
    journal = isolated_env / "elsewhere.journal"
    result = cli("sweep", "worker", "--study", "nope", "--storage", str(journal))
    assert result.exit_code == 1 and "no sweep 'nope'" in result.stderr
    assert str(journal) in result.stderr  # the storage as the user gave it
    assert not journal.exists()
    assert not (isolated_env / ".nbops" / "sweeps").exists()


def test_status_lists_the_sweeps_of_a_storage(cli: Any, isolated_env: Path) -> None:
    url = f"sqlite:///{isolated_env / 'sweeps.db'}"
    for name in ("first", "second"):
        nbops.sweep(
            "tests.sweeps.objectives:quadratic",
            space=SPACE,
            n_trials=1,
            storage=url,
            study_name=name,
            direction="maximize",
        )
    listing = cli("sweep", "status", "--storage", url, "--json")
    assert listing.exit_code == 0, listing.stderr
    assert json_loads(listing.output) == {"sweeps": ["first", "second"]}
    missing = cli("sweep", "status", "third", "--storage", url)
    assert missing.exit_code == 1 and url in missing.stderr


def json_loads(text: str) -> Any:
    import json

    return json.loads(text)


def test_a_cli_sweep_stopped_from_elsewhere_exits_130(isolated_env: Path) -> None:
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "nbops", "sweep", "run", "tests.sweeps.objectives:slow",
            "--n-trials", "50", "--study", "far-stop", "--direction", "maximize",
            "--space", "space.yaml",
        ],
        env=subprocess_env(NBOPS_TEST_SLEEP="0.5"),
        cwd=isolated_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    (isolated_env / "space.yaml").write_text("x: {type: float, low: -5, high: 5}\n")
    journal = isolated_env / ".nbops" / "sweeps" / "far-stop.journal"
    try:
        _wait_for(lambda: journal.exists() and _complete(isolated_env) >= 1, 60, "a trial")
        nbops.load_sweep("far-stop").stop()
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, (out, err)
    assert _complete(isolated_env) < 50


def _complete(home: Path) -> int:
    try:
        sweep = nbops.load_sweep("far-stop")
    except SweepError:
        return 0
    return len(sweep.trials(states=(TrialState.COMPLETE,)))


CTRL_C = """
import signal
signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal
import nbops
nbops.sweep(
    "tests.sweeps.objectives:slow",
    space={"x": {"type": "float", "low": -5.0, "high": 5.0}},
    n_trials=40,
    jobs=2,
    study_name="ctrl-c-jobs",
    direction="maximize",
)
"""


def test_ctrl_c_with_worker_processes_records_the_sweep_killed(isolated_env: Path) -> None:
    script = isolated_env / "sweep.py"
    script.write_text(textwrap.dedent(CTRL_C))
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        env=subprocess_env(NBOPS_TEST_SLEEP="1.0"),
        cwd=isolated_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    journal = isolated_env / ".nbops" / "sweeps" / "ctrl-c-jobs.journal"

    def running() -> bool:
        if not journal.exists():
            return False
        try:
            sweep = nbops.load_sweep("ctrl-c-jobs")
        except SweepError:
            return False
        return bool(sweep.trials(states=(TrialState.RUNNING,)))

    try:
        _wait_for(running, 60, "a running trial")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert "KeyboardInterrupt" in err
    from nbops.store import open_store

    (summary,) = [
        r for r in open_store().list_runs() if r.group == "ctrl-c-jobs" and r.job_type == "sweep"
    ]
    assert summary.status == "killed"
    states = {t.state for t in nbops.load_sweep("ctrl-c-jobs").trials()}
    assert TrialState.RUNNING not in states


def test_a_worker_that_cannot_start_says_why() -> None:
    import types

    module = types.ModuleType("only_here")  # importable in this process, not in its workers
    exec("def objective(params):\n    return params['x']", module.__dict__)
    sys.modules["only_here"] = module
    try:
        with pytest.raises(SweepError) as info:
            nbops.sweep(module.objective, space=SPACE, n_trials=2, jobs=2, direction="maximize")
    finally:
        del sys.modules["only_here"]
    message = str(info.value)
    assert "every worker" in message and "cannot import module 'only_here'" in message
    assert "RuntimeWarning" not in message
