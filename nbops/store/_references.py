"""What in the store refers to blobs: the half of ``nbops gc`` the store can answer alone.

Owners: runs not marked deleted (their artifacts), model versions, dataset versions and the
pipeline run cache (outs and executed notebooks). A folder object brings the files its
manifest lists. The project's ``nbops.lock`` is the pipeline's to add (``nbops.pipeline.gc``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Iterable, Iterator
from typing import Any

from nbops.errors import NbopsError
from nbops.store._base import RunStore
from nbops.store._blobs import BlobStore
from nbops.store._query import make_query

logger = logging.getLogger(__name__)

#: a blob smaller than this may be a folder manifest when its kind is unknown
_MANIFEST_MAX = 4 * 2**20


def object_contents(blobs: BlobStore, digest: str, folder: bool | None) -> set[str]:
    """``digest``, and when it is a folder object (or may be one: ``None``) its files."""
    found = {digest}
    if folder is False or not blobs.exists(digest):
        return found
    if folder is None and blobs.path_of(digest).stat().st_size > _MANIFEST_MAX:
        return found  # too big to be a manifest: a model file
    try:
        found.update(blobs.read_manifest(digest).values())
    except (ValueError, KeyError, TypeError, UnicodeDecodeError, NbopsError):
        if folder:
            logger.warning("nbops gc: folder object %s has no readable manifest", digest)
    return found


def outs_contents(blobs: BlobStore, outs: Iterable[str]) -> set[str]:
    """The blobs of pipeline out digests (``dir:<manifest>`` for a folder out)."""
    found: set[str] = set()
    for digest in outs:
        folder = digest.startswith("dir:")
        found |= object_contents(blobs, digest[4:] if folder else digest, folder)
    return found


def store_references(store: RunStore, *, cache_keys: Collection[str] | None = None) -> set[str]:
    """Every blob the store's records refer to; of the run cache only ``cache_keys`` count
    (default: every record), so a caller can ask what is referenced once others are dropped."""
    blobs = store.blobs
    found: set[str] = set()
    for record in store.list_runs(query=make_query(deleted=False)):
        for artifact in store.list_artifacts(record.id):
            found |= object_contents(blobs, artifact.digest, artifact.kind == "dir")
    for first, _ in store.models.names():
        for version in store.models.versions(str(first["name"])):
            found |= object_contents(blobs, str(version["digest"]), None)
    for first, _ in store.datasets.latest():
        for version in store.datasets.versions(str(first["name"])):
            found |= object_contents(blobs, str(version["object"]), version.get("kind") == "dir")
    for key, cached in store.run_cache.list().items():
        if cache_keys is not None and key not in cache_keys:
            continue
        found |= outs_contents(blobs, ((cached.get("entry") or {}).get("outs") or {}).values())
        if cached.get("executed"):
            found.add(str(cached["executed"]))
    return found


def busy_since(store: RunStore) -> float:
    """The start of the oldest run still ``running`` (now when none is): blobs written since
    may belong to an artifact not recorded yet."""
    starts = [r.start_time for r in store.list_runs(query=make_query(status="running"))]
    return min([time.time(), *starts])


def unreferenced_blobs(
    blobs: BlobStore, referenced: Collection[str], *, written_before: float
) -> Iterator[tuple[str, int]]:
    """``(digest, size)`` of each stored blob outside ``referenced`` last written before
    ``written_before`` (a POSIX time; newer blobs may be in the middle of being recorded)."""
    for digest in blobs.digests():
        if digest in referenced:
            continue
        try:
            stat: Any = blobs.path_of(digest).stat()
        except FileNotFoundError:
            continue
        if stat.st_mtime < written_before:
            yield digest, int(stat.st_size)
