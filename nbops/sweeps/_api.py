"""``nbops.sweep`` and ``nbops.load_sweep``."""

from __future__ import annotations

import logging
import math
import os
import pickle
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbops.deps import available, require
from nbops.shell import in_jupyter
from nbops.sweeps import _optuna
from nbops.sweeps._claim import set_budget
from nbops.sweeps._config import Objective, SweepConfig
from nbops.sweeps._errors import SpaceError, SweepError
from nbops.sweeps._samplers import make_pruner, make_sampler
from nbops.sweeps._space import example_values, grid_of, is_grid, load_space
from nbops.sweeps._spec import SPEC_ATTR, SweepSpec, callable_target, dumps_callable, import_target
from nbops.sweeps._storage import (
    MEMORY,
    STOP_ATTR,
    open_storage,
    redact_url,
    resolve_url,
    sweep_name,
)
from nbops.sweeps._sweep import Sweep

if TYPE_CHECKING:
    from nbops.cluster import Executor
    from nbops.sweeps._dask import DaskTasks

logger = logging.getLogger(__name__)


def _objective_spec(
    config: SweepConfig, space: dict[str, Any] | None, processes: bool
) -> tuple[str, str | None, bytes | None, Callable[..., Any] | None]:
    """Return kind, target, payload (only for worker processes) and the callable."""
    objective = config.objective
    if isinstance(objective, (str, os.PathLike)):
        text = os.fspath(objective)
        if text.endswith(".ipynb") or Path(text).is_file():
            return ("notebook", _notebook_target(text, space, config.metrics), None, None)
        objective = import_target(text)
        target: str | None = text
    else:
        target = callable_target(objective) if callable(objective) else None
    if not callable(objective):
        raise SweepError(
            f"objective must be a callable, a notebook path or module:function, not {objective!r}"
        )
    payload = dumps_callable(objective) if processes and not target else None
    return ("params" if space else "trial", target, payload, objective)


def _notebook_target(path: str, space: dict[str, Any] | None, metrics: tuple[str, ...]) -> str:
    from nbops.execute import check_parameters

    if space is None:
        raise SpaceError(f"a notebook sweep needs space=...: the parameters of {path} to sample")
    if not metrics:
        raise SweepError(f"a notebook sweep needs metric=...: the name {path} logs with nbops.log")
    check_parameters(path, example_values(space))  # space keys must be declared (and typed)
    return str(Path(path).resolve())


def _search(config: SweepConfig, space: dict[str, Any] | None) -> tuple[Any, Any, int, int | None]:
    """Return the sampler, the pruner, the seed and the grid size (None: not a grid)."""
    import optuna

    sampler = config.sampler
    grid = grid_of(space) if space is not None and is_grid(space) else None
    if isinstance(sampler, str) and sampler.strip().lower() == "grid":
        if space is None:
            raise SpaceError("a grid search needs space=...: the values of each parameter")
        ranges = [n for n, p in space.items() if p["type"] in ("float", "int")]
        if ranges:
            raise SpaceError(
                f"a grid search enumerates values, so {', '.join(ranges)} must be listed: "
                "give it as {type: grid, values: [...]}"
            )
        grid, sampler = grid_of(space), None
    if isinstance(sampler, str):
        sampler = make_sampler(sampler, config.seed, config.sampler_options)
    elif sampler is None and grid is not None:
        sampler = optuna.samplers.GridSampler(grid, seed=config.seed or 0)
    elif config.sampler_options:
        raise SweepError("sampler_options go with a sampler given by name, e.g. sampler='tpe'")
    pruner = config.pruner
    if isinstance(pruner, str):
        pruner = make_pruner(pruner, config.pruner_options)
    elif config.pruner_options:
        raise SweepError("pruner_options go with a pruner given by name, e.g. pruner='hyperband'")
    if sampler is not None and not isinstance(sampler, optuna.samplers.BaseSampler):
        raise SweepError(f"sampler must be an Optuna sampler or a name, not {sampler!r}")
    if pruner is not None and not isinstance(pruner, optuna.pruners.BasePruner):
        raise SweepError(f"pruner must be an Optuna pruner or a name, not {pruner!r}")
    seed = config.seed
    if seed is None:
        seed = (
            _optuna.seed_of(sampler)
            if sampler is not None
            else _optuna.derive_seed(time.time_ns(), os.getpid())
        )
    grid = _optuna.grid_of(sampler) if sampler is not None else None
    size = math.prod(len(v) for v in grid.values()) if grid is not None else None
    return sampler, pruner, seed, size


