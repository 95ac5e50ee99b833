"""Performance-triggered retraining: labelled feedback whose accuracy dropped starts the loop."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import nbops
from nbops.monitor import monitor
from nbops.registry import set_alias


@pytest.mark.parametrize("dropped", [True, False])
def test_feedback_with_a_dropped_metric_triggers_the_loop(
    isolated_env: Path, dropped: bool
) -> None:
    root = isolated_env
    frame = load_iris(as_frame=True).frame
    with nbops.init(project="fb") as run:
        nbops.log_dataset(frame, name="iris-train")
        model = LogisticRegression(max_iter=500).fit(frame.drop(columns="target"), frame.target)
        run.log({"accuracy": 0.97})
        nbops.log_model(model, "iris")
    set_alias("iris", 1, "production")
    (root / "data").mkdir()
    frame.to_parquet(root / "data" / "current.parquet")  # the inputs did not move
    frame.to_parquet(root / "data" / "holdout.parquet")
    labels = list(frame.target) * 2
    predictions = list(frame.target) + ([0] * 150 if dropped else list(frame.target))
    pd.DataFrame(
        {
            "prediction": predictions,
            "target": labels,
            "timestamp": pd.date_range("2026-01-01", periods=300, freq="h"),
        }
    ).to_parquet(root / "data" / "feedback.parquet")
    spec = {
        "monitor": {
            "model": "iris",
            "current": "data/current.parquet",
            "holdout": "data/holdout.parquet",
            "target": "target",
            "feedback": {"path": "data/feedback.parquet", "window": "3D", "tolerance": 0.05},
        }
    }
    (root / "nbops.yaml").write_text(yaml.safe_dump(spec))
    result = monitor(root, dry_run=True, report=lambda _line: None)
    assert not result.drifted
    assert result.performance_drifted is dropped
    assert result.action == ("would-retrain" if dropped else "none")
    stored = nbops.get_run(result.run_id or "")
    assert "performance" in stored.metadata
