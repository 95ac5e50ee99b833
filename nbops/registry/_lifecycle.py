"""A version's life after registration: status, tags, archive, delete, alias removal.

Every change is recorded on the version (or, for aliases, in the alias history) with who made
it, when and why.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from nbops.errors import InvalidValueError, NotFoundError
from nbops.names import check_name
from nbops.registry._api import MODELS_KEY, StoreArg, _catalog, current_user
from nbops.registry._catalog import STATUSES, AliasMove, ModelVersion, VersionEvent, parse_model_ref
from nbops.store import open_store


def _version(catalog: Any, name: str, version: int) -> ModelVersion:
    found: ModelVersion = catalog.get(
        parse_model_ref(f"{check_name(name, 'model name')}:{int(version)}")
    )
    return found


def _event(action: str, reason: str | None, **detail: Any) -> VersionEvent:
    return VersionEvent(action, current_user(), time.time(), reason, detail)


def set_status(
    name: str, version: int, status: str, *, reason: str | None = None, store: StoreArg = None
) -> ModelVersion:
    """Mark a version ``candidate``, ``validated`` or ``rejected``, recording who, when, why.

    A version an alias points at cannot leave ``validated``: move or remove the alias first.
    """
    if status not in STATUSES:
        raise InvalidValueError(f"invalid status {status!r}: use one of {', '.join(STATUSES)}")
    catalog = _catalog(open_store(store))
    found = _version(catalog, name, version)
    if found.status == status:
        return found
    if found.aliases and status != "validated":
        raise InvalidValueError(
            f"model {found.ref} is {', '.join(found.aliases)}; move or remove the alias before "
            f"marking it {status}"
        )
    catalog.record(found, _event(f"status {found.status} -> {status}", reason), status=status)
    return _version(catalog, name, version)


def set_run_models_status(
    run_id: str, status: str, reason: str | None = None, *, store: StoreArg = None
) -> list[ModelVersion]:
    """Set the status of every model version a run registered (a pipeline stage's gate check).

    Versions already rejected stay rejected; an aliased version is left as it is.
    """
    target = open_store(store)
    changed = []
    for entry in target.get_metadata(run_id).get(MODELS_KEY) or []:
        catalog = _catalog(target)
        try:
            found = _version(catalog, entry["name"], entry["version"])
        except NotFoundError:
            continue
        if found.status == "rejected" or found.aliases:
            continue
        changed.append(set_status(found.name, found.version, status, reason=reason, store=target))
    return changed


def remove_alias(
    name: str, alias: str, *, reason: str | None = None, store: StoreArg = None
) -> AliasMove:
    """Remove ``name@alias``; the removal stays in the alias history (as a move to version 0)."""
    check_name(name, "model name")
    return _catalog(open_store(store)).remove_alias(name, alias, current_user(), reason)


def _refuse_if_aliased(found: ModelVersion, action: str) -> None:
    if found.aliases:
        aliases = ", ".join(f"{found.name}@{a}" for a in found.aliases)
        raise InvalidValueError(
            f"cannot {action} {found.ref}: {aliases} points at it; move or remove the alias "
            f"first (`nbops models alias --delete {found.name} ALIAS`)"
        )


def archive_version(
    name: str,
    version: int,
    *,
    reason: str | None = None,
    restore: bool = False,
    store: StoreArg = None,
) -> ModelVersion:
    """Archive a version (kept, loadable as NAME:VERSION, never "latest"); ``restore`` undoes it.

    Refused while an alias points at the version.
    """
    catalog = _catalog(open_store(store))
    found = _version(catalog, name, version)
    if not restore:
        _refuse_if_aliased(found, "archive")
    catalog.record(
        found, _event("restored" if restore else "archived", reason), archived=not restore
    )
    return _version(catalog, name, version)


def delete_version(
    name: str, version: int, *, reason: str | None = None, store: StoreArg = None
) -> ModelVersion:
    """Delete a version: its record stays as a tombstone (so its number is never reused and the
    deletion keeps who/when/why); it no longer resolves. Refused while an alias points at it.

    The file stays in the content-addressed object store, which other records may share.
    """
    catalog = _catalog(open_store(store))
    found = _version(catalog, name, version)
    _refuse_if_aliased(found, "delete")
    catalog.record(found, _event("deleted", reason), deleted=True)
    return found


def tag_version(
    name: str,
    version: int,
    tags: Mapping[str, str],
    *,
    remove: tuple[str, ...] = (),
    reason: str | None = None,
    store: StoreArg = None,
) -> ModelVersion:
    """Set ``tags`` (``{key: value}``) on a version and remove the keys in ``remove``."""
    for key in [*tags, *remove]:
        check_name(key, "tag name")
    catalog = _catalog(open_store(store))
    found = _version(catalog, name, version)
    changes: dict[str, str | None] = {k: str(v) for k, v in tags.items()}
    changes.update(dict.fromkeys(remove))
    detail = {"set": {k: str(v) for k, v in tags.items()}, "removed": list(remove)}
    catalog.record(found, _event("tagged", reason, **detail), tags=changes)
    return _version(catalog, name, version)
