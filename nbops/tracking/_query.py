"""Reading runs back: ``nbops.runs()`` as a DataFrame and ``nbops.get_run()`` as a view."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cached_property
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbops.store import ArtifactRecord, ObjectStore, RunRecord, RunStore, open_store

if TYPE_CHECKING:
    import pandas as pd


def _time(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, tz=timezone.utc)


def runs(project: str | None = None, *, store: RunStore | str | None = None) -> pd.DataFrame:
    """Return one row per run: identity, status, times, ``params.*`` and last ``metrics.*``."""
    import pandas as pd

    target = open_store(store)
    records = target.list_runs(project)
    last = target.last_metrics([r.id for r in records])
    rows = []
    for r in records:
        row: dict[str, Any] = {
            "id": r.id,
            "name": r.name,
            "project": r.project,
            "group": r.group,
            "job_type": r.job_type,
            "status": r.status,
            "tags": list(r.tags),
            "start_time": _time(r.start_time),
            "end_time": _time(r.end_time),
        }
        row.update({f"params.{k}": v for k, v in target.get_params(r.id).items()})
        row.update({f"metrics.{k}": v for k, v in last[r.id].items()})
        rows.append(row)
    columns = [
        "id",
        "name",
        "project",
        "group",
        "job_type",
        "status",
        "tags",
        "start_time",
        "end_time",
    ]
    return pd.DataFrame(
        rows, columns=columns + sorted({k for row in rows for k in row} - set(columns))
    )


@dataclass(frozen=True)
class Artifact:
    """An artifact of a stored run; ``restore(dest)`` copies it out of the object store."""

    record: ArtifactRecord
    objects: ObjectStore

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def type(self) -> str:
        return self.record.type

    @property
    def digest(self) -> str:
        return self.record.digest

    @property
    def path(self) -> Path:
        """Where the blob (or the directory manifest) lives in the object store."""
        return self.objects.path_of(self.record.digest)

    def restore(self, dest: str | os.PathLike[str]) -> Path:
        """Copy the artifact to ``dest`` (a file path, or a directory for directory artifacts)."""
        return self.objects.restore(self.record.digest, self.record.kind, dest)


class StoredRun:
    """A read-only view of a run in the store (see :func:`get_run`)."""

    def __init__(self, record: RunRecord, store: RunStore) -> None:
        self.record = record
        self._store = store

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def status(self) -> str:
        return self.record.status

    @cached_property
    def params(self) -> dict[str, Any]:
        return self._store.get_params(self.id)

    @cached_property
    def summary(self) -> dict[str, Any]:
        return self._store.get_summary(self.id)

    @cached_property
    def metadata(self) -> dict[str, Any]:
        """Captured documents: git, environment, packages, notebook, cells, provenance, ..."""
        return self._store.get_metadata(self.id)

    @cached_property
    def artifacts(self) -> dict[str, Artifact]:
        objects = ObjectStore(self._store.path / "objects")
        return {a.name: Artifact(a, objects) for a in self._store.list_artifacts(self.id)}

    def history(self) -> pd.DataFrame:
        """Metric history: one row per step, one column per metric, plus the step and time.

        The step is in column ``step`` and the time of the step's last value in ``_timestamp``.
        A metric keeps its own name even when it is ``step`` or ``_timestamp``: the column nbops
        adds then takes one more leading underscore (``_step``, ``__timestamp``...) until free.
        """
        import pandas as pd

        points = self._store.get_metrics(self.id)
        keys = {p.key for p in points}
        step_col, time_col = _free_name("step", keys), _free_name("_timestamp", keys)
        if not points:
            return pd.DataFrame(columns=[step_col, time_col])
        values: dict[int, dict[str, float]] = {}
        times: dict[int, float] = {}
        for p in points:  # stored in write order: the last value of a key at a step wins
            values.setdefault(p.step, {})[p.key] = p.value
            times[p.step] = max(times.get(p.step, p.timestamp), p.timestamp)
        steps = sorted(values)
        wide = pd.DataFrame.from_records(
            [values[s] for s in steps], columns=sorted(keys), index=range(len(steps))
        )
        wide.insert(0, step_col, steps)
        wide[time_col] = [times[s] for s in steps]
        return wide

    def __repr__(self) -> str:
        return f"<nbops.StoredRun {self.id} name={self.name!r} {self.status}>"

    def _repr_html_(self) -> str:
        r = self.record
        rows = [("run", r.id), ("name", r.name), ("project", r.project), ("status", r.status)]
        rows += [(f"param {k}", v) for k, v in self.params.items()]
        rows += [(f"summary {k}", v) for k, v in self.summary.items()]
        body = "".join(
            f"<tr><th>{escape(str(k))}</th><td>{escape(str(v))}</td></tr>" for k, v in rows
        )
        return f"<table class='nbops-run'>{body}</table>"


def _free_name(name: str, taken: set[str]) -> str:
    """Return ``name``, with leading underscores added until it is not in ``taken``."""
    while name in taken:
        name = f"_{name}"
    return name


def get_run(run_id: str, *, store: RunStore | str | None = None) -> StoredRun:
    """Return the stored run with this id (or unique id prefix)."""
    target = open_store(store)
    return StoredRun(target.get_run(target.resolve_id(run_id)), target)
