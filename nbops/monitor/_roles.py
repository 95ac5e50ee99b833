"""Column roles in a drift check: ``id``, ``datetime``, ``target``, ``prediction``, or a feature.

IDs and timestamps always differ between two samples, so they are left out of the verdict by
default; target and prediction drift is reported on its own, beside the features' share.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from nbops.monitor._errors import DriftInputError

ROLES = ("id", "datetime", "target", "prediction")
#: Below this many rows on either side, the tests say little: the report warns.
SMALL_SAMPLE = 30
_ID_NAME = re.compile(r"(?i)(id|uuid|guid|key|.*[_-]id|.*Id)")


def declared(roles: Mapping[str, Any] | None) -> dict[str, str]:
    """``{column: role}`` from ``{role: column or [columns]}``."""
    found: dict[str, str] = {}
    for role, value in (roles or {}).items():
        if role not in ROLES:
            raise DriftInputError(f"unknown column role {role!r}; use {', '.join(ROLES)}")
        names = [value] if isinstance(value, str) else list(value or [])
        for name in names:
            found[str(name)] = role
    return found


def infer(frame: Any, given: Mapping[str, str]) -> dict[str, str]:
    """Declared roles plus inferred ones: datetime columns, and unique ID-named columns."""
    from pandas.api import types

    roles = dict(given)
    for key in frame.columns:
        name = str(key)
        if name in roles:
            continue
        col = frame[key]
        if types.is_datetime64_any_dtype(col.dtype):
            roles[name] = "datetime"
        elif (
            _ID_NAME.fullmatch(name)
            and (types.is_integer_dtype(col.dtype) or types.is_string_dtype(col.dtype))
            and len(col) > 1
            and col.is_unique
        ):
            roles[name] = "id"
    return roles


def check_list_values(frame: Any, label: str, keys: Iterable[Any]) -> None:
    """Refuse columns holding lists, dicts, sets or arrays (they have no distribution to test)."""
    from pandas.api import types

    for key in keys:
        col = frame[key]
        if not types.is_object_dtype(col.dtype):
            continue
        sample = col.dropna().head(1000)
        bad = next(
            (v for v in sample if isinstance(v, (list, tuple, dict, set)) or hasattr(v, "shape")),
            None,
        )
        if bad is not None:
            raise DriftInputError(
                f"column {str(key)!r} in the {label} data holds {type(bad).__name__} values, "
                "which drift cannot compare; explode it (frame.explode(...)), summarise it "
                "(e.g. its length) or leave it out with columns=[...]"
            )


def small_sample_warnings(n_reference: int, n_current: int) -> list[str]:
    """Warnings when either side is too small for the tests to mean much."""
    notes = []
    for label, n in (("reference", n_reference), ("current", n_current)):
        if n < SMALL_SAMPLE:
            notes.append(
                f"the {label} data has only {n} rows (< {SMALL_SAMPLE}): the tests can miss "
                "real drift and the effect sizes are noisy; collect more rows before acting"
            )
    return notes
