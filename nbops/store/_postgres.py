"""``postgresql://``: a store a team shares on a PostgreSQL server; blobs on a folder.

Runs, models, datasets and the run cache live in the database (``?schema=NAME`` in the URL
keeps several stores in one database); blobs in ``$NBOPS_BLOBS`` (a shared folder or a
registered remote) or the project's local ``.nbops/objects``. Crashed runs are found with the
server's clock and timezone-aware times, so hosts in other zones or with other clocks agree.
"""

from __future__ import annotations

import io
import json
import math
import socket
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from nbops.config import store_path
from nbops.errors import AmbiguousRunIdError, RunNotFoundError, StoreError
from nbops.process import pid_alive
from nbops.store._backends import blobs_url_default, open_blobs
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
from nbops.store._postgres_db import PostgresDatabase
from nbops.store._postgres_query import param_columns, run_query_sql
from nbops.store._postgres_schema import setup
from nbops.store._query import RunQuery
from nbops.store._sql_parts import SQLDatasetStore, SQLModelStore, SQLRunCache
from nbops.store._values import ScalarMemo, dumps, last_points

_RUN_COLUMNS = (
    "runs.id, runs.project, runs.name, runs.grp, runs.job_type, runs.status, runs.tags, "
    "runs.start_time, runs.end_time, runs.heartbeat_time, runs.pid, runs.host"
)


#: Tables holding one run's rows (``purge_run`` empties them for the run).
_RUN_TABLES = ("params", "metrics", "last_metrics", "summary", "metadata", "artifacts")


