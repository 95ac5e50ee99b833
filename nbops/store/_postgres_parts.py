"""The model, dataset and run-cache parts of the PostgreSQL backend."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from nbops.errors import NotFoundError, StoreError
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
from nbops.store._postgres_db import PostgresDatabase
from nbops.store._sqlite_parts import dataset_dict, dataset_row, model_dict, model_row

_MODEL_COLUMNS = ", ".join(MODEL_FIELDS) + ", extra"
_DATASET_COLUMNS = ", ".join(DATASET_FIELDS)
_MOVE_COLUMNS = ", ".join(ALIAS_MOVE_FIELDS)


def _marks(n: int) -> str:
    return ", ".join(["%s"] * n)


class PostgresModelStore(ModelStore):
    """Model versions, aliases and alias moves in PostgreSQL tables."""

    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    def add_version(self, fields: Mapping[str, Any], *, version: int | None = None) -> int:
        with self._db.transaction() as cur:
            # one registration of a name at a time, across processes and hosts
            cur.execute(
                "SELECT pg_advisory_xact_lock(hashtext(%s))", (f"nbops.model:{fields['name']}",)
            )
            if version is None:
                cur.execute(
                    "SELECT COALESCE(MAX(version), 0) + 1 FROM model_versions WHERE name = %s",
                    (fields["name"],),
                )
                version = int(cur.fetchone()[0])
            cur.execute(
                f"INSERT INTO model_versions ({_MODEL_COLUMNS}) VALUES "
                f"({_marks(len(MODEL_FIELDS) + 1)}) ON CONFLICT DO NOTHING RETURNING version",
                model_row(fields, int(version)),
            )
            if cur.fetchone() is None:
                raise StoreError(f"model {fields['name']!r} version {version} exists")
        return int(version)

    def get_version(self, name: str, version: int | None = None) -> dict[str, Any] | None:
        sql = f"SELECT {_MODEL_COLUMNS} FROM model_versions WHERE name = %s"
        with self._db.transaction() as cur:
            if version is None:
                cur.execute(sql + " ORDER BY version DESC LIMIT 1", (name,))
            else:
                cur.execute(sql + " AND version = %s", (name, version))
            row = cur.fetchone()
        return None if row is None else model_dict(row)

    def versions(self, name: str) -> list[dict[str, Any]]:
        with self._db.transaction() as cur:
            cur.execute(
                f"SELECT {_MODEL_COLUMNS} FROM model_versions WHERE name = %s ORDER BY version",
                (name,),
            )
            return [model_dict(r) for r in cur.fetchall()]

    def names(self) -> list[tuple[dict[str, Any], int]]:
        with self._db.transaction() as cur:
            cur.execute(
                f"SELECT {_MODEL_COLUMNS}, n FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY "
                "name ORDER BY version DESC) AS rn, COUNT(*) OVER (PARTITION BY name) AS n "
                'FROM model_versions) AS v WHERE rn = 1 ORDER BY name COLLATE "C"'
            )
            return [(model_dict(r[:-1]), int(r[-1])) for r in cur.fetchall()]

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
        with self._db.transaction() as cur:
            cur.execute(
                "SELECT extra FROM model_versions WHERE name = %s AND version = %s FOR UPDATE",
                (name, version),
            )
            row = cur.fetchone()
            if row is None:
                raise NotFoundError(f"no model {name!r} version {version} in {self._db.shown}")
            merged = merge_model_extra(json.loads(row[0] or "{}"), fields, event, merge)
            cur.execute(
                "UPDATE model_versions SET extra = %s WHERE name = %s AND version = %s",
                (json.dumps(merged, default=repr, sort_keys=True), name, version),
            )

    def aliases(self, name: str) -> dict[str, int]:
        with self._db.transaction() as cur:
            cur.execute(
                "SELECT alias, version FROM model_aliases WHERE name = %s "
                'ORDER BY alias COLLATE "C"',
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
        with self._db.transaction() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"nbops.model:{name}",))
            cur.execute(
                "SELECT 1 FROM model_versions WHERE name = %s AND version = %s", (name, version)
            )
            if cur.fetchone() is None:
                raise NotFoundError(
                    f"no model {name!r} version {version}; list versions with "
                    f"`nbops models show {name}`"
                )
            cur.execute(
                "SELECT version FROM model_aliases WHERE name = %s AND alias = %s", (name, alias)
            )
            row = cur.fetchone()
            values = (
                name,
                alias,
                version,
                None if row is None else int(row[0]),
                moved_by,
                time.time() if moved_at is None else moved_at,
                reason,
            )
            cur.execute(
                "INSERT INTO model_aliases (name, alias, version) VALUES (%s, %s, %s) "
                "ON CONFLICT (name, alias) DO UPDATE SET version = EXCLUDED.version",
                (name, alias, version),
            )
            cur.execute(
                f"INSERT INTO model_alias_moves ({_MOVE_COLUMNS}) VALUES ({_marks(7)})", values
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
        with self._db.transaction() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"nbops.model:{name}",))
            cur.execute(
                "SELECT version FROM model_aliases WHERE name = %s AND alias = %s", (name, alias)
            )
            row = cur.fetchone()
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
            cur.execute("DELETE FROM model_aliases WHERE name = %s AND alias = %s", (name, alias))
            cur.execute(
                f"INSERT INTO model_alias_moves ({_MOVE_COLUMNS}) VALUES ({_marks(7)})", values
            )
        return dict(zip(ALIAS_MOVE_FIELDS, values, strict=True))

    def alias_moves(self, name: str, alias: str | None = None) -> list[dict[str, Any]]:
        sql = f"SELECT {_MOVE_COLUMNS} FROM model_alias_moves WHERE name = %s"
        args: tuple[Any, ...] = (name,)
        if alias is not None:
            sql += " AND alias = %s"
            args = (name, alias)
        with self._db.transaction() as cur:
            cur.execute(sql + " ORDER BY moved_at, seq", args)
            return [dict(zip(ALIAS_MOVE_FIELDS, r, strict=True)) for r in cur.fetchall()]


class PostgresDatasetStore(DatasetStore):
    """Dataset versions and uses in PostgreSQL tables."""

    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    def record(self, fields: Mapping[str, Any], run_id: str | None, used_at: float) -> None:
        with self._db.transaction() as cur:
            cur.execute(
                f"INSERT INTO dataset_versions ({_DATASET_COLUMNS}) "
                f"VALUES ({_marks(len(DATASET_FIELDS))}) ON CONFLICT DO NOTHING",
                dataset_row(fields, run_id),
            )
            if run_id is not None:
                cur.execute(
                    "INSERT INTO dataset_uses (name, hash, run_id, used_at) "
                    "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                    (fields["name"], fields["hash"], run_id, used_at),
                )

    def add_use(self, name: str, content_hash: str, run_id: str, used_at: float) -> None:
        with self._db.transaction() as cur:
            cur.execute(
                "INSERT INTO dataset_uses (name, hash, run_id, used_at) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (name, content_hash, run_id, used_at),
            )

    def _select(self, where: str, args: tuple[Any, ...], tail: str = "") -> list[dict[str, Any]]:
        with self._db.transaction() as cur:
            cur.execute(f"SELECT {_DATASET_COLUMNS} FROM dataset_versions {where} {tail}", args)
            return [dataset_dict(r) for r in cur.fetchall()]

    def find_hash(self, content_hash: str) -> dict[str, Any] | None:
        found = self._select("WHERE hash = %s", (content_hash,), "ORDER BY seq LIMIT 1")
        return found[0] if found else None

    def find(self, name: str, hash_prefix: str | None = None) -> list[dict[str, Any]]:
        if hash_prefix is None:
            return self._select(
                "WHERE name = %s", (name,), "ORDER BY created_at DESC, seq DESC LIMIT 1"
            )
        return self._select(
            "WHERE name = %s AND substr(hash, 1, %s) = %s",
            (name, len(hash_prefix), hash_prefix),
            "ORDER BY created_at, seq",
        )

    def versions(self, name: str) -> list[dict[str, Any]]:
        return self._select("WHERE name = %s", (name,), "ORDER BY created_at, seq")

    def latest(self) -> list[tuple[dict[str, Any], int]]:
        with self._db.transaction() as cur:
            cur.execute(
                f"SELECT {_DATASET_COLUMNS}, n FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY "
                "name ORDER BY created_at DESC, seq DESC) AS rn, COUNT(*) OVER (PARTITION BY "
                'name) AS n FROM dataset_versions) AS v WHERE rn = 1 ORDER BY name COLLATE "C"'
            )
            return [(dataset_dict(r[:-1]), int(r[-1])) for r in cur.fetchall()]

    def uses(self, name: str, content_hash: str) -> list[tuple[str, float]]:
        with self._db.transaction() as cur:
            cur.execute(
                "SELECT run_id, used_at FROM dataset_uses WHERE name = %s AND hash = %s "
                "ORDER BY used_at, seq",
                (name, content_hash),
            )
            return [(r[0], r[1]) for r in cur.fetchall()]


class PostgresRunCache(RunCache):
    """The pipeline run cache in a PostgreSQL table."""

    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    def get(self, key: str) -> dict[str, Any] | None:
        cache_record_json(key, {})
        with self._db.transaction() as cur:
            cur.execute("SELECT record FROM run_cache WHERE key = %s", (key,))
            row = cur.fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def put(self, key: str, record: Mapping[str, Any]) -> None:
        data = cache_record_json(key, record)
        with self._db.transaction() as cur:
            cur.execute(
                "INSERT INTO run_cache (key, record, updated_at) VALUES (%s, %s, %s) "
                "ON CONFLICT (key) DO UPDATE SET record = EXCLUDED.record, "
                "updated_at = EXCLUDED.updated_at",
                (key, data, time.time()),
            )

    def delete(self, key: str) -> bool:
        cache_record_json(key, {})
        with self._db.transaction() as cur:
            cur.execute("DELETE FROM run_cache WHERE key = %s", (key,))
            return bool(cur.rowcount)

    def list(self, prefix: str = "") -> dict[str, dict[str, Any]]:
        with self._db.transaction() as cur:
            cur.execute(
                "SELECT key, record FROM run_cache WHERE substr(key, 1, %s) = %s "
                'ORDER BY key COLLATE "C"',
                (len(prefix), prefix),
            )
            return {k: dict(json.loads(v)) for k, v in cur.fetchall()}
