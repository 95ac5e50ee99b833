"""Monitor alerts: one JSON event per decision, POSTed with retries and an HMAC signature.

The signature follows GitHub webhooks: ``X-Nbops-Signature-256: sha256=<hex HMAC-SHA256 of the
body>`` keyed by the secret, so a receiver can check the event came from this monitor. The secret
is read from an environment variable and never logged or stored.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

#: The events ``nbops monitor`` sends, one per decision.
EVENTS = ("drift", "promoted", "kept", "retrain_failed", "performance")
SIGNATURE_HEADER = "X-Nbops-Signature-256"
EVENT_HEADER = "X-Nbops-Event"


@dataclass(frozen=True)
class Delivery:
    """How sending one alert went: attempts made and the last problem (None when delivered)."""

    event: str
    attempts: int
    error: str | None

    @property
    def delivered(self) -> bool:
        return self.error is None


def sign(body: bytes, secret: str) -> str:
    """The signature header value of ``body``: ``sha256=<hex HMAC-SHA256>``."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def send_alert(
    url: str,
    payload: Mapping[str, Any],
    *,
    secret: str | None = None,
    retries: int = 3,
    backoff: float = 0.5,
    timeout: float = 5.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Delivery:
    """POST ``payload`` as JSON; retry server errors and connection problems with backoff.

    Never raises: the result says how many attempts were made and what went wrong. A 4xx answer
    is not retried (the receiver refused the event).
    """
    import urllib.error
    import urllib.request

    event = str(payload.get("event", ""))
    if not url.startswith(("http://", "https://")):
        return Delivery(event, 0, f"not an http(s) URL: {url}")
    body = json.dumps(payload, default=str, sort_keys=True).encode("utf-8")
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "nbops-monitor",
        EVENT_HEADER: event,
    }
    if secret:
        headers[SIGNATURE_HEADER] = sign(body, secret)
    problem = "not sent"
    attempts = 0
    for attempt in range(1, max(1, retries + 1) + 1):
        attempts = attempt
        request = urllib.request.Request(  # noqa: S310 - scheme checked above
            url, data=body, method="POST", headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                if response.status < 300:
                    return Delivery(event, attempts, None)
                problem = f"HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            problem = f"HTTP {exc.code}"
            if 400 <= exc.code < 500 and exc.code not in (408, 429):
                break
        except (urllib.error.URLError, OSError) as exc:
            problem = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
        if attempt <= retries:
            logger.info("alert %s attempt %d failed (%s); retrying", event, attempt, problem)
            sleep(backoff * 2 ** (attempt - 1))
    return Delivery(event, attempts, problem)
