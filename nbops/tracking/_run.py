"""A tracked run: cheap buffered logging, durable within a second, mirrored to W&B."""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbops.errors import ArtifactError, InvalidValueError, RunFinishedError
from nbops.redact import redact, scrub_text
from nbops.store import ArtifactRecord, MetricPoint, RunRecord, RunStore
from nbops.tracking._active import forget
from nbops.tracking._edit import NOTES_KEY, set_notes, set_tags
from nbops.tracking._flusher import flusher
from nbops.tracking._media import Media, as_media, media_name, mirror_media
from nbops.tracking._summary import Summary
from nbops.tracking._system import PREFIX as SYSTEM_PREFIX
from nbops.tracking._system import SystemProbe, SystemSampler
from nbops.tracking._values import artifact_name, as_float, as_step, jsonable

if TYPE_CHECKING:
    from nbops.mirror import MediaFile, WandbMirror

logger = logging.getLogger(__name__)

_HEARTBEAT_EVERY = 5.0
#: Metadata the W&B copy carries as code information (git, package list, notebook snapshot).
_MIRRORED_METADATA = ("git", "packages", "notebook")


class Run:
    """One tracked run. Create it with :func:`nbops.init`; use it as a context manager.

    ``log`` only appends to an in-memory buffer (a few microseconds); a background thread writes
    the buffer to the store at least every 0.2 s and forwards it to the W&B mirror.
    """

    def __init__(
        self,
        record: RunRecord,
        store: RunStore,
        *,
        config: Mapping[str, Any] | None = None,
        mirror: WandbMirror | None = None,
        owner: bool = True,
        resumed: bool = False,
    ) -> None:
        self._record = record
        self._store = store
        self._objects = store.blobs
        self._mirror = mirror
        self._lock = threading.Lock()  # guards the buffers; held for microseconds
        self._flush_lock = threading.Lock()  # one flush at a time, so finish waits for the flusher
        # Rows of (step, time, values); values are floats, or media files for the mirror only.
        self._buffer: list[tuple[int, float, dict[str, float | MediaFile]]] = []
        self._mirrored_ahead = 0  # leading buffer rows the mirror already has (a failed write)
        self._sampler: SystemSampler | None = None
        self._next_step = 0
        self._pending_metadata: dict[str, Any] = {}
        self._finish_hooks: list[Callable[[Run], None]] = []
        self._exit_checks: list[Callable[[Run], str | None]] = []
        self._background: list[threading.Thread] = []
        self._last_beat = 0.0
        self._status = "running"
        self.summary = Summary()
        self._owner = owner
        self._mirrored_tags = record.tags
        self._mirrored_notes = ""
        if owner and not resumed:
            store.create_run(record)
        if owner and mirror is not None:  # the store records how far the W&B copy got
            mirror.report_to(lambda state: store.set_metadata(record.id, "wandb", state.to_dict()))
        if config:
            self.log_params(config)
        flusher().register(self)

    # --- identity -------------------------------------------------------------------------
    @property
    def id(self) -> str:
        return self._record.id

    @property
    def name(self) -> str:
        return self._record.name

    @property
    def project(self) -> str:
        return self._record.project

    @property
    def group(self) -> str | None:
        return self._record.group

    @property
    def job_type(self) -> str | None:
        return self._record.job_type

    @property
    def tags(self) -> tuple[str, ...]:
        """The run's tags; assign a sequence to replace them (stored at once)."""
        return self._record.tags

    @tags.setter
    def tags(self, tags: Sequence[str] | str) -> None:
        clean = set_tags(self.id, tags, store=self._store)
        self._record = replace(self._record, tags=clean)
        if self._mirror is not None and self._status == "running":
            self._mirrored_tags = clean
            self._mirror.update_tags(clean)

    @property
    def notes(self) -> str:
        """Free-text notes on the run (metadata ``notes``); assign a string to replace them."""
        value = self._store.get_metadata(self.id).get(NOTES_KEY)
        return value if isinstance(value, str) else ""

    @notes.setter
    def notes(self, text: str) -> None:
        clean = set_notes(self.id, text, store=self._store)
        if self._mirror is not None and self._status == "running":
            self._mirrored_notes = clean
            self._mirror.update_notes(clean)

    def _mirror_edits(self, mirror: WandbMirror) -> None:
        """Hand the mirror tags and notes changed in the store by another process (the CLI)."""
        tags = self._store.get_run(self.id).tags
        if tags != self._mirrored_tags:
            self._mirrored_tags = tags
            mirror.update_tags(tags)
        notes = self.notes
        if notes != self._mirrored_notes:
            self._mirrored_notes = notes
            mirror.update_notes(notes)

    @property
    def status(self) -> str:
        return self._status

    @property
    def finished(self) -> bool:
        return self._status != "running"

    @property
    def store(self) -> RunStore:
        return self._store

    @property
    def mirror(self) -> WandbMirror | None:
        """The W&B mirror, or None when it is disabled."""
        return self._mirror

    @property
    def step(self) -> int:
        """The step the next ``log`` call without ``step`` will use."""
        return self._next_step

    # --- logging --------------------------------------------------------------------------
    def log(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Record metric values at ``step`` (default: one past the last step logged)."""
        if self._status != "running":
            raise RunFinishedError(self.id, "log metrics")
        # Non-string names are coerced once, here, so the store and W&B hold the same name.
        values = {k if type(k) is str else str(k): v for k, v in metrics.items()}
        media: dict[str, Media] = {}
        for key, value in values.items():
            if type(value) is not float:
                found = None if isinstance(value, (int, bool)) else as_media(key, value)
                if found is not None:
                    media[key] = found
                else:
                    values[key] = as_float(key, value)
        for key in media:
            del values[key]
        if step is not None and (type(step) is not int or step < 0):
            step = as_step(step)
        if not media:
            self._append(values, step)
            return
        import tempfile

        with tempfile.TemporaryDirectory(prefix="nbops-media-") as folder:
            files = {}  # written before the step is taken: bad media log nothing
            for index, (key, item) in enumerate(media.items()):
                files[key] = Path(folder) / f"{index}{item.suffix}"
                item.write(key, files[key])
            at = self._take_step(step)
            mirrored: dict[str, MediaFile] = {}
            for key, item in media.items():
                details: dict[str, Any] = {"key": key, "step": at, "media": item.kind}
                caption = getattr(item, "caption", None)
                if caption:
                    details["caption"] = scrub_text(str(caption))
                name = media_name(key, at)
                record = self._store_artifact(
                    files[key], name, item.kind, details, mirror_artifact=False
                )
                mirrored[key] = mirror_media(record, self._objects.path_of(record.digest))
            self._append(values, at, media=mirrored)

    def _take_step(self, step: int | None) -> int:
        """Reserve ``step`` (default: the next one) for a row that ``_append`` adds later."""
        with self._lock:
            if self._status != "running":
                raise RunFinishedError(self.id, "log metrics")
            if step is None:
                step = self._next_step
            if step >= self._next_step:
                self._next_step = step + 1
        return step

    def _append(
        self,
        values: dict[str, Any],
        step: int | None,
        *,
        media: Mapping[str, MediaFile] | None = None,
    ) -> int:
        with self._lock:
            if self._status != "running":  # finish may have won the race since the check above
                raise RunFinishedError(self.id, "log metrics")
            if step is None:
                step = self._next_step
            if step >= self._next_step:
                self._next_step = step + 1
            if values or not media:
                self.summary._auto.update(values)
                self.summary._dirty = True
            if media:  # the scalars' dict is kept as it is otherwise: log() is hot
                values = {**values, **media}
            self._buffer.append((step, time.time(), values))
        return step

    def log_system(self, values: Mapping[str, float]) -> None:
        """Record one sample of system metrics (keys ``system/...``) at the current wall time.

        The sample is stored at the step last logged (so the store and the W&B copy agree row by
        row), does not enter the summary or advance the step, and is dropped once the run has
        finished (a late sample from the sampler thread).
        """
        clean: dict[str, float | MediaFile] = {
            str(k): float(v) for k, v in values.items() if str(k).startswith(SYSTEM_PREFIX)
        }
        with self._lock:
            if self._status != "running" or not clean:
                return
            self._buffer.append((max(self._next_step - 1, 0), time.time(), clean))

    def start_system_metrics(self, interval: float) -> None:
        """Sample system metrics every ``interval`` seconds until the run finishes."""
        if interval <= 0 or not math.isfinite(interval):
            raise InvalidValueError(
                f"system_metrics must be True, False or a positive number of seconds, "
                f"not {interval!r}"
            )
        if self._sampler is not None:
            return
        disk = self._store.path if self._store.path.exists() else Path.cwd()
        self._sampler = SystemSampler(
            self.log_system, interval, make_probe=lambda: SystemProbe(disk)
        )
        self._sampler.start()

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Merge parameters (the run's config). Secret-looking keys are stored redacted."""
        if self._status != "running":
            raise RunFinishedError(self.id, "log parameters")
        clean = redact({str(k): jsonable(v) for k, v in params.items()})
        self._store.log_params(self.id, clean)
        if self._mirror is not None:
            self._mirror.update_config(clean)

    def log_artifact(
        self,
        path: str | os.PathLike[str],
        name: str | None = None,
        type: str | None = None,
        *,
        metadata: Mapping[str, Any] | None = None,
    ) -> ArtifactRecord:
        """Copy a file or directory into the content-addressed object store and record it."""
        if self._status != "running":
            raise RunFinishedError(self.id, "log an artifact")
        source = Path(path)
        if not source.exists():
            raise ArtifactError(f"cannot log artifact: {source} does not exist")
        name = artifact_name(name if name is not None else source.name)
        return self._store_artifact(source, name, type or "artifact", metadata)

    def _store_artifact(
        self,
        source: Path,
        name: str,
        type: str,
        metadata: Mapping[str, Any] | None,
        *,
        mirror_artifact: bool = True,
    ) -> ArtifactRecord:
        """Store ``source`` as artifact ``name``; mirror it as a W&B artifact unless told not
        to (media go to W&B as history values instead)."""
        if source.is_dir():
            digest, size = self._objects.put_tree(source)
            kind = "dir"
        else:
            digest, size = self._objects.put_file(source)
            kind = "file"
        record = ArtifactRecord(
            name=name,
            type=type,
            digest=digest,
            size=size,
            kind=kind,
            source=str(source.resolve()),
            created_at=time.time(),
            metadata=dict(metadata or {}),
        )
        record = self._store.add_artifact(self.id, record)
        if self._mirror is not None and mirror_artifact:
            if kind == "file":  # the immutable blob: the source may change before the upload
                blob = self._objects.path_of(digest)
                self._mirror.log_artifact(blob, name=name, type=record.type, file_name=source.name)
            else:
                self._mirror.log_artifact(source, name=name, type=record.type)
        return record

    def log_table(self, name: str, value: Any) -> ArtifactRecord:
        """Log a DataFrame or Series (as CSV, type ``table``) or a numpy array (``.npy``, type
        ``array``) as an artifact named ``name``, whole rather than as a text preview."""
        import tempfile

        from nbops.tracking._tables import write_table

        if self._status != "running":
            raise RunFinishedError(self.id, "log a table")
        artifact_name(name)
        with tempfile.TemporaryDirectory(prefix="nbops-table-") as folder:
            path, kind = write_table(value, Path(folder), name)
            with self._lock:  # shown in W&B at the step last logged, like system metrics
                at = max(self._next_step - 1, 0)
            details = {"key": name, "step": at, "media": kind, "artifact": True, "index": True}
            record = self.log_artifact(path, name=name, type=kind, metadata=details)
        media = mirror_media(record, self._objects.path_of(record.digest))
        with self._lock:
            if self._status == "running":
                self._buffer.append((at, time.time(), {name: media}))
        return record

    def set_metadata(self, key: str, value: Any, *, deferred: bool = False) -> None:
        """Store a metadata document now, or at the next flush when ``deferred`` (cheap)."""
        if deferred:
            with self._lock:
                self._pending_metadata[key] = value
        else:
            clean = redact(value)
            self._store.set_metadata(self.id, key, clean)
            if self._mirror is not None and key in _MIRRORED_METADATA:
                self._mirror.update_code({key: clean})

    def add_finish_hook(self, hook: Callable[[Run], None]) -> None:
        """Call ``hook(run)`` at finish, before the final flush (errors are logged, not raised)."""
        self._finish_hooks.append(hook)

    def add_exit_check(self, check: Callable[[Run], str | None]) -> None:
        """Let ``check(run)`` choose the final status when the run is finished at interpreter
        exit rather than by :meth:`finish`: it returns ``"failed"`` or ``"killed"``, or None."""
        self._exit_checks.append(check)

    def exit_status(self) -> str:
        """The status to finish with at interpreter exit: the first exit check's verdict, or
        ``"finished"``."""
        for check in self._exit_checks:
            try:
                status = check(self)
            except Exception:
                logger.warning("nbops exit check %r failed", check, exc_info=True)
                continue
            if status is not None:
                return status
        return "finished"

    @property
    def capturing(self) -> bool:
        """True while a background task (the start capture) is still running."""
        return any(thread.is_alive() for thread in self._background)

    def run_in_background(self, target: Callable[[], None], name: str) -> None:
        """Run ``target`` on a daemon thread that ``finish`` waits for (at most 30 s)."""
        thread = threading.Thread(target=self._guarded(target, name), name=name, daemon=True)
        self._background.append(thread)
        thread.start()

    def wait_background(self, timeout: float = 30.0) -> None:
        """Wait (at most ``timeout`` s each) for background tasks such as the start capture."""
        for thread in self._background:
            thread.join(timeout=timeout)

    @staticmethod
    def _guarded(target: Callable[[], None], name: str) -> Callable[[], None]:
        def call() -> None:
            try:
                target()
            except Exception:
                logger.warning("nbops background task %s failed", name, exc_info=True)

        return call

    # --- durability -----------------------------------------------------------------------
    def flush(self) -> None:
        """Write buffered metrics, summary changes and deferred metadata to the store now."""
        with self._flush_lock:
            self._flush()

    def _flush(self) -> None:
        with self._lock:
            batch, self._buffer = self._buffer, []
            summary = self.summary._take_changes()
            metadata, self._pending_metadata = self._pending_metadata, {}
        # The mirror gets the rows first: it drains on its own thread while the store writes
        # them (wandb's per-row cost is the mirror's bottleneck, so it must not wait for SQLite).
        ahead, self._mirrored_ahead = self._mirrored_ahead, 0
        if self._mirror is not None and len(batch) > ahead:
            self._mirror.log(batch[ahead:])
        now = time.time()
        beat = now if batch or now - self._last_beat >= _HEARTBEAT_EVERY else None
        points = [
            MetricPoint(key, step, value, ts)
            for step, ts, values in batch
            for key, value in values.items()
            if type(value) is float
        ]
        try:
            if points or summary or beat is not None:
                self._store.write_progress(self.id, points, summary, heartbeat_time=beat)
            for key, value in metadata.items():
                self._store.set_metadata(self.id, key, redact(value))
        except Exception:
            with self._lock:  # keep everything for the next attempt (the mirror has the rows)
                self._buffer[:0] = batch
                self._mirrored_ahead = len(batch)
                for key, value in metadata.items():
                    self._pending_metadata.setdefault(key, value)
                if summary is not None:
                    self.summary._dirty = True
            raise
        if beat is not None:
            self._last_beat = beat
        if self._mirror is not None and batch and summary is not None:
            self._mirror.update_summary(summary)

    @classmethod
    def attach(cls, run_id: str, store: RunStore) -> Run:
        """Write into a run another process owns (a pipeline stage, a sweep trial).

        The attached run logs like any other, but ``finish`` only flushes: the owner sets the
        final status and mirrors the run to W&B.
        """
        return cls(store.get_run(run_id), store, owner=False)

    @property
    def owner(self) -> bool:
        """False for a run attached from another process (see :meth:`attach`)."""
        return self._owner

    def sync_from_store(self) -> None:
        """Adopt what other processes wrote into this run (metrics, media, summary, parameters).

        The owner of a run that a kernel logged into calls this before ``finish`` so the summary
        and the W&B mirror hold the kernel's values too.
        """
        self.flush()
        params = self._store.get_params(self.id)
        points = self._store.get_metrics(self.id)
        stored_summary = self._store.get_summary(self.id)
        with self._lock:
            for point in points:
                self.summary._auto[point.key] = point.value
                self._next_step = max(self._next_step, point.step + 1)
            for key, value in stored_summary.items():
                if key not in self.summary._auto:
                    self.summary._pinned.setdefault(key, value)
        if self._mirror is not None:
            from nbops.mirror import media_files

            self._mirror.update_config(params)
            rows: dict[int, tuple[int, float, dict[str, float | MediaFile]]] = {}
            for point in points:
                row = rows.setdefault(point.step, (point.step, point.timestamp, {}))
                row[2][point.key] = point.value
            for step, timestamp, key, media in media_files(self._store, self.id):
                rows.setdefault(step, (step, timestamp, {}))[2][key] = media
            self._mirror.log([rows[step] for step in sorted(rows)])

    def finish(self, status: str = "finished") -> None:
        """Flush everything, set the final status and close the W&B mirror. Idempotent."""
        if status not in ("finished", "failed", "killed"):
            raise InvalidValueError(
                f"finish status must be finished, failed or killed, not {status!r}"
            )
        if self._status != "running":
            return
        if self._sampler is not None:
            self._sampler.stop()
        if not self._owner:
            self._status = status
            flusher().unregister(self)
            self.flush()
            forget(self)
            return
        if self._mirror is not None:  # the store first: the mirror pauses until the status is in
            self._mirror.hold()
        try:
            self._finish_in_store(status)
        finally:
            if self._mirror is not None:
                self._mirror.release()
        if self._mirror is not None:  # bounded; records the copy's state in the store
            try:
                self._mirror_edits(self._mirror)
            except Exception:  # the store keeps them; `nbops sync` can carry them later
                logger.warning("could not read run %s's tags and notes", self.id, exc_info=True)
            self._mirror.update_summary(redact(dict(self.summary)))
            self._mirror.finish(exit_code=0 if status == "finished" else 1)
        forget(self)

    def _finish_in_store(self, status: str) -> None:
        # What was logged becomes durable before anything that may take time (the start
        # capture, finish hooks): Jupyter kills a kernel ~5 s after asking it to shut down.
        try:
            self.flush()
        except Exception:  # the final flush below retries and reports it
            logger.debug("early flush of run %s failed", self.id, exc_info=True)
        self.wait_background()
        for hook in self._finish_hooks:
            try:
                hook(self)
            except Exception:
                logger.warning("nbops finish hook %r failed", hook, exc_info=True)
        with self._lock:  # no log() lands after the final flush
            self._status = status
        flusher().unregister(self)
        self.summary._dirty = True
        try:
            self.flush()
        except Exception:
            with self._lock:  # keep the run alive: the flusher retries, finish can be re-called
                self._status = "running"
            flusher().register(self)
            raise
        self._store.set_status(self.id, status, time.time())

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if exc_type is None:
            self.finish("finished")
        else:
            self.finish("killed" if issubclass(exc_type, KeyboardInterrupt) else "failed")

    def __repr__(self) -> str:
        return f"<nbops.Run {self.id} name={self.name!r} project={self.project!r} {self._status}>"

    def _repr_html_(self) -> str:
        mirror = self._mirror.state.mode if self._mirror is not None else "disabled"
        cells = (
            ("run", self.id),
            ("name", self.name),
            ("project", self.project),
            ("status", self._status),
            ("W&B", mirror),
            ("store", self._store.location),
        )
        rows = "".join(f"<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>" for k, v in cells)
        return f"<table class='nbops-run'>{rows}</table>"
