"""``nbops gc``: drop what no current result needs: old run cache records, old executed
notebooks, and on a remote the records and objects nothing kept refers to.

What is kept: everything ``nbops.lock`` refers to, and for each stage the ``keep`` most recent
run cache records (with the outs and executed notebook each refers to). Local blobs are not
deleted: the blob store is shared by artifacts, models and datasets, and its contract is that
nbops never deletes a blob; a remote holds only what pipelines pushed, so its objects are.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nbops.errors import NbopsError
from nbops.pipeline._lock import read_lock
from nbops.pipeline._remote import Remote
from nbops.store import RunStore


@dataclass(frozen=True)
class GcResult:
    """What was (or, in a dry run, would be) removed, and the bytes freed."""

    records: int = 0
    notebooks: int = 0
    remote_records: int = 0
    remote_objects: int = 0
    bytes_freed: int = 0


def _kept(records: Mapping[str, Mapping[str, Any]], keep: int) -> set[str]:
    by_stage: dict[str, list[tuple[float, str]]] = {}
    for key, record in records.items():
        created = record.get("created")
        stamp = float(created) if isinstance(created, (int, float)) else 0.0
        by_stage.setdefault(str(record.get("stage")), []).append((stamp, key))
    return {key for items in by_stage.values() for _, key in sorted(items, reverse=True)[:keep]}


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


def gc(
    root: Path,
    store: RunStore,
    store_dir: Path,
    *,
    keep: int = 5,
    remote: Remote | None = None,
    dry_run: bool = False,
    report: Callable[[str], None] = print,
) -> GcResult:
    """Remove old run cache records and executed notebooks here, and unreferenced records and
    objects from ``remote`` when given; ``dry_run`` only counts them."""
    import json

    if keep < 1:
        raise ValueError("keep must be at least 1")
    lock = read_lock(root)
    records = store.run_cache.list()
    kept = _kept(records, keep)
    dropped = [k for k in records if k not in kept]
    if not dry_run:
        for key in dropped:
            store.run_cache.delete(key)
    kept_records = [records[k] for k in kept]
    kept_folders = {_folder_of(store, str(r.get("run"))) for r in kept_records}
    freed = notebooks = 0
    executed = store_dir / "executed"
    folders = (
        sorted(executed.iterdir(), key=lambda p: p.stat().st_mtime) if executed.is_dir() else []
    )
    for folder in folders[: max(0, len(folders) - keep)]:  # the newest `keep` runs stay
        if folder.name in kept_folders:
            continue
        notebooks += len(list(folder.glob("*.ipynb")))
        freed += sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        if not dry_run:
            shutil.rmtree(folder, ignore_errors=True)
    result_remote = (0, 0)
    if remote is not None:
        result_remote, remote_freed = _gc_remote(remote, lock, keep, dry_run, json.loads)
        freed += remote_freed
    report(
        f"{'would remove' if dry_run else 'removed'} {len(dropped)} run cache record(s), "
        f"{notebooks} executed notebook(s)"
        + (
            f", {result_remote[0]} record(s) and {result_remote[1]} object(s) on {remote.url}"
            if remote is not None
            else ""
        )
        + f"; {freed / 2**20:,.1f} MiB freed"
    )
    return GcResult(len(dropped), notebooks, result_remote[0], result_remote[1], freed)


def _folder_of(store: RunStore, run_id: str) -> str | None:
    """The executed-notebook folder a run wrote into (None when the run is unknown)."""
    try:
        executed = store.get_metadata(run_id).get("pipeline", {}).get("executed") or ""
    except NbopsError:
        return None
    return Path(executed).parent.name if executed else None


def _gc_remote(
    remote: Remote,
    lock: Mapping[str, Any],
    keep: int,
    dry_run: bool,
    loads: Callable[[bytes], Any],
) -> tuple[tuple[int, int], int]:
    records: dict[str, dict[str, Any]] = {}
    for name in remote.list("runcache"):
        with remote.open_read(name) as fh:
            try:
                records[name] = loads(fh.read())
            except ValueError:
                continue
    kept = _kept(records, keep)
    dropped = [n for n in records if n not in kept]

    def manifest(digest: str) -> dict[str, str] | None:
        name = f"objects/{digest[:2]}/{digest[2:]}"
        if not remote.exists(name):
            return None
        with remote.open_read(name) as fh:
            files = loads(fh.read()).get("files")
        return dict(files) if isinstance(files, dict) else None

    needed = _referenced([e.outs for e in lock.values()], [records[k] for k in kept], manifest)
    freed = 0
    objects = 0
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
    return (len(dropped), objects), freed
