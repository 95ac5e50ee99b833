"""The example pipeline: a model whose stage fails its gate never becomes "latest"."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

import nbops
from nbops.pipeline import PipelineFailed, run_pipeline
from nbops.registry import get_model, model_versions
from tests.conftest import REPO

pytestmark = [pytest.mark.kernel, pytest.mark.slow]


def test_a_gate_failing_model_is_rejected_not_latest(isolated_env: Path, cli: Any) -> None:
    root = isolated_env
    shutil.copytree(
        REPO / "notebooks",
        root / "notebooks",
        ignore=shutil.ignore_patterns("quickstart.ipynb", "sweep_panel.ipynb"),
    )
    spec = yaml.safe_load((REPO / "nbops.yaml").read_text())
    spec["stages"]["train"]["params"] = {"n_estimators": 20, "max_depth": 8}
    (root / "nbops.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    run_pipeline(root, report=lambda _line: None)
    # the card names the train stage's run as the training run, with only test metrics
    runs = nbops.runs()
    train_run = runs[(runs["job_type"] == "stage") & (runs["name"] == "train")]["id"].iloc[-1]
    card = (root / "model_card.md").read_text()
    assert f"Trained in run {train_run} (train, " in card
    assert "train_accuracy" not in card.split("## Evaluation results")[0].split("---\n")[1]
    first = get_model("digits-forest:1")
    assert first.status == "validated"
    assert "gates passed (accuracy >= 0.9)" in (first.events[-1].reason or "")

    spec["stages"]["train"]["params"] = {"n_estimators": 1, "max_depth": 1}  # accuracy ~0.2
    (root / "nbops.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    with pytest.raises(PipelineFailed, match="evaluate: accuracy"):
        run_pipeline(root, report=lambda _line: None)
    second = get_model("digits-forest:2")
    assert second.status == "rejected"
    assert "evaluate: accuracy" in (second.events[-1].reason or "")
    assert [v.status for v in model_versions("digits-forest")] == ["validated", "rejected"]
    # what a bare name, load_model and the card resolve to is the validated version 1
    assert get_model("digits-forest").version == 1
    card = cli("card", "digits-forest", "-o", str(root / "card.md"))
    assert card.exit_code == 0, card.stderr
    assert "# Model card: digits-forest (version 1)" in (root / "card.md").read_text()
    shown = cli("models", "show", "digits-forest:2").output
    assert "status rejected" in shown and "signature inputs (64 columns)" in shown
