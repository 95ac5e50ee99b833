"""The closed loop on the example pipeline: drift -> retrain -> promote only a better model."""

from __future__ import annotations

import http.server
import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

import nbops
from nbops.monitor import MonitorConfigError, monitor
from nbops.pipeline import run_pipeline
from nbops.registry import alias_history, get_model, model_versions, set_alias
from tests.conftest import REPO

pytestmark = [pytest.mark.kernel, pytest.mark.slow]


class _Hook(http.server.BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        _Hook.received.append(json.loads(self.rfile.read(length)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[str]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Hook.received = []
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()


def _digits(rows: range | None, seed: int) -> Any:
    """The digits; with ``rows``, strokes brightened in those image rows (a new scanner)."""
    from sklearn.datasets import load_digits

    frame = load_digits(as_frame=True).frame
    if rows is not None:
        rng = np.random.default_rng(seed)
        cells = [f"pixel_{r}_{c}" for r in rows for c in range(2, 6)]
        noise = rng.integers(3, 6, (len(frame), len(cells)))
        frame[cells] = np.clip(frame[cells] + noise, 0, 16)
    return frame


@pytest.fixture
def project(isolated_env: Path, webhook: str) -> Path:
    root = isolated_env
    shutil.copytree(
        REPO / "notebooks",
        root / "notebooks",
        ignore=shutil.ignore_patterns("quickstart.ipynb", "*.ipynb_checkpoints"),
    )
    spec = yaml.safe_load((REPO / "nbops.yaml").read_text())
    spec["stages"]["train"]["params"] = {"n_estimators": 3, "max_depth": 2}  # a weak start
    spec["stages"]["evaluate"]["gates"] = {"accuracy": ">= 0.3"}
    spec["monitor"] = {
        "model": "digits-forest",
        "reference": "digits-train",
        "current": "data/current.parquet",
        "holdout": "data/holdout.parquet",
        "target": "target",
        "metric": "accuracy",
        "thresholds": {"share": 0.1},
        "webhook": webhook,
        "retrain": {
            "params": {
                "prepare": {"source": "data/current.parquet"},
                "train": {"n_estimators": 60, "max_depth": 12},
            }
        },
    }
    (root / "nbops.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    run_pipeline(root, report=lambda _line: None)
    set_alias("digits-forest", 1, "production", reason="first model")
    (root / "data").mkdir(exist_ok=True)
    return root


def _write_current(root: Path, rows: range | None) -> None:
    frame = _digits(rows, seed=1)
    frame.sample(frac=0.7, random_state=0).to_parquet(root / "data" / "current.parquet")
    frame.drop(frame.sample(frac=0.7, random_state=0).index).to_parquet(
        root / "data" / "holdout.parquet"
    )


def test_loop_promotes_a_better_challenger_and_keeps_a_worse_one(
    project: Path, webhook: str
) -> None:
    root = project
    _write_current(root, None)
    calm = monitor(root, report=lambda _line: None)
    assert calm.action == "none" and not calm.drifted
    assert len(model_versions("digits-forest")) == 1

    _write_current(root, range(2, 6))
    lines: list[str] = []
    dry = monitor(root, dry_run=True, report=lines.append)
    assert dry.action == "would-retrain" and dry.drifted
    assert len(model_versions("digits-forest")) == 1

    better = monitor(root, report=lines.append)
    assert better.action == "promoted", better.message
    assert better.challenger == "digits-forest:2"
    assert better.challenger_score is not None and better.production_score is not None
    assert better.challenger_score > better.production_score
    assert get_model("digits-forest@production").version == 2
    move = alias_history("digits-forest", "production")[-1]
    assert move.version == 2 and move.previous == 1 and "nbops monitor run" in (move.reason or "")
    assert "digits-forest:2" in (root / "model_card.md").read_text()
    assert [h["event"] for h in _Hook.received] == ["drift", "drift"]  # dry run alerts too
    assert _Hook.received[-1]["model"] == "digits-forest:1"

    # new drift (relative to model 2's training data); a worse challenger is not promoted
    _write_current(root, range(0, 2))
    spec = yaml.safe_load((root / "nbops.yaml").read_text())
    spec["monitor"]["retrain"]["params"]["train"] = {"n_estimators": 4, "max_depth": 4}
    (root / "nbops.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    worse = monitor(root, report=lambda _line: None)
    assert worse.action == "kept", worse.message
    assert worse.challenger == "digits-forest:3"
    assert get_model("digits-forest@production").version == 2

    # a challenger that fails the pipeline's gate is not even compared
    spec["monitor"]["retrain"]["params"]["train"] = {"n_estimators": 1, "max_depth": 1}
    (root / "nbops.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    failed = monitor(root, report=lambda _line: None)
    assert failed.action == "retrain-failed"
    assert "evaluate: accuracy" in failed.message and "(gate >= 0.3)" in failed.message
    assert get_model("digits-forest@production").version == 2

    runs = nbops.runs()
    monitors = runs[runs["job_type"] == "monitor"]
    assert list(monitors["status"]) == ["finished"] * 4 + ["failed"]
    stored = nbops.get_run(better.run_id or "")
    assert stored.metadata["alert"]["error"] is None
    assert stored.metadata["monitor"]["action"] == "promoted"
    assert "pixel_3_3" in stored.metadata["drift"]["drifted_columns"]


def test_monitor_config_errors_are_clear(isolated_env: Path) -> None:
    (isolated_env / "nbops.yaml").write_text("stages: {}\n")
    with pytest.raises(MonitorConfigError, match="no monitor: section"):
        monitor(isolated_env)
    (isolated_env / "nbops.yaml").write_text(
        yaml.safe_dump(
            {
                "monitor": {
                    "model": "m",
                    "current": "nope.csv",
                    "holdout": "h.csv",
                    "webhook": "file:///x",
                    "colour": 1,
                }
            }
        )
    )
    with pytest.raises(MonitorConfigError) as info:
        monitor(isolated_env)
    text = str(info.value)
    for part in (
        "unknown key 'colour'",
        "target is required",
        "current: nope.csv does not exist",
        "webhook must be an http",
    ):
        assert part in text


def test_model_drift_reads_the_production_metrics_from_the_registry(isolated_env: Path) -> None:
    import pandas as pd
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True)
    with nbops.init(project="md") as run:
        model = LogisticRegression(max_iter=500).fit(X, y)
        run.log({"accuracy": 0.95})
        nbops.log_model(model, "iris")
    set_alias("iris", 1, "production")
    times = pd.date_range("2026-01-01", periods=300, freq="h")
    predictions = list(y[:150]) + [0] * 150  # the second half of the period goes wrong
    labels = list(y[:150]) + list(y[:150])
    report = nbops.model_drift(
        predictions, labels, times, window="3D", reference="iris@production", tolerance=0.05
    )
    assert report.drifted
    assert report.windows[0].value == 1.0
