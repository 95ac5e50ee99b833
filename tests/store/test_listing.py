"""``nbops.runs()`` and ``nbops runs list``: filters pushed into the store, constant queries."""

from __future__ import annotations

import json
import time
from typing import Any

import nbops
from nbops.store import MetricPoint, RunRecord, SQLiteStore, open_store


def _fill(store: Any, n: int) -> None:
    start = len(store.list_runs())
    for i in range(start, n):
        rid = f"run{i:04d}"
        store.create_run(
            RunRecord(
                id=rid,
                project="p",
                name=f"n{i}",
                tags=("baseline",) if i % 2 else (),
                start_time=1000.0 + i,
                heartbeat_time=time.time(),
                host="elsewhere",
            )
        )
        store.log_params(rid, {"lr": 0.1 if i % 3 == 0 else 0.01})
        store.write_progress(rid, [MetricPoint("accuracy", 1, i / n, 1.0)])
        store.set_status(rid, "finished" if i % 4 else "failed")


def test_runs_filters_sorts_and_limits_in_the_store() -> None:
    store = open_store()
    _fill(store, 12)
    frame = nbops.runs(
        filters=["metrics.accuracy>0.3", "params.lr=0.1"], status="finished", tags="baseline"
    )
    assert list(frame["id"]) == ["run0009"]
    top = nbops.runs(sort="-metrics.accuracy", limit=3)
    assert list(top["id"]) == ["run0011", "run0010", "run0009"]
    assert list(nbops.runs(limit=2)["id"]) == ["run0010", "run0011"]
    assert top["params.lr"].tolist() == [0.01, 0.01, 0.1]


def _statements_of_runs(store: SQLiteStore) -> int:
    db = store._db
    db.close()
    db.count_statements, db.statements = True, 0
    try:
        nbops.runs(store=store)
    finally:
        db.count_statements = False
    return db.statements


def test_runs_uses_a_constant_number_of_queries() -> None:
    store = open_store()
    assert isinstance(store, SQLiteStore)
    _fill(store, 5)
    few = _statements_of_runs(store)
    _fill(store, 80)
    assert _statements_of_runs(store) == few


def test_cli_runs_list_flags(cli: Any) -> None:
    _fill(open_store(), 12)
    out = cli(
        "runs",
        "list",
        "--filter",
        "metrics.accuracy>0.3",
        "--filter",
        "params.lr=0.1",
        "--status",
        "finished",
        "--tag",
        "baseline",
        "--json",
    )
    assert out.exit_code == 0, out.stderr
    (only,) = json.loads(out.output)
    assert (only["id"], only["params"], only["tags"]) == ("run0009", {"lr": 0.1}, ["baseline"])
    out = cli("runs", "list", "--sort=-metrics.accuracy", "--limit", "2")
    assert out.exit_code == 0, out.stderr
    lines = out.output.splitlines()[1:]
    assert [line.split()[0] for line in lines] == ["run0011", "run0010"]
    out = cli("runs", "list", "--sort", "metrics.accuracy", "--desc", "--limit", "2", "--json")
    assert [r["id"] for r in json.loads(out.output)] == ["run0011", "run0010"]
    out = cli("runs", "list", "--filter", "accuracy>0.3")
    assert out.exit_code == 1
    assert out.stderr.startswith("Error: invalid run filter 'accuracy>0.3'")
    out = cli("runs", "list", "--status", "finished", "--filter", "metrics.accuracy>5")
    assert (out.exit_code, out.output.strip()) == (0, f"No runs in {open_store().location} match")
