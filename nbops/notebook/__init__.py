"""The IPython extension: the ``%nbops`` magic, cell recording and provenance reports."""

from __future__ import annotations

from typing import Any

from nbops.notebook._install import install_extension, uninstall_extension
from nbops.notebook._provenance import ProvenanceReport, analyse

__all__ = [
    "ProvenanceReport",
    "analyse",
    "install_extension",
    "load_extension",
    "session_for",
    "uninstall_extension",
    "unload_extension",
]

_sessions: dict[int, Any] = {}
_loaded: set[int] = set()


def load_extension(shell: Any) -> None:
    """Register the magic, the cell recorder and the session's hooks on ``shell``.

    Idempotent (``%reload_ext`` does not register twice). In a kernel that a pipeline or a sweep
    started with ``$NBOPS_RUN_ID`` set (they load the extension at start-up), the session
    attaches to that run before the first cell runs.
    """
    from nbops.notebook._magics import NbopsMagics
    from nbops.notebook._session import NotebookSession

    if id(shell) in _loaded:
        return
    session = _sessions.get(id(shell))
    if session is None:
        session = _sessions[id(shell)] = NotebookSession(shell)
    session.register()
    shell.register_magics(NbopsMagics(shell, session))
    _loaded.add(id(shell))


def unload_extension(shell: Any) -> None:
    """Unregister every hook and the magic that :func:`load_extension` registered.

    The tracked run stays active until it is stopped or the process exits.
    """
    session = _sessions.get(id(shell))
    if session is None or id(shell) not in _loaded:
        return
    session.unregister()
    manager = getattr(shell, "magics_manager", None)
    if manager is not None:
        manager.magics.get("line", {}).pop("nbops", None)
        manager.registry.pop("NbopsMagics", None)
    _loaded.discard(id(shell))


def session_for(shell: Any) -> Any:
    """Return the :class:`NotebookSession` of ``shell`` (None before ``%load_ext nbops``)."""
    return _sessions.get(id(shell))
