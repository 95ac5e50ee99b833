"""Notebook objectives with real kernels: injected parameters, logged metric, pruning."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

import nbops
from nbops.execute import ParameterError
from tests.sweeps.conftest import write_notebook

pytestmark = pytest.mark.kernel

SPACE = {
    "x": {"type": "float", "low": -5.0, "high": 5.0},
    "kind": {"type": "categorical", "choices": ["a", "b"]},
}
TRAIN = (
    "import nbops\n"
    "for step in range(steps):\n"
    "    nbops.report(-(x - 2) ** 2 * (step + 1), step)\n"
    "nbops.log({'score': -(x - 2) ** 2 + (0.5 if kind == 'a' else 0.0)})\n"
)


@pytest.fixture
def notebook(isolated_env: Path) -> Path:
    return write_notebook(isolated_env / "train.ipynb", "x = 0.0\nkind = 'a'\nsteps = 4", TRAIN)


def test_notebook_sweep_with_pruning(notebook: Path) -> None:
    sweep = nbops.sweep(
        notebook,
        space=SPACE,
        metric="score",
        n_trials=7,
        study_name="nb",
        sampler=optuna.samplers.RandomSampler(3),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0),
        direction="maximize",
    )
    trials = sweep.trials()
    assert len(trials) == 7
    assert TrialState.RUNNING not in {t.state for t in trials}
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    assert len(complete) >= 2
    assert pruned, [(t.number, t.state, t.user_attrs.get("nbops.error")) for t in trials]
    assert all(len(t.intermediate_values) < 4 for t in pruned)  # stopped inside the kernel
    best = sweep.best_trial
    expected = -((best.params["x"] - 2) ** 2) + (0.5 if best.params["kind"] == "a" else 0.0)
    assert sweep.best_value == pytest.approx(expected)
    run = nbops.get_run(best.user_attrs["nbops.run_id"])
    assert run.params == best.params  # the trial run's config is the injected parameters
    assert run.summary["score"] == pytest.approx(sweep.best_value)
    assert run.history()["intermediate_value"].notna().sum() == 4
    output = Path(best.user_attrs["nbops.output"])
    assert output.exists()
    assert "injected-parameters" in output.read_text()
    pruned_run = nbops.get_run(pruned[0].user_attrs["nbops.run_id"])
    assert pruned_run.status == "finished"


def test_undeclared_space_key_is_refused(notebook: Path) -> None:
    with pytest.raises(ParameterError, match="'lr' is not declared"):
        nbops.sweep(
            notebook,
            space={"lr": {"type": "float", "low": 0.1, "high": 1.0}},
            metric="score",
            n_trials=2,
            direction="maximize",
        )


def test_a_metric_never_logged_stops_the_sweep_after_the_first_trial(isolated_env: Path) -> None:
    path = write_notebook(
        isolated_env / "quiet.ipynb", "x = 0.0", "import nbops\nnbops.log({'acc': x})"
    )
    with pytest.raises(nbops.sweeps.SweepError) as info:
        nbops.sweep(
            path,
            space={"x": SPACE["x"]},
            metric="score",
            n_trials=5,
            study_name="quiet",
            direction="maximize",
        )
    message = str(info.value)
    assert "never logged metric 'score'" in message
    assert "quiet.ipynb" in message
    assert "it logged: acc" in message  # what it did log
    assert [t.state for t in nbops.load_sweep("quiet").trials()] == [TrialState.FAIL]


def test_two_worker_processes_run_notebooks(notebook: Path) -> None:
    sweep = nbops.sweep(
        notebook, space=SPACE, metric="score", n_trials=4, jobs=2, direction="maximize"
    )
    trials = sweep.trials()
    assert [t.state for t in trials].count(TrialState.COMPLETE) + [t.state for t in trials].count(
        TrialState.PRUNED
    ) == 4
    assert len({t.user_attrs["nbops.pid"] for t in trials}) == 2


def _fail_handoff(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("nbops.sweeps._objectives.write_atomic", refuse)


def _stop_lands_before_execution(monkeypatch: pytest.MonkeyPatch) -> None:
    from nbops.sweeps._errors import SweepInterrupted
    from nbops.sweeps._objectives import TrialScope

    def interrupted(*args: object, **kwargs: object) -> None:
        raise SweepInterrupted("the sweep was stopped")

    monkeypatch.setattr(TrialScope, "open_run", interrupted)


@pytest.mark.parametrize("break_it", [_fail_handoff, _stop_lands_before_execution])
def test_every_kernel_started_is_shut_down(
    notebook: Path, monkeypatch: pytest.MonkeyPatch, break_it: object
) -> None:
    import time

    import nbops.execute
    from nbops.process import pid_alive

    pids: list[int] = []
    real_start = nbops.execute.start_kernel

    def recording_start(*args: object, **kwargs: object) -> object:
        manager = real_start(*args, **kwargs)  # type: ignore[arg-type]
        pids.append(manager.provisioner.process.pid)
        return manager

    monkeypatch.setattr(nbops.execute, "start_kernel", recording_start)
    break_it(monkeypatch)  # type: ignore[operator]
    sweep = nbops.sweep(
        notebook, space=SPACE, metric="score", n_trials=2, direction="maximize", study_name="leak"
    )
    assert [t.state for t in sweep.trials()] == [TrialState.FAIL] * 2
    assert len(pids) >= 2
    deadline = time.time() + 30
    while any(pid_alive(pid) for pid in pids):
        assert time.time() < deadline, "a kernel the sweep started is still running"
        time.sleep(0.1)


def test_stop_now_ends_the_processes_a_notebook_trial_started(isolated_env: Path) -> None:
    import time

    from nbops.process import pid_alive

    pids = isolated_env / "pids"
    pids.mkdir()
    body = (
        "import os, subprocess, time\n"
        "child = subprocess.Popen(['sleep', '300'])\n"
        "open(os.path.join(folder, str(child.pid)), 'w').close()\n"
        "time.sleep(300)\n"
    )
    path = write_notebook(isolated_env / "spawn.ipynb", f"x = 0.0\nfolder = {str(pids)!r}", body)
    sweep = nbops.sweep(
        path,
        space={"x": SPACE["x"]},
        metric="score",
        n_trials=3,
        direction="maximize",
        panel=True,  # worker processes in the background
    )
    deadline = time.time() + 90
    while not list(pids.iterdir()):
        assert time.time() < deadline, "the notebook never started its child process"
        time.sleep(0.2)
    sweep.stop(now=True)
    sweep.wait(timeout=90)
    children = [int(p.name) for p in pids.iterdir()]
    deadline = time.time() + 30
    while any(pid_alive(pid) for pid in children):
        assert time.time() < deadline, "a process the trial's notebook started outlived it"
        time.sleep(0.2)
    states = {t.state for t in sweep.trials()}
    assert TrialState.RUNNING not in states and TrialState.FAIL in states
