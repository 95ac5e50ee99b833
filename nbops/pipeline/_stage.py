"""One pipeline stage: a tracked run in a fresh kernel, its sweep, its gates, its lock entry."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nbops.errors import NbopsError
from nbops.pipeline._graph import StageGraph
from nbops.pipeline._hashing import HashCache, path_hash
from nbops.pipeline._lock import LockEntry, write_lock
from nbops.pipeline._spec import PipelineSpec, Stage
from nbops.pipeline._status import Fingerprint, lockable_params

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
    lock_mutex: threading.Lock = field(default_factory=threading.Lock)
    kernels: dict[str, Any] = field(default_factory=dict)
    stopping: threading.Event = field(default_factory=threading.Event)
    #: best parameters found by each sweep stage, handed to the stages after it
    handoff: dict[str, dict[str, Any]] = field(default_factory=dict)


def _run_sweep(ctx: RunContext, stage: Stage, notebook: Path) -> tuple[dict[str, Any], Any]:
    """Sweep the stage's notebook; return the best parameters and the sweep."""
    from nbops.sweeps import sweep

    options = dict(stage.sweep or {})
    space = options["space"]
    if isinstance(space, str):
        space = str(ctx.spec.root / space)
    ctx.report(
        f"{stage.name:<14} sweeping  ({options['n_trials']} trials of "
        f"{options['metric']}, {options.get('direction', 'maximize')})"
    )
    found = sweep(
        str(notebook),
        space=space,
        n_trials=int(options["n_trials"]),
        metric=str(options["metric"]),
        direction=str(options.get("direction", "maximize")),
        jobs=int(options.get("jobs", 1)),
        trial_timeout=options.get("timeout"),
        study_name=f"{stage.name}-{ctx.pipeline_id}",
        panel=False,
        project=ctx.project,
    )
    return dict(found.best_params), found


def _scrub_secrets(executed: Path, params: Mapping[str, Any]) -> None:
    """Remove secret values (secret-named parameters, secret environment variables) from the
    executed notebook papermill wrote, rewriting it atomically."""
    from nbops.fileio import write_atomic
    from nbops.redact import is_secret_name, scrub_text, secret_values

    secrets = secret_values() + [
        str(v) for k, v in params.items() if is_secret_name(k) and len(str(v)) >= 4
    ]
    if not secrets or not executed.is_file():
        return
    text = executed.read_text(encoding="utf-8")
    variants = sorted(
        {form for s in secrets for form in (s, json.dumps(s)[1:-1])}, key=len, reverse=True
    )
    clean = scrub_text(text, variants)
    if clean != text:
        write_atomic(executed, clean)


def _numeric(values: Mapping[str, Any]) -> dict[str, float]:
    return {
        k: float(v)
        for k, v in values.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and not k.startswith("_")
    }


def execute_stage(
    ctx: RunContext, stage: Stage, fp: Fingerprint, reasons: tuple[str, ...]
) -> StageResult:
    """Run one stage as a tracked run in a fresh kernel; update the lock when it succeeds."""
    import nbops
    from nbops.capture import NOTEBOOK_PATH_ENV
    from nbops.execute import execute_notebook, kill_kernel, start_kernel
    from nbops.store import open_store
    from nbops.tracking import RUN_ID_ENV

    started = time.perf_counter()
    root = ctx.spec.root
    notebook = (root / stage.notebook).resolve()
    store = open_store(ctx.store_dir)
    run = nbops.init(
        project=ctx.project,
        name=stage.name,
        config=dict(fp.params),
        group=f"pipeline-{ctx.pipeline_id}",
        job_type="stage",
        notebook=notebook,
        store=store,
        activate=False,
    )
    executed = ctx.store_dir / "executed" / ctx.pipeline_id / f"{stage.name}.ipynb"
    shown = os.path.relpath(executed, root)
    env = {
        RUN_ID_ENV: run.id,
        "NBOPS_HOME": str(ctx.store_dir),
        "NBOPS_WANDB": "disabled",
        NOTEBOOK_PATH_ENV: str(notebook),
    }
    failure: str | None = None
    params = dict(fp.params)
    sweep_record: dict[str, Any] | None = None
    try:
        if stage.sweep:
            best, found = _run_sweep(ctx, stage, notebook)
            params.update(best)
            ctx.handoff[stage.name] = best
            run.log_params(best)
            sweep_record = {
                "config": dict(stage.sweep),
                "best_params": best,
                "best_value": found.best_value,
                "study": found.name,
            }
        kernel = start_kernel(fp.kernel, env=env, cwd=root)
        ctx.kernels[stage.name] = kernel
        if ctx.stopping.is_set():  # Ctrl-C arrived while this kernel was starting
            kill_kernel(kernel)
        execute_notebook(
            notebook,
            executed,
            params,
            kernel_name=fp.kernel,
            timeout=stage.timeout,
            kernel=kernel,
            wait_for_shutdown=False,
        )
    except NbopsError as exc:  # ExecutionError included: cell, kernel, timeout
        failure = str(exc)
    except Exception as exc:  # anything else still fails the stage, never "finished"
        logger.warning("stage %s failed unexpectedly", stage.name, exc_info=True)
        failure = f"{type(exc).__name__}: {exc}"
    finally:
        ctx.kernels.pop(stage.name, None)
        _scrub_secrets(executed, params)
    if ctx.stopping.is_set():
        failure = "interrupted by Ctrl-C"
    run.sync_from_store()
    metrics = {**_numeric(dict(run.summary)), **_numeric(store.last_metrics([run.id])[run.id])}
    outs: dict[str, str] = {}
    if failure is None:
        problems = []
        for gate in stage.gates:
            if gate.metric not in metrics:
                problems.append(
                    f"{stage.name}: gate on {gate.metric!r}, but the notebook never "
                    f"logged it (logged: {', '.join(sorted(metrics)) or 'nothing'})"
                )
            elif not gate.passes(metrics[gate.metric]):
                problems.append(gate.describe_failure(stage.name, metrics[gate.metric]))
        for out in stage.outs:
            digest = path_hash(root / out, ctx.cache)
            if digest is None:
                problems.append(f"{stage.name}: the notebook did not write its out {out!r}")
            else:
                outs[out] = digest
        failure = "; ".join(problems) or None
    seconds = time.perf_counter() - started
    entry = LockEntry(
        notebook=stage.notebook,
        code=fp.code,
        params=lockable_params(fp.params),
        deps={k: v for k, v in fp.deps.items() if v is not None},
        outs=outs,
        metrics=metrics,
        run=run.id,
        executed=shown,
        kernel=fp.kernel,
        sweep=sweep_record,
    )
    run.set_metadata(
        "pipeline",
        {
            "pipeline": ctx.pipeline_id,
            "stage": stage.name,
            "reasons": list(reasons),
            "lock": asdict(entry),
            "failure": failure,
        },
    )
    _publish_models(ctx, stage, run.id, failure, store)
    if failure is not None:
        run.finish("killed" if ctx.stopping.is_set() else "failed")
        outcome = "interrupted" if ctx.stopping.is_set() else "failed"
        return StageResult(stage.name, outcome, seconds, reasons, run.id, shown, failure, metrics)
    run.finish("finished")
    with ctx.lock_mutex:
        ctx.lock[stage.name] = entry
        write_lock(root, {k: v for k, v in ctx.lock.items() if k in ctx.spec.stages})
    return StageResult(stage.name, "ran", seconds, reasons, run.id, shown, None, metrics)


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
