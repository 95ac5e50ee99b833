"""Secret-named parameters in ``nbops.lock``: a salted HMAC, never the value or a bare hash.

A bare sha256 of a short secret can be brute-forced from a committed lock; an HMAC needs the
key, which never leaves the machine: ``$NBOPS_LOCK_KEY`` when set (share it with CI as a CI
secret), otherwise ``<store>/lock.key``, made on first use with mode 0600. A sealed value reads
``hmac-sha256:<key id>:<salt>:<mac>``; the key id (a hash of the key) tells a changed secret
from a lock sealed on another machine with another key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nbops.redact import is_secret_name

KEY_ENV = "NBOPS_LOCK_KEY"
KEY_FILE = "lock.key"
_PREFIX = "hmac-sha256:"


def _canon(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, default=str).encode()


def _load_key(store_dir: Path) -> bytes:
    env = os.environ.get(KEY_ENV)
    if env:
        return env.encode()
    path = store_dir / KEY_FILE
    try:
        return bytes.fromhex(path.read_text(encoding="ascii").strip())
    except (FileNotFoundError, ValueError):
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, key.hex().encode())
    finally:
        os.close(fd)
    return key


class Sealer:
    """Seals secret-named parameters for the lock and checks sealed values against new ones."""

    def __init__(self, key: bytes) -> None:
        self._key = key
        self.key_id = hashlib.sha256(b"nbops-lock-key-id\0" + key).hexdigest()[:12]

    @classmethod
    def for_store(cls, store_dir: Path) -> Sealer:
        """The sealer of this machine (``$NBOPS_LOCK_KEY`` or the store's key file)."""
        return cls(_load_key(store_dir))

    def _mac(self, salt: str, value: Any) -> str:
        return hmac.new(self._key, salt.encode() + b"\0" + _canon(value), "sha256").hexdigest()

    def seal(self, value: Any) -> str:
        """A fresh sealed form of ``value`` (new salt)."""
        salt = secrets.token_hex(8)
        return f"{_PREFIX}{self.key_id}:{salt}:{self._mac(salt, value)}"

    def check(self, sealed: Any, value: Any) -> bool | None:
        """True when ``sealed`` seals ``value``; False when it does not; None when it was sealed
        with another key (or is not a sealed value), so nothing can be told."""
        if isinstance(sealed, str) and sealed.startswith(_PREFIX):
            parts = sealed[len(_PREFIX) :].split(":")
            if len(parts) != 3 or parts[0] != self.key_id:
                return None
            return hmac.compare_digest(parts[2], self._mac(parts[1], value))
        if isinstance(sealed, str) and sealed.startswith("sha256:"):  # locks of nbops < 0.2
            return hmac.compare_digest(sealed[7:], hashlib.sha256(_canon(value)).hexdigest())
        return None

    def keyed(self, value: Any) -> str:
        """A deterministic keyed hash (no salt) for fingerprints that are hashed again."""
        return self._mac("fingerprint", value)

    def lockable(
        self, params: Mapping[str, Any], previous: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Parameters as the lock keeps them: secret-named ones sealed, reusing the previous
        sealed form when it still matches so an unchanged secret does not change the lock."""
        out: dict[str, Any] = {}
        for key, value in params.items():
            if not is_secret_name(key):
                out[key] = value
                continue
            old = (previous or {}).get(key)
            keep = isinstance(old, str) and old.startswith(_PREFIX) and self.check(old, value)
            out[key] = old if keep else self.seal(value)
        return out

    def changed(self, key: str, sealed: Any, value: Any) -> str | None:
        """Why the secret parameter ``key`` counts as changed, or None when it is unchanged."""
        if sealed == "<unset>" or value == "<unset>":
            return f"param {key} {'added' if sealed == '<unset>' else 'removed'} (a secret)"
        verdict = self.check(sealed, value)
        if verdict:
            return None
        if verdict is None:
            return (
                f"param {key} was sealed with another lock key (a secret; set {KEY_ENV} to "
                "the same value everywhere to share cached results)"
            )
        return f"param {key} changed (a secret: values not shown)"
