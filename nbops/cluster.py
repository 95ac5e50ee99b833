"""Where work runs, named by URL: ``local`` (this machine) or ``dask://HOST:PORT`` (a Dask cluster).

Pipelines (``nbops run --executor``, ``executor:`` in ``nbops.yaml``) and sweeps
(``nbops.sweep(..., executor=...)``) parse the same URLs here, and connect to a Dask scheduler
through :func:`dask_client`, so both speak of a cluster the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from nbops.errors import InvalidValueError, NbopsError

if TYPE_CHECKING:
    from distributed import Client

#: What ``--executor`` accepts, for messages.
FORMS = "'local' or 'dask://HOST:PORT' (a Dask scheduler, e.g. dask://127.0.0.1:8786)"


class ClusterUnavailableError(NbopsError):
    """No Dask scheduler answered at the executor's address."""

    def __init__(self, url: str, reason: str) -> None:
        self.url, self.reason = url, reason
        super().__init__(
            f"no Dask scheduler answers at {url} ({reason}); start one with "
            f"'dask scheduler --host HOST --port PORT' and workers with "
            f"'dask worker tcp://HOST:PORT', or run with --executor local"
        )


@dataclass(frozen=True)
class Executor:
    """A parsed executor URL.

    Attributes:
        kind: ``"local"`` or ``"dask"``.
        url: The URL as the user wrote it (for messages and records).
        address: The scheduler's ``tcp://HOST:PORT`` for ``dask``, else ``None``.
    """

    kind: Literal["local", "dask"]
    url: str
    address: str | None = None

    @property
    def is_local(self) -> bool:
        """True for work on this machine."""
        return self.kind == "local"


LOCAL = Executor("local", "local")


def parse_executor(url: str | None) -> Executor:
    """Read an executor URL (``None``, ``""`` and ``"local"`` mean this machine).

    Raises:
        InvalidValueError: The URL is neither form, or a Dask URL lacks its host or port.
    """
    text = (url or "").strip()
    if text in ("", "local"):
        return LOCAL
    parts = urlsplit(text)
    if parts.scheme not in ("dask", "tcp"):
        raise InvalidValueError(f"executor {text!r} is not understood; use {FORMS}")
    try:
        port = parts.port
    except ValueError as exc:
        raise InvalidValueError(f"executor {text!r} has a bad port; use {FORMS}") from exc
    if not parts.hostname or port is None or parts.path not in ("", "/"):
        raise InvalidValueError(f"executor {text!r} needs a host and a port; use {FORMS}")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return Executor("dask", text, f"tcp://{host}:{port}")


def dask_client(executor: Executor | str, *, timeout: float = 10.0) -> Client:
    """Connect to the Dask scheduler of ``executor`` (a parsed executor or its URL).

    Raises:
        InvalidValueError: ``executor`` is not a Dask executor.
        ClusterUnavailableError: Nothing answered within ``timeout`` seconds.
        MissingDependencyError: ``dask[distributed]`` is not installed (``nbops[dask]``).
    """
    parsed = parse_executor(executor) if isinstance(executor, str) else executor
    if parsed.kind != "dask" or parsed.address is None:
        raise InvalidValueError(f"executor {parsed.url!r} is not a Dask cluster; use {FORMS}")
    from nbops.deps import require

    distributed = require("distributed", feature="running on a Dask cluster")
    try:
        client: Client = distributed.Client(parsed.address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise ClusterUnavailableError(parsed.url, str(exc) or type(exc).__name__) from exc
    return client
