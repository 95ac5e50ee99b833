"""The store interface (one backend per project) and the run records it holds."""

from __future__ import annotations

import abc
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from nbops.store._blobs import BlobStore
    from nbops.store._parts import DatasetStore, ModelStore, RunCache
    from nbops.store._query import RunQuery

#: Statuses a run can have. ``crashed`` is set by the store when a run's process died.
RUN_STATUSES = ("running", "finished", "failed", "crashed", "killed")
FINAL_STATUSES = ("finished", "failed", "crashed", "killed")


def redact_url(url: str) -> str:
    """``url`` with a password (``user:PASSWORD@`` or ``?password=``) replaced by ``***``."""
    from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        netloc = netloc.replace(f":{parts.password}@", ":***@", 1)
    query = parse_qsl(parts.query, keep_blank_values=True)
    if any(k == "password" for k, _ in query):
        safe = [(k, "***" if k == "password" else v) for k, v in query]
        return urlunsplit(parts._replace(netloc=netloc, query=urlencode(safe, quote_via=quote)))
    return urlunsplit(parts._replace(netloc=netloc)) if netloc != parts.netloc else url


@dataclass(frozen=True)
class RunRecord:
    """One run's identity and lifecycle. Times are POSIX timestamps (UTC, timezone-free)."""

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
    """A file or directory logged by a run, kept content-addressed in the blob store.

    ``version`` is assigned by the store: the n-th artifact a run logs under one name is
    version ``n - 1`` (``name:v0``, ``name:v1``, ...), as W&B numbers artifact versions.
    """

    name: str
    type: str
    digest: str
    size: int
    kind: str  # "file" or "dir"
    source: str
    created_at: float
    metadata: Mapping[str, Any] = field(default_factory=dict)
    version: int = 0

    @property
    def ref(self) -> str:
        """``name:vN``."""
        return f"{self.name}:v{self.version}"


class RunRow(NamedTuple):
    """One run with its parameters and last metric values, as listings show it."""

    record: RunRecord
    params: dict[str, Any]
    metrics: dict[str, float]


