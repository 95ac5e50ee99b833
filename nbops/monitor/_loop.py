"""``nbops monitor``: drift check, retraining, challenger vs production, promotion, card.

Reads the ``monitor:`` section of ``nbops.yaml``::

    monitor:
      model: digits-forest          # watched as MODEL@alias
      alias: production
      reference: digits-train       # a dataset in the production model's lineage
      current: data/current.parquet # the new data
      holdout: data/holdout.parquet # both models are scored on it
      target: target                # label column (left out of the drift check)
      metric: accuracy              # accuracy, f1, precision, recall, error_rate, mae, rmse, r2
      min_improvement: 0.0          # the challenger must beat production by more than this
      thresholds: {share: 0.3}      # drift thresholds (see nbops.drift)
      retrain: {stages: [], params: {prepare: {source: data/current.parquet}}}
      webhook: https://hooks.example.org/nbops   # optional; POSTed a JSON alert on drift
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from nbops.errors import NbopsError

logger = logging.getLogger(__name__)
Report = Callable[[str], None]
MONITOR_KEYS = (
    "model",
    "alias",
    "reference",
    "current",
    "holdout",
    "target",
    "metric",
    "min_improvement",
    "thresholds",
    "columns",
    "retrain",
    "webhook",
)


class MonitorConfigError(NbopsError):
    """The ``monitor:`` section of ``nbops.yaml`` is missing or invalid."""


@dataclass(frozen=True)
class MonitorConfig:
    """The validated ``monitor:`` section."""

    model: str
    current: str
    holdout: str
    target: str
    alias: str = "production"
    reference: str | None = None
    metric: str = "accuracy"
    min_improvement: float = 0.0
    thresholds: Mapping[str, Any] = field(default_factory=dict)
    columns: tuple[str, ...] = ()
    retrain_stages: tuple[str, ...] = ()
    retrain_params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    webhook: str | None = None


@dataclass(frozen=True)
class MonitorResult:
    """What one ``nbops monitor`` pass found and did.

    ``action``: ``none`` (no drift), ``would-retrain`` (dry run), ``promoted``, ``kept``
    (the challenger did not win), or ``retrain-failed`` (a stage or gate failed).
    """

    drifted: bool
    share: float
    drifted_columns: tuple[str, ...]
    action: str
    production: str
    challenger: str | None = None
    production_score: float | None = None
    challenger_score: float | None = None
    run_id: str | None = None
    message: str = ""


def load_monitor_config(root: Path) -> MonitorConfig:
    """Read and check ``monitor:``; every problem in one :class:`MonitorConfigError`."""
    import yaml

    path = root / "nbops.yaml"
    try:
        raw = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("monitor")
    except (OSError, yaml.YAMLError) as exc:
        raise MonitorConfigError(f"cannot read {path}: {exc}") from None
    if not isinstance(raw, Mapping):
        raise MonitorConfigError(f"{path} has no monitor: section; see `nbops monitor --help`")
    problems = [f"unknown key {k!r}" for k in raw if k not in MONITOR_KEYS]
    problems += [
        f"{k} is required"
        for k in ("model", "current", "holdout", "target")
        if not isinstance(raw.get(k), str)
    ]
    webhook = raw.get("webhook")
    if webhook is not None and not str(webhook).startswith(("http://", "https://")):
        problems.append("webhook must be an http:// or https:// URL")
    for key in ("current", "holdout"):
        if isinstance(raw.get(key), str) and not (root / raw[key]).is_file():
            problems.append(f"{key}: {raw[key]} does not exist")
    retrain = raw.get("retrain") or {}
    if not isinstance(retrain, Mapping):
        problems.append("retrain must be a mapping with stages and/or params")
        retrain = {}
    if problems:
        raise MonitorConfigError(f"monitor: section of {path}: " + "; ".join(problems))
    return MonitorConfig(
        model=raw["model"],
        current=raw["current"],
        holdout=raw["holdout"],
        target=raw["target"],
        alias=str(raw.get("alias") or "production"),
        reference=raw.get("reference"),
        metric=str(raw.get("metric") or "accuracy"),
        min_improvement=float(raw.get("min_improvement") or 0.0),
        thresholds=dict(raw.get("thresholds") or {}),
        columns=tuple(raw.get("columns") or ()),
        retrain_stages=tuple(retrain.get("stages") or ()),
        retrain_params={k: dict(v) for k, v in (retrain.get("params") or {}).items()},
        webhook=raw.get("webhook"),
    )


def send_alert(url: str, payload: Mapping[str, Any], timeout: float = 5.0) -> str | None:
    """POST ``payload`` as JSON; return None on success, else what went wrong (never raises)."""
    import http.client
    import urllib.request

    if not url.startswith(("http://", "https://")):
        return f"not an http(s) URL: {url}"
    request = urllib.request.Request(  # noqa: S310 - scheme checked above
        url,
        data=json.dumps(payload, default=str).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "nbops-monitor"},
    )
    try:
        # the URL is checked to be http(s) when the config is read
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return None if response.status < 300 else f"HTTP {response.status}"
    except (OSError, http.client.HTTPException, ValueError) as exc:  # URLError is an OSError
        return f"{type(exc).__name__}: {exc}"


def _score(model: Any, metric: Callable[[Any, Any], float], features: Any, labels: Any) -> float:
    return float(metric(labels.to_numpy(), model.predict(features)))


def monitor(
    root: str | os.PathLike[str] | None = None, *, dry_run: bool = False, report: Report = print
) -> MonitorResult:
    """Check drift of the current data against the production model's training data, and when
    it drifted, retrain with the pipeline, score challenger and production on the holdout, and
    move the alias to the challenger only if it wins (and passed the pipeline's gates)."""
    import nbops
    from nbops.config import find_project_root, store_path
    from nbops.data import get_dataset, load_dataset
    from nbops.data._profile import read_table
    from nbops.monitor._drift import drift
    from nbops.monitor._model_drift import _resolve_metric
    from nbops.pipeline import PipelineFailed, run_pipeline
    from nbops.registry import get_model, load_model, model_versions, set_alias
    from nbops.store import open_store

    base = Path(root) if root is not None else find_project_root()
    cfg = load_monitor_config(base)
    store = open_store(store_path(base))
    metric_name, metric_fn, higher = _resolve_metric(cfg.metric, None)
    production = get_model(f"{cfg.model}@{cfg.alias}", store=store)
    datasets = list(production.lineage.get("datasets") or [])
    chosen = [d for d in datasets if cfg.reference in (None, d.get("name"))]
    if not chosen:
        raise MonitorConfigError(
            f"{production.ref} has no dataset {cfg.reference or ''} in its lineage to compare "
            "with; log the training data with nbops.log_dataset in the run that registers it"
        )
    ref = chosen[0]
    reference = load_dataset(
        get_dataset(f"{ref['name']}@{ref['hash']}", store=store).ref, store=store
    )
    current = read_table(base / cfg.current)
    columns = list(cfg.columns) or [c for c in reference.columns if c != cfg.target]
    run = nbops.init(
        store=store,
        name="monitor",
        job_type="monitor",
        activate=False,
        config={
            "model": production.ref,
            "reference": f"{ref['name']}@{ref['hash']}",
            "current": cfg.current,
            "dry_run": dry_run,
        },
    )
    try:
        found = drift(reference[columns], current[columns], thresholds=dict(cfg.thresholds))
        run.log({"drift_share": found.share, "drifted_columns": len(found.drifted_columns)})
        run.set_metadata("drift", found.to_dict())
        report(
            f"drift: {found.share:.0%} of {len(columns)} columns drifted "
            f"({'DRIFT' if found.drifted else 'no drift'} at share "
            f"{found.thresholds.share:g})"
        )
        outcome = MonitorResult(
            drifted=found.drifted,
            share=found.share,
            drifted_columns=tuple(found.drifted_columns),
            action="none",
            production=production.ref,
            run_id=run.id,
        )
        if found.drifted:
            alert = {
                "event": "drift",
                "model": production.ref,
                "share": found.share,
                "drifted_columns": list(found.drifted_columns),
                "run": run.id,
            }
            problem = send_alert(cfg.webhook, alert) if cfg.webhook else None
            run.set_metadata("alert", {**alert, "webhook": bool(cfg.webhook), "error": problem})
            if problem:
                report(f"alert webhook failed: {problem}")
        if not found.drifted:
            return _done(
                run,
                replace(outcome, action="none", message="no drift; nothing to do"),
                report,
            )
        if dry_run:
            stages = ", ".join(cfg.retrain_stages) or "the whole pipeline"
            return _done(
                run,
                replace(
                    outcome,
                    action="would-retrain",
                    message=f"would re-run {stages} with {dict(cfg.retrain_params)}, score the "
                    f"challenger against {production.ref} on {cfg.holdout} by {metric_name}, and "
                    f"move {cfg.model}@{cfg.alias} only if it wins",
                ),
                report,
            )
        try:
            run_pipeline(
                base,
                cfg.retrain_stages,
                force=True,
                overrides=cfg.retrain_params,
                report=lambda line: report(f"  retrain: {line}"),
            )
        except PipelineFailed as exc:
            return _done(
                run,
                replace(
                    outcome,
                    action="retrain-failed",
                    message=f"retraining failed, nothing promoted: {exc}",
                ),
                report,
                status="failed",
            )
        challenger = model_versions(cfg.model, store=store)[-1]
        if challenger.version == production.version:
            raise NbopsError(f"the retraining pipeline registered no new version of {cfg.model}")
        holdout = read_table(base / cfg.holdout)
        features, labels = holdout.drop(columns=[cfg.target]), holdout[cfg.target]
        old = _score(load_model(production.ref, store=store), metric_fn, features, labels)
        new = _score(load_model(challenger.ref, store=store), metric_fn, features, labels)
        run.log({f"production_{metric_name}": old, f"challenger_{metric_name}": new})
        gain = (new - old) if higher else (old - new)
        scores: dict[str, Any] = {
            "challenger": challenger.ref,
            "production_score": old,
            "challenger_score": new,
        }
        if gain <= cfg.min_improvement:
            return _done(
                run,
                replace(
                    outcome,
                    **scores,
                    action="kept",
                    message=f"{challenger.ref} {metric_name} {new:.4g} does not beat "
                    f"{production.ref} {old:.4g}; {cfg.model}@{cfg.alias} stays",
                ),
                report,
            )
        set_alias(
            store=store,
            name=cfg.model,
            version=challenger.version,
            alias=cfg.alias,
            reason=f"nbops monitor run {run.id}: drift share {found.share:.2f}; "
            f"{metric_name} {new:.4g} vs {old:.4g}",
        )
        _refresh_card(base, f"{cfg.model}@{cfg.alias}", store, report)
        return _done(
            run,
            replace(
                outcome,
                **scores,
                action="promoted",
                message=f"promoted {challenger.ref} to {cfg.model}@{cfg.alias}: {metric_name} "
                f"{new:.4g} vs {old:.4g}",
            ),
            report,
        )
    except BaseException:
        run.finish("failed")
        raise


def _refresh_card(root: Path, ref: str, store: Any, report: Report) -> None:
    from nbops.cards import write_pipeline_card

    written = write_pipeline_card(root, ref, store=store)
    if written is not None:
        report(f"model card of {ref} written to {written[0].name}")


def _done(
    run: Any, result: MonitorResult, report: Report, status: str = "finished"
) -> MonitorResult:
    run.set_metadata("monitor", asdict(result))
    run.finish(status)
    report(result.message)
    return result
