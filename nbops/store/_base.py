"""The run store interface and the records it holds."""

from __future__ import annotations

import abc
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

#: Statuses a run can have. ``crashed`` is set by the store when a run's process died.
RUN_STATUSES = ("running", "finished", "failed", "crashed", "killed")
FINAL_STATUSES = ("finished", "failed", "crashed", "killed")


@dataclass(frozen=True)
class RunRecord:
    """One run's identity and lifecycle."""

    id: str
    project: str
    name: str
    group: str | None = None
    job_type: str | None = None
    status: str = "running"
    tags: tuple[str, ...] = ()
    start_time: float = 0.0
    end_time: float | None = None
    heartbeat_time: float | None = None
    pid: int | None = None
    host: str | None = None


class MetricPoint(NamedTuple):
    """One value of one metric at one step. ``value`` is a float (NaN and infinities allowed).

    A named tuple rather than a dataclass: tens of thousands are made per flush.
    """

    key: str
    step: int
    value: float
    timestamp: float


@dataclass(frozen=True)
class ArtifactRecord:
    """A file or directory logged by a run, kept content-addressed in the object store."""

    name: str
    type: str
    digest: str
    size: int
    kind: str  # "file" or "dir"
    source: str
    created_at: float
    metadata: Mapping[str, Any] = field(default_factory=dict)


class RunStore(abc.ABC):
    """Persistent storage of runs, parameters, metric history, summaries, metadata and artifacts.

    Contract every backend honours (checked by :mod:`nbops.testing.store_conformance`):

    * **Processes and threads.** Any number of processes may open the same store and write at
      the same time; no write is lost. One instance may be used from several threads.
    * **Durability.** When a write method returns, the data survives the death of the calling
      process (SIGKILL included).
    * **Ids.** ``get_run`` and every method taking ``run_id`` accept a full id; ``resolve_id``
      turns a unique prefix into a full id. Unknown ids raise :class:`RunNotFoundError`.
    * **Crashes.** A run whose status is ``running`` but whose process is gone (dead pid on this
      host, or no heartbeat for ``stale_after`` seconds) is reported, and persisted, as
      ``crashed`` by every read that returns runs. A heartbeat from a run marked ``crashed``
      brings it back to ``running`` (the process was only paused).
    * **Values.** Parameters, summaries and metadata are JSON values; metric values are floats,
      NaN and infinities round-trip. Metric points are returned ordered by step, then time.
    * **Merging.** ``log_params``, ``update_summary`` and ``set_metadata`` merge by key; a later
      value for the same key replaces the earlier one.
    """

    stale_after: float = 60.0

    @property
    @abc.abstractmethod
    def path(self) -> Path:
        """The directory the store lives in."""

    # --- writes -----------------------------------------------------------------------------
    @abc.abstractmethod
    def create_run(self, record: RunRecord) -> None:
        """Insert a new run. Raises :class:`StoreError` if the id exists."""

    @abc.abstractmethod
    def set_status(self, run_id: str, status: str, end_time: float | None = None) -> None:
        """Set a run's status (one of :data:`RUN_STATUSES`) and, for final ones, its end time."""

    @abc.abstractmethod
    def write_progress(
        self,
        run_id: str,
        points: Sequence[MetricPoint] = (),
        summary: Mapping[str, Any] | None = None,
        heartbeat_time: float | None = None,
    ) -> None:
        """Append metric points, merge summary keys and record a heartbeat in one transaction."""

    @abc.abstractmethod
    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        """Merge parameters into the run's parameters."""

    @abc.abstractmethod
    def set_metadata(self, run_id: str, key: str, value: Any) -> None:
        """Store one metadata document (git, environment, notebook, cells, ...) under ``key``."""

    @abc.abstractmethod
    def add_artifact(self, run_id: str, record: ArtifactRecord) -> None:
        """Record an artifact of the run; a second artifact with the same name replaces it."""

    # --- reads ------------------------------------------------------------------------------
    @abc.abstractmethod
    def resolve_id(self, prefix: str) -> str:
        """Return the one run id starting with ``prefix``; raise if none or several match."""

    @abc.abstractmethod
    def get_run(self, run_id: str) -> RunRecord:
        """Return the run's record."""

    @abc.abstractmethod
    def list_runs(self, project: str | None = None) -> list[RunRecord]:
        """Return runs (of one project, or all), oldest first."""

    @abc.abstractmethod
    def get_params(self, run_id: str) -> dict[str, Any]:
        """Return the run's parameters."""

    @abc.abstractmethod
    def get_metrics(self, run_id: str, keys: Iterable[str] | None = None) -> list[MetricPoint]:
        """Return the run's metric history (optionally only some keys)."""

    @abc.abstractmethod
    def last_metrics(self, run_ids: Sequence[str]) -> dict[str, dict[str, float]]:
        """Return, for each run id, the value at the highest step of each of its metrics."""

    @abc.abstractmethod
    def get_summary(self, run_id: str) -> dict[str, Any]:
        """Return the run's summary."""

    @abc.abstractmethod
    def get_metadata(self, run_id: str) -> dict[str, Any]:
        """Return every metadata document of the run, by key."""

    @abc.abstractmethod
    def list_artifacts(self, run_id: str) -> list[ArtifactRecord]:
        """Return the run's artifacts, in the order they were logged."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections. The store must not be used afterwards."""
