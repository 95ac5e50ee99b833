"""Content hashes of files and folders, with a stat cache so unchanged data is not re-read.

A folder's hash is ``dir:`` plus the digest of its manifest (``{"files": {relpath: sha256}}``),
the same manifest (:func:`nbops.hashing.manifest_bytes`) the blob store keeps for a folder,
so a folder out can be stored and restored by its hash alone.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from contextlib import closing
from pathlib import Path

from nbops.errors import NbopsError
from nbops.hashing import hash_file, manifest_bytes
from nbops.pipeline._ignore import IgnoreRules


class HashCache:
    """``path -> (size, mtime_ns, inode, sha256)``, kept in ``<store>/hashcache.sqlite``.

    Loaded whole at start (one query), and only the entries that changed are written back at
    :meth:`save` (one transaction): touching one file of 20,000 writes one row, not the whole
    cache. ``path`` names the cache file (an older ``hashcache.json`` is left unused).
    Thread-safe; several processes may share it (SQLite's own locking, last write wins).
    """

    def __init__(self, path: Path, ignore: IgnoreRules | None = None) -> None:
        self.path = path.with_suffix(".sqlite") if path.suffix == ".json" else path
        #: what folder hashes leave out (default patterns only when not given)
        self.ignore = ignore if ignore is not None else IgnoreRules.parse([])
        self._lock = threading.Lock()
        self._dirty: dict[str, tuple[int, int, int, str]] = {}
        self._entries: dict[str, tuple[int, int, int, str]] = {}
        try:
            with closing(self._connect()) as db:
                rows = db.execute("SELECT path, size, mtime_ns, inode, digest FROM hashes")
                self._entries = {row[0]: (row[1], row[2], row[3], row[4]) for row in rows}
        except sqlite3.Error:
            self._entries = {}

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=30)
        db.execute(
            "CREATE TABLE IF NOT EXISTS hashes (path TEXT PRIMARY KEY, size INTEGER, "
            "mtime_ns INTEGER, inode INTEGER, digest TEXT) WITHOUT ROWID"
        )
        return db

    def file_hash(self, file: Path) -> str:
        """The sha256 of ``file``, read only when its size, mtime or inode changed."""
        key = os.path.abspath(file)
        st = os.stat(key)
        with self._lock:
            cached = self._entries.get(key)
        if cached is not None and cached[:3] == (st.st_size, st.st_mtime_ns, st.st_ino):
            return cached[3]
        digest, _ = hash_file(file)
        entry = (st.st_size, st.st_mtime_ns, st.st_ino, digest)
        with self._lock:
            self._entries[key] = entry
            self._dirty[key] = entry
        return digest

    def save(self) -> None:
        """Write the entries that changed (a lost cache only costs re-reading files)."""
        with self._lock:
            dirty, self._dirty = self._dirty, {}
        if not dirty:
            return
        try:
            with closing(self._connect()) as db, db:
                db.executemany(
                    "INSERT OR REPLACE INTO hashes VALUES (?, ?, ?, ?, ?)",
                    [(k, *v) for k, v in dirty.items()],
                )
        except sqlite3.Error:
            pass


class SymlinkLoopError(NbopsError):
    """A symlinked folder inside a dep or out points back at one of its parents."""


def tree_files(path: Path, ignore: IgnoreRules) -> list[tuple[str, Path]]:
    """``(relative posix path, file)`` of every file under ``path``, sorted, ignored ones left
    out. Symlinked folders are followed; one that loops back raises :class:`SymlinkLoopError`."""
    at = ignore.relative(path)
    outer = "" if at in (None, ".") else f"{at}/"
    found: list[tuple[str, Path]] = []
    # the real folders on the way down to each walked folder: a link to one of them loops
    chains: dict[str, tuple[str, ...]] = {os.fspath(path): (os.path.realpath(path),)}
    for root, dirs, files in os.walk(path, followlinks=True):
        base = Path(root)
        chain = chains.pop(root, (os.path.realpath(root),))
        for d in dirs:
            target = os.path.realpath(base / d)
            chains[os.path.join(root, d)] = (*chain, target)
            if (base / d).is_symlink() and any(
                c == target or c.startswith(target + os.sep) for c in chain
            ):
                raise SymlinkLoopError(
                    f"{base / d} is a symlink back to a folder already inside {path}; "
                    "remove the link or list it in .nbopsignore"
                )
        rel_root = base.relative_to(path).as_posix()
        prefix = "" if rel_root == "." else rel_root + "/"
        dirs[:] = sorted(d for d in dirs if not ignore.ignored(outer + prefix + d, is_dir=True))
        for name in sorted(files):
            file = base / name
            rel = prefix + name
            if ignore.ignored(outer + rel, is_dir=False) or (
                file.is_symlink() and not file.exists()
            ):
                continue
            found.append((rel, file))
    found.sort()
    return found


def folder_manifest(path: Path, cache: HashCache) -> dict[str, str]:
    """``{relative path: sha256}`` of the files of a folder (ignored files left out)."""
    return {rel: cache.file_hash(file) for rel, file in tree_files(path, cache.ignore)}


def path_hash(path: Path, cache: HashCache) -> str | None:
    """Hash a file, or a folder (``dir:`` + the sha256 of its manifest, as
    :func:`nbops.hashing.tree_hash`, less ignored files); None if missing."""
    if path.is_file():
        return cache.file_hash(path)
    if not path.is_dir():
        return None
    data = manifest_bytes(folder_manifest(path, cache))
    return "dir:" + hashlib.sha256(data).hexdigest()
