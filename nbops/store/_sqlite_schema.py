"""The SQLite backend's tables, its schema version and the migrations between versions."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from nbops.errors import StoreError

#: The layout this nbops writes. ``PRAGMA user_version`` holds a database's version.
SCHEMA_VERSION = 2

# Version 1: what nbops 0.1 created (runs, and the registry's and data index's own tables).
_V1 = """
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
CREATE TABLE IF NOT EXISTS model_versions (
    name TEXT NOT NULL, version INTEGER NOT NULL, digest TEXT NOT NULL, size INTEGER NOT NULL,
    format TEXT NOT NULL, trusted_types TEXT NOT NULL, model_class TEXT NOT NULL, task TEXT,
    run_id TEXT, created_at REAL NOT NULL, created_by TEXT NOT NULL, lineage TEXT NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS model_aliases (
    name TEXT NOT NULL, alias TEXT NOT NULL, version INTEGER NOT NULL,
    PRIMARY KEY (name, alias)
);
CREATE TABLE IF NOT EXISTS model_alias_moves (
    name TEXT NOT NULL, alias TEXT NOT NULL, version INTEGER NOT NULL, previous INTEGER,
    moved_by TEXT NOT NULL, moved_at REAL NOT NULL, reason TEXT
);
CREATE INDEX IF NOT EXISTS model_alias_moves_name ON model_alias_moves(name, moved_at);
CREATE TABLE IF NOT EXISTS dataset_versions (
    name TEXT NOT NULL, hash TEXT NOT NULL, kind TEXT NOT NULL, object TEXT NOT NULL,
    size INTEGER NOT NULL, rows INTEGER, files INTEGER, schema TEXT, stats TEXT,
    source TEXT NOT NULL, created_at REAL NOT NULL, run_id TEXT,
    PRIMARY KEY (name, hash)
);
CREATE INDEX IF NOT EXISTS dataset_versions_time ON dataset_versions(name, created_at);
CREATE TABLE IF NOT EXISTS dataset_uses (
    name TEXT NOT NULL, hash TEXT NOT NULL, run_id TEXT NOT NULL, used_at REAL NOT NULL,
    PRIMARY KEY (name, hash, run_id)
);
"""

# Version 2: artifact versions, model extension fields, the run cache, last metric values kept
# per run and key (listings filter and sort on them without scanning the history).
_V2 = """
CREATE TABLE artifacts_v2 (
    run_id TEXT NOT NULL, name TEXT NOT NULL, version INTEGER NOT NULL, type TEXT NOT NULL,
    digest TEXT NOT NULL, size INTEGER NOT NULL, kind TEXT NOT NULL, source TEXT NOT NULL,
    created_at REAL NOT NULL, metadata TEXT NOT NULL, PRIMARY KEY (run_id, name, version)
);
INSERT INTO artifacts_v2 SELECT run_id, name, 0, type, digest, size, kind, source, created_at,
    metadata FROM artifacts ORDER BY rowid;
DROP TABLE artifacts;
ALTER TABLE artifacts_v2 RENAME TO artifacts;
ALTER TABLE model_versions ADD COLUMN extra TEXT NOT NULL DEFAULT '{}';
CREATE TABLE run_cache (key TEXT PRIMARY KEY, record TEXT NOT NULL, updated_at REAL NOT NULL);
CREATE TABLE last_metrics (
    run_id TEXT NOT NULL, key TEXT NOT NULL, step INTEGER NOT NULL, value REAL,
    ts REAL NOT NULL, PRIMARY KEY (run_id, key)
) WITHOUT ROWID;
INSERT INTO last_metrics SELECT run_id, key, step, value, ts FROM (
    SELECT run_id, key, step, value, ts, ROW_NUMBER() OVER (PARTITION BY run_id, key
    ORDER BY step DESC, ts DESC, rowid DESC) AS rn FROM metrics) WHERE rn = 1;
CREATE INDEX runs_status ON runs(status);
CREATE INDEX runs_start ON runs(start_time);
CREATE INDEX last_metrics_key ON last_metrics(key, value);
"""

_MIGRATIONS = {1: _V2}


def _has_table(con: sqlite3.Connection, name: str) -> bool:
    row = con.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,))
    return row.fetchone() is not None


def read_version(con: sqlite3.Connection) -> int:
    """The schema version of an open database (0 for an empty one)."""
    version = int(con.execute("PRAGMA user_version").fetchone()[0])
    if version == 0 and _has_table(con, "runs"):
        return 1  # nbops 0.1 set user_version only on some connections
    return version


def setup(con: sqlite3.Connection, where: Path) -> None:
    """Create the tables of a new database, or migrate an older one (inside a transaction).

    Raises:
        StoreError: The database was written by a newer nbops.
    """
    version = read_version(con)
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"the store at {where} has schema version {version}, newer than this nbops "
            f"understands ({SCHEMA_VERSION}); upgrade nbops (pip install -U nbops) to open it"
        )
    if version == SCHEMA_VERSION:
        return
    if version == 0:
        _script(con, _V1)
        version = 1
    _script(con, _V1)  # tables a version-1 store may lack (registry or data never used)
    while version < SCHEMA_VERSION:
        _script(con, _MIGRATIONS[version])
        version += 1
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _script(con: sqlite3.Connection, script: str) -> None:
    for statement in script.split(";"):
        if statement.strip():
            con.execute(statement)
