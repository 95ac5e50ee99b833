"""The prediction log's backlog: bounded while its writer falls behind, nothing lost after."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nbops.serve import predictions
from nbops.serve._codec import Rows
from nbops.serve._predlog import PredictionLog


def _record(log: PredictionLog, i: int, rows: int = 10) -> None:
    log.record(
        "digits",
        request_id=f"r{i}",
        version=1,
        route="production",
        role="primary",
        inputs=Rows(np.full((rows, 2), float(i)), ["a", "b"]),
        predictions=np.zeros(rows, dtype="int64"),
        latency=0.001,
    )


def test_a_writer_that_falls_behind_drops_rows_instead_of_growing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Before, the queue between requests and the writer had no bound: a writer slower than
    the traffic (a slow disk) let the server's memory grow until it was killed."""
    stalled, seen = threading.Event(), threading.Event()
    real_flush = PredictionLog._flush

    def slow_flush(self: PredictionLog, entries: list[Any]) -> None:
        seen.set()
        stalled.wait(60)
        real_flush(self, entries)

    monkeypatch.setattr(PredictionLog, "_flush", slow_flush)
    drops: list[tuple[str, int]] = []
    log = PredictionLog(
        tmp_path,
        flush_interval=0.05,
        max_pending_rows=100,
        on_drop=lambda m, n: drops.append((m, n)),
    )
    for i in range(5):
        _record(log, i)
    assert seen.wait(30)  # the writer holds those 50 rows and is stuck writing them
    for i in range(5, 30):
        _record(log, i)
    assert log.dropped_rows == 200  # 50 held + 50 queued = the limit; 20 requests dropped
    assert drops == [("digits", 10)] * 20
    assert "dropping rows until it catches up" in caplog.text
    stalled.set()
    log.close()
    table = predictions("digits", folder=tmp_path)
    assert len(table) == 100
    assert sorted(set(table["request_id"])) == sorted(f"r{i}" for i in range(10))
    # caught up: rows are taken again
    log2 = PredictionLog(tmp_path / "again", max_pending_rows=100)
    _record(log2, 99, rows=150)  # larger than the limit, but nothing is pending: kept
    log2.close()
    assert log2.dropped_rows == 0
    assert len(predictions("digits", folder=tmp_path / "again")) == 150
