"""The model, dataset and run-cache parts of the SQL backends (SQLite and PostgreSQL).

One implementation serves both: statements are written once, with ``?`` placeholders, and run
through the backend's :class:`~nbops.store._sql.SQLDatabase`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from nbops.errors import NotFoundError, StoreError
from nbops.store._parts import (
    ALIAS_MOVE_FIELDS,
    DATASET_FIELDS,
    MODEL_FIELDS,
    DatasetStore,
    ModelStore,
    RunCache,
    alias_move,
    cache_record_json,
    check_cache_key,
    merge_model_extra,
    missing_version,
)
from nbops.store._sql import SQLCursor, SQLDatabase

_MODEL_COLUMNS = ", ".join(MODEL_FIELDS) + ", extra"
_DATASET_COLUMNS = ", ".join(DATASET_FIELDS)
_MOVE_COLUMNS = ", ".join(ALIAS_MOVE_FIELDS)


def _json(value: Any) -> str:
    return json.dumps(value, default=repr, sort_keys=True)


def _model_row(fields: Mapping[str, Any], version: int) -> tuple[Any, ...]:
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


def _model_dict(row: Sequence[Any]) -> dict[str, Any]:
    """A model version as a dict, from its column values."""
    doc = dict(zip(MODEL_FIELDS, row[: len(MODEL_FIELDS)], strict=True))
    doc["version"] = int(doc["version"])
    doc["trusted_types"] = json.loads(doc["trusted_types"])
    doc["lineage"] = json.loads(doc["lineage"])
    return {**json.loads(row[len(MODEL_FIELDS)] or "{}"), **doc}


def _dataset_row(fields: Mapping[str, Any], run_id: str | None) -> tuple[Any, ...]:
    """The column values of a dataset version."""
    values = dict(fields, run_id=run_id if fields.get("run_id") is None else fields["run_id"])
    for key in ("schema", "stats"):
        # key order is meaningful here (column order of a schema): keep it
        values[key] = None if values.get(key) is None else json.dumps(dict(values[key]))
    return tuple(values.get(k) for k in DATASET_FIELDS)


def _dataset_dict(row: Sequence[Any]) -> dict[str, Any]:
    """A dataset version as a dict, from its column values."""
    doc = dict(zip(DATASET_FIELDS, row, strict=True))
    for key in ("schema", "stats"):
        doc[key] = None if doc[key] is None else json.loads(doc[key])
    return doc


def _marks(n: int) -> str:
    return ", ".join("?" * n)


class SQLModelStore(ModelStore):
    """Model versions, aliases and alias moves in SQL tables."""

    def __init__(self, db: SQLDatabase) -> None:
        self._db = db

    @staticmethod
    def _lock(name: str) -> str:
        return f"nbops.model:{name}"

    def add_version(self, fields: Mapping[str, Any], *, version: int | None = None) -> int:
        with self._db.writing(self._lock(fields["name"])) as cur:
            if version is None:
                cur.execute(
                    "SELECT COALESCE(MAX(version), 0) + 1 FROM model_versions WHERE name = ?",
                    (fields["name"],),
                )
                version = int(cur.fetchone()[0])
            cur.execute(
                f"INSERT INTO model_versions ({_MODEL_COLUMNS}) VALUES "
                f"({_marks(len(MODEL_FIELDS) + 1)}) ON CONFLICT DO NOTHING",
                _model_row(fields, int(version)),
            )
            if cur.rowcount == 0:
                raise StoreError(f"model {fields['name']!r} version {version} exists")
        return int(version)

    def get_version(self, name: str, version: int | None = None) -> dict[str, Any] | None:
        sql = f"SELECT {_MODEL_COLUMNS} FROM model_versions WHERE name = ?"
        with self._db.reading() as cur:
            if version is None:
                cur.execute(sql + " ORDER BY version DESC LIMIT 1", (name,))
            else:
                cur.execute(sql + " AND version = ?", (name, version))
            row = cur.fetchone()
        return None if row is None else _model_dict(row)

    def versions(self, name: str) -> list[dict[str, Any]]:
        with self._db.reading() as cur:
            cur.execute(
                f"SELECT {_MODEL_COLUMNS} FROM model_versions WHERE name = ? ORDER BY version",
                (name,),
            )
            return [_model_dict(r) for r in cur.fetchall()]

    def names(self) -> list[tuple[dict[str, Any], int]]:
        with self._db.reading() as cur:
            cur.execute(
                f"SELECT {_MODEL_COLUMNS}, n FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY "
                "name ORDER BY version DESC) AS rn, COUNT(*) OVER (PARTITION BY name) AS n "
                f"FROM model_versions) AS v WHERE rn = 1 ORDER BY name{self._db.binary_collation}"
            )
            return [(_model_dict(r[:-1]), int(r[-1])) for r in cur.fetchall()]

    def update_version(
        self,
        name: str,
        version: int,
        fields: Mapping[str, Any],
        *,
        event: Mapping[str, Any] | None = None,
        merge: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        merge_model_extra({}, fields, event, merge)  # refuse fixed fields before locking the row
        with self._db.writing() as cur:
            cur.execute(
                "SELECT extra FROM model_versions WHERE name = ? AND version = ?"
                + self._db.lock_rows,
                (name, version),
            )
            row = cur.fetchone()
            if row is None:
                raise NotFoundError(f"no model {name!r} version {version} in {self._db.shown}")
            merged = merge_model_extra(json.loads(row[0] or "{}"), fields, event, merge)
            cur.execute(
                "UPDATE model_versions SET extra = ? WHERE name = ? AND version = ?",
                (_json(merged), name, version),
            )

    def aliases(self, name: str) -> dict[str, int]:
        with self._db.reading() as cur:
            cur.execute(
                "SELECT alias, version FROM model_aliases WHERE name = ? "
                f"ORDER BY alias{self._db.binary_collation}",
                (name,),
            )
            return {a: int(v) for a, v in cur.fetchall()}

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
        with self._db.writing(self._lock(name)) as cur:
            cur.execute(
                "SELECT 1 FROM model_versions WHERE name = ? AND version = ?", (name, version)
            )
            if cur.fetchone() is None:
                raise missing_version(name, version)
            previous = self._alias_version(cur, name, alias)
            move = alias_move(name, alias, version, previous, moved_by, reason, moved_at)
            cur.execute(
                "INSERT INTO model_aliases (name, alias, version) VALUES (?, ?, ?) "
                "ON CONFLICT (name, alias) DO UPDATE SET version = excluded.version",
                (name, alias, version),
            )
            self._record_move(cur, move)
        return move

    def remove_alias(
        self,
        name: str,
        alias: str,
        moved_by: str,
        reason: str | None,
        *,
        moved_at: float | None = None,
    ) -> dict[str, Any]:
        with self._db.writing(self._lock(name)) as cur:
            previous = self._alias_version(cur, name, alias)
            if previous is None:
                raise NotFoundError(f"model {name!r} has no alias {alias!r}")
            move = alias_move(name, alias, 0, previous, moved_by, reason, moved_at)
            cur.execute("DELETE FROM model_aliases WHERE name = ? AND alias = ?", (name, alias))
            self._record_move(cur, move)
        return move

    @staticmethod
    def _alias_version(cur: SQLCursor, name: str, alias: str) -> int | None:
        cur.execute("SELECT version FROM model_aliases WHERE name = ? AND alias = ?", (name, alias))
        row = cur.fetchone()
        return None if row is None else int(row[0])

    @staticmethod
    def _record_move(cur: SQLCursor, move: Mapping[str, Any]) -> None:
        cur.execute(
            f"INSERT INTO model_alias_moves ({_MOVE_COLUMNS}) "
            f"VALUES ({_marks(len(ALIAS_MOVE_FIELDS))})",
            tuple(move[k] for k in ALIAS_MOVE_FIELDS),
        )

    def alias_moves(self, name: str, alias: str | None = None) -> list[dict[str, Any]]:
        sql = f"SELECT {_MOVE_COLUMNS} FROM model_alias_moves WHERE name = ?"
        args: tuple[Any, ...] = (name,)
        if alias is not None:
            sql += " AND alias = ?"
            args = (name, alias)
        with self._db.reading() as cur:
            cur.execute(sql + f" ORDER BY moved_at, {self._db.insertion_order}", args)
            return [dict(zip(ALIAS_MOVE_FIELDS, r, strict=True)) for r in cur.fetchall()]


class SQLDatasetStore(DatasetStore):
    """Dataset versions and uses in SQL tables."""

    def __init__(self, db: SQLDatabase) -> None:
        self._db = db

    def record(self, fields: Mapping[str, Any], run_id: str | None, used_at: float) -> None:
        with self._db.writing() as cur:
            cur.execute(
                f"INSERT INTO dataset_versions ({_DATASET_COLUMNS}) "
                f"VALUES ({_marks(len(DATASET_FIELDS))}) ON CONFLICT DO NOTHING",
                _dataset_row(fields, run_id),
            )
            if run_id is not None:
                self._use(cur, fields["name"], fields["hash"], run_id, used_at)

    def add_use(self, name: str, content_hash: str, run_id: str, used_at: float) -> None:
        with self._db.writing() as cur:
            self._use(cur, name, content_hash, run_id, used_at)

    @staticmethod
    def _use(cur: SQLCursor, name: str, content_hash: str, run_id: str, used_at: float) -> None:
        cur.execute(
            "INSERT INTO dataset_uses (name, hash, run_id, used_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT DO NOTHING",
            (name, content_hash, run_id, used_at),
        )

    def _select(self, where: str, args: tuple[Any, ...], order: str) -> list[dict[str, Any]]:
        order = order.format(seq=self._db.insertion_order)
        with self._db.reading() as cur:
            cur.execute(f"SELECT {_DATASET_COLUMNS} FROM dataset_versions {where} {order}", args)
            return [_dataset_dict(r) for r in cur.fetchall()]

    def find_hash(self, content_hash: str) -> dict[str, Any] | None:
        found = self._select("WHERE hash = ?", (content_hash,), "ORDER BY {seq} LIMIT 1")
        return found[0] if found else None

    def find(self, name: str, hash_prefix: str | None = None) -> list[dict[str, Any]]:
        if hash_prefix is None:
            return self._select(
                "WHERE name = ?", (name,), "ORDER BY created_at DESC, {seq} DESC LIMIT 1"
            )
        return self._select(
            "WHERE name = ? AND substr(hash, 1, ?) = ?",
            (name, len(hash_prefix), hash_prefix),
            "ORDER BY created_at, {seq}",
        )

    def versions(self, name: str) -> list[dict[str, Any]]:
        return self._select("WHERE name = ?", (name,), "ORDER BY created_at, {seq}")

    def latest(self) -> list[tuple[dict[str, Any], int]]:
        seq = self._db.insertion_order
        with self._db.reading() as cur:
            cur.execute(
                f"SELECT {_DATASET_COLUMNS}, n FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY "
                f"name ORDER BY created_at DESC, {seq} DESC) AS rn, COUNT(*) OVER (PARTITION BY "
                "name) AS n FROM dataset_versions) AS v WHERE rn = 1 "
                f"ORDER BY name{self._db.binary_collation}"
            )
            return [(_dataset_dict(r[:-1]), int(r[-1])) for r in cur.fetchall()]

    def uses(self, name: str, content_hash: str) -> list[tuple[str, float]]:
        with self._db.reading() as cur:
            cur.execute(
                "SELECT run_id, used_at FROM dataset_uses WHERE name = ? AND hash = ? "
                f"ORDER BY used_at, {self._db.insertion_order}",
                (name, content_hash),
            )
            return [(r[0], r[1]) for r in cur.fetchall()]


class SQLRunCache(RunCache):
    """The pipeline run cache in an SQL table."""

    def __init__(self, db: SQLDatabase) -> None:
        self._db = db

    def get(self, key: str) -> dict[str, Any] | None:
        with self._db.reading() as cur:
            cur.execute("SELECT record FROM run_cache WHERE key = ?", (check_cache_key(key),))
            row = cur.fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def put(self, key: str, record: Mapping[str, Any]) -> None:
        data = cache_record_json(key, record)
        with self._db.writing() as cur:
            cur.execute(
                "INSERT INTO run_cache (key, record, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET record = excluded.record, "
                "updated_at = excluded.updated_at",
                (key, data, time.time()),
            )

    def delete(self, key: str) -> bool:
        with self._db.writing() as cur:
            cur.execute("DELETE FROM run_cache WHERE key = ?", (check_cache_key(key),))
            return cur.rowcount > 0

    def list(self, prefix: str = "") -> dict[str, dict[str, Any]]:
        with self._db.reading() as cur:
            cur.execute(
                "SELECT key, record FROM run_cache WHERE substr(key, 1, ?) = ? "
                f"ORDER BY key{self._db.binary_collation}",
                (len(prefix), prefix),
            )
            return {k: dict(json.loads(v)) for k, v in cur.fetchall()}