class PostgresStore(RunStore):
    """A :class:`RunStore` on a PostgreSQL server (psycopg2), one connection per thread."""

    def __init__(self, url: str, *, blobs: BlobStore | None = None) -> None:
        self._url = url
        self._db = PostgresDatabase(url, lambda cur: setup(cur, self._db.shown))
        self._local = store_path()
        self._blobs = blobs or open_blobs(blobs_url_default(self._local / "objects"))
        self._host = socket.gethostname()
        self._models = SQLModelStore(self._db)
        self._datasets = SQLDatasetStore(self._db)
        self._run_cache = SQLRunCache(self._db)
        with self._db.transaction():  # connect, create or migrate now: a bad URL fails here
            pass

    @property
    def url(self) -> str:
        return self._url

    @property
    def path(self) -> Path:
        return self._local

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
        return f"PostgresStore({self._db.shown!r})"

    def close(self) -> None:
        self._db.close()

    def _missing(self, run_id: str) -> RunNotFoundError:
        return RunNotFoundError(run_id, self._db.shown)

    def _require(self, cur: Any, run_id: str, *, lock: bool = False) -> None:
        cur.execute("SELECT 1 FROM runs WHERE id = %s" + (" FOR UPDATE" if lock else ""), (run_id,))
        if cur.fetchone() is None:
            raise self._missing(run_id)

    # --- writes -----------------------------------------------------------------------------
    def create_run(self, record: RunRecord) -> None:
        seen = record.heartbeat_time if record.heartbeat_time is not None else record.start_time
        with self._db.transaction() as cur:
            cur.execute(
                f"INSERT INTO runs ({_RUN_COLUMNS.replace('runs.', '')}, seen_at) VALUES "
                "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, to_timestamp(%s)) "
                "ON CONFLICT (id) DO NOTHING RETURNING id",
                (
                    record.id,
                    record.project,
                    record.name,
                    record.group,
                    record.job_type,
                    record.status,
                    json.dumps(list(record.tags)),
                    record.start_time,
                    record.end_time,
                    record.heartbeat_time,
                    record.pid,
                    record.host,
                    seen,
                ),
            )
            if cur.fetchone() is None:
                raise StoreError(f"a run with id {record.id!r} already exists")

    def set_status(self, run_id: str, status: str, end_time: float | None = None) -> None:
        if status not in RUN_STATUSES:
            raise StoreError(f"unknown run status {status!r}; use one of {', '.join(RUN_STATUSES)}")
        if status in FINAL_STATUSES and end_time is None:
            end_time = time.time()
        with self._db.transaction() as cur:
            cur.execute(
                "UPDATE runs SET status = %s, end_time = %s WHERE id = %s",
                (status, end_time, run_id),
            )
            if cur.rowcount == 0:
                raise self._missing(run_id)

    def set_tags(self, run_id: str, tags: Sequence[str]) -> None:
        with self._db.transaction() as cur:
            cur.execute(
                "UPDATE runs SET tags = %s WHERE id = %s",
                (json.dumps(unique_tags(tags)), run_id),
            )
            if cur.rowcount == 0:
                raise self._missing(run_id)

    def purge_run(self, run_id: str) -> None:
        with self._db.transaction() as cur:
            cur.execute("SELECT status FROM runs WHERE id = %s FOR UPDATE", (run_id,))
            row = cur.fetchone()
            if row is None:
                raise self._missing(run_id)
            if row[0] == "running":
                raise StoreError(f"run {run_id} is running; finish it before removing it")
            for table in _RUN_TABLES:
                cur.execute(f"DELETE FROM {table} WHERE run_id = %s", (run_id,))
            cur.execute("DELETE FROM runs WHERE id = %s", (run_id,))

    def reopen_run(self, run_id: str, pid: int, host: str, heartbeat_time: float) -> None:
        self.reap_crashed()
        with self._db.transaction() as cur:
            cur.execute("SELECT status FROM runs WHERE id = %s FOR UPDATE", (run_id,))
            row = cur.fetchone()
            if row is None:
                raise self._missing(run_id)
            if row[0] == "running":
                raise StoreError(f"run {run_id} is running in another process; it cannot resume")
            cur.execute(
                "UPDATE runs SET status = 'running', end_time = NULL, pid = %s, host = %s, "
                "heartbeat_time = %s, seen_at = to_timestamp(%s) WHERE id = %s",
                (pid, host, heartbeat_time, heartbeat_time, run_id),
            )

    def write_progress(
        self,
        run_id: str,
        points: Sequence[MetricPoint] = (),
        summary: Mapping[str, Any] | None = None,
        heartbeat_time: float | None = None,
    ) -> None:
        with self._db.transaction() as cur:
            self._require(cur, run_id)
            if points:
                _copy_metrics(cur, run_id, points)
                self._db.execute_values(
                    cur,
                    "INSERT INTO last_metrics AS l (run_id, key, step, value, ts) VALUES %s "
                    "ON CONFLICT (run_id, key) DO UPDATE SET step = EXCLUDED.step, "
                    "value = EXCLUDED.value, ts = EXCLUDED.ts WHERE EXCLUDED.step > l.step OR "
                    "(EXCLUDED.step = l.step AND EXCLUDED.ts >= l.ts)",
                    [(run_id, *p) for p in last_points(points)],
                )
            if summary:
                self._merge(cur, "summary", run_id, summary)
            if heartbeat_time is not None:
                cur.execute(
                    "UPDATE runs SET heartbeat_time = %s, seen_at = to_timestamp(%s), "
                    "end_time = CASE WHEN status = 'crashed' THEN NULL ELSE end_time END, "
                    "status = CASE WHEN status = 'crashed' THEN 'running' ELSE status END "
                    "WHERE id = %s",
                    (heartbeat_time, heartbeat_time, run_id),
                )

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        rows = [(run_id, str(k), dumps(v), *param_columns(v)) for k, v in params.items()]
        with self._db.transaction() as cur:
            self._require(cur, run_id)
            if rows:
                self._db.execute_values(
                    cur,
                    "INSERT INTO params (run_id, key, value, kind, num, txt) VALUES %s "
                    "ON CONFLICT (run_id, key) DO UPDATE SET value = EXCLUDED.value, "
                    "kind = EXCLUDED.kind, num = EXCLUDED.num, txt = EXCLUDED.txt",
                    rows,
                )

    def set_metadata(self, run_id: str, key: str, value: Any) -> None:
        with self._db.transaction() as cur:
            self._require(cur, run_id)
            self._merge(cur, "metadata", run_id, {key: value})

    def _merge(self, cur: Any, table: str, run_id: str, values: Mapping[str, Any]) -> None:
        self._db.execute_values(
            cur,
            f"INSERT INTO {table} (run_id, key, value) VALUES %s ON CONFLICT (run_id, key) "
            "DO UPDATE SET value = EXCLUDED.value",
            [(run_id, str(k), dumps(v)) for k, v in values.items()],
        )

    def add_artifact(self, run_id: str, record: ArtifactRecord) -> ArtifactRecord:
        with self._db.transaction() as cur:
            self._require(cur, run_id, lock=True)  # one version number at a time per run
            cur.execute(
                "SELECT COALESCE(MAX(version) + 1, 0) FROM artifacts "
                "WHERE run_id = %s AND name = %s",
                (run_id, record.name),
            )
            version = int(cur.fetchone()[0])
            cur.execute(
                "INSERT INTO artifacts (run_id, name, version, type, digest, size, kind, "
                "source, created_at, metadata) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
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
        return ArtifactRecord(**{**record.__dict__, "version": version})

    # --- reads ------------------------------------------------------------------------------
    def resolve_id(self, prefix: str) -> str:
        with self._db.transaction() as cur:
            cur.execute(
                "SELECT id FROM runs WHERE substr(id, 1, %s) = %s ORDER BY start_time LIMIT 6",
                (len(prefix), prefix),
            )
            ids = [r[0] for r in cur.fetchall()]
        if prefix in ids:
            return prefix
        if not ids:
            raise self._missing(prefix)
        if len(ids) > 1:
            raise AmbiguousRunIdError(prefix, ids)
        return str(ids[0])

    def get_run(self, run_id: str) -> RunRecord:
        self.reap_crashed()
        with self._db.transaction() as cur:
            cur.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = %s", (run_id,))
            row = cur.fetchone()
        if row is None:
            raise self._missing(run_id)
        return _record(row)

    def list_runs(
        self, project: str | None = None, *, query: RunQuery | None = None
    ) -> list[RunRecord]:
        self.reap_crashed()
        sql, args, reverse = run_query_sql(project, query, _RUN_COLUMNS)
        with self._db.transaction() as cur:
            cur.execute(sql, args)
            records = [_record(r) for r in cur.fetchall()]
        return records[::-1] if reverse else records

    def list_run_rows(
        self, project: str | None = None, *, query: RunQuery | None = None
    ) -> list[RunRow]:
        self.reap_crashed()
        sql, args, reverse = run_query_sql(project, query, _RUN_COLUMNS)
        ids = f"SELECT id FROM ({sql.replace(_RUN_COLUMNS, 'runs.id AS id', 1)}) AS chosen"
        with self._db.transaction(snapshot=True) as cur:
            cur.execute(sql, args)
            records = [_record(r) for r in cur.fetchall()]
            params: dict[str, dict[str, Any]] = {r.id: {} for r in records}
            cur.execute(f"SELECT run_id, key, value FROM params WHERE run_id IN ({ids})", args)
            loads = ScalarMemo()
            for rid, key, value in cur.fetchall():
                params[rid][key] = loads(value)
            metrics: dict[str, dict[str, float]] = {r.id: {} for r in records}
            cur.execute(
                f"SELECT run_id, key, value FROM last_metrics WHERE run_id IN ({ids})", args
            )
            for rid, key, value in cur.fetchall():
                metrics[rid][key] = math.nan if value is None else value
        rows = [RunRow(r, params[r.id], metrics[r.id]) for r in records]
        return rows[::-1] if reverse else rows

    def get_params(self, run_id: str) -> dict[str, Any]:
        return self._read_kv("params", run_id)

    def get_summary(self, run_id: str) -> dict[str, Any]:
        return self._read_kv("summary", run_id)

    def get_metadata(self, run_id: str) -> dict[str, Any]:
        return self._read_kv("metadata", run_id)

    def _read_kv(self, table: str, run_id: str) -> dict[str, Any]:
        with self._db.transaction() as cur:
            self._require(cur, run_id)
            cur.execute(
                f'SELECT key, value FROM {table} WHERE run_id = %s ORDER BY key COLLATE "C"',
                (run_id,),
            )
            return {k: json.loads(v) for k, v in cur.fetchall()}

    def get_metrics(self, run_id: str, keys: Iterable[str] | None = None) -> list[MetricPoint]:
        sql = "SELECT key, step, value, ts FROM metrics WHERE run_id = %s"
        args: list[Any] = [run_id]
        if keys is not None:
            sql += " AND key = ANY(%s)"
            args.append(list(keys))
        with self._db.transaction() as cur:
            self._require(cur, run_id)
            cur.execute(sql + " ORDER BY step, ts, seq", args)
            rows = cur.fetchall()
        nan = math.nan
        return [MetricPoint(k, int(s), nan if v is None else v, t) for k, s, v, t in rows]

    def last_metrics(self, run_ids: Sequence[str]) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {rid: {} for rid in run_ids}
        if not run_ids:
            return out
        with self._db.transaction() as cur:
            cur.execute(
                "SELECT run_id, key, value FROM last_metrics WHERE run_id = ANY(%s)",
                (list(run_ids),),
            )
            for rid, key, value in cur.fetchall():
                out[rid][key] = math.nan if value is None else value
        return out

    def list_artifacts(self, run_id: str) -> list[ArtifactRecord]:
        with self._db.transaction() as cur:
            self._require(cur, run_id)
            cur.execute(
                "SELECT name, type, digest, size, kind, source, created_at, metadata, version "
                "FROM artifacts WHERE run_id = %s ORDER BY created_at, version, seq",
                (run_id,),
            )
            rows = cur.fetchall()
        return [
            ArtifactRecord(r[0], r[1], r[2], int(r[3]), r[4], r[5], r[6], json.loads(r[7]), r[8])
            for r in rows
        ]

    def reap_crashed(self) -> list[str]:
        """Mark ``running`` runs as ``crashed``: a dead pid on this host, or no heartbeat for
        :attr:`stale_after` seconds by the server's clock (``seen_at`` is timezone-aware)."""
        with self._db.transaction() as cur:
            cur.execute(
                "SELECT id, pid FROM runs WHERE status = 'running' AND host = %s", (self._host,)
            )
            dead = [rid for rid, pid in cur.fetchall() if pid is not None and not pid_alive(pid)]
            cur.execute(
                "UPDATE runs SET status = 'crashed', end_time = EXTRACT(EPOCH FROM seen_at) "
                "WHERE status = 'running' AND (id = ANY(%s) OR "
                "seen_at < now() - make_interval(secs => %s)) RETURNING id",
                (dead, self.stale_after),
            )
            return [r[0] for r in cur.fetchall()]


def _copy_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _copy_metrics(cur: Any, run_id: str, points: Sequence[MetricPoint]) -> None:
    """Append metric points with ``COPY`` (several times faster than INSERTs for big batches).

    Floats are written with ``repr`` (exact round trip; PostgreSQL reads ``nan`` and ``inf``).
    """
    rid = _copy_text(run_id)
    keys: dict[str, str] = {}
    lines = []
    for key, step, value, ts in points:
        k = keys.get(key)
        if k is None:
            k = keys[key] = _copy_text(key)
        lines.append(f"{rid}\t{k}\t{int(step)}\t{float(value)!r}\t{float(ts)!r}\n")
    cur.copy_expert(
        "COPY metrics (run_id, key, step, value, ts) FROM STDIN", io.StringIO("".join(lines))
    )


def _record(row: Sequence[Any]) -> RunRecord:
    return RunRecord(
        id=row[0],
        project=row[1],
        name=row[2],
        group=row[3],
        job_type=row[4],
        status=row[5],
        tags=tuple(row[6]),
        start_time=row[7],
        end_time=row[8],
        heartbeat_time=row[9],
        pid=row[10],
        host=row[11],
    )
