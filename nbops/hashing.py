"""Content hashes (sha256): files, folders and notebook code. One scheme for each, tree-wide.

* :func:`hash_file`: a file's bytes, read in chunks.
* :func:`tree_hash`: a folder, as the sha256 of its manifest (:func:`manifest_bytes`), the same
  bytes the object store keeps for a folder artifact or dataset, so a folder's hash is its
  content address wherever nbops computes it.
* :func:`code_hash`: notebook code, trailing whitespace of each source ignored; of one cell
  (``code_hash([source])``) or of a notebook's code cells in order.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

_CHUNK = 1 << 20


def hash_file(path: str | os.PathLike[str]) -> tuple[str, int]:
    """Return ``(sha256 hex digest, size)`` of a file, read in chunks."""
    sha = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            sha.update(chunk)
            size += len(chunk)
    return sha.hexdigest(), size


def tree_files(root: str | os.PathLike[str], *, follow_symlinks: bool = False) -> Iterator[Path]:
    """Every regular file under ``root``, in sorted order of relative path.

    Args:
        root: The folder.
        follow_symlinks: Include links to files (pipelines: a linked data file is a dependency).
            By default links are skipped, so nothing outside ``root`` is read or stored.
    """
    base = Path(root)
    for path in sorted(base.rglob("*"), key=lambda p: p.relative_to(base).as_posix()):
        if path.is_symlink() and not follow_symlinks:
            continue
        if path.is_file():
            yield path


def manifest_bytes(files: Mapping[str, str]) -> bytes:
    """The canonical manifest of a folder: ``{"files": {relative posix path: sha256}}``."""
    return json.dumps({"files": dict(files)}, sort_keys=True).encode()


def tree_hash(
    root: str | os.PathLike[str],
    *,
    file_hash: Callable[[Path], str] | None = None,
    follow_symlinks: bool = False,
) -> str:
    """Return the sha256 of a folder's manifest (see :func:`manifest_bytes`).

    Args:
        root: The folder.
        file_hash: How to hash one file (a cached one, say); default :func:`hash_file`.
        follow_symlinks: As in :func:`tree_files`.
    """
    base = Path(root)
    digest_of = file_hash or (lambda p: hash_file(p)[0])
    files = {
        path.relative_to(base).as_posix(): digest_of(path)
        for path in tree_files(base, follow_symlinks=follow_symlinks)
    }
    return hashlib.sha256(manifest_bytes(files)).hexdigest()


def code_hash(sources: Iterable[str]) -> str:
    """Hash code sources in order; trailing whitespace of each is ignored.

    Each source is length-prefixed, so ``["a", "b"]`` and ``["ab"]`` differ. Used for one cell
    (``code_hash([source])``: saved and executed cells compare) and for a notebook's code cells
    (the pipeline cache key: outputs, metadata and markdown do not count).
    """
    if isinstance(sources, str):
        raise TypeError("code_hash takes a list of sources; for one cell: code_hash([source])")
    digest = hashlib.sha256()
    for source in sources:
        data = source.rstrip().encode()
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()
