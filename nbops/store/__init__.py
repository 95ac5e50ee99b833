"""Persistence: one backend per project holding runs, models, datasets, the run cache and blobs.

:func:`open_store` returns the project's backend, chosen by URL (``$NBOPS_STORE``: default the
SQLite folder ``.nbops``; ``postgresql://...`` for a team; ``memory://`` for scratch). The run
methods are on the store itself; the other parts are ``store.blobs``, ``store.models``,
``store.datasets`` and ``store.run_cache``. Each interface's docstring states its contract;
:mod:`nbops.testing` holds the suites that check a backend honours them.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from nbops.config import store_url
from nbops.hashing import hash_file
from nbops.store._address import StoreAddress, store_address
from nbops.store._backends import (
    backend_schemes,
    open_backend,
    open_blobs,
    register_backend,
    register_blob_store,
    store_env,
)
from nbops.store._base import (
    FINAL_STATUSES,
    RUN_STATUSES,
    ArtifactRecord,
    MetricPoint,
    RunRecord,
    RunRow,
    RunStore,
)
from nbops.store._blobs import BlobStore
from nbops.store._memory import MemoryStore
from nbops.store._migrate import CopyReport, copy_store, run_digest
from nbops.store._objects import ObjectStore
from nbops.store._parts import (
    ALIAS_MOVE_FIELDS,
    DATASET_FIELDS,
    MODEL_FIELDS,
    DatasetStore,
    ModelStore,
    RunCache,
)
from nbops.store._query import DELETED_KEY, Condition, RunQuery, make_query, parse_condition
from nbops.store._references import (
    busy_since,
    object_contents,
    outs_contents,
    store_references,
    unreferenced_blobs,
)
from nbops.store._sqlite import SQLiteStore

__all__ = [
    "ALIAS_MOVE_FIELDS",
    "DATASET_FIELDS",
    "DELETED_KEY",
    "FINAL_STATUSES",
    "MODEL_FIELDS",
    "RUN_STATUSES",
    "ArtifactRecord",
    "BlobStore",
    "Condition",
    "CopyReport",
    "DatasetStore",
    "MemoryStore",
    "MetricPoint",
    "ModelStore",
    "ObjectStore",
    "RunCache",
    "RunQuery",
    "RunRecord",
    "RunRow",
    "RunStore",
    "SQLiteStore",
    "StoreAddress",
    "backend_schemes",
    "busy_since",
    "copy_store",
    "hash_file",
    "make_query",
    "object_contents",
    "open_backend",
    "open_blobs",
    "open_store",
    "outs_contents",
    "parse_condition",
    "register_backend",
    "register_blob_store",
    "run_digest",
    "store_address",
    "store_env",
    "store_references",
    "unreferenced_blobs",
]

_open: dict[str, RunStore] = {}
_lock = threading.Lock()


def open_store(
    where: RunStore | str | os.PathLike[str] | None = None, *, blobs: str | None = None
) -> RunStore:
    """Return the store at ``where``, one instance per process, URL and ``blobs``.

    Args:
        where: A store (returned as it is, so every ``store=`` argument of the public API takes
            a store, a URL or a folder), a URL (``sqlite:///FOLDER``, ``postgresql://...``,
            ``memory://NAME``), a folder (a SQLite store), or None for the project's store:
            ``$NBOPS_STORE``, else the folder :func:`nbops.config.store_path`.
        blobs: The URL of the store's blobs, instead of ``$NBOPS_BLOBS`` or the backend's
            default (a worker opening the coordinator's store, :class:`StoreAddress`).
    """
    if isinstance(where, RunStore):
        return where
    if where is None:
        url = store_url()
    else:
        text = os.fspath(where)
        url = text if "://" in text else f"sqlite://{Path(text).expanduser().absolute()}"
    key = url if blobs is None else f"{url}\n{blobs}"
    with _lock:
        store = _open.get(key)
        if store is None:
            store = _open[key] = open_backend(url, blobs)
        return store
