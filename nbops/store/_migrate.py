"""Copying one store into another (SQLite <-> PostgreSQL), verified and resumable.

Everything is copied through the public parts of both stores, so any two backends work:
blobs (checked against their digest on arrival), runs with their whole history, dataset
versions and uses, model versions with extension fields, aliases with the history of their
moves, and the run cache. What the destination already holds is skipped (a run copied halfway
is completed), so an interrupted copy is resumed by running it again. Each run, dataset, model
and cache record is then compared by content hash.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nbops.errors import ArtifactError
from nbops.store._base import MetricPoint, RunStore

_CHUNK = 5000


@dataclass
class CopyReport:
    """What a copy did: per kind, how many were copied, skipped, and what differs after it."""

    copied: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    counts: dict[str, tuple[int, int]] = field(default_factory=dict)  # kind: (source, dest)
    mismatches: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches and all(a == b for a, b in self.counts.values())

    def _count(self, kind: str, copied: bool) -> None:
        table = self.copied if copied else self.skipped
        table[kind] = table.get(kind, 0) + 1

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "ok": self.ok,
            "copied": self.copied,
            "skipped": self.skipped,
            "counts": {k: {"source": a, "destination": b} for k, (a, b) in self.counts.items()},
            "mismatches": self.mismatches,
        }


def _digest(value: Any) -> str:
    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return repr(v)
        if isinstance(v, dict):
            return {str(k): clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    text = json.dumps(clean(value), sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


def run_digest(store: RunStore, run_id: str) -> str:
    """A content hash of everything a store holds about one run."""
    record = store.get_run(run_id)
    doc = {
        "record": {k: v for k, v in record.__dict__.items() if k != "status"},
        "params": store.get_params(run_id),
        "summary": store.get_summary(run_id),
        "metadata": store.get_metadata(run_id),
        "metrics": [tuple(p) for p in store.get_metrics(run_id)],
        "artifacts": [a.__dict__ for a in store.list_artifacts(run_id)],
    }
    return _digest(doc)


def _copy_blobs(src: RunStore, dst: RunStore, report: CopyReport) -> None:
    if src.blobs.url == dst.blobs.url:
        return
    total = 0
    for digest in src.blobs.digests():
        total += 1
        if dst.blobs.exists(digest):
            report._count("blobs", False)
            continue
        got, _ = dst.blobs.put_file(src.blobs.path_of(digest))
        if got != digest:
            raise ArtifactError(
                f"blob {digest} of {src.location} is corrupt (its content hashes to {got}); "
                "nothing else was copied after it"
            )
        report._count("blobs", True)
    report.counts["blobs"] = (total, sum(1 for d in src.blobs.digests() if dst.blobs.exists(d)))


def _copy_run(src: RunStore, dst: RunStore, run_id: str, known: set[str]) -> bool:
    record = src.get_run(run_id)
    if run_id not in known:
        dst.create_run(record)
    dst.log_params(run_id, src.get_params(run_id))
    for key, value in src.get_metadata(run_id).items():
        dst.set_metadata(run_id, key, value)
    points = src.get_metrics(run_id)
    have = len(dst.get_metrics(run_id))  # a copy stopped halfway holds a prefix, in order
    for start in range(have, len(points), _CHUNK):
        dst.write_progress(run_id, [MetricPoint(*p) for p in points[start : start + _CHUNK]])
    dst.write_progress(run_id, summary=src.get_summary(run_id))
    artifacts = src.list_artifacts(run_id)
    for artifact in artifacts[len(dst.list_artifacts(run_id)) :]:
        dst.add_artifact(run_id, artifact)
    if record.status != "running":
        dst.set_status(run_id, record.status, record.end_time)
    return True


def _copy_runs(src: RunStore, dst: RunStore, report: CopyReport) -> None:
    known = {r.id for r in dst.list_runs()}
    source = src.list_runs()
    for record in source:
        if record.id in known and run_digest(src, record.id) == run_digest(dst, record.id):
            report._count("runs", False)
            continue
        _copy_run(src, dst, record.id, known)
        report._count("runs", True)
        if run_digest(src, record.id) != run_digest(dst, record.id):
            report.mismatches.append(f"run {record.id}")
    copied = {r.id for r in dst.list_runs()}
    report.counts["runs"] = (len(source), sum(1 for r in source if r.id in copied))


def _copy_datasets(src: RunStore, dst: RunStore, report: CopyReport) -> None:
    total = present = 0
    for latest, _ in src.datasets.latest():
        name = latest["name"]
        for version in src.datasets.versions(name):
            total += 1
            there = dst.datasets.find(name, version["hash"])
            if not there:
                dst.datasets.record(version, None, version["created_at"])
            for run_id, used_at in src.datasets.uses(name, version["hash"]):
                dst.datasets.add_use(name, version["hash"], run_id, used_at)
            report._count("dataset versions", not there)
            mine = src.datasets.uses(name, version["hash"]), version
            theirs = (
                dst.datasets.uses(name, version["hash"]),
                dst.datasets.find(name, version["hash"])[0],
            )
            if _digest(mine) != _digest(theirs):
                report.mismatches.append(f"dataset {name}@{version['hash'][:12]}")
            else:
                present += 1
    report.counts["dataset versions"] = (total, present)


def _copy_models(src: RunStore, dst: RunStore, report: CopyReport) -> None:
    total = present = 0
    for latest, _ in src.models.names():
        name = latest["name"]
        for version in src.models.versions(name):
            total += 1
            number = int(version["version"])
            there = dst.models.get_version(name, number)
            if there is None:
                fields = {k: v for k, v in version.items() if k != "version"}
                dst.models.add_version(fields, version=number)
                there = dst.models.get_version(name, number)
            report._count("model versions", there is None)
            if _digest(there) != _digest(version):
                report.mismatches.append(f"model {name}:{number}")
            else:
                present += 1
        moves = src.models.alias_moves(name)
        done = len(dst.models.alias_moves(name))
        for move in moves[done:]:
            if move["version"] == 0:  # a removal, recorded as a move to version 0
                dst.models.remove_alias(
                    name, move["alias"], move["moved_by"], move["reason"], moved_at=move["moved_at"]
                )
            else:
                dst.models.move_alias(
                    name,
                    move["alias"],
                    move["version"],
                    move["moved_by"],
                    move["reason"],
                    moved_at=move["moved_at"],
                )
            report._count("alias moves", True)
        if _digest(moves) != _digest(dst.models.alias_moves(name)) or src.models.aliases(
            name
        ) != dst.models.aliases(name):
            report.mismatches.append(f"aliases of model {name}")
    report.counts["model versions"] = (total, present)


def _copy_run_cache(src: RunStore, dst: RunStore, report: CopyReport) -> None:
    records = src.run_cache.list()
    for key, record in records.items():
        same = dst.run_cache.get(key) == record
        if not same:
            dst.run_cache.put(key, record)
        report._count("run cache records", not same)
    theirs = dst.run_cache.list()
    report.counts["run cache records"] = (
        len(records),
        sum(1 for k, v in records.items() if theirs.get(k) == v),
    )


def copy_store(
    src: RunStore, dst: RunStore, *, progress: Callable[[str], None] | None = None
) -> CopyReport:
    """Copy everything ``src`` holds into ``dst``; skip what is already there; verify.

    Returns:
        The report; ``report.ok`` is True when every count and content hash matches.
    """
    report = CopyReport()
    steps = (
        ("blobs", _copy_blobs),
        ("datasets", _copy_datasets),
        ("models", _copy_models),
        ("runs", _copy_runs),
        ("run cache", _copy_run_cache),
    )
    for label, step in steps:
        if progress is not None:
            progress(f"copying {label} ...")
        step(src, dst, report)
    return report
