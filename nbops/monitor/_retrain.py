"""The retraining half of the loop: retrain in isolation, compare on the holdout, decide."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from nbops.errors import NbopsError
from nbops.monitor._compare import Comparison, compare, overlap
from nbops.monitor._result import MonitorPass, MonitorResult


def retrain_and_decide(ctx: MonitorPass, outcome: MonitorResult) -> MonitorResult:
    """Retrain in an isolated workspace, then compare and decide."""
    from nbops.monitor._workspace import isolated_workspace, using_store
    from nbops.pipeline import PipelineFailed, run_pipeline
    from nbops.registry import model_versions

    cfg = ctx.cfg
    before = {v.version for v in model_versions(cfg.model, store=ctx.store)}
    commit = (ctx.production.lineage.get("git") or {}).get("commit")
    if (ctx.production.lineage.get("git") or {}).get("dirty"):
        commit = None  # the commit does not hold what trained production: use the working tree
    project = ctx.production.lineage.get("run", {}).get("project") or ctx.root.name
    inputs = [cfg.current, *_pipeline_inputs(ctx.root)]
    with isolated_workspace(ctx.root, commit, inputs) as space:
        where = f"commit {space.commit[:12]}" if space.commit else "a copy of the working tree"
        ctx.report(f"retraining in an isolated workspace at {where}")
        outcome = replace(outcome, workspace_commit=space.commit)
        with using_store(ctx.store, str(project)):
            try:
                run_pipeline(
                    space.path,
                    cfg.retrain_stages,
                    force=True,
                    overrides=cfg.retrain_params,
                    report=lambda line: ctx.report(f"  retrain: {line}"),
                )
            except PipelineFailed as exc:
                new = _new_versions(ctx, before)
                _mark(ctx, new, "rejected", f"retraining failed in monitor run {ctx.run.id}")
                return replace(
                    outcome,
                    action="retrain-failed",
                    challenger=new[-1].ref if new else None,
                    message=f"retraining failed, nothing promoted: {exc}",
                )
    new = _new_versions(ctx, before)
    if not new:
        raise NbopsError(f"the retraining pipeline registered no new version of {cfg.model}")
    return _decide(ctx, outcome, new[-1])


def _pipeline_inputs(root: Path) -> list[str]:
    """The pipeline's deps that no stage writes: the data it starts from."""
    from nbops.pipeline import load_spec

    try:
        spec = load_spec(root)
    except NbopsError:
        return []
    outs = {o for s in spec.stages.values() for o in s.outs}
    return sorted({d for s in spec.stages.values() for d in s.deps if d not in outs})


def _new_versions(ctx: MonitorPass, before: set[int]) -> list[Any]:
    from nbops.registry import model_versions

    return [v for v in model_versions(ctx.cfg.model, store=ctx.store) if v.version not in before]


def _mark(ctx: MonitorPass, versions: list[Any], status: str, reason: str) -> None:
    """Record the monitor's verdict on challengers (a lost challenger is rejected)."""
    from nbops.registry import set_status

    for version in versions:
        current = _current(ctx, version)
        if current.status != status and not current.aliases:
            set_status(version.name, version.version, status, reason=reason, store=ctx.store)


def _current(ctx: MonitorPass, version: Any) -> Any:
    from nbops.registry import get_model

    return get_model(version.ref, store=ctx.store)


def _decide(ctx: MonitorPass, outcome: MonitorResult, challenger: Any) -> MonitorResult:
    """Score both models on the holdout; promote only on significant, clean evidence."""
    from nbops.data import read_table
    from nbops.registry import load_model, set_alias

    cfg, production = ctx.cfg, ctx.production
    holdout = read_table(ctx.root / cfg.holdout)
    features, labels = holdout.drop(columns=[cfg.target]), holdout[cfg.target]
    overlaps = _overlaps(ctx, holdout, challenger)
    name, metric_fn, higher = ctx.metric
    result = compare(
        labels.to_numpy(),
        load_model(production.ref, store=ctx.store).predict(features),
        load_model(challenger.ref, store=ctx.store).predict(features),
        metric_name=name,
        metric=metric_fn,
        higher=higher,
        min_improvement=cfg.min_improvement,
        level=cfg.significance,
        test=cfg.test,
    )
    ctx.run.log(
        {
            f"production_{name}": result.production,
            f"challenger_{name}": result.challenger,
            "p_value": result.p_value,
        }
    )
    outcome = replace(
        outcome,
        challenger=challenger.ref,
        production_score=result.production,
        challenger_score=result.challenger,
        comparison={**asdict(result), "wins": result.wins, "overlap": overlaps},
    )
    ctx.report(f"holdout: {challenger.ref} vs {production.ref}: {result.explain()}")
    problem = _why_not(ctx, result, overlaps)
    if problem:
        _mark(ctx, [challenger], "rejected", f"monitor run {ctx.run.id}: {problem}")
        return replace(
            outcome,
            action="kept",
            message=f"{challenger.ref} not promoted: {problem}; {cfg.model}@{cfg.alias} stays "
            f"{production.ref}",
        )
    reason = f"nbops monitor run {ctx.run.id}: drift share {outcome.share:.2f}; {result.explain()}"
    set_alias(
        store=ctx.store,
        name=cfg.model,
        version=challenger.version,
        alias=cfg.alias,
        reason=reason,
    )
    return replace(
        outcome,
        action="promoted",
        message=f"promoted {challenger.ref} to {cfg.model}@{cfg.alias}: {result.explain()}",
    )


def _why_not(ctx: MonitorPass, result: Comparison, overlaps: Mapping[str, int]) -> str | None:
    dirty = {k: n for k, n in overlaps.items() if n > ctx.cfg.max_overlap}
    if dirty:
        where = ", ".join(f"{n} with {k}" for k, n in dirty.items())
        return (
            f"the holdout overlaps training data ({where} rows; max_overlap "
            f"{ctx.cfg.max_overlap}), so its scores are not evidence"
        )
    if result.gain <= result.min_improvement:
        return f"it does not beat production by more than {result.min_improvement:g}"
    if result.p_value >= result.level:
        return "the difference is not significant"
    return None


def _overlaps(ctx: MonitorPass, holdout: Any, challenger: Any) -> dict[str, int]:
    """Holdout rows found in each model's training data (their lineage's reference dataset)."""
    from nbops.data import get_dataset, load_dataset

    found = {ctx.production.ref: overlap(holdout, ctx.reference)}
    entries = [
        d
        for d in challenger.lineage.get("datasets") or []
        if ctx.cfg.reference in (None, d.get("name"))
    ]
    if entries:
        ref = f"{entries[0]['name']}@{entries[0]['hash']}"
        training = load_dataset(get_dataset(ref, store=ctx.store).ref, store=ctx.store)
        found[challenger.ref] = overlap(holdout, training)
    return found
