"""``nbops.init`` and the module-level shortcuts acting on the active run."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from nbops.config import default_project, find_project_root
from nbops.errors import InvalidValueError, StoreError
from nbops.redact import redact
from nbops.store import RunRecord, RunStore, open_store
from nbops.tracking._active import active_run, register, require_active
from nbops.tracking._capture import capture_finish, capture_start
from nbops.tracking._ids import host_and_pid, new_run_id
from nbops.tracking._run import Run
from nbops.tracking._system import DEFAULT_INTERVAL
from nbops.tracking._values import ensure_sequence, scrubbed

if TYPE_CHECKING:
    from nbops.mirror import WandbMirror

#: Environment default for ``init(system_metrics=...)``: ``0``/``false`` or seconds.
SYSTEM_METRICS_ENV = "NBOPS_SYSTEM_METRICS"


def init(
    project: str | None = None,
    name: str | None = None,
    config: Mapping[str, Any] | None = None,
    tags: Sequence[str] | str | None = None,
    group: str | None = None,
    job_type: str | None = None,
    wandb: str | bool | None = None,
    *,
    store: RunStore | str | os.PathLike[str] | None = None,
    capture: bool = True,
    shell: Any = None,
    notebook: str | os.PathLike[str] | None = None,
    run_id: str | None = None,
    activate: bool = True,
    system_metrics: bool | float | None = None,
    resume: bool = False,
) -> Run:
    """Start a run and make it the active one (a previous active run is finished first).

    Args:
        project: Project name; default ``$NBOPS_PROJECT`` or the project root's folder name.
        name: Display name; default ``run-<id>``.
        config: Parameters of the run (secret-looking keys are redacted).
        tags: Tags, one string or several.
        group: Group runs together (a sweep, a pipeline execution).
        job_type: Kind of run (``train``, ``stage``, ``trial`` ...).
        wandb: Mirror mode: ``"online"``, ``"offline"``, ``"disabled"`` (or False); default from
            ``NBOPS_WANDB``/``WANDB_MODE``, else offline without an API key, else online.
        store: The store, or its directory; default ``$NBOPS_HOME`` or ``<root>/.nbops``.
        capture: Record git, environment, packages and the notebook in the background.
        shell: The IPython shell, when called from one (found automatically otherwise).
        notebook: The notebook this run executes, when known (pipelines and sweeps pass it).
        run_id: The id to use, for executors that hand it to a kernel started in advance
            (default: a new id from :func:`new_run_id`).
        activate: Make the run the active one, finishing the previous one (default). Executors
            running several runs at once pass False; such runs are still finished at exit.
        system_metrics: Sample CPU, memory, disk, network and GPU metrics (keys ``system/...``)
            while the run is active: True (every 10 s), a period in seconds, or False; default
            from ``$NBOPS_SYSTEM_METRICS`` (``0``/``false``, or seconds), else True.
        resume: Continue the finished, failed, killed or crashed run ``run_id`` (from any
            process): it is running again, its next step follows its last one, its summary and
            parameters are kept (``config`` merges in), and it finishes as usual. Its identity
            (project, name, tags, group) is the stored one. The W&B copy is rebuilt from the store.
    """
    interval = system_interval(system_metrics)
    target = open_store(store)
    if resume:
        if not run_id:
            raise InvalidValueError("resume=True needs the run to continue: init(run_id=ID, ...)")
        resumed = target.get_run(target.resolve_id(run_id))
        if resumed.status == "running":  # refused before the active run is finished
            raise StoreError(
                f"run {resumed.id} is running in another process ({resumed.host}, pid "
                f"{resumed.pid}); it cannot resume until that one ends"
            )
        project = resumed.project
    else:
        project = _checked_project(project)
    previous = active_run() if activate else None
    if previous is not None:
        previous.finish()
    if resume:
        host, pid = host_and_pid()
        target.reopen_run(resumed.id, pid, host, time.time())
        run = Run(
            target.get_run(resumed.id),
            target,
            config=config,
            mirror=_mirror(wandb, target.get_run(resumed.id), config),
            resumed=True,
        )
        run.sync_from_store()
        return _started(run, activate, interval, capture, shell, notebook)
    run_id = run_id or new_run_id()
    host, pid = host_and_pid()
    record = RunRecord(
        id=run_id,
        project=project,
        name=scrubbed(name) or f"run-{run_id}",
        group=scrubbed(group),
        job_type=scrubbed(job_type),
        status="running",
        tags=tuple(scrub_all(ensure_sequence(tags))),
        start_time=time.time(),
        heartbeat_time=time.time(),
        pid=pid,
        host=host,
    )
    run = Run(record, target, config=config, mirror=_mirror(wandb, record, config))
    return _started(run, activate, interval, capture, shell, notebook)


def _mirror(
    wandb: str | bool | None, record: RunRecord, config: Mapping[str, Any] | None
) -> WandbMirror | None:
    from nbops.mirror import WandbMirror, resolve_mode

    mode = resolve_mode("disabled" if wandb is False else None if wandb is True else wandb)
    if mode == "disabled":
        return None
    return WandbMirror(
        run_id=record.id,
        project=record.project,
        name=record.name,
        config=redact(dict(config or {})),
        group=record.group,
        job_type=record.job_type,
        tags=record.tags,
        mode=mode,
        directory=os.environ.get("WANDB_DIR") or find_project_root(),
    )


def _started(
    run: Run,
    activate: bool,
    interval: float | None,
    capture: bool,
    shell: Any,
    notebook: str | os.PathLike[str] | None,
) -> Run:
    register(run, make_active=activate)
    if interval is not None:
        run.start_system_metrics(interval)
    if capture:
        where = None if notebook is None else os.fspath(notebook)
        run.run_in_background(lambda: capture_start(run, shell, where), "nbops-capture")
        run.add_finish_hook(capture_finish)
    return run


def _checked_project(project: str | None) -> str:
    """Return the project name to use, or raise before anything is changed."""
    if project is None:
        return default_project()
    if not isinstance(project, str) or not project.strip():
        raise InvalidValueError(
            f"invalid project name {project!r}: give a non-empty name, or leave it out to use "
            "the default (the project root's folder name)"
        )
    name = scrubbed(project) or ""
    if "/" in name or "\\" in name:
        raise InvalidValueError(f"invalid project name {name!r}: use a name without '/' or '\\'")
    return name


def system_interval(setting: bool | float | None) -> float | None:
    """Return the system-metrics period in seconds for ``init(system_metrics=setting)``, or
    None when sampling is off; raise on a value that is neither."""
    source = "system_metrics"
    if setting is None:
        text = os.environ.get(SYSTEM_METRICS_ENV, "").strip().lower()
        if text in ("", "1", "true", "yes", "on"):
            return DEFAULT_INTERVAL
        if text in ("0", "false", "no", "off"):
            return None
        source = f"${SYSTEM_METRICS_ENV}"
        try:
            setting = float(text)
        except ValueError:
            setting = text  # type: ignore[assignment]  # reported below
    if setting is True:
        return DEFAULT_INTERVAL
    if setting is False:
        return None
    if isinstance(setting, (int, float)) and math.isfinite(setting) and setting > 0:
        return float(setting)
    raise InvalidValueError(
        f"{source} must be True, False or a positive number of seconds between samples, "
        f"not {setting!r}"
    )


def scrub_all(values: Sequence[str]) -> list[str]:
    """Scrub secrets from each string."""
    return [scrubbed(v) or "" for v in values]


def log(metrics: Mapping[str, Any], step: int | None = None) -> None:
    """Log metrics to the active run (see :meth:`Run.log`)."""
    require_active("log metrics").log(metrics, step=step)


def log_params(params: Mapping[str, Any]) -> None:
    """Log parameters to the active run (see :meth:`Run.log_params`)."""
    require_active("log parameters").log_params(params)


def log_artifact(
    path: str | os.PathLike[str], name: str | None = None, type: str | None = None
) -> Any:
    """Log an artifact to the active run (see :meth:`Run.log_artifact`)."""
    return require_active("log an artifact").log_artifact(path, name=name, type=type)


def finish(status: str = "finished") -> None:
    """Finish the active run, if any."""
    run = active_run()
    if run is not None:
        run.finish(status)
