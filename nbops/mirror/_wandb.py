"""Mirror one nbops run to a W&B run, doing all wandb work on a background thread."""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from nbops.mirror._code import code_files, git_info, write_code_files
from nbops.mirror._media import MediaFile, media_row
from nbops.mirror._mode import resolve_mode
from nbops.mirror._probe import PROBE_TIMEOUT, PendingCheck
from nbops.mirror._state import COMPLETE, NOT_MIRRORED, PARTIAL, MirrorState
from nbops.mirror._wandb_process import (
    end_wandb_service_within,
    fresh_id,
    go_offline_process_wide,
    interpreter_exiting,
    log_artifact,
    mirror_settings,
    scrub_run_dir,
    silence_wandb_terminal,
    turn_off_wandb_telemetry,
    wait_until_written,
)
from nbops.redact import redact, scrub_text

logger = logging.getLogger(__name__)


#: Seconds ``finish()`` waits for the mirror to drain in a running process.
FINISH_TIMEOUT = 60.0
#: Seconds ``finish()`` waits while the interpreter exits (Jupyter kills a kernel ~5 s after
#: asking it to shut down); what is not written by then is completed by ``nbops sync``.
EXIT_TIMEOUT = 2.0
#: Seconds ``finish()`` waits in a W&B failure mode: the mirror is still starting against a
#: server (asking it, or in wandb's online start) or went offline after the server failed. The
#: worker carries on in the background and records the copy complete when it is.
FAILURE_TIMEOUT = 1.5
#: Seconds between progress records written to the store while the mirror drains.
PROGRESS_EVERY = 1.0

# Mirrors whose finish() returned before their worker was done: waited for at exit (bounded).
_unfinished: set[WandbMirror] = set()
_exit_hook = False


def _wait_at_exit() -> None:
    """Give unfinished mirrors :data:`EXIT_TIMEOUT` seconds in all, then record them partial."""
    deadline = time.monotonic() + EXIT_TIMEOUT
    for mirror in list(_unfinished):
        mirror.finish(timeout=max(deadline - time.monotonic(), 0.0))


def _wait_for_at_exit(mirror: WandbMirror) -> None:
    global _exit_hook
    _unfinished.add(mirror)
    if _exit_hook:
        return
    _exit_hook = True
    register = getattr(threading, "_register_atexit", None)  # runs while threads still work
    try:
        if register is None:
            raise RuntimeError("no threading._register_atexit")
        register(_wait_at_exit)
    except RuntimeError:
        import atexit

        atexit.register(_wait_at_exit)


class MirrorWarning(UserWarning):
    """The W&B mirror changed course (went offline, skipped data); the nbops run is unaffected."""


