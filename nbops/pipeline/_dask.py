"""The Dask executor of ``nbops run``: each ready stage becomes one task on the cluster.

The coordinator decides (caching, lock, run cache) exactly as for local runs; a thread of its
pool submits the stage as a :class:`~nbops.pipeline._job.StageJob`, waits for it, fetches what
it produced and concludes it with the local bookkeeping. Dask retries a task whose worker died
(and ``retries`` times one that raised); attempts whose worker is gone are marked ``crashed``.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from nbops.cluster import Executor, dask_client
from nbops.errors import NbopsError
from nbops.pipeline._job import EXECUTOR_KEY, JobResult, StageJob, run_stage_job
from nbops.pipeline._outputs import clear_outs, restore_outs, save_outs
from nbops.pipeline._remote import DirectoryRemote, Remote
from nbops.pipeline._remotes import RemoteConfigError
from nbops.pipeline._spec import PipelineSpec, Stage
from nbops.pipeline._stage import RunContext, StageResult, conclude_stage, execute_stage
from nbops.pipeline._status import Fingerprint
from nbops.pipeline._sync import fetch_objects, fetch_outs, open_configured, push_outs

#: how long a stopped stage may take to kill its kernel and report before it is cancelled
STOP_GRACE = 30.0
#: seconds between looks for attempts whose worker died, while a stage runs
LOST_EVERY = 5.0


class ExecutorConfigError(NbopsError):
    """The executor cannot move the stages' files (no remote and no shared disk)."""


#: what to do when a cluster has neither a remote nor a shared disk
CONFIGURE = (
    "add one with `nbops remote add NAME URL --default` (a folder or ssh:// URL every worker "
    "reaches), or, when the workers see this project and its store at the same paths, set "
    "shared_disk: true (executor: {url: ..., shared_disk: true} under pipeline: in nbops.yaml, "
    "or --shared-disk)"
)


@dataclass(frozen=True)
class ExecutorOptions:
    """``--executor`` / ``pipeline.executor``: where stages run and how files reach them."""

    executor: Executor
    shared_disk: bool = False
    retries: int = 1


def executor_options(
    spec: PipelineSpec, url: str | None, shared_disk: bool | None, retries: int | None
) -> ExecutorOptions:
    """The executor of a run: the arguments (the CLI) override ``pipeline.executor``."""
    from nbops.cluster import parse_executor

    raw = (spec.raw.get("pipeline") or {}).get("executor")
    body: dict[str, Any] = {"url": raw} if isinstance(raw, str) else dict(raw or {})
    if url is not None:
        body["url"] = url
    if shared_disk is not None:
        body["shared_disk"] = shared_disk
    if retries is not None:
        body["retries"] = retries
    if int(body.get("retries", 1)) < 0:
        raise NbopsError("retries must be 0 or more")
    return ExecutorOptions(
        parse_executor(body.get("url")), bool(body.get("shared_disk")), int(body.get("retries", 1))
    )


def needs_remote(options: ExecutorOptions, dry_run: bool) -> bool:
    """Whether the stages' files travel through the remote (a cluster without a shared disk)."""
    return not options.executor.is_local and not options.shared_disk and not dry_run


def open_transfer_remote(
    base: Path, store_dir: Path, name: str | None, options: ExecutorOptions
) -> Remote:
    """The remote of ``--remote`` (default: the default one); for a cluster that needs it and
    finds none, the error says how to configure one."""
    try:
        return open_configured(base, store_dir, name)
    except RemoteConfigError as exc:
        if name is None and needs_remote(options, dry_run=False):
            raise ExecutorConfigError(
                f"the Dask executor moves notebooks and files through the project's default "
                f"remote ({exc}); {CONFIGURE}"
            ) from None
        raise


def _remote_url(remote: Remote) -> str:
    """The remote's URL as a worker opens it (a relative folder made absolute)."""
    if isinstance(remote, DirectoryRemote):
        return str(remote.root.resolve())
    return remote.url


