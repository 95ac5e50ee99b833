"""Connections to the PostgreSQL server of a store: one per thread, transactions, errors."""

from __future__ import annotations

import functools
import os
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from nbops.deps import require
from nbops.errors import StoreError
from nbops.store._base import redact_url

_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def split_url(url: str) -> tuple[str, str | None]:
    """``(libpq URL, schema)``: nbops' own ``schema=`` query parameter taken out."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((v for k, v in query if k == "schema"), None)
    if schema is not None and not _SCHEMA_NAME.fullmatch(schema):
        raise StoreError(f"invalid schema name {schema!r} in the store URL: use letters, digits, _")
    rest = urlencode([(k, v) for k, v in query if k != "schema"], quote_via=quote)
    scheme = "postgresql"
    return urlunsplit((scheme, parts.netloc, parts.path, rest, parts.fragment)), schema


def _psycopg2() -> Any:

    require("psycopg2.extras", feature="a PostgreSQL store")
    return require("psycopg2", feature="a PostgreSQL store")


class PostgresDatabase:
    """One connection per thread to the server, every one tracked so :meth:`close` closes all.

    :meth:`transaction` yields a cursor inside a transaction, committed when the block ends
    and rolled back on error; driver errors become :class:`StoreError` (without the password).
    ``setup`` runs once, in the first transaction (schema creation and migrations).
    The parts (models, datasets, run cache) use it as an ``SQLDatabase``: :meth:`reading`,
    :meth:`writing` and the dialect's words below.
    """

    #: The column ordering rows by insertion (a ``BIGSERIAL``).
    insertion_order = "seq"
    #: Byte-wise comparison of strings, as in SQLite, whatever the database's locale.
    binary_collation = ' COLLATE "C"'
    #: Rows read to be changed are locked until the transaction ends.
    lock_rows = " FOR UPDATE"

    def __init__(self, url: str, setup: Callable[[Any], None]) -> None:
        self.url = url
        self.shown = redact_url(url)
        self._dsn, self.schema = split_url(url)
        self.pg = _psycopg2()
        self._setup: Callable[[Any], None] | None = setup
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[Any] = []
        self._generation = 0
        self._pid = os.getpid()

    def _connect(self) -> Any:
        try:
            con = self.pg.connect(self._dsn, connect_timeout=20)
            with con.cursor() as cur:
                if self.schema is not None:
                    cur.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
                    cur.execute(f'SET search_path TO "{self.schema}"')
            con.commit()
        except self.pg.Error as exc:
            raise StoreError(
                f"cannot connect to the store at {self.shown}: {str(exc).strip()}; check "
                "NBOPS_STORE (postgresql://USER@HOST:PORT/DB) and that the server runs"
            ) from None
        return con

    def _forget_after_fork(self) -> None:
        """In a forked child, drop the parent's connections unclosed (closing would end the
        parent's sessions) and open fresh ones."""
        if os.getpid() != self._pid:
            self._pid = os.getpid()
            self._connections, self._local = [], threading.local()
            self._generation += 1

    def _con(self) -> Any:
        self._forget_after_fork()
        con = getattr(self._local, "con", None)
        if con is not None and self._local.generation == self._generation and not con.closed:
            return con
        con = self._connect()
        with self._lock:
            setup, self._setup = self._setup, None
            if setup is not None:
                try:
                    with con.cursor() as cur:
                        setup(cur)
                    con.commit()
                except BaseException:
                    self._setup = setup
                    con.close()
                    raise
            self._connections.append(con)
            self._local.con, self._local.generation = con, self._generation
        return con

    @contextmanager
    def transaction(self, *, snapshot: bool = False) -> Iterator[Any]:
        """A cursor in a transaction (``snapshot``: every read sees the same data)."""
        con = self._con()
        try:
            with con.cursor() as cur:
                if snapshot:
                    cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                try:
                    yield cur
                except BaseException:
                    con.rollback()
                    raise
            con.commit()
        except self.pg.Error as exc:
            if not con.closed:
                con.rollback()
            raise StoreError(f"cannot use the store at {self.shown}: {str(exc).strip()}") from exc

    @contextmanager
    def reading(self) -> Iterator[QmarkCursor]:
        """A cursor taking ``?`` placeholders, in a transaction."""
        with self.transaction() as cur:
            yield QmarkCursor(cur)

    @contextmanager
    def writing(self, lock: str | None = None) -> Iterator[QmarkCursor]:
        """A cursor taking ``?`` placeholders in a transaction; ``lock`` names an advisory
        lock held until it ends, so writers of one name take turns across hosts."""
        with self.transaction() as cur:
            if lock is not None:
                cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (lock,))
            yield QmarkCursor(cur)

    def execute_values(self, cur: Any, sql: str, rows: list[tuple[Any, ...]]) -> None:
        """Insert many rows in few statements."""
        self.pg.extras.execute_values(cur, sql, rows, page_size=1000)

    def close(self) -> None:
        """Close every thread's connection; a later use opens fresh ones."""
        with self._lock:
            connections, self._connections = self._connections, []
            self._generation += 1
        for con in connections:
            if not con.closed:
                con.close()
        self._local.con = None


@functools.lru_cache(maxsize=256)
def _format_style(sql: str) -> str:
    """``?`` placeholders as psycopg2's ``%s`` (literal ``%`` doubled)."""
    return sql.replace("%", "%%").replace("?", "%s")


class QmarkCursor:
    """A psycopg2 cursor that takes statements with ``?`` placeholders, as SQLite's does."""

    def __init__(self, cursor: Any) -> None:
        #: The driver's cursor, for what only PostgreSQL does (``COPY``, ``execute_values``).
        self.raw = cursor

    @property
    def rowcount(self) -> int:
        """Rows changed by the last statement."""
        return int(self.raw.rowcount)

    def execute(self, sql: str, args: Sequence[Any] = (), /) -> None:
        """Run one statement."""
        self.raw.execute(_format_style(sql), args)

    def fetchone(self) -> Any:
        """The next row, or ``None``."""
        return self.raw.fetchone()

    def fetchall(self) -> list[Any]:
        """The remaining rows."""
        return list(self.raw.fetchall())
