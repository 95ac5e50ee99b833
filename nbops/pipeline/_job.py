"""One stage executed away from the coordinator (on a Dask worker): a small picklable
:class:`StageJob` in, a :class:`JobResult` out.

Without a shared disk the worker fetches the stage's notebook and deps by content hash from the
project's remote into a scratch folder, runs there, and puts its outs and executed notebook into
the remote; the coordinator fetches them and decides everything else (lock, run cache, models).
The worker owns the attempt's run: it opens it in the store the coordinator names, records where
it ran (metadata ``executor``), and finishes it.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbops.errors import NbopsError
from nbops.pipeline._execution import (
    check_gates,
    run_notebook,
    scrub_secrets,
    stage_env,
    stage_metrics,
)
from nbops.pipeline._hashing import HashCache, path_hash
from nbops.pipeline._ignore import IgnoreRules
from nbops.pipeline._outputs import clear_outs, restore_outs, save_outs
from nbops.pipeline._remote import Remote, open_remote
from nbops.pipeline._spec import Stage
from nbops.pipeline._sync import fetch_outs, push_objects, push_outs
from nbops.store import BlobStore, StoreAddress

logger = logging.getLogger(__name__)

#: metadata key of a stage's run: where it ran (``url``, ``worker``, ``address``, ``task``: the
#: Dask key, not named ``key``, which redaction takes for a secret, and ``attempt``)
EXECUTOR_KEY = "executor"


@dataclass(frozen=True)
class StageJob:
    """What a worker needs to execute one stage (no RunContext: it is pickled to the worker).

    Attributes:
        stage: The stage (notebook path, outs, gates, timeout).
        params: The parameters the notebook gets.
        kernel: The kernel name.
        pipeline_id: The ``nbops run`` this belongs to (its runs are in ``pipeline-<id>``).
        project: The project the run is logged under.
        store: The coordinator's store and blobs, where the worker opens the run.
        store_dir: The coordinator's store folder (``NBOPS_HOME`` of the kernel).
        root: The coordinator's project root (where the stage runs with a shared disk).
        executed: Where the executed notebook goes with a shared disk.
        executor_url: The executor, as the user wrote it (recorded in the run).
        shared_disk: The worker sees ``root`` as the coordinator does.
        remote_url: The remote moving inputs and outputs, without a shared disk.
        inputs: Relative path -> digest of the notebook and deps, without a shared disk.
        ignore: ``.nbopsignore`` lines (folder outs are hashed as the coordinator would).
        stop_event: Name of the Dask event the coordinator sets on Ctrl-C.
    """

    stage: Stage
    params: Mapping[str, Any] = field(repr=False)  # may hold secrets: kept out of Dask's logs
    kernel: str
    pipeline_id: str
    project: str
    store: StoreAddress
    store_dir: str
    root: str
    executed: str
    executor_url: str
    shared_disk: bool = False
    remote_url: str | None = None
    inputs: Mapping[str, str] = field(default_factory=dict)
    ignore: tuple[str, ...] = ()
    stop_event: str | None = None

    @property
    def group(self) -> str:
        return f"pipeline-{self.pipeline_id}"


@dataclass(frozen=True)
class JobResult:
    """What one attempt did: its run, why it failed (if it did), its outs and executed notebook
    (digests in the remote; empty with a shared disk), and where it ran."""

    run_id: str
    status: str
    failure: str | None
    outs: Mapping[str, str]
    executed: str | None
    worker: str
    address: str
    key: str
    attempt: int


def _where() -> tuple[str, str, str]:
    """This worker's name and address and the Dask key of the running task."""
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return "local", "", ""
    return str(worker.name), str(worker.address), str(worker.get_current_task() or "")


def _quiet(_: str) -> None:
    """Progress of transfers on a worker goes nowhere (the coordinator reports the stage)."""


class _StopWatch:
    """Kill this job's kernel when the coordinator sets the stop event (Ctrl-C)."""

    def __init__(self, name: str | None) -> None:
        self.stopping = threading.Event()
        self.kernels: dict[str, Any] = {}
        self._done = threading.Event()
        if name is None:
            return
        from nbops.deps import require

        distributed = require("distributed", feature="running on a Dask cluster")
        try:
            event = distributed.Event(name, client=distributed.get_client())
        except ValueError:  # not in a Dask worker
            return
        if event.is_set():
            self.stopping.set()
        threading.Thread(target=self._watch, args=(event,), daemon=True).start()

    def _watch(self, event: Any) -> None:
        from nbops.execute import kill_kernel

        while not self._done.is_set():
            try:
                if not event.wait(timeout=0.5):
                    continue
            except Exception:
                logger.debug("stop watcher ends", exc_info=True)
                return
            self.stopping.set()
            for kernel in list(self.kernels.values()):
                kill_kernel(kernel)
            return

    def close(self) -> None:
        self._done.set()


