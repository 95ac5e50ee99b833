"""Conformance tests of run listings: filters, order and limit applied by the backend."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import pytest

from nbops.errors import InvalidValueError
from nbops.store import MetricPoint, RunRecord, RunStore, make_query


class QueryConformance:
    """:meth:`RunStore.list_runs` and :meth:`RunStore.list_run_rows` with a query."""

    def make_store(self, path: Path) -> RunStore:
        raise NotImplementedError

    @pytest.fixture
    def runs(self, tmp_path: Path) -> RunStore:
        """Five runs with params, metrics, tags and statuses to filter on."""
        store = self.make_store(tmp_path / "store")
        now = time.time()
        rows: list[tuple[str, dict[str, Any], dict[str, float], tuple[str, ...], str]] = [
            ("a", {"lr": 0.1, "opt": "adam"}, {"acc": 0.95}, ("baseline",), "finished"),
            ("b", {"lr": 0.01, "opt": "sgd"}, {"acc": 0.80}, ("baseline", "x"), "finished"),
            ("c", {"lr": 0.1, "opt": "sgd", "flag": True}, {"acc": math.nan}, (), "failed"),
            ("d", {"lr": "auto"}, {"acc": 0.99, "loss": 0.1}, ("x",), "running"),
            ("e", {}, {}, (), "finished"),
        ]
        for i, (rid, params, metrics, tags, status) in enumerate(rows):
            store.create_run(
                RunRecord(
                    id=rid,
                    project="p" if rid != "e" else "q",
                    name=f"run-{rid}",
                    tags=tags,
                    start_time=now - 100 + i,
                    heartbeat_time=now,
                    host="elsewhere",
                )
            )
            store.log_params(rid, params)
            points = [MetricPoint(k, 0, -1.0, now) for k in metrics]
            points += [MetricPoint(k, 5, v, now) for k, v in metrics.items()]
            store.write_progress(rid, points)
            if status != "running":
                store.set_status(rid, status)
        return store

    @staticmethod
    def ids(store: RunStore, project: str | None = None, **query: object) -> list[str]:
        found = [r.id for r in store.list_runs(project, query=make_query(**query))]  # type: ignore[arg-type]
        rows = store.list_run_rows(project, query=make_query(**query))  # type: ignore[arg-type]
        assert [row.record.id for row in rows] == found
        return found

    def test_no_query_lists_everything_oldest_first(self, runs: RunStore) -> None:
        assert self.ids(runs) == ["a", "b", "c", "d", "e"]
        assert self.ids(runs, "p") == ["a", "b", "c", "d"]

    def test_status_and_tags(self, runs: RunStore) -> None:
        assert self.ids(runs, status="finished") == ["a", "b", "e"]
        assert self.ids(runs, status=["failed", "running"]) == ["c", "d"]
        assert self.ids(runs, tags="baseline") == ["a", "b"]
        assert self.ids(runs, tags=["baseline", "x"]) == ["b"]

    def test_metric_conditions_use_the_last_value(self, runs: RunStore) -> None:
        assert self.ids(runs, where="metrics.acc>0.9") == ["a", "d"]
        assert self.ids(runs, where="metrics.acc<=0.8") == ["b"]
        assert self.ids(runs, where="metrics.acc!=0.95") == ["b", "c", "d"]  # NaN differs
        assert self.ids(runs, where=["metrics.acc>0.5", "metrics.loss<1"]) == ["d"]
        assert self.ids(runs, where="metrics.missing>0") == []

    def test_param_conditions_compare_like_types(self, runs: RunStore) -> None:
        assert self.ids(runs, where="params.lr=0.1") == ["a", "c"]
        assert self.ids(runs, where="params.lr>0.05") == ["a", "c"]
        assert self.ids(runs, where="params.lr=auto") == ["d"]
        assert self.ids(runs, where='params.opt="sgd"') == ["b", "c"]
        assert self.ids(runs, where="params.lr!=0.1") == ["b", "d"]
        assert self.ids(runs, where="params.flag=true") == ["c"]
        assert self.ids(runs, where="params.opt>=b") == ["b", "c"]

    def test_sort_and_limit(self, runs: RunStore) -> None:
        assert self.ids(runs, sort="-start_time") == ["e", "d", "c", "b", "a"]
        assert self.ids(runs, sort="-metrics.acc") == ["d", "a", "b", "c", "e"]
        assert self.ids(runs, sort="metrics.acc", limit=2) == ["b", "a"]
        assert self.ids(runs, sort="params.lr") == ["b", "a", "c", "d", "e"]
        assert self.ids(runs, sort="name", limit=1) == ["a"]
        assert self.ids(runs, limit=2) == ["d", "e"]  # the most recent, oldest first
        assert self.ids(runs, limit=0) == []
        assert self.ids(runs, tags="baseline", limit=5) == ["a", "b"]  # fewer than the limit
        assert self.ids(runs, status="finished", sort="-start_time", limit=2) == ["e", "b"]

    def test_rows_carry_params_and_last_metrics(self, runs: RunStore) -> None:
        rows = {r.record.id: r for r in runs.list_run_rows()}
        assert rows["a"].params == {"lr": 0.1, "opt": "adam"}
        assert rows["d"].metrics == {"acc": 0.99, "loss": 0.1}
        assert math.isnan(rows["c"].metrics["acc"])
        assert rows["e"].params == {} and rows["e"].metrics == {}

    def test_bad_queries_say_what_to_do(self) -> None:
        for bad in ("acc>1", "metrics.acc>high", "params.lr~1", "metrics.acc>nan"):
            with pytest.raises(InvalidValueError):
                make_query(where=bad)
        with pytest.raises(InvalidValueError, match=r"metrics\.KEY"):
            make_query(sort="size")
        with pytest.raises(InvalidValueError, match="status"):
            make_query(status="done")
        with pytest.raises(InvalidValueError):
            make_query(limit=-1)
