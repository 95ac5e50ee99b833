"""``nbops monitor``: drift check, retraining, challenger vs production, promotion, card.

One pass: compare the current data with the production model's training data (and, when
configured, its metric on labelled feedback); on drift retrain in an isolated workspace, score
challenger and production on the holdout, move the alias only on significant evidence, write the
card of what the alias points at, and send one alert for the decision. ``--dry-run`` stops after
the checks, sends nothing and writes nothing but its own run record.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

from nbops.monitor._alerts import Delivery, send_alert
from nbops.monitor._config import MonitorConfig, MonitorConfigError, load_monitor_config
from nbops.monitor._result import MonitorPass, MonitorResult, Report
from nbops.monitor._retrain import retrain_and_decide

logger = logging.getLogger(__name__)

__all__ = ["MonitorConfigError", "MonitorResult", "load_monitor_config", "monitor"]


def monitor(
    root: str | os.PathLike[str] | None = None, *, dry_run: bool = False, report: Report = print
) -> MonitorResult:
    """Check drift of the current data against the production model's training data, and when
    it drifted (or the model's metric on labelled feedback dropped), retrain in an isolated
    workspace, score challenger and production on the holdout, and move the alias only if the
    challenger wins significantly and passed the pipeline's gates."""
    from nbops.config import find_project_root

    base = Path(root) if root is not None else find_project_root()
    ctx = _open(base, load_monitor_config(base), dry_run, report)
    try:
        outcome = _check(ctx, dry_run)
        if outcome.action == "retrain":
            outcome = retrain_and_decide(ctx, outcome)
            _refresh_card(ctx)
            outcome = _alert(ctx, outcome)
        return _done(ctx, outcome)
    except BaseException:
        ctx.run.finish("failed")
        raise


def _open(root: Path, cfg: MonitorConfig, dry_run: bool, report: Report) -> MonitorPass:
    import nbops
    from nbops.config import store_path
    from nbops.data import get_dataset, load_dataset
    from nbops.monitor._model_drift import resolve_metric
    from nbops.registry import get_model
    from nbops.store import open_store

    store = open_store(store_path(root))
    metric = resolve_metric(cfg.metric, None)
    production = get_model(f"{cfg.model}@{cfg.alias}", store=store)
    datasets = list(production.lineage.get("datasets") or [])
    chosen = [d for d in datasets if cfg.reference in (None, d.get("name"))]
    if not chosen:
        raise MonitorConfigError(
            f"{production.ref} has no dataset {cfg.reference or ''} in its lineage to compare "
            "with; log the training data with nbops.log_dataset in the run that registers it"
        )
    name = f"{chosen[0]['name']}@{chosen[0]['hash']}"
    reference = load_dataset(get_dataset(name, store=store).ref, store=store)
    run = nbops.init(
        store=store,
        name="monitor",
        job_type="monitor",
        activate=False,
        config={
            "model": production.ref,
            "reference": name,
            "current": cfg.current,
            "dry_run": dry_run,
        },
    )
    return MonitorPass(root, cfg, store, production, name, reference, run, report, metric)


def _check(ctx: MonitorPass, dry_run: bool) -> MonitorResult:
    """The drift (and performance) checks; ``action`` ``retrain`` when the loop goes on."""
    from nbops.data import read_source
    from nbops.monitor._drift import drift

    cfg, run = ctx.cfg, ctx.run
    current = read_source(cfg.current, root=ctx.root, store=ctx.store)
    if current.empty:
        raise MonitorConfigError(f"current: {cfg.current} has no rows to compare")
    columns = list(cfg.columns) or [c for c in ctx.reference.columns if c != cfg.target]
    missing = [str(c) for c in columns if c not in current.columns]
    if missing:
        raise MonitorConfigError(
            f"current: {cfg.current} has no column {', '.join(missing[:5])} of the reference "
            f"{ctx.reference_name}; give it the training data's columns (or set monitor.columns)"
        )
    if cfg.target in ctx.reference.columns and cfg.target in current.columns:
        columns.append(cfg.target)  # target drift, reported apart from the features' share
    found = drift(
        ctx.reference[columns],
        current[columns],
        thresholds=dict(cfg.thresholds),
        roles={"target": cfg.target} if cfg.target in columns else None,
        domain=cfg.domain or False,
    )
    run.log({"drift_share": found.share, "drifted_columns": len(found.drifted_columns)})
    run.set_metadata("drift", found.to_dict())
    with tempfile.TemporaryDirectory(prefix="nbops-drift-") as tmp:
        page = found.save_html(Path(tmp) / "drift_report.html", title=f"Drift: {cfg.current}")
        run.log_artifact(page, name="drift_report.html", type="drift-report")
    ctx.facts["drift"] = {
        "domain_auc": (found.domain or {}).get("auc"),
        "target_drifted": bool(found.target_drift and found.target_drift.drifted),
        "share": found.share,
        "drifted_columns": list(found.drifted_columns),
        "thresholds": found.thresholds.to_dict(),
    }
    ctx.report(
        f"drift: {found.share:.0%} of {len(columns)} columns drifted "
        f"({'DRIFT' if found.drifted else 'no drift'} at share {found.thresholds.share:g})"
    )
    performance = _performance(ctx)
    outcome = MonitorResult(
        drifted=found.drifted,
        share=found.share,
        drifted_columns=tuple(found.drifted_columns),
        action="retrain",
        production=ctx.production.ref,
        run_id=run.id,
        performance_drifted=performance,
    )
    if not (found.drifted or performance):
        return replace(outcome, action="none", message="no drift; nothing to do")
    if dry_run:
        stages = ", ".join(cfg.retrain_stages) or "the whole pipeline"
        return replace(
            outcome,
            action="would-retrain",
            message=f"would re-run {stages} with {dict(cfg.retrain_params)} in an isolated "
            f"workspace, score the challenger against {ctx.production.ref} on {cfg.holdout} by "
            f"{ctx.metric[0]}, and move {cfg.model}@{cfg.alias} only if it wins; dry run: "
            "no alert sent, nothing written",
        )
    return outcome


def _performance(ctx: MonitorPass) -> bool:
    """Whether the model's metric on labelled feedback dropped below tolerance."""
    feedback = ctx.cfg.feedback
    if feedback is None:
        return False
    from nbops.data import read_source
    from nbops.monitor._model_drift import model_drift

    table = read_source(feedback.path, root=ctx.root, store=ctx.store)
    missing = [
        c for c in (feedback.prediction, feedback.label, feedback.time) if c not in table.columns
    ]
    if missing:
        raise MonitorConfigError(f"feedback {feedback.path} has no column {', '.join(missing)}")
    found = model_drift(
        table[feedback.prediction],
        table[feedback.label],
        table[feedback.time],
        window=feedback.window,
        metric=ctx.cfg.metric,
        reference=_recorded(ctx),
        tolerance=feedback.tolerance,
    )
    ctx.run.set_metadata("performance", found.to_dict())
    ctx.facts["performance"] = {"drifted": found.drifted, "tolerance": feedback.tolerance}
    ctx.report(f"performance on feedback: {'DROPPED' if found.drifted else 'within tolerance'}")
    return bool(found.drifted)


def _recorded(ctx: MonitorPass) -> dict[str, float]:
    metrics = ctx.production.lineage.get("metrics") or {}
    name = ctx.metric[0]
    if name not in metrics:
        raise MonitorConfigError(
            f"{ctx.production.ref} recorded no {name} to compare the feedback with"
        )
    return {name: float(metrics[name])}


def _refresh_card(ctx: MonitorPass) -> None:
    """Write the card of what ``MODEL@ALIAS`` points at now, when it does not describe it yet."""
    from nbops.cards import write_pipeline_card
    from nbops.registry import get_model

    ref = f"{ctx.cfg.model}@{ctx.cfg.alias}"
    current = get_model(ref, store=ctx.store)
    target = _card_path(ctx.root)
    heading = f"# Model card: {current.name} (version {current.version})"
    if target is not None and target.is_file() and heading in target.read_text(encoding="utf-8"):
        return
    written = write_pipeline_card(ctx.root, ref, store=ctx.store)
    if written is not None:
        ctx.report(f"model card of {current.ref} ({ref}) written to {written[0].name}")


def _card_path(root: Path) -> Path | None:
    import yaml

    spec = yaml.safe_load((root / "nbops.yaml").read_text(encoding="utf-8")) or {}
    options = (spec.get("pipeline") or {}).get("card") or {}
    return root / str(options.get("output") or "model_card.md") if options else None


def _alert(ctx: MonitorPass, outcome: MonitorResult) -> MonitorResult:
    """Send the one event of this decision (when a webhook is configured)."""
    cfg = ctx.cfg
    event = {
        "promoted": "promoted",
        "kept": "kept",
        "retrain-failed": "retrain_failed",
    }.get(outcome.action, "performance" if outcome.performance_drifted else "drift")
    payload = {
        "event": event,
        "timestamp": time.time(),
        "model": cfg.model,
        "alias": cfg.alias,
        "production": outcome.production,
        "challenger": outcome.challenger,
        "thresholds": {
            "drift": ctx.facts.get("drift", {}).get("thresholds"),
            "min_improvement": cfg.min_improvement,
            "significance": cfg.significance,
        },
        "metrics": {
            "drift_share": outcome.share,
            "drifted_columns": list(outcome.drifted_columns),
            "comparison": dict(outcome.comparison or {}),
        },
        "decision": outcome.message,
        "run": {"id": ctx.run.id, "show": f"nbops runs show {ctx.run.id}"},
    }
    delivery: Delivery | None = None
    if cfg.webhook:
        secret = os.environ.get(cfg.webhook_secret_env) or None
        delivery = send_alert(cfg.webhook, payload, secret=secret, retries=cfg.alert_retries)
        if delivery.error:
            ctx.report(
                f"alert webhook failed after {delivery.attempts} attempt(s): {delivery.error}"
            )
    record = {
        "event": event,
        "webhook": bool(cfg.webhook),
        "signed": bool(cfg.webhook and os.environ.get(cfg.webhook_secret_env)),
        "attempts": delivery.attempts if delivery else 0,
        "error": delivery.error if delivery else None,
    }
    ctx.run.set_metadata("alert", {**payload, **record})
    return replace(outcome, alert=record)


def _done(ctx: MonitorPass, result: MonitorResult) -> MonitorResult:
    status = "failed" if result.action == "retrain-failed" else "finished"
    ctx.run.set_metadata("monitor", asdict(result))
    # what `nbops runs show` prints for a monitor run: decision, alert, drift summary
    drift = ctx.facts.get("drift") or {}
    summary = {
        "decision": f"{result.action}: {result.message}",
        "production": result.production,
        "challenger": result.challenger or "-",
        "drift": f"{result.share:.0%} of columns drifted"
        + (f" ({', '.join(drift.get('drifted_columns') or [])})" if result.drifted else ""),
        "alert": _alert_line(result),
    }
    for key, value in summary.items():
        ctx.run.summary[key] = value
    ctx.run.finish(status)
    ctx.report(result.message)
    return result


def _alert_line(result: MonitorResult) -> str:
    alert = result.alert
    if not alert:
        return "none (dry run or nothing decided)"
    if not alert.get("webhook"):
        return f"{alert['event']} (no webhook configured)"
    sent = "delivered" if alert.get("error") is None else f"failed: {alert['error']}"
    return f"{alert['event']} {sent} after {alert['attempts']} attempt(s)"
