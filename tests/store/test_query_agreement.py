"""Every backend answers the same listings as the in-memory reference, on random data."""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import pytest

from nbops.store import MemoryStore, MetricPoint, RunRecord, RunStore, SQLiteStore, make_query
from nbops.store._postgres import PostgresStore

_VALUES: list[Any] = [0.1, 0.5, 1, 2, -3.5, "adam", "sgd", "Zeta", "", True, False, None, math.nan]


def _fill(store: RunStore, seed: int = 7) -> None:
    rng = random.Random(seed)
    for i in range(40):
        rid = f"r{i:02d}"
        store.create_run(
            RunRecord(
                id=rid,
                project=rng.choice(["p", "q"]),
                name=rng.choice(["alpha", "beta", "Gamma", "delta"]),
                tags=tuple(t for t in ("a", "b", "c") if rng.random() < 0.4),
                start_time=1000.0 + rng.randrange(30),  # ties on purpose
                heartbeat_time=9e9,
                host="elsewhere",
            )
        )
        store.log_params(rid, {k: rng.choice(_VALUES) for k in ("lr", "opt") if rng.random() < 0.8})
        points = [
            MetricPoint(k, s, rng.choice([rng.random(), math.nan, 0.5]), float(s))
            for k in ("acc", "loss")
            if rng.random() < 0.8
            for s in range(3)
        ]
        store.write_progress(rid, points)
        store.set_status(rid, rng.choice(["finished", "failed", "killed"]), 2000.0 + i)


def _queries(seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for _ in range(150):
        filters = []
        for _ in range(rng.randrange(3)):
            section = rng.choice(["params", "metrics"])
            key = rng.choice(["lr", "opt"] if section == "params" else ["acc", "loss"])
            op = rng.choice(["=", "!=", ">", ">=", "<", "<="])
            if section == "metrics":
                value = rng.choice(["0.5", "0.2", "0.9"])
            else:
                value = rng.choice(["0.1", "1", "2", "adam", "sgd", "Zeta", "true", "null", "b"])
                if op not in ("=", "!=") and value in ("true", "null"):
                    value = "1"
            filters.append(f"{section}.{key}{op}{value}")
        sort = rng.choice(
            [
                None,
                "start_time",
                "-start_time",
                "name",
                "-name",
                "end_time",
                "-status",
                "metrics.acc",
                "-metrics.loss",
                "params.lr",
                "-params.opt",
                "params.opt",
                "id",
            ]
        )
        out.append(
            {
                "where": filters,
                "sort": sort,
                "limit": rng.choice([None, None, 0, 3, 10]),
                "status": rng.choice([None, "finished", ["failed", "killed"]]),
                "tags": rng.choice([None, "a", ["a", "b"]]),
                "project": rng.choice([None, "p"]),
            }
        )
    return out


def _answers(store: RunStore, queries: list[dict[str, Any]]) -> list[list[str]]:
    answers = []
    for q in queries:
        query = make_query(
            where=q["where"], sort=q["sort"], limit=q["limit"], status=q["status"], tags=q["tags"]
        )
        ids = [r.id for r in store.list_runs(q["project"], query=query)]
        assert [row.record.id for row in store.list_run_rows(q["project"], query=query)] == ids
        answers.append(ids)
    return answers


def _compare(store: RunStore, seed: int) -> None:
    reference = MemoryStore(f"reference-{seed}")
    _fill(reference, seed)
    _fill(store, seed)
    queries = _queries(seed + 100)
    for q, want, got in zip(
        queries, _answers(reference, queries), _answers(store, queries), strict=True
    ):
        assert got == want, q


@pytest.mark.parametrize("seed", [1, 7])
def test_sqlite_agrees_with_the_reference(tmp_path: Path, seed: int) -> None:
    _compare(SQLiteStore(tmp_path / "s"), seed)


@pytest.mark.postgres
@pytest.mark.parametrize("seed", [1, 7])
def test_postgresql_agrees_with_the_reference(postgres_store_url: str, seed: int) -> None:
    _compare(PostgresStore(postgres_store_url), seed)
