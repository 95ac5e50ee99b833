"""Tracking: runs, their logging API, and reading runs back."""

from __future__ import annotations

from nbops.tracking._api import finish, init, log, log_artifact, log_params
from nbops.tracking._query import Artifact, StoredRun, get_run, runs
from nbops.tracking._run import Run, Summary, active_run

__all__ = [
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
    "runs",
]