def sweep(
    objective: Objective | None = None,
    space: Mapping[str, Any] | str | os.PathLike[str] | None = None,
    *,
    config: SweepConfig | None = None,
    panel: bool | None = None,
    **options: Any,
) -> Sweep:
    """Run an Optuna sweep of a function or a notebook; every trial is a tracked run.

    ``nbops.sweep(train, space, n_trials=20, metric="acc", direction="maximize")``. The
    options are the fields of :class:`~nbops.sweeps.SweepConfig` (objective, space, metric,
    direction, n_trials, timeout, sampler, seed, pruner, storage, study_name, jobs, executor,
    shared_disk, project, wandb, kernel_name, trial_timeout, heartbeat_interval,
    grace_period); ``executor="dask://HOST:PORT"`` runs the trials as tasks on a Dask
    cluster over a shared storage (PostgreSQL). ``config`` gives
    them as one object (a sweep file read by :func:`~nbops.sweeps.load_sweep_file`), the
    keyword options override it.

    Args:
        objective: ``f(trial)``, ``f(params)`` with ``space``, a notebook or module:function.
        space: The search space (a dict or a YAML file), see :func:`nbops.sweeps.load_space`.
        config: A whole sweep at once.
        panel: True: return at once with a live panel (in a notebook), the trials run in the
            background (``wait()`` blocks, **Stop** or ``stop()`` stops). None: block, with a
            live panel when running in Jupyter (its Stop works while the cell runs). False:
            block, no panel.
        **options: Fields of :class:`~nbops.sweeps.SweepConfig`.

    Raises:
        SweepError: The sweep is ill-defined (checked before any study or trial exists).
        MissingDependencyError: Optuna is not installed (``pip install "nbops[sweeps]"``).
    """

    require("optuna", feature="nbops.sweep")
    given = {k: v for k, v in (("objective", objective), ("space", space)) if v is not None}
    cfg = SweepConfig.build(config, **given, **options)
    cfg.validate(exhaustive=_exhaustive(cfg))
    return _start(cfg, panel)


def _exhaustive(cfg: SweepConfig) -> bool:
    """True when the search ends by itself: a grid (by space, name or GridSampler)."""
    if isinstance(cfg.sampler, str):
        return cfg.sampler.strip().lower() in ("grid", "bruteforce", "brute-force")
    if cfg.sampler is not None:
        return type(cfg.sampler).__name__ in ("GridSampler", "BruteForceSampler")
    return cfg.space is not None and is_grid(load_space(cfg.space))


def _start(cfg: SweepConfig, panel: bool | None) -> Sweep:
    from nbops.cluster import parse_executor

    executor = parse_executor(cfg.executor)
    if executor.is_local or cfg.jobs == 0:
        return _launch(cfg, panel, executor, None)
    from nbops.sweeps._dask import DaskTasks, check_storage

    check_storage(cfg.storage, cfg.shared_disk)  # before any study or trial exists
    tasks = DaskTasks(executor, cfg.jobs)
    try:
        return _launch(cfg, panel, executor, tasks)
    except BaseException:
        tasks.close()
        raise


