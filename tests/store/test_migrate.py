"""``nbops store migrate``: SQLite -> PostgreSQL -> SQLite losing nothing, verified, resumable."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sklearn.linear_model import LogisticRegression

import nbops
from nbops.registry import remove_alias, set_alias, set_status
from nbops.store import MetricPoint, RunStore, copy_store, open_store, run_digest

pytestmark = pytest.mark.postgres


def _fill(store: RunStore, tmp_path: Path) -> list[str]:
    """Runs with history, artifacts (two versions of one), a dataset, a model and aliases."""
    data = tmp_path / "train.csv"
    data.write_text("a,b\n1,2\n3,4\n")
    ids = []
    for i in range(3):
        run = nbops.init(project="mig", config={"lr": 0.1 * (i + 1)}, store=store, capture=False)
        for step in range(300):
            run.log({"loss": 1 / (step + 1), "acc": step / 300})
        weights = tmp_path / f"w{i}.bin"
        weights.write_bytes(b"v1" * (i + 1))
        run.log_artifact(weights, name="weights")
        weights.write_bytes(b"v2" * (i + 1))
        run.log_artifact(weights, name="weights")
        nbops.log_dataset(data, run=run)
        run.summary["best"] = i
        if i == 2:
            nbops.log_model(LogisticRegression().fit([[0], [1]], [0, 1]), "clf", run=run)
        run.finish()
        ids.append(run.id)
    set_status("clf", 1, "validated", reason="gates passed", store=store)
    set_alias("clf", 1, "staging", store=store)
    set_alias("clf", 1, "production", store=store)
    remove_alias("clf", "staging", reason="promoted", store=store)
    store.run_cache.put("stage-fingerprint", {"run": ids[0], "outs": {"m": "f" * 64}})
    return ids


def _everything(store: RunStore) -> dict[str, Any]:
    return {
        "runs": {r.id: run_digest(store, r.id) for r in store.list_runs()},
        "models": [store.models.versions("clf"), store.models.alias_moves("clf")],
        "aliases": store.models.aliases("clf"),
        "datasets": [
            (v, store.datasets.uses("train.csv", v["hash"])) for v, _ in store.datasets.latest()
        ],
        "cache": store.run_cache.list(),
        "blobs": sorted(store.blobs.digests()),
    }


def test_round_trip_through_postgresql(
    tmp_path: Path, postgres_store_url: str, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = open_store(tmp_path / "local")
    ids = _fill(local, tmp_path)
    monkeypatch.setenv("NBOPS_BLOBS", str(tmp_path / "team-blobs"))
    out = cli("store", "migrate", str(tmp_path / "local"), postgres_store_url, "--json")
    assert out.exit_code == 0, out.stderr + out.output
    report = json.loads(out.output)
    assert report["ok"] is True
    assert report["counts"]["runs"] == {"source": 3, "destination": 3}
    assert report["copied"]["alias moves"] == 3
    team = open_store(postgres_store_url)
    assert _everything(team) == _everything(local)
    assert nbops.get_run(ids[2], store=team).artifact("weights:v0").digest != (
        nbops.get_run(ids[2], store=team).artifacts["weights"].digest
    )
    loaded = nbops.load_model("clf@production", store=team)
    assert loaded.predict([[1]]).tolist() == [1]

    monkeypatch.delenv("NBOPS_BLOBS")
    out = cli("store", "migrate", postgres_store_url, f"sqlite://{tmp_path / 'back'}")
    assert out.exit_code == 0, out.stderr + out.output
    assert "verified: counts and content hashes are equal" in out.output
    assert _everything(open_store(tmp_path / "back")) == _everything(local)


def test_copy_resumes_and_skips_what_is_there(tmp_path: Path, postgres_store_url: str) -> None:
    local = open_store(tmp_path / "local")
    ids = _fill(local, tmp_path)
    team = open_store(postgres_store_url)
    # an interrupted copy: the first run's record and half of its history are there
    team.create_run(local.get_run(ids[0]))
    team.write_progress(ids[0], [MetricPoint(*p) for p in local.get_metrics(ids[0])[:250]])
    report = copy_store(local, team)
    assert report.ok, report.mismatches
    assert report.copied["runs"] == 3
    again = copy_store(local, team)
    assert again.ok
    assert again.skipped["runs"] == 3 and "runs" not in again.copied
    assert not again.copied.get("blobs") and not again.copied.get("alias moves")
    assert _everything(team) == _everything(local)


def test_same_store_is_refused(cli: Any, tmp_path: Path) -> None:
    out = cli("store", "migrate", str(tmp_path / "a"), f"sqlite://{tmp_path / 'a'}")
    assert out.exit_code == 2
    assert out.stderr.startswith("Error: source and destination are the same store")


def test_info(cli: Any) -> None:
    out = cli("store", "info", "--json")
    assert out.exit_code == 0, out.stderr
    assert json.loads(out.output)["runs"] == 0
