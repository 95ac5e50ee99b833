"""Notebook pipelines: ``nbops.yaml`` stages executed by papermill, cached by content hash."""

from __future__ import annotations

from nbops.pipeline._dask import ExecutorConfigError
from nbops.pipeline._gc import GcResult, gc
from nbops.pipeline._graph import StageGraph, render
from nbops.pipeline._job import JobResult, StageJob, run_stage_job
from nbops.pipeline._lock import LOCK_FILE, LockEntry, LockError, read_lock, write_lock
from nbops.pipeline._metrics import MetricChange, RevisionError, metrics_diff
from nbops.pipeline._outputs import OutputError, missing_blobs, restore_outs
from nbops.pipeline._remote import DirectoryRemote, FsspecRemote, Remote, RemoteError, open_remote
from nbops.pipeline._remotes import (
    RemoteConfig,
    RemoteConfigError,
    add_remote,
    get_remote,
    list_remotes,
    remove_remote,
)
from nbops.pipeline._runlock import PipelineBusyError, RunLock
from nbops.pipeline._runner import PipelineFailed, PipelineResult, parse_overrides, run_pipeline
from nbops.pipeline._scaffold import scaffold
from nbops.pipeline._sftp import SFTPRemote
from nbops.pipeline._spec import SPEC_FILE, Gate, PipelineSpec, SpecError, Stage, load_spec
from nbops.pipeline._stage import StageResult
from nbops.pipeline._status import StageStatus, pipeline_status, project_status
from nbops.pipeline._sync import TransferResult, open_configured, pull, push
from nbops.pipeline._validate import validate
from nbops.pipeline._yaml import DuplicateKeyError, yaml_load

__all__ = [
    "LOCK_FILE",
    "SPEC_FILE",
    "DirectoryRemote",
    "DuplicateKeyError",
    "ExecutorConfigError",
    "FsspecRemote",
    "Gate",
    "GcResult",
    "JobResult",
    "LockEntry",
    "LockError",
    "MetricChange",
    "OutputError",
    "PipelineBusyError",
    "PipelineFailed",
    "PipelineResult",
    "PipelineSpec",
    "Remote",
    "RemoteConfig",
    "RemoteConfigError",
    "RemoteError",
    "RevisionError",
    "RunLock",
    "SFTPRemote",
    "SpecError",
    "Stage",
    "StageGraph",
    "StageJob",
    "StageResult",
    "StageStatus",
    "TransferResult",
    "add_remote",
    "gc",
    "get_remote",
    "list_remotes",
    "load_spec",
    "metrics_diff",
    "missing_blobs",
    "open_configured",
    "open_remote",
    "parse_overrides",
    "pipeline_status",
    "project_status",
    "pull",
    "push",
    "read_lock",
    "remove_remote",
    "render",
    "restore_outs",
    "run_pipeline",
    "run_stage_job",
    "scaffold",
    "validate",
    "write_lock",
    "yaml_load",
]
