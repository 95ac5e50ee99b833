"""A :class:`RunQuery` as SQLite SQL: the WHERE, ORDER BY and LIMIT of a run listing."""

from __future__ import annotations

from typing import Any

from nbops.errors import InvalidValueError
from nbops.store._query import DELETED_KEY, OPERATORS, SORT_FIELDS, Condition, RunQuery

_JSON_TYPE = "CASE WHEN json_valid({col}) THEN json_type({col}) END"
_JSON_VALUE = "CASE WHEN json_valid({col}) THEN json_extract({col}, '$') END"


def _param_test(cond: Condition, args: list[Any]) -> str:
    kind = _JSON_TYPE.format(col="p.value")
    value = _JSON_VALUE.format(col="p.value")
    target = cond.value
    if target is None:
        same = f"{kind} = 'null'"
    elif isinstance(target, bool):
        same = f"{kind} = '{'true' if target else 'false'}'"
    else:
        types = "('integer', 'real')" if isinstance(target, float) else "('text')"
        if cond.op != "!=":
            args.append(target)
            return f"{kind} IN {types} AND {value} {cond.op} ?"
        args.append(target)
        same = f"{kind} IN {types} AND {value} = ?"
    return f"COALESCE(NOT ({same}), 1)" if cond.op == "!=" else same


def _condition(cond: Condition, args: list[Any]) -> str:
    if cond.op not in OPERATORS or cond.section not in ("params", "metrics"):
        raise InvalidValueError(f"invalid run filter {cond}")
    args.append(cond.key)
    if cond.section == "metrics":
        args.append(cond.value)
        test = "(m.value IS NULL OR m.value != ?)" if cond.op == "!=" else f"m.value {cond.op} ?"
        return (
            "EXISTS (SELECT 1 FROM last_metrics m WHERE m.run_id = runs.id AND m.key = ? "
            f"AND {test})"
        )
    test = _param_test(cond, args)
    return f"EXISTS (SELECT 1 FROM params p WHERE p.run_id = runs.id AND p.key = ? AND {test})"


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
        joins = f" LEFT JOIN {table} s ON s.run_id = runs.id AND s.key = ?"
        args.append(key)
    where: list[str] = []
    if project is not None:
        where.append("runs.project = ?")
        args.append(project)
    if query.status:
        where.append(f"runs.status IN ({','.join('?' * len(query.status))})")
        args += query.status
    for tag in query.tags:
        where.append("EXISTS (SELECT 1 FROM json_each(runs.tags) t WHERE t.value = ?)")
        args.append(tag)
    for cond in query.where:
        where.append(_condition(cond, args))
    if query.deleted is not None:
        marked = "EXISTS (SELECT 1 FROM metadata d WHERE d.run_id = runs.id AND d.key = ?)"
        where.append(marked if query.deleted else f"NOT {marked}")
        args.append(DELETED_KEY)
    sql = f"SELECT {columns} FROM runs{joins}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    direction = " DESC" if descending else ""
    reverse = False
    if key is None:
        if query.sort is None and query.limit is not None:
            direction, reverse = " DESC", True  # the most recent ones, listed oldest first
        order = f"runs.{field}{direction}, runs.id{direction}"
        if field != "start_time" or query.sort is not None:
            order = f"runs.{field}{direction}, runs.start_time, runs.id"
        if field == "end_time":
            order = f"runs.end_time IS NULL, {order}"
    else:
        value = "s.value" if field == "metrics" else _JSON_VALUE.format(col="s.value")
        order = f"{value} IS NULL, {value}{direction}, runs.start_time, runs.id"
    sql += f" ORDER BY {order}"
    if query.limit is not None:
        sql += " LIMIT ?"
        args.append(query.limit)
    return sql, args, reverse
