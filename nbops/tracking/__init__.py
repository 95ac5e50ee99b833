"""Tracking: runs, their logging API, and reading runs back."""

from __future__ import annotations

from nbops.tracking._active import RUN_ID_ENV, active_run, suspended
from nbops.tracking._api import finish, init, log, log_artifact, log_params
from nbops.tracking._query import Artifact, StoredRun, get_run, runs
from nbops.tracking._run import Run, Summary, new_run_id

__all__ = [
    "RUN_ID_ENV",
    "Artifact",
    "Run",
    "StoredRun",
    "Summary",
    "active_run",
    "finish",
    "get_run",
    "init",
    "log",
    "log_artifact",
    "log_params",
    "new_run_id",
    "runs",
    "suspended",
]
