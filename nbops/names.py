"""Names of datasets, models and aliases: safe to use in paths, URLs and command lines."""

from __future__ import annotations

import re

from nbops.errors import InvalidValueError

#: ASCII letters, digits, ``.``, ``_`` and ``-``; starts with a letter or digit; 1 to 128 long.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def check_name(name: object, what: str = "name") -> str:
    """Return ``name`` if it is a valid name, else raise :class:`InvalidValueError`.

    A valid name cannot escape a folder (no ``/``, ``\\``, leading ``.``, ``..``), holds no
    spaces, control or non-ASCII characters, and is at most 128 characters long.
    """
    if not isinstance(name, str) or NAME_PATTERN.fullmatch(name) is None:
        raise InvalidValueError(
            f"invalid {what} {name!r}: use 1-128 ASCII letters, digits, '.', '_' and '-', "
            "starting with a letter or digit (no spaces, slashes or control characters)"
        )
    return name


def slug(text: str, fallback: str) -> str:
    """Turn free text (a file name) into a valid name, or ``fallback`` when nothing is left."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", text).lstrip("._-")[:128]
    return cleaned if NAME_PATTERN.fullmatch(cleaned) else fallback
