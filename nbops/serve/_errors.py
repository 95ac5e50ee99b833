"""Errors of the model server. Messages sent to clients never name paths, classes or secrets."""

from __future__ import annotations

from nbops.errors import NbopsError


class ServeError(NbopsError):
    """The server cannot start, or a serving option is invalid."""


class RequestError(NbopsError):
    """A request the server refuses; ``status`` is the HTTP status, ``field`` what was wrong.

    The message is sent to the client as it is, so it names only what the client sent.
    """

    def __init__(self, message: str, *, status: int = 400, field: str | None = None) -> None:
        self.status = status
        self.field = field
        super().__init__(message)


class RolloutError(NbopsError):
    """A rollout change (routes, promotion, rollback) is invalid."""
