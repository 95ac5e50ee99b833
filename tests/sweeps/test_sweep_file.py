"""Sweep files as W&B documents them, run by ``nbops sweep run sweep.yaml``."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from optuna.trial import TrialState

import nbops
from nbops.sweeps import SweepError, load_sweep_file

# W&B's "Define sweep configuration" example, plus nbops' target
BAYES = """\
program: train.py
target: tests.sweeps.objectives:wandb_train
method: bayes
name: sweep
metric:
  goal: minimize
  name: validation_loss
parameters:
  batch_size:
    values: [16, 32, 64]
  lr:
    max: 0.1
    min: 0.0001
run_cap: 4
"""

DISTRIBUTIONS = """\
target: tests.sweeps.objectives:wandb_train
method: random
metric: {name: validation_loss, goal: minimize}
parameters:
  lr:
    distribution: log_uniform_values
    min: 1e-5
    max: 1e-1
  dropout:
    distribution: normal
    mu: 0.5
    sigma: 0.1
  batch_size:
    distribution: q_log_uniform_values
    q: 8
    min: 32
    max: 256
  weight_decay:
    distribution: uniform
    min: 0.0
    max: 0.1
  layers:
    distribution: int_uniform
    min: 1
    max: 4
  epochs:
    value: 3
  optimizer:
    parameters:
      momentum:
        values: [0.8, 0.9]
early_terminate:
  type: hyperband
  min_iter: 3
  eta: 2
run_cap: 6
seed: 1
"""

GRID = """\
target: tests.sweeps.objectives:wandb_train
method: grid
metric: {name: validation_loss, goal: minimize}
parameters:
  lr: {values: [0.001, 0.01, 0.1]}
  batch_size: {values: [16, 32]}
jobs: 2
"""


def test_the_documented_example_reads_as_wandb_means_it(tmp_path: Path) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_text(BAYES)
    config = load_sweep_file(path)
    assert config.sampler == "tpe" and config.metric == "validation_loss"
    assert config.direction == "minimize" and config.n_trials == 4
    assert config.space == {
        "batch_size": {"type": "categorical", "choices": [16, 32, 64]},
        "lr": {"type": "float", "low": 0.0001, "high": 0.1, "log": False},
    }


def test_distributions_nested_parameters_and_hyperband(tmp_path: Path) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_text(DISTRIBUTIONS)
    config = load_sweep_file(path)
    space: Any = config.space
    assert space["lr"] == {"type": "float", "low": 1e-5, "high": 0.1, "log": True}
    assert isinstance(space["lr"]["low"], float)  # YAML 1.2: 1e-5 is a number
    assert space["layers"]["type"] == "int" and space["epochs"] == {"type": "constant", "value": 3}
    assert config.pruner == "hyperband"
    assert config.pruner_options == {"reduction_factor": 2, "min_resource": 3}
    sweep = nbops.sweep(config=config, study_name="dists", wandb="disabled")
    trials = sweep.trials()
    assert len(trials) == 6 and {t.state for t in trials} == {TrialState.COMPLETE}, sweep.errors
    for trial in trials:
        run = nbops.get_run(trial.user_attrs["nbops.run_id"])
        assert run.params["batch_size"] % 8 == 0 and 32 <= run.params["batch_size"] <= 256
        assert 1e-5 <= run.params["lr"] <= 0.1 and math.isfinite(run.params["dropout"])
        assert run.params["epochs"] == 3
        assert run.params["optimizer.momentum"] in (0.8, 0.9)
    assert type(sweep.study.pruner).__name__ == "HyperbandPruner"


def test_cli_runs_a_grid_sweep_file(cli: Any, isolated_env: Path) -> None:
    (isolated_env / "grid.yaml").write_text(GRID)
    result = cli("sweep", "run", "grid.yaml", "--study", "file-grid", "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.output)
    assert doc["states"]["COMPLETE"] == 6
    combos = Counter((t["params"]["lr"], t["params"]["batch_size"]) for t in doc["trials"])
    assert combos == {(lr, b): 1 for lr in (0.001, 0.01, 0.1) for b in (16, 32)}
    assert doc["best"]["params"] == {"lr": 0.01, "batch_size": 16}


def test_cli_flags_override_the_file_and_pick_samplers_by_name(
    cli: Any, isolated_env: Path
) -> None:
    (isolated_env / "sweep.yaml").write_text(BAYES)
    result = cli(
        "sweep", "run", "sweep.yaml", "--study", "flags", "--n-trials", "2",
        "--sampler", "random", "--seed", "0", "--pruner", "hyperband",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    sweep = nbops.load_sweep("flags")
    assert len(sweep.trials()) == 2
    stored = sweep.study.user_attrs["nbops.spec"]
    assert stored["seed"] == 0 and stored["sampler"] and stored["pruner"]


MINIMAL = {
    "target": "tests.sweeps.objectives:wandb_train",
    "metric": "{name: validation_loss, goal: minimize}",
    "run_cap": "1",
    "parameters": "{lr: {min: 0.0, max: 1.0}, batch_size: {value: 1}}",
}


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ("command: [python, train.py]\n", "'command'"),
        ("metric: {name: loss, goal: minimize, target: 0.1}\n", "'target'"),
        ("early_terminate: {type: envelope}\n", "hyperband"),
        ("parameters: {lr: {values: [1, 2], probabilities: [0.5, 0.5]}}\n", "'probabilities'"),
        ("parameters: {lr: {distribution: beta, min: 0, max: 1}}\n", "'beta'"),
    ],
)
def test_unsupported_keys_fail_before_any_trial_naming_them(
    cli: Any, isolated_env: Path, extra: str, named: str
) -> None:
    key, value = extra.split(":", 1)
    doc = {**MINIMAL, key: value.strip()}
    (isolated_env / "bad.yaml").write_text("".join(f"{k}: {v}\n" for k, v in doc.items()))
    result = cli("sweep", "run", "bad.yaml", "--study", "bad")
    assert result.exit_code == 1 and result.stderr.startswith("Error:"), result.stderr
    assert named in result.stderr
    assert not (isolated_env / ".nbops" / "sweeps" / "bad.journal").exists()


def test_a_file_without_a_target_says_what_to_add(tmp_path: Path) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_text(BAYES.replace("target: tests.sweeps.objectives:wandb_train\n", ""))
    with pytest.raises(SweepError, match=r"give target.*program 'train\.py'"):
        load_sweep_file(path)
