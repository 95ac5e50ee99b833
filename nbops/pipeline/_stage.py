"""One pipeline stage: a tracked run in a fresh kernel, its sweep, its gates, its lock entry."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbops.errors import NbopsError
from nbops.pipeline._execution import (
    check_gates,
    run_notebook,
    scrub_secrets,
    stage_env,
    stage_metrics,
)
from nbops.pipeline._graph import StageGraph
from nbops.pipeline._hashing import HashCache, path_hash
from nbops.pipeline._lock import LockEntry, plain_value, update_lock
from nbops.pipeline._outputs import clear_outs, save_outs
from nbops.pipeline._remote import Remote
from nbops.pipeline._secrets import Sealer
from nbops.pipeline._spec import PipelineSpec, Stage
from nbops.pipeline._status import Fingerprint
from nbops.store import BlobStore, RunCache, RunStore

if TYPE_CHECKING:
    from nbops.tracking import Run

Report = Callable[[str], None]
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StageResult:
    """What happened to one stage: ran, cached, failed, skipped, would-run or interrupted."""

    name: str
    outcome: str
    seconds: float = 0.0
    reasons: tuple[str, ...] = ()
    run_id: str | None = None
    executed: str | None = None
    message: str | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)


@dataclass
class RunContext:
    """What the stages of one ``nbops run`` share."""

    spec: PipelineSpec
    graph: StageGraph
    overrides: Mapping[str, Mapping[str, Any]]
    pipeline_id: str
    report: Report
    cache: HashCache
    lock: dict[str, LockEntry]
    store_dir: Path
    project: str
    store: RunStore
    blobs: BlobStore
    runcache: RunCache
    sealer: Sealer
    #: where outs missing locally may be fetched from (``run --pull``)
    remote: Remote | None = None
    lock_mutex: threading.Lock = field(default_factory=threading.Lock)
    kernels: dict[str, Any] = field(default_factory=dict)
    stopping: threading.Event = field(default_factory=threading.Event)
    #: best parameters found by each sweep stage, handed to the stages after it
    handoff: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: called on Ctrl-C, after ``stopping`` is set (an executor stopping its remote stages)
    on_stop: list[Callable[[], None]] = field(default_factory=list)


def _run_sweep(ctx: RunContext, stage: Stage, notebook: Path) -> tuple[dict[str, Any], Any]:
    """Sweep the stage's notebook; return the best parameters and the sweep."""
    from nbops.sweeps import sweep

    options = dict(stage.sweep or {})
    space = options["space"]
    if isinstance(space, str):
        space = str(ctx.spec.root / space)
    ctx.report(
        f"{stage.name:<14} sweeping  ({options['n_trials']} trials of "
        f"{options['metric']}, {options['direction']})"
    )
    found = sweep(
        str(notebook),
        space=space,
        n_trials=int(options["n_trials"]),
        metric=str(options["metric"]),
        direction=str(options["direction"]),
        jobs=int(options.get("jobs", 1)),
        trial_timeout=options.get("timeout"),
        study_name=f"{stage.name}-{ctx.pipeline_id}",
        panel=False,
        project=ctx.project,
    )
    return dict(found.best_params), found


def execute_stage(
    ctx: RunContext, stage: Stage, fp: Fingerprint, reasons: tuple[str, ...]
) -> StageResult:
    """Run one stage as a tracked run in a fresh kernel; update the lock when it succeeds.

    Every error after the run is opened (the notebook's, or nbops' own bookkeeping: scrubbing,
    hashing, storing, the lock) finishes the run as failed and names it in the message.
    """
    attempt = _Attempt(ctx, stage, fp, reasons, ctx.store)
    return _guarded(attempt, attempt.perform)


def conclude_stage(
    ctx: RunContext,
    stage: Stage,
    fp: Fingerprint,
    reasons: tuple[str, ...],
    run_id: str,
    failure: str | None,
    started: float,
) -> StageResult:
    """Check, record and publish a stage executed elsewhere (a cluster worker) into the run
    ``run_id``, exactly as :func:`execute_stage` does after its own execution. Its outs and
    executed notebook must already be in place."""
    from nbops.tracking import Run

    attempt = _Attempt(
        ctx, stage, fp, reasons, ctx.store, run=Run.attach(run_id, ctx.store), started=started
    )
    return _guarded(attempt, lambda: attempt.conclude(failure))


