"""The model, dataset and run-cache parts of the ``memory://`` reference backend."""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Mapping
from typing import Any

from nbops.errors import NotFoundError, StoreError
from nbops.store._parts import (
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


def _doc(value: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy through JSON, as a database would hand it back."""
    return dict(json.loads(json.dumps(dict(value), default=repr)))


class MemoryModelStore(ModelStore):
    """Model versions in a dict."""

    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock
        self._versions: dict[str, dict[int, dict[str, Any]]] = {}
        self._aliases: dict[str, dict[str, int]] = {}
        self._moves: list[dict[str, Any]] = []

    def add_version(self, fields: Mapping[str, Any], *, version: int | None = None) -> int:
        doc = _doc(fields)
        doc["trusted_types"] = list(doc["trusted_types"])
        doc.setdefault("lineage", {})
        doc.setdefault("task", None)
        doc.setdefault("run_id", None)
        with self._lock:
            versions = self._versions.setdefault(doc["name"], {})
            number = max(versions, default=0) + 1 if version is None else int(version)
            if number in versions:
                raise StoreError(f"model {doc['name']!r} version {number} exists")
            versions[number] = {**doc, "version": number}
        return number

    def get_version(self, name: str, version: int | None = None) -> dict[str, Any] | None:
        with self._lock:
            versions = self._versions.get(name, {})
            if version is None:
                version = max(versions, default=None)
            found = versions.get(version) if version is not None else None
            return None if found is None else copy.deepcopy(found)

    def versions(self, name: str) -> list[dict[str, Any]]:
        with self._lock:
            found = self._versions.get(name, {})
            return [copy.deepcopy(found[v]) for v in sorted(found)]

    def names(self) -> list[tuple[dict[str, Any], int]]:
        with self._lock:
            return [
                (copy.deepcopy(v[max(v)]), len(v)) for _, v in sorted(self._versions.items()) if v
            ]

    def update_version(
        self,
        name: str,
        version: int,
        fields: Mapping[str, Any],
        *,
        event: Mapping[str, Any] | None = None,
        merge: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        merge_model_extra({}, fields, event, merge)
        with self._lock:
            found = self._versions.get(name, {}).get(version)
            if found is None:
                raise NotFoundError(f"no model {name!r} version {version} in memory")
            extra = {k: v for k, v in found.items() if k not in MODEL_FIELDS}
            added = None if event is None else _doc(event)
            found.update(_doc(merge_model_extra(extra, _doc(fields), added, merge)))

    def aliases(self, name: str) -> dict[str, int]:
        with self._lock:
            return dict(sorted(self._aliases.get(name, {}).items()))

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
        with self._lock:
            if version not in self._versions.get(name, {}):
                raise missing_version(name, version)
            aliases = self._aliases.setdefault(name, {})
            move = alias_move(name, alias, version, aliases.get(alias), moved_by, reason, moved_at)
            aliases[alias] = version
            self._moves.append(move)
            return dict(move)

    def remove_alias(
        self,
        name: str,
        alias: str,
        moved_by: str,
        reason: str | None,
        *,
        moved_at: float | None = None,
    ) -> dict[str, Any]:
        with self._lock:
            aliases = self._aliases.get(name, {})
            if alias not in aliases:
                raise NotFoundError(f"model {name!r} has no alias {alias!r}")
            move = alias_move(name, alias, 0, aliases.pop(alias), moved_by, reason, moved_at)
            self._moves.append(move)
            return dict(move)

    def alias_moves(self, name: str, alias: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            found = [
                dict(m)
                for m in self._moves
                if m["name"] == name and (alias is None or m["alias"] == alias)
            ]
        order = sorted(range(len(found)), key=lambda i: (found[i]["moved_at"], i))
        return [found[i] for i in order]


class MemoryDatasetStore(DatasetStore):
    """Dataset versions in a list (insertion order) and uses in a dict."""

    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock
        self._versions: list[dict[str, Any]] = []
        self._uses: dict[tuple[str, str], dict[str, float]] = {}

    def _ordered(self, name: str) -> list[dict[str, Any]]:
        found = [(v["created_at"], i, v) for i, v in enumerate(self._versions) if v["name"] == name]
        return [copy.deepcopy(v) for _, _, v in sorted(found, key=lambda t: t[:2])]

    def record(self, fields: Mapping[str, Any], run_id: str | None, used_at: float) -> None:
        doc = {k: fields.get(k) for k in DATASET_FIELDS}
        if doc["run_id"] is None:
            doc["run_id"] = run_id
        doc = _doc(doc)
        with self._lock:
            if not any(
                v["name"] == doc["name"] and v["hash"] == doc["hash"] for v in self._versions
            ):
                self._versions.append(doc)
            if run_id is not None:
                self.add_use(doc["name"], doc["hash"], run_id, used_at)

    def add_use(self, name: str, content_hash: str, run_id: str, used_at: float) -> None:
        with self._lock:
            self._uses.setdefault((name, content_hash), {}).setdefault(run_id, used_at)

    def find_hash(self, content_hash: str) -> dict[str, Any] | None:
        with self._lock:
            for v in self._versions:
                if v["hash"] == content_hash:
                    return copy.deepcopy(v)
        return None

    def find(self, name: str, hash_prefix: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            ordered = self._ordered(name)
        if hash_prefix is None:
            return ordered[-1:]
        return [v for v in ordered if v["hash"].startswith(hash_prefix)]

    def versions(self, name: str) -> list[dict[str, Any]]:
        with self._lock:
            return self._ordered(name)

    def latest(self) -> list[tuple[dict[str, Any], int]]:
        with self._lock:
            names = sorted({v["name"] for v in self._versions})
            return [(self._ordered(n)[-1], len(self._ordered(n))) for n in names]

    def uses(self, name: str, content_hash: str) -> list[tuple[str, float]]:
        with self._lock:
            found = list(self._uses.get((name, content_hash), {}).items())
        order = sorted(range(len(found)), key=lambda i: (found[i][1], i))
        return [found[i] for i in order]


class MemoryRunCache(RunCache):
    """Run cache records in a dict."""

    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock
        self._records: dict[str, str] = {}

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            found = self._records.get(check_cache_key(key))
        return None if found is None else dict(json.loads(found))

    def put(self, key: str, record: Mapping[str, Any]) -> None:
        data = cache_record_json(key, record)
        with self._lock:
            self._records[check_cache_key(key)] = data

    def delete(self, key: str) -> bool:
        with self._lock:
            return self._records.pop(check_cache_key(key), None) is not None

    def list(self, prefix: str = "") -> dict[str, dict[str, Any]]:
        with self._lock:
            items = sorted((k, v) for k, v in self._records.items() if k.startswith(prefix))
        return {k: dict(json.loads(v)) for k, v in items}
