"""Optuna sweeps of functions and notebooks: tracked trials, worker processes, a live panel."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nbops.deps import require
from nbops.sweeps._api import load_sweep, sweep
from nbops.sweeps._errors import SpaceError, SweepError, SweepStorageError, TrialFailed
from nbops.sweeps._report import report
from nbops.sweeps._space import load_space, validate_space
from nbops.sweeps._spec import SweepSpec
from nbops.sweeps._sweep import Sweep
from nbops.sweeps._worker import run_worker

if TYPE_CHECKING:
    from nbops.sweeps._panel import SweepPanel as SweepPanel

__all__ = [
    "SpaceError",
    "Sweep",
    "SweepError",
    "SweepPanel",
    "SweepSpec",
    "SweepStorageError",
    "TrialFailed",
    "load_space",
    "load_sweep",
    "report",
    "run_worker",
    "sweep",
    "validate_space",
]


def __getattr__(name: str) -> Any:
    if name == "SweepPanel":  # imports ipywidgets
        require("ipywidgets", feature="nbops.SweepPanel")
        from nbops.sweeps._panel import SweepPanel

        return SweepPanel
    raise AttributeError(f"module 'nbops.sweeps' has no attribute {name!r}")
