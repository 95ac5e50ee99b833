"""Mirror one nbops run to a W&B run, doing all wandb work on a background thread."""

from __future__ import annotations

import logging
import os
import queue
import re
import threading
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from nbops.fileio import write_atomic
from nbops.mirror._mode import base_url, resolve_mode, server_reachable
from nbops.redact import scrub_text, secret_values

logger = logging.getLogger(__name__)

_ARTIFACT_NAME_BAD = re.compile(r"[^A-Za-z0-9_.-]+")


class MirrorWarning(UserWarning):
    """The W&B mirror changed course (went offline, skipped data); the nbops run is unaffected."""


@dataclass(frozen=True)
class MirrorState:
    """Where a :class:`WandbMirror` stands.

    Attributes:
        mode: ``"online"``, ``"offline"`` or ``"disabled"``; becomes ``"offline"`` after a
            fallback from an unreachable server.
        status: ``"starting"``, ``"running"``, ``"finished"``, ``"failed"`` or ``"disabled"``.
        error: The last wandb error, if any (the mirror keeps going where it can).
        run_dir: The wandb run directory once known.
        url: The run's page for online runs.
    """

    mode: str
    status: str
    error: str | None = None
    run_dir: str | None = None
    url: str | None = None


class WandbMirror:
    """Mirror one nbops run to a W&B run with the same id, name, config, history and summary.

    Every method returns at once: calls are queued and a daemon worker thread talks to wandb.
    wandb failures never reach the caller; they are logged, kept in :attr:`state` and the mirror
    carries on (or stops mirroring) while the nbops store keeps the data.

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
        self._init_kwargs: dict[str, Any] = {
            "id": run_id,
            "name": name,
            "project": project,
            "group": group,
            "job_type": job_type,
            "tags": list(tags),
            "config": dict(config),
            "dir": str(directory or os.environ.get("WANDB_DIR") or os.getcwd()),
        }
        self._init_timeout = init_timeout
        self._lock = threading.Lock()
        self._queue: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._done = threading.Event()
        self._finish_requested = False
        self._last_step: int | None = None
        self._warned_step = False
        if resolved == "disabled":
            self._state = MirrorState(mode="disabled", status="disabled")
            self._done.set()
            return
        self._state = MirrorState(mode=resolved, status="starting")
        self._thread = threading.Thread(
            target=self._work, name=f"nbops-wandb-{run_id}", daemon=True
        )
        self._thread.start()

    @property
    def state(self) -> MirrorState:
        """The mirror's current :class:`MirrorState`."""
        with self._lock:
            return self._state

    def log(self, rows: Sequence[tuple[int, float, Mapping[str, float]]]) -> None:
        """Queue metric rows, each ``(step, unix_timestamp, {name: value})``."""
        self._put("log", [(int(s), float(t), dict(m)) for s, t, m in rows])

    def update_config(self, params: Mapping[str, Any]) -> None:
        """Queue a config update (values already redacted by the caller)."""
        self._put("config", dict(params))

    def update_summary(self, summary: Mapping[str, Any]) -> None:
        """Queue a summary update."""
        self._put("summary", dict(summary))

    def log_artifact(
        self, path: str | os.PathLike[str], name: str, type: str, file_name: str | None = None
    ) -> None:
        """Queue a file or directory to be logged as a W&B artifact.

        ``file_name`` names a file inside the artifact when ``path`` is a content-addressed copy
        (nbops passes its object-store blob, which cannot change before the upload).
        """
        self._put("artifact", (str(path), name, type, file_name))

    def finish(self, exit_code: int = 0, timeout: float = 60.0) -> bool:
        """Finish the wandb run, waiting at most ``timeout`` seconds.

        Returns:
            True when the worker drained the queue and finished (see :attr:`state` for the
            outcome); False on timeout, after logging a warning. Never raises.
        """
        with self._lock:
            first = not self._finish_requested
            self._finish_requested = True
        if first and not self._done.is_set():
            self._queue.put(("finish", int(exit_code)))
        if self._done.wait(timeout):
            return True
        logger.warning(
            "W&B mirror of run %s did not finish within %.0f s; it keeps going in the background",
            self._init_kwargs["id"],
            timeout,
        )
        return False

    # -- caller side helpers -------------------------------------------------------------------

    def _put(self, op: str, payload: Any) -> None:
        if self._finish_requested:
            logger.warning(
                "W&B mirror of run %s is finished; %s ignored", self._init_kwargs["id"], op
            )
            return
        if not self._done.is_set():
            self._queue.put((op, payload))

    def _set(self, **changes: Any) -> None:
        with self._lock:
            self._state = replace(self._state, **changes)

    def _fail(self, what: str, exc: BaseException) -> None:
        message = scrub_text(f"{what}: {type(exc).__name__}: {exc}")
        logger.warning("W&B mirror of run %s: %s", self._init_kwargs["id"], message)
        self._set(error=message)

    # -- worker thread -------------------------------------------------------------------------

    def _work(self) -> None:
        run = None
        try:
            run = self._start()
            while True:
                op, payload = self._queue.get()
                if op == "finish":
                    self._end(run, payload)
                    return
                if run is not None:
                    self._apply(run, op, payload)
        except BaseException as exc:  # noqa: BLE001 - never let the worker die silently
            self._fail("mirror worker stopped", exc)
            self._set(status="failed")
        finally:
            self._done.set()

    def _start(self) -> Any:
        try:
            import wandb
        except Exception as exc:  # noqa: BLE001 - a broken wandb install must not stop tracking
            self._fail("cannot import wandb", exc)
            self._set(status="failed")
            return None
        mode = self.state.mode
        if mode == "online" and not server_reachable(base_url(), self._init_timeout):
            self._fall_back(f"the W&B server {base_url()} could not be reached")
            mode = "offline"
        try:
            run = self._init(wandb, mode)
        except Exception as exc:  # noqa: BLE001 - wandb raises many types; tracking goes on
            if mode != "online":
                self._fail("wandb.init failed", exc)
                self._set(status="failed")
                return None
            self._fall_back(f"wandb.init failed online ({type(exc).__name__})")
            try:
                run = self._init(wandb, "offline")
            except Exception as exc2:  # noqa: BLE001 - as above
                # wandb-core keeps the id of a failed online start reserved, so an offline
                # retry under the same id can fail; the nbops store still has everything.
                self._fail(
                    "wandb.init failed offline too (wandb-core still holds the id of the failed "
                    "online start); this run is not mirrored, the nbops store keeps it",
                    exc2,
                )
                self._set(status="failed")
                return None
            mode = "offline"
        url = run.url if mode == "online" else None  # run.url prints a warning offline
        self._set(status="running", mode=mode, run_dir=str(Path(run.dir).parent), url=url)
        return run

    def _fall_back(self, reason: str) -> None:
        message = (
            f"{reason}; mirroring run {self._init_kwargs['id']} offline instead. "
            "Upload it later with nbops.mirror.sync()"
        )
        logger.warning(message)
        warnings.warn(message, MirrorWarning, stacklevel=1)
        self._set(mode="offline")

    def _init(self, wandb: Any, mode: str) -> Any:
        if mode == "online":
            _silence_wandb_terminal(wandb)
        settings = wandb.Settings(
            silent=True,
            console="off",
            init_timeout=self._init_timeout,
            # Keep secrets out of wandb's files: no command line, environment-derived metadata,
            # git remote, code or system stats are recorded.
            x_disable_meta=True,
            x_disable_stats=True,
            x_disable_machine_info=True,
            disable_git=True,
            disable_code=True,
            save_code=False,
            x_save_requirements=False,
        )
        return wandb.init(mode=mode, reinit="create_new", settings=settings, **self._init_kwargs)

    def _apply(self, run: Any, op: str, payload: Any) -> None:
        try:
            if op == "log":
                self._log_rows(run, payload)
            elif op == "config":
                run.config.update(payload, allow_val_change=True)
            elif op == "summary":
                run.summary.update(payload)
            elif op == "artifact":
                self._log_artifact(run, *payload)
        except Exception as exc:  # noqa: BLE001 - one failed upload must not stop the mirror
            self._fail(f"{op} failed", exc)

    def _log_rows(self, run: Any, rows: list[tuple[int, float, dict[str, float]]]) -> None:
        for step, timestamp, metrics in rows:
            if self._last_step is not None and step < self._last_step:
                if not self._warned_step:
                    self._warned_step = True
                    logger.warning(
                        "W&B mirror of run %s: step %d comes after step %d; wandb needs "
                        "increasing steps, so such rows are not mirrored (nbops keeps them)",
                        self._init_kwargs["id"],
                        step,
                        self._last_step,
                    )
                continue
            self._last_step = step
            run.log({**metrics, "_timestamp": timestamp}, step=step)

    def _log_artifact(
        self, run: Any, path: str, name: str, type_: str, file_name: str | None = None
    ) -> None:
        import wandb

        artifact = wandb.Artifact(_ARTIFACT_NAME_BAD.sub("-", name).strip("-") or "artifact", type_)
        if Path(path).is_dir():
            artifact.add_dir(path)
        else:
            artifact.add_file(path, name=file_name or Path(path).name)
        run.log_artifact(artifact)

    def _end(self, run: Any, exit_code: int) -> None:
        if run is None:
            return
        try:
            run.finish(exit_code=exit_code)
        except Exception as exc:  # noqa: BLE001 - recorded in the mirror state, logged
            self._fail("wandb finish failed", exc)
            self._set(status="failed")
            return
        run_dir = self.state.run_dir
        if run_dir:
            if self.state.mode == "offline" and not _wait_until_written(run_dir):
                logger.warning(
                    "W&B offline file of run %s is still incomplete after finish",
                    self._init_kwargs["id"],
                )
            scrub_run_dir(run_dir)
        self._set(status="finished")


