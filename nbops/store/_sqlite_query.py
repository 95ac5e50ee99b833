"""A :class:`RunQuery` as SQLite SQL: the WHERE, ORDER BY and LIMIT of a run listing."""

from __future__ import annotations

from typing import Any

from nbops.store._query import Condition
from nbops.store._sql import RunQuerySQL

_JSON_TYPE = "CASE WHEN json_valid({col}) THEN json_type({col}) END"
_JSON_VALUE = "CASE WHEN json_valid({col}) THEN json_extract({col}, '$') END"


class SQLiteRunQuery(RunQuerySQL):
    """Run listings in SQLite: parameters are JSON text, compared through ``json_extract``."""

    def tag_test(self, tag: str, args: list[Any]) -> str:
        args.append(tag)
        return "EXISTS (SELECT 1 FROM json_each(runs.tags) t WHERE t.value = ?)"

    def metric_test(self, cond: Condition, args: list[Any]) -> str:
        args.append(cond.value)
        return "(m.value IS NULL OR m.value != ?)" if cond.op == "!=" else f"m.value {cond.op} ?"

    def param_test(self, cond: Condition, args: list[Any]) -> str:
        kind = _JSON_TYPE.format(col="p.value")
        value = _JSON_VALUE.format(col="p.value")
        target = cond.value
        if target is None:
            same = f"{kind} = 'null'"
        elif isinstance(target, bool):
            same = f"{kind} = '{'true' if target else 'false'}'"
        else:
            types = "('integer', 'real')" if isinstance(target, float) else "('text')"
            args.append(target)
            if cond.op != "!=":
                return f"{kind} IN {types} AND {value} {cond.op} ?"
            same = f"{kind} IN {types} AND {value} = ?"
        return f"COALESCE(NOT ({same}), 1)" if cond.op == "!=" else same

    def order(self, field: str, key: str | None, direction: str, newest: bool) -> str:
        if key is not None:
            value = "s.value" if field == "metrics" else _JSON_VALUE.format(col="s.value")
            return f"{value} IS NULL, {value}{direction}, runs.start_time, runs.id"
        if newest:
            return "runs.start_time DESC, runs.id DESC"
        order = f"runs.{field}{direction}, runs.start_time, runs.id"
        return f"runs.end_time IS NULL, {order}" if field == "end_time" else order


run_query_sql = SQLiteRunQuery().select
