"""``nbops gc``: remove what no owner refers to any more, here and on a remote.

One referenced set is built from every owner: runs not deleted (their artifacts), model and
dataset versions, the run cache records kept (each stage's ``keep`` most recent, with the outs
and executed notebook each names) and ``nbops.lock``. Then: deleted runs' rows, older run
cache records, old executed-notebook folders, downloads an interrupted pull left behind and
every local blob outside that set go; with a remote, its records beyond ``keep``, the objects
nothing kept there refers to and uploads nobody continues go too.

Blobs written since the oldest run still running started, or less than ``min_age`` seconds
ago, stay: a writer may be about to record them. ``nbops run`` is held off while gc works.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbops.errors import NbopsError
from nbops.pipeline._lock import read_lock
from nbops.pipeline._remote import Remote, ResumableRemote
from nbops.pipeline._runlock import PipelineBusyError, RunLock
from nbops.store import (
    RunStore,
    busy_since,
    outs_contents,
    store_references,
    unreferenced_blobs,
)

#: blobs younger than this (seconds) are kept by default
MIN_AGE = 600.0

#: the kinds ``GcResult.freed`` reports, in the order they are shown
KINDS = (
    "deleted runs",
    "run cache",
    "unreferenced",
    "executed notebooks",
    "partial downloads",
    "remote",
)


@dataclass(frozen=True)
class GcResult:
    """What was (or, in a dry run, would be) removed, and the bytes freed per kind."""

    runs: tuple[str, ...] = ()
    records: int = 0
    notebooks: int = 0
    objects: int = 0
    remote_records: int = 0
    remote_objects: int = 0
    #: bytes per kind: local blobs of deleted runs' artifacts, of dropped run cache records,
    #: other unreferenced blobs, executed-notebook folders, and the remote's objects
    freed: Mapping[str, int] = field(default_factory=dict)

    @property
    def bytes_freed(self) -> int:
        """All the bytes freed."""
        return sum(self.freed.values())

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (``nbops gc --json``)."""
        return {
            "runs": list(self.runs),
            "run_cache_records": self.records,
            "executed_notebooks": self.notebooks,
            "objects": self.objects,
            "remote_records": self.remote_records,
            "remote_objects": self.remote_objects,
            "bytes_freed": {k.replace(" ", "_"): self.freed.get(k, 0) for k in KINDS},
            "bytes_freed_total": self.bytes_freed,
        }


def _kept(records: Mapping[str, Mapping[str, Any]], keep: int) -> set[str]:
    by_stage: dict[str, list[tuple[float, str]]] = {}
    for key, record in records.items():
        created = record.get("created")
        stamp = float(created) if isinstance(created, (int, float)) else 0.0
        by_stage.setdefault(str(record.get("stage")), []).append((stamp, key))
    return {key for items in by_stage.values() for _, key in sorted(items, reverse=True)[:keep]}


def gc(
    root: Path,
    store: RunStore,
    store_dir: Path,
    *,
    keep: int = 5,
    remote: Remote | None = None,
    dry_run: bool = False,
    min_age: float = MIN_AGE,
    report: Callable[[str], None] = print,
) -> GcResult:
    """Remove deleted runs, run cache records beyond each stage's ``keep`` most recent, old
    executed notebooks and the local blobs nothing refers to; on ``remote`` (when given) its
    records beyond ``keep`` and unreferenced objects. ``dry_run`` only counts them."""
    if keep < 1:
        raise ValueError("keep must be at least 1")
    held = RunLock(root, store_dir)
    try:
        held.acquire()
    except PipelineBusyError as exc:
        pid, host = exc.holder.get("pid", "?"), exc.holder.get("host", "?")
        raise NbopsError(
            f"`nbops run` is running in {root} (pid {pid} on {host}); run gc once it is done"
        ) from None
    try:
        result = _gc_locked(root, store, store_dir, keep, remote, dry_run, min_age)
    finally:
        held.release()
    report(_summary(result, dry_run, remote))
    return result


def _gc_locked(
    root: Path,
    store: RunStore,
    store_dir: Path,
    keep: int,
    remote: Remote | None,
    dry_run: bool,
    min_age: float,
) -> GcResult:
    """:func:`gc`'s work, under the project's run lock."""
    from nbops.tracking import purge_deleted_runs

    lock = read_lock(root)
    records = store.run_cache.list()
    kept = _kept(records, keep)
    dropped = [k for k in records if k not in kept]
    dropped_blobs = _record_blobs(store, [records[k] for k in dropped])
    purged = purge_deleted_runs(store=store, dry_run=dry_run)
    if not dry_run:
        for key in dropped:
            store.run_cache.delete(key)
    referenced = store_references(store, cache_keys=kept)
    referenced |= outs_contents(store.blobs, [d for e in lock.values() for d in e.outs.values()])
    freed = dict.fromkeys(KINDS, 0)
    cutoff = min(time.time() - min_age, busy_since(store))
    doomed = list(unreferenced_blobs(store.blobs, referenced, written_before=cutoff))
    for digest, size in doomed:
        kind = "unreferenced"
        if digest in purged.blobs:
            kind = "deleted runs"
        elif digest in dropped_blobs:
            kind = "run cache"
        freed[kind] += size if dry_run else store.blobs.remove(digest)
    freed["partial downloads"] = _gc_staging(store, cutoff, dry_run)
    notebooks, freed["executed notebooks"] = _gc_executed(
        store, store_dir, [records[k] for k in kept], keep, dry_run
    )
    remote_counts = (0, 0)
    if remote is not None:
        remote_counts, freed["remote"] = _gc_remote(remote, lock, keep, dry_run)
    return GcResult(purged.runs, len(dropped), notebooks, len(doomed), *remote_counts, freed=freed)


