"""Run storage: the :class:`RunStore` interface, its SQLite backend and the object store."""

from __future__ import annotations

import os
import threading

from nbops.config import store_path
from nbops.hashing import hash_file
from nbops.store._base import (
    FINAL_STATUSES,
    RUN_STATUSES,
    ArtifactRecord,
    MetricPoint,
    RunRecord,
    RunStore,
)
from nbops.store._database import SQLiteDatabase
from nbops.store._objects import ObjectStore
from nbops.store._sqlite import SQLiteStore

__all__ = [
    "FINAL_STATUSES",
    "RUN_STATUSES",
    "ArtifactRecord",
    "MetricPoint",
    "ObjectStore",
    "RunRecord",
    "RunStore",
    "SQLiteDatabase",
    "SQLiteStore",
    "hash_file",
    "open_store",
]

_open: dict[str, SQLiteStore] = {}
_lock = threading.Lock()


def open_store(path: RunStore | str | os.PathLike[str] | None = None) -> RunStore:
    """Return the store at ``path`` (default: :func:`nbops.config.store_path`), one per process.

    A :class:`RunStore` passed in is returned as it is, so every ``store=`` argument of the
    public API takes a store or its folder.
    """
    if isinstance(path, RunStore):
        return path
    where = str(path if path is not None else store_path())
    with _lock:
        store = _open.get(where)
        if store is None:
            store = _open[where] = SQLiteStore(where)
        return store
