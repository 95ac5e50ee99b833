"""Deleting runs: marking them deleted (hidden from listings), then ``gc`` removing their rows
and the blobs nothing else refers to."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from nbops.errors import NbopsError, StoreError
from nbops.store import DELETED_KEY, BlobStore, RunStore, make_query, open_store

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunsGcResult:
    """What ``gc_runs`` removed (or, in a dry run, would remove)."""

    runs: tuple[str, ...]
    objects: int
    bytes_freed: int


def delete_runs(run_ids: Sequence[str], *, store: RunStore | str | None = None) -> list[str]:
    """Mark runs deleted (ids or unique prefixes): listings hide them, ``gc_runs`` removes them.

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


def gc_runs(
    *,
    store: RunStore | str | None = None,
    root: str | os.PathLike[str] | None = None,
    dry_run: bool = False,
) -> RunsGcResult:
    """Remove deleted runs' rows, and the blobs of their artifacts that nothing else refers to.

    Kept: blobs referred to by another run's artifacts, a model version, a dataset version, the
    pipeline run cache, or the project's ``nbops.lock`` (``root``, default the project root),
    including the files inside folder objects.
    """
    from nbops.config import find_project_root

    target = open_store(store)
    deleted = [r for r in target.list_runs(query=make_query(deleted=True)) if r.status != "running"]
    blobs = target.blobs
    candidates: set[str] = set()
    for record in deleted:
        for artifact in target.list_artifacts(record.id):
            candidates |= _with_contents(blobs, artifact.digest, artifact.kind == "dir")
    needed = _referenced(target, Path(root) if root is not None else find_project_root())
    doomed = sorted(d for d in candidates - needed if blobs.exists(d))
    freed = sum(blobs.path_of(d).stat().st_size for d in doomed)
    if not dry_run:
        for record in deleted:
            target.purge_run(record.id)
        freed = sum(blobs.remove(d) for d in doomed)
    return RunsGcResult(tuple(r.id for r in deleted), len(doomed), freed)


def _with_contents(blobs: BlobStore, digest: str, folder: bool | None) -> set[str]:
    """``digest``, and when it is a folder object (or may be: ``None``) its files' digests."""
    found = {digest}
    if folder is False or not blobs.exists(digest):
        return found
    if folder is None and blobs.path_of(digest).stat().st_size > 4 * 2**20:
        return found  # too big to be a manifest: a model file
    try:
        found.update(blobs.read_manifest(digest).values())
    except (ValueError, KeyError, TypeError, UnicodeDecodeError, NbopsError):
        if folder:
            logger.warning("nbops gc: folder object %s has no readable manifest", digest)
    return found


def _referenced(store: RunStore, root: Path) -> set[str]:
    blobs = store.blobs
    found: set[str] = set()
    for record in store.list_runs(query=make_query(deleted=False)):
        for artifact in store.list_artifacts(record.id):
            found |= _with_contents(blobs, artifact.digest, artifact.kind == "dir")
    for first, _ in store.models.names():
        for version in store.models.versions(str(first["name"])):
            found |= _with_contents(blobs, str(version["digest"]), None)
    for first, _ in store.datasets.latest():
        for version in store.datasets.versions(str(first["name"])):
            found |= _with_contents(blobs, str(version["object"]), version.get("kind") == "dir")
    outs: list[Iterable[str]] = []
    for cached in store.run_cache.list().values():
        outs.append(((cached.get("entry") or {}).get("outs") or {}).values())
        if cached.get("executed"):
            found.add(str(cached["executed"]))
    try:
        from nbops.pipeline import read_lock

        outs += [entry.outs.values() for entry in read_lock(root).values()]
    except NbopsError as exc:  # an unreadable lock: keep every blob rather than guess
        raise StoreError(f"cannot read the pipeline lock under {root} ({exc}); gc stopped") from exc
    for values in outs:
        for digest in values:
            folder = digest.startswith("dir:")
            found |= _with_contents(blobs, digest[4:] if folder else digest, folder)
    return found
