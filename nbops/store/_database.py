"""The SQLite database ``runs.db`` of a store: WAL mode, one connection per thread."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from nbops.errors import StoreError


class SQLiteDatabase:
    """``<store>/runs.db``, shared by every part of the SQLite backend.

    One connection per thread, every one of them tracked so :meth:`close` closes them all.
    :meth:`write` runs its block in a ``BEGIN IMMEDIATE`` transaction, so a read-then-insert
    inside it (the next version number) is atomic across processes. ``setup`` runs once, on the
    first connection, inside such a transaction (schema creation and migrations).

    The parts (models, datasets, run cache) use it as an ``SQLDatabase``: :meth:`reading`,
    :meth:`writing` and the dialect's words below.
    """

    #: The column ordering rows by insertion.
    insertion_order = "rowid"
    #: SQLite's default collation already compares strings byte-wise.
    binary_collation = ""
    #: ``BEGIN IMMEDIATE`` already holds the whole database for a write transaction.
    lock_rows = ""

    def __init__(
        self,
        store_dir: str | os.PathLike[str],
        setup: Callable[[sqlite3.Connection], None],
        *,
        busy_timeout: float = 60.0,
    ) -> None:
        self.db = Path(store_dir) / "runs.db"
        self.shown = str(store_dir)
        self._setup: Callable[[sqlite3.Connection], None] | None = setup
        self._busy_timeout = busy_timeout
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._generation = 0
        self._pid = os.getpid()
        self.statements = 0  # executed statements, counted only when ``count_statements`` is on
        self.count_statements = False

    def _connect(self) -> sqlite3.Connection:
        try:
            self.db.parent.mkdir(parents=True, exist_ok=True)
            con = sqlite3.connect(
                self.db,
                timeout=self._busy_timeout,
                isolation_level=None,
                check_same_thread=False,
            )
            self._use_wal(con)
            con.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as exc:
            raise StoreError(
                f"cannot open the store database {self.db}: {exc}; set NBOPS_HOME to a "
                "writable folder if this one is not"
            ) from exc
        if self.count_statements:
            con.set_trace_callback(self._count)
        return con

    def _use_wal(self, con: sqlite3.Connection) -> None:
        """Switch the database to WAL mode (once per file; later a read of the mode).

        While another process creates the file or switches its mode, SQLite answers "database
        is locked" at once, without waiting the busy timeout: several processes opening a new
        store together would fail. So the switch is retried until the busy timeout passes.
        """
        deadline = time.monotonic() + self._busy_timeout
        pause = 0.005
        while True:
            try:
                con.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                if time.monotonic() + pause > deadline:
                    con.close()
                    raise
            time.sleep(pause)
            pause = min(pause * 2, 0.1)

    def _count(self, _statement: str) -> None:
        self.statements += 1

    def _con(self) -> sqlite3.Connection:
        if os.getpid() != self._pid:  # a forked child: the parent's connections are not ours
            self._pid = os.getpid()
            self._connections, self._local = [], threading.local()
            self._generation += 1
        con: sqlite3.Connection | None = getattr(self._local, "con", None)
        if con is not None and self._local.generation == self._generation:
            return con
        con = self._connect()
        with self._lock:
            setup, self._setup = self._setup, None
            try:
                if setup is not None:
                    self._run_setup(con, setup)
            except BaseException:
                self._setup = setup
                con.close()
                raise
            self._connections.append(con)
            self._local.con, self._local.generation = con, self._generation
        return con

    def _run_setup(
        self, con: sqlite3.Connection, setup: Callable[[sqlite3.Connection], None]
    ) -> None:
        try:
            con.execute("BEGIN IMMEDIATE")
            try:
                setup(con)
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StoreError(
                f"cannot open the store database {self.db}: {exc}; set NBOPS_HOME to a "
                "writable folder if this one is not"
            ) from exc

    def read(self) -> sqlite3.Connection:
        """This thread's connection, for reads."""
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

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Cursor]:
        """A cursor for reads, on this thread's connection."""
        yield self._con().cursor()

    @contextmanager
    def writing(self, lock: str | None = None) -> Iterator[sqlite3.Cursor]:
        """A cursor in a write transaction (``lock`` is not needed: writers already take
        turns on the whole database)."""
        del lock
        with self.write() as con:
            yield con.cursor()

    def close(self) -> None:
        """Close every thread's connection; a later use opens fresh ones."""
        with self._lock:
            connections, self._connections = self._connections, []
            self._generation += 1
        for con in connections:
            con.close()
        self._local.con = None
