"""Build a run's W&B offline copy from the store, for copies a process left incomplete.

The store is the source of truth; the W&B copy derives from it. A kernel shut down without
``%nbops stop``, a SIGKILL, a crash or a failed fallback leaves a copy that is partial or
missing, and the run's ``wandb`` metadata says so. :func:`complete_offline_copies` rebuilds each
such copy from the store into a fresh offline run (same id, name, config, history, summary,
code files and artifacts) and removes the incomplete folder it replaces.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from nbops.errors import MirrorError
from nbops.fileio import write_atomic
from nbops.mirror._code import code_files, git_info, write_code_files
from nbops.mirror._media import MEDIA_KINDS, MediaFile, media_row
from nbops.mirror._offline_file import exit_record_written
from nbops.mirror._offline_writer import RunCopy, remove_stale_staging, write_offline_run
from nbops.mirror._state import COMPLETE, METADATA_KEY, NOT_MIRRORED, PARTIAL, MirrorState
from nbops.mirror._wandb_process import (
    fresh_id,
    go_offline_process_wide,
    log_artifact,
    mirror_settings,
    scrub_run_dir,
)
from nbops.redact import redact, scrub_text
from nbops.store import ArtifactRecord, RunRecord, RunStore

logger = logging.getLogger(__name__)

#: Seconds to wait for wandb-core to write a rebuilt copy's exit record.
_WRITE_TIMEOUT = 60.0


@dataclass(frozen=True)
class CopyResult:
    """What :func:`complete_offline_copies` did for one run.

    Attributes:
        run_id: The nbops run.
        action: ``"rebuilt"``, ``"skipped"`` (still running) or ``"failed"``.
        detail: The new run directory, or why the run was skipped or failed.
        rows: History rows in the rebuilt copy.
    """

    run_id: str
    action: str
    detail: str
    rows: int = 0


def incomplete_copies(store: RunStore) -> list[tuple[str, MirrorState]]:
    """Return ``(run id, state)`` for every run whose W&B copy is not complete.

    Runs whose mirror was disabled, and runs with no ``wandb`` metadata (they never had a
    mirror), are left out.
    """
    found = []
    for record in store.list_runs():
        doc = store.get_metadata(record.id).get(METADATA_KEY)
        if not isinstance(doc, dict):
            continue
        state = MirrorState.from_dict(doc)
        if state.mode == "disabled" or state.copy == COMPLETE:
            continue
        found.append((record.id, state))
    return found


def mark_outdated(store: RunStore, run_id: str, reason: str) -> bool:
    """Record that run ``run_id``'s finished W&B copy no longer matches the store (tags or
    notes edited afterwards), so ``nbops sync`` rebuilds it from the store.

    Returns:
        True when the run has a W&B copy to rebuild; False when it never had one (mirror
        disabled or not mirrored) or is still running (its own mirror carries the change).
    """
    doc = store.get_metadata(run_id).get(METADATA_KEY)
    if not isinstance(doc, dict) or store.get_run(run_id).status == "running":
        return False
    state = MirrorState.from_dict(doc)
    if state.mode == "disabled" or state.copy == NOT_MIRRORED:
        return False
    store.set_metadata(run_id, METADATA_KEY, replace(state, copy=PARTIAL, reason=reason).to_dict())
    return True


def complete_offline_copies(store: RunStore, directory: str | os.PathLike[str]) -> list[CopyResult]:
    """Rebuild, from the store, every incomplete W&B copy as a complete offline run.

    Args:
        store: The run store.
        directory: Where new copies go (the folder holding ``wandb/``) when a run's metadata
            does not name a run directory.

    Returns:
        One :class:`CopyResult` per incomplete copy. Runs still running are skipped (their
        mirror is still writing).
    """
    results = []
    for run_id, state in incomplete_copies(store):
        if store.get_run(run_id).status == "running":
            results.append(CopyResult(run_id, "skipped", "the run is still running"))
            continue
        try:
            results.append(rebuild_offline_copy(store, run_id, directory, previous=state))
        except Exception as exc:  # noqa: BLE001 - one bad run must not stop the others; the store keeps it
            message = scrub_text(f"{type(exc).__name__}: {exc}")
            logger.warning("could not rebuild the W&B copy of run %s: %s", run_id, message)
            results.append(CopyResult(run_id, "failed", message))
    remove_stale_staging(Path(directory).absolute() / "wandb")
    return results


def needs_wandb(store: RunStore, run_id: str) -> bool:
    """True when run ``run_id``'s W&B copy needs wandb itself: logged media become
    ``wandb.Image``, ``wandb.Table`` or ``wandb.Histogram`` values and artifacts become
    ``wandb.Artifact``s (both are stored as the run's artifacts). Any other copy is written
    directly (:func:`~nbops.mirror._offline_writer.write_offline_run`), without wandb."""
    return bool(store.list_artifacts(run_id))


def rebuild_offline_copy(
    store: RunStore,
    run_id: str,
    directory: str | os.PathLike[str],
    previous: MirrorState | None = None,
    *,
    reason: str = "rebuilt from the store by `nbops sync`",
    through_wandb: bool | None = None,
) -> CopyResult:
    """Write run ``run_id`` from the store into a new, complete offline W&B run.

    Also writes the copies deferred with :func:`~nbops.mirror.deferred_state` (a sweep's
    trials), with ``reason`` saying so in the run's ``wandb`` metadata.

    A run without media or artifacts (:func:`needs_wandb`) is written directly, in about a
    millisecond, with the run's own id, start time and host; others go through wandb (one
    ``wandb.init`` and ``finish``, 12-20 ms of CPU). Either way the copy holds the same config,
    history, summary and code files, and ``wandb sync`` uploads it. ``through_wandb=True``
    sends any run through wandb (to compare the two).

    The incomplete copy it replaces (the run directory recorded in ``previous`` and any other
    ``offline-run-*`` folder of the same W&B id next to it) is removed once the new copy is on
    disk, and the run's ``wandb`` metadata is updated.

    Raises:
        MirrorError: wandb could not write the copy.
    """
    record = store.get_run(run_id)
    metadata = store.get_metadata(run_id)
    old_dir = Path(previous.run_dir) if previous and previous.run_dir else None
    parent = old_dir.parent.parent if old_dir is not None else Path(directory).absolute()
    if through_wandb or needs_wandb(store, run_id):
        run_dir, wandb_id, rows = _copy_with_wandb(store, record, metadata, parent)
    else:
        run_dir, rows = _copy_directly(store, record, metadata, parent)
        wandb_id = run_id
    scrub_run_dir(run_dir)
    if not _first_copy(metadata, previous):  # a first copy replaces nothing: no folder listing
        _remove_replaced(run_dir, old_dir, {run_id, previous.wandb_id if previous else None})
    state = MirrorState(
        mode="offline",
        status="finished",
        copy=COMPLETE,
        rows=rows,
        total=rows,
        reason=reason,
        run_dir=str(run_dir),
        wandb_id=wandb_id,
    )
    store.set_metadata(run_id, METADATA_KEY, state.to_dict())
    return CopyResult(run_id, "rebuilt", str(run_dir), rows)


def _copy_directly(
    store: RunStore, record: RunRecord, metadata: dict[str, Any], parent: Path
) -> tuple[Path, int]:
    """Write the copy without wandb; return its folder and history row count."""
    commit, remote = git_info(metadata)
    notes = metadata.get("notes")
    rows = _history(store, record.id)
    copy = RunCopy(
        run_id=record.id,
        project=record.project,
        name=scrub_text(record.name),
        start_time=record.start_time,
        group=record.group,
        job_type=record.job_type,
        tags=tuple(scrub_text(t) for t in record.tags),
        notes=scrub_text(notes) if isinstance(notes, str) else "",
        host=record.host,
        config=redact(store.get_params(record.id)),
        rows=[(step, *rows[step]) for step in sorted(rows)],
        summary=redact(store.get_summary(record.id)),
        end_time=record.end_time,
        exit_code=0 if record.status == "finished" else 1,
        git_commit=commit,
        git_remote=remote,
        files=code_files(metadata),
    )
    return write_offline_run(copy, parent / "wandb").absolute(), len(rows)


def _copy_with_wandb(
    store: RunStore, record: RunRecord, metadata: dict[str, Any], parent: Path
) -> tuple[Path, str, int]:
    """Write the copy through wandb; return its folder, W&B id and history row count."""
    import wandb

    run_id = record.id
    commit, remote = git_info(metadata)
    settings = mirror_settings(wandb, commit, remote)
    go_offline_process_wide(wandb)
    kwargs: dict[str, Any] = {
        "name": record.name,
        "project": record.project,
        "group": record.group,
        "job_type": record.job_type,
        "tags": list(record.tags),
        "notes": metadata.get("notes") or None,
        "config": redact(store.get_params(run_id)),
        "dir": str(parent),
    }
    kwargs.update(mode="offline", reinit="create_new", settings=settings)
    try:
        run = wandb.init(id=run_id, **kwargs)
    except Exception:  # noqa: BLE001 - this process tried the id online before: wandb keeps it reserved
        run = wandb.init(id=fresh_id(run_id), **kwargs)
    with tempfile.TemporaryDirectory(prefix="nbops-wandb-") as scratch:
        rows = _write(run, store, run_id, metadata, Path(scratch))
        run.finish(exit_code=0 if record.status == "finished" else 1)
    run_dir = Path(run.dir).parent.absolute()
    if not _wait_written(run_dir):
        raise MirrorError(f"wandb did not finish writing {run_dir}; run `nbops sync` again")
    return run_dir, str(run.id), rows


def _history(store: RunStore, run_id: str) -> dict[int, tuple[float, dict[str, Any]]]:
    """The run's metrics as W&B history rows: ``{step: (latest time, {metric: value})}``."""
    rows: dict[int, tuple[float, dict[str, Any]]] = {}
    for point in store.get_metrics(run_id):  # ordered by step, then time
        timestamp, values = rows.setdefault(point.step, (point.timestamp, {}))
        values[point.key] = point.value
        if point.timestamp > timestamp:
            rows[point.step] = (point.timestamp, values)
    return rows


