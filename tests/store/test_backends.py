"""Backends chosen by URL, the schema version read on open, and the parts of one store."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import nbops.store as store_pkg
from nbops.errors import StoreError
from nbops.store import MemoryStore, RunStore, SQLiteStore, open_store, register_backend
from nbops.store._sqlite_schema import _V1, SCHEMA_VERSION


def test_default_is_the_sqlite_folder_of_the_project(isolated_env: Path) -> None:
    store = open_store()
    assert isinstance(store, SQLiteStore)
    assert store.path == isolated_env / ".nbops"
    assert store.url == f"sqlite://{isolated_env / '.nbops'}"
    assert open_store(store.url) is store
    assert open_store(store.path) is store
    assert open_store(store) is store


def test_nbops_store_chooses_the_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBOPS_STORE", "memory://team")
    store = open_store()
    assert isinstance(store, MemoryStore)
    assert store.url == "memory://team"
    assert open_store("memory://team") is store


def test_unknown_scheme_names_the_known_ones() -> None:
    with pytest.raises(StoreError, match=r"sqlite:///FOLDER.*known schemes: .*memory"):
        open_store("mongodb://x")


def test_registered_backend_is_used(tmp_path: Path) -> None:
    made: list[str] = []

    def factory(url: str) -> RunStore:
        made.append(url)
        return SQLiteStore(tmp_path / "custom")

    register_backend("custom", factory)
    try:
        assert isinstance(open_store("custom://somewhere"), SQLiteStore)
        assert made == ["custom://somewhere"]
    finally:
        store_pkg._backends._backends.pop("custom")


def test_blobs_folder_from_nbops_blobs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shared = tmp_path / "shared-blobs"
    monkeypatch.setenv("NBOPS_BLOBS", shared.as_uri())
    store = open_store(f"sqlite://{tmp_path / 'store'}")
    digest = store.blobs.put_bytes(b"hello")
    assert (shared / digest[:2] / digest[2:]).read_bytes() == b"hello"


def _v1_store(path: Path) -> None:
    path.mkdir()
    con = sqlite3.connect(path / "runs.db")
    con.executescript(_V1)
    con.execute(
        "INSERT INTO runs VALUES ('r1', 'p', 'n', NULL, NULL, 'finished', '[]', 1.0, 2.0, "
        "2.0, 1, 'h')"
    )
    con.execute("INSERT INTO metrics VALUES ('r1', 'loss', 0, 1.0, 1.0), ('r1', 'loss', 1, 0.5, 2)")
    con.execute(
        "INSERT INTO artifacts VALUES ('r1', 'model', 'model', ?, 3, 'file', '/x', 1.5, '{}')",
        ("a" * 64,),
    )
    con.execute(
        "INSERT INTO model_versions VALUES ('m', 1, ?, 3, 'skops', '[]', 'C', NULL, 'r1', 1.0, "
        "'me', '{}')",
        ("a" * 64,),
    )
    con.execute("PRAGMA user_version = 1")
    con.commit()
    con.close()


def test_version_1_store_is_migrated_on_open(tmp_path: Path) -> None:
    _v1_store(tmp_path / "old")
    store = SQLiteStore(tmp_path / "old")
    (artifact,) = store.list_artifacts("r1")
    assert (artifact.name, artifact.version) == ("model", 0)
    assert store.last_metrics(["r1"]) == {"r1": {"loss": 0.5}}
    assert store.models.get_version("m", 1)["run_id"] == "r1"
    again = store.add_artifact("r1", artifact)
    assert again.version == 1
    con = sqlite3.connect(tmp_path / "old" / "runs.db")
    assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_newer_store_is_refused_and_left_alone(tmp_path: Path) -> None:
    SQLiteStore(tmp_path / "new").close()
    con = sqlite3.connect(tmp_path / "new" / "runs.db")
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match=r"newer than this nbops.*upgrade nbops"):
        SQLiteStore(tmp_path / "new")
    con = sqlite3.connect(tmp_path / "new" / "runs.db")
    assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1


def test_one_store_holds_every_part(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s")
    store.models.add_version(
        {
            "name": "m",
            "digest": "b" * 64,
            "size": 1,
            "format": "skops",
            "trusted_types": [],
            "model_class": "C",
            "created_at": 1.0,
            "created_by": "me",
        }
    )
    store.run_cache.put("fp", {"run": "r"})
    reopened = SQLiteStore(tmp_path / "s")
    assert reopened.models.get_version("m")["version"] == 1
    assert reopened.run_cache.get("fp") == {"run": "r"}
    tables = {
        r[0]
        for r in sqlite3.connect(tmp_path / "s" / "runs.db").execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'"
        )
    }
    assert {"runs", "model_versions", "dataset_versions", "run_cache"} <= tables
    assert sorted(p.name for p in (tmp_path / "s").iterdir() if p.suffix == ".db") == ["runs.db"]


def test_store_env_makes_a_child_process_open_the_same_store_and_blobs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json
    import subprocess
    import sys

    from nbops.store import open_blobs, store_env
    from tests.conftest import subprocess_env

    store = SQLiteStore(tmp_path / "team", blobs=open_blobs(tmp_path / "team-blobs"))
    monkeypatch.setenv("NBOPS_STORE", f"sqlite://{tmp_path / 'elsewhere'}")  # a stale setting
    env = store_env(store)
    assert env == {
        "NBOPS_STORE": store.url,
        "NBOPS_BLOBS": (tmp_path / "team-blobs").as_uri(),
        "NBOPS_HOME": str(tmp_path / "team"),
    }
    code = (
        "import json, nbops.store as s; t = s.open_store(); print(json.dumps([t.url, t.blobs.url]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=subprocess_env(**env),
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(done.stdout) == [store.url, store.blobs.url]