def _wait_until_written(run_dir: str, timeout: float = 15.0) -> bool:
    """Wait until the offline ``.wandb`` file holds the run's exit record.

    ``run.finish()`` can return while wandb-core is still writing the file (seen under load);
    the offline file is the only copy, so "finished" must mean "on disk".
    """
    from nbops.mirror._offline_file import read_offline_run

    deadline = time.monotonic() + timeout
    while True:
        try:
            if read_offline_run(run_dir).complete:
                return True
        except Exception:
            logger.debug("offline file of %s not readable yet", run_dir, exc_info=True)
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def _silence_wandb_terminal(wandb: Any) -> None:
    """Stop wandb's login from printing "Loaded credentials ..." into the notebook cell.

    wandb's login reads the process-wide setup settings, not the run's, so this makes wandb
    silent for the whole process (nbops owns wandb's output in a notebook anyway).
    """
    try:
        wandb.setup(settings=wandb.Settings(silent=True))
    except Exception:  # losing this only costs one line of output
        logger.debug("could not silence wandb terminal output", exc_info=True)


def scrub_run_dir(run_dir: str | os.PathLike[str]) -> list[Path]:
    """Replace secret environment values in a wandb run directory's text files.

    The binary ``.wandb`` file is only checked (it is CRC-framed); a hit is logged.

    Returns:
        The files that contained a secret.
    """
    secrets = secret_values()
    if not secrets:
        return []
    hits: list[Path] = []
    for path in Path(run_dir).rglob("*"):
        if not path.is_file() or path.is_symlink():
            continue
        try:
            data = path.read_bytes()
        except OSError:
            continue
        if not any(s.encode() in data for s in secrets):
            continue
        hits.append(path)
        if path.suffix == ".wandb":
            logger.warning("%s contains a secret environment value; do not sync it", path)
            continue
        text = data.decode("utf-8", errors="surrogateescape")
        write_atomic(path, scrub_text(text, secrets).encode("utf-8", errors="surrogateescape"))
    return hits