def _write(run: Any, store: RunStore, run_id: str, metadata: dict[str, Any], scratch: Path) -> int:
    import wandb

    rows = _history(store, run_id)
    for step, timestamp, key, media in media_files(store, run_id, scratch):
        rows.setdefault(step, (timestamp, {}))[1][key] = media  # as when logged live
    for step in sorted(rows):
        timestamp, values = rows[step]
        with media_row(wandb, values) as row:
            run.log({**row, "_timestamp": timestamp}, step=step)
    run.summary.update(redact(store.get_summary(run_id)))
    write_code_files(run, code_files(metadata))
    objects = store.blobs
    for i, artifact in enumerate(store.list_artifacts(run_id)):
        if _is_media(artifact) and not artifact.metadata.get("artifact"):
            continue  # logged media are W&B history values, not W&B artifacts
        if artifact.kind == "dir":
            folder = objects.restore(artifact.digest, "dir", scratch / str(i))
            log_artifact(run, folder, artifact.name, artifact.type)
            continue
        path = _local(objects, artifact.digest, scratch / str(i))
        source = Path(artifact.source).name or artifact.name
        log_artifact(run, path, artifact.name, artifact.type, file_name=source)
    return len(rows)


def _is_media(artifact: ArtifactRecord) -> bool:
    details = artifact.metadata
    return (
        artifact.kind == "file"
        and details.get("media") in MEDIA_KINDS
        and isinstance(details.get("step"), int)
        and "key" in details
    )


