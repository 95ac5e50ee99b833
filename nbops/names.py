"""Names of runs' artifacts, datasets, models, aliases, sweeps and pipeline stages.

One rule, safe to use in paths, URLs and command lines: ASCII letters, digits, ``.``, ``_`` and
``-``, starting with a letter or digit, 1 to 128 characters. Pipeline stages leave out ``.``,
which separates a stage from a name in references such as ``train.accuracy``.
"""

from __future__ import annotations

import re

from nbops.errors import InvalidValueError

#: ASCII letters, digits, ``.``, ``_`` and ``-``; starts with a letter or digit; 1 to 128 long.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
#: :data:`NAME_PATTERN` without ``.``.
DOTLESS_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")


def check_name(name: object, what: str = "name", *, dots: bool = True) -> str:
    """Return ``name`` if it is a valid name, else raise :class:`InvalidValueError`.

    A valid name cannot escape a folder (no ``/``, ``\\``, leading ``.``), holds no spaces,
    control or non-ASCII characters, and is at most 128 characters long.

    Args:
        name: The name to check.
        what: What it names, for the message (``"model name"``).
        dots: Whether ``.`` is allowed (not in pipeline stage names).
    """
    pattern = NAME_PATTERN if dots else DOTLESS_NAME_PATTERN
    if not isinstance(name, str) or pattern.fullmatch(name) is None:
        allowed = "ASCII letters, digits, " + ("'.', '_' and '-'" if dots else "'_' and '-'")
        raise InvalidValueError(
            f"invalid {what} {name!r}: use 1-128 {allowed}, starting with a letter or digit "
            "(no spaces, slashes or control characters)"
        )
    return name


def slug(text: str, fallback: str) -> str:
    """Turn free text (a file name) into a valid name, or ``fallback`` when nothing is left."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", text).lstrip("._-")[:128]
    return cleaned if NAME_PATTERN.fullmatch(cleaned) else fallback
