"""The PostgreSQL backend on a real server (see ``postgres_server`` in tests/conftest.py)."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path
from urllib.parse import quote

import pytest

from nbops.errors import StoreError
from nbops.store import MetricPoint, RunRecord, RunStore, open_store
from nbops.store._backends import open_backend
from nbops.store._postgres import PostgresStore
from nbops.testing import DurableBackendConformance

pytestmark = pytest.mark.postgres


class TestPostgresStore(DurableBackendConformance):
    @pytest.fixture(autouse=True)
    def _url(self, postgres_store_url: str) -> None:
        self.url = postgres_store_url

    def make_store(self, path: Path) -> RunStore:
        return PostgresStore(self.url)


def _log_10k(args: tuple[str, str]) -> None:
    url, run_id = args
    store = open_store(url)
    for start in range(0, 10_000, 1000):
        now = time.time()
        store.write_progress(
            run_id,
            [MetricPoint("m", i, float(i), now) for i in range(start, start + 1000)],
            heartbeat_time=now,
        )
    store.close()


def test_four_processes_log_10000_metrics_each_and_lose_nothing(postgres_store_url: str) -> None:
    store = open_store(postgres_store_url)
    for k in range(4):
        store.create_run(
            RunRecord(id=f"w{k}", project="p", name="w", start_time=time.time(), host="x")
        )
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4) as pool:
        pool.map(_log_10k, [(postgres_store_url, f"w{k}") for k in range(4)])
    for k in range(4):
        points = store.get_metrics(f"w{k}")
        assert [p.step for p in points] == list(range(10_000))
        assert all(p.value == float(p.step) for p in points)
    assert store.last_metrics([f"w{k}" for k in range(4)]) == {
        f"w{k}": {"m": 9999.0} for k in range(4)
    }


def test_crash_detection_agrees_across_time_zones(postgres_store_url: str) -> None:
    here = open_store(postgres_store_url)
    now = time.time()
    here.create_run(RunRecord(id="fresh", project="p", name="f", start_time=now, host="far"))
    old = now - here.stale_after - 30
    here.create_run(
        RunRecord(id="stale", project="p", name="s", start_time=old, heartbeat_time=old, host="far")
    )
    # another host whose session runs 14 hours ahead of UTC, and one 11 hours behind
    for zone in ("Pacific/Kiritimati", "Pacific/Pago_Pago"):
        options = quote(f"-c timezone={zone}")
        there = open_backend(f"{postgres_store_url}&options={options}")
        try:
            assert {r.id: r.status for r in there.list_runs()} == {
                "fresh": "running",
                "stale": "crashed",
            }
        finally:
            there.close()
    stale = here.get_run("stale")
    assert stale.status == "crashed"
    assert stale.end_time == pytest.approx(old, abs=1e-3)  # when it was last seen, in UTC


def test_newer_schema_is_refused(postgres_store_url: str) -> None:
    store = PostgresStore(postgres_store_url)
    with store._db.transaction() as cur:
        cur.execute("UPDATE nbops_schema SET version = version + 1")
    store.close()
    with pytest.raises(StoreError, match=r"newer than this nbops.*upgrade nbops"):
        PostgresStore(postgres_store_url)


def test_unreachable_server_is_a_clear_error_without_password() -> None:
    with pytest.raises(StoreError, match=r"cannot connect to the store at .*\*\*\*@") as info:
        PostgresStore("postgresql://me:hunter2@127.0.0.1:1/db")
    assert "hunter2" not in str(info.value)


def test_blobs_live_in_nbops_blobs(
    postgres_store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NBOPS_BLOBS", str(tmp_path / "shared"))
    store = PostgresStore(postgres_store_url)
    digest = store.blobs.put_bytes(b"weights")
    assert (tmp_path / "shared" / digest[:2] / digest[2:]).read_bytes() == b"weights"
