"""The PostgreSQL backend on a real server (see ``postgres_server`` in tests/conftest.py)."""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

import nbops
from nbops.errors import StoreError
from nbops.store import MetricPoint, RunRecord, RunStore, open_store
from nbops.store._backends import open_backend
from nbops.store._postgres import PostgresStore
from nbops.testing import DurableBackendConformance
from tests.conftest import subprocess_env

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


def test_version_1_schema_is_migrated_on_open(postgres_store_url: str) -> None:
    store = PostgresStore(postgres_store_url)
    store.create_run(RunRecord(id="old", project="p", name="o", start_time=1.0, host="x"))
    store.write_progress("old", [MetricPoint("m", 0, 1.0, 1.0)])
    with store._db.transaction() as cur:  # back to the layout nbops wrote first
        cur.execute("ALTER TABLE metrics ADD PRIMARY KEY (seq)")
        cur.execute("UPDATE nbops_schema SET version = 1")
    store.close()
    again = PostgresStore(postgres_store_url)
    with again._db.transaction() as cur:
        cur.execute("SELECT version FROM nbops_schema")
        assert cur.fetchone()[0] == 2
        cur.execute(
            "SELECT count(*) FROM pg_constraint WHERE conname = 'metrics_pkey' "
            "AND connamespace = current_schema()::regnamespace"
        )
        assert cur.fetchone()[0] == 0
    assert [p.value for p in again.get_metrics("old")] == [1.0]


_TEAMMATE = """
import nbops
run = nbops.init(project="team", name="{name}", config={{"lr": {lr}}}, wandb="disabled",
                 capture=False)
for step in range(50):
    run.log({{"acc": {lr} * step}})
run.finish()
print(run.id)
"""


def test_teammates_share_one_store(
    postgres_store_url: str, cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = []
    for name, lr in (("ann", 0.01), ("bob", 0.02)):
        home = tmp_path / name  # each teammate has a project folder of their own
        home.mkdir()
        done = subprocess.run(
            [sys.executable, "-c", _TEAMMATE.format(name=name, lr=lr)],
            env=subprocess_env(NBOPS_STORE=postgres_store_url, NBOPS_HOME=str(home / ".nbops")),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        ids.append(done.stdout.split()[-1])
    monkeypatch.setenv("NBOPS_STORE", postgres_store_url)
    out = cli("runs", "list", "--json", "--sort=-metrics.acc")
    assert out.exit_code == 0, out.stderr
    listed = json.loads(out.output)
    assert [r["name"] for r in listed] == ["bob", "ann"]
    assert [r["status"] for r in listed] == ["finished", "finished"]
    frame = nbops.runs(filters="params.lr=0.01")
    assert list(frame["id"]) == [ids[0]]
    assert len(nbops.get_run(ids[1]).history()) == 50


def test_password_never_shown(postgres_server: str, cli: Any) -> None:
    url = postgres_server.replace("postgres@", "postgres:s3cret-pw@") + "/nbops_store?schema=pw"
    out = cli("store", "info", url)
    assert out.exit_code == 0, out.stderr
    assert "s3cret-pw" not in out.output
    assert "postgres:***@" in out.output
    out = cli("store", "migrate", url, url + "2")
    assert "s3cret-pw" not in out.output + out.stderr
