"""What one refresh of the sweep panel shows, as plain data."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class TrialRow:
    number: int
    state: str
    value: str
    params: str
    seconds: float | None


@dataclass(frozen=True)
class PanelState:
    """One refresh of the panel.

    ``objectives`` names each objective (the metrics, or "objective" when a function returns
    a bare value); ``pareto`` is the front of a multi-objective sweep as ``(trial number,
    values, params)``; ``points`` are every completed trial's ``(values, params)`` for the
    parallel-coordinates view; ``errors`` are ``(trial number, message, traceback)``.
    """

    name: str
    done: int
    total: int | None
    running: int
    elapsed: float
    eta: float | None
    best_value: float | None
    best_params: dict[str, Any]
    recent: tuple[TrialRow, ...]
    errors: tuple[tuple[int, str, str], ...]
    history: tuple[tuple[int, float, float], ...]  # (trial number, value, best so far)
    importances: dict[str, float] = field(default_factory=dict)
    finished: bool = False
    stopped: bool = False
    objectives: tuple[str, ...] = ("objective",)
    directions: tuple[str, ...] = ("maximize",)
    pareto: tuple[tuple[int, tuple[float, ...], dict[str, Any]], ...] = ()
    points: tuple[tuple[tuple[float, ...], dict[str, Any]], ...] = ()


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = max(0.0, seconds)
    if seconds < 10:
        return f"{seconds:.1f}s"
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, sec = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
