"""Keep secrets out of everything nbops writes: the store, snapshots, W&B, cards and logs.

A name looks secret when one of its *word parts* is a secret word (see :class:`SecretRules`):
``api_key``, ``API_TOKEN``, ``db_password``, ``secret`` and ``aws_secret_access_key`` do;
``max_tokens``, ``tokenizer``, ``author`` and ``oauth_scope`` do not. Values under such keys are
replaced by :data:`REDACTED`, and the values of secret-looking environment variables are scrubbed
from any text or nested structure.

A project extends or relaxes the rules in the ``secrets:`` section of its ``nbops.yaml``::

    secrets:
      words: [ssn, pin]          # more secret word parts
      ignore_words: [auth]       # default secret words this project does not treat as secret
      names: [customer_email]    # whole names that are always secret
      allow: [sort_key]          # whole names that are never secret
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

logger = logging.getLogger(__name__)

REDACTED = "[redacted]"

#: Word parts that make a name secret wherever they appear (``db_password``, ``API_TOKEN``).
SECRET_WORDS = frozenset(
    {
        "secret",
        "secrets",
        "token",
        "password",
        "passwords",
        "passwd",
        "passphrase",
        "passcode",
        "credential",
        "credentials",
        "cookie",
        "cookies",
        "auth",
        "apikey",
        "accesskey",
        "privatekey",
        "secretkey",
        "sessionid",
        "dsn",
        "pat",
    }
)
#: Words that also make secret a word part that ends with them (``PGPASSWORD``, ``ghtoken``).
SECRET_SUFFIXES = ("password", "passwd", "passphrase", "secret", "token", "apikey", "credentials")
#: Consecutive word parts that make a name secret (``SESSION_ID``, ``connection_string``).
SECRET_PHRASES = (("session", "id"), ("connection", "string"))
#: A name whose last word part is this is secret (``api_key``, ``ssh_key``, ``KEY``).
SECRET_LAST_WORD = "key"  # noqa: S105 (a word, not a password)

# "HTTPServer" -> HTTP, Server; "apiKey" -> api, Key; "aws_secret_access_key" -> aws, secret, ...
_WORD_PART = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
# Shorter values are too likely to occur by chance ("1", "true") to be scrubbed from text.
_MIN_SECRET_LEN = 6
CONFIG_FILE = "nbops.yaml"


def word_parts(name: str) -> tuple[str, ...]:
    """Split a name into lowercase word parts: ``"awsSecret_KEY"`` -> ``aws, secret, key``."""
    return tuple(part.lower() for part in _WORD_PART.findall(name))


@dataclass(frozen=True)
class SecretRules:
    """Which names are secret: word parts, suffixes, phrases and the last word, plus exceptions.

    Attributes:
        words: Secret word parts.
        suffixes: A word part ending with one of these is secret.
        phrases: Runs of consecutive word parts that are secret together.
        last_word: A name ending with this word part is secret.
        names: Whole names (case-insensitive) that are always secret.
        allow: Whole names (case-insensitive) that are never secret; wins over everything.
    """

    words: frozenset[str] = SECRET_WORDS
    suffixes: tuple[str, ...] = SECRET_SUFFIXES
    phrases: tuple[tuple[str, ...], ...] = SECRET_PHRASES
    last_word: str | None = SECRET_LAST_WORD
    names: frozenset[str] = field(default_factory=frozenset)
    allow: frozenset[str] = field(default_factory=frozenset)

    def is_secret(self, name: str) -> bool:
        """Return True when ``name`` looks like it holds a secret under these rules."""
        lowered = name.lower()
        if lowered in self.allow:
            return False
        if lowered in self.names:
            return True
        parts = word_parts(name)
        if not parts:
            return False
        if self.last_word is not None and parts[-1] == self.last_word:
            return True
        for part in parts:
            if part in self.words or any(
                part.endswith(s) and s in self.words for s in self.suffixes
            ):
                return True
        joined = f" {' '.join(parts)} "
        return any(f" {' '.join(phrase)} " in joined for phrase in self.phrases)

    def extended(
        self,
        *,
        words: Iterable[str] = (),
        ignore_words: Iterable[str] = (),
        names: Iterable[str] = (),
        allow: Iterable[str] = (),
    ) -> SecretRules:
        """Return these rules with words added or ignored and names forced either way."""
        ignored = {w.lower() for w in ignore_words}
        added = {w.lower() for w in words}
        return SecretRules(
            words=frozenset((self.words | added) - ignored),
            suffixes=self.suffixes,
            phrases=tuple(p for p in self.phrases if not ignored & set(p)),
            last_word=None if self.last_word in ignored else self.last_word,
            names=self.names | {n.lower() for n in names},
            allow=self.allow | {n.lower() for n in allow},
        )


DEFAULT_RULES = SecretRules()

_configured: SecretRules | None = None
_cache: dict[str, tuple[float | None, SecretRules]] = {}
_cache_lock = threading.Lock()


def configure_secrets(rules: SecretRules | None) -> None:
    """Use ``rules`` in this process instead of the project's ``nbops.yaml`` (None: go back)."""
    global _configured
    _configured = rules


