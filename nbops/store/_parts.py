"""The model, dataset and run-cache parts of a store: interfaces and their JSON records.

Records cross this boundary as plain JSON-ready dicts, so the packages above (registry, data,
pipeline) own their record classes and can add fields without a schema change: a model
version's fields beyond :data:`MODEL_FIELDS` are kept as they are, in an extension document.
"""

from __future__ import annotations

import abc
import json
import time
from collections.abc import Mapping
from typing import Any

from nbops.errors import InvalidValueError, NotFoundError

#: The fields every model version has (``trusted_types`` a list, ``lineage`` a dict).
MODEL_FIELDS = (
    "name",
    "version",
    "digest",
    "size",
    "format",
    "trusted_types",
    "model_class",
    "task",
    "run_id",
    "created_at",
    "created_by",
    "lineage",
)
#: The fields of an alias move.
ALIAS_MOVE_FIELDS = ("name", "alias", "version", "previous", "moved_by", "moved_at", "reason")
#: The fields of a dataset version (``schema`` and ``stats`` dicts or None).
DATASET_FIELDS = (
    "name",
    "hash",
    "kind",
    "object",
    "size",
    "rows",
    "files",
    "schema",
    "stats",
    "source",
    "created_at",
    "run_id",
)


#: The extension field holding a version's history, appended by ``ModelStore.update_version``.
EVENTS_FIELD = "events"


