"""Sweeps on a Dask cluster: each Dask task is a sweep worker (:func:`run_worker`).

``nbops.sweep(..., executor="dask://HOST:PORT")`` submits one task per Dask worker (or ``jobs``
tasks). A task runs trials until the budget is claimed, as ``nbops sweep worker`` does on
another machine: budget slots are claimed under the storage's lock, so exactly ``n_trials``
run; a trial whose worker died is retried with the same parameters (its death seen by pid on
the same host, by its heartbeat elsewhere); each trial records the Dask worker that ran it
(``nbops.dask_worker``). The storage must be one every worker reaches: PostgreSQL (or MySQL),
or a journal file when the user says the disk is shared (``shared_disk=True``).

Stopping: :meth:`Sweep.stop` records the stop in the study, so tasks end after their trial;
``stop(now=True)`` and Ctrl-C also cancel the futures, which each task notices within a
fraction of a second: it interrupts its objective and tells the study FAIL. Trials a task
left RUNNING (its worker lost, or deaf to the interrupt) are failed by the coordinator, so
nothing stays RUNNING. A task also stops when its future is released (the coordinating
process died). A cluster left with no worker for a minute ends the sweep with an error.
Trial runs (and the kernels of a notebook objective) record into the coordinator's store
(:func:`nbops.store.store_address`, sent with each task), whatever the workers' environment says.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbops.errors import NbopsError
from nbops.sweeps import _optuna
from nbops.sweeps._errors import SweepError, SweepStorageError
from nbops.sweeps._spec import SweepSpec
from nbops.sweeps._storage import JOURNAL_PREFIX, MEMORY, resolve_url
from nbops.sweeps._worker import STOP_REASON_ATTR, Interrupter, run_worker

if TYPE_CHECKING:
    from nbops.cluster import Executor
    from nbops.store import StoreAddress
    from nbops.sweeps._sweep import Sweep

logger = logging.getLogger(__name__)

WORKER_ATTR = "nbops.dask_worker"
ADDRESS_ATTR = "nbops.dask_address"
TASK_ATTR = "nbops.dask_task"
_WATCH_INTERVAL = 0.2
_STOP_GRACE = 15.0
#: Seconds a cluster may have no worker before the sweep gives up (its tasks would wait forever).
NO_WORKERS_GRACE = 60.0
_GONE = ("cancelled", "released", "forgotten")
_SHARED = (
    "storage='postgresql://USER@HOST:PORT/DB' (a database every worker reaches), or a "
    ".journal path with shared_disk=True when every worker sees this disk at the same path"
)


def check_storage(storage: Any, shared_disk: bool) -> None:
    """Refuse a storage the Dask workers cannot share, before any study or trial exists.

    Raises:
        SweepStorageError: No storage, memory, SQLite, or a journal without ``shared_disk``.
    """
    if storage is None:
        if shared_disk:
            return  # the default journal under .nbops/, seen by every worker
        raise SweepStorageError(
            "a sweep on a Dask cluster needs a storage its workers share: give " + _SHARED
        )
    url = resolve_url(storage, "check")
    if url == MEMORY:
        raise SweepStorageError(
            "an in-memory storage lives in this process; Dask workers cannot reach it: give "
            + _SHARED
        )
    if url.startswith(JOURNAL_PREFIX):
        if not shared_disk:
            raise SweepStorageError(
                f"the journal {url[len(JOURNAL_PREFIX) :]} is on this machine's disk, which "
                "Dask workers elsewhere do not see: give " + _SHARED
            )
        return
    if url.split("://", 1)[0].split("+", 1)[0] == "sqlite":
        raise SweepStorageError(
            "SQLite cannot be shared safely by the workers of a Dask cluster: give " + _SHARED
        )


def sweep_task(
    spec: SweepSpec, notebook: bytes | None = None, store: StoreAddress | None = None
) -> dict[str, Any]:
    """One sweep worker as a Dask task: run trials until the budget is claimed.

    ``notebook`` is the content of a notebook objective, written under the worker's local
    directory when its path does not exist there; ``store`` is the coordinator's store, where
    the trial runs are recorded (None: the worker's own). Returns the worker's name and the number
    of trials it ran, or the error that stopped it.
    """
    from distributed import get_worker

    worker = get_worker()
    key = worker.get_current_task()
    name = str(worker.name)
    spec = _local_notebook(spec, notebook, Path(worker.local_directory))
    interrupter = Interrupter(threading.current_thread())
    ended = threading.Event()
    watcher = threading.Thread(
        target=_watch, args=(worker, key, interrupter, ended), daemon=True, name="nbops-dask-watch"
    )
    watcher.start()
    attrs = {WORKER_ATTR: name, ADDRESS_ATTR: str(worker.address), TASK_ATTR: str(key)}
    try:
        count = run_worker(spec, interrupter=interrupter, attrs=attrs, store=store)
    except KeyboardInterrupt:
        return {"worker": name, "trials": None, "error": None, "stopped": interrupter.reason}
    except NbopsError as exc:  # returned, not raised: its class need not unpickle elsewhere
        return {"worker": name, "trials": None, "error": str(exc)}
    finally:
        ended.set()
    return {"worker": name, "trials": count, "error": None}


def _watch(worker: Any, key: Any, interrupter: Interrupter, ended: threading.Event) -> None:
    """Interrupt the task once its future is cancelled or released by the scheduler."""
    while not ended.wait(_WATCH_INTERVAL):
        task = worker.state.tasks.get(key)
        if task is None or task.state in _GONE:
            interrupter.interrupt("the sweep's Dask task was cancelled")
            return


def _local_notebook(spec: SweepSpec, notebook: bytes | None, folder: Path) -> SweepSpec:
    """The spec with a notebook target this worker can read (a copy when the path is absent)."""
    if spec.kind != "notebook" or notebook is None or not spec.target:
        return spec
    if Path(spec.target).is_file():
        return spec
    from nbops.fileio import write_atomic

    path = folder / "nbops-sweeps" / spec.study_name / Path(spec.target).name
    if not path.is_file() or path.read_bytes() != notebook:
        write_atomic(path, notebook)
    return spec.replace(target=str(path))


class DaskTasks:
    """The Dask tasks running one sweep, submitted and watched by the coordinating process."""

    def __init__(self, executor: Executor, jobs: int | None) -> None:
        """Connect to the cluster and find its workers (before any study exists).

        Raises:
            ClusterUnavailableError: No scheduler answers at the executor's address.
            SweepError: The cluster has no workers.
        """
        from nbops.cluster import dask_client

        self.executor = executor
        self.client: Any = dask_client(executor)  # distributed is untyped in places
        self.futures: list[Any] = []  # distributed.Future
        self._cancelled = False
        self._gave_up = False  # every worker left the cluster
        self._closed = False
        try:
            self.workers = sorted(self.client.scheduler_info(n_workers=-1)["workers"])
        except BaseException:
            self.close()
            raise
        if not self.workers:
            self.close()
            raise SweepError(
                f"the Dask cluster at {executor.url} has no workers; start some with "
                f"'dask worker {executor.address}'"
            )
        self.jobs = jobs or len(self.workers)

    def start(self, sweep: Sweep) -> threading.Thread:
        """Submit the sweep's tasks, spread over the workers; return the thread watching them."""
        from nbops.store import store_address

        spec = sweep.spec
        store = store_address()  # this process's store: trial runs go there from every worker
        notebook = (
            Path(spec.target).read_bytes() if spec.kind == "notebook" and spec.target else None
        )
        token = uuid.uuid4().hex[:8]
        for index in range(self.jobs):
            self.futures.append(
                self.client.submit(
                    sweep_task,
                    spec,
                    notebook,
                    store,
                    key=f"nbops-sweep-{spec.study_name}-{token}-{index}",
                    workers=[self.workers[index % len(self.workers)]],
                    allow_other_workers=True,  # a lost worker's task may run elsewhere
                    pure=False,
                )
            )
        thread = threading.Thread(
            target=self._supervise, args=(sweep,), name=f"nbops-sweep-{sweep.name}", daemon=True
        )
        thread.start()
        return thread

    def stop(self, now: bool) -> None:
        """``now``: cancel the futures (each task interrupts its trial); else nothing more
        than the stop the study records (tasks end after their trial)."""
        if now and not self._cancelled and not self._closed:
            self._cancelled = True
            try:
                self.client.cancel(self.futures)
            except Exception:  # the cluster went away: nothing left to cancel
                logger.debug("could not cancel the Dask tasks", exc_info=True)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            try:
                self.client.close()
            except Exception:  # closing a client of a dead scheduler
                logger.debug("could not close the Dask client", exc_info=True)

    def _has_workers(self) -> bool:
        try:
            return bool(self.client.scheduler_info(n_workers=-1)["workers"])
        except (OSError, TimeoutError):  # the scheduler is unreachable: no worker either
            return False

    @property
    def keys(self) -> set[str]:
        return {str(f.key) for f in self.futures}

    def _supervise(self, sweep: Sweep) -> None:
        try:
            lost_since: float | None = None
            checked = time.time()
            while not all(f.done() for f in self.futures):
                time.sleep(0.1)
                if time.time() - checked >= 1.0:  # tasks wait forever on a cluster left empty
                    checked = time.time()
                    lost_since = None if self._has_workers() else lost_since or checked
                    if lost_since is not None and checked - lost_since >= NO_WORKERS_GRACE:
                        self._gave_up = True
                        self.client.cancel(self.futures)
            results = self._results(sweep)
            self._drain(sweep)
            summary = sweep._summary_run
            if summary is not None and not summary.finished:
                summary.summary["dask_workers"] = self._trials_per_worker(sweep)
            reason = sweep.study.user_attrs.get(STOP_REASON_ATTR)
            failed = [r for r in results if r is not None]
            if reason:
                sweep._error = SweepError(f"sweep {sweep.name} stopped: {reason}")
            elif self._gave_up:
                sweep._error = SweepError(
                    f"sweep {sweep.name} stopped: the Dask cluster at {self.executor.url} had no "
                    f"worker for {NO_WORKERS_GRACE:.0f} s; start workers and resume the sweep "
                    "by its name"
                )
            elif failed and len(failed) == len(self.futures) and not sweep.trials():
                sweep._error = SweepError(
                    f"every Dask task of sweep {sweep.name} failed: {failed[0]}"
                )
        except BaseException as exc:  # noqa: BLE001 - re-raised by wait() in the caller
            sweep._error = exc
        finally:
            self.close()
            sweep._finalize()

    def _results(self, sweep: Sweep) -> list[str | None]:
        """Each task's error (None: it ended well or was cancelled), kept in ``sweep.errors``."""
        errors: list[str | None] = []
        for future in self.futures:
            error: str | None = None
            where: str | None = None
            if future.status == "finished":
                error = future.result().get("error")
                where = future.result().get("worker")
            elif future.status == "error":
                exc = future.exception()
                error = f"{type(exc).__name__}: {exc}"
            if error is not None:
                sweep._worker_errors.append(f"Dask task {future.key} ({where or '?'}): {error}")
            errors.append(error)
        return errors

    def _drain(self, sweep: Sweep) -> None:
        """Wait for this sweep's tasks to tell their trials (cancelled tasks keep running
        until their objective is interrupted), then fail what they left RUNNING."""
        from optuna.trial import TrialState

        keys = self.keys
        deadline = time.time() + (_STOP_GRACE if self._cancelled else 0.0)
        while True:
            left = [
                t
                for t in sweep.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                if t.user_attrs.get(TASK_ATTR) in keys
            ]
            if not left or time.time() >= deadline:
                break
            time.sleep(0.1)
        for trial in left:
            where = trial.user_attrs.get(WORKER_ATTR, "?")
            message = (
                "interrupted: the sweep was stopped"
                if self._cancelled
                else f"its Dask worker {where} was lost"
            )
            try:
                _optuna.set_user_attr(sweep.study, trial, "nbops.error", message)
                _optuna.fail_running(sweep.study, trial)
            except Exception:  # the task told it meanwhile
                logger.debug("trial %s ended meanwhile", trial.number, exc_info=True)

    @staticmethod
    def _trials_per_worker(sweep: Sweep) -> Mapping[str, int]:
        counts: dict[str, int] = {}
        for trial in sweep.trials():
            name = trial.user_attrs.get(WORKER_ATTR)
            if isinstance(name, str):
                counts[name] = counts.get(name, 0) + 1
        return dict(sorted(counts.items()))
