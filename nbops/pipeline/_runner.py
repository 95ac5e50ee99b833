"""``nbops run``: execute stale stages in dependency order, in parallel where possible."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nbops.config import default_project, store_path
from nbops.errors import NbopsError
from nbops.pipeline._graph import StageGraph
from nbops.pipeline._hashing import HashCache, path_hash
from nbops.pipeline._lock import LockEntry, read_lock, write_lock
from nbops.pipeline._spec import PipelineSpec, Stage, load_spec
from nbops.pipeline._status import Fingerprint, fingerprint, lockable_params, stale_reasons
from nbops.pipeline._validate import validate

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


@dataclass(frozen=True)
class PipelineResult:
    """Every selected stage's result, in the order they were decided."""

    id: str
    stages: tuple[StageResult, ...]

    @property
    def ok(self) -> bool:
        return all(s.outcome in ("ran", "cached", "would-run") for s in self.stages)

    def __getitem__(self, name: str) -> StageResult:
        return next(s for s in self.stages if s.name == name)


class PipelineFailed(NbopsError):
    """One or more stages failed (the result is attached)."""

    def __init__(self, result: PipelineResult) -> None:
        self.result = result
        failed = [s for s in result.stages if s.outcome in ("failed", "interrupted")]
        lines = "\n".join(
            f"  {s.message}"
            if (s.message or "").startswith(f"{s.name}: ")
            else f"  {s.name}: {s.message}"
            for s in failed
        )
        super().__init__(f"{len(failed)} stage(s) failed:\n{lines}")


@dataclass
class _Context:
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


