"""``nbops run``: execute stale stages in dependency order, in parallel where possible."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nbops.config import default_project, store_path
from nbops.errors import NbopsError
from nbops.pipeline._hashing import HashCache
from nbops.pipeline._lock import read_lock
from nbops.pipeline._spec import Stage, load_spec
from nbops.pipeline._stage import Report, RunContext, StageResult, execute_stage
from nbops.pipeline._status import Fingerprint, fingerprint, stale_reasons
from nbops.pipeline._validate import validate

logger = logging.getLogger(__name__)


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
    ctx = RunContext(
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


def _write_card(ctx: RunContext) -> None:
    """Write the model card named in ``pipeline.card``, from the tracked evidence."""
    if not (ctx.spec.raw.get("pipeline") or {}).get("card"):
        return
    from nbops.cards import write_pipeline_card

    written = write_pipeline_card(ctx.spec.root, store=ctx.store_dir)
    if written is not None:
        shown = " and ".join(os.path.relpath(p, ctx.spec.root) for p in written if p is not None)
        ctx.report(f"model card written to {shown}")


def _schedule(
    ctx: RunContext, order: list[str], selected: set[str], *, force: bool, jobs: int, dry_run: bool
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
                running[pool.submit(execute_stage, ctx, ctx.spec.stages[name], *decided)] = name
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
    ctx: RunContext,
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


def _stage_overrides(ctx: RunContext, stage: Stage) -> dict[str, Any]:
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


def _finished(ctx: RunContext, name: str, future: Future[StageResult]) -> StageResult:
    try:
        result = future.result()
    except Exception as exc:  # noqa: BLE001 - a bug or an infrastructure failure: the stage's
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


def _kill_kernels(ctx: RunContext) -> None:
    from nbops.execute import kill_kernel

    for manager in list(ctx.kernels.values()):
        kill_kernel(manager)