def merge_model_extra(
    extra: Mapping[str, Any],
    fields: Mapping[str, Any],
    event: Mapping[str, Any] | None,
    merge: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """A version's extension fields with ``fields`` set, the mappings of ``merge`` merged into
    theirs (a ``None`` value removes that entry) and ``event`` appended to its history.

    Backends call this inside the transaction that read ``extra``; a fixed field raises.
    """
    fixed = sorted((set(fields) | set(merge or {})) & {*MODEL_FIELDS, EVENTS_FIELD})
    if fixed:
        raise InvalidValueError(f"cannot change {', '.join(fixed)} of a model version")
    merged = {**extra, **fields}
    for key, changes in (merge or {}).items():
        current = merged.get(key)
        updated = {**(current if isinstance(current, Mapping) else {}), **changes}
        merged[key] = {k: v for k, v in updated.items() if v is not None}
    if event is not None:
        merged[EVENTS_FIELD] = [*(extra.get(EVENTS_FIELD) or []), dict(event)]
    return merged


def alias_move(
    name: str,
    alias: str,
    version: int,
    previous: int | None,
    moved_by: str,
    reason: str | None,
    moved_at: float | None = None,
) -> dict[str, Any]:
    """The record of an alias move (``version`` 0: the alias removed); ``moved_at`` defaults
    to now."""
    when = time.time() if moved_at is None else moved_at
    values = (name, alias, version, previous, moved_by, when, reason)
    return dict(zip(ALIAS_MOVE_FIELDS, values, strict=True))


def missing_version(name: str, version: int) -> NotFoundError:
    """The error for an alias pointed at a version that does not exist."""
    return NotFoundError(
        f"no model {name!r} version {version}; list versions with `nbops models show {name}`"
    )


def check_cache_key(key: str) -> str:
    """``key`` when it is a valid run cache key (a non-empty string); else raise."""
    if not isinstance(key, str) or not key:
        raise InvalidValueError(f"invalid run cache key {key!r}: give a non-empty string")
    return key


def cache_record_json(key: str, record: Mapping[str, Any]) -> str:
    """A run cache record as strict JSON; a bad key or a non-JSON record raises."""
    check_cache_key(key)
    try:
        return json.dumps(dict(record), sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidValueError(
            f"the run cache record for {key!r} is not JSON ({exc}); store strings, numbers, "
            "lists and dicts"
        ) from exc


class ModelStore(abc.ABC):
    """Registered model versions (numbered 1, 2, ... per name), aliases and alias moves.

    Contract (checked by :class:`nbops.testing.ModelConformance`):

    * **Processes and threads** as for runs: concurrent :meth:`add_version` calls on one name
      from any number of processes get distinct, consecutive numbers; nothing is lost.
    * **Durability.** Returned writes survive the death of the process.
    * **Unknown names and versions.** Reads return ``None`` or an empty list; :meth:`move_alias`
      and :meth:`update_version` of a missing version raise :class:`NotFoundError`.
    * **Extension fields.** Keys of a version beyond :data:`MODEL_FIELDS` (JSON values) are
      stored and returned as given; :meth:`update_version` merges such keys.
    * **Version history.** :meth:`update_version` appends its ``event`` to the version's
      ``events`` list in the same transaction as the merge, so concurrent changes from any number
      of processes keep every event (none is lost to a read-modify-write race); the list can only
      grow this way. Its ``merge`` mappings are merged in the same transaction, so concurrent
      tag changes keep each other's keys.
    * **History.** Alias moves are never deleted: the alias table is the last move of each alias;
      a removed alias is recorded as a move to version ``0`` (versions are numbered from 1).
    * Validation of names belongs to the caller (the registry).
    """

    @abc.abstractmethod
    def add_version(self, fields: Mapping[str, Any], *, version: int | None = None) -> int:
        """Insert ``fields`` as the next version of ``fields['name']``; return its number.

        ``version`` inserts that number instead (copying a store); an existing one raises
        :class:`StoreError`.
        """

    @abc.abstractmethod
    def get_version(self, name: str, version: int | None = None) -> dict[str, Any] | None:
        """One version (default: the highest), or ``None``."""

    @abc.abstractmethod
    def versions(self, name: str) -> list[dict[str, Any]]:
        """Every version of ``name``, oldest first."""

    @abc.abstractmethod
    def names(self) -> list[tuple[dict[str, Any], int]]:
        """For each model name, by name: its latest version and its number of versions."""

    @abc.abstractmethod
    def update_version(
        self,
        name: str,
        version: int,
        fields: Mapping[str, Any],
        *,
        event: Mapping[str, Any] | None = None,
        merge: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        """Set extension fields of a version, merge each mapping of ``merge`` into the one at
        its key (``None`` values remove entries: tags), and append ``event`` to its ``events``,
        all in one transaction (the fields of :data:`MODEL_FIELDS` and ``events`` are fixed)."""

    @abc.abstractmethod
    def aliases(self, name: str) -> dict[str, int]:
        """``{alias: version}`` of one model."""

    @abc.abstractmethod
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
        """Point ``alias`` at ``version`` and record the move in one transaction; return it."""

    @abc.abstractmethod
    def remove_alias(
        self,
        name: str,
        alias: str,
        moved_by: str,
        reason: str | None,
        *,
        moved_at: float | None = None,
    ) -> dict[str, Any]:
        """Remove ``alias`` and record it as a move to version ``0`` in one transaction.

        Raises :class:`NotFoundError` when the model has no such alias.
        """

    @abc.abstractmethod
    def alias_moves(self, name: str, alias: str | None = None) -> list[dict[str, Any]]:
        """The moves of one model's aliases (optionally one alias), oldest first."""


class DatasetStore(abc.ABC):
    """Dataset versions, keyed by ``(name, content hash)``, and the runs that used each.

    Contract (checked by :class:`nbops.testing.DatasetConformance`):

    * **Processes and threads** as for runs. Recording a version that exists keeps the first
      record (its ``created_at`` and ``run_id``) and only adds the use.
    * **Durability.** Returned writes survive the death of the process.
    * **Unknown names and hashes** give ``None`` or empty lists; validation of names belongs to
      the caller (the data package).
    * Versions of one name are ordered by ``created_at`` then insertion.
    """

    @abc.abstractmethod
    def record(self, fields: Mapping[str, Any], run_id: str | None, used_at: float) -> None:
        """Add a version (kept as first seen) and, with a ``run_id``, its use by that run."""

    @abc.abstractmethod
    def add_use(self, name: str, content_hash: str, run_id: str, used_at: float) -> None:
        """Note that ``run_id`` used a version (once per run)."""

    @abc.abstractmethod
    def find_hash(self, content_hash: str) -> dict[str, Any] | None:
        """Any version with this content hash, under any name."""

    @abc.abstractmethod
    def find(self, name: str, hash_prefix: str | None = None) -> list[dict[str, Any]]:
        """The versions of ``name`` whose hash starts with ``hash_prefix``; without one, the
        latest version only (an empty list when there is none)."""

    @abc.abstractmethod
    def versions(self, name: str) -> list[dict[str, Any]]:
        """Every version of ``name``, oldest first."""

    @abc.abstractmethod
    def latest(self) -> list[tuple[dict[str, Any], int]]:
        """For each dataset name, by name: its latest version and its number of versions."""

    @abc.abstractmethod
    def uses(self, name: str, content_hash: str) -> list[tuple[str, float]]:
        """``(run_id, used_at)`` of every run that used a version, in time order."""


class RunCache(abc.ABC):
    """The pipeline run cache: one JSON document per stage fingerprint.

    Contract (checked by :class:`nbops.testing.RunCacheConformance`):

    * Keys are non-empty strings (a stage fingerprint); records are JSON objects.
    * :meth:`put` replaces the record of a key atomically; concurrent writers of one key leave
      one of the records whole. Writes are durable when they return.
    * An unknown key gives ``None`` from :meth:`get` and ``False`` from :meth:`delete`.
    """

    @abc.abstractmethod
    def get(self, key: str) -> dict[str, Any] | None:
        """The record stored under ``key``."""

    @abc.abstractmethod
    def put(self, key: str, record: Mapping[str, Any]) -> None:
        """Store ``record`` under ``key``, replacing any earlier one."""

    @abc.abstractmethod
    def delete(self, key: str) -> bool:
        """Remove ``key``; return whether it was there."""

    @abc.abstractmethod
    def list(self, prefix: str = "") -> dict[str, dict[str, Any]]:
        """Every record whose key starts with ``prefix``, by key."""
