"""Objectives importable by worker processes (``tests.sweeps.objectives:NAME``)."""

from __future__ import annotations

import os
import time
from typing import Any

import nbops


def quadratic(params: dict[str, Any]) -> float:
    return -((params["x"] - 2.0) ** 2)


def define_by_run(trial: Any) -> float:
    x = trial.suggest_float("x", -5, 5)
    kind = trial.suggest_categorical("kind", ["a", "b"])
    nbops.log({"score": -((x - 2.0) ** 2) + (0.5 if kind == "a" else 0.0)})
    return -((x - 2.0) ** 2) + (0.5 if kind == "a" else 0.0)


def slow(params: dict[str, Any]) -> float:
    """Sleeps, so two workers visibly overlap."""
    time.sleep(float(os.environ.get("NBOPS_TEST_SLEEP", "0.4")))
    return -((params["x"] - 2.0) ** 2)


def busy(params: dict[str, Any]) -> float:
    """CPU-bound for about 0.3 s (for the jobs=2 speed-up benchmark)."""
    total = 0
    for i in range(int(params.get("n", 2_000_000))):
        total += i % 7
    return float(total % 1000) + params["x"]


def logs_metric(params: dict[str, Any]) -> None:
    nbops.log({"acc": 1.0 - abs(params["x"] - 0.3), "loss": abs(params["x"] - 0.3)})


def grid_score(params: dict[str, Any]) -> float:
    assert params["c"] == 0.5
    return params["a"] + (0.5 if params["b"] == "u" else 0.0)


def define_by_run_x(trial: Any) -> float:
    return trial.suggest_float("x", 0.0, 3.0)


def reports(trial: Any) -> float:
    """Reports one intermediate value (10 + x), then returns it after a short sleep."""
    value = 10.0 + trial.suggest_float("x", -5, 5)
    trial.set_user_attr("reported", value)
    nbops.report(value, 0)
    time.sleep(float(os.environ.get("NBOPS_TEST_SLEEP", "0.1")))
    return value


def wandb_train(config: dict[str, Any]) -> dict[str, float]:
    """A W&B-style training function: a config dict in (nested parameters as dicts)."""
    loss = abs(config["lr"] - 0.01) + 0.001 * config["batch_size"]
    if "optimizer" in config:
        loss += config["optimizer"]["momentum"] * 0.01
    nbops.log({"validation_loss": loss})
    return {"validation_loss": loss}


def pause(params: dict[str, Any]) -> float:
    """Waits ``seconds`` in short sleeps (an interrupt lands within 0.05 s), returns x."""
    end = time.time() + float(params.get("seconds", 1.5))
    while time.time() < end:
        time.sleep(0.05)
    return float(params["x"])


def curve_without_live_mirror(params: dict[str, Any]) -> float:
    """Logs a short curve; fails the trial if a W&B run was started on the trial's path."""
    run = nbops.active_run()
    assert run is not None and run.mirror is None, "a W&B run was started on the trial's path"
    for step in range(3):
        nbops.log({"loss": abs(params["x"] - 0.3) / (step + 1), "step_x": params["x"] * step})
    return -abs(params["x"] - 0.3)
