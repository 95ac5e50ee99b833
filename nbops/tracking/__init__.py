"""Tracking: runs, their logging API, and reading runs back."""

from __future__ import annotations

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
from nbops.tracking._ids import new_run_id
from nbops.tracking._query import Artifact, StoredRun, get_run, runs
from nbops.tracking._run import Run
from nbops.tracking._summary import Summary
from nbops.tracking._tables import is_table

__all__ = [
    "RUN_ID_ENV",
    "Artifact",
    "Run",
    "StoredRun",
    "Summary",
    "active_run",
    "add_activation_listener",
    "attach_from_environment",
    "finish",
    "get_run",
    "init",
    "is_table",
    "log",
    "log_artifact",
    "log_params",
    "new_run_id",
    "remove_activation_listener",
    "require_active",
    "runs",
    "suspended",
]
