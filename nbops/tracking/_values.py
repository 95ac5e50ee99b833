"""Coercing what users log into what the store holds: metric floats, steps, JSON parameters,
artifact names, tags and scrubbed text."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from nbops.errors import ArtifactError, InvalidValueError, MetricValueError
from nbops.names import NAME_PATTERN
from nbops.redact import scrub_text


def as_float(key: str, value: Any) -> float:
    """Return a metric value as a float, or raise :class:`MetricValueError` naming ``key``."""
    if isinstance(value, bool):
        return float(value)
    try:
        return float(value)
    except OverflowError:
        raise MetricValueError(
            key,
            type(value).__name__,
            f"metric {key!r} is too large for a float (about 1e{_digits(value)}); metrics are "
            "64-bit floats: log its logarithm, or the exact value with log_params()",
        ) from None
    except (TypeError, ValueError):
        raise MetricValueError(
            key,
            type(value).__name__,
            f"metric {key!r} has a {type(value).__name__} value ({value!r:.40}); metrics are "
            "numbers: log text, lists and objects with log_params() or log_artifact()",
        ) from None


def _digits(value: Any) -> str:
    """Return the order of magnitude of a huge integer (``"400"`` for 10**400), or ``"308+"``."""
    try:
        return str(int(value).bit_length() * 30103 // 100000)
    except (TypeError, ValueError, OverflowError):
        return "308+"


def as_step(step: Any) -> int:
    """Return a step as a non-negative int, or raise :class:`InvalidValueError`."""
    index = getattr(step, "__index__", None)
    value = index() if callable(index) and not isinstance(step, bool) else None
    if value is None or value < 0:
        raise InvalidValueError(f"step must be a non-negative integer, not {step!r}")
    return int(value)


def jsonable(value: Any) -> Any:
    """Return a parameter value as JSON data (non-finite floats and objects as text)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        try:
            return jsonable(item())
        except (TypeError, ValueError):
            pass
    return repr(value)


def artifact_name(name: str) -> str:
    """Return ``name`` if it is a valid artifact name, else raise :class:`ArtifactError`."""
    if not NAME_PATTERN.fullmatch(name):
        raise ArtifactError(
            f"invalid artifact name {name!r}: use letters, digits, '.', '_' and '-' "
            "(no path separators), starting with a letter or digit, at most 128 characters"
        )
    return name


def scrubbed(text: str | None) -> str | None:
    """Return ``text`` with secret values removed (None stays None)."""
    return None if text is None else scrub_text(text)


def ensure_sequence(tags: Sequence[str] | str | None) -> tuple[str, ...]:
    """Normalise tags given as None, one string or a sequence."""
    if tags is None:
        return ()
    if isinstance(tags, str):
        return (tags,)
    return tuple(str(t) for t in tags)
