"""Reading runs back: ``nbops.runs()`` as a DataFrame and ``nbops.get_run()`` as a view."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbops.store import ArtifactRecord, BlobStore, RunRecord, RunStore, make_query, open_store
from nbops.tracking._system import PREFIX as SYSTEM

if TYPE_CHECKING:
    import pandas as pd


def runs(
    project: str | None = None,
    *,
    store: RunStore | str | None = None,
    status: str | Sequence[str] | None = None,
    tags: str | Sequence[str] | None = None,
    filters: str | Sequence[str] | None = None,
    sort: str | None = None,
    limit: int | None = None,
) -> pd.DataFrame:
    """Return one row per run: identity, status, times, ``params.*`` and last ``metrics.*``.

    The selection is done by the store, in a few queries whatever the number of runs.

    Args:
        project: Only this project's runs.
        store: The store (or its folder or URL); default the project's.
        status: Only runs with this status (or one of these).
        tags: Only runs carrying this tag (or every one of these).
        filters: Conditions such as ``"metrics.accuracy>0.9"`` or ``"params.lr=0.1"``
            (operators ``= != > >= < <=``; a metric is its last value).
        sort: ``start_time`` (default), ``end_time``, ``name``, ``status``, ``params.KEY`` or
            ``metrics.KEY``; a leading ``-`` sorts descending.
        limit: At most this many runs (with no ``sort``: the most recent ones).
    """
    import pandas as pd

    target = open_store(store)
    query = make_query(status=status, tags=tags, where=filters, sort=sort, limit=limit)
    found = target.list_run_rows(project, query=query)
    records = [row.record for row in found]
    columns: dict[str, Any] = {
        "id": [r.id for r in records],
        "name": [r.name for r in records],
        "project": [r.project for r in records],
        "group": [r.group for r in records],
        "job_type": [r.job_type for r in records],
        "status": [r.status for r in records],
        "tags": [list(r.tags) for r in records],
        "start_time": pd.to_datetime([r.start_time for r in records], unit="s", utc=True),
        "end_time": pd.to_datetime(
            [r.end_time if r.end_time is not None else float("nan") for r in records],
            unit="s",
            utc=True,
        ),
    }
    extra: dict[str, list[Any]] = {}
    sections: list[tuple[str, list[dict[str, Any]]]] = [
        ("params", [row.params for row in found]),
        ("metrics", [_user_metrics(row.metrics) for row in found]),
    ]
    for section, values in sections:
        for key in sorted({k for doc in values for k in doc}):
            extra[f"{section}.{key}"] = [doc.get(key) for doc in values]
    for name in sorted(extra):
        columns[name] = extra[name]
    return pd.DataFrame(columns)


@dataclass(frozen=True)
class Artifact:
    """An artifact of a stored run; ``restore(dest)`` copies it out of the object store."""

    record: ArtifactRecord
    objects: BlobStore

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

    @property
    def tags(self) -> tuple[str, ...]:
        return self.record.tags

    @property
    def notes(self) -> str:
        """The run's notes (``""`` when none)."""
        value = self.metadata.get("notes")
        return value if isinstance(value, str) else ""

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
        """The latest version of each artifact, by name (see :meth:`artifact` for others)."""
        objects = self._store.blobs
        return {a.name: Artifact(a, objects) for a in self._store.list_artifacts(self.id)}

    def media(self, key: str) -> list[tuple[int, Artifact]]:
        """The images, tables, histograms or figures logged under ``key``: ``(step, artifact)``
        pairs in step order."""
        objects = self._store.blobs
        found = [
            (int(a.metadata["step"]), Artifact(a, objects))
            for a in self._store.list_artifacts(self.id)
            if a.metadata.get("key") == key and "step" in a.metadata
        ]
        return sorted(found, key=lambda pair: pair[0])

    def media_keys(self) -> list[str]:
        """The keys media were logged under (with ``log`` or ``log_table``), sorted."""
        return sorted(
            {
                str(a.metadata["key"])
                for a in self._store.list_artifacts(self.id)
                if "media" in a.metadata and "key" in a.metadata and "step" in a.metadata
            }
        )

    def to_html(self, *, rows: int = 20) -> str:
        """The run as an HTML fragment: fields, parameters, summary, metric curves, and its
        media (images inline, tables cut at ``rows`` rows, histograms as SVG), all escaped."""
        from nbops.tracking._page import run_html

        return run_html(self, rows=rows)

    def artifact(self, ref: str) -> Artifact:
        """The artifact ``name`` (its latest version) or one version, ``name:vN``."""
        return Artifact(self._store.get_artifact(self.id, ref), self._store.blobs)

    def history(self) -> pd.DataFrame:
        """Metric history: one row per step, one column per metric, plus the step and time.

        The step is in column ``step`` and the time of the step's last value in ``_timestamp``.
        A metric keeps its own name even when it is ``step`` or ``_timestamp``: the column nbops
        adds then takes one more leading underscore (``_step``, ``__timestamp``...) until free.
        System metrics are not included (see :meth:`system_metrics`).
        """
        import pandas as pd

        points = [p for p in self._store.get_metrics(self.id) if not p.key.startswith(SYSTEM)]
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

    def system_metrics(self) -> pd.DataFrame:
        """System metrics sampled during the run: one row per sample, one column per
        ``system/...`` key, with its wall time (UTC) in ``time`` and the step the run had
        reached in ``step``. Empty (with those two columns) when nothing was sampled."""
        import pandas as pd

        points = [p for p in self._store.get_metrics(self.id) if p.key.startswith(SYSTEM)]
        samples: dict[float, dict[str, float]] = {}  # the points of one sample share a time
        steps: dict[float, int] = {}
        for p in points:
            samples.setdefault(p.timestamp, {})[p.key] = p.value
            steps[p.timestamp] = p.step
        times = sorted(samples)
        wide = pd.DataFrame.from_records(
            [samples[t] for t in times],
            columns=sorted({p.key for p in points}),
            index=range(len(times)),
        )
        wide.insert(0, "step", pd.Series([steps[t] for t in times], dtype="int64"))
        wide.insert(
            1, "time", pd.to_datetime(pd.Series(times, dtype="float64"), unit="s", utc=True)
        )
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


def _user_metrics(metrics: Any) -> dict[str, Any]:
    """The last metric values without system metrics (they have their own view per run)."""
    return {k: v for k, v in metrics.items() if not k.startswith(SYSTEM)}


def _free_name(name: str, taken: set[str]) -> str:
    """Return ``name``, with leading underscores added until it is not in ``taken``."""
    while name in taken:
        name = f"_{name}"
    return name


def get_run(run_id: str, *, store: RunStore | str | None = None) -> StoredRun:
    """Return the stored run with this id (or unique id prefix)."""
    target = open_store(store)
    return StoredRun(target.get_run(target.resolve_id(run_id)), target)
