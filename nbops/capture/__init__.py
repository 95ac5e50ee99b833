"""Automatic capture at run start and finish: git state, environment and the running notebook.

Everything here uses the standard library only, bounds every subprocess and HTTP call with a
timeout, reports failures as fields instead of raising, and scrubs secrets (see
:mod:`nbops.redact`) from what it returns.
"""

from __future__ import annotations

from nbops.capture._environment import environment, installed_packages
from nbops.capture._git import git_state, strip_credentials
from nbops.capture._notebook import (
    NOTEBOOK_PATH_ENV,
    NotebookLocation,
    find_notebook,
    snapshot_notebook,
)

__all__ = [
    "NOTEBOOK_PATH_ENV",
    "NotebookLocation",
    "environment",
    "find_notebook",
    "git_state",
    "installed_packages",
    "snapshot_notebook",
    "strip_credentials",
]