def _guarded(attempt: _Attempt, step: Callable[[], StageResult]) -> StageResult:
    """Run ``step``; a bookkeeping error fails the stage (never "finished"), an interrupt too."""
    try:
        return step()
    except Exception as exc:
        logger.warning("stage %s: bookkeeping failed", attempt.stage.name, exc_info=True)
        return attempt.fail(f"{type(exc).__name__}: {exc}")
    except BaseException:
        attempt.fail("interrupted")
        raise


class _Attempt:
    """One execution of one stage, from opening its run to publishing its results."""

    def __init__(
        self,
        ctx: RunContext,
        stage: Stage,
        fp: Fingerprint,
        reasons: tuple[str, ...],
        store: RunStore,
        run: Run | None = None,
        started: float | None = None,
    ) -> None:
        import nbops

        self.ctx, self.stage, self.fp, self.reasons, self.store = ctx, stage, fp, reasons, store
        self.started = time.perf_counter() if started is None else started
        self.notebook = (ctx.spec.root / stage.notebook).resolve()
        self.executed = ctx.store_dir / "executed" / ctx.pipeline_id / f"{stage.name}.ipynb"
        self.shown = os.path.relpath(self.executed, ctx.spec.root)
        self.params = dict(fp.params)
        self.sweep_record: dict[str, Any] | None = None
        self.metrics: dict[str, float] = {}
        self.run = run or nbops.init(
            project=ctx.project,
            name=stage.name,
            config=dict(fp.params),
            group=f"pipeline-{ctx.pipeline_id}",
            job_type="stage",
            notebook=self.notebook,
            store=store,
            activate=False,
        )

    def _result(self, outcome: str, message: str | None) -> StageResult:
        seconds = time.perf_counter() - self.started
        return StageResult(
            self.stage.name,
            outcome,
            seconds,
            self.reasons,
            self.run.id,
            self.shown,
            message,
            self.metrics,
        )

    def perform(self) -> StageResult:
        """Execute, check, record and publish; the stage's failures are results, not raises."""
        clear_outs(self.ctx.spec.root, self.stage.outs)
        failure = self._execute()
        scrub_secrets(self.executed, self.params)
        return self.conclude(failure)

    def conclude(self, failure: str | None) -> StageResult:
        """Check the executed stage (gates, outs), record it and publish it, or fail it."""
        if self.ctx.stopping.is_set():
            failure = "interrupted by Ctrl-C"
        self.run.sync_from_store()
        self.metrics = stage_metrics(self.store, self.run)
        outs: dict[str, str] = {}
        if failure is None:
            failure = "; ".join(check_gates(self.stage, self.metrics) + self._hash_outs(outs))
            failure = failure or None
        entry = self._entry(outs)
        self._record(entry, failure)
        _publish_models(self.ctx, self.stage, self.run.id, failure, self.store)
        if failure is not None:
            interrupted = self.ctx.stopping.is_set()
            self._finish("killed" if interrupted else "failed")
            return self._result("interrupted" if interrupted else "failed", failure)
        self._publish(entry)
        self._finish("finished")
        return self._result("ran", None)

    def _finish(self, status: str) -> None:
        """Finish the run; one executed elsewhere (attached) gets the status decided here."""
        self.run.finish(status)
        if not self.run.owner and self.store.get_run(self.run.id).status != status:
            self.store.set_status(self.run.id, status, time.time())

    def fail(self, error: str) -> StageResult:
        """Finish the run as failed (killed when stopping) after an error of nbops itself."""
        message = f"{self.stage.name}: run {self.run.id} failed: {error}"
        try:
            self.run.set_metadata("pipeline", self._metadata(None, message))
        except Exception:  # the store itself may be what failed; the status still matters
            logger.warning("cannot record the failure of run %s", self.run.id, exc_info=True)
        interrupted = self.ctx.stopping.is_set() or error == "interrupted"
        if not interrupted:
            try:
                _publish_models(self.ctx, self.stage, self.run.id, message, self.store)
            except Exception:  # the registry may be what failed; the run's status still matters
                logger.warning("cannot reject the models of run %s", self.run.id, exc_info=True)
        self._finish("killed" if interrupted else "failed")
        return self._result("interrupted" if interrupted else "failed", message)

    def _execute(self) -> str | None:
        """Sweep (if the stage has one), then run the notebook; return why it failed, if so."""
        ctx, stage = self.ctx, self.stage
        try:
            if stage.sweep:
                best, found = _run_sweep(ctx, stage, self.notebook)
                self.params.update(best)
                ctx.handoff[stage.name] = best
                self.run.log_params(best)
                self.sweep_record = {
                    "config": dict(stage.sweep),
                    "best_params": best,
                    "best_value": found.best_value,
                }
        except NbopsError as exc:
            return str(exc)
        except Exception as exc:  # anything else still fails the stage, never "finished"
            logger.warning("stage %s failed unexpectedly", stage.name, exc_info=True)
            return f"{type(exc).__name__}: {exc}"
        return run_notebook(
            self.notebook,
            self.executed,
            self.params,
            kernel_name=self.fp.kernel,
            timeout=stage.timeout,
            env=stage_env(self.run.id, ctx.store, ctx.store_dir, self.notebook),
            cwd=ctx.spec.root,
            kernels=ctx.kernels,
            name=stage.name,
            stopping=ctx.stopping,
        )

    def _hash_outs(self, outs: dict[str, str]) -> list[str]:
        problems = []
        for out in self.stage.outs:
            digest = path_hash(self.ctx.spec.root / out, self.ctx.cache)
            if digest is None:
                problems.append(f"stage {self.stage.name} did not write out {out}")
            else:
                outs[out] = digest
        return problems

    def _entry(self, outs: dict[str, str]) -> LockEntry:
        previous = self.ctx.lock.get(self.stage.name)
        return LockEntry(
            notebook=self.stage.notebook,
            code=self.fp.code,
            params=self.ctx.sealer.lockable(self.fp.params, previous.params if previous else None),
            deps={k: v for k, v in self.fp.deps.items() if v is not None},
            outs=outs,
            metrics=self.metrics,
            kernel=self.fp.kernel,
            sweep=self.sweep_record,
        )

    def _metadata(self, entry: LockEntry | None, failure: str | None) -> dict[str, Any]:
        return {
            "pipeline": self.ctx.pipeline_id,
            "stage": self.stage.name,
            "reasons": list(self.reasons),
            "executed": self.shown,
            "lock": asdict(entry) if entry is not None else None,
            "failure": failure,
        }

    def _record(self, entry: LockEntry, failure: str | None) -> None:
        self.run.set_metadata("pipeline", self._metadata(entry, failure))

    def _publish(self, entry: LockEntry) -> None:
        """Keep the outs and the executed notebook in the object store, remember them in the run
        cache, and merge the stage's entry into ``nbops.lock``."""
        ctx = self.ctx
        save_outs(ctx.spec.root, entry.outs, ctx.blobs, ctx.cache)
        notebook_blob = ctx.blobs.put_file(self.executed)[0] if self.executed.is_file() else None
        ctx.runcache.put(
            self.fp.key(ctx.sealer),
            {
                "stage": self.stage.name,
                "run": self.run.id,
                "created": time.time(),
                "executed": notebook_blob,
                "entry": plain_value(asdict(entry)),
            },
        )
        with ctx.lock_mutex:
            update_lock(ctx.spec.root, {self.stage.name: entry}, ctx.spec.stages)
            ctx.lock[self.stage.name] = entry


def _publish_models(
    ctx: RunContext, stage: Stage, run_id: str, failure: str | None, store: Any
) -> None:
    """Gates decide the status of the models the stage registered: validated or rejected."""
    if ctx.stopping.is_set():
        return  # interrupted: its models stay candidates
    from nbops.registry import set_run_models_status

    where = f"pipeline {ctx.pipeline_id} stage {stage.name}"
    if failure is None:
        gates = ", ".join(f"{g.metric} {g.op} {g.threshold:g}" for g in stage.gates)
        reason = f"{where}: gates passed ({gates})" if gates else f"{where}: ran, no gates"
        set_run_models_status(run_id, "validated", reason, store=store)
    else:
        set_run_models_status(run_id, "rejected", f"{where}: {failure}", store=store)
