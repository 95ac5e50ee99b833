"""How far a run's W&B copy got, as recorded in the store under metadata key ``wandb``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

#: Store metadata key holding a run's :class:`MirrorState`.
METADATA_KEY = "wandb"

COMPLETE = "complete"
PARTIAL = "partial"
NOT_MIRRORED = "not mirrored"
#: Reason recorded for a copy written from the store once its run has finished.
DEFERRED_REASON = "written from the store once the run finishes"


@dataclass(frozen=True)
class MirrorState:
    """Where a run's W&B copy stands; stored as the run's ``wandb`` metadata while it drains.

    Attributes:
        mode: ``"online"``, ``"offline"`` or ``"disabled"``; becomes ``"offline"`` after a
            fallback from a server that did not answer or answered with an error.
        status: The mirror worker: ``"starting"``, ``"running"``, ``"finished"``, ``"failed"``
            or ``"disabled"``; ``"deferred"`` for a copy written from the store after the run
            (:func:`deferred_state`).
        copy: ``"complete"`` (every row and the exit record are in the W&B copy), ``"partial"``
            (still draining, or the process ended first: ``nbops sync --offline`` completes it)
            or ``"not mirrored"``.
        rows: History rows written into the W&B copy so far.
        total: History rows the mirror was given so far (the store's rows, at finish).
        reason: Why the copy is partial or not mirrored, or why it went offline.
        error: The last wandb error, if any (the mirror keeps going where it can).
        run_dir: The wandb run directory once known.
        wandb_id: The W&B run id (the nbops id, or a fresh one if W&B kept that one reserved).
        url: The run's page for online runs.
    """

    mode: str
    status: str
    copy: str = PARTIAL
    rows: int = 0
    total: int = 0
    reason: str | None = None
    error: str | None = None
    run_dir: str | None = None
    wandb_id: str | None = None
    url: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON document stored under :data:`METADATA_KEY`."""
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> MirrorState:
        """Read a stored document back; unknown keys are ignored, missing ones defaulted."""
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in doc.items() if k in names}
        values.setdefault("mode", "offline")
        values.setdefault("status", "starting")
        if "copy" not in doc:  # written before copies were tracked
            values["copy"] = COMPLETE if doc.get("status") == "finished" else PARTIAL
        return cls(**values)


def deferred_state() -> MirrorState:
    """The state of an offline copy that will be written from the store after its run ends
    (:func:`~nbops.mirror.rebuild_offline_copy`), so no W&B run starts on the run's own path.
    Until written it counts as partial: ``nbops sync --offline`` completes it if the process
    that owed it ends first."""
    return MirrorState(mode="offline", status="deferred", copy=PARTIAL, reason=DEFERRED_REASON)


def describe_copy(
    doc: Mapping[str, Any] | None, store_rows: int | None = None, *, live: bool = False
) -> str:
    """One line on a run's W&B copy, for ``nbops runs show`` and ``%nbops status``.

    Args:
        doc: The run's ``wandb`` metadata (None: the run predates the mirror or never had one).
        store_rows: History rows (distinct steps) in the store, the copy's target.
        live: The run is still running: a mirror starting or draining is described as such
            ("starting", "N of M rows so far"), not as a partial copy to complete.
    """
    if not doc:
        return "W&B copy: not mirrored (no W&B mirror was recorded for this run)"
    state = MirrorState.from_dict(doc)
    where = state.url or state.run_dir or ""
    suffix = f" {where}" if where else ""
    why = f" ({state.reason})" if state.reason else ""
    if state.copy == NOT_MIRRORED:
        return f"W&B copy: not mirrored ({state.reason or state.error or 'no reason recorded'})"
    target = store_rows if store_rows is not None else state.total
    if state.copy == COMPLETE:
        return f"W&B copy: complete, {state.rows} rows, {state.mode}{suffix}{why}"
    if live and state.status == "starting":
        return f"W&B copy: starting, {state.mode}{why}"
    if live and state.status == "running":
        return f"W&B copy: {state.rows} of {target} rows so far, {state.mode}{suffix}{why}"
    because = state.reason or "the mirror had not finished"
    return (
        f"W&B copy: {state.rows} of {target} rows, {state.mode}{suffix} ({because}); "
        "complete it with `nbops sync --offline`"
    )
