"""Monitoring: data drift between two tables, and model performance drift over time windows.

``nbops.drift(reference, current)`` compares every column of two DataFrames and returns a
:class:`DriftReport`; ``nbops.model_drift(...)`` compares a model's metric per time window with
the metrics recorded for the production model.
"""

from __future__ import annotations

from nbops.monitor._drift import drift
from nbops.monitor._errors import DriftInputError
from nbops.monitor._loop import MonitorConfigError, MonitorResult, monitor
from nbops.monitor._model_drift import ModelDriftReport, WindowMetric, model_drift
from nbops.monitor._report import ColumnDrift, DriftReport, DriftThresholds, Overlay

__all__ = [
    "ColumnDrift",
    "DriftInputError",
    "DriftReport",
    "DriftThresholds",
    "ModelDriftReport",
    "MonitorConfigError",
    "MonitorResult",
    "Overlay",
    "WindowMetric",
    "drift",
    "model_drift",
    "monitor",
]