def _launch(
    cfg: SweepConfig, panel: bool | None, executor: Executor, tasks: DaskTasks | None
) -> Sweep:
    jobs = 1 if cfg.jobs is None else cfg.jobs
    parsed = load_space(cfg.space) if cfg.space is not None else None
    background = bool(panel)
    url_hint = cfg.storage
    notebook = isinstance(cfg.objective, (str, os.PathLike)) and (
        os.fspath(cfg.objective).endswith(".ipynb") or Path(os.fspath(cfg.objective)).is_file()
    )
    processes = (
        not executor.is_local
        or jobs > 1
        or (background and (notebook or isinstance(cfg.objective, str)))
    )
    kind, target, payload, fn = _objective_spec(cfg, parsed, processes)
    sampler, pruner, seed, grid_size = _search(cfg, parsed)
    study_name = cfg.study_name
    if study_name is None:
        from nbops.tracking import new_run_id

        stem = Path(target).stem if kind == "notebook" and target else None
        stem = stem or str(getattr(fn, "__name__", "sweep"))
        study_name = f"{''.join(c if c.isalnum() else '-' for c in stem).strip('-')}-{new_run_id()}"
    sweep_name(study_name)
    url = resolve_url(url_hint, study_name)
    if url == MEMORY and (processes or kind == "notebook"):
        raise SweepError(
            "an in-memory storage cannot be shared with worker processes or notebook kernels; "
            "use the default (storage=None) or a file/database storage"
        )
    heartbeat = cfg.heartbeat_interval if "://" in url else None
    store = (
        url_hint
        if url_hint is not None and not isinstance(url_hint, (str, os.PathLike))
        else open_storage(url, heartbeat_interval=heartbeat, grace_period=cfg.grace_period)
    )
    from nbops.mirror import resolve_mode

    spec = SweepSpec(
        study_name=study_name,
        storage=url,
        kind=kind,
        target=target,
        payload=payload,
        space=parsed,
        metrics=cfg.metrics,
        directions=cfg.directions,
        project=cfg.project,
        wandb=resolve_mode(
            "disabled"
            if cfg.wandb is False
            else None
            if cfg.wandb in (None, True)
            else str(cfg.wandb)
        ),
        kernel_name=cfg.kernel_name,
        trial_timeout=cfg.trial_timeout,
        heartbeat_interval=heartbeat,
        grace_period=cfg.grace_period if heartbeat else None,
        sampler=pickle.dumps(sampler) if sampler is not None else None,
        pruner=pickle.dumps(pruner) if pruner is not None else None,
        deadline=time.time() + cfg.timeout if cfg.timeout is not None else None,
        seed=seed,
        grid_size=grid_size,
    )
    study = _create_study(spec, store, sampler, pruner, cfg.n_trials)
    summary = (
        _summary_run(spec, cfg.n_trials, jobs if executor.is_local else cfg.jobs, executor.url)
        if jobs
        else None
    )
    result = Sweep(spec, study, summary_run=summary, objective=fn)
    shown = None
    if panel is not False and _in_jupyter():
        from nbops.sweeps._panel import SweepPanel

        shown = SweepPanel(result).show()
    if jobs == 0:  # only create the sweep: workers join with `nbops sweep worker`
        result._done.set()
    elif tasks is not None:
        result._start_dask(tasks)
        if not background:
            _wait_interruptibly(result, shown)
    elif processes:
        result._start_processes(jobs)
        if not background:
            _wait_interruptibly(result, shown)
    elif background:
        result._start_thread()
    elif shown is not None:
        result._start_thread()  # the cell waits below, processing the panel's Stop clicks
        _wait_interruptibly(result, shown)
    else:
        result._run_inline()
    logger.debug("sweep %s on %s", study_name, redact_url(url))
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
    set_budget(study, spec.storage, n_trials)
    return study


def _summary_run(
    spec: SweepSpec, n_trials: int | None, jobs: int | None, executor: str = "local"
) -> Any:
    from nbops.tracking import init, suspended

    config = {
        "objective": spec.target or spec.kind,
        "space": spec.space,
        "metric": list(spec.metrics),
        "direction": list(spec.directions),
        "n_trials": n_trials,
        "jobs": jobs,
        "executor": executor,
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


def _wandb_mode(value: str | bool | None) -> str | None:
    if value is False:
        return "disabled"
    return None if value is None or value is True else str(value)


def _wait_interruptibly(result: Sweep, panel: Any = None) -> None:
    """Block until the sweep ends; Ctrl-C stops it. With a panel shown, the widget messages
    (its Stop button) are processed while the cell waits."""
    try:
        if panel is not None:
            panel.wait_processing_ui(result)
        while not result.done:
            result.wait(0.2)
    except KeyboardInterrupt:
        result.stop(now=True)
        result.wait()
        raise
    finally:
        if panel is not None:
            panel.refresh(force=True)  # the cell ends showing the final state
    result.wait()


def _in_jupyter() -> bool:
    return in_jupyter() and available("ipywidgets")