def parse_overrides(pairs: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``["train.n_estimators=200"]`` -> ``{"train": {"n_estimators": 200}}`` (YAML values)."""
    import yaml

    out: dict[str, dict[str, Any]] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        stage, dot, name = key.partition(".")
        if not sep or not dot or not stage or not name:
            raise NbopsError(f"-p {pair!r}: write STAGE.KEY=VALUE, e.g. -p train.max_depth=6")
        out.setdefault(stage, {})[name] = yaml.safe_load(value) if value else ""
    return out


def run_pipeline(
    root: str | os.PathLike[str] | None = None,
    targets: Sequence[str] = (),
    *,
    force: bool = False,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    jobs: int = 1,
    dry_run: bool = False,
    report: Report = print,
) -> PipelineResult:
    """Run what is stale among ``targets`` (default: all) and what they need.

    Raises:
        SpecError: ``nbops.yaml`` is invalid (nothing ran).
        PipelineFailed: a stage failed; independent stages still finished, and the lock kept
            the last good entry of each failed stage.
        KeyboardInterrupt: stopped by Ctrl-C after killing running kernels; completed stages
            are in the lock.
    """
    from nbops.config import find_project_root
    from nbops.tracking import new_run_id

    base = Path(root) if root is not None else find_project_root()
    spec = load_spec(base)
    overrides = dict(overrides or {})
    graph = validate(spec, overrides)
    unknown = [t for t in targets if t not in spec.stages]
    if unknown:
        raise NbopsError(f"no stage named {', '.join(unknown)}; stages: {', '.join(spec.stages)}")
    if jobs < 1:
        raise NbopsError("--jobs must be at least 1")
    store_dir = store_path(base)
    ctx = _Context(
        spec=spec,
        graph=graph,
        overrides=overrides,
        pipeline_id=new_run_id(),
        report=report,
        cache=HashCache(store_dir / "hashcache.json"),
        lock=dict(read_lock(base)),
        store_dir=store_dir,
        project=str(spec.raw.get("project") or default_project(base)),
    )
    selected = graph.closure(targets) if targets else set(spec.stages)
    order = graph.topological(selected)
    try:
        results = _schedule(ctx, order, selected, force=force, jobs=jobs, dry_run=dry_run)
    finally:
        ctx.cache.save()
    result = PipelineResult(ctx.pipeline_id, tuple(results[name] for name in order))
    if not result.ok:
        raise PipelineFailed(result)
    if not dry_run and not targets and any(s.outcome == "ran" for s in result.stages):
        _write_card(ctx)
    return result


def _write_card(ctx: _Context) -> None:
    """Write the model card named in ``pipeline.card``, from the tracked evidence."""
    if not (ctx.spec.raw.get("pipeline") or {}).get("card"):
        return
    from nbops.cards import write_pipeline_card

    written = write_pipeline_card(ctx.spec.root, store=ctx.store_dir)
    if written is not None:
        shown = " and ".join(os.path.relpath(p, ctx.spec.root) for p in written if p is not None)
        ctx.report(f"model card written to {shown}")


def _schedule(
    ctx: _Context, order: list[str], selected: set[str], *, force: bool, jobs: int, dry_run: bool
) -> dict[str, StageResult]:
    results: dict[str, StageResult] = {}
    pending = list(order)
    running: dict[Future[StageResult], str] = {}
    pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="nbops-stage")
    try:
        while pending or running:
            for name in list(pending):
                needs = [u for u in ctx.graph.upstream[name] if u in selected]
                if not all(u in results for u in needs) or len(running) >= jobs:
                    continue
                pending.remove(name)
                decided = _decide(ctx, name, needs, results, force=force, dry_run=dry_run)
                if isinstance(decided, StageResult):
                    results[name] = decided
                    continue
                ctx.report(f"{name:<14} running   ({'; '.join(decided[1])})")
                running[pool.submit(_execute, ctx, ctx.spec.stages[name], *decided)] = name
            if running:
                done, _ = wait(list(running), timeout=0.5, return_when=FIRST_COMPLETED)
                for future in done:
                    name = running.pop(future)
                    results[name] = _finished(ctx, name, future)
    except KeyboardInterrupt:
        ctx.stopping.set()
        ctx.report("Interrupted: stopping running stages (completed stages are kept)")
        _kill_kernels(ctx)
        for future, name in running.items():
            try:
                results[name] = future.result(timeout=30)
            except Exception:
                logger.warning("stage %s did not stop cleanly", name, exc_info=True)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return results


def _decide(
    ctx: _Context,
    name: str,
    needs: list[str],
    results: Mapping[str, StageResult],
    *,
    force: bool,
    dry_run: bool,
) -> StageResult | tuple[Fingerprint, tuple[str, ...]]:
    broken = [u for u in needs if results[u].outcome in ("failed", "skipped", "interrupted")]
    if broken:
        ctx.report(f"{name:<14} skipped   (upstream {', '.join(broken)} failed)")
        return StageResult(name, "skipped", message=f"upstream {', '.join(broken)} failed")
    stage = ctx.spec.stages[name]
    fp = fingerprint(ctx.spec, stage, {name: _stage_overrides(ctx, stage)}, ctx.cache)
    reasons = stale_reasons(ctx.spec, stage, fp, ctx.lock.get(name), ctx.cache)
    upstream_runs = [u for u in needs if results[u].outcome == "would-run"]
    reasons += [f"upstream stage {u!r} will re-run" for u in upstream_runs]
    if force:
        reasons.insert(0, "forced")
    if not reasons:
        swept = ctx.lock[name].sweep
        if stage.sweep and swept:
            ctx.handoff[name] = dict(swept["best_params"])
        ctx.report(f"{name:<14} cached    (unchanged since run {ctx.lock[name].run})")
        return StageResult(
            name,
            "cached",
            run_id=ctx.lock[name].run,
            executed=ctx.lock[name].executed,
            metrics=ctx.lock[name].metrics,
        )
    if dry_run:
        ctx.report(f"{name:<14} would run ({'; '.join(reasons)})")
        return StageResult(name, "would-run", reasons=tuple(reasons))
    return fp, tuple(reasons)


def _stage_overrides(ctx: _Context, stage: Stage) -> dict[str, Any]:
    """``-p`` overrides of the stage, plus the best parameters of the sweep stages before it
    for the names its parameters cell declares."""
    overrides = dict(ctx.overrides.get(stage.name, {}))
    handed = {
        key: value
        for upstream in ctx.graph.closure([stage.name]) - {stage.name}
        for key, value in ctx.handoff.get(upstream, {}).items()
    }
    if handed:
        from nbops.execute import NotebookError, declared_parameters

        try:
            declared = declared_parameters(ctx.spec.root / stage.notebook)
        except NotebookError:
            declared = {}
        overrides = {**{k: v for k, v in handed.items() if k in declared}, **overrides}
    return overrides


def _run_sweep(ctx: _Context, stage: Stage, notebook: Path) -> tuple[dict[str, Any], Any]:
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


def _finished(ctx: _Context, name: str, future: Future[StageResult]) -> StageResult:
    try:
        result = future.result()
    except Exception as exc:  # a bug or an infrastructure failure: report it as the stage's
        result = StageResult(name, "failed", message=f"{type(exc).__name__}: {exc}")
    if result.outcome == "ran":
        ctx.report(
            f"{name:<14} ran       in {result.seconds:.1f} s (run {result.run_id}; "
            f"notebook {result.executed})"
        )
    else:
        ctx.report(
            f"{name:<14} {result.outcome.upper():<9} after {result.seconds:.1f} s: {result.message}"
        )
    return result


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


def _kill_kernels(ctx: _Context) -> None:
    from nbops.execute import kill_kernel

    for manager in list(ctx.kernels.values()):
        kill_kernel(manager)


def _numeric(values: Mapping[str, Any]) -> dict[str, float]:
    return {
        k: float(v)
        for k, v in values.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and not k.startswith("_")
    }


def _execute(ctx: _Context, stage: Stage, fp: Fingerprint, reasons: tuple[str, ...]) -> StageResult:
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
    if failure is not None:
        run.finish("killed" if ctx.stopping.is_set() else "failed")
        outcome = "interrupted" if ctx.stopping.is_set() else "failed"
        return StageResult(stage.name, outcome, seconds, reasons, run.id, shown, failure, metrics)
    run.finish("finished")
    with ctx.lock_mutex:
        ctx.lock[stage.name] = entry
        write_lock(root, {k: v for k, v in ctx.lock.items() if k in ctx.spec.stages})
    return StageResult(stage.name, "ran", seconds, reasons, run.id, shown, None, metrics)