def _record_blobs(store: RunStore, records: list[Mapping[str, Any]]) -> set[str]:
    """The blobs run cache ``records`` name: their outs and executed notebooks."""
    outs = [d for r in records for d in ((r.get("entry") or {}).get("outs") or {}).values()]
    executed = {str(r["executed"]) for r in records if r.get("executed")}
    return outs_contents(store.blobs, outs) | executed


def _summary(result: GcResult, dry_run: bool, remote: Remote | None) -> str:
    where = (
        f", {result.remote_records} record(s) and {result.remote_objects} object(s) on {remote.url}"
        if remote is not None
        else ""
    )
    kinds = ", ".join(f"{k} {v / 2**20:,.1f} MiB" for k, v in result.freed.items() if v)
    return (
        f"{'would remove' if dry_run else 'removed'} {len(result.runs)} deleted run(s), "
        f"{result.records} run cache record(s), {result.notebooks} executed notebook(s), "
        f"{result.objects} object(s){where}; "
        f"{result.bytes_freed / 2**20:,.1f} MiB {'would be ' if dry_run else ''}freed"
        + (f" ({kinds})" if kinds else "")
    )


def _gc_staging(store: RunStore, cutoff: float, dry_run: bool) -> int:
    """Remove downloads an interrupted pull left in the blob store's staging folder, untouched
    since ``cutoff``; return the bytes."""
    freed = 0
    for path in store.blobs.staging_dir().iterdir():
        stat = path.stat()
        if path.is_file() and stat.st_mtime < cutoff:
            freed += stat.st_size
            if not dry_run:
                path.unlink(missing_ok=True)
    return freed


def _gc_executed(
    store: RunStore,
    store_dir: Path,
    kept_records: list[Mapping[str, Any]],
    keep: int,
    dry_run: bool,
) -> tuple[int, int]:
    """Remove executed-notebook folders beyond the newest ``keep``, except those of kept run
    cache records; return ``(notebooks, bytes)``."""
    kept_folders = {_folder_of(store, str(r.get("run"))) for r in kept_records}
    executed = store_dir / "executed"
    folders = (
        sorted(executed.iterdir(), key=lambda p: p.stat().st_mtime) if executed.is_dir() else []
    )
    notebooks = freed = 0
    for folder in folders[: max(0, len(folders) - keep)]:  # the newest `keep` runs stay
        if folder.name in kept_folders:
            continue
        notebooks += len(list(folder.glob("*.ipynb")))
        freed += sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        if not dry_run:
            shutil.rmtree(folder, ignore_errors=True)
    return notebooks, freed


def _folder_of(store: RunStore, run_id: str) -> str | None:
    """The executed-notebook folder a run wrote into (None when the run is unknown)."""
    try:
        executed = store.get_metadata(run_id).get("pipeline", {}).get("executed") or ""
    except NbopsError:
        return None
    return Path(executed).parent.name if executed else None


def _referenced(
    outs_lists: list[Mapping[str, str]],
    records: list[Mapping[str, Any]],
    manifest: Callable[[str], dict[str, str] | None],
) -> set[str]:
    found: set[str] = set()
    for outs in [*outs_lists, *[(r.get("entry") or {}).get("outs") or {} for r in records]]:
        for digest in outs.values():
            if digest.startswith("dir:"):
                found.add(digest[4:])
                found.update((manifest(digest[4:]) or {}).values())
            else:
                found.add(digest)
    found.update(str(r["executed"]) for r in records if r.get("executed"))
    return found


def _gc_remote(
    remote: Remote, lock: Mapping[str, Any], keep: int, dry_run: bool
) -> tuple[tuple[int, int], int]:
    records: dict[str, dict[str, Any]] = {}
    for name in remote.list("runcache"):
        with remote.open_read(name) as fh:
            try:
                records[name] = json.loads(fh.read())
            except ValueError:
                continue
    kept = _kept(records, keep)
    dropped = [n for n in records if n not in kept]

    def manifest(digest: str) -> dict[str, str] | None:
        name = f"objects/{digest[:2]}/{digest[2:]}"
        if not remote.exists(name):
            return None
        with remote.open_read(name) as fh:
            files = json.loads(fh.read()).get("files")
        return dict(files) if isinstance(files, dict) else None

    needed = _referenced([e.outs for e in lock.values()], [records[k] for k in kept], manifest)
    freed = objects = 0
    for name in list(remote.list("objects")):
        digest = name.replace("objects/", "").replace("/", "")
        if digest in needed:
            continue
        objects += 1
        freed += remote.size(name)
        if not dry_run:
            remote.delete(name)
    if not dry_run:
        for name in dropped:
            remote.delete(name)
    if isinstance(remote, ResumableRemote):  # interrupted uploads nobody continues
        partials, partial_bytes = remote.drop_partials(dry_run)
        objects, freed = objects + partials, freed + partial_bytes
    return (len(dropped), objects), freed
