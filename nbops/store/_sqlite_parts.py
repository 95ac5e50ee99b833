"""The model, dataset and run-cache parts of the SQLite backend (tables of ``runs.db``)."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Mapping
from typing import Any

from nbops.errors import InvalidValueError, NotFoundError, StoreError
from nbops.store._database import SQLiteDatabase
from nbops.store._parts import (
    ALIAS_MOVE_FIELDS,
    DATASET_FIELDS,
    MODEL_FIELDS,
    DatasetStore,
    ModelStore,
    RunCache,
    cache_record_json,
    merge_model_extra,
)

_MODEL_COLUMNS = ", ".join(MODEL_FIELDS) + ", extra"
_DATASET_COLUMNS = ", ".join(DATASET_FIELDS)


def _json(value: Any) -> str:
    return json.dumps(value, default=repr, sort_keys=True)


def model_row(fields: Mapping[str, Any], version: int) -> tuple[Any, ...]:
    """The column values of a model version (extension fields as one JSON document)."""
    extra = {k: v for k, v in fields.items() if k not in MODEL_FIELDS}
    return (
        fields["name"],
        version,
        fields["digest"],
        fields["size"],
        fields["format"],
        _json(list(fields["trusted_types"])),
        fields["model_class"],
        fields.get("task"),
        fields.get("run_id"),
        fields["created_at"],
        fields["created_by"],
        _json(fields.get("lineage") or {}),
        _json(extra),
    )


def model_dict(row: tuple[Any, ...]) -> dict[str, Any]:
    """A model version as a dict, from its column values."""
    doc = dict(zip(MODEL_FIELDS, row[: len(MODEL_FIELDS)], strict=True))
    doc["version"] = int(doc["version"])
    doc["trusted_types"] = json.loads(doc["trusted_types"])
    doc["lineage"] = json.loads(doc["lineage"])
    return {**json.loads(row[len(MODEL_FIELDS)] or "{}"), **doc}


def dataset_row(fields: Mapping[str, Any], run_id: str | None) -> tuple[Any, ...]:
    """The column values of a dataset version."""
    values = dict(fields, run_id=run_id if fields.get("run_id") is None else fields["run_id"])
    for key in ("schema", "stats"):
        # key order is meaningful here (column order of a schema): keep it
        values[key] = None if values.get(key) is None else json.dumps(dict(values[key]))
    return tuple(values.get(k) for k in DATASET_FIELDS)


def dataset_dict(row: tuple[Any, ...]) -> dict[str, Any]:
    """A dataset version as a dict, from its column values."""
    doc = dict(zip(DATASET_FIELDS, row, strict=True))
    for key in ("schema", "stats"):
        doc[key] = None if doc[key] is None else json.loads(doc[key])
    return doc


class SQLiteModelStore(ModelStore):
    """Model versions, aliases and alias moves in ``runs.db``."""

    def __init__(self, database: SQLiteDatabase, where: str) -> None:
        self._db = database
        self._where = where

    def add_version(self, fields: Mapping[str, Any], *, version: int | None = None) -> int:
        with self._db.write() as con:
            if version is None:
                (version,) = con.execute(
                    "SELECT COALESCE(MAX(version), 0) + 1 FROM model_versions WHERE name = ?",
                    (fields["name"],),
                ).fetchone()
            try:
                con.execute(
                    f"INSERT INTO model_versions ({_MODEL_COLUMNS}) VALUES "
                    f"({','.join('?' * (len(MODEL_FIELDS) + 1))})",
                    model_row(fields, int(version)),
                )
            except sqlite3.IntegrityError as exc:
                raise StoreError(f"model {fields['name']!r} version {version} exists") from exc
        return int(version)

    def get_version(self, name: str, version: int | None = None) -> dict[str, Any] | None:
        sql = f"SELECT {_MODEL_COLUMNS} FROM model_versions WHERE name = ?"
        if version is None:
            row = self._db.read().execute(sql + " ORDER BY version DESC LIMIT 1", (name,))
        else:
            row = self._db.read().execute(sql + " AND version = ?", (name, version))
        found = row.fetchone()
        return None if found is None else model_dict(found)

    def versions(self, name: str) -> list[dict[str, Any]]:
        rows = self._db.read().execute(
            f"SELECT {_MODEL_COLUMNS} FROM model_versions WHERE name = ? ORDER BY version", (name,)
        )
        return [model_dict(r) for r in rows.fetchall()]

    def names(self) -> list[tuple[dict[str, Any], int]]:
        rows = self._db.read().execute(
            f"SELECT {_MODEL_COLUMNS}, n FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY name "
            "ORDER BY version DESC) AS rn, COUNT(*) OVER (PARTITION BY name) AS n "
            "FROM model_versions) WHERE rn = 1 ORDER BY name"
        )
        return [(model_dict(r[:-1]), int(r[-1])) for r in rows.fetchall()]

    def update_version(
        self,
        name: str,
        version: int,
        fields: Mapping[str, Any],
        *,
        event: Mapping[str, Any] | None = None,
        merge: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        merge_model_extra({}, fields, event, merge)  # refuse fixed fields before locking
        with self._db.write() as con:
            row = con.execute(
                "SELECT extra FROM model_versions WHERE name = ? AND version = ?", (name, version)
            ).fetchone()
            if row is None:
                raise NotFoundError(f"no model {name!r} version {version} in {self._where}")
            merged = merge_model_extra(json.loads(row[0] or "{}"), fields, event, merge)
            con.execute(
                "UPDATE model_versions SET extra = ? WHERE name = ? AND version = ?",
                (_json(merged), name, version),
            )

    def aliases(self, name: str) -> dict[str, int]:
        rows = self._db.read().execute(
            "SELECT alias, version FROM model_aliases WHERE name = ? ORDER BY alias", (name,)
        )
        return {a: int(v) for a, v in rows.fetchall()}

    def move_alias(
        self,
        name: str,
        alias: str,
        version: int,
        moved_by: str,
        reason: str | None,
        *,
        moved_at: float | None = None,
    ) -> dict[str, Any]:
        with self._db.write() as con:
            exists = con.execute(
                "SELECT 1 FROM model_versions WHERE name = ? AND version = ?", (name, version)
            ).fetchone()
            if exists is None:
                raise NotFoundError(
                    f"no model {name!r} version {version}; list versions with "
                    f"`nbops models show {name}`"
                )
            row = con.execute(
                "SELECT version FROM model_aliases WHERE name = ? AND alias = ?", (name, alias)
            ).fetchone()
            values = (
                name,
                alias,
                version,
                None if row is None else int(row[0]),
                moved_by,
                time.time() if moved_at is None else moved_at,
                reason,
            )
            con.execute(
                "INSERT OR REPLACE INTO model_aliases (name, alias, version) VALUES (?, ?, ?)",
                (name, alias, version),
            )
            con.execute(
                f"INSERT INTO model_alias_moves ({', '.join(ALIAS_MOVE_FIELDS)}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                values,
            )
        return dict(zip(ALIAS_MOVE_FIELDS, values, strict=True))

    def remove_alias(
        self,
        name: str,
        alias: str,
        moved_by: str,
        reason: str | None,
        *,
        moved_at: float | None = None,
    ) -> dict[str, Any]:
        with self._db.write() as con:
            row = con.execute(
                "SELECT version FROM model_aliases WHERE name = ? AND alias = ?", (name, alias)
            ).fetchone()
            if row is None:
                raise NotFoundError(f"model {name!r} has no alias {alias!r}")
            values = (
                name,
                alias,
                0,
                int(row[0]),
                moved_by,
                time.time() if moved_at is None else moved_at,
                reason,
            )
            con.execute("DELETE FROM model_aliases WHERE name = ? AND alias = ?", (name, alias))
            con.execute(
                f"INSERT INTO model_alias_moves ({', '.join(ALIAS_MOVE_FIELDS)}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                values,
            )
        return dict(zip(ALIAS_MOVE_FIELDS, values, strict=True))

    def alias_moves(self, name: str, alias: str | None = None) -> list[dict[str, Any]]:
        sql = f"SELECT {', '.join(ALIAS_MOVE_FIELDS)} FROM model_alias_moves WHERE name = ?"
        args: tuple[Any, ...] = (name,)
        if alias is not None:
            sql += " AND alias = ?"
            args = (name, alias)
        rows = self._db.read().execute(sql + " ORDER BY moved_at, rowid", args).fetchall()
        return [dict(zip(ALIAS_MOVE_FIELDS, r, strict=True)) for r in rows]


class SQLiteDatasetStore(DatasetStore):
    """Dataset versions and uses in ``runs.db``."""

    def __init__(self, database: SQLiteDatabase) -> None:
        self._db = database

    def record(self, fields: Mapping[str, Any], run_id: str | None, used_at: float) -> None:
        with self._db.write() as con:
            con.execute(
                f"INSERT OR IGNORE INTO dataset_versions ({_DATASET_COLUMNS}) "
                f"VALUES ({','.join('?' * len(DATASET_FIELDS))})",
                dataset_row(fields, run_id),
            )
            if run_id is not None:
                con.execute(
                    "INSERT OR IGNORE INTO dataset_uses VALUES (?, ?, ?, ?)",
                    (fields["name"], fields["hash"], run_id, used_at),
                )

    def add_use(self, name: str, content_hash: str, run_id: str, used_at: float) -> None:
        with self._db.write() as con:
            con.execute(
                "INSERT OR IGNORE INTO dataset_uses VALUES (?, ?, ?, ?)",
                (name, content_hash, run_id, used_at),
            )

    def find_hash(self, content_hash: str) -> dict[str, Any] | None:
        row = self._db.read().execute(
            f"SELECT {_DATASET_COLUMNS} FROM dataset_versions WHERE hash = ? LIMIT 1",
            (content_hash,),
        )
        found = row.fetchone()
        return None if found is None else dataset_dict(found)

    def find(self, name: str, hash_prefix: str | None = None) -> list[dict[str, Any]]:
        con = self._db.read()
        if hash_prefix is None:
            rows = con.execute(
                f"SELECT {_DATASET_COLUMNS} FROM dataset_versions WHERE name = ? "
                "ORDER BY created_at DESC, rowid DESC LIMIT 1",
                (name,),
            )
        else:
            rows = con.execute(
                f"SELECT {_DATASET_COLUMNS} FROM dataset_versions "
                "WHERE name = ? AND substr(hash, 1, ?) = ? ORDER BY created_at, rowid",
                (name, len(hash_prefix), hash_prefix),
            )
        return [dataset_dict(r) for r in rows.fetchall()]

    def versions(self, name: str) -> list[dict[str, Any]]:
        rows = self._db.read().execute(
            f"SELECT {_DATASET_COLUMNS} FROM dataset_versions WHERE name = ? "
            "ORDER BY created_at, rowid",
            (name,),
        )
        return [dataset_dict(r) for r in rows.fetchall()]

    def latest(self) -> list[tuple[dict[str, Any], int]]:
        rows = self._db.read().execute(
            f"SELECT {_DATASET_COLUMNS}, n FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY name "
            "ORDER BY created_at DESC, rowid DESC) AS rn, COUNT(*) OVER (PARTITION BY name) "
            "AS n FROM dataset_versions) WHERE rn = 1 ORDER BY name"
        )
        return [(dataset_dict(r[:-1]), int(r[-1])) for r in rows.fetchall()]

    def uses(self, name: str, content_hash: str) -> list[tuple[str, float]]:
        rows = self._db.read().execute(
            "SELECT run_id, used_at FROM dataset_uses WHERE name = ? AND hash = ? "
            "ORDER BY used_at, rowid",
            (name, content_hash),
        )
        return [(r[0], r[1]) for r in rows.fetchall()]


class SQLiteRunCache(RunCache):
    """The pipeline run cache in ``runs.db``."""

    def __init__(self, database: SQLiteDatabase) -> None:
        self._db = database

    @staticmethod
    def _check(key: str) -> str:
        if not isinstance(key, str) or not key:
            raise InvalidValueError(f"invalid run cache key {key!r}: give a non-empty string")
        return key

    def get(self, key: str) -> dict[str, Any] | None:
        row = self._db.read().execute(
            "SELECT record FROM run_cache WHERE key = ?", (self._check(key),)
        )
        found = row.fetchone()
        return None if found is None else dict(json.loads(found[0]))

    def put(self, key: str, record: Mapping[str, Any]) -> None:
        data = cache_record_json(key, record)
        with self._db.write() as con:
            con.execute(
                "INSERT OR REPLACE INTO run_cache (key, record, updated_at) VALUES (?, ?, ?)",
                (self._check(key), data, time.time()),
            )

    def delete(self, key: str) -> bool:
        with self._db.write() as con:
            cur = con.execute("DELETE FROM run_cache WHERE key = ?", (self._check(key),))
            return cur.rowcount > 0

    def list(self, prefix: str = "") -> dict[str, dict[str, Any]]:
        rows = self._db.read().execute(
            "SELECT key, record FROM run_cache WHERE substr(key, 1, ?) = ? ORDER BY key",
            (len(prefix), prefix),
        )
        return {k: dict(json.loads(v)) for k, v in rows.fetchall()}