class WandbMirror:
    """Mirror one nbops run to a W&B run with the same id, name, config, history and summary.

    Every method returns at once: calls are queued and a daemon worker thread talks to wandb,
    draining the queue in batches. wandb failures never reach the caller; they are kept in
    :attr:`state` and the mirror carries on (or stops mirroring) while the nbops store keeps
    the data. The state is reported, as it changes and at least every :data:`PROGRESS_EVERY`
    seconds while draining, to the callback given to :meth:`report_to` (the run stores it, so
    ``nbops sync --offline`` knows which copies to complete).

    Online, the server is asked first (:func:`~nbops.mirror.check_server`, bounded by
    :data:`~nbops.mirror.PROBE_TIMEOUT`): a server that does not answer, or answers with an
    error, gets an offline copy instead, announced by one :class:`MirrorWarning`. The server is
    asked while the worker imports wandb, and ``finish()`` waits at most
    :data:`FAILURE_TIMEOUT` seconds in such a failure mode (the copy completes in the background,
    or at exit within :data:`EXIT_TIMEOUT`, or later with ``nbops sync --offline``).

    Every value sent to wandb (config, summary, code files) goes through
    :func:`nbops.redact.redact`, as in the store. Metric names are strings (others are coerced
    with ``str``, as the store does).

    Steps must increase for wandb. A row whose step is lower than one already sent is skipped
    (one warning per mirror); equal steps are merged into one wandb row. The nbops store keeps
    every row either way.

    Thread safety: methods may be called from any thread; order is kept per mirror.
    """

    def __init__(
        self,
        *,
        run_id: str,
        project: str,
        name: str,
        config: Mapping[str, Any],
        group: str | None = None,
        job_type: str | None = None,
        tags: Sequence[str] = (),
        mode: str | None = None,
        directory: str | os.PathLike[str] | None = None,
        init_timeout: float = 30.0,
    ) -> None:
        """Start mirroring; raises only :class:`~nbops.errors.InvalidValueError` for a bad mode."""
        resolved = resolve_mode(mode)
        self._run_id = run_id
        self._init_kwargs: dict[str, Any] = {
            "id": run_id,
            "name": scrub_text(name),
            "project": project,
            "group": group,
            "job_type": job_type,
            "tags": [scrub_text(t) for t in tags],
            "config": redact(dict(config)),
            "dir": str(Path(directory or os.environ.get("WANDB_DIR") or os.getcwd()).absolute()),
        }
        self._init_timeout = init_timeout
        self._lock = threading.Lock()
        self._queue: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._done = threading.Event()
        self._finish_requested = False
        self._last_step: int | None = None
        self._warned_step = False
        self._report: Callable[[MirrorState], None] | None = None
        self._last_report = 0.0
        self._given = 0
        self._skipped = 0
        self._code: dict[str, Any] = {}
        self._go = threading.Event()  # cleared by hold(): the worker pauses between rows
        self._go.set()
        self._abandoned = False  # the process exits without waiting for the worker any longer
        self._fell_back = False  # the server failed: the copy went offline
        self._course: str | None = None  # why the copy went offline (kept once complete)
        self._check: PendingCheck | None = None
        if resolved == "disabled":
            self._state = MirrorState(
                mode="disabled", status="disabled", copy=NOT_MIRRORED, reason="mirror disabled"
            )
            self._done.set()
            return
        self._state = MirrorState(mode=resolved, status="starting", wandb_id=run_id)
        if resolved == "online":  # asked while the worker imports wandb
            self._check = PendingCheck(min(PROBE_TIMEOUT, init_timeout))
        self._thread = threading.Thread(
            target=self._work, name=f"nbops-wandb-{run_id}", daemon=True
        )
        self._thread.start()

    @property
    def state(self) -> MirrorState:
        """The mirror's current :class:`MirrorState` (``total``: rows given to it so far)."""
        with self._lock:
            if self._state.total >= self._given:
                return self._state
            return replace(self._state, total=self._given)

    def report_to(self, callback: Callable[[MirrorState], None]) -> None:
        """Call ``callback(state)`` as the copy progresses (from the worker thread) and now."""
        self._report = callback
        self._publish(force=True)

    def log(self, rows: Sequence[tuple[int, float, Mapping[Any, float | MediaFile]]]) -> None:
        """Queue metric rows, each ``(step, unix_timestamp, {name: value})``.

        A value may be a :class:`MediaFile`: it becomes a ``wandb.Image``, ``wandb.Table`` or
        ``wandb.Histogram`` in the row.
        """
        batch = [
            (int(s), float(t), {k if type(k) is str else str(k): v for k, v in m.items()})
            for s, t, m in rows
        ]
        with self._lock:
            self._given += len(batch)
        self._put("log", batch)

    def update_config(self, params: Mapping[str, Any]) -> None:
        """Queue a config update (redacted like the store)."""
        self._put("config", redact(dict(params)))

    def update_summary(self, summary: Mapping[str, Any]) -> None:
        """Queue a summary update (redacted like the store)."""
        self._put("summary", redact({str(k): v for k, v in summary.items()}))

    def update_tags(self, tags: Sequence[str]) -> None:
        """Queue new tags for the W&B run (they replace the old ones)."""
        self._put("tags", [scrub_text(str(t)) for t in tags])

    def update_notes(self, notes: str) -> None:
        """Queue new notes for the W&B run."""
        self._put("notes", scrub_text(notes))

    def update_code(self, metadata: Mapping[str, Any]) -> None:
        """Queue the run's code information: store metadata ``git``, ``packages``, ``notebook``.

        They become ``diff.patch``, ``requirements.txt``, ``code/<notebook>`` and
        ``wandb-metadata.json`` in the W&B run, as wandb writes them for its own runs.
        """
        self._put("code", dict(metadata))

    def log_artifact(
        self, path: str | os.PathLike[str], name: str, type: str, file_name: str | None = None
    ) -> None:
        """Queue a file or directory to be logged as a W&B artifact.

        ``file_name`` names a file inside the artifact when ``path`` is a content-addressed copy
        (nbops passes its object-store blob, which cannot change before the upload).
        """
        self._put("artifact", (str(path), name, type, file_name))

    def hold(self) -> None:
        """Pause the worker between rows while the interpreter exits.

        The run's final store writes then go first, unhindered, before Jupyter kills a kernel it
        shuts down. In a running process the worker keeps draining (the store write does not
        compete with a deadline, and the copy is done sooner).
        """
        if interpreter_exiting():
            self._go.clear()

    def release(self) -> None:
        """Let the worker go on after :meth:`hold`."""
        self._go.set()

    def finish(self, exit_code: int = 0, timeout: float | None = None) -> bool:
        """Finish the wandb run, waiting at most ``timeout`` seconds.

        Args:
            exit_code: The run's exit code (0 for success).
            timeout: Seconds to wait; default :data:`FINISH_TIMEOUT`, :data:`FAILURE_TIMEOUT`
                while the mirror is still starting against a server or after it went offline
                because the server failed, and :data:`EXIT_TIMEOUT` while the interpreter exits.

        Returns:
            True when the worker drained the queue and finished (see :attr:`state` for the
            outcome); False on timeout: the copy is recorded as partial and the worker keeps
            going in the background, recording the copy complete when it is; at interpreter
            exit it gets :data:`EXIT_TIMEOUT` more seconds (``nbops sync --offline`` completes
            the copy from the store if the process ends first). Never raises.
        """
        self.release()
        if timeout is None:
            if interpreter_exiting():
                timeout = EXIT_TIMEOUT
            elif self._failing():
                timeout = FAILURE_TIMEOUT
            else:
                timeout = FINISH_TIMEOUT
        with self._lock:
            first = not self._finish_requested
            self._finish_requested = True
        if first and not self._done.is_set():
            self._queue.put(("finish", int(exit_code)))
            if interpreter_exiting():  # a kernel may be killed while we wait: record it first
                self._publish_exit_note()
        if self._done.wait(timeout):
            return True
        exiting = interpreter_exiting()
        if not exiting:
            _wait_for_at_exit(self)
        elif self._check is not None and self.state.status == "starting":
            # wandb-core retries the online start for ~30 s and wandb's own exit hook waits for
            # it without a bound: end it, the store records the copy as partial
            end_wandb_service_within(0.5)
        with self._lock:
            self._abandoned = exiting
            if self._state.copy != COMPLETE:
                self._state = replace(
                    self._state,
                    copy=PARTIAL,
                    total=self._given,
                    reason=(
                        "the process ended before the mirror drained"
                        if exiting
                        else f"the mirror had not drained {timeout:g} s after the run finished"
                    ),
                )
        self._publish(force=True, final=exiting)
        logger.info(
            "W&B mirror of run %s did not finish within %.0f s; the copy is recorded as partial "
            "(`nbops sync --offline` completes it from the store)",
            self._run_id,
            timeout,
        )
        return False

    # -- caller side helpers -------------------------------------------------------------------

    def _failing(self) -> bool:
        """True while the mirror waits on a server (not yet started online) or fell back."""
        if self._check is None:
            return False
        state = self.state
        return self._fell_back or (state.mode == "online" and state.status == "starting")

    def _publish_exit_note(self) -> None:
        with self._lock:
            if self._state.copy != COMPLETE:
                self._state = replace(
                    self._state, reason="the process was ending while the mirror drained"
                )
        self._publish(force=True)

    def _put(self, op: str, payload: Any) -> None:
        if self._finish_requested:
            logger.warning("W&B mirror of run %s is finished; %s ignored", self._run_id, op)
            return
        if not self._done.is_set():
            self._queue.put((op, payload))

    def _set(self, **changes: Any) -> None:
        with self._lock:
            self._state = replace(self._state, **changes)

    def _publish(self, force: bool = False, final: bool = False) -> None:
        """Hand the state to the report callback (at most every PROGRESS_EVERY s unless forced).

        Once the exiting process gave up on the worker (``final``), the worker reports no more:
        wandb is being torn down under it and the recorded partial state is the truth.
        """
        callback = self._report
        now = time.monotonic()
        if callback is None or (not force and now - self._last_report < PROGRESS_EVERY):
            return
        if self._abandoned and not final:
            return
        self._last_report = now
        with self._lock:
            state = replace(self._state, total=max(self._given, self._state.total))
        try:
            callback(state)
        except Exception:  # the store is the source of truth; losing a progress note is fine
            logger.debug("could not record W&B mirror progress of %s", self._run_id, exc_info=True)

    def _fail(self, what: str, exc: BaseException) -> None:
        message = scrub_text(f"{what}: {type(exc).__name__}: {exc}")
        if self._abandoned:  # wandb is torn down at exit; the store records the partial copy
            logger.debug("W&B mirror of run %s after exit: %s", self._run_id, message)
            return
        logger.warning("W&B mirror of run %s: %s", self._run_id, message)
        self._set(error=message)

    # -- worker thread -------------------------------------------------------------------------

    def _work(self) -> None:
        run = None
        try:
            run = self._start()
            self._publish(force=True)
            while True:
                op, payload = self._queue.get()
                if op == "finish":
                    self._end(run, payload)
                    return
                if run is not None and not self._abandoned:
                    self._apply(run, op, payload)
                    self._publish()
        except BaseException as exc:  # noqa: BLE001 - never let the worker die silently
            self._fail("mirror worker stopped", exc)
            self._set(status="failed", copy=PARTIAL, reason="the mirror worker stopped")
        finally:
            self._publish(force=True)  # the store knows the outcome before finish() returns
            self._done.set()
            _unfinished.discard(self)

    def _start(self) -> Any:
        try:
            import wandb
        except Exception as exc:  # noqa: BLE001 - a broken wandb install must not stop tracking
            self._fail("cannot import wandb", exc)
            self._set(status="failed", copy=NOT_MIRRORED, reason="wandb cannot be imported")
            return None
        mode = self.state.mode
        if mode == "online" and self._check is not None:
            check = self._check.result()
            if not check.ok:
                self._fall_back(wandb, check.describe())
                mode = "offline"
        try:
            run = self._init(wandb, mode, self._run_id)
        except Exception as exc:  # noqa: BLE001 - wandb raises many types; tracking goes on
            if mode != "online":
                self._fail("wandb.init failed", exc)
                self._set(status="failed", copy=NOT_MIRRORED, reason="wandb.init failed offline")
                return None
            self._fall_back(wandb, f"wandb.init failed online ({type(exc).__name__})")
            mode = "offline"
            run = self._init_offline_after_failure(wandb)
            if run is None:
                return None
        url = run.url if mode == "online" else None  # run.url prints a warning offline
        self._set(
            status="running", mode=mode, run_dir=str(Path(run.dir).parent), url=url, wandb_id=run.id
        )
        return run

    def _init_offline_after_failure(self, wandb: Any) -> Any:
        """Start offline after a failed online start, under a fresh id if wandb kept ours."""
        try:
            return self._init(wandb, "offline", self._run_id)
        except Exception:  # noqa: BLE001 - wandb-core keeps the id of a failed online start reserved
            fresh = fresh_id(self._run_id)
        try:
            run = self._init(wandb, "offline", fresh)
        except Exception as exc:  # noqa: BLE001 - wandb raises many types; tracking goes on
            self._fail("wandb.init failed offline too", exc)
            self._set(
                status="failed",
                copy=NOT_MIRRORED,
                reason="wandb could not start offline; `nbops sync --offline` builds the copy",
            )
            return None
        self._set(
            reason=f"{self._course}; W&B kept id {self._run_id} reserved, so the "
            f"offline copy has id {fresh}"
        )
        self._course = self.state.reason
        return run

    def _fall_back(self, wandb: Any, reason: str) -> None:
        message = (
            f"{reason}; mirroring run {self._run_id} offline instead. "
            "Upload it later with `nbops sync`"
        )
        logger.debug(message)
        if not self._abandoned:  # the process exits: the store already says the copy is partial
            warnings.warn(message, MirrorWarning, stacklevel=1)
        self._fell_back = True
        self._course = reason
        self._set(mode="offline", reason=reason)
        go_offline_process_wide(wandb)

    def _init(self, wandb: Any, mode: str, run_id: str) -> Any:
        turn_off_wandb_telemetry()
        if mode == "online":
            silence_wandb_terminal(wandb)
        commit, remote = self._early_git()
        settings = mirror_settings(wandb, commit, remote, init_timeout=self._init_timeout)
        kwargs = {**self._init_kwargs, "id": run_id}
        return wandb.init(mode=mode, reinit="create_new", settings=settings, **kwargs)

    def _early_git(self) -> tuple[str | None, str | None]:
        """The git commit and remote, when the run's capture queued them before wandb started."""
        with self._queue.mutex:
            pending = list(self._queue.queue)
        for op, payload in pending:
            if op == "code":
                return git_info(payload)
        return None, None

    def _apply(self, run: Any, op: str, payload: Any) -> None:
        try:
            if op == "log":
                self._log_rows(run, payload)
            elif op == "config":
                run.config.update(payload, allow_val_change=True)
            elif op == "summary":
                run.summary.update(payload)
            elif op == "tags":
                run.tags = tuple(payload)
            elif op == "notes":
                run.notes = payload
            elif op == "code":  # git, packages and notebook arrive one by one
                self._code.update(payload)
                write_code_files(run, code_files(self._code))
            elif op == "artifact":
                self._log_artifact(run, *payload)
        except Exception as exc:  # noqa: BLE001 - one failed upload must not stop the mirror
            self._fail(f"{op} failed", exc)

    def _log_rows(
        self, run: Any, rows: list[tuple[int, float, dict[str, float | MediaFile]]]
    ) -> None:
        import wandb

        written = skipped = 0
        for step, timestamp, metrics in rows:
            if not self._go.is_set():
                self._go.wait()
            if self._last_step is not None and step < self._last_step:
                if not self._warned_step:
                    self._warned_step = True
                    logger.warning(
                        "W&B mirror of run %s: step %d comes after step %d; wandb needs "
                        "increasing steps, so such rows are not mirrored (nbops keeps them)",
                        self._run_id,
                        step,
                        self._last_step,
                    )
                skipped += 1
                continue
            self._last_step = step
            with media_row(wandb, metrics) as row:
                run.log({**row, "_timestamp": timestamp}, step=step)
            written += 1
        with self._lock:
            self._skipped += skipped
            self._state = replace(self._state, rows=self._state.rows + written)

    def _log_artifact(
        self, run: Any, path: str, name: str, type_: str, file_name: str | None = None
    ) -> None:
        log_artifact(run, path, name, type_, file_name)

    def _end(self, run: Any, exit_code: int) -> None:
        if run is None:
            return
        try:
            run.finish(exit_code=exit_code)
        except Exception as exc:  # noqa: BLE001 - recorded in the mirror state, logged
            self._fail("wandb finish failed", exc)
            self._set(status="failed", copy=PARTIAL, reason="wandb could not finish the run")
            return
        state = self.state
        on_disk = True
        if state.run_dir:
            if state.mode == "offline" and not wait_until_written(state.run_dir):
                on_disk = False
                logger.warning(
                    "W&B offline file of run %s is still incomplete after finish", self._run_id
                )
            scrub_run_dir(state.run_dir)
        with self._lock:
            complete = on_disk and self._state.rows + self._skipped >= self._given
            self._state = replace(
                self._state,
                status="finished",
                total=self._given,
                copy=COMPLETE if complete else PARTIAL,
                reason=self._course if complete else "the W&B file ends before the run's last row",
            )
