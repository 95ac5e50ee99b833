"""The run's summary: last metric values plus pinned keys."""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any

from nbops.redact import redact


class Summary(MutableMapping[str, Any]):
    """The run's summary: the last value of each metric, plus any key set explicitly.

    Keys set by assignment stay pinned: later ``log`` calls do not overwrite them.
    """

    def __init__(self) -> None:
        self._auto: dict[str, Any] = {}
        self._pinned: dict[str, Any] = {}
        self._dirty = False

    def __getitem__(self, key: str) -> Any:
        return self._pinned[key] if key in self._pinned else self._auto[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._pinned[key] = value
        self._dirty = True

    def __delitem__(self, key: str) -> None:
        del self._pinned[key]
        self._dirty = True

    def __iter__(self) -> Iterator[str]:
        return iter({**self._auto, **self._pinned})

    def __len__(self) -> int:
        return len(self._auto.keys() | self._pinned.keys())

    def __repr__(self) -> str:
        return f"Summary({dict(self)!r})"

    def _take_changes(self) -> dict[str, Any] | None:
        if not self._dirty:
            return None
        self._dirty = False
        changes: dict[str, Any] = redact({**self._auto, **self._pinned})
        return changes
