"""The embedded SQLite store (WAL mode), the default backend: runs here, parts alongside."""

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
    RunRow,
    RunStore,
    unique_tags,
)
from nbops.store._blobs import BlobStore
from nbops.store._database import SQLiteDatabase
from nbops.store._objects import ObjectStore
from nbops.store._query import RunQuery
from nbops.store._sql_parts import SQLDatasetStore, SQLModelStore, SQLRunCache
from nbops.store._sqlite_query import run_query_sql
from nbops.store._sqlite_schema import SCHEMA_VERSION, setup
from nbops.store._values import NO_TAGS, ScalarMemo, dumps, last_points

__all__ = ["SCHEMA_VERSION", "SQLiteStore"]

_RUN_COLUMNS = (
    "runs.id, runs.project, runs.name, runs.grp, runs.job_type, runs.status, runs.tags, "
    "runs.start_time, runs.end_time, runs.heartbeat_time, runs.pid, runs.host"
)


#: Tables holding one run's rows (``purge_run`` empties them for the run).
_RUN_TABLES = ("params", "metrics", "last_metrics", "summary", "metadata", "artifacts")


class SQLiteStore(RunStore):
    """A store in the folder ``path``: ``runs.db`` (SQLite, WAL) and ``objects/`` (blobs)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout: float = 60.0,
        blobs: BlobStore | None = None,
    ) -> None:
        self._path = Path(path).absolute()
        try:
            self._path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create the store directory {self._path}: {exc}; "
                "set NBOPS_HOME to a writable directory"
            ) from exc
        self._database = SQLiteDatabase(
            self._path, lambda con: setup(con, self._path), busy_timeout=busy_timeout
        )
        self._host = socket.gethostname()
        self._blobs = blobs if blobs is not None else ObjectStore(self._path / "objects")
        self._models = SQLModelStore(self._database)
        self._datasets = SQLDatasetStore(self._database)
        self._run_cache = SQLRunCache(self._database)
        self._database.read()  # create or migrate the schema now, so a bad location fails here

    @property
    def url(self) -> str:
        return f"sqlite://{self._path.as_posix()}"

    @property
    def path(self) -> Path:
        return self._path

    @property
    def blobs(self) -> BlobStore:
        return self._blobs

    @property
    def models(self) -> SQLModelStore:
        return self._models

    @property
    def datasets(self) -> SQLDatasetStore:
        return self._datasets

    @property
    def run_cache(self) -> SQLRunCache:
        return self._run_cache

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
            dumps(list(record.tags)),
            record.start_time,
            record.end_time,
            record.heartbeat_time,
            record.pid,
            record.host,
        )
        columns = _RUN_COLUMNS.replace("runs.", "")
        with self._write() as con:
            try:
                con.execute(f"INSERT INTO runs ({columns}) VALUES ({','.join('?' * 12)})", row)
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
            if cur.rowcount == 0:
                raise RunNotFoundError(run_id, str(self._path))

    def set_tags(self, run_id: str, tags: Sequence[str]) -> None:
        with self._write() as con:
            cur = con.execute(
                "UPDATE runs SET tags = ? WHERE id = ?", (dumps(unique_tags(tags)), run_id)
            )
            if cur.rowcount == 0:
                raise RunNotFoundError(run_id, str(self._path))

    def purge_run(self, run_id: str) -> None:
        with self._write() as con:
            row = con.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                raise RunNotFoundError(run_id, str(self._path))
            if row[0] == "running":
                raise StoreError(f"run {run_id} is running; finish it before removing it")
            for table in _RUN_TABLES:
                con.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))
            con.execute("DELETE FROM runs WHERE id = ?", (run_id,))

    def reopen_run(self, run_id: str, pid: int, host: str, heartbeat_time: float) -> None:
        self.reap_crashed()  # a dead owner's run reads as crashed, and may be resumed
        with self._write() as con:
            row = con.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                raise RunNotFoundError(run_id, str(self._path))
            if row[0] == "running":
                raise StoreError(f"run {run_id} is running in another process; it cannot resume")
            con.execute(
                "UPDATE runs SET status = 'running', end_time = NULL, pid = ?, host = ?, "
                "heartbeat_time = ? WHERE id = ?",
                (pid, host, heartbeat_time, run_id),
            )

    def write_progress(
        self,
        run_id: str,
        points: Sequence[MetricPoint] = (),
        summary: Mapping[str, Any] | None = None,
        heartbeat_time: float | None = None,
    ) -> None:
        with self._write() as con:
            self._require_in(con, run_id)
            if points:
                con.executemany(
                    "INSERT INTO metrics (run_id, key, step, value, ts) VALUES (?, ?, ?, ?, ?)",
                    # SQLite stores NaN as NULL by itself; reads turn NULL back into NaN
                    [(run_id, *point) for point in points],
                )
                con.executemany(
                    "INSERT INTO last_metrics (run_id, key, step, value, ts) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (run_id, key) DO UPDATE SET "
                    "step = excluded.step, value = excluded.value, ts = excluded.ts "
                    "WHERE excluded.step > step OR (excluded.step = step AND excluded.ts >= ts)",
                    [(run_id, *point) for point in last_points(points)],
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
            self._require_in(con, run_id)
            self._merge(con, "params", run_id, params)

    def set_metadata(self, run_id: str, key: str, value: Any) -> None:
        with self._write() as con:
            self._require_in(con, run_id)
            self._merge(con, "metadata", run_id, {key: value})

    def add_artifact(self, run_id: str, record: ArtifactRecord) -> ArtifactRecord:
        with self._write() as con:
            self._require_in(con, run_id)
            (version,) = con.execute(
                "SELECT COALESCE(MAX(version) + 1, 0) FROM artifacts WHERE run_id = ? AND name = ?",
                (run_id, record.name),
            ).fetchone()
            con.execute(
                "INSERT INTO artifacts (run_id, name, version, type, digest, size, kind, source, "
                "created_at, metadata) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    record.name,
                    version,
                    record.type,
                    record.digest,
                    record.size,
                    record.kind,
                    record.source,
                    record.created_at,
                    dumps(dict(record.metadata)),
                ),
            )
        return ArtifactRecord(**{**record.__dict__, "version": int(version)})

    @staticmethod
    def _merge(con: sqlite3.Connection, table: str, run_id: str, values: Mapping[str, Any]) -> None:
        con.executemany(
            f"INSERT OR REPLACE INTO {table} (run_id, key, value) VALUES (?, ?, ?)",
            [(run_id, str(k), dumps(v)) for k, v in values.items()],
        )

    def _require_in(self, con: sqlite3.Connection, run_id: str) -> None:
        if con.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
            raise RunNotFoundError(run_id, str(self._path))

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
        row = self._con().execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,))
        found = row.fetchone()
        if found is None:
            raise RunNotFoundError(run_id, str(self._path))
        return self._record(found)

    def list_runs(
        self, project: str | None = None, *, query: RunQuery | None = None
    ) -> list[RunRecord]:
        self.reap_crashed()
        sql, args, reverse = run_query_sql(project, query, _RUN_COLUMNS)
        records = [self._record(r) for r in self._con().execute(sql, args).fetchall()]
        return records[::-1] if reverse else records

    def list_run_rows(
        self, project: str | None = None, *, query: RunQuery | None = None
    ) -> list[RunRow]:
        self.reap_crashed()
        sql, args, reverse = run_query_sql(project, query, _RUN_COLUMNS)
        con = self._con()
        con.execute("BEGIN")  # one snapshot for the three reads
        try:
            records = [self._record(r) for r in con.execute(sql, args).fetchall()]
            ids = f"SELECT id FROM ({sql.replace(_RUN_COLUMNS, 'runs.id AS id', 1)})"
            params: dict[str, dict[str, Any]] = {r.id: {} for r in records}
            loads = ScalarMemo()
            for rid, key, value in con.execute(
                f"SELECT run_id, key, value FROM params WHERE run_id IN ({ids})", args
            ):
                params[rid][key] = loads(value)
            metrics: dict[str, dict[str, float]] = {r.id: {} for r in records}
            for rid, key, value in con.execute(
                f"SELECT run_id, key, value FROM last_metrics WHERE run_id IN ({ids})", args
            ):
                metrics[rid][key] = math.nan if value is None else value
        finally:
            con.execute("COMMIT")
        rows = [RunRow(r, params[r.id], metrics[r.id]) for r in records]
        return rows[::-1] if reverse else rows

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
                "SELECT run_id, key, value FROM last_metrics "
                f"WHERE run_id IN ({','.join('?' * len(chunk))})",
                chunk,
            ).fetchall()
            for rid, key, value in rows:
                out[rid][key] = math.nan if value is None else value
        return out

    def list_artifacts(self, run_id: str) -> list[ArtifactRecord]:
        self._require(run_id)
        rows = self._con().execute(
            "SELECT name, type, digest, size, kind, source, created_at, metadata, version "
            "FROM artifacts WHERE run_id = ? ORDER BY created_at, version, rowid",
            (run_id,),
        )
        return [
            ArtifactRecord(r[0], r[1], r[2], r[3], r[4], r[5], r[6], json.loads(r[7]), r[8])
            for r in rows.fetchall()
        ]

    def reap_crashed(self) -> list[str]:
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
        self._require_in(self._con(), run_id)

    def _read_kv(self, table: str, run_id: str) -> dict[str, Any]:
        self._require(run_id)
        rows = self._con().execute(
            f"SELECT key, value FROM {table} WHERE run_id = ? ORDER BY key", (run_id,)
        )
        return {k: json.loads(v) for k, v in rows.fetchall()}

    @staticmethod
    def _record(row: Sequence[Any]) -> RunRecord:
        return RunRecord(
            id=row[0],
            project=row[1],
            name=row[2],
            group=row[3],
            job_type=row[4],
            status=row[5],
            tags=NO_TAGS if row[6] == "[]" else tuple(json.loads(row[6])),
            start_time=row[7],
            end_time=row[8],
            heartbeat_time=row[9],
            pid=row[10],
            host=row[11],
        )
