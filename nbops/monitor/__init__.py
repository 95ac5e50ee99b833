"""Monitoring: data drift between two tables, and model performance drift over time windows.

``nbops.drift(reference, current)`` compares every column of two DataFrames and returns a
:class:`DriftReport`; ``nbops.model_drift(...)`` compares a model's metric per time window with
the metrics recorded for the production model.
"""

from __future__ import annotations

from nbops.monitor._alerts import EVENTS, SIGNATURE_HEADER, Delivery, send_alert, sign
from nbops.monitor._compare import Comparison, bootstrap_p, mcnemar_p
from nbops.monitor._config import (
    Feedback,
    MonitorConfig,
    MonitorConfigError,
    load_monitor_config,
)
from nbops.monitor._domain import DomainCheck
from nbops.monitor._drift import drift
from nbops.monitor._errors import DriftInputError, DriftWarning
from nbops.monitor._loop import MonitorResult, monitor
from nbops.monitor._model_drift import ModelDriftReport, WindowMetric, model_drift
from nbops.monitor._report import ColumnDrift, DriftReport, DriftThresholds, Overlay

__all__ = [
    "EVENTS",
    "SIGNATURE_HEADER",
    "ColumnDrift",
    "Comparison",
    "Delivery",
    "DomainCheck",
    "DriftInputError",
    "DriftReport",
    "DriftThresholds",
    "DriftWarning",
    "Feedback",
    "ModelDriftReport",
    "MonitorConfig",
    "MonitorConfigError",
    "MonitorResult",
    "Overlay",
    "WindowMetric",
    "bootstrap_p",
    "drift",
    "load_monitor_config",
    "mcnemar_p",
    "model_drift",
    "monitor",
    "send_alert",
    "sign",
]
