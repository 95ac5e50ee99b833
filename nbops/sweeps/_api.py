"""``nbops.sweep`` and ``nbops.load_sweep``."""

from __future__ import annotations

import logging
import os
import pickle
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from nbops.deps import available, require
from nbops.names import check_name
from nbops.shell import in_jupyter
from nbops.sweeps._errors import SpaceError, SweepError
from nbops.sweeps._space import example_values, load_space
from nbops.sweeps._spec import SPEC_ATTR, SweepSpec, callable_target, dumps_callable, import_target
from nbops.sweeps._storage import MEMORY, open_storage, redact_url, resolve_url
from nbops.sweeps._sweep import BUDGET_ATTR, Sweep
from nbops.sweeps._worker import STOP_ATTR

logger = logging.getLogger(__name__)

DIRECTIONS = ("maximize", "minimize")
Objective = Callable[..., Any] | str | os.PathLike[str]


def _as_tuple(value: str | Sequence[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)


def _objective_spec(
    objective: Objective, space: Any, metrics: tuple[str, ...]
) -> tuple[str, str | None, bytes | None, dict[str, Any] | None, Callable[..., Any] | None]:
    """Return kind, target, payload, space and the callable (None for notebooks)."""
    parsed = load_space(space) if space is not None else None
    if isinstance(objective, (str, os.PathLike)):
        text = os.fspath(objective)
        if text.endswith(".ipynb") or Path(text).is_file():
            return ("notebook", *_notebook_spec(text, parsed, metrics), None)
        objective = import_target(text)
        target: str | None = text
    else:
        target = callable_target(objective)
    if not callable(objective):
        raise SweepError(
            f"objective must be a callable, a notebook path or module:function, not {objective!r}"
        )
    payload = None if target else dumps_callable(objective)
    return ("params" if parsed else "trial", target, payload, parsed, objective)


def _notebook_spec(
    path: str, space: dict[str, Any] | None, metrics: tuple[str, ...]
) -> tuple[str, None, dict[str, Any]]:
    from nbops.execute import check_parameters

    if space is None:
        raise SpaceError(f"a notebook sweep needs space=...: the parameters of {path} to sample")
    if not metrics:
        raise SweepError(f"a notebook sweep needs metric=...: the name {path} logs with nbops.log")
    check_parameters(path, example_values(space))  # space keys must be declared (and typed)
    return str(Path(path).resolve()), None, space


def sweep(
    objective: Objective,
    space: Mapping[str, Any] | str | os.PathLike[str] | None = None,
    n_trials: int | None = None,
    timeout: float | None = None,
    metric: str | Sequence[str] | None = None,
    direction: str | Sequence[str] = "maximize",
    storage: Any = None,
    study_name: str | None = None,
    sampler: Any = None,
    pruner: Any = None,
    jobs: int = 1,
    panel: bool | None = None,
    *,
    project: str | None = None,
    wandb: str | bool | None = None,
    kernel_name: str | None = None,
    trial_timeout: float | None = None,
    heartbeat_interval: int = 10,
    grace_period: int | None = None,
) -> Sweep:
    """Run an Optuna sweep of a function or a notebook; every trial is a tracked run.

    Args:
        objective: ``f(trial)`` (define-by-run), ``f(params)`` with ``space``, a notebook path
            (each trial executes it with the sampled values injected into its ``parameters``
            cell; the objective is ``metric`` as it logged with ``nbops.log``), or
            ``"module:function"``.
        space: ``{name: {type: float|int|categorical, low, high, log, step, choices}}`` or a
            YAML file of it. Needed for dict objectives and notebooks.
        n_trials: Trials to run in total, across all workers (exactly this many).
        timeout: Stop starting trials after this many seconds.
        metric: The metric to optimise (a list for multi-objective): logged by a notebook,
            or picked from a dict (or the run's logged metrics) a function returns.
        direction: ``"maximize"``/``"minimize"``, or a list matching ``metric``.
        storage: None (a journal file under ``.nbops/sweeps/``), a ``.journal`` path,
            ``sqlite:///...``, ``postgresql://...`` (several machines), or ``"memory"``.
        study_name: The sweep's name (also the group of its trial runs); resumes if it exists.
        sampler, pruner: Optuna sampler and pruner (default TPE and median pruning).
        jobs: Worker processes on this machine (not threads); 0 only creates the sweep, for
            workers started elsewhere with ``nbops sweep worker``.
        panel: True: return at once with a live panel (in a notebook), the trials run in the
            background (``wait()`` blocks, **Stop** or ``stop()`` stops). None: block, with a
            live panel when running in Jupyter. False: block, no panel.
        project, wandb: Project of the runs and W&B mirror mode.
        kernel_name: Kernel for notebook trials (default: the notebook's).
        trial_timeout: Seconds one notebook trial may run before its kernel is stopped.
        heartbeat_interval, grace_period: RDB storages: a trial whose worker stops beating for
            ``grace_period`` s (default 2x the interval) is failed and retried.
    """
    optuna = require("optuna", feature="nbops.sweep")

    metrics = _as_tuple(metric)
    directions = _as_tuple(direction)
    for d in directions:
        if d not in DIRECTIONS:
            raise SweepError(f"direction must be 'maximize' or 'minimize', not {d!r}")
    if len(metrics) > 1 and len(directions) == 1:
        directions = directions * len(metrics)
    if metrics and len(metrics) != len(directions):
        raise SweepError(
            f"{len(metrics)} metrics but {len(directions)} directions: give one direction each"
        )
    if n_trials is None and timeout is None:
        raise SweepError("give n_trials=... or timeout=... (or both) to bound the sweep")
    if n_trials is not None and (isinstance(n_trials, bool) or n_trials < 1):
        raise SweepError(f"n_trials must be a positive integer, not {n_trials!r}")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 0:
        raise SweepError(f"jobs must be a non-negative integer, not {jobs!r}")
    kind, target, payload, parsed, fn = _objective_spec(objective, space, metrics)
    if study_name is None:
        from nbops.tracking import new_run_id

        stem = Path(target).stem if kind == "notebook" and target else None
        stem = stem or str(getattr(fn, "__name__", "sweep"))
        study_name = f"{''.join(c if c.isalnum() else '-' for c in stem).strip('-')}-{new_run_id()}"
    check_name(study_name, "sweep name")
    url = resolve_url(storage, study_name)
    background = bool(panel)
    processes = jobs > 1 or (background and (target is not None or kind == "notebook"))
    if url == MEMORY and (processes or kind == "notebook"):
        raise SweepError(
            "an in-memory storage cannot be shared with worker processes or notebook kernels; "
            "use the default (storage=None) or a file/database storage"
        )
    heartbeat = heartbeat_interval if "://" in url else None
    store = (
        storage
        if storage is not None and not isinstance(storage, (str, os.PathLike))
        else open_storage(url, heartbeat_interval=heartbeat, grace_period=grace_period)
    )
    spec = SweepSpec(
        study_name=study_name,
        storage=url,
        kind=kind,
        target=target,
        payload=payload,
        space=parsed,
        metrics=metrics,
        directions=directions,
        project=project,
        wandb=None if wandb is None else ("disabled" if wandb is False else str(wandb)),
        kernel_name=kernel_name,
        trial_timeout=trial_timeout,
        heartbeat_interval=heartbeat,
        grace_period=grace_period if heartbeat else None,
        sampler=pickle.dumps(sampler) if sampler is not None else None,
        pruner=pickle.dumps(pruner) if pruner is not None else None,
        budgeted=n_trials is not None,
        deadline=time.time() + timeout if timeout is not None else None,
    )
    study = _create_study(spec, store, sampler, pruner, n_trials)
    summary = _summary_run(spec, n_trials, jobs) if jobs else None
    result = Sweep(spec, study, summary_run=summary)
    show = panel is not False and _in_jupyter()
    if show:
        from nbops.sweeps._panel import SweepPanel

        SweepPanel(result).show()
    if jobs == 0:  # only create the sweep: workers join with `nbops sweep worker`
        result._done.set()
    elif processes:
        result._start_processes(jobs)
        if not background:
            _wait_interruptibly(result)
    elif background:
        result._start_thread()
    else:
        result._run_inline()
    logger.debug("sweep %s on %s", study_name, redact_url(url))
    _ = optuna
    return result


def _create_study(
    spec: SweepSpec, storage: Any, sampler: Any, pruner: Any, n_trials: int | None
) -> Any:
    import optuna

    quiet = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no INFO box above the panel
    try:
        study = optuna.create_study(
            storage=storage,
            study_name=spec.study_name,
            directions=list(spec.directions),  # type: ignore[arg-type]
            sampler=sampler,
            pruner=pruner,
            load_if_exists=True,
        )
    finally:
        optuna.logging.set_verbosity(quiet)
    if [d.name.lower() for d in study.directions] != list(spec.directions):
        raise SweepError(
            f"sweep {spec.study_name!r} exists with directions "
            f"{[d.name.lower() for d in study.directions]}; pick another study_name"
        )
    previous = study.user_attrs.get(SPEC_ATTR)
    if previous and (previous.get("kind"), previous.get("target")) != (spec.kind, spec.target):
        raise SweepError(
            f"sweep {spec.study_name!r} exists with another objective "
            f"({previous.get('target') or previous.get('kind')}); pick another study_name"
        )
    study.set_user_attr(SPEC_ATTR, spec.to_attrs())
    study.set_user_attr(STOP_ATTR, None)
    if n_trials:
        budget = study.user_attrs.get(BUDGET_ATTR) or 0
        study.set_user_attr(BUDGET_ATTR, int(budget) + n_trials)
        for _ in range(n_trials):
            study.enqueue_trial({}, user_attrs={"nbops.slot": True})
    return study


def _summary_run(spec: SweepSpec, n_trials: int | None, jobs: int) -> Any:
    from nbops.tracking import init, suspended

    config = {
        "objective": spec.target or spec.kind,
        "space": spec.space,
        "metric": list(spec.metrics),
        "direction": list(spec.directions),
        "n_trials": n_trials,
        "jobs": jobs,
        "storage": redact_url(spec.storage),
    }
    with suspended():
        return init(
            project=spec.project,
            name=spec.study_name,
            config=config,
            group=spec.study_name,
            job_type="sweep",
            wandb=spec.wandb,
            capture=False,
        )


def _wait_interruptibly(result: Sweep) -> None:
    try:
        while not result.done:
            result.wait(0.2)
    except KeyboardInterrupt:
        result.stop()
        result.wait()
        raise
    result.wait()


def _in_jupyter() -> bool:
    return in_jupyter() and available("ipywidgets")


def load_sweep(name: str, storage: Any = None) -> Sweep:
    """Open an existing sweep (to inspect it, show its panel, or stop its workers)."""
    optuna = require("optuna", feature="nbops.load_sweep")

    check_name(name, "sweep name")
    url = resolve_url(storage, name)
    if url.startswith("journal:") and not Path(url[len("journal:") :]).exists():
        raise SweepError(
            f"no sweep {name!r} under {Path(url[len('journal:') :]).parent}; give storage=... "
            "for sweeps kept elsewhere"
        )
    store = open_storage(url)
    try:
        study = optuna.load_study(study_name=name, storage=store)
    except KeyError:
        raise SweepError(f"no sweep {name!r} in {redact_url(url)}") from None
    attrs = study.user_attrs.get(SPEC_ATTR) or {}
    spec = SweepSpec(
        study_name=name,
        storage=url,
        kind=attrs.get("kind", "trial"),
        target=attrs.get("target"),
        space=attrs.get("space"),
        metrics=tuple(attrs.get("metrics") or ()),
        directions=tuple(d.name.lower() for d in study.directions),
    )
    loaded = Sweep(spec, study)
    loaded._done.set()
    if study.user_attrs.get(STOP_ATTR) is not None:  # stopped by whoever ran it
        loaded._stop.set()
    return loaded
