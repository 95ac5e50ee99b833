"""Several machines' worth of workers on one PostgreSQL study, and a worker killed mid-trial
(its trial is retried with the same parameters whether its death is seen by pid on this
machine or by its heartbeat going stale).

The server is real (see ``postgres_url`` in conftest.py). Workers are separate processes
started with ``python -m nbops sweep worker``, as on other machines.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import Counter

from optuna.trial import TrialState

import nbops
from tests.conftest import subprocess_env

SPACE = {"x": {"type": "float", "low": -5.0, "high": 5.0}}


def _worker(url: str, name: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "nbops", "sweep", "worker", "--study", name, "--storage", url],
        env=subprocess_env(NBOPS_TEST_SLEEP="0.4"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_three_workers_and_a_killed_one(postgres_url: str) -> None:
    sweep = nbops.sweep(
        "tests.sweeps.objectives:slow",
        space=SPACE,
        n_trials=15,
        storage=postgres_url,
        study_name="pg-three-workers",
        jobs=0,  # create only; the workers below join it
        heartbeat_interval=1,
        grace_period=3,
        direction="maximize",
    )
    workers = [_worker(postgres_url, sweep.name) for _ in range(3)]
    victim = workers[0]
    deadline = time.time() + 60
    while True:  # kill the first worker while it runs a trial
        running = [
            t
            for t in sweep.study.get_trials(states=(TrialState.RUNNING,))
            if t.user_attrs.get("nbops.pid") == victim.pid and t.params  # objective running
        ]
        if running:
            break
        assert time.time() < deadline, "the worker never ran a trial"
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait()  # reaped at once, so a surviving worker sees its pid gone, not a zombie
    killed_number = running[0].number
    try:
        outputs = [w.communicate(timeout=60)[0] for w in workers[1:]]
    except subprocess.TimeoutExpired:
        for w in workers[1:]:
            w.kill()
        states = [(t.number, t.state.name) for t in sweep.trials()]
        raise AssertionError(f"workers did not finish: {states}") from None
    assert all(w.returncode == 0 for w in workers[1:]), outputs

    trials = sweep.study.get_trials()
    states = Counter(t.state for t in trials)
    assert states[TrialState.RUNNING] == 0
    assert states[TrialState.WAITING] == 0
    assert states[TrialState.COMPLETE] == 15  # every budgeted trial completed exactly once
    assert states[TrialState.FAIL] == 1
    (failed,) = [t for t in trials if t.state == TrialState.FAIL]
    assert failed.number == killed_number
    (retry,) = [t for t in trials if t.system_attrs.get("failed_trial") == killed_number]
    assert retry.state == TrialState.COMPLETE
    assert retry.params == failed.params  # re-run with the same parameters
    pids = Counter(t.user_attrs["nbops.pid"] for t in trials if t.state == TrialState.COMPLETE)
    assert set(pids) <= {w.pid for w in workers}
    assert len(pids) >= 2
    run_ids = [t.user_attrs["nbops.run_id"] for t in trials if t.state == TrialState.COMPLETE]
    assert len(set(run_ids)) == 15


def test_jobs_on_postgres_and_status(postgres_url: str, cli: object) -> None:
    sweep = nbops.sweep(
        "tests.sweeps.objectives:quadratic",
        space=SPACE,
        n_trials=8,
        storage=postgres_url,
        study_name="pg-jobs",
        jobs=2,
        direction="maximize",
    )
    assert len(sweep.trials(states=(TrialState.COMPLETE,))) == 8
    result = cli("sweep", "status", "pg-jobs", "--storage", postgres_url, "--json")  # type: ignore[operator]
    assert result.exit_code == 0, result.stderr
    import json

    doc = json.loads(result.output)
    assert doc["states"]["COMPLETE"] == 8
    assert doc["best"]["params"] == sweep.best_params