def media_files(
    store: RunStore, run_id: str, scratch: Path | None = None
) -> list[tuple[int, float, str, MediaFile]]:
    """The media logged into run ``run_id`` (with ``log`` or ``log_table``) as
    ``(step, time, key, MediaFile)``, for the W&B copy's history rows.

    Args:
        scratch: A folder for blobs fetched from a remote blob store; without one, the blob
            store's local paths are used.
    """
    objects = store.blobs
    found = []
    for i, artifact in enumerate(store.list_artifacts(run_id)):
        if not _is_media(artifact):
            continue
        details = artifact.metadata
        path = (
            _local(objects, artifact.digest, scratch / f"media{i}")
            if scratch is not None
            else objects.path_of(artifact.digest)
        )
        media = MediaFile(
            kind=str(details["media"]),
            path=str(path),
            caption=details.get("caption"),
            index=bool(details.get("index", False)),
        )
        found.append((int(details["step"]), artifact.created_at, str(details["key"]), media))
    return found


def _local(objects: Any, digest: str, scratch: Path) -> Path:
    """A local file with the blob's bytes (fetched into ``scratch`` for a remote blob store)."""
    path: Path = objects.path_of(digest)
    if not path.is_file():
        write_atomic(scratch, objects.read_bytes(digest))
        path = scratch
    return path


def _wait_written(run_dir: Path) -> bool:
    import time

    deadline = time.monotonic() + _WRITE_TIMEOUT
    while not exit_record_written(run_dir):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _first_copy(metadata: dict[str, Any], previous: MirrorState | None) -> bool:
    """True when the run's copy was deferred and never written (a sweep's trial), so no
    folder of it exists to replace."""
    doc = metadata.get(METADATA_KEY)
    recorded = MirrorState.from_dict(doc) if isinstance(doc, dict) else None
    return all(
        state is not None and state.status == "deferred" and not state.run_dir
        for state in (recorded, previous or recorded)
    )


def _remove_replaced(new_dir: Path, old_dir: Path | None, ids: set[str | None]) -> None:
    """Delete the incomplete offline folders the new copy replaces."""
    candidates = set()
    if old_dir is not None and old_dir.is_dir():
        candidates.add(old_dir.resolve())
    endings = tuple(f"-{wandb_id}" for wandb_id in ids if wandb_id)
    with os.scandir(new_dir.parent) as entries:  # one listing, no pattern per id
        for entry in entries:
            if entry.name.startswith("offline-run-") and entry.name.endswith(endings):
                candidates.add(Path(entry.path).resolve())
    for path in candidates:
        if path == new_dir.resolve() or not path.name.startswith("offline-run-"):
            continue
        shutil.rmtree(path, ignore_errors=True)
        logger.info("removed incomplete W&B copy %s", path)
