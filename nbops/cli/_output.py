"""Output shared by the command groups: plain-text tables and the one ``--json`` writer."""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import os
import sys
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any, TextIO

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


def strict_json(value: Any) -> Any:
    """Return ``value`` as plain JSON data: NaN and infinities become None (``null``).

    Mappings get string keys; tuples and sets become lists; numpy scalars and arrays, dates,
    paths, enums and dataclasses become their natural JSON form; anything else its ``str``.
    """
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return [strict_json(v) for v in sorted(value, key=repr)]
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return strict_json(value.value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return strict_json(dataclasses.asdict(value))
    tolist = getattr(value, "tolist", None)  # numpy arrays and scalars
    if callable(tolist):
        return strict_json(tolist())
    return str(value)


def dumps_json(doc: Any, *, indent: int | None = 2, one_per_line: bool = False) -> str:
    """Return ``doc`` as strict JSON text (RFC 8259: no NaN or infinity; see :func:`strict_json`).

    With ``one_per_line``, a list is written one compact item per line, which json's C encoder
    writes much faster than an indented document (for listings of thousands of runs).
    """

    def encode(value: Any, indent: int | None) -> str:
        try:  # the fast path: nothing to replace
            return json.dumps(value, indent=indent, allow_nan=False, default=strict_json)
        except ValueError:  # a NaN or an infinity somewhere
            return json.dumps(strict_json(value), indent=indent, allow_nan=False)

    if one_per_line and isinstance(doc, list):
        return "[\n  " + ",\n  ".join(encode(item, None) for item in doc) + "\n]" if doc else "[]"
    return encode(doc, indent)


def print_json(
    doc: Any, *, indent: int | None = 2, one_per_line: bool = False, file: TextIO | None = None
) -> None:
    """Write ``doc`` as strict JSON: the one writer behind every ``--json`` option."""
    print(dumps_json(doc, indent=indent, one_per_line=one_per_line), file=file or sys.stdout)
