"""Content hashes of files and folders, with a stat cache so unchanged data is not re-read."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from nbops.fileio import write_atomic
from nbops.hashing import hash_file, tree_hash


class HashCache:
    """``(path, size, mtime_ns, inode) -> sha256``, kept in ``<store>/hashcache.json``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._dirty = False
        try:
            self._entries: dict[str, list[object]] = json.loads(path.read_text())
        except (OSError, ValueError):
            self._entries = {}

    def file_hash(self, file: Path) -> str:
        """The sha256 of ``file``, read only when its size, mtime or inode changed."""
        st = file.stat()
        key = str(file.resolve())
        stamp = [st.st_size, st.st_mtime_ns, st.st_ino]
        with self._lock:
            cached = self._entries.get(key)
        if cached is not None and cached[:3] == stamp:
            return str(cached[3])
        digest, _ = hash_file(file)
        with self._lock:
            self._entries[key] = [*stamp, digest]
            self._dirty = True
        return digest

    def save(self) -> None:
        """Write the cache if it changed (atomically; a lost cache only costs re-reading)."""
        with self._lock:
            if not self._dirty:
                return
            data = json.dumps(self._entries, sort_keys=True)
            self._dirty = False
        try:
            write_atomic(self.path, data)
        except OSError:
            pass


def path_hash(path: Path, cache: HashCache) -> str | None:
    """Hash a file, or a folder (:func:`nbops.hashing.tree_hash`, links followed); None if
    missing."""
    if path.is_file():
        return cache.file_hash(path)
    if not path.is_dir():
        return None
    return "dir:" + tree_hash(path, file_hash=cache.file_hash, follow_symlinks=True)
