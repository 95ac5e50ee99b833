"""Plain-text output shared by the command groups."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from nbops.errors import NbopsError


class NbopsUsageError(NbopsError):
    """The command line was well-formed but asks for something impossible (exit code 2)."""


def fmt(value: Any) -> str:
    """Format one value for a table cell."""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return "" if value is None else str(value)


def when(ts: float | None) -> str:
    """Format a unix time as local ``YYYY-MM-DD HH:MM:SS`` ('' for None)."""
    return "" if ts is None else datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=False)]
    lines = [
        "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)).rstrip()
        for row in [header, *rows]
    ]
    return "\n".join(lines)
