"""Values as the SQL backends store them: JSON text, the last point per metric, parsing."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from nbops.store._base import MetricPoint


def dumps(value: Any) -> str:
    """A JSON value as stored (NaN and infinities allowed; unknown objects as their repr)."""
    return json.dumps(value, default=repr, allow_nan=True, sort_keys=True)


def last_points(points: Sequence[MetricPoint]) -> list[MetricPoint]:
    """The point of each key with the highest (step, time), later ones winning ties."""
    best: dict[str, MetricPoint] = {}
    for point in points:
        seen = best.get(point.key)
        if seen is None or (point.step, point.timestamp) >= (seen.step, seen.timestamp):
            best[point.key] = point
    return list(best.values())


class ScalarMemo:
    """``json.loads`` remembering scalar results: listings repeat the same values a lot."""

    def __init__(self) -> None:
        self._seen: dict[str, Any] = {}

    def __call__(self, text: str) -> Any:
        try:
            return self._seen[text]
        except KeyError:
            value = json.loads(text)
            if not isinstance(value, (list, dict)):  # shared objects must be immutable
                self._seen[text] = value
            return value


#: The tags of a run without tags (shared: tuples are immutable).
NO_TAGS: tuple[str, ...] = ()
