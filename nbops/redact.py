"""Keep secrets out of everything nbops writes: the store, snapshots, W&B, cards and logs.

A key looks secret when its name contains KEY, TOKEN, SECRET, PASSWORD, ... (see
:data:`SECRET_NAME`). Values under such keys are replaced by :data:`REDACTED`, and the values of
secret-looking environment variables are scrubbed from any text or nested structure.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

REDACTED = "[redacted]"

SECRET_NAME = re.compile(
    r"(API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|SECRET|TOKEN|PASSWORD|PASSWD|PASSPHRASE|CREDENTIAL"
    r"|AUTH|COOKIE|SESSION_?ID|(^|_)KEY($|_)|(^|_)PAT($|_)|DSN|CONNECTION_?STRING)",
    re.IGNORECASE,
)
# Shorter values are too likely to occur by chance ("1", "true") to be scrubbed from text.
_MIN_SECRET_LEN = 6


def is_secret_name(name: str) -> bool:
    """Return True when a variable or config key name looks like it holds a secret."""
    return bool(SECRET_NAME.search(name.replace("-", "_")))


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """Return the values of secret-looking environment variables, longest first."""
    env = os.environ if environ is None else environ
    values = {v for k, v in env.items() if is_secret_name(k) and len(v) >= _MIN_SECRET_LEN}
    return sorted(values, key=len, reverse=True)


def scrub_text(text: str, secrets: list[str] | None = None) -> str:
    """Replace every occurrence of a secret value in ``text`` with :data:`REDACTED`."""
    for value in secret_values() if secrets is None else secrets:
        if value in text:
            text = text.replace(value, REDACTED)
    return text


def redact(value: Any, secrets: list[str] | None = None) -> Any:
    """Return ``value`` with secret-named keys masked and secret values scrubbed, recursively."""
    found = secret_values() if secrets is None else secrets
    return _redact(value, found)


def _redact(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, str):
        return scrub_text(value, secrets) if secrets else value
    if isinstance(value, Mapping):
        return {
            k: (REDACTED if isinstance(k, str) and is_secret_name(k) else _redact(v, secrets))
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [_redact(v, secrets) for v in value]
    return value
