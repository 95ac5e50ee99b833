"""Backends and blob stores chosen by URL, from a small registry filled by entry points.

Like papermill's engines: built-in schemes are registered here; a package adds one by
declaring an entry point in the group ``nbops.store`` (for backends) or ``nbops.blobs`` (for
blob stores) whose name is the URL scheme and whose object is ``factory(url) -> store``. A
backend factory that also takes ``blobs=BlobStore`` can be opened with blobs given explicitly
(:class:`~nbops.store.StoreAddress`), not only through ``$NBOPS_BLOBS``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote, urlsplit

from nbops.errors import StoreError
from nbops.store._base import RunStore
from nbops.store._blobs import BlobStore

BackendFactory = Callable[..., RunStore]
BlobFactory = Callable[[str], BlobStore]

_backends: dict[str, BackendFactory] = {}
_blob_stores: dict[str, BlobFactory] = {}
_loaded: set[str] = set()
_lock = threading.Lock()


def register_backend(scheme: str, factory: BackendFactory) -> None:
    """Make ``NBOPS_STORE=<scheme>://...`` open stores with ``factory(url)``."""
    _backends[scheme.lower()] = factory


def register_blob_store(scheme: str, factory: BlobFactory) -> None:
    """Make ``NBOPS_BLOBS=<scheme>://...`` open blob stores with ``factory(url)``."""
    _blob_stores[scheme.lower()] = factory


def _load_entry_points(group: str, table: dict[str, Callable[[str], object]]) -> None:
    with _lock:
        if group in _loaded:
            return
        _loaded.add(group)
    from importlib.metadata import entry_points

    for entry in entry_points(group=group):
        table.setdefault(entry.name.lower(), entry.load())


def backend_schemes() -> list[str]:
    """Every URL scheme a store can be opened with (entry points included)."""
    _load_entry_points("nbops.store", _backends)  # type: ignore[arg-type]
    return sorted(_backends)


def _scheme(url: str) -> str:
    scheme, sep, _ = url.partition("://")
    return scheme.lower() if sep else ""


def open_backend(url: str, blobs: str | None = None) -> RunStore:
    """Open the store at ``url`` with the backend registered for its scheme; ``blobs`` (a
    blob store URL) overrides ``$NBOPS_BLOBS`` and the backend's default."""
    scheme = _scheme(url)
    if scheme not in _backends:
        _load_entry_points("nbops.store", _backends)  # type: ignore[arg-type]
    factory = _backends.get(scheme)
    if factory is None:
        raise StoreError(
            f"no store backend for {url!r}: use sqlite:///FOLDER, postgresql://USER@HOST/DB or "
            f"memory:// (known schemes: {', '.join(backend_schemes())})"
        )
    if blobs is None:
        return factory(url)
    return factory(url, blobs=open_blobs(blobs))


def store_env(store: RunStore) -> dict[str, str]:
    """The environment variables that make a child process (a kernel, a pipeline, a retrain)
    open ``store`` itself: ``NBOPS_STORE`` (its URL), ``NBOPS_BLOBS`` (its blob store) and
    ``NBOPS_HOME`` (its local folder, for caches and locks).

    Passed on to processes this one starts, never written anywhere.
    """
    from nbops.store._address import StoreAddress

    return {**StoreAddress(store.url, store.blobs.url).environ(), "NBOPS_HOME": str(store.path)}


def blobs_url_default(fallback: Path) -> str:
    """``$NBOPS_BLOBS``, or the folder ``fallback``, as a URL."""
    return os.environ.get("NBOPS_BLOBS") or fallback.absolute().as_uri()


def open_blobs(url: str | os.PathLike[str]) -> BlobStore:
    """Open a blob store: a ``file://`` URL or a plain folder, or a registered scheme."""
    text = os.fspath(url)
    scheme = _scheme(text)
    if scheme == "":
        return _folder_blobs(Path(text).expanduser().absolute().as_uri())
    if scheme not in _blob_stores:
        _load_entry_points("nbops.blobs", _blob_stores)  # type: ignore[arg-type]
    factory = _blob_stores.get(scheme)
    if factory is None:
        raise StoreError(
            f"no blob store for {text!r}: use a folder or file:///FOLDER "
            f"(known schemes: {', '.join(sorted(_blob_stores))})"
        )
    return factory(text)


def _folder_blobs(url: str) -> BlobStore:
    from nbops.store._objects import ObjectStore

    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise StoreError(f"cannot use blob folder {url!r}: a file:// URL names a local folder")
    return ObjectStore(Path(unquote(parts.path)))


def sqlite_path(url: str) -> Path:
    """The store folder of a ``sqlite:///FOLDER`` URL."""
    rest = url.split("://", 1)[1]
    if not rest or rest == "/":
        raise StoreError(f"invalid store URL {url!r}: use sqlite:///FOLDER (the store folder)")
    return Path(unquote(rest)).expanduser().absolute()


def _env_blobs(blobs: BlobStore | None) -> BlobStore | None:
    """``blobs``, else the blob store ``$NBOPS_BLOBS`` names, else None (the default)."""
    if blobs is not None:
        return blobs
    url = os.environ.get("NBOPS_BLOBS")
    return open_blobs(url) if url else None


def _sqlite(url: str, blobs: BlobStore | None = None) -> RunStore:
    from nbops.store._sqlite import SQLiteStore

    return SQLiteStore(sqlite_path(url), blobs=_env_blobs(blobs))


def _memory(url: str, blobs: BlobStore | None = None) -> RunStore:
    from nbops.store._memory import MemoryStore

    return MemoryStore(url.split("://", 1)[1], blobs=_env_blobs(blobs))


def _postgres(url: str, blobs: BlobStore | None = None) -> RunStore:
    from nbops.store._postgres import PostgresStore

    store: RunStore = PostgresStore(url, blobs=blobs)
    return store


register_backend("sqlite", _sqlite)
register_backend("memory", _memory)
register_backend("postgresql", _postgres)
register_backend("postgres", _postgres)
register_blob_store("file", _folder_blobs)
