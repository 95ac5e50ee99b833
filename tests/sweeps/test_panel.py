"""The panel: its controller driven without a browser, the widget through its traits."""

from __future__ import annotations

import threading
import time
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

import nbops
from nbops.sweeps._panel_controller import (
    PanelController,
    history_svg,
    importances_svg,
    render_html,
)
from tests.sweeps import objectives

SPACE = {
    "x": {"type": "float", "low": -5.0, "high": 5.0},
    "y": {"type": "int", "low": 0, "high": 3},
}


def _flaky(params: dict[str, Any]) -> float:
    if params["y"] == 3:
        raise ValueError("<y=3 & broken>")
    return -((params["x"] - 2.0) ** 2) + params["y"]


def test_controller_on_a_finished_sweep() -> None:
    sweep = nbops.sweep(
        _flaky,
        space=SPACE,
        n_trials=12,
        sampler=optuna.samplers.RandomSampler(0),
        direction="maximize",
    )
    controller = PanelController(sweep, recent=5)
    state = controller.snapshot(force=True)
    assert state.done == 12 and state.total == 12 and state.running == 0
    assert state.finished and not state.stopped
    assert state.eta is None
    assert state.best_value == sweep.best_value
    assert state.best_params == sweep.best_params
    assert [r.number for r in state.recent] == [11, 10, 9, 8, 7]
    assert {r.state for r in state.recent} <= {"COMPLETE", "FAIL"}
    complete = sweep.trials(states=(TrialState.COMPLETE,))
    assert len(state.history) == len(complete)
    bests = [b for _, _, b in state.history]
    assert bests == sorted(bests)  # best so far never gets worse (maximize)
    assert set(state.importances) == {"x", "y"}
    assert state.errors and all("broken" in m for _, m, _ in state.errors)
    html = render_html(state)
    assert "&lt;y=3 &amp; broken&gt;" in html  # escaped
    assert "<y=3" not in html
    assert "<svg class='nbops-history'" in html and "<svg class='nbops-importances'" in html


