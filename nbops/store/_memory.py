"""``memory://``: the in-memory reference backend (one process; tests and notebooks' scratch).

It implements every contract the simplest way, so its behaviour is the reference the SQL
backends are compared with. Blobs go to a temporary folder removed when the process exits.
"""

from __future__ import annotations

import copy
import math
import socket
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from nbops.errors import AmbiguousRunIdError, RunNotFoundError, StoreError
from nbops.process import pid_alive
from nbops.store._base import (
    FINAL_STATUSES,
    RUN_STATUSES,
    ArtifactRecord,
    MetricPoint,
    RunRecord,
    RunRow,
    RunStore,
    unique_tags,
)
from nbops.store._blobs import BlobStore
from nbops.store._memory_parts import MemoryDatasetStore, MemoryModelStore, MemoryRunCache
from nbops.store._objects import ObjectStore
from nbops.store._query import DELETED_KEY, RunQuery, matches


def _json_copy(value: Any) -> Any:
    return copy.deepcopy(value)


class MemoryStore(RunStore):
    """Every part in dicts guarded by one lock; nothing survives the process."""

    def __init__(self, name: str = "", *, blobs: BlobStore | None = None) -> None:
        self._name = name
        self._lock = threading.RLock()
        self._folder = tempfile.TemporaryDirectory(prefix="nbops-memory-store-")
        self._blobs = blobs if blobs is not None else ObjectStore(Path(self._folder.name) / "o")
        self._runs: dict[str, RunRecord] = {}
        self._params: dict[str, dict[str, Any]] = {}
        self._summary: dict[str, dict[str, Any]] = {}
        self._metadata: dict[str, dict[str, Any]] = {}
        self._metrics: dict[str, list[MetricPoint]] = {}
        self._artifacts: dict[str, list[ArtifactRecord]] = {}
        self._models = MemoryModelStore(self._lock)
        self._datasets = MemoryDatasetStore(self._lock)
        self._run_cache = MemoryRunCache(self._lock)
        self._host = socket.gethostname()

    @property
    def url(self) -> str:
        return f"memory://{self._name}"

    @property
    def path(self) -> Path:
        return Path(self._folder.name)

    @property
    def blobs(self) -> BlobStore:
        return self._blobs

    @property
    def models(self) -> MemoryModelStore:
        return self._models

    @property
    def datasets(self) -> MemoryDatasetStore:
        return self._datasets

    @property
    def run_cache(self) -> MemoryRunCache:
        return self._run_cache

    def __repr__(self) -> str:
        return f"MemoryStore({self._name!r})"

    def _need(self, run_id: str) -> RunRecord:
        record = self._runs.get(run_id)
        if record is None:
            raise RunNotFoundError(run_id, self.url)
        return record

    # --- writes -----------------------------------------------------------------------------
    def create_run(self, record: RunRecord) -> None:
        with self._lock:
            if record.id in self._runs:
                raise StoreError(f"a run with id {record.id!r} already exists")
            self._runs[record.id] = record
            for table in (self._params, self._summary, self._metadata):
                table[record.id] = {}
            self._metrics[record.id] = []
            self._artifacts[record.id] = []

    def _replace(self, run_id: str, **fields: Any) -> None:
        self._runs[run_id] = RunRecord(**{**self._need(run_id).__dict__, **fields})

    def set_status(self, run_id: str, status: str, end_time: float | None = None) -> None:
        if status not in RUN_STATUSES:
            raise StoreError(f"unknown run status {status!r}; use one of {', '.join(RUN_STATUSES)}")
        if status in FINAL_STATUSES and end_time is None:
            end_time = time.time()
        with self._lock:
            self._replace(run_id, status=status, end_time=end_time)

    def set_tags(self, run_id: str, tags: Sequence[str]) -> None:
        with self._lock:
            self._replace(run_id, tags=tuple(unique_tags(tags)))

    def purge_run(self, run_id: str) -> None:
        with self._lock:
            if self._need(run_id).status == "running":
                raise StoreError(f"run {run_id} is running; finish it before removing it")
            del self._runs[run_id]
            for table in (self._params, self._summary, self._metadata):
                del table[run_id]
            del self._metrics[run_id]
            del self._artifacts[run_id]

    def reopen_run(self, run_id: str, pid: int, host: str, heartbeat_time: float) -> None:
        self.reap_crashed()
        with self._lock:
            if self._need(run_id).status == "running":
                raise StoreError(f"run {run_id} is running in another process; it cannot resume")
            self._replace(
                run_id,
                status="running",
                end_time=None,
                pid=pid,
                host=host,
                heartbeat_time=heartbeat_time,
            )

    def write_progress(
        self,
        run_id: str,
        points: Sequence[MetricPoint] = (),
        summary: Mapping[str, Any] | None = None,
        heartbeat_time: float | None = None,
    ) -> None:
        with self._lock:
            record = self._need(run_id)
            self._metrics[run_id].extend(MetricPoint(*p) for p in points)
            if summary:
                self._summary[run_id].update({str(k): _json_copy(v) for k, v in summary.items()})
            if heartbeat_time is not None:
                crashed = record.status == "crashed"
                self._replace(
                    run_id,
                    heartbeat_time=heartbeat_time,
                    status="running" if crashed else record.status,
                    end_time=None if crashed else record.end_time,
                )

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        with self._lock:
            self._need(run_id)
            self._params[run_id].update({str(k): _json_copy(v) for k, v in params.items()})

    def set_metadata(self, run_id: str, key: str, value: Any) -> None:
        with self._lock:
            self._need(run_id)
            self._metadata[run_id][key] = _json_copy(value)

    def add_artifact(self, run_id: str, record: ArtifactRecord) -> ArtifactRecord:
        with self._lock:
            self._need(run_id)
            same = [a for a in self._artifacts[run_id] if a.name == record.name]
            stored = ArtifactRecord(**{**record.__dict__, "version": len(same)})
            self._artifacts[run_id].append(stored)
            return stored

    # --- reads ------------------------------------------------------------------------------
    def resolve_id(self, prefix: str) -> str:
        with self._lock:
            if prefix in self._runs:
                return prefix
            ids = sorted(
                (r for r in self._runs.values() if r.id.startswith(prefix)),
                key=lambda r: r.start_time,
            )
        if not ids:
            raise RunNotFoundError(prefix, self.url)
        if len(ids) > 1:
            raise AmbiguousRunIdError(prefix, [r.id for r in ids[:6]])
        return ids[0].id

    def get_run(self, run_id: str) -> RunRecord:
        self.reap_crashed()
        with self._lock:
            return self._need(run_id)

    def list_runs(
        self, project: str | None = None, *, query: RunQuery | None = None
    ) -> list[RunRecord]:
        self.reap_crashed()
        query = query or RunQuery()
        with self._lock:
            found = [r for r in self._runs.values() if self._matches(r, project, query)]
            last = self.last_metrics([r.id for r in found])
            field, key, descending = query.sort_key()

            def sort_value(r: RunRecord) -> Any:
                if key is None:
                    return getattr(r, field)
                value = (last[r.id] if field == "metrics" else self._params[r.id]).get(key)
                if isinstance(value, float) and math.isnan(value):
                    return None
                if isinstance(value, (int, float)):
                    return (0, value, "")  # numbers before strings, as SQL orders them
                return (1, 0, value) if isinstance(value, str) else None

            found.sort(key=lambda r: (r.start_time, r.id))
            if query.sort is None and query.limit is not None:
                return found[max(0, len(found) - query.limit) :] if query.limit else []
            present = [r for r in found if sort_value(r) is not None]
            missing = [r for r in found if sort_value(r) is None]
            present.sort(key=sort_value, reverse=descending)  # stable: ties stay in time order
            ordered = present + missing
            return ordered if query.limit is None else ordered[: query.limit]

    def _matches(self, r: RunRecord, project: str | None, query: RunQuery) -> bool:
        if project is not None and r.project != project:
            return False
        if query.status and r.status not in query.status:
            return False
        if any(tag not in r.tags for tag in query.tags):
            return False
        if query.deleted is not None and query.deleted != (DELETED_KEY in self._metadata[r.id]):
            return False
        last = self.last_metrics([r.id])[r.id]
        for cond in query.where:
            source = last if cond.section == "metrics" else self._params[r.id]
            if cond.key not in source or not matches(source[cond.key], cond):
                return False
        return True

    def list_run_rows(
        self, project: str | None = None, *, query: RunQuery | None = None
    ) -> list[RunRow]:
        records = self.list_runs(project, query=query)
        last = self.last_metrics([r.id for r in records])
        with self._lock:
            return [RunRow(r, _json_copy(self._params[r.id]), last[r.id]) for r in records]

    def get_params(self, run_id: str) -> dict[str, Any]:
        with self._lock:
            self._need(run_id)
            return dict(sorted(_json_copy(self._params[run_id]).items()))

    def get_summary(self, run_id: str) -> dict[str, Any]:
        with self._lock:
            self._need(run_id)
            return dict(sorted(_json_copy(self._summary[run_id]).items()))

    def get_metadata(self, run_id: str) -> dict[str, Any]:
        with self._lock:
            self._need(run_id)
            return dict(sorted(_json_copy(self._metadata[run_id]).items()))

    def get_metrics(self, run_id: str, keys: Iterable[str] | None = None) -> list[MetricPoint]:
        with self._lock:
            self._need(run_id)
            points = list(self._metrics[run_id])
        if keys is not None:
            wanted = set(keys)
            points = [p for p in points if p.key in wanted]
        order = sorted(range(len(points)), key=lambda i: (points[i].step, points[i].timestamp, i))
        return [points[i] for i in order]

    def last_metrics(self, run_ids: Sequence[str]) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        with self._lock:
            for rid in run_ids:
                best: dict[str, tuple[int, float, int, float]] = {}
                for i, p in enumerate(self._metrics.get(rid, ())):
                    rank = (p.step, p.timestamp, i, p.value)
                    if p.key not in best or rank[:3] >= best[p.key][:3]:
                        best[p.key] = rank
                out[rid] = {k: v[3] for k, v in best.items()}
        return out

    def list_artifacts(self, run_id: str) -> list[ArtifactRecord]:
        with self._lock:
            self._need(run_id)
            found = list(self._artifacts[run_id])
        return sorted(found, key=lambda a: (a.created_at, a.version))

    def reap_crashed(self) -> list[str]:
        now = time.time()
        dead = []
        with self._lock:
            for r in list(self._runs.values()):
                if r.status != "running":
                    continue
                last = r.heartbeat_time if r.heartbeat_time is not None else r.start_time
                gone = r.host == self._host and r.pid is not None and not pid_alive(r.pid)
                if gone or now - last > self.stale_after:
                    self._replace(r.id, status="crashed", end_time=last)
                    dead.append(r.id)
        return dead

    def close(self) -> None:
        """Nothing to release: the data lives as long as the process."""
