"""Function objectives end to end: tracked trials, pruning, worker processes, Stop, Ctrl-C."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

import nbops
from tests.sweeps import objectives


def records() -> list[Any]:
    from nbops.store import open_store

    return open_store().list_runs()


SPACE = {"x": {"type": "float", "low": -5.0, "high": 5.0}}


def test_dict_space_objective_is_tracked() -> None:
    sweep = nbops.sweep(
        objectives.quadratic, space=SPACE, n_trials=12, study_name="quad", direction="maximize"
    )
    trials = sweep.trials()
    assert len(trials) == 12
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert sweep.best_value == max(t.value for t in trials)
    assert set(sweep.best_params) == {"x"}
    assert sweep.done
    frame = sweep.trials_dataframe()
    assert len(frame) == 12
    runs = [r for r in records() if r.group == "quad"]
    trial_runs = [r for r in runs if r.job_type == "trial"]
    assert len(trial_runs) == 12
    assert all(r.status == "finished" for r in trial_runs)
    best_run = nbops.get_run(sweep.best_trial.user_attrs["nbops.run_id"])
    assert best_run.params == sweep.best_params
    assert best_run.summary["objective"] == pytest.approx(sweep.best_value)
    (summary,) = [r for r in runs if r.job_type == "sweep"]
    assert summary.status == "finished"
    stored = nbops.get_run(summary.id).summary
    assert stored["best_params"] == sweep.best_params
    assert stored["n_complete"] == 12


def test_define_by_run_with_an_active_notebook_run() -> None:
    mine = nbops.init(name="my-notebook-run")
    sweep = nbops.sweep(objectives.define_by_run, n_trials=5, metric="score", direction="maximize")
    assert nbops.active_run() is mine and not mine.finished  # left alone
    trial_run = nbops.get_run(sweep.trials()[0].user_attrs["nbops.run_id"])
    assert "score" in trial_run.summary  # nbops.log inside the objective went to the trial
    assert set(trial_run.params) == {"x", "kind"}
    mine.finish()


def test_lambda_objective_and_metric_from_returned_dict() -> None:
    sweep = nbops.sweep(
        lambda p: {"acc": 1 - abs(p["x"]), "loss": abs(p["x"])},
        space=SPACE,
        n_trials=4,
        metric="acc",
        direction="maximize",
    )
    assert sweep.best_value == max(t.value for t in sweep.trials())


def test_metric_logged_but_not_returned() -> None:
    sweep = nbops.sweep(
        objectives.logs_metric, space=SPACE, n_trials=3, metric="loss", direction="minimize"
    )
    assert sweep.best_value == min(t.value for t in sweep.trials())


def test_multi_objective() -> None:
    sweep = nbops.sweep(
        objectives.logs_metric,
        space=SPACE,
        n_trials=6,
        metric=["acc", "loss"],
        direction=["maximize", "minimize"],
    )
    assert sweep.best_trials
    assert all(len(t.values) == 2 for t in sweep.trials())
    with pytest.raises(nbops.sweeps.SweepError, match="best_trials"):
        _ = sweep.best_params


def test_failing_trials_are_recorded_and_the_sweep_goes_on() -> None:
    def flaky(params: dict[str, Any]) -> float:
        if params["x"] > 0:
            raise RuntimeError("x too big")
        return params["x"]

    sweep = nbops.sweep(
        flaky,
        space=SPACE,
        n_trials=10,
        sampler=optuna.samplers.RandomSampler(0),
        direction="maximize",
    )
    states = {t.state for t in sweep.trials()}
    assert states == {TrialState.COMPLETE, TrialState.FAIL}
    assert all("x too big" in message for _, message in sweep.errors)


def test_pruning_in_a_function() -> None:
    def learning_curve(trial: Any) -> float:
        x = trial.suggest_float("x", -5, 5)
        for step in range(10):
            nbops.report(-abs(x - 2) * (step + 1), step)
        return -abs(x - 2) * 10

    sweep = nbops.sweep(
        learning_curve,
        n_trials=20,
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0),
        sampler=optuna.samplers.RandomSampler(1),
        direction="maximize",
    )
    pruned = [t for t in sweep.trials() if t.state == TrialState.PRUNED]
    assert pruned
    assert all(len(t.intermediate_values) < 10 for t in pruned)
    run = nbops.get_run(pruned[0].user_attrs["nbops.run_id"])
    assert "intermediate_value" in run.summary  # reported values are metrics of the trial


def test_report_outside_a_sweep_only_logs() -> None:
    run = nbops.init()
    nbops.report(0.5, 0)
    nbops.report(0.7, 1)
    run.finish()
    assert nbops.get_run(run.id).summary["intermediate_value"] == 0.7


def test_jobs_2_runs_two_processes_in_parallel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBOPS_TEST_SLEEP", "0.5")
    sweep = nbops.sweep(objectives.slow, space=SPACE, n_trials=6, jobs=2, direction="maximize")
    trials = sweep.trials()
    assert len(trials) == 6 and all(t.state == TrialState.COMPLETE for t in trials)
    pids = {t.user_attrs["nbops.pid"] for t in trials}
    assert len(pids) == 2
    assert os.getpid() not in pids
    assert pids == set(sweep.pids)
    spans = {pid: [] for pid in pids}  # type: dict[int, list[tuple[float, float]]]
    for t in trials:
        spans[t.user_attrs["nbops.pid"]].append(
            (t.datetime_start.timestamp(), t.datetime_complete.timestamp())
        )
    a, b = spans.values()
    assert any(s1 < e2 and s2 < e1 for s1, e1 in a for s2, e2 in b)  # overlapping intervals


def test_stop_in_the_background_leaves_no_running_trial(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBOPS_TEST_SLEEP", "3")
    background = nbops.sweep(
        objectives.slow, space=SPACE, n_trials=20, jobs=2, panel=True, direction="maximize"
    )
    deadline = time.time() + 30
    while not any(t.state == TrialState.RUNNING for t in background.trials()):
        assert time.time() < deadline
        time.sleep(0.1)
    background.stop()
    background.wait(timeout=60)
    assert background.done
    trials = background.trials()
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    # the trial seen RUNNING is normally interrupted (FAIL); under load it may finish first
    interrupted = [t for t in trials if t.state == TrialState.FAIL]
    assert all("interrupted" in t.user_attrs["nbops.error"] for t in interrupted)
    assert len(trials) < 20
    summary = [r for r in records() if r.group == background.name and r.job_type == "sweep"]
    assert summary[0].status == "killed"


def test_ctrl_c_inline_leaves_no_running_trial() -> None:
    def interrupted_at_third(params: dict[str, Any]) -> float:
        if len(records()) > 3:  # summary run + 2 done + this one: the third trial
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        return params["x"]

    with pytest.raises(KeyboardInterrupt):
        nbops.sweep(
            interrupted_at_third, space=SPACE, n_trials=10, study_name="ctrlc", direction="maximize"
        )
    sweep = nbops.load_sweep("ctrlc")
    states = [t.state for t in sweep.trials()]
    assert TrialState.RUNNING not in states
    assert states.count(TrialState.FAIL) == 1
    assert states.count(TrialState.COMPLETE) == 2


def test_a_lambda_reaches_worker_processes_by_value() -> None:
    offset = 3.0
    # each trial sleeps, so both workers get some even on a loaded machine
    sweep = nbops.sweep(
        lambda p: (time.sleep(0.5), -((p["x"] - offset) ** 2))[1],
        space=SPACE,
        n_trials=6,
        jobs=2,
        study_name="lam2",
        direction="maximize",
    )
    assert [t.state for t in sweep.trials()] == [TrialState.COMPLETE] * 6
    assert len({t.user_attrs["nbops.pid"] for t in sweep.trials()}) == 2


def _logs_its_trial(params: dict[str, Any]) -> float:
    for step in range(5):
        nbops.log({"trial_metric": params["x"] + step})
        time.sleep(0.05)
    return params["x"]


def test_trials_on_a_thread_leave_the_notebook_run_alone() -> None:
    """A ``panel=True`` sweep runs trials on a thread while the notebook keeps logging into
    its own run: each metric lands in the run of the code that logged it."""
    mine = nbops.init(name="notebook-run", capture=False)
    sweep = nbops.sweep(_logs_its_trial, space=SPACE, n_trials=4, panel=True, direction="maximize")
    logged, during_a_trial = 0, 0
    deadline = time.monotonic() + 120
    while not sweep.done:
        assert time.monotonic() < deadline
        assert nbops.active_run() is mine
        nbops.log({"notebook_metric": float(logged)})
        logged += 1
        during_a_trial += bool(sweep.trials(states=(TrialState.RUNNING,)))
        time.sleep(0.02)
    sweep.wait()
    nbops.log({"notebook_metric": float(logged)})
    logged += 1
    assert during_a_trial > 0  # the notebook logged while trials ran
    assert nbops.active_run() is mine and not mine.finished
    mine.flush()
    notebook_points = mine.store.get_metrics(mine.id)
    assert {p.key for p in notebook_points} == {"notebook_metric"}
    assert len(notebook_points) == logged
    trials = sweep.trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4, sweep.errors
    for trial in trials:
        points = mine.store.get_metrics(trial.user_attrs["nbops.run_id"])
        assert [p.key for p in points] == ["trial_metric"] * 5
    mine.finish()


def test_a_run_started_in_a_suspended_scope_is_active_there_only() -> None:
    import threading

    from nbops.tracking import suspended

    mine = nbops.init(name="notebook-run", capture=False)
    seen: dict[str, Any] = {}

    def trial() -> None:
        with suspended():
            seen["before"] = nbops.active_run()
            run = nbops.init(name="trial", capture=False)
            seen["inside"] = nbops.active_run() is run
            seen["main_meanwhile"] = main_view.wait(10) and main_active[0]
            run.finish()
            seen["after_finish"] = nbops.active_run()
        seen["after"] = nbops.active_run()

    main_view, main_active = threading.Event(), [None]
    thread = threading.Thread(target=trial)
    thread.start()
    main_active[0] = nbops.active_run()
    main_view.set()
    thread.join(30)
    assert seen == {
        "before": None,
        "inside": True,
        "main_meanwhile": mine,
        "after_finish": None,
        "after": mine,  # a thread outside any scope sees the process's run
    }
    assert nbops.active_run() is mine and not mine.finished
    mine.finish()
