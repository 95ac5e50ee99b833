"""Budgets are exact (resumes, timeouts, enqueued trials), seeded workers draw distinct and
reproducible parameters, grids run every combination once, and ``jobs=1`` runs the user's own
function in this process."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

import nbops
from nbops.sweeps import SweepError
from tests.sweeps import objectives

SPACE = {"x": {"type": "float", "low": -5.0, "high": 5.0}}


def all_trials(sweep: Any) -> list[Any]:
    """Every trial in the storage, WAITING ones included (what the dashboard shows)."""
    return list(sweep.study.get_trials(deepcopy=False))


def stops_itself_after(count: int, name: str) -> Any:
    def objective(params: dict[str, Any]) -> float:
        done = nbops.load_sweep(name).study.get_trials(states=(TrialState.COMPLETE,))
        if len(done) + 1 >= count:
            nbops.load_sweep(name).stop()  # as the panel's Stop from another cell would
        return float(params["x"])

    return objective


def test_resume_runs_exactly_the_trials_asked_for() -> None:
    first = nbops.sweep(
        stops_itself_after(7, "resume"),
        space=SPACE,
        n_trials=10,
        study_name="resume",
        direction="maximize",
    )
    assert len(first.trials()) == 7
    assert not [t for t in all_trials(first) if t.state == TrialState.WAITING]
    again = nbops.sweep(
        stops_itself_after(100, "resume"),
        space=SPACE,
        n_trials=2,
        study_name="resume",
        direction="maximize",
    )
    assert Counter(t.state for t in all_trials(again)) == {TrialState.COMPLETE: 9}
    assert again.n_trials == 9


def test_a_timeout_leaves_no_queued_work(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBOPS_TEST_SLEEP", "0.3")
    timed = nbops.sweep(
        objectives.slow,
        space=SPACE,
        n_trials=50,
        timeout=1.0,
        study_name="timed",
        direction="maximize",
    )
    ran = len(all_trials(timed))
    assert 1 <= ran < 50
    assert {t.state for t in all_trials(timed)} == {TrialState.COMPLETE}  # nothing WAITING
    later = nbops.sweep(
        objectives.slow, space=SPACE, n_trials=1, study_name="timed", direction="maximize"
    )
    assert len(all_trials(later)) == ran + 1


def test_enqueued_trials_count_within_the_budget() -> None:
    created = nbops.sweep(
        objectives.quadratic,
        space=SPACE,
        n_trials=3,
        study_name="enq",
        jobs=0,
        direction="maximize",
    )
    assert all_trials(created) == []  # creating a sweep stores no placeholder trial
    created.study.enqueue_trial({"x": 1.5})
    done = nbops.sweep(
        objectives.quadratic, space=SPACE, n_trials=3, study_name="enq", direction="maximize"
    )
    trials = all_trials(done)
    assert len(trials) == 3 and {t.state for t in trials} == {TrialState.COMPLETE}
    assert trials[0].params == {"x": 1.5}


def _params(name: str) -> list[float]:
    sweep = nbops.sweep(
        "tests.sweeps.objectives:quadratic",
        space=SPACE,
        n_trials=9,
        jobs=3,
        study_name=name,
        sampler=optuna.samplers.TPESampler(seed=42),
        direction="maximize",
    )
    trials = sweep.trials()
    assert len(trials) == 9 and {t.state for t in trials} == {TrialState.COMPLETE}
    return sorted(t.params["x"] for t in trials)


def test_seeded_workers_draw_distinct_and_reproducible_parameters() -> None:
    first = _params("seeded-a")
    assert len(set(first)) == 9  # every worker has its own draws
    assert _params("seeded-b") == first  # and a seeded sweep is reproducible


def test_seed_by_name_gives_the_same_draws_whatever_the_jobs() -> None:
    def run(name: str, jobs: int) -> list[float]:
        sweep = nbops.sweep(
            "tests.sweeps.objectives:quadratic",
            space=SPACE,
            n_trials=4,
            jobs=jobs,
            study_name=name,
            sampler="random",
            seed=7,
            direction="maximize",
        )
        return sorted(t.params["x"] for t in sweep.trials())

    assert run("seed-one", 1) == run("seed-two", 2)


def test_jobs_1_runs_the_users_function_in_this_process() -> None:
    seen: list[float] = []
    lock = threading.Lock()  # cannot be pickled: the function must not be copied

    def objective(params: dict[str, Any]) -> float:
        with lock:
            seen.append(params["x"])
        return -abs(params["x"])

    sweep = nbops.sweep(objective, space=SPACE, n_trials=4, direction="maximize")
    assert len(seen) == 4  # side effects happened here, on the user's own list
    assert sorted(seen) == sorted(t.params["x"] for t in sweep.trials())
    assert sweep.spec.payload is None  # nothing pickled for jobs=1


def test_worker_spec_files_are_deleted_when_the_sweep_ends() -> None:
    from nbops.sweeps._storage import sweeps_dir

    sweep = nbops.sweep(
        lambda p: p["x"], space=SPACE, n_trials=2, jobs=2, study_name="specs", direction="maximize"
    )
    assert sweep.done
    folder = sweeps_dir() / "specs"
    assert list(folder.glob("spec-*.pkl")) == [], list(folder.iterdir())


def test_grid_with_two_workers_runs_every_combination_once() -> None:
    space = {"a": [1, 2, 3], "b": {"type": "grid", "values": ["u", "v"]}, "c": 0.5}
    sweep = nbops.sweep(
        "tests.sweeps.objectives:grid_score",
        space=space,
        jobs=2,
        study_name="grid2",
        direction="maximize",
    )
    trials = all_trials(sweep)
    combos = Counter((t.params["a"], t.params["b"]) for t in trials)
    assert combos == {(a, b): 1 for a in (1, 2, 3) for b in ("u", "v")}
    assert {t.state for t in trials} == {TrialState.COMPLETE}
    run = nbops.get_run(trials[0].user_attrs["nbops.run_id"])
    assert run.params["c"] == 0.5  # constants reach the objective and the run


def test_a_users_grid_sampler_with_two_workers() -> None:
    sampler = optuna.samplers.GridSampler({"x": [0.0, 1.0, 2.0, 3.0]}, seed=1)
    sweep = nbops.sweep(
        "tests.sweeps.objectives:define_by_run_x",
        n_trials=10,
        jobs=2,
        sampler=sampler,
        study_name="usergrid",
        direction="maximize",
    )
    trials = all_trials(sweep)
    assert {t.state for t in trials} == {TrialState.COMPLETE}, sweep.errors
    assert sorted(t.params["x"] for t in trials) == [0.0, 1.0, 2.0, 3.0]


def test_brute_force_exhaustion_ends_the_sweep() -> None:
    def objective(trial: Any) -> float:
        return float(trial.suggest_int("k", 0, 2))

    sweep = nbops.sweep(
        objective,
        n_trials=10,
        sampler=optuna.samplers.BruteForceSampler(seed=0),
        study_name="brute",
        direction="maximize",
    )
    assert sorted(t.params["k"] for t in all_trials(sweep)) == [0, 1, 2]
    from nbops.store import open_store

    runs = [r for r in open_store().list_runs() if r.group == "brute"]
    assert runs and {r.status for r in runs} == {"finished"}


def test_sampler_and_pruner_by_name() -> None:
    sweep = nbops.sweep(
        objectives.quadratic,
        space=SPACE,
        n_trials=3,
        sampler="tpe",
        sampler_options={"n_startup_trials": 2},
        pruner="hyperband",
        seed=0,
        direction="maximize",
    )
    assert type(sweep.study.sampler).__name__ == "TPESampler"
    assert type(sweep.study.pruner).__name__ == "HyperbandPruner"
    with pytest.raises(SweepError, match="unknown sampler 'annealing'"):
        nbops.sweep(
            objectives.quadratic, space=SPACE, n_trials=1, sampler="annealing", direction="maximize"
        )
    with pytest.raises(SweepError, match="no option bogus"):
        nbops.sweep(
            objectives.quadratic,
            space=SPACE,
            n_trials=1,
            sampler="tpe",
            sampler_options={"bogus": 1},
            direction="maximize",
        )


def test_conditional_parameters() -> None:
    space = {
        "optimizer": {"type": "categorical", "choices": ["sgd", "adam"]},
        "momentum": {"type": "float", "low": 0.0, "high": 0.9, "when": {"optimizer": "sgd"}},
    }
    sweep = nbops.sweep(
        lambda p: p.get("momentum", 0.0),
        space=space,
        n_trials=12,
        sampler="random",
        seed=3,
        direction="maximize",
    )
    for trial in sweep.trials():
        assert ("momentum" in trial.params) == (trial.params["optimizer"] == "sgd")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"n_trials": 2}, "give direction='maximize' or direction='minimize'"),
        ({"n_trials": 2.5, "direction": "minimize"}, "n_trials must be a positive whole number"),
        ({"n_trials": 2, "direction": "minimize", "colour": 1}, "no option 'colour'"),
    ],
)
def test_refused_before_the_study_is_created(options: dict[str, Any], message: str) -> None:
    from nbops.sweeps._storage import sweeps_dir

    with pytest.raises(SweepError, match=message):
        nbops.sweep(objectives.quadratic, space=SPACE, study_name="refused", **options)
    assert not Path(sweeps_dir() / "refused.journal").exists()
