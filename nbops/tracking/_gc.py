"""Deleting runs: marking them deleted (hidden from listings), then purging their rows.

Their blobs are ``nbops gc``'s (:func:`nbops.pipeline.gc`): it frees what no owner refers to.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from nbops.errors import StoreError
from nbops.store import DELETED_KEY, RunStore, make_query, object_contents, open_store


@dataclass(frozen=True)
class PurgedRuns:
    """The deleted runs whose rows were (or, in a dry run, would be) removed, and the blobs
    their artifacts referred to (some may be shared with other owners)."""

    runs: tuple[str, ...]
    blobs: frozenset[str]


def delete_runs(run_ids: Sequence[str], *, store: RunStore | str | None = None) -> list[str]:
    """Mark runs deleted (ids or unique prefixes): listings hide them, ``nbops gc`` removes them.

    Every id is checked before any run is marked; a running run is refused.
    """
    target = open_store(store)
    records = [target.get_run(target.resolve_id(run_id)) for run_id in run_ids]
    running = [r.id for r in records if r.status == "running"]
    if running:
        raise StoreError(f"run {running[0]} is running; finish it before deleting it")
    for record in records:
        target.set_metadata(record.id, DELETED_KEY, {"at": time.time()})
    return [r.id for r in records]


def purge_deleted_runs(*, store: RunStore | str | None = None, dry_run: bool = False) -> PurgedRuns:
    """Remove the rows of runs marked deleted (not their blobs); ``dry_run`` only lists them."""
    target = open_store(store)
    deleted = [r for r in target.list_runs(query=make_query(deleted=True)) if r.status != "running"]
    blobs: set[str] = set()
    for record in deleted:
        for artifact in target.list_artifacts(record.id):
            blobs |= object_contents(target.blobs, artifact.digest, artifact.kind == "dir")
    if not dry_run:
        for record in deleted:
            target.purge_run(record.id)
    return PurgedRuns(tuple(r.id for r in deleted), frozenset(blobs))
