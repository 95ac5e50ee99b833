"""Ask the W&B server, within a bounded time, whether it accepts our key, before wandb does.

wandb itself waits up to ~100 s for a server that does not answer and, once a server answered
with an error, keeps the run id it tried reserved. One small GraphQL request with a short
timeout tells apart the cases that matter: no answer at all, an HTTP error, or a working server.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlparse

from nbops.mirror._mode import base_url, netrc_path

#: Seconds the mirror gives the server before mirroring offline instead.
PROBE_TIMEOUT = 1.5


@dataclass(frozen=True)
class ServerCheck:
    """The outcome of :func:`check_server`.

    Attributes:
        url: The server asked.
        ok: The server answered the request with HTTP 2xx.
        status: The HTTP status it answered with; None when it did not answer.
        detail: What happened, for a message ("no answer within 1.5 s", "HTTP 500 ...").
    """

    url: str
    ok: bool
    status: int | None
    detail: str

    @property
    def answered(self) -> bool:
        """True when the server sent an HTTP answer (even an error)."""
        return self.status is not None

    def describe(self) -> str:
        """One phrase: ``the W&B server X answered HTTP 500`` or ``... could not be reached``."""
        if self.ok:
            return f"the W&B server {self.url} answered"
        if self.answered:
            return f"the W&B server {self.url} answered {self.detail}"
        return f"the W&B server {self.url} could not be reached ({self.detail})"


def api_key(environ: Mapping[str, str] | None = None) -> str | None:
    """Return the API key wandb would use (``WANDB_API_KEY`` or the netrc entry), or None."""
    import netrc

    env = os.environ if environ is None else environ
    key = env.get("WANDB_API_KEY", "").strip()
    if key:
        return key
    host = urlparse(base_url(env)).hostname or ""
    path = netrc_path(env)
    if not host or not os.path.isfile(path):
        return None
    try:
        entry = netrc.netrc(path).authenticators(host)
    except (netrc.NetrcParseError, OSError):
        return None
    return entry[2] if entry and entry[2] else None


def check_server(
    url: str | None = None, key: str | None = None, timeout: float = PROBE_TIMEOUT
) -> ServerCheck:
    """POST a minimal GraphQL query (``viewer``) to the server and report how it answered.

    Never raises and never waits longer than about ``timeout`` seconds (connect and read each
    bounded). The key is sent as wandb sends it (HTTP basic auth, user ``api``) and never appears
    in the result.
    """
    import urllib.error
    import urllib.request

    url = (url or base_url()).rstrip("/")
    if urlparse(url).scheme not in ("http", "https"):
        return ServerCheck(url, False, None, "not an http(s) URL")
    key = key if key is not None else api_key()
    body = json.dumps({"query": "query Viewer { viewer { id } }"}).encode()
    request = urllib.request.Request(  # noqa: S310 (scheme checked)
        f"{url}/graphql", data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    if key:
        token = base64.b64encode(f"api:{key}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=max(timeout, 0.1)) as response:  # noqa: S310
            return ServerCheck(url, True, int(response.status), f"HTTP {response.status}")
    except urllib.error.HTTPError as exc:
        reason = {401: " (the API key was refused)", 403: " (access denied)"}.get(exc.code, "")
        return ServerCheck(url, False, exc.code, f"HTTP {exc.code}{reason}")
    except TimeoutError:
        return ServerCheck(url, False, None, f"no answer within {timeout:g} s")
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            return ServerCheck(url, False, None, f"no answer within {timeout:g} s")
        refused = isinstance(exc.reason, ConnectionRefusedError)
        return ServerCheck(url, False, None, "connection refused" if refused else str(exc.reason))
    except (OSError, ValueError) as exc:
        return ServerCheck(url, False, None, f"cannot connect: {type(exc).__name__}")


class PendingCheck:
    """A :func:`check_server` running on its own daemon thread, started at once.

    The mirror asks the server while its worker imports wandb, so a failing server costs the
    start no more than the slower of the two.
    """

    def __init__(self, timeout: float = PROBE_TIMEOUT) -> None:
        """Start asking the server (URL and key from the environment, as wandb reads them)."""
        import threading

        self._timeout = timeout
        self._url = base_url()
        self._result: ServerCheck | None = None
        self._thread = threading.Thread(target=self._run, name="nbops-wandb-probe", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        self._result = check_server(self._url, timeout=self._timeout)

    def result(self) -> ServerCheck:
        """Wait for the answer (about ``timeout`` seconds at most) and return it."""
        self._thread.join(self._timeout + 1.0)
        if self._result is None:
            return ServerCheck(self._url, False, None, f"no answer within {self._timeout:g} s")
        return self._result
