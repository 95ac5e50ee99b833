"""Optuna sweeps of functions and notebooks: tracked trials, worker processes, a live panel."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nbops.sweeps._api import sweep
from nbops.sweeps._config import SweepConfig
from nbops.sweeps._errors import (
    SpaceError,
    SweepError,
    SweepInterrupted,
    SweepStorageError,
    TrialFailed,
)
from nbops.sweeps._existing import join_sweep, list_sweeps, load_sweep
from nbops.sweeps._file import load_sweep_file
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
    "SweepConfig",
    "SweepError",
    "SweepInterrupted",
    "SweepPanel",
    "SweepSpec",
    "SweepStorageError",
    "TrialFailed",
    "join_sweep",
    "list_sweeps",
    "load_space",
    "load_sweep",
    "load_sweep_file",
    "report",
    "run_worker",
    "sweep",
    "validate_space",
]


def __getattr__(name: str) -> Any:
    if name == "SweepPanel":  # imports ipywidgets
        from nbops.deps import require

        require("ipywidgets", feature="the sweep panel")
        from nbops.sweeps._panel import SweepPanel

        return SweepPanel
    raise AttributeError(f"module 'nbops.sweeps' has no attribute {name!r}")
