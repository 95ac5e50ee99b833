"""Tags and notes edited on a run, before or after it finished, carried to its W&B copy."""

from __future__ import annotations

from collections.abc import Sequence

from nbops.errors import InvalidValueError
from nbops.redact import scrub_text
from nbops.store import RunStore, open_store

#: Metadata key of a run's notes.
NOTES_KEY = "notes"


def clean_tags(tags: Sequence[str] | str) -> tuple[str, ...]:
    """Tags as stored: text, secrets scrubbed, duplicates dropped, order kept."""
    values = (tags,) if isinstance(tags, str) else tuple(str(t) for t in tags)
    return tuple(dict.fromkeys(scrub_text(t) for t in values))


def set_tags(
    run_id: str, tags: Sequence[str] | str, *, store: RunStore | str | None = None
) -> tuple[str, ...]:
    """Replace the tags of run ``run_id`` (an id or unique prefix); return them as stored.

    A finished run's W&B copy is marked for ``nbops sync`` to rebuild with the new tags (a run
    still running carries them to W&B itself).
    """
    target = open_store(store)
    run_id = target.resolve_id(run_id)
    clean = clean_tags(tags)
    target.set_tags(run_id, clean)
    _outdate(target, run_id, "tags")
    return clean


def set_notes(run_id: str, text: str, *, store: RunStore | str | None = None) -> str:
    """Replace the notes of run ``run_id``; return them as stored (secrets scrubbed).

    Like :func:`set_tags`, a finished run's W&B copy is marked to be rebuilt by ``nbops sync``.
    """
    if not isinstance(text, str):
        raise InvalidValueError(f"run notes are text, not {type(text).__name__}")
    target = open_store(store)
    run_id = target.resolve_id(run_id)
    clean = scrub_text(text)
    target.set_metadata(run_id, NOTES_KEY, clean)
    _outdate(target, run_id, "notes")
    return clean


def _outdate(store: RunStore, run_id: str, what: str) -> None:
    from nbops.mirror import mark_outdated

    mark_outdated(
        store, run_id, f"{what} changed after the run finished; `nbops sync` rebuilds the copy"
    )
