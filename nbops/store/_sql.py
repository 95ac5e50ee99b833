"""What the SQL backends (SQLite and PostgreSQL) share: the database they run statements on.

Statements shared by both are written once, with ``?`` placeholders, and run through a
:class:`SQLDatabase`, which each backend's connection class is. What differs between the two
dialects is named by the database: the column keeping insertion order, the collation that
compares strings byte-wise, row locks and advisory locks.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol


class SQLCursor(Protocol):
    """The DB-API cursor methods the parts use (``?`` placeholders)."""

    @property
    def rowcount(self) -> int:
        """Rows changed by the last statement."""

    def execute(self, sql: str, args: Sequence[Any] = ..., /) -> Any:
        """Run one statement."""

    def fetchone(self) -> Any:
        """The next row, or ``None``."""

    def fetchall(self) -> list[Any]:
        """The remaining rows."""


class SQLDatabase(Protocol):
    """A database the SQL parts run on: reads, write transactions and the dialect's words."""

    #: Where the database is, for messages (no password).
    shown: str
    #: The column that orders rows by insertion (``rowid``, ``seq``).
    insertion_order: str
    #: A collation comparing strings byte-wise, as `` COLLATE "C"`` (empty: the default does).
    binary_collation: str
    #: Appended to a SELECT that must lock the rows it reads until the transaction ends.
    lock_rows: str

    def reading(self) -> AbstractContextManager[SQLCursor]:
        """A cursor for reads."""

    def writing(self, lock: str | None = None) -> AbstractContextManager[SQLCursor]:
        """A cursor in a write transaction, committed when the block ends; ``lock`` names a
        lock held until then, so writers of one name wait for each other on any host."""
