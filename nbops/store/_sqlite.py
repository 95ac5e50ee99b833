"""The embedded SQLite run store (WAL mode), the default backend."""

from __future__ import annotations

import json
import math
import os
import socket
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from nbops.errors import AmbiguousRunIdError, RunNotFoundError, StoreError
from nbops.process import pid_alive
from nbops.store._base import (
    FINAL_STATUSES,
    RUN_STATUSES,
    ArtifactRecord,
    MetricPoint,
    RunRecord,
    RunStore,
)
from nbops.store._database import SQLiteDatabase

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, project TEXT NOT NULL, name TEXT NOT NULL, grp TEXT, job_type TEXT,
    status TEXT NOT NULL, tags TEXT NOT NULL, start_time REAL NOT NULL, end_time REAL,
    heartbeat_time REAL, pid INTEGER, host TEXT
);
CREATE INDEX IF NOT EXISTS runs_project ON runs(project, start_time);
CREATE TABLE IF NOT EXISTS params (
    run_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (run_id, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL, key TEXT NOT NULL, step INTEGER NOT NULL, value REAL, ts REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS metrics_run ON metrics(run_id, key, step);
CREATE TABLE IF NOT EXISTS summary (
    run_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (run_id, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS metadata (
    run_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (run_id, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS artifacts (
    run_id TEXT NOT NULL, name TEXT NOT NULL, type TEXT NOT NULL, digest TEXT NOT NULL,
    size INTEGER NOT NULL, kind TEXT NOT NULL, source TEXT NOT NULL, created_at REAL NOT NULL,
    metadata TEXT NOT NULL, PRIMARY KEY (run_id, name)
);
"""
_RUN_COLUMNS = (
    "id, project, name, grp, job_type, status, tags, start_time, end_time, heartbeat_time, "
    "pid, host"
)


def _dumps(value: Any) -> str:
    return json.dumps(value, default=repr, allow_nan=True, sort_keys=True)


class SQLiteStore(RunStore):
    """:class:`RunStore` in ``<path>/runs.db`` (SQLite, WAL, one connection per thread)."""

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float = 60.0) -> None:
        self._path = Path(path)
        try:
            self._path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create the store directory {self._path}: {exc}; "
                "set NBOPS_HOME to a writable directory"
            ) from exc
        self._database = SQLiteDatabase(
            self._path,
            f"{_SCHEMA} PRAGMA user_version = {SCHEMA_VERSION};",
            busy_timeout=busy_timeout,
        )
        self._host = socket.gethostname()
        self._database.read()  # create the schema now, so a bad location fails here

    @property
    def path(self) -> Path:
        return self._path

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self._path)!r})"

    def _con(self) -> sqlite3.Connection:
        return self._database.read()

    def _write(self) -> AbstractContextManager[sqlite3.Connection]:
        return self._database.write()

    def close(self) -> None:
        self._database.close()

    # --- writes -----------------------------------------------------------------------------
    def create_run(self, record: RunRecord) -> None:
        row = (
            record.id,
            record.project,
            record.name,
            record.group,
            record.job_type,
            record.status,
            _dumps(list(record.tags)),
            record.start_time,
            record.end_time,
            record.heartbeat_time,
            record.pid,
            record.host,
        )
        with self._write() as con:
            try:
                con.execute(f"INSERT INTO runs ({_RUN_COLUMNS}) VALUES ({','.join('?' * 12)})", row)
            except sqlite3.IntegrityError as exc:
                raise StoreError(f"a run with id {record.id!r} already exists") from exc

    def set_status(self, run_id: str, status: str, end_time: float | None = None) -> None:
        if status not in RUN_STATUSES:
            raise StoreError(f"unknown run status {status!r}; use one of {', '.join(RUN_STATUSES)}")
        if status in FINAL_STATUSES and end_time is None:
            end_time = time.time()
        with self._write() as con:
            cur = con.execute(
                "UPDATE runs SET status = ?, end_time = ? WHERE id = ?", (status, end_time, run_id)
            )
            self._check_updated(cur, run_id)

    def write_progress(
        self,
        run_id: str,
        points: Sequence[MetricPoint] = (),
        summary: Mapping[str, Any] | None = None,
        heartbeat_time: float | None = None,
    ) -> None:
        with self._write() as con:
            if points:
                con.executemany(
                    "INSERT INTO metrics (run_id, key, step, value, ts) VALUES (?, ?, ?, ?, ?)",
                    # SQLite stores NaN as NULL by itself; reads turn NULL back into NaN
                    [(run_id, *point) for point in points],
                )
            if summary:
                self._merge(con, "summary", run_id, summary)
            if heartbeat_time is not None:
                con.execute(
                    "UPDATE runs SET heartbeat_time = ?, status = CASE WHEN status = 'crashed' "
                    "THEN 'running' ELSE status END, end_time = CASE WHEN status = 'crashed' "
                    "THEN NULL ELSE end_time END WHERE id = ?",
                    (heartbeat_time, run_id),
                )

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        with self._write() as con:
            self._merge(con, "params", run_id, params)

    def set_metadata(self, run_id: str, key: str, value: Any) -> None:
        with self._write() as con:
            self._merge(con, "metadata", run_id, {key: value})

    def add_artifact(self, run_id: str, record: ArtifactRecord) -> None:
        with self._write() as con:
            con.execute(
                "INSERT OR REPLACE INTO artifacts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    record.name,
                    record.type,
                    record.digest,
                    record.size,
                    record.kind,
                    record.source,
                    record.created_at,
                    _dumps(dict(record.metadata)),
                ),
            )

    @staticmethod
    def _merge(con: sqlite3.Connection, table: str, run_id: str, values: Mapping[str, Any]) -> None:
        con.executemany(
            f"INSERT OR REPLACE INTO {table} (run_id, key, value) VALUES (?, ?, ?)",
            [(run_id, str(k), _dumps(v)) for k, v in values.items()],
        )

    @staticmethod
    def _check_updated(cur: sqlite3.Cursor, run_id: str) -> None:
        if cur.rowcount == 0:
            raise RunNotFoundError(run_id, "this store")

    # --- reads ------------------------------------------------------------------------------
    def resolve_id(self, prefix: str) -> str:
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        rows = (
            self._con()
            .execute(
                "SELECT id FROM runs WHERE id LIKE ? ESCAPE '\\' ORDER BY start_time LIMIT 6",
                (escaped + "%",),
            )
            .fetchall()
        )
        ids = [r[0] for r in rows]
        if prefix in ids:
            return prefix
        if not ids:
            raise RunNotFoundError(prefix, str(self._path))
        if len(ids) > 1:
            raise AmbiguousRunIdError(prefix, ids)
        return str(ids[0])

    def get_run(self, run_id: str) -> RunRecord:
        self.reap_crashed()
        row = (
            self._con()
            .execute(
                f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?",
                (run_id,),
            )
            .fetchone()
        )
        if row is None:
            raise RunNotFoundError(run_id, str(self._path))
        return self._record(row)

    def list_runs(self, project: str | None = None) -> list[RunRecord]:
        self.reap_crashed()
        sql = f"SELECT {_RUN_COLUMNS} FROM runs"
        args: tuple[Any, ...] = ()
        if project is not None:
            sql += " WHERE project = ?"
            args = (project,)
        rows = self._con().execute(sql + " ORDER BY start_time, id", args).fetchall()
        return [self._record(r) for r in rows]

    def get_params(self, run_id: str) -> dict[str, Any]:
        return self._read_kv("params", run_id)

    def get_summary(self, run_id: str) -> dict[str, Any]:
        return self._read_kv("summary", run_id)

    def get_metadata(self, run_id: str) -> dict[str, Any]:
        return self._read_kv("metadata", run_id)

    def get_metrics(self, run_id: str, keys: Iterable[str] | None = None) -> list[MetricPoint]:
        self._require(run_id)
        sql = "SELECT key, step, value, ts FROM metrics WHERE run_id = ?"
        args: list[Any] = [run_id]
        if keys is not None:
            wanted = list(keys)
            sql += f" AND key IN ({','.join('?' * len(wanted))})"
            args += wanted
        rows = self._con().execute(sql + " ORDER BY step, ts, rowid", args).fetchall()
        nan = math.nan
        return [MetricPoint(k, s, nan if v is None else v, t) for k, s, v, t in rows]

    def last_metrics(self, run_ids: Sequence[str]) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {rid: {} for rid in run_ids}
        con = self._con()
        for start in range(0, len(run_ids), 500):
            chunk = list(run_ids[start : start + 500])
            rows = con.execute(
                "SELECT run_id, key, value FROM metrics WHERE rowid IN (SELECT rowid FROM ("
                "SELECT rowid, ROW_NUMBER() OVER (PARTITION BY run_id, key "
                "ORDER BY step DESC, ts DESC, rowid DESC) AS rn FROM metrics "
                f"WHERE run_id IN ({','.join('?' * len(chunk))})) WHERE rn = 1)",
                chunk,
            ).fetchall()
            for rid, key, value in rows:
                out[rid][key] = math.nan if value is None else value
        return out

    def list_artifacts(self, run_id: str) -> list[ArtifactRecord]:
        self._require(run_id)
        rows = (
            self._con()
            .execute(
                "SELECT name, type, digest, size, kind, source, created_at, metadata "
                "FROM artifacts WHERE run_id = ? ORDER BY created_at, rowid",
                (run_id,),
            )
            .fetchall()
        )
        return [
            ArtifactRecord(
                name=r[0],
                type=r[1],
                digest=r[2],
                size=r[3],
                kind=r[4],
                source=r[5],
                created_at=r[6],
                metadata=json.loads(r[7]),
            )
            for r in rows
        ]

    def reap_crashed(self) -> list[str]:
        """Mark runs whose process is gone as ``crashed``; return their ids."""
        now = time.time()
        rows = (
            self._con()
            .execute(
                "SELECT id, pid, host, heartbeat_time, start_time FROM runs "
                "WHERE status = 'running'"
            )
            .fetchall()
        )
        dead = []
        for run_id, pid, host, beat, start in rows:
            last = beat if beat is not None else start
            gone = host == self._host and pid is not None and not pid_alive(pid)
            if gone or now - last > self.stale_after:
                dead.append((last, run_id))
        if dead:
            with self._write() as con:
                con.executemany(
                    "UPDATE runs SET status = 'crashed', end_time = ? "
                    "WHERE id = ? AND status = 'running'",
                    dead,
                )
        return [run_id for _, run_id in dead]

    def _require(self, run_id: str) -> None:
        if self._con().execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
            raise RunNotFoundError(run_id, str(self._path))

    def _read_kv(self, table: str, run_id: str) -> dict[str, Any]:
        self._require(run_id)
        rows = (
            self._con()
            .execute(
                f"SELECT key, value FROM {table} WHERE run_id = ? ORDER BY key",
                (run_id,),
            )
            .fetchall()
        )
        return {k: json.loads(v) for k, v in rows}

    @staticmethod
    def _record(row: tuple[Any, ...]) -> RunRecord:
        return RunRecord(
            id=row[0],
            project=row[1],
            name=row[2],
            group=row[3],
            job_type=row[4],
            status=row[5],
            tags=tuple(json.loads(row[6])),
            start_time=row[7],
            end_time=row[8],
            heartbeat_time=row[9],
            pid=row[10],
            host=row[11],
        )
