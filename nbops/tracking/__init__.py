"""Tracking: runs, their logging API, and reading runs back."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nbops.tracking._active import (
    RUN_ID_ENV,
    active_run,
    add_activation_listener,
    attach_from_environment,
    remove_activation_listener,
    require_active,
    suspended,
)
from nbops.tracking._api import finish, init, log, log_artifact, log_params
from nbops.tracking._autolog import autolog, autolog_enabled
from nbops.tracking._compare import Comparison, compare
from nbops.tracking._edit import set_notes, set_tags
from nbops.tracking._gc import PurgedRuns, delete_runs, purge_deleted_runs
from nbops.tracking._ids import new_run_id
from nbops.tracking._media import Histogram, Image, Media, Table
from nbops.tracking._query import Artifact, StoredRun, get_run, runs
from nbops.tracking._run import Run
from nbops.tracking._summary import Summary
from nbops.tracking._system import PREFIX as SYSTEM_PREFIX
from nbops.tracking._system import SystemProbe, SystemSampler, gpu_metrics
from nbops.tracking._tables import is_table

if TYPE_CHECKING:
    from nbops.tracking._panel import RunsPanel as RunsPanel

__all__ = [
    "RUN_ID_ENV",
    "SYSTEM_PREFIX",
    "Artifact",
    "Comparison",
    "Histogram",
    "Image",
    "Media",
    "PurgedRuns",
    "Run",
    "RunsPanel",
    "StoredRun",
    "Summary",
    "SystemProbe",
    "SystemSampler",
    "Table",
    "active_run",
    "add_activation_listener",
    "attach_from_environment",
    "autolog",
    "autolog_enabled",
    "compare",
    "delete_runs",
    "finish",
    "get_run",
    "gpu_metrics",
    "init",
    "is_table",
    "log",
    "log_artifact",
    "log_params",
    "new_run_id",
    "purge_deleted_runs",
    "remove_activation_listener",
    "require_active",
    "runs",
    "set_notes",
    "set_tags",
    "suspended",
]


def __getattr__(name: str) -> Any:
    if name == "RunsPanel":  # imports ipywidgets
        from nbops.deps import require

        require("ipywidgets", feature="the runs panel")
        from nbops.tracking._panel import RunsPanel

        return RunsPanel
    raise AttributeError(f"module 'nbops.tracking' has no attribute {name!r}")
