"""The IPython extension: the ``%nbops`` magic, cell recording and provenance reports."""

from __future__ import annotations

from typing import Any

from nbops.notebook._provenance import ProvenanceReport, analyse

__all__ = ["ProvenanceReport", "analyse", "load_extension", "unload_extension"]

_sessions: dict[int, Any] = {}
_loaded: set[int] = set()


def load_extension(shell: Any) -> None:
    """Register the magic and the cell recorder on ``shell`` (once, even on ``%reload_ext``)."""
    from nbops.notebook._magics import NbopsMagics
    from nbops.notebook._session import NotebookSession

    if id(shell) in _loaded:
        return
    session = _sessions.get(id(shell))
    if session is None:
        session = _sessions[id(shell)] = NotebookSession(shell)
    session.recorder.register()
    shell.register_magics(NbopsMagics(shell, session))
    _loaded.add(id(shell))


def unload_extension(shell: Any) -> None:
    """Unregister the cell recorder; the tracked run stays active until stopped or exit."""
    session = _sessions.get(id(shell))
    if session is not None and id(shell) in _loaded:
        session.recorder.unregister()
        _loaded.discard(id(shell))


def session_for(shell: Any) -> Any:
    """Return the :class:`NotebookSession` of ``shell`` (None before ``%load_ext nbops``)."""
    return _sessions.get(id(shell))
