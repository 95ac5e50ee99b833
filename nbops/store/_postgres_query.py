"""A :class:`RunQuery` as PostgreSQL SQL: the WHERE, ORDER BY and LIMIT of a run listing.

Parameters are kept typed (``kind``, ``num``, ``txt`` columns written with each value), so
conditions compare numbers with numbers and strings with strings without parsing JSON.
Strings compare byte-wise (``COLLATE "C"``), as in SQLite. NaN counts as no value.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from nbops.errors import InvalidValueError
from nbops.store._postgres_db import _format_style
from nbops.store._query import Condition, RunQuery
from nbops.store._sql import RunQuerySQL

_NUMERIC = "('number', 'true', 'false')"


def param_columns(value: Any) -> tuple[str, float | None, str | None]:
    """``(kind, num, txt)`` of a parameter value, for conditions and sorting."""
    if value is True or value is False:
        return ("true" if value else "false"), float(value), None
    if value is None:
        return "null", None, None
    if isinstance(value, (int, float)):
        try:
            return "number", float(value), None
        except OverflowError:
            return "other", None, None
    if isinstance(value, str):
        return "string", None, value
    return "other", None, None


class PostgresRunQuery(RunQuerySQL):
    """Run listings in PostgreSQL: typed parameter columns, byte-wise strings, NaN as no value."""

    def status_test(self, statuses: Sequence[str], args: list[Any]) -> str:
        args.append(list(statuses))
        return "runs.status = ANY(?)"

    def tag_test(self, tag: str, args: list[Any]) -> str:
        args.append(json.dumps([tag]))
        return "runs.tags @> ?::jsonb"

    def metric_test(self, cond: Condition, args: list[Any]) -> str:
        if not isinstance(cond.value, float) or math.isnan(cond.value):
            raise InvalidValueError(f"invalid run filter {cond}: a metric compares with a number")
        args.append(cond.value)
        if cond.op == "!=":
            return "(m.value IS NULL OR m.value <> ?)"
        return f"m.value <> 'NaN' AND m.value {cond.op} ?"

    def param_test(self, cond: Condition, args: list[Any]) -> str:
        target = cond.value
        if target is None or isinstance(target, bool):
            same = f"p.kind = '{'null' if target is None else 'true' if target else 'false'}'"
        elif isinstance(target, float):
            args.append(target)
            if cond.op != "!=":
                return f"p.kind = 'number' AND p.num <> 'NaN' AND p.num {cond.op} ?"
            same = "p.kind = 'number' AND p.num = ?"
        else:
            args.append(target)
            if cond.op != "!=":
                return f"p.kind = 'string' AND p.txt COLLATE \"C\" {cond.op} ?"
            same = "p.kind = 'string' AND p.txt = ?"
        return f"NOT ({same})" if cond.op == "!=" else same

    def order(self, field: str, key: str | None, direction: str, newest: bool) -> str:
        last = 'runs.start_time, runs.id COLLATE "C"'
        if key is None:
            if newest:
                return 'runs.start_time DESC, runs.id COLLATE "C" DESC'
            column = f"runs.{field}"
            if field in ("name", "status", "project", "id"):
                column += ' COLLATE "C"'
            return f"{column}{direction} NULLS LAST, {last}"
        if field == "metrics":
            return (
                f"(s.value IS NULL OR s.value = 'NaN'), NULLIF(s.value, 'NaN'){direction} "
                f"NULLS LAST, {last}"
            )
        missing = (
            f"(s.kind IS NULL OR s.kind NOT IN ({_NUMERIC[1:-1]}, 'string') "
            "OR COALESCE(s.num = 'NaN', FALSE))"
        )
        kind = f"CASE WHEN {missing} THEN 2 WHEN s.kind IN {_NUMERIC} THEN 0 ELSE 1 END"
        return (
            f"{missing}, {kind}{direction}, NULLIF(s.num, 'NaN'){direction} NULLS LAST, "
            f's.txt COLLATE "C"{direction} NULLS LAST, {last}'
        )


_QUERY = PostgresRunQuery()


def run_query_sql(
    project: str | None, query: RunQuery | None, columns: str
) -> tuple[str, list[Any], bool]:
    """``(sql, args, reverse)`` in psycopg2's placeholder style (see :meth:`RunQuerySQL.select`)."""
    sql, args, reverse = _QUERY.select(project, query, columns)
    return _format_style(sql), args, reverse