def secret_rules() -> SecretRules:
    """Return the rules in force: :func:`configure_secrets`, else the project's ``nbops.yaml``."""
    if _configured is not None:
        return _configured
    from nbops.config import find_project_root

    path = os.path.join(find_project_root(), CONFIG_FILE)
    try:
        mtime: float | None = os.stat(path).st_mtime
    except OSError:
        mtime = None
    with _cache_lock:
        cached = _cache.get(path)
        if cached is not None and cached[0] == mtime:
            return cached[1]
    rules = DEFAULT_RULES if mtime is None else _load_rules(path)
    with _cache_lock:
        _cache[path] = (mtime, rules)
    return rules


def _load_rules(path: str) -> SecretRules:
    """Read the ``secrets:`` section of ``path``; a broken section keeps the defaults, loudly."""
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError) as exc:
        logger.warning("nbops: cannot read %s (%s); default secret rules apply", path, exc)
        return DEFAULT_RULES
    section = doc.get("secrets") if isinstance(doc, dict) else None
    if section is None:
        return DEFAULT_RULES
    keys = ("words", "ignore_words", "names", "allow")
    if not isinstance(section, dict) or set(section) - set(keys):
        logger.warning(
            "nbops: the secrets: section of %s must be a mapping with only %s; "
            "default secret rules apply",
            path,
            ", ".join(keys),
        )
        return DEFAULT_RULES
    lists: dict[str, list[str]] = {}
    for key in keys:
        value = section.get(key) or []
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            logger.warning(
                "nbops: secrets.%s in %s must be a list of strings; default secret rules apply",
                key,
                path,
            )
            return DEFAULT_RULES
        lists[key] = value
    return DEFAULT_RULES.extended(**lists)


@lru_cache(maxsize=4096)
def _is_secret(rules: SecretRules, name: str) -> bool:
    return rules.is_secret(name)


def is_secret_name(name: str) -> bool:
    """Return True when a variable or config key name looks like it holds a secret."""
    return _is_secret(secret_rules(), name)


#: (rules, a snapshot of the process environment, its secret values): every redaction asks.
_env_cache: tuple[SecretRules, tuple[tuple[Any, Any], ...], list[str]] | None = None


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """Return the values of secret-looking environment variables, longest first.

    For the process environment the answer is reused while the environment is unchanged
    (compared exactly, item by item, against the raw bytes ``os.environ`` keeps).
    """
    global _env_cache
    rules = secret_rules()
    raw = getattr(os.environ, "_data", None) if environ is None else None
    snapshot = tuple(raw.items()) if isinstance(raw, dict) else None
    cached = _env_cache
    if snapshot is not None and cached is not None and cached[0] is rules and cached[1] == snapshot:
        return list(cached[2])
    env = os.environ if environ is None else environ
    values = {v for k, v in env.items() if len(v) >= _MIN_SECRET_LEN and _is_secret(rules, k)}
    found = sorted(values, key=len, reverse=True)
    if snapshot is not None:
        _env_cache = (rules, snapshot, found)
    return list(found)


def scrub_text(text: str, secrets: list[str] | None = None) -> str:
    """Replace every occurrence of a secret value in ``text`` with :data:`REDACTED`."""
    for value in secret_values() if secrets is None else secrets:
        if value in text:
            text = text.replace(value, REDACTED)
    return text


def redact(value: Any, secrets: list[str] | None = None) -> Any:
    """Return ``value`` with secret-named keys masked and secret values scrubbed, recursively."""
    found = secret_values() if secrets is None else secrets
    return _redact(value, found, secret_rules())


def _redact(value: Any, secrets: list[str], rules: SecretRules) -> Any:
    if isinstance(value, str):
        return scrub_text(value, secrets) if secrets else value
    if isinstance(value, Mapping):
        return {
            k: (
                REDACTED
                if isinstance(k, str) and _is_secret(rules, k)
                else _redact(v, secrets, rules)
            )
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [_redact(v, secrets, rules) for v in value]
    return value
