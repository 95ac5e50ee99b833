"""The ``monitor:`` section of ``nbops.yaml``, validated.

::

    monitor:
      model: digits-forest          # watched as MODEL@alias
      alias: production
      reference: digits-train       # a dataset in the production model's lineage
      current: data/current.parquet # the new data, or logged traffic: predictions:MODEL@ALIAS:7d
      holdout: data/holdout.parquet # both models are scored on it
      target: target                # label column (left out of the drift check)
      metric: accuracy              # accuracy, f1, precision, recall, error_rate, mae, rmse, r2
      min_improvement: 0.0          # the challenger must beat production by more than this
      significance: 0.05            # ... and the difference must be significant at this level
      test: auto                    # mcnemar, bootstrap, or auto (McNemar for accuracy)
      max_overlap: 0                # holdout rows allowed to appear in either training set
      thresholds: {share: 0.3}      # drift thresholds (see nbops.drift)
      domain: {auc: 0.6, rows: 2000} # the domain classifier (default on; false turns it off)
      retrain: {stages: [], params: {prepare: {source: data/current.parquet}}}
      webhook: https://hooks.example.org/nbops   # optional; one JSON event per decision
      webhook_secret_env: NBOPS_WEBHOOK_SECRET  # env var holding the HMAC secret (optional)
      feedback:                     # optional: labelled predictions (performance trigger)
        path: data/feedback.parquet # or the server's labelled predictions: feedback:MODEL@ALIAS:30d
        prediction: prediction
        label: target
        time: timestamp
        window: 7D
        tolerance: 0.05
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbops.errors import NbopsError
from nbops.monitor._domain import DOMAIN_AUC, DOMAIN_ROWS, domain_settings
from nbops.monitor._errors import DriftInputError

MONITOR_KEYS = (
    "domain",
    "model",
    "alias",
    "reference",
    "current",
    "holdout",
    "target",
    "metric",
    "min_improvement",
    "significance",
    "test",
    "max_overlap",
    "thresholds",
    "columns",
    "retrain",
    "webhook",
    "webhook_secret_env",
    "alert_retries",
    "feedback",
)
FEEDBACK_KEYS = ("path", "prediction", "label", "time", "window", "tolerance")
TESTS = ("auto", "mcnemar", "bootstrap")


class MonitorConfigError(NbopsError):
    """The ``monitor:`` section of ``nbops.yaml`` is missing or invalid."""


@dataclass(frozen=True)
class Feedback:
    """Labelled predictions that can trigger retraining when the model's metric drops."""

    path: str
    prediction: str = "prediction"
    label: str = "target"
    time: str = "timestamp"
    window: str = "7D"
    tolerance: float = 0.05


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
    significance: float = 0.05
    test: str = "auto"
    max_overlap: int = 0
    thresholds: Mapping[str, Any] = field(default_factory=dict)
    domain: Mapping[str, Any] | None = field(
        default_factory=lambda: {"auc": DOMAIN_AUC, "rows": DOMAIN_ROWS}
    )
    columns: tuple[str, ...] = ()
    retrain_stages: tuple[str, ...] = ()
    retrain_params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    webhook: str | None = None
    webhook_secret_env: str = "NBOPS_WEBHOOK_SECRET"  # noqa: S105 - a variable's name
    alert_retries: int = 3
    feedback: Feedback | None = None


def _number(raw: Mapping[str, Any], key: str, default: float, problems: list[str]) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        problems.append(f"{key} must be a number")
        return default
    return float(value)


def _exists(root: Path, spec: str) -> bool:
    """Whether the file exists; a table source (``predictions:...``) is checked when read."""
    from nbops.data import source_prefix

    return source_prefix(spec) is not None or (root / spec).is_file()


def _feedback(raw: Any, root: Path, problems: list[str]) -> Feedback | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping) or not isinstance(raw.get("path"), str):
        problems.append("feedback must be a mapping with at least path")
        return None
    problems += [f"unknown key feedback.{k}" for k in raw if k not in FEEDBACK_KEYS]
    if not _exists(root, raw["path"]):
        problems.append(f"feedback.path: {raw['path']} does not exist")
    fields = {k: raw[k] for k in FEEDBACK_KEYS if k in raw and k != "tolerance"}
    return Feedback(
        **{k: str(v) for k, v in fields.items()},
        tolerance=_number(raw, "tolerance", 0.05, problems),
    )


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
        if isinstance(raw.get(key), str) and not _exists(root, raw[key]):
            problems.append(f"{key}: {raw[key]} does not exist")
    retrain = raw.get("retrain") or {}
    if not isinstance(retrain, Mapping):
        problems.append("retrain must be a mapping with stages and/or params")
        retrain = {}
    level = _number(raw, "significance", 0.05, problems)
    if not 0 < level < 1:
        problems.append("significance must be between 0 and 1 (e.g. 0.05)")
    test = str(raw.get("test") or "auto")
    if test not in TESTS:
        problems.append(f"test must be one of {', '.join(TESTS)}")
    feedback = _feedback(raw.get("feedback"), root, problems)
    try:
        domain = domain_settings(raw.get("domain", True))
    except DriftInputError as exc:
        problems.append(str(exc))
        domain = None
    min_improvement = _number(raw, "min_improvement", 0.0, problems)
    max_overlap = int(_number(raw, "max_overlap", 0, problems))
    retries = int(_number(raw, "alert_retries", 3, problems))
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
        min_improvement=min_improvement,
        significance=level,
        test=test,
        max_overlap=max_overlap,
        thresholds=dict(raw.get("thresholds") or {}),
        domain=domain,
        columns=tuple(raw.get("columns") or ()),
        retrain_stages=tuple(retrain.get("stages") or ()),
        retrain_params={k: dict(v) for k, v in (retrain.get("params") or {}).items()},
        webhook=raw.get("webhook"),
        webhook_secret_env=str(raw.get("webhook_secret_env") or "NBOPS_WEBHOOK_SECRET"),
        alert_retries=retries,
        feedback=feedback,
    )
