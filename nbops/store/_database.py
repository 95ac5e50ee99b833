"""The store's SQLite database ``runs.db``: WAL mode, one connection per thread, transactions."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from nbops.errors import StoreError


class SQLiteDatabase:
    """Tables of one part of nbops (runs, datasets, models) in ``<store>/runs.db``.

    The schema (``CREATE ... IF NOT EXISTS``) runs on each new connection.

    One connection per thread; :meth:`write` runs its block in a ``BEGIN IMMEDIATE``
    transaction, so a read-then-insert inside it (the next version number) is atomic across
    processes.
    """

    def __init__(
        self, store_dir: str | os.PathLike[str], schema: str, *, busy_timeout: float = 60.0
    ) -> None:
        self.db = Path(store_dir) / "runs.db"
        self._schema = schema
        self._busy_timeout = busy_timeout
        self._local = threading.local()

    def _con(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            try:
                self.db.parent.mkdir(parents=True, exist_ok=True)
                con = sqlite3.connect(
                    self.db,
                    timeout=self._busy_timeout,
                    isolation_level=None,
                    check_same_thread=False,
                )
                con.execute("PRAGMA journal_mode=WAL")
                con.execute("PRAGMA synchronous=NORMAL")
                con.executescript(f"BEGIN IMMEDIATE; {self._schema} COMMIT;")
            except sqlite3.Error as exc:
                raise StoreError(
                    f"cannot open the store database {self.db}: {exc}; set NBOPS_HOME to a "
                    "writable folder if this one is not"
                ) from exc
            self._local.con = con
        return con

    def read(self) -> sqlite3.Connection:
        """The connection, for reads."""
        return self._con()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction, committed when the block ends and rolled back on error."""
        con = self._con()
        try:
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot write to {self.db}: {exc}") from exc

    def close(self) -> None:
        """Close this thread's connection."""
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None
