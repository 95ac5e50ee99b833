"""What one monitor pass works with and what it decided."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbops.monitor._config import MonitorConfig

Report = Callable[[str], None]


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
    performance_drifted: bool = False
    comparison: Mapping[str, Any] | None = None
    workspace_commit: str | None = None
    alert: Mapping[str, Any] | None = None


@dataclass
class MonitorPass:
    """What one monitor pass works with."""

    root: Path
    cfg: MonitorConfig
    store: Any
    production: Any
    reference_name: str
    reference: Any
    run: Any
    report: Report
    metric: tuple[str, Callable[[Any, Any], float], bool]
    facts: dict[str, Any] = field(default_factory=dict)
