"""The closed loop on the example pipeline: drift -> retrain in isolation -> promote on evidence."""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

import nbops
from nbops.monitor import SIGNATURE_HEADER, MonitorConfigError, monitor
from nbops.pipeline import run_pipeline
from nbops.registry import alias_history, get_model, model_versions, set_alias
from tests.conftest import REPO

pytestmark = [pytest.mark.kernel, pytest.mark.slow]
SECRET = "s3cret-for-the-test"


class _Hook(http.server.BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        _Hook.received.append((dict(self.headers.items()), self.rfile.read(length)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def _events() -> list[str]:
    return [json.loads(body)["event"] for _, body in _Hook.received]


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


def _git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=root, check=True, capture_output=True, text=True
    ).stdout


def _commit(root: Path, message: str) -> None:
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "--allow-empty", "-m", message)


def _snapshot(root: Path) -> dict[str, str]:
    """sha256 of every file of the user's checkout (the store and git aside)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not {".nbops", ".git"} & set(p.relative_to(root).parts)
    }


@pytest.fixture
def project(isolated_env: Path, webhook: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = isolated_env
    monkeypatch.setenv("NBOPS_WEBHOOK_SECRET", SECRET)
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
        "min_improvement": 0.01,
        "significance": 0.05,
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
    (root / ".gitignore").write_text(".nbops/\nwandb/\n")
    _git(root, "init", "-q")
    _git(root, "config", "user.email", "t@example.org")
    _git(root, "config", "user.name", "t")
    _commit(root, "the project")
    run_pipeline(root, report=lambda _line: None)
    set_alias("digits-forest", 1, "production", reason="first model")
    (root / "data").mkdir(exist_ok=True)
    _commit(root, "first model")
    return root


def _write_current(root: Path, rows: range | None) -> None:
    frame = _digits(rows, seed=1)
    frame.sample(frac=0.7, random_state=0).to_parquet(root / "data" / "current.parquet")
    frame.drop(frame.sample(frac=0.7, random_state=0).index).to_parquet(
        root / "data" / "holdout.parquet"
    )
    _commit(root, "new data")


def _card_version(root: Path) -> str:
    return (root / "model_card.md").read_text().split("# Model card: ", 1)[1].split("\n", 1)[0]


@pytest.mark.timeout(1500)  # five monitor passes, four pipeline runs: a hang bound only
def test_the_loop_never_touches_the_users_checkout(project: Path, webhook: str, cli: Any) -> None:
    root = project
    _write_current(root, None)
    calm = monitor(root, report=lambda _line: None)
    assert calm.action == "none" and not calm.drifted
    assert len(model_versions("digits-forest")) == 1

    # a dry run decides nothing, sends nothing and writes nothing in the checkout
    _write_current(root, range(2, 6))
    before = _snapshot(root)
    dry = monitor(root, dry_run=True, report=lambda _line: None)
    assert dry.action == "would-retrain" and dry.drifted
    assert len(model_versions("digits-forest")) == 1
    assert _Hook.received == []
    assert _snapshot(root) == before and _git(root, "status", "--porcelain") == ""

    # promoted: only the card changes in the checkout, and it describes the new production
    lines: list[str] = []
    better = monitor(root, report=lines.append)
    assert better.action == "promoted", better.message
    assert any("isolated workspace" in line for line in lines)
    assert better.challenger == "digits-forest:2"
    assert better.comparison is not None and better.comparison["test"] == "mcnemar"
    assert better.comparison["p_value"] < 0.05
    assert get_model("digits-forest@production").version == 2
    move = alias_history("digits-forest", "production")[-1]
    assert move.version == 2 and move.previous == 1 and "nbops monitor run" in (move.reason or "")
    changed = {line[3:] for line in _git(root, "status", "--porcelain").splitlines()}
    assert {"model_card.md", "model_card.html"} <= changed
    assert all(path.startswith("model_card") for path in changed), changed  # the card only
    assert _card_version(root) == "digits-forest (version 2)"
    assert {k: v for k, v in _snapshot(root).items() if not k.startswith("model_card")} == {
        k: v for k, v in before.items() if not k.startswith("model_card")
    }
    _commit(root, "card of model 2")

    # kept: a worse challenger changes nothing in the checkout; the card still names 2
    _write_current(root, range(0, 2))
    spec = yaml.safe_load((root / "nbops.yaml").read_text())
    spec["monitor"]["retrain"]["params"]["train"] = {"n_estimators": 4, "max_depth": 4}
    (root / "nbops.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    _commit(root, "weaker retrain")
    before = _snapshot(root)
    worse = monitor(root, report=lambda _line: None)
    assert worse.action == "kept", worse.message
    assert worse.challenger == "digits-forest:3"
    assert get_model("digits-forest:3").status == "rejected"  # a lost challenger
    assert get_model("digits-forest").version == 2  # never "latest"
    assert get_model("digits-forest@production").version == 2
    assert _git(root, "status", "--porcelain") == "" and _snapshot(root) == before
    assert _card_version(root) == "digits-forest (version 2)"

    # failed: a challenger failing the pipeline's gate is not compared; nothing changes
    spec["monitor"]["retrain"]["params"]["train"] = {"n_estimators": 1, "max_depth": 1}
    (root / "nbops.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    _commit(root, "broken retrain")
    before = _snapshot(root)
    failed = monitor(root, report=lambda _line: None)
    assert failed.action == "retrain-failed"
    assert "evaluate: accuracy" in failed.message and "(gate >= 0.3)" in failed.message
    assert get_model("digits-forest@production").version == 2
    assert _git(root, "status", "--porcelain") == "" and _snapshot(root) == before
    assert _card_version(root) == "digits-forest (version 2)"

    # one signed event per decision, never the secret itself
    assert _events() == ["promoted", "kept", "retrain_failed"]
    for headers, body in _Hook.received:
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert headers[SIGNATURE_HEADER] == expected
        assert SECRET.encode() not in body
    promoted = json.loads(_Hook.received[0][1])
    assert promoted["production"] == "digits-forest:1"
    assert promoted["challenger"] == "digits-forest:2"
    assert promoted["run"]["id"] == better.run_id and promoted["timestamp"] > 0
    assert promoted["thresholds"]["significance"] == 0.05
    assert promoted["metrics"]["comparison"]["challenger"] > 0.5

    runs = nbops.runs()
    monitors = runs[runs["job_type"] == "monitor"]
    assert list(monitors["status"]) == ["finished"] * 4 + ["failed"]
    stored = nbops.get_run(better.run_id or "")
    assert stored.metadata["alert"]["error"] is None
    assert SECRET not in json.dumps(stored.metadata)
    assert stored.metadata["monitor"]["action"] == "promoted"
    assert "pixel_3_3" in stored.metadata["drift"]["drifted_columns"]
    assert "drift_report.html" in stored.artifacts
    shown = cli("runs", "show", better.run_id or "").output
    assert "decision = promoted: promoted digits-forest:2" in shown
    assert "alert = promoted delivered after 1 attempt(s)" in shown
    assert "drift = " in shown and "pixel_3_3" in shown
    assert re.search(r"artifact drift_report\.html:v\d+ \(drift-report, ", shown)


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
                    "significance": 2,
                    "test": "t",
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
        "significance must be between 0 and 1",
        "test must be one of auto, mcnemar, bootstrap",
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


def test_the_retrain_points_nbops_at_the_monitors_store_and_restores_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from nbops.monitor._workspace import using_store
    from nbops.store import SQLiteStore, open_blobs

    team = SQLiteStore(tmp_path / "team", blobs=open_blobs(tmp_path / "team-blobs"))
    monkeypatch.setenv("NBOPS_STORE", "sqlite:///somewhere/else")
    monkeypatch.delenv("NBOPS_BLOBS", raising=False)
    before = dict(os.environ)
    with using_store(team, "proj"):
        assert os.environ["NBOPS_STORE"] == team.url  # a pipeline in the workspace opens it
        assert os.environ["NBOPS_BLOBS"] == (tmp_path / "team-blobs").as_uri()
        assert os.environ["NBOPS_HOME"] == str(tmp_path / "team")
        assert os.environ["NBOPS_PROJECT"] == "proj"
    assert dict(os.environ) == before


def _v2_rows(frame: Any) -> dict[str, Any]:
    """A V2 request for a DataFrame of integer columns (MLServer's pandas codec)."""
    inputs = [
        {"name": str(c), "shape": [len(frame)], "datatype": "INT64", "data": frame[c].tolist()}
        for c in frame.columns
    ]
    return {"parameters": {"content_type": "pd"}, "inputs": inputs}


def _post(url: str, body: Any) -> tuple[int, Any]:
    from tests.serve.conftest import call

    status, out, _ = call(url, body)
    return status, out


@pytest.mark.timeout(900)  # two pipeline runs and a server: a hang bound only
def test_live_traffic_retrains_promotes_and_the_server_follows(project: Path) -> None:
    """The whole loop on live traffic: a running server logs shifted requests and their labels;
    ``nbops monitor`` finds the drift in ``predictions:``, retrains on the labelled traffic
    (``labelled:``, no data file written anywhere), promotes the challenger, and the server,
    which was never restarted, answers with the new version."""
    from nbops.serve import predictions, serve

    root = project
    shifted = _digits(range(2, 6), seed=1)  # the new scanner
    traffic = shifted.sample(frac=0.7, random_state=0)
    shifted.drop(traffic.index).to_parquet(root / "data" / "holdout.parquet")  # kept apart
    spec = yaml.safe_load((root / "nbops.yaml").read_text())
    spec["monitor"]["current"] = "predictions:digits-forest@production:1d"
    spec["monitor"]["retrain"]["params"]["prepare"] = {
        "source": "labelled:digits-forest@production:1d"
    }
    (root / "nbops.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    _commit(root, "retrain on live traffic")

    with serve("digits-forest@production", poll_interval=0.5) as server:
        infer = f"{server.url}/v2/models/digits-forest/infer"
        inputs = traffic.drop(columns="target")
        for start in range(0, len(traffic), 100):
            status, out = _post(infer, _v2_rows(inputs.iloc[start : start + 100]))
            assert status == 200 and out["model_version"] == "1", out
            labels = traffic["target"].iloc[start : start + 100].tolist()
            status, _ = _post(
                f"{server.url}/v2/models/digits-forest/feedback",
                {"request_id": out["id"], "labels": labels},
            )
            assert status == 202
        deadline = time.monotonic() + 60
        logged = predictions("digits-forest", since="1h")
        while time.monotonic() < deadline and (
            len(logged) < len(traffic) or logged["label"].isna().any()
        ):
            time.sleep(0.2)
            logged = predictions("digits-forest", since="1h")
        assert len(logged) == len(traffic) and logged["label"].notna().all()

        lines: list[str] = []
        result = monitor(root, report=lines.append)
        assert result.drifted and "pixel_3_3" in result.drifted_columns
        assert result.action == "promoted", "\n".join(lines)
        challenger = get_model("digits-forest@production")
        assert challenger.version == 2
        # trained on the labelled traffic: the prepare stage's split of exactly those rows
        runs = nbops.runs()
        prepare = runs[(runs["job_type"] == "stage") & (runs["name"] == "prepare")].iloc[-1]
        assert prepare["metrics.n_train"] + prepare["metrics.n_test"] == len(traffic)
        assert not (root / "data" / "current.parquet").exists()

        answered = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and answered != "2":
            status, out = _post(infer, _v2_rows(inputs.iloc[:5]))
            assert status == 200, out
            answered = out["model_version"]
            time.sleep(0.2)
        assert answered == "2"