class RunStore(abc.ABC):
    """One project's persistence backend: runs here, and the other parts as attributes.

    The run methods below are the runs part; :attr:`blobs`, :attr:`models`, :attr:`datasets` and
    :attr:`run_cache` are the other parts of the same backend (same database, same lifetime).
    Nothing else in nbops opens files or tables under a store: everything goes through these.

    Contract every backend honours (checked by the suites in :mod:`nbops.testing`):

    * **Processes and threads.** Any number of processes (on any number of hosts, for a server
      backend) may open the same store and write at the same time; no write is lost. One
      instance may be used from several threads. The ``memory://`` reference backend is the
      exception: it lives in one process.
    * **Durability.** When a write method returns, the data survives the death of the calling
      process (SIGKILL included).
    * **Ids.** ``get_run`` and every method taking ``run_id`` accept a full id; ``resolve_id``
      turns a unique prefix into a full id. Unknown ids raise :class:`RunNotFoundError`, for
      reads and writes alike; nothing is written for them.
    * **Ownership.** A ``running`` run belongs to the process that created it (``pid`` on
      ``host``): only that process writes its progress. Other processes only read it, or mark it
      ``crashed``.
    * **Crashes.** A run whose status is ``running`` but whose process is gone (dead pid on this
      host, or no heartbeat for ``stale_after`` seconds, compared in UTC so hosts in other time
      zones agree) is reported, and persisted, as ``crashed`` by every read that returns runs. A
      heartbeat from a run marked ``crashed`` brings it back to ``running`` (it was only paused).
    * **Values.** Parameters, summaries and metadata are JSON values; metric values are floats,
      NaN and infinities round-trip. Metric points are returned ordered by step, then time.
    * **Merging.** ``log_params``, ``update_summary`` and ``set_metadata`` merge by key; a later
      value for the same key replaces the earlier one.
    * **Redaction** happens before the store: callers (tracking) scrub secrets from every value
      they hand over; a backend stores values as given and never logs them.
    * **Schema.** A backend reads the schema version of what it opens: an older layout is
      migrated, a newer one refused with :class:`StoreError` saying to upgrade nbops.
    """

    stale_after: float = 60.0

    @property
    @abc.abstractmethod
    def url(self) -> str:
        """The URL that opens this store again (``sqlite:///...``, ``postgresql://...``)."""

    @property
    def location(self) -> str:
        """:attr:`url` without any password: what messages and listings show."""
        return redact_url(self.url)

    @property
    def identity(self) -> str | None:
        """A token this store keeps wherever it is opened from, for a process that must open
        this store and no other one at the same URL (:class:`StoreAddress`); None when the URL
        alone names the store."""
        return None

    @property
    @abc.abstractmethod
    def path(self) -> Path:
        """A folder on this machine for local files (caches); the store itself for SQLite."""

    @property
    @abc.abstractmethod
    def blobs(self) -> BlobStore:
        """Content-addressed blobs: artifacts, dataset contents, model files."""

    @property
    @abc.abstractmethod
    def models(self) -> ModelStore:
        """Registered model versions, aliases and alias moves."""

    @property
    @abc.abstractmethod
    def datasets(self) -> DatasetStore:
        """Dataset versions and the runs that used them."""

    @property
    @abc.abstractmethod
    def run_cache(self) -> RunCache:
        """The pipeline run cache: JSON records keyed by a stage fingerprint."""

    # --- writes -----------------------------------------------------------------------------
    @abc.abstractmethod
    def create_run(self, record: RunRecord) -> None:
        """Insert a new run. Raises :class:`StoreError` if the id exists."""

    @abc.abstractmethod
    def set_status(self, run_id: str, status: str, end_time: float | None = None) -> None:
        """Set a run's status (one of :data:`RUN_STATUSES`) and, for final ones, its end time."""

    @abc.abstractmethod
    def set_tags(self, run_id: str, tags: Sequence[str]) -> None:
        """Replace the run's tags (any status; order kept, duplicates dropped)."""

    @abc.abstractmethod
    def reopen_run(self, run_id: str, pid: int, host: str, heartbeat_time: float) -> None:
        """Resume a run: status ``running`` again, no end time, owned by ``pid`` on ``host``.

        Raises:
            StoreError: The run is ``running`` (another process owns it).
        """

    @abc.abstractmethod
    def purge_run(self, run_id: str) -> None:
        """Remove the run and its parameters, metrics, summary, metadata and artifact records
        (their blobs stay: see ``nbops gc``). Dataset and model records naming the run are
        kept. Raises :class:`StoreError` for a ``running`` run."""

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
    def add_artifact(self, run_id: str, record: ArtifactRecord) -> ArtifactRecord:
        """Record an artifact of the run and return it with its version.

        A second artifact with the same name is a new version (``record.version`` is ignored:
        the store numbers versions 0, 1, ... per run and name); earlier versions are kept.
        """

    # --- reads ------------------------------------------------------------------------------
    @abc.abstractmethod
    def resolve_id(self, prefix: str) -> str:
        """Return the one run id starting with ``prefix``; raise if none or several match."""

    @abc.abstractmethod
    def get_run(self, run_id: str) -> RunRecord:
        """Return the run's record."""

    @abc.abstractmethod
    def list_runs(
        self, project: str | None = None, *, query: RunQuery | None = None
    ) -> list[RunRecord]:
        """Return runs (of one project, or all) matching ``query``; oldest first by default.

        The filters, the order and the limit of ``query`` are applied by the backend (in its
        database query), not by the caller.
        """

    @abc.abstractmethod
    def list_run_rows(
        self, project: str | None = None, *, query: RunQuery | None = None
    ) -> list[RunRow]:
        """Like :meth:`list_runs`, with each run's parameters and last metric values.

        Uses a number of queries that does not grow with the number of runs.
        """

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
        """Return every version of the run's artifacts, in the order they were logged."""

    def get_artifact(self, run_id: str, ref: str) -> ArtifactRecord:
        """Return the artifact ``name`` (its latest version) or ``name:vN``.

        Raises:
            NotFoundError: The run has no such artifact.
        """
        from nbops.errors import NotFoundError

        name, _, version = ref.partition(":v")
        found = [a for a in self.list_artifacts(run_id) if a.name == name]
        if version:
            found = [a for a in found if str(a.version) == version]
        if not found:
            raise NotFoundError(
                f"run {run_id} has no artifact {ref!r}; see its artifacts with "
                f"`nbops runs show {run_id}`"
            )
        return found[-1]

    def reap_crashed(self) -> list[str]:
        """Mark runs whose process is gone as ``crashed``; return their ids."""
        return []

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections. The store must not be used afterwards."""


def unique_tags(tags: Sequence[str]) -> list[str]:
    """Tags as stored: strings, in the order given, each once."""
    return list(dict.fromkeys(str(t) for t in tags))
