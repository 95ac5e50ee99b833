"""What the SQLite and PostgreSQL run stores share: their parts, and the statements that read
and change one run the same way in both dialects.

Each backend keeps what its dialect does differently or faster: creating runs, writing metric
batches and parameters, run listings and crash detection.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from nbops.errors import AmbiguousRunIdError, RunNotFoundError, StoreError
from nbops.store._base import (
    FINAL_STATUSES,
    RUN_STATUSES,
    ArtifactRecord,
    RunRecord,
    RunStore,
    unique_tags,
)
from nbops.store._blobs import BlobStore
from nbops.store._sql import SQLCursor, SQLDatabase
from nbops.store._sql_parts import SQLDatasetStore, SQLModelStore, SQLRunCache
from nbops.store._values import NO_TAGS, dumps

#: The columns of a :class:`RunRecord`, in its field order.
RUN_COLUMNS = (
    "runs.id, runs.project, runs.name, runs.grp, runs.job_type, runs.status, runs.tags, "
    "runs.start_time, runs.end_time, runs.heartbeat_time, runs.pid, runs.host"
)
#: Tables holding one run's rows (``purge_run`` empties them for the run).
RUN_TABLES = ("params", "metrics", "last_metrics", "summary", "metadata", "artifacts")


def run_record(row: Sequence[Any]) -> RunRecord:
    """A run from its :data:`RUN_COLUMNS` values (tags as JSON text or as a decoded list)."""
    tags = row[6]
    if isinstance(tags, str):
        tags = NO_TAGS if tags == "[]" else json.loads(tags)
    return RunRecord(
        id=row[0],
        project=row[1],
        name=row[2],
        group=row[3],
        job_type=row[4],
        status=row[5],
        tags=tuple(tags),
        start_time=row[7],
        end_time=row[8],
        heartbeat_time=row[9],
        pid=row[10],
        host=row[11],
    )


class SQLRunStore(RunStore):
    """A :class:`RunStore` on an SQL database, with its model, dataset and run-cache parts."""

    def __init__(self, db: SQLDatabase, blobs: BlobStore) -> None:
        self._db = db
        self._blobs = blobs
        self._models = SQLModelStore(db)
        self._datasets = SQLDatasetStore(db)
        self._run_cache = SQLRunCache(db)

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

    def _missing(self, run_id: str) -> RunNotFoundError:
        return RunNotFoundError(run_id, self._db.shown)

    def _require(self, cur: SQLCursor, run_id: str, *, lock: bool = False) -> None:
        """Raise :class:`RunNotFoundError` unless the run exists (``lock``: lock its row)."""
        cur.execute(
            "SELECT 1 FROM runs WHERE id = ?" + (self._db.lock_rows if lock else ""), (run_id,)
        )
        if cur.fetchone() is None:
            raise self._missing(run_id)

    # --- writes -----------------------------------------------------------------------------
    def set_status(self, run_id: str, status: str, end_time: float | None = None) -> None:
        if status not in RUN_STATUSES:
            raise StoreError(f"unknown run status {status!r}; use one of {', '.join(RUN_STATUSES)}")
        if status in FINAL_STATUSES and end_time is None:
            end_time = time.time()
        with self._db.writing() as cur:
            cur.execute(
                "UPDATE runs SET status = ?, end_time = ? WHERE id = ?", (status, end_time, run_id)
            )
            if cur.rowcount == 0:
                raise self._missing(run_id)

    def set_tags(self, run_id: str, tags: Sequence[str]) -> None:
        with self._db.writing() as cur:
            cur.execute("UPDATE runs SET tags = ? WHERE id = ?", (dumps(unique_tags(tags)), run_id))
            if cur.rowcount == 0:
                raise self._missing(run_id)

    def purge_run(self, run_id: str) -> None:
        with self._db.writing() as cur:
            cur.execute("SELECT status FROM runs WHERE id = ?" + self._db.lock_rows, (run_id,))
            row = cur.fetchone()
            if row is None:
                raise self._missing(run_id)
            if row[0] == "running":
                raise StoreError(f"run {run_id} is running; finish it before removing it")
            for table in RUN_TABLES:
                cur.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))
            cur.execute("DELETE FROM runs WHERE id = ?", (run_id,))

    def add_artifact(self, run_id: str, record: ArtifactRecord) -> ArtifactRecord:
        with self._db.writing() as cur:
            self._require(cur, run_id, lock=True)  # one version number at a time per run
            cur.execute(
                "SELECT COALESCE(MAX(version) + 1, 0) FROM artifacts WHERE run_id = ? AND name = ?",
                (run_id, record.name),
            )
            version = int(cur.fetchone()[0])
            cur.execute(
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
        return ArtifactRecord(**{**record.__dict__, "version": version})

    # --- reads ------------------------------------------------------------------------------
    def resolve_id(self, prefix: str) -> str:
        with self._db.reading() as cur:
            cur.execute(
                "SELECT id FROM runs WHERE substr(id, 1, ?) = ? ORDER BY start_time LIMIT 6",
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
        with self._db.reading() as cur:
            cur.execute(f"SELECT {RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,))
            row = cur.fetchone()
        if row is None:
            raise self._missing(run_id)
        return run_record(row)

    def get_params(self, run_id: str) -> dict[str, Any]:
        return self._read_kv("params", run_id)

    def get_summary(self, run_id: str) -> dict[str, Any]:
        return self._read_kv("summary", run_id)

    def get_metadata(self, run_id: str) -> dict[str, Any]:
        return self._read_kv("metadata", run_id)

    def _read_kv(self, table: str, run_id: str) -> dict[str, Any]:
        with self._db.reading() as cur:
            self._require(cur, run_id)
            cur.execute(
                f"SELECT key, value FROM {table} WHERE run_id = ? "
                f"ORDER BY key{self._db.binary_collation}",
                (run_id,),
            )
            return {k: json.loads(v) for k, v in cur.fetchall()}

    def list_artifacts(self, run_id: str) -> list[ArtifactRecord]:
        with self._db.reading() as cur:
            self._require(cur, run_id)
            cur.execute(
                "SELECT name, type, digest, size, kind, source, created_at, metadata, version "
                "FROM artifacts WHERE run_id = ? "
                f"ORDER BY created_at, version, {self._db.insertion_order}",
                (run_id,),
            )
            rows = cur.fetchall()
        return [
            ArtifactRecord(r[0], r[1], r[2], int(r[3]), r[4], r[5], r[6], json.loads(r[7]), r[8])
            for r in rows
        ]
