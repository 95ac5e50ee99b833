"""Prediction logs: written by a real server, read back, joined with feedback, fed to drift."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import nbops
from nbops.serve import predictions, read_predictions_spec, serve
from tests.serve.conftest import call, pd_request

pytestmark = pytest.mark.slow


def _wait_rows(model: str, n: int, **kw: Any) -> pd.DataFrame:
    deadline = time.monotonic() + 30
    while True:
        table = predictions(model, **kw)
        if len(table) >= n or time.monotonic() > deadline:
            return table
        time.sleep(0.2)


def test_logs_feedback_model_drift_and_drift_cli(isolated_env: Path, cli: Any) -> None:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    from nbops.registry import log_model, set_alias

    X, y = load_iris(return_X_y=True, as_frame=True)
    log_model(LogisticRegression(max_iter=500).fit(X, y), "iris")
    set_alias("iris", 1, "production")
    sent: list[tuple[str, list[int]]] = []
    with serve("iris@production", poll_interval=0.5) as server:
        url = f"{server.url}/v2/models/iris/infer"
        for start in range(0, 150, 10):
            shifted = X.iloc[start : start + 10] + (1.5 if start >= 100 else 0.0)
            status, out, _ = call(url, pd_request(shifted))
            assert status == 200
            sent.append((out["id"], y.iloc[start : start + 10].tolist()))
        for rid, labels in sent:
            status, out, _ = call(
                f"{server.url}/v2/models/iris/feedback", {"request_id": rid, "labels": labels}
            )
            assert (status, out["rows"]) == (202, 10)
        assert call(f"{server.url}/v2/models/iris/feedback", {"labels": [1]})[1]["field"] == (
            "request_id"
        )
        assert (
            call(f"{server.url}/v2/models/iris/feedback", {"request_id": "x", "labels": {}})[1][
                "field"
            ]
            == "labels"
        )
        table = _wait_rows("iris", 150, since="1h")
        deadline = time.monotonic() + 30
        while table["label"].isna().any() and time.monotonic() < deadline:
            time.sleep(0.2)
            table = predictions("iris", since="1h")
    assert len(table) == 150
    assert set(table.columns) >= {
        "request_id",
        "row",
        "ts",
        "version",
        "route",
        "role",
        "latency_ms",
        "prediction",
        "label",
        *X.columns,
    }
    assert (table["version"] == 1).all() and (table["route"] == "production").all()
    assert table["label"].tolist() == y.tolist()
    assert predictions("iris@production", since="1h").shape[0] == 150
    assert predictions("iris", since="1h", until="30m").empty  # the window filters

    report = nbops.model_drift(
        table["prediction"],
        table["label"],
        table["ts"],
        window="1h",
        reference={"accuracy": 0.95},
        min_samples=10,
    )
    assert report.windows and report.windows[-1].n == 150

    current = read_predictions_spec("predictions:iris@production:7d")
    assert list(current.columns) == list(X.columns) and len(current) == 150
    found = nbops.drift(X, current)
    assert found.drifted

    ref = isolated_env / "reference.parquet"
    X.to_parquet(ref)
    out = isolated_env / "current.parquet"
    result = cli(
        "predictions", "export", "iris@production", "--since", "7d", "--inputs-only", "-o", str(out)
    )
    assert result.exit_code == 0, result.stderr
    assert list(pd.read_parquet(out).columns) == list(X.columns)
    result = cli("drift", str(ref), str(out), "--fail-on-drift")
    assert result.exit_code == 3 and "DRIFT" in result.output


def test_secret_columns_are_redacted_and_sampling_applies(isolated_env: Path) -> None:
    from sklearn.linear_model import LinearRegression

    from nbops.registry import log_model

    frame = pd.DataFrame({"size": np.arange(20.0), "api_key": np.arange(20.0) % 3})
    log_model(LinearRegression().fit(frame, frame["size"] * 2), "price")
    with (
        serve("price", log_sample=1.0) as logged,
        serve("price", log_sample=0.0, log_folder=str(isolated_env / "none")) as unlogged,
    ):
        for server in (logged, unlogged):
            status, out, _ = call(f"{server.url}/v2/models/price/infer", pd_request(frame.iloc[:4]))
            assert status == 200
            assert out["outputs"][0]["datatype"] == "FP64"
    table = _wait_rows("price", 4)
    assert table["api_key"].tolist() == ["[redacted]"] * 4
    assert table["size"].tolist() == [0.0, 1.0, 2.0, 3.0]
    assert predictions("price", folder=isolated_env / "none").empty


def test_drift_and_monitor_read_live_traffic_as_current_data(isolated_env: Path, cli: Any) -> None:
    """A real server logs shifted traffic; ``nbops drift`` and ``nbops monitor`` read it through
    ``predictions:iris@production:7d`` and the labels sent as feedback through ``feedback:``."""
    import yaml
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    from nbops.registry import set_alias

    frame = load_iris(as_frame=True).frame
    X, y = frame.drop(columns="target"), frame["target"]
    with nbops.init(project="live") as run:
        nbops.log_dataset(frame, name="iris-train")
        run.log({"accuracy": 0.97})
        nbops.log_model(LogisticRegression(max_iter=500).fit(X, y), "iris")
    set_alias("iris", 1, "production")
    shifted = X.copy()
    shifted["petal width (cm)"] += 2.0  # only this column moves
    with serve("iris@production") as server:
        ids = []
        for start in range(0, 150, 15):
            status, out, _ = call(
                f"{server.url}/v2/models/iris/infer", pd_request(shifted.iloc[start : start + 15])
            )
            assert status == 200
            ids.append(out["id"])
        for n, rid in enumerate(ids):  # the true labels: the shifted model is often wrong
            labels = y.iloc[n * 15 : n * 15 + 15].tolist()
            status, _, _ = call(
                f"{server.url}/v2/models/iris/feedback", {"request_id": rid, "labels": labels}
            )
            assert status == 202
        deadline = time.monotonic() + 30
        table = predictions("iris", since="1h")
        while (len(table) < 150 or table["label"].isna().any()) and time.monotonic() < deadline:
            time.sleep(0.2)
            table = predictions("iris", since="1h")
    assert len(table) == 150 and table["label"].notna().all()

    X.to_parquet(isolated_env / "reference.parquet")
    result = cli(
        "drift",
        "reference.parquet",
        "predictions:iris@production:7d",
        "--json",
        "--fail-on-drift",
        "--threshold",
        "share=0.2",
    )
    assert result.exit_code == 3, result.stderr
    report = json.loads(result.output)
    drifted = [col["name"] for col in report["columns"] if col["drifted"]]
    assert drifted == ["petal width (cm)"]
    result = cli("drift", "reference.parquet", "predictions:nosuch@production:7d")
    assert result.exit_code != 0 and result.stderr.startswith("Error: ")
    assert "Traceback" not in result.stderr

    (isolated_env / "data").mkdir()
    frame.to_parquet(isolated_env / "data" / "holdout.parquet")
    spec = {
        "monitor": {
            "model": "iris",
            "current": "predictions:iris@production:7d",
            "holdout": "data/holdout.parquet",
            "target": "target",
            "thresholds": {"share": 0.2},
            "feedback": {
                "path": "feedback:iris@production:7d",
                "label": "label",
                "time": "ts",
                "window": "1D",
                "tolerance": 0.05,
            },
        }
    }
    (isolated_env / "nbops.yaml").write_text(yaml.safe_dump(spec))
    result = cli("monitor", "--dry-run", "--json")
    assert result.exit_code == 0, result.stderr
    outcome = json.loads(result.output)
    assert outcome["drifted"] and outcome["drifted_columns"] == ["petal width (cm)"]
    assert outcome["action"] == "would-retrain"
    accuracy = float((table["prediction"] == table["label"]).mean())
    assert outcome["performance_drifted"] is (accuracy < 0.97 - 0.05)
    stored = nbops.get_run(outcome["run_id"])
    windows = stored.metadata["performance"]["windows"]
    assert sum(w["n"] for w in windows) == 150
    assert any(w["value"] == pytest.approx(accuracy) for w in windows)
