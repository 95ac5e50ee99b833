"""Which runs a listing wants: filters on status, tags, params and metrics, an order, a limit."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from nbops.errors import InvalidValueError

#: Comparison operators a filter may use.
OPERATORS = ("=", "!=", ">", ">=", "<", "<=")
#: Run fields a listing may be sorted by (besides ``params.KEY`` and ``metrics.KEY``).
SORT_FIELDS = ("start_time", "end_time", "name", "status", "project", "id")
_FILTER = re.compile(r"^(params|metrics)\.(.+?)\s*(!=|>=|<=|=|>|<)\s*(.*)$", re.DOTALL)


@dataclass(frozen=True)
class Condition:
    """``params.KEY OP VALUE`` or ``metrics.KEY OP VALUE`` (a metric's last value)."""

    section: str  # "params" or "metrics"
    key: str
    op: str
    value: float | str | bool | None

    def __str__(self) -> str:
        return f"{self.section}.{self.key}{self.op}{self.value}"


#: Metadata key marking a run deleted (``nbops runs delete``): hidden from listings.
DELETED_KEY = "deleted"


@dataclass(frozen=True)
class RunQuery:
    """What :meth:`RunStore.list_runs` returns.

    Attributes:
        status: Only runs with one of these statuses.
        tags: Only runs carrying every one of these tags.
        where: Conditions every run must meet. A run lacking the key does not match.
        sort: ``start_time`` (default), ``end_time``, ``name``, ``status``, ``project``, ``id``,
            ``params.KEY`` or ``metrics.KEY``; a leading ``-`` sorts descending. Runs lacking
            the key come last.
        limit: At most this many runs: the first ones in ``sort`` order; with no ``sort``, the
            most recent ones, still listed oldest first.
        deleted: Runs marked deleted (metadata :data:`DELETED_KEY`): hidden when False (the
            default), the only ones listed when True, listed with the others when None.
    """

    status: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    where: tuple[Condition, ...] = ()
    sort: str | None = None
    limit: int | None = None
    deleted: bool | None = False

    def sort_key(self) -> tuple[str, str | None, bool]:
        """``(field or section, key, descending)`` of :attr:`sort`."""
        spec = self.sort or "start_time"
        descending = spec.startswith("-")
        spec = spec.lstrip("-")
        section, dot, key = spec.partition(".")
        if dot and section in ("params", "metrics") and key:
            return section, key, descending
        return spec, None, descending


def _value(text: str) -> float | str | bool | None:
    text = text.strip()
    try:
        value = json.loads(text)
    except ValueError:
        return text
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, (str, bool)) or value is None:
        return value
    return text


def parse_condition(text: str) -> Condition:
    """Parse ``params.lr=0.1`` or ``metrics.accuracy>0.9`` into a :class:`Condition`."""
    match = _FILTER.match(text.strip())
    if match is None:
        raise InvalidValueError(
            f"invalid run filter {text!r}: use params.KEY or metrics.KEY, an operator "
            f'({" ".join(OPERATORS)}) and a value, e.g. "metrics.accuracy>0.9"'
        )
    section, key, op, raw = match.groups()
    value = _value(raw)
    if section == "metrics" and not isinstance(value, float):
        raise InvalidValueError(f"invalid run filter {text!r}: a metric compares with a number")
    if isinstance(value, float) and math.isnan(value):
        raise InvalidValueError(f"invalid run filter {text!r}: NaN compares with nothing")
    if op not in ("=", "!=") and not isinstance(value, (float, str)):
        raise InvalidValueError(f"invalid run filter {text!r}: {op} needs a number or a string")
    return Condition(section, key.strip(), op, value)


def make_query(
    *,
    status: str | Iterable[str] | None = None,
    tags: str | Iterable[str] | None = None,
    where: str | Condition | Iterable[str | Condition] | None = None,
    sort: str | None = None,
    limit: int | None = None,
    deleted: bool | None = False,
) -> RunQuery:
    """Build and check a :class:`RunQuery` from user-facing arguments."""
    from nbops.store._base import RUN_STATUSES

    statuses = (status,) if isinstance(status, str) else tuple(status or ())
    for one in statuses:
        if one not in RUN_STATUSES:
            raise InvalidValueError(
                f"unknown run status {one!r}; use one of {', '.join(RUN_STATUSES)}"
            )
    items = [where] if isinstance(where, (str, Condition)) else list(where or [])
    conditions = tuple(c if isinstance(c, Condition) else parse_condition(c) for c in items)
    if limit is not None and (not isinstance(limit, int) or limit < 0):
        raise InvalidValueError(f"invalid limit {limit!r}: give a whole number >= 0")
    query = RunQuery(
        status=statuses,
        tags=(tags,) if isinstance(tags, str) else tuple(tags or ()),
        where=conditions,
        sort=sort,
        limit=limit,
        deleted=deleted,
    )
    field, key, _ = query.sort_key()
    if key is None and field not in SORT_FIELDS:
        raise InvalidValueError(
            f"cannot sort runs by {sort!r}: use one of {', '.join(SORT_FIELDS)}, params.KEY or "
            "metrics.KEY (a leading '-' sorts descending)"
        )
    return query


def matches(value: Any, condition: Condition) -> bool:
    """Whether a stored value meets a condition (the reference semantics backends follow).

    Numbers compare with numbers, strings with strings; other pairs only meet ``!=``.
    """
    target = condition.value
    if isinstance(value, bool) or isinstance(target, bool) or value is None or target is None:
        same = value is target or (value == target and type(value) is type(target))
        return same if condition.op == "=" else condition.op == "!=" and not same
    if isinstance(value, (int, float)) and isinstance(target, float):
        a: Any = float(value)
    elif isinstance(value, str) and isinstance(target, str):
        a = value
    else:
        return condition.op == "!="
    b: Any = target
    if isinstance(a, float) and math.isnan(a):
        return condition.op == "!="
    return bool(
        {
            "=": a == b,
            "!=": a != b,
            ">": a > b,
            ">=": a >= b,
            "<": a < b,
            "<=": a <= b,
        }[condition.op]
    )
