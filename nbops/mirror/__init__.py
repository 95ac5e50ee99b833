"""Mirror nbops runs to Weights & Biases, read offline W&B runs locally and sync them later.

Importing this package does not import wandb; wandb loads on the mirror's worker thread.
"""

from __future__ import annotations

from nbops.mirror._mode import resolve_mode
from nbops.mirror._offline_file import (
    OfflineArtifact,
    OfflineRun,
    find_offline_runs,
    read_offline_run,
)
from nbops.mirror._sync import (
    NoApiKeyError,
    ServerUnreachableError,
    SyncFailedError,
    SyncReport,
    sync,
)
from nbops.mirror._wandb import MirrorState, MirrorWarning, WandbMirror

__all__ = [
    "MirrorState",
    "MirrorWarning",
    "NoApiKeyError",
    "OfflineArtifact",
    "OfflineRun",
    "ServerUnreachableError",
    "SyncFailedError",
    "SyncReport",
    "WandbMirror",
    "find_offline_runs",
    "read_offline_run",
    "resolve_mode",
    "sync",
]
