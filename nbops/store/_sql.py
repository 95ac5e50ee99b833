"""What the SQL backends (SQLite and PostgreSQL) share: the database they run statements on.

Statements shared by both are written once, with ``?`` placeholders, and run through a
:class:`SQLDatabase`, which each backend's connection class is. What differs between the two
dialects is named by the database: the column keeping insertion order, the collation that
compares strings byte-wise, row locks and advisory locks.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from nbops.errors import InvalidValueError
from nbops.store._query import DELETED_KEY, OPERATORS, SORT_FIELDS, Condition, RunQuery


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


class RunQuerySQL(ABC):
    """A :class:`RunQuery` as SQL (``?`` placeholders): the WHERE, ORDER BY and LIMIT of a run
    listing. The statement's shape is written here once; a dialect's subclass says how it tests
    statuses, tags, parameters and metrics and how it orders rows."""

    def select(
        self, project: str | None, query: RunQuery | None, columns: str
    ) -> tuple[str, list[Any], bool]:
        """``(sql, args, reverse)``: the SELECT of matching runs; reverse the rows when
        ``reverse`` (the newest ``limit`` runs are selected newest first)."""
        query = query or RunQuery()
        args: list[Any] = []
        joins = ""
        field, key, descending = query.sort_key()
        if key is None and field not in SORT_FIELDS:
            raise InvalidValueError(f"cannot sort runs by {query.sort!r}")
        if key is not None:
            table = "last_metrics" if field == "metrics" else "params"
            joins = f" LEFT JOIN {table} s ON s.run_id = runs.id AND s.key = ?"
            args.append(key)
        where: list[str] = []
        if project is not None:
            where.append("runs.project = ?")
            args.append(project)
        if query.status:
            where.append(self.status_test(query.status, args))
        for tag in query.tags:
            where.append(self.tag_test(tag, args))
        for cond in query.where:
            where.append(self._condition(cond, args))
        if query.deleted is not None:
            marked = "EXISTS (SELECT 1 FROM metadata d WHERE d.run_id = runs.id AND d.key = ?)"
            where.append(marked if query.deleted else f"NOT {marked}")
            args.append(DELETED_KEY)
        sql = f"SELECT {columns} FROM runs{joins}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        newest = key is None and query.sort is None and query.limit is not None
        direction = " DESC" if descending or newest else ""
        sql += " ORDER BY " + self.order(field, key, direction, newest)
        if query.limit is not None:
            sql += " LIMIT ?"
            args.append(query.limit)
        return sql, args, newest

    def _condition(self, cond: Condition, args: list[Any]) -> str:
        if cond.op not in OPERATORS or cond.section not in ("params", "metrics"):
            raise InvalidValueError(f"invalid run filter {cond}")
        args.append(cond.key)
        if cond.section == "metrics":
            test = self.metric_test(cond, args)
            return (
                "EXISTS (SELECT 1 FROM last_metrics m WHERE m.run_id = runs.id AND m.key = ? "
                f"AND {test})"
            )
        test = self.param_test(cond, args)
        return f"EXISTS (SELECT 1 FROM params p WHERE p.run_id = runs.id AND p.key = ? AND {test})"

    def status_test(self, statuses: Sequence[str], args: list[Any]) -> str:
        """The test that ``runs.status`` is one of ``statuses`` (arguments added to ``args``)."""
        args += statuses
        return f"runs.status IN ({','.join('?' * len(statuses))})"

    @abstractmethod
    def tag_test(self, tag: str, args: list[Any]) -> str:
        """The test that ``runs.tags`` holds ``tag``."""

    @abstractmethod
    def metric_test(self, cond: Condition, args: list[Any]) -> str:
        """The test of a metric condition on ``m.value`` (the metric's last value)."""

    @abstractmethod
    def param_test(self, cond: Condition, args: list[Any]) -> str:
        """The test of a parameter condition on the ``params`` row ``p``."""

    @abstractmethod
    def order(self, field: str, key: str | None, direction: str, newest: bool) -> str:
        """The ORDER BY terms: by run ``field``, or by the joined row ``s`` when ``key`` names
        a parameter or metric; ``newest``: the most recent runs first (a limit, no sort)."""
