"""Mirror nbops runs to Weights & Biases, read offline W&B runs locally and sync them later.

The store is the source of truth: each run's ``wandb`` metadata (:class:`MirrorState`) records
how far its W&B copy got, and :func:`complete_offline_copies` rebuilds incomplete copies from
the store. Importing this package does not import wandb; wandb loads on the mirror's worker
thread.
"""

from __future__ import annotations

from nbops.mirror._code import code_files
from nbops.mirror._copier import OfflineCopier
from nbops.mirror._media import MediaFile
from nbops.mirror._mode import resolve_mode
from nbops.mirror._offline_file import (
    OfflineArtifact,
    OfflineRun,
    exit_record_written,
    find_offline_runs,
    read_offline_run,
)
from nbops.mirror._probe import PROBE_TIMEOUT, ServerCheck, check_server
from nbops.mirror._rebuild import (
    CopyResult,
    complete_offline_copies,
    incomplete_copies,
    mark_outdated,
    media_files,
    needs_wandb,
    rebuild_offline_copy,
)
from nbops.mirror._state import (
    COMPLETE,
    METADATA_KEY,
    NOT_MIRRORED,
    PARTIAL,
    MirrorState,
    deferred_state,
    describe_copy,
)
from nbops.mirror._sync import (
    NoApiKeyError,
    ServerRejectedError,
    ServerUnreachableError,
    SyncFailedError,
    SyncReport,
    sync,
)
from nbops.mirror._wandb import MirrorWarning, WandbMirror

__all__ = [
    "COMPLETE",
    "METADATA_KEY",
    "NOT_MIRRORED",
    "PARTIAL",
    "PROBE_TIMEOUT",
    "CopyResult",
    "MediaFile",
    "MirrorState",
    "MirrorWarning",
    "NoApiKeyError",
    "OfflineArtifact",
    "OfflineCopier",
    "OfflineRun",
    "ServerCheck",
    "ServerRejectedError",
    "ServerUnreachableError",
    "SyncFailedError",
    "SyncReport",
    "WandbMirror",
    "check_server",
    "code_files",
    "complete_offline_copies",
    "deferred_state",
    "describe_copy",
    "exit_record_written",
    "find_offline_runs",
    "incomplete_copies",
    "mark_outdated",
    "media_files",
    "needs_wandb",
    "read_offline_run",
    "rebuild_offline_copy",
    "resolve_mode",
    "sync",
]
