"""The PostgreSQL backend's tables, its schema version and the migrations between versions."""

from __future__ import annotations

from typing import Any

from nbops.errors import StoreError

#: The layout this nbops writes; the table ``nbops_schema`` holds a database's version.
PG_SCHEMA_VERSION = 2

_V1 = """
CREATE TABLE nbops_schema (version INTEGER NOT NULL);
CREATE TABLE runs (
    id TEXT PRIMARY KEY, project TEXT NOT NULL, name TEXT NOT NULL, grp TEXT, job_type TEXT,
    status TEXT NOT NULL, tags JSONB NOT NULL, start_time DOUBLE PRECISION NOT NULL,
    end_time DOUBLE PRECISION, heartbeat_time DOUBLE PRECISION, pid INTEGER, host TEXT,
    seen_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX runs_project ON runs (project, start_time);
CREATE INDEX runs_start ON runs (start_time);
CREATE INDEX runs_running ON runs (status) WHERE status = 'running';
CREATE TABLE params (
    run_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, kind TEXT NOT NULL,
    num DOUBLE PRECISION, txt TEXT, PRIMARY KEY (run_id, key)
);
CREATE TABLE metrics (
    seq BIGSERIAL PRIMARY KEY, run_id TEXT NOT NULL, key TEXT NOT NULL, step BIGINT NOT NULL,
    value DOUBLE PRECISION, ts DOUBLE PRECISION NOT NULL
);
CREATE INDEX metrics_run ON metrics (run_id, key, step);
CREATE TABLE last_metrics (
    run_id TEXT NOT NULL, key TEXT NOT NULL, step BIGINT NOT NULL, value DOUBLE PRECISION,
    ts DOUBLE PRECISION NOT NULL, PRIMARY KEY (run_id, key)
);
CREATE TABLE summary (
    run_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (run_id, key)
);
CREATE TABLE metadata (
    run_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (run_id, key)
);
CREATE TABLE artifacts (
    seq BIGSERIAL, run_id TEXT NOT NULL, name TEXT NOT NULL, version INTEGER NOT NULL,
    type TEXT NOT NULL, digest TEXT NOT NULL, size BIGINT NOT NULL, kind TEXT NOT NULL,
    source TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL, metadata TEXT NOT NULL,
    PRIMARY KEY (run_id, name, version)
);
CREATE TABLE model_versions (
    name TEXT NOT NULL, version INTEGER NOT NULL, digest TEXT NOT NULL, size BIGINT NOT NULL,
    format TEXT NOT NULL, trusted_types TEXT NOT NULL, model_class TEXT NOT NULL, task TEXT,
    run_id TEXT, created_at DOUBLE PRECISION NOT NULL, created_by TEXT NOT NULL,
    lineage TEXT NOT NULL, extra TEXT NOT NULL DEFAULT '{}', PRIMARY KEY (name, version)
);
CREATE TABLE model_aliases (
    name TEXT NOT NULL, alias TEXT NOT NULL, version INTEGER NOT NULL, PRIMARY KEY (name, alias)
);
CREATE TABLE model_alias_moves (
    seq BIGSERIAL PRIMARY KEY, name TEXT NOT NULL, alias TEXT NOT NULL, version INTEGER NOT NULL,
    previous INTEGER, moved_by TEXT NOT NULL, moved_at DOUBLE PRECISION NOT NULL, reason TEXT
);
CREATE INDEX model_alias_moves_name ON model_alias_moves (name, moved_at);
CREATE TABLE dataset_versions (
    seq BIGSERIAL, name TEXT NOT NULL, hash TEXT NOT NULL, kind TEXT NOT NULL,
    object TEXT NOT NULL, size BIGINT NOT NULL, rows BIGINT, files BIGINT, schema TEXT,
    stats TEXT, source TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL, run_id TEXT,
    PRIMARY KEY (name, hash)
);
CREATE INDEX dataset_versions_hash ON dataset_versions (hash);
CREATE TABLE dataset_uses (
    seq BIGSERIAL, name TEXT NOT NULL, hash TEXT NOT NULL, run_id TEXT NOT NULL,
    used_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (name, hash, run_id)
);
CREATE TABLE run_cache (
    key TEXT PRIMARY KEY, record TEXT NOT NULL, updated_at DOUBLE PRECISION NOT NULL
);
"""

# Version 2: the metric history keeps its insertion order without a primary-key index (one
# index less to update per point; reads go through metrics_run).
_V2 = "ALTER TABLE metrics DROP CONSTRAINT IF EXISTS metrics_pkey"

#: ``{version: script}`` bringing a database from ``version`` to ``version + 1``.
_MIGRATIONS: dict[int, str] = {1: _V2}
#: A fixed advisory lock id: one process at a time creates or migrates the tables.
_SETUP_LOCK = 0x6E626F7073


def setup(cur: Any, where: str) -> None:
    """Create the tables of a new database (schema), or migrate an older one.

    Runs inside the caller's transaction, under an advisory lock.

    Raises:
        StoreError: The database was written by a newer nbops.
    """
    cur.execute("SELECT pg_advisory_xact_lock(%s)", (_SETUP_LOCK,))
    cur.execute("SELECT to_regclass('nbops_schema') IS NOT NULL")
    if not cur.fetchone()[0]:
        cur.execute(_V1)
        cur.execute("INSERT INTO nbops_schema VALUES (1)")
    cur.execute("SELECT MAX(version) FROM nbops_schema")
    version = int(cur.fetchone()[0] or 0)
    if version > PG_SCHEMA_VERSION:
        raise StoreError(
            f"the store at {where} has schema version {version}, newer than this nbops "
            f"understands ({PG_SCHEMA_VERSION}); upgrade nbops (pip install -U nbops) to open it"
        )
    while version < PG_SCHEMA_VERSION:
        cur.execute(_MIGRATIONS[version])
        version += 1
        cur.execute("UPDATE nbops_schema SET version = %s", (version,))