def run_stage_job(job: StageJob) -> JobResult:
    """Execute one stage here, in a fresh kernel, as a tracked run in the coordinator's store.

    Called by a Dask worker for each attempt; the stage's failures (cell error, gate, missing
    out, Ctrl-C) are results. Raises only when nbops itself cannot work (the remote or the
    store unreachable); the attempt's run is then finished as failed.
    """
    import nbops
    from nbops.store import ObjectStore

    worker, address, key = _where()
    store = job.store.open()
    previous = [
        r for r in store.list_runs(job.project) if r.group == job.group and r.name == job.stage.name
    ]
    scratch = Path(tempfile.mkdtemp(prefix="nbops-stage-"))
    watch = _StopWatch(job.stop_event)
    remote = None if job.shared_disk else _open_remote(job)
    try:
        work = Path(job.root) if job.shared_disk else scratch / "work"
        executed = Path(job.executed) if job.shared_disk else scratch / "executed.ipynb"
        blobs = ObjectStore(scratch / "objects")
        if remote is not None:
            work.mkdir(parents=True)
            fetch_outs(remote, job.inputs, blobs, _quiet)
            restore_outs(work, job.inputs, blobs)
        clear_outs(work, job.stage.outs)
        notebook = work / job.stage.notebook
        run = nbops.init(
            project=job.project,
            name=job.stage.name,
            config=dict(job.params),
            group=job.group,
            job_type="stage",
            notebook=notebook,
            store=store,
            activate=False,
        )
        where = {"url": job.executor_url, "worker": worker, "address": address, "task": key}
        run.set_metadata(EXECUTOR_KEY, {**where, "attempt": len(previous) + 1})
        try:
            env = stage_env(run.id, store, Path(job.store_dir), notebook)
            failure = run_notebook(
                notebook,
                executed,
                job.params,
                kernel_name=job.kernel,
                timeout=job.stage.timeout,
                env=env,
                cwd=work,
                kernels=watch.kernels,
                name=job.stage.name,
                stopping=watch.stopping,
            )
            scrub_secrets(executed, job.params)
            if watch.stopping.is_set():
                failure = "interrupted by Ctrl-C"
            run.sync_from_store()
            if failure is None:
                problems = check_gates(job.stage, stage_metrics(store, run))
                problems += [
                    f"stage {job.stage.name} did not write out {out}"
                    for out in job.stage.outs
                    if not (work / out).exists()
                ]
                failure = "; ".join(problems) or None
            outs: dict[str, str] = {}
            notebook_digest = None
            if remote is not None:
                if failure is None:
                    outs = _send_outs(remote, job, work, blobs, scratch)
                notebook_digest = _send_file(remote, executed, blobs)
        except BaseException:
            run.finish("killed" if watch.stopping.is_set() else "failed")
            raise
        status = "finished" if failure is None else "failed"
        run.finish("killed" if watch.stopping.is_set() else status)
        return JobResult(
            run.id, run.status, failure, outs, notebook_digest, worker, address, key,
            len(previous) + 1,
        )  # fmt: skip
    finally:
        watch.close()
        if remote is not None:
            remote.close()
        shutil.rmtree(scratch, ignore_errors=True)


def _open_remote(job: StageJob) -> Remote:
    if job.remote_url is None:
        raise NbopsError("the stage job has neither a shared disk nor a remote to move files")
    return open_remote(job.remote_url)


def _send_outs(
    remote: Remote, job: StageJob, work: Path, blobs: BlobStore, scratch: Path
) -> dict[str, str]:
    """Hash the outs as the coordinator does, keep them in ``blobs``, upload them."""
    cache = HashCache(scratch / "hashcache.sqlite", IgnoreRules.parse(list(job.ignore), work))
    hashed = {out: path_hash(work / out, cache) for out in job.stage.outs}
    outs = {out: digest for out, digest in hashed.items() if digest is not None}
    save_outs(work, outs, blobs, cache)
    push_outs(remote, outs, blobs, _quiet)
    return outs


def _send_file(remote: Remote, path: Path, blobs: BlobStore) -> str | None:
    if not path.is_file():
        return None
    digest = blobs.put_file(path)[0]
    push_objects(remote, [digest], blobs, _quiet)
    return digest
