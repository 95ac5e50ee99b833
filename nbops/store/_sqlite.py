"""The embedded SQLite store (WAL mode), the default backend: runs here, parts alongside."""

from __future__ import annotations

import math
import os
import socket
import sqlite3
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from nbops.errors import StoreError
from nbops.fileio import write_once
from nbops.process import pid_alive
from nbops.store._base import (
    MetricPoint,
    RunRecord,
    RunRow,
)
from nbops.store._blobs import BlobStore
from nbops.store._database import SQLiteDatabase
from nbops.store._objects import ObjectStore
from nbops.store._query import RunQuery
from nbops.store._sql_runs import RUN_COLUMNS, SQLRunStore, run_record
from nbops.store._sqlite_query import run_query_sql
from nbops.store._sqlite_schema import SCHEMA_VERSION, setup
from nbops.store._values import ScalarMemo, dumps, last_points

__all__ = ["SCHEMA_VERSION", "SQLiteStore", "sqlite_identity"]


#: The file of a SQLite store folder holding its :attr:`SQLiteStore.identity`.
IDENTITY_FILE = "store-id"


def sqlite_identity(folder: Path, *, create: bool = False) -> str | None:
    """The identity of the SQLite store in ``folder``; None when it has none (and ``create``
    is off) or there is no store there. Nothing is created without ``create``."""
    marker = folder / IDENTITY_FILE
    if not create:
        try:
            return marker.read_text().strip() or None
        except OSError:
            return None
    return write_once(marker, uuid.uuid4().hex.encode()).decode().strip()


class SQLiteStore(SQLRunStore):
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
        self._db: SQLiteDatabase = SQLiteDatabase(
            self._path, lambda con: setup(con, self._path), busy_timeout=busy_timeout
        )
        super().__init__(
            self._db, blobs if blobs is not None else ObjectStore(self._path / "objects")
        )
        self._host = socket.gethostname()
        self._identity: str | None = None
        self._db.read()  # create or migrate the schema now, so a bad location fails here

    @property
    def url(self) -> str:
        return f"sqlite://{self._path.as_posix()}"

    @property
    def path(self) -> Path:
        return self._path

    @property
    def identity(self) -> str:
        """A random token in the store folder's ``store-id`` file, made when first asked for:
        another machine's store at the same path has another one."""
        if self._identity is None:
            self._identity = sqlite_identity(self._path, create=True)
        assert self._identity is not None
        return self._identity

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self._path)!r})"

    def _con(self) -> sqlite3.Connection:
        return self._db.read()

    def _write(self) -> AbstractContextManager[sqlite3.Connection]:
        return self._db.write()

    def close(self) -> None:
        self._db.close()

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
        columns = RUN_COLUMNS.replace("runs.", "")
        with self._write() as con:
            try:
                con.execute(f"INSERT INTO runs ({columns}) VALUES ({','.join('?' * 12)})", row)
            except sqlite3.IntegrityError as exc:
                raise StoreError(f"a run with id {record.id!r} already exists") from exc

    def reopen_run(self, run_id: str, pid: int, host: str, heartbeat_time: float) -> None:
        self.reap_crashed()  # a dead owner's run reads as crashed, and may be resumed
        with self._write() as con:
            row = con.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                raise self._missing(run_id)
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

    @staticmethod
    def _merge(con: sqlite3.Connection, table: str, run_id: str, values: Mapping[str, Any]) -> None:
        con.executemany(
            f"INSERT OR REPLACE INTO {table} (run_id, key, value) VALUES (?, ?, ?)",
            [(run_id, str(k), dumps(v)) for k, v in values.items()],
        )

    def _require_in(self, con: sqlite3.Connection, run_id: str) -> None:
        if con.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
            raise self._missing(run_id)

    # --- reads ------------------------------------------------------------------------------
    def list_runs(
        self, project: str | None = None, *, query: RunQuery | None = None
    ) -> list[RunRecord]:
        self.reap_crashed()
        sql, args, reverse = run_query_sql(project, query, RUN_COLUMNS)
        records = [run_record(r) for r in self._con().execute(sql, args).fetchall()]
        return records[::-1] if reverse else records

    def list_run_rows(
        self, project: str | None = None, *, query: RunQuery | None = None
    ) -> list[RunRow]:
        self.reap_crashed()
        sql, args, reverse = run_query_sql(project, query, RUN_COLUMNS)
        con = self._con()
        con.execute("BEGIN")  # one snapshot for the three reads
        try:
            records = [run_record(r) for r in con.execute(sql, args).fetchall()]
            ids = f"SELECT id FROM ({sql.replace(RUN_COLUMNS, 'runs.id AS id', 1)})"
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

    def get_metrics(self, run_id: str, keys: Iterable[str] | None = None) -> list[MetricPoint]:
        self._require_in(self._con(), run_id)
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
