"""A store as another process opens it (a Dask worker, a kernel, a copy writer).

The coordinator of a pipeline or a sweep names its store with :func:`store_address`; the
:class:`StoreAddress` travels (pickled) to the worker, which opens the same store with
:meth:`StoreAddress.open`, whatever the worker's own environment says, and hands
:meth:`StoreAddress.environ` to the processes it starts. Nothing changes ``os.environ``: a Dask
worker runs several tasks on threads of one process.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

from nbops.errors import StoreError
from nbops.store._base import RunStore, redact_url

#: Environment variables that name a store and its blobs.
STORE_ENV = "NBOPS_STORE"
BLOBS_ENV = "NBOPS_BLOBS"


@dataclass(frozen=True)
class StoreAddress:
    """The URL of a store and of its blobs, enough for another process to open it.

    Attributes:
        url: The store (``sqlite:///FOLDER``, ``postgresql://...``).
        blobs: Its blob store (``file:///FOLDER`` or a registered scheme).
        identity: The store's :attr:`RunStore.identity`: :meth:`open` refuses another store
            found at the same URL (a SQLite folder at the same path on another machine).
    """

    url: str
    blobs: str
    identity: str | None = None

    def open(self) -> RunStore:
        """The store, with these blobs (one instance per process, as :func:`open_store`).

        Raises:
            StoreError: This process does not see the store the address was taken from (a
                SQLite store that is missing here, or another one at the same path); nothing
                is created or written.
        """
        from nbops.store import open_store

        if self.identity is not None and self.url.startswith("sqlite:"):
            from nbops.store._backends import sqlite_path
            from nbops.store._sqlite import sqlite_identity

            folder = sqlite_path(self.url)
            found = sqlite_identity(folder)
            if found != self.identity:
                there = (folder / "runs.db").exists()
                what = "holds another store" if there else "is not there"
                raise StoreError(
                    f"the store {folder} {what} on this machine ({socket.gethostname()}), so "
                    "work sent here would be recorded where nobody looks: give every worker a "
                    "store they all reach (NBOPS_STORE=postgresql://...), or put the SQLite "
                    "store on a disk every worker mounts at the same path"
                )
        return open_store(self.url, blobs=self.blobs)

    def environ(self) -> dict[str, str]:
        """``NBOPS_STORE`` and ``NBOPS_BLOBS`` for a child process (a kernel, a helper)."""
        return {STORE_ENV: self.url, BLOBS_ENV: self.blobs}

    def __repr__(self) -> str:  # a URL may hold a password: keep it out of Dask's logs
        return f"StoreAddress({redact_url(self.url)!r}, {self.blobs!r})"


def store_address(store: RunStore | str | os.PathLike[str] | None = None) -> StoreAddress:
    """The address of ``store`` (default: this process's store), for a process elsewhere.

    A worker on another machine records into this store only if it reaches both URLs: a
    PostgreSQL server it can connect to, and blobs on a folder it sees at the same path (or a
    registered remote blob scheme); a SQLite store needs a shared disk.
    """
    from nbops.store import open_store

    opened = open_store(store)
    return StoreAddress(opened.url, opened.blobs.url, opened.identity)