class DaskStages:
    """Stages of one ``nbops run`` as tasks on a Dask cluster (use as a context manager)."""

    def __init__(self, ctx: RunContext, options: ExecutorOptions, remote: Remote | None) -> None:
        if not options.shared_disk and remote is None:
            raise ExecutorConfigError(
                f"the Dask executor moves notebooks and files through a remote; {CONFIGURE}"
            )
        from nbops.store import store_address

        self.ctx, self.options, self.remote = ctx, options, remote
        self.store = store_address(ctx.store)  # where the workers record, whatever their env
        self.client: Any = dask_client(options.executor)
        from nbops.deps import require

        distributed = require("distributed", feature="running on a Dask cluster")
        self.stop_name = f"nbops-stop-{ctx.pipeline_id}"
        self.stop_event: Any = distributed.Event(self.stop_name, client=self.client)
        self._transfers = threading.Lock()  # a remote is used from one thread at a time
        self._slots = threading.BoundedSemaphore(1)
        self._lost: set[str] = set()  # attempts already reported lost
        self.jobs = 1
        ctx.on_stop.append(self.stop)

    def __enter__(self) -> DaskStages:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.client.close()

    def workers(self) -> dict[str, str]:
        """Address -> name of the workers the scheduler knows now."""
        info = self.client.scheduler_info(n_workers=-1)["workers"]
        return {address: str(w.get("name", address)) for address, w in info.items()}

    def limit(self, jobs: int) -> int:
        """Let ``jobs`` stages execute on the cluster at once; return how many threads the
        scheduler should use: twice as many, so a stage's inputs are sent and the previous
        one's outputs fetched while the workers are busy."""
        self.jobs, self._slots = jobs, threading.BoundedSemaphore(jobs)
        return 2 * jobs

    def stop(self) -> None:
        """Ctrl-C: tell every worker running a stage of this run to kill its kernel."""
        self.stop_event.set()

    def run(
        self, ctx: RunContext, stage: Stage, fp: Fingerprint, reasons: tuple[str, ...]
    ) -> StageResult:
        """Execute one stage on the cluster and conclude it here (in a thread of the pool)."""
        if stage.sweep:  # the sweep drives its own trials from here
            return execute_stage(ctx, stage, fp, reasons)
        started = time.perf_counter()
        clear_outs(ctx.spec.root, stage.outs)
        job = self._job(ctx, stage, fp)
        key = f"nbops-{ctx.pipeline_id}-{stage.name}"
        try:
            with self._slot(ctx):
                future = self.client.submit(
                    run_stage_job, job, key=key, pure=False, retries=self.options.retries
                )
                result: JobResult = self._wait(ctx, stage, future)
        except Exception as exc:  # noqa: BLE001 - the task failed on every attempt, or was lost
            self._mark_lost(ctx, stage, keep=None)
            outcome = "interrupted" if ctx.stopping.is_set() else "failed"
            message = f"{stage.name}: on {self.options.executor.url}: {type(exc).__name__}: {exc}"
            return StageResult(stage.name, outcome, time.perf_counter() - started, reasons,
                               message=message)  # fmt: skip
        self._mark_lost(ctx, stage, keep=result.run_id)
        failure = result.failure
        if not self.options.shared_disk:
            try:
                self._fetch(ctx, stage, result)
            except (NbopsError, OSError) as exc:
                failure = failure or f"cannot fetch its outs from the remote: {exc}"
        return conclude_stage(ctx, stage, fp, reasons, result.run_id, failure, started)

    def _job(self, ctx: RunContext, stage: Stage, fp: Fingerprint) -> StageJob:
        from nbops.pipeline._ignore import IGNORE_FILE

        inputs: dict[str, str] = {}
        if not self.options.shared_disk and self.remote is not None:
            inputs = {stage.notebook: ctx.cache.file_hash(ctx.spec.root / stage.notebook)}
            inputs.update({dep: digest for dep, digest in fp.deps.items() if digest})
            save_outs(ctx.spec.root, inputs, ctx.blobs, ctx.cache)
            with self._transfers:
                push_outs(self.remote, inputs, ctx.blobs, ctx.report)
        ignore = ctx.spec.root / IGNORE_FILE
        executed = ctx.store_dir / "executed" / ctx.pipeline_id / f"{stage.name}.ipynb"
        return StageJob(
            stage=stage,
            params=dict(fp.params),
            kernel=fp.kernel,
            pipeline_id=ctx.pipeline_id,
            project=ctx.project,
            store=self.store,
            store_dir=str(ctx.store_dir),
            root=str(ctx.spec.root),
            executed=str(executed),
            executor_url=self.options.executor.url,
            shared_disk=self.options.shared_disk,
            remote_url=_remote_url(self.remote) if self.remote is not None else None,
            inputs=inputs,
            ignore=tuple(ignore.read_text(encoding="utf-8").splitlines())
            if ignore.is_file()
            else (),
            stop_event=self.stop_name,
        )

    @contextlib.contextmanager
    def _slot(self, ctx: RunContext) -> Iterator[None]:
        """One of the ``jobs`` places on the cluster (none once Ctrl-C stopped the run)."""
        stopped = NbopsError("stopped by Ctrl-C before it was sent to the cluster")
        while not self._slots.acquire(timeout=0.5):
            if ctx.stopping.is_set():
                raise stopped
        try:
            if ctx.stopping.is_set():
                raise stopped
            yield
        finally:
            self._slots.release()

    def _wait(self, ctx: RunContext, stage: Stage, future: Any) -> JobResult:
        """The task's result; an attempt whose worker died is marked ``crashed`` while Dask
        runs the task again elsewhere. On Ctrl-C the worker kills the kernel and reports, else
        after :data:`STOP_GRACE` seconds the task is cancelled."""
        stopped_at: float | None = None
        checked = time.monotonic()
        while True:
            try:
                result: JobResult = future.result(timeout=0.5)
                return result
            except TimeoutError:
                pass
            if time.monotonic() - checked > LOST_EVERY:
                self._mark_lost(ctx, stage, keep=None)  # the running attempt's worker is alive
                checked = time.monotonic()
            if ctx.stopping.is_set():
                stopped_at = stopped_at or time.monotonic()
                if time.monotonic() - stopped_at > STOP_GRACE:
                    future.cancel()
                    raise NbopsError("the stage did not stop in time; its task was cancelled")

    def _fetch(self, ctx: RunContext, stage: Stage, result: JobResult) -> None:
        """Bring the outs and the executed notebook from the remote, as for a cached stage."""
        assert self.remote is not None
        with self._transfers:
            fetch_outs(self.remote, result.outs, ctx.blobs, ctx.report)
            if result.executed:
                fetch_objects(self.remote, [result.executed], ctx.blobs, ctx.report)
        restore_outs(ctx.spec.root, result.outs, ctx.blobs)
        if result.executed:
            executed = ctx.store_dir / "executed" / ctx.pipeline_id / f"{stage.name}.ipynb"
            restore_outs(executed.parent, {executed.name: result.executed}, ctx.blobs)

    def _mark_lost(self, ctx: RunContext, stage: Stage, keep: str | None) -> None:
        """Mark ``crashed`` the stage's earlier attempts still ``running`` whose worker is gone."""
        group = f"pipeline-{ctx.pipeline_id}"
        alive = self.workers()
        for record in ctx.store.list_runs(ctx.project):
            if record.group != group or record.name != stage.name or record.id == keep:
                continue
            where = ctx.store.get_metadata(record.id).get(EXECUTOR_KEY) or {}
            gone = where.get("address") not in alive
            if record.status == "running" and gone:
                ctx.store.set_status(record.id, "crashed", time.time())
            if record.status in ("running", "crashed") and gone and record.id not in self._lost:
                self._lost.add(record.id)
                ctx.report(
                    f"{stage.name:<14} lost      (worker {where.get('worker')} died during "
                    f"attempt {where.get('attempt')}; run {record.id} crashed)"
                )
