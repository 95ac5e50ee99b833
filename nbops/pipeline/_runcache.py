"""The run cache: what a stage produced for a given fingerprint (code, params, deps, kernel).

A record says which outs (by hash), metrics and executed notebook (a blob) a stage execution
with exactly these inputs produced, and which run it was. With the outs' blobs at hand, a stage
whose fingerprint is in the cache is restored instead of run, in this checkout or another one
that pulled the cache from a remote.

Records are JSON files ``<store>/runcache/<key>.json``, written atomically; a record is never
changed once written except by a newer execution of the same fingerprint. This class is the
one seam the rest of the pipeline uses, so another backend can replace it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nbops.fileio import write_atomic

_KEY = re.compile(r"^[0-9a-f]{64}$")


class RunCache:
    """Records keyed by a stage fingerprint (a sha256 hex string)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        if not _KEY.match(key):
            raise ValueError(f"not a run cache key: {key!r}")
        return self.root / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        """The record for ``key``, or None (also for an unreadable record)."""
        try:
            data = json.loads(self._path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def put(self, key: str, record: dict[str, Any]) -> None:
        """Store ``record`` under ``key`` (atomically)."""
        write_atomic(self._path(key), json.dumps(record, sort_keys=True, indent=1) + "\n")

    def delete(self, key: str) -> bool:
        """Remove a record; True when there was one."""
        try:
            self._path(key).unlink()
        except FileNotFoundError:
            return False
        return True

    def all_keys(self) -> Iterator[str]:
        """Every key held."""
        if not self.root.is_dir():
            return
        for path in sorted(self.root.glob("*.json")):
            if _KEY.match(path.stem):
                yield path.stem

    def file_of(self, key: str) -> Path:
        """Where the record for ``key`` lives (remotes copy it as it is)."""
        return self._path(key)
