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
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from nbops.config import store_path
from nbops.errors import StoreError
from nbops.process import pid_alive
from nbops.store._backends import blobs_url_default, open_blobs
from nbops.store._base import MetricPoint, RunRecord, RunRow
from nbops.store._blobs import BlobStore
from nbops.store._postgres_db import PostgresDatabase, QmarkCursor
from nbops.store._postgres_query import param_columns, run_query_sql
from nbops.store._postgres_schema import setup
from nbops.store._query import RunQuery
from nbops.store._sql_runs import RUN_COLUMNS, SQLRunStore, run_record
from nbops.store._values import ScalarMemo, dumps, last_points


class PostgresStore(SQLRunStore):
    """A :class:`RunStore` on a PostgreSQL server (psycopg2), one connection per thread."""

    def __init__(self, url: str, *, blobs: BlobStore | None = None) -> None:
        self._url = url
        self._db: PostgresDatabase = PostgresDatabase(url, lambda cur: setup(cur, self._db.shown))
        self._local = store_path()
        super().__init__(self._db, blobs or open_blobs(blobs_url_default(self._local / "objects")))
        self._host = socket.gethostname()
        with self._db.transaction():  # connect, create or migrate now: a bad URL fails here
            pass

    @property
    def url(self) -> str:
        return self._url

    @property
    def path(self) -> Path:
        return self._local

    def __repr__(self) -> str:
        return f"PostgresStore({self._db.shown!r})"

    def close(self) -> None:
        self._db.close()

    # --- writes -----------------------------------------------------------------------------
    def create_run(self, record: RunRecord) -> None:
        seen = record.heartbeat_time if record.heartbeat_time is not None else record.start_time
        with self._db.transaction() as cur:
            cur.execute(
                f"INSERT INTO runs ({RUN_COLUMNS.replace('runs.', '')}, seen_at) VALUES "
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
        with self._db.writing() as cur:
            self._require(cur, run_id)
            if points:
                _copy_metrics(cur.raw, run_id, points)
                self._db.execute_values(
                    cur.raw,
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
                    "UPDATE runs SET heartbeat_time = ?, seen_at = to_timestamp(?), "
                    "end_time = CASE WHEN status = 'crashed' THEN NULL ELSE end_time END, "
                    "status = CASE WHEN status = 'crashed' THEN 'running' ELSE status END "
                    "WHERE id = ?",
                    (heartbeat_time, heartbeat_time, run_id),
                )

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        rows = [(run_id, str(k), dumps(v), *param_columns(v)) for k, v in params.items()]
        with self._db.writing() as cur:
            self._require(cur, run_id)
            if rows:
                self._db.execute_values(
                    cur.raw,
                    "INSERT INTO params (run_id, key, value, kind, num, txt) VALUES %s "
                    "ON CONFLICT (run_id, key) DO UPDATE SET value = EXCLUDED.value, "
                    "kind = EXCLUDED.kind, num = EXCLUDED.num, txt = EXCLUDED.txt",
                    rows,
                )

    def set_metadata(self, run_id: str, key: str, value: Any) -> None:
        with self._db.writing() as cur:
            self._require(cur, run_id)
            self._merge(cur, "metadata", run_id, {key: value})

    def _merge(self, cur: QmarkCursor, table: str, run_id: str, values: Mapping[str, Any]) -> None:
        self._db.execute_values(
            cur.raw,
            f"INSERT INTO {table} (run_id, key, value) VALUES %s ON CONFLICT (run_id, key) "
            "DO UPDATE SET value = EXCLUDED.value",
            [(run_id, str(k), dumps(v)) for k, v in values.items()],
        )

    # --- reads ------------------------------------------------------------------------------
    def list_runs(
        self, project: str | None = None, *, query: RunQuery | None = None
    ) -> list[RunRecord]:
        self.reap_crashed()
        sql, args, reverse = run_query_sql(project, query, RUN_COLUMNS)
        with self._db.transaction() as cur:
            cur.execute(sql, args)
            records = [run_record(r) for r in cur.fetchall()]
        return records[::-1] if reverse else records

    def list_run_rows(
        self, project: str | None = None, *, query: RunQuery | None = None
    ) -> list[RunRow]:
        self.reap_crashed()
        sql, args, reverse = run_query_sql(project, query, RUN_COLUMNS)
        ids = f"SELECT id FROM ({sql.replace(RUN_COLUMNS, 'runs.id AS id', 1)}) AS chosen"
        with self._db.transaction(snapshot=True) as cur:
            cur.execute(sql, args)
            records = [run_record(r) for r in cur.fetchall()]
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

    def get_metrics(self, run_id: str, keys: Iterable[str] | None = None) -> list[MetricPoint]:
        sql = "SELECT key, step, value, ts FROM metrics WHERE run_id = ?"
        args: list[Any] = [run_id]
        if keys is not None:
            sql += " AND key = ANY(?)"
            args.append(list(keys))
        with self._db.reading() as cur:
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