def test_importances_are_not_recomputed_more_than_once_a_second(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sweep = nbops.sweep(
        _flaky,
        space=SPACE,
        n_trials=6,
        sampler=optuna.samplers.RandomSampler(1),
        direction="maximize",
    )
    calls = []
    real = optuna.importance.get_param_importances
    monkeypatch.setattr(
        optuna.importance, "get_param_importances", lambda s: calls.append(1) or real(s)
    )
    controller = PanelController(sweep)
    controller.snapshot(now=100.0)
    controller.snapshot(now=100.5)
    assert len(calls) == 1
    controller._importance_complete = -1  # pretend new trials completed
    controller.snapshot(now=100.9)
    assert len(calls) == 1
    controller.snapshot(now=101.2)
    assert len(calls) == 2


def test_svg_helpers_escape_and_handle_empty() -> None:
    assert "width='0'" in history_svg([])
    svg = importances_svg({"<b>": 0.7, "z": 0.3})
    assert "&lt;b&gt;" in svg and "<b>" not in svg
    svg = history_svg([(0, 1.0, 1.0), (1, 0.5, 1.0), (2, 2.0, 2.0)])
    assert svg.count("<circle") == 3


def test_widget_live_and_stop_button(monkeypatch: pytest.MonkeyPatch) -> None:
    from nbops.sweeps import SweepPanel

    monkeypatch.setenv("NBOPS_TEST_SLEEP", "1.0")
    sweep = nbops.sweep(
        objectives.slow, space=SPACE, n_trials=30, jobs=2, panel=True, direction="maximize"
    )
    panel = SweepPanel(sweep, interval=0.2).start()
    deadline = time.time() + 60
    while panel.progress.value < 2:
        assert time.time() < deadline
        time.sleep(0.1)
    assert panel.progress.max == 30
    assert "trials" in panel.header.value and "ETA" in panel.header.value
    assert "<table class='nbops-trials'>" in panel.table.value
    panel.stop_button.click()
    assert panel.stop_button.disabled
    sweep.wait(timeout=60)
    deadline = time.time() + 10
    while panel.stop_button.description != "Stopped":
        assert time.time() < deadline
        time.sleep(0.1)
    assert "stopped" in panel.header.value
    assert not sweep.trials(states=(TrialState.RUNNING,))
    panel.close()


def test_panel_for_a_sweep_loaded_from_storage() -> None:
    from nbops.sweeps import SweepPanel

    nbops.sweep(
        objectives.quadratic,
        space={"x": SPACE["x"]},
        n_trials=4,
        study_name="loadme",
        direction="maximize",
    )
    loaded = nbops.load_sweep("loadme")
    panel = SweepPanel(loaded)
    assert panel.progress.value == 4 and panel.progress.max == 4
    assert "loadme" in panel.header.value and "done" in panel.header.value
    assert "loadme" in loaded._repr_html_()


def test_tracebacks_stay_in_the_panel(capsys: pytest.CaptureFixture[str]) -> None:
    sweep = nbops.sweep(
        _flaky,
        space=SPACE,
        n_trials=8,
        sampler=optuna.samplers.RandomSampler(0),
        direction="maximize",
    )
    state = PanelController(sweep).snapshot(force=True)
    _, message, traceback = state.errors[0]
    assert "broken" in message
    assert "Traceback" in traceback and 'raise ValueError("<y=3 & broken>")' in traceback
    html = render_html(state)
    assert "<details><summary>" in html and "&lt;y=3 &amp; broken&gt;" in html
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out  # not printed into some cell


def test_multi_objective_panel_shows_the_labelled_pareto_front() -> None:
    sweep = nbops.sweep(
        objectives.logs_metric,
        space={"x": SPACE["x"]},
        n_trials=8,
        metric=["acc", "loss"],
        direction=["maximize", "minimize"],
    )
    state = PanelController(sweep).snapshot(force=True)
    assert state.objectives == ("acc", "loss")
    assert state.pareto and {n for n, _, _ in state.pareto} == {t.number for t in sweep.best_trials}
    html = render_html(state)
    assert "no completed trial yet" not in html
    assert "Pareto front: " in html and "acc (maximize)" in html and "loss (minimize)" in html
    assert "<svg class='nbops-pareto'" in html and html.count("<circle") >= 8
    assert "<svg class='nbops-parallel'" in html


def test_history_axes_and_a_log_scale_for_values_spanning_decades() -> None:
    svg = history_svg([(0, 0.001, 0.001), (1, 0.5, 0.5), (2, 40.0, 40.0)], label="loss")
    assert "(log)" in svg and ">loss" in svg and ">trial<" in svg
    assert "(log)" not in history_svg([(0, 1.0, 1.0), (1, 2.0, 2.0)])


def test_a_stored_sweep_shows_its_own_elapsed_time_and_one_running_elsewhere_stays_live(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NBOPS_TEST_SLEEP", "0.5")
    running = nbops.sweep(
        objectives.slow,
        space={"x": SPACE["x"]},
        n_trials=6,
        jobs=2,
        panel=True,
        study_name="elsewhere",
        direction="maximize",
    )
    seen = nbops.load_sweep("elsewhere")
    assert not seen.done  # running in other processes: the panel keeps refreshing
    running.wait(timeout=120)
    deadline = time.monotonic() + 60  # the workers' last writes land a moment after wait()
    while not (stored := nbops.load_sweep("elsewhere")).done and time.monotonic() < deadline:
        time.sleep(0.2)
    assert stored.done
    state = PanelController(stored).snapshot(force=True)
    assert 1.0 <= state.elapsed < time.time() - running.started  # its trials' span, not 0


def _sleepy(params: dict[str, Any]) -> float:
    time.sleep(1.5)
    return params["x"]


@pytest.mark.parametrize("now", [False, True])
def test_stop_on_a_thread_keeps_or_interrupts_the_running_trial(now: bool) -> None:
    sweep = nbops.sweep(
        _sleepy, space={"x": SPACE["x"]}, n_trials=20, panel=True, direction="maximize"
    )
    deadline = time.time() + 30
    while not sweep.trials(states=(TrialState.RUNNING,)):
        assert time.time() < deadline
        time.sleep(0.05)
    sweep.stop(now=now)
    sweep.wait(timeout=30)
    assert sweep.done
    trials = sweep.trials()
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    last = trials[-1]
    if now:  # interrupted: failed, and said so
        assert last.state == TrialState.FAIL and "interrupted" in last.user_attrs["nbops.error"]
    else:  # the running trial finished and its result was kept
        assert last.state == TrialState.COMPLETE
    assert len(trials) <= 2


_RELEASE = threading.Event()


def _uninterruptible(params: dict[str, Any]) -> float:
    _RELEASE.wait(60)  # a blocking C call: an async exception lands only once it returns
    return params["x"]


def test_stop_now_on_a_thread_fails_a_trial_stuck_in_a_long_call_at_once() -> None:
    sweep = nbops.sweep(
        _uninterruptible, space={"x": SPACE["x"]}, n_trials=5, panel=True, direction="maximize"
    )
    deadline = time.time() + 30
    while not sweep.trials(states=(TrialState.RUNNING,)):
        assert time.time() < deadline
        time.sleep(0.05)
    stopped = time.time()
    sweep.stop(now=True)
    try:
        while sweep.trials(states=(TrialState.RUNNING,)):
            assert time.time() - stopped < 10, "the trial stayed RUNNING until its call returned"
            time.sleep(0.05)
    finally:
        _RELEASE.set()
    sweep.wait(timeout=30)
    (trial,) = sweep.trials()
    assert trial.state == TrialState.FAIL and "interrupted" in trial.user_attrs["nbops.error"]
    assert nbops.get_run(trial.user_attrs["nbops.run_id"]).status == "killed"
