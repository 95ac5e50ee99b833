"""A :class:`RunQuery` as PostgreSQL SQL: the WHERE, ORDER BY and LIMIT of a run listing.

Parameters are kept typed (``kind``, ``num``, ``txt`` columns written with each value), so
conditions compare numbers with numbers and strings with strings without parsing JSON.
Strings compare byte-wise (``COLLATE "C"``), as in SQLite. NaN counts as no value.
"""

from __future__ import annotations

import json
import math
from typing import Any

from nbops.errors import InvalidValueError
from nbops.store._query import DELETED_KEY, OPERATORS, SORT_FIELDS, Condition, RunQuery

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


def _param_test(cond: Condition, args: list[Any]) -> str:
    target = cond.value
    if target is None or isinstance(target, bool):
        same = f"p.kind = '{'null' if target is None else 'true' if target else 'false'}'"
    elif isinstance(target, float):
        args.append(target)
        if cond.op != "!=":
            return f"p.kind = 'number' AND p.num <> 'NaN' AND p.num {cond.op} %s"
        same = "p.kind = 'number' AND p.num = %s"
    else:
        args.append(target)
        if cond.op != "!=":
            return f"p.kind = 'string' AND p.txt COLLATE \"C\" {cond.op} %s"
        same = "p.kind = 'string' AND p.txt = %s"
    return f"NOT ({same})" if cond.op == "!=" else same


def _condition(cond: Condition, args: list[Any]) -> str:
    if cond.op not in OPERATORS or cond.section not in ("params", "metrics"):
        raise InvalidValueError(f"invalid run filter {cond}")
    args.append(cond.key)
    if cond.section == "metrics":
        if not isinstance(cond.value, float) or math.isnan(cond.value):
            raise InvalidValueError(f"invalid run filter {cond}: a metric compares with a number")
        args.append(cond.value)
        test = (
            "(m.value IS NULL OR m.value <> %s)"
            if cond.op == "!="
            else f"m.value <> 'NaN' AND m.value {cond.op} %s"
        )
        return (
            "EXISTS (SELECT 1 FROM last_metrics m WHERE m.run_id = runs.id AND m.key = %s "
            f"AND {test})"
        )
    test = _param_test(cond, args)
    return f"EXISTS (SELECT 1 FROM params p WHERE p.run_id = runs.id AND p.key = %s AND {test})"


def run_query_sql(
    project: str | None, query: RunQuery | None, columns: str
) -> tuple[str, list[Any], bool]:
    """``(sql, args, reverse)``: the SELECT of matching runs; reverse the rows when ``reverse``."""
    query = query or RunQuery()
    args: list[Any] = []
    joins = ""
    field, key, descending = query.sort_key()
    if key is None and field not in SORT_FIELDS:
        raise InvalidValueError(f"cannot sort runs by {query.sort!r}")
    if key is not None:
        table = "last_metrics" if field == "metrics" else "params"
        joins = f" LEFT JOIN {table} s ON s.run_id = runs.id AND s.key = %s"
        args.append(key)
    where: list[str] = []
    if project is not None:
        where.append("runs.project = %s")
        args.append(project)
    if query.status:
        where.append("runs.status = ANY(%s)")
        args.append(list(query.status))
    for tag in query.tags:
        where.append("runs.tags @> %s::jsonb")
        args.append(json.dumps([tag]))
    for cond in query.where:
        where.append(_condition(cond, args))
    if query.deleted is not None:
        marked = "EXISTS (SELECT 1 FROM metadata d WHERE d.run_id = runs.id AND d.key = %s)"
        where.append(marked if query.deleted else f"NOT {marked}")
        args.append(DELETED_KEY)
    sql = f"SELECT {columns} FROM runs{joins}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    direction = " DESC" if descending else ""
    reverse = False
    if key is None:
        column = f"runs.{field}"
        if field in ("name", "status", "project", "id"):
            column += ' COLLATE "C"'
        if query.sort is None and query.limit is not None:
            direction, reverse = " DESC", True  # the most recent ones, listed oldest first
            order = 'runs.start_time DESC, runs.id COLLATE "C" DESC'
        else:
            order = f'{column}{direction} NULLS LAST, runs.start_time, runs.id COLLATE "C"'
    elif field == "metrics":
        order = (
            f"(s.value IS NULL OR s.value = 'NaN'), NULLIF(s.value, 'NaN'){direction} NULLS LAST, "
            "runs.start_time, "
            'runs.id COLLATE "C"'
        )
    else:
        missing = (
            f"(s.kind IS NULL OR s.kind NOT IN ({_NUMERIC[1:-1]}, 'string') "
            "OR COALESCE(s.num = 'NaN', FALSE))"
        )
        kind = f"CASE WHEN {missing} THEN 2 WHEN s.kind IN {_NUMERIC} THEN 0 ELSE 1 END"
        order = (
            f"{missing}, {kind}{direction}, NULLIF(s.num, 'NaN'){direction} NULLS LAST, "
            f's.txt COLLATE "C"{direction} NULLS LAST, '
            'runs.start_time, runs.id COLLATE "C"'
        )
    sql += f" ORDER BY {order}"
    if query.limit is not None:
        sql += " LIMIT %s"
        args.append(query.limit)
    return sql, args, reverse
