"""A stage's declared outs: removed before it runs, kept in the object store after, restored
exactly from there."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from nbops.errors import NbopsError
from nbops.fileio import staged_dir, staged_file
from nbops.hashing import manifest_bytes
from nbops.pipeline._hashing import HashCache, tree_files
from nbops.store import BlobStore


class OutputError(NbopsError):
    """An out cannot be stored or restored."""


def remove_path(path: Path) -> None:
    """Remove a file, a symlink or a folder; a missing path is fine."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def clear_outs(root: Path, outs: Iterable[str]) -> None:
    """Remove the declared outs so the stage writes every one of them afresh (DVC semantics):
    a stage that stops writing an out fails instead of recording the old file."""
    for out in outs:
        remove_path(root / out)


def save_outs(root: Path, outs: Mapping[str, str], blobs: BlobStore, cache: HashCache) -> None:
    """Copy each out into ``blobs`` under the hash recorded for it (``dir:`` outs as a manifest
    plus their files). Raise :class:`OutputError` when an out changed since it was hashed."""
    for out, digest in outs.items():
        path = root / out
        if digest.startswith("dir:"):
            files: dict[str, str] = {}
            for rel, file in tree_files(path, cache.ignore):
                files[rel], _ = blobs.put_file(file)
            stored = "dir:" + blobs.put_bytes(manifest_bytes(files))
        else:
            stored, _ = blobs.put_file(path)
        if stored != digest:
            raise OutputError(f"out {out} changed while it was being stored; run the stage again")


def _blob_digests(digest: str, blobs: BlobStore) -> list[str] | None:
    """Every blob an out needs, or None when its manifest is not here."""
    if not digest.startswith("dir:"):
        return [digest]
    manifest = digest[4:]
    if not blobs.exists(manifest):
        return None
    return [manifest, *blobs.read_manifest(manifest).values()]


def missing_blobs(outs: Mapping[str, str], blobs: BlobStore) -> list[str]:
    """Digests of the blobs (or manifests) needed to restore ``outs`` that ``blobs`` lacks."""
    missing: list[str] = []
    for digest in outs.values():
        needed = _blob_digests(digest, blobs)
        if needed is None:
            missing.append(digest[4:])
            continue
        missing += [d for d in needed if not blobs.exists(d)]
    return missing


def _verified_copy(blob: Path, digest: str, target: Path, *, staged: bool = True) -> None:
    """Copy a blob out, checking its hash; ``staged=False`` writes ``target`` directly (it is
    inside a folder that appears whole, so a temporary name and an fsync per file buy nothing)."""
    if not staged:
        with open(blob, "rb") as src, open(target, "wb") as out:
            _copy_checked(src, out, digest, blob)
        return
    with staged_file(target.parent, prefix=f".{target.name}.") as tmp, open(blob, "rb") as src:
        _copy_checked(src, tmp, digest, blob)
        tmp.commit(target, mode=0o644)


def _copy_checked(src: BinaryIO, out: Any, digest: str, blob: Path) -> None:
    sha = hashlib.sha256()
    while chunk := src.read(1 << 20):
        sha.update(chunk)
        out.write(chunk)
    if sha.hexdigest() != digest:
        raise OutputError(f"cached object {digest[:12]} is corrupt; delete {blob} and re-run")


def restore_outs(root: Path, outs: Mapping[str, str], blobs: BlobStore) -> None:
    """Replace each out with exactly what was recorded: a folder out gets its recorded files
    and nothing else. Every blob is checked against its hash on the way out."""
    missing = missing_blobs(outs, blobs)
    if missing:
        raise OutputError(f"{len(missing)} object(s) of the outs are not in the local cache")
    for out, digest in outs.items():
        path = root / out
        path.parent.mkdir(parents=True, exist_ok=True)
        if not digest.startswith("dir:"):
            if path.is_dir() and not path.is_symlink():
                remove_path(path)
            _verified_copy(blobs.path_of(digest), digest, path)
            continue
        with staged_dir(path) as staging:  # the folder appears whole: no file needs staging
            for rel, blob in blobs.read_manifest(digest[4:]).items():
                target = staging / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                _verified_copy(blobs.path_of(blob), blob, target, staged=False)
