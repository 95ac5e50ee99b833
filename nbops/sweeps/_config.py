"""``SweepConfig``: everything a sweep is asked to do, from Python, the CLI or a sweep file.

``nbops.sweep(objective, space, **options)`` builds one from its keyword options, a sweep file
parses into one (:func:`nbops.sweeps.load_sweep_file`), and ``nbops sweep run`` builds one from
its flags. It is validated as a whole before any study exists; the part workers need is then
stored with the study (:class:`~nbops.sweeps.SweepSpec`), so workers joining from elsewhere
run the same sweep.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nbops.sweeps._errors import SweepError

DIRECTIONS = ("maximize", "minimize")
Objective = Callable[..., Any] | str | os.PathLike[str]


def _as_tuple(value: str | Sequence[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)


@dataclass(frozen=True)
class SweepConfig:
    """A whole sweep: what to optimise, how to search, the budget, where, and tracking.

    Attributes:
        objective: ``f(trial)`` (define-by-run), ``f(params)`` with ``space``, a notebook path
            (each trial executes it with the sampled values injected into its ``parameters``
            cell; the objective is ``metric`` as it logged with ``nbops.log``), or
            ``"module:function"``.
        space: ``{name: {type: float|int|categorical|grid|constant, ...}}`` or a YAML file of it
            (see :func:`nbops.sweeps.load_space`). Needed for dict objectives and notebooks.
        metric: The metric to optimise (a list for multi-objective): logged by a notebook,
            or picked from a dict (or the run's logged metrics) a function returns.
        direction: ``"maximize"``/``"minimize"`` (required: a loss must not be maximised by
            default), or a list matching ``metric``.
        n_trials: Trials to run, across all workers (exactly this many; a resumed sweep runs
            exactly this many more).
        timeout: Stop starting trials after this many seconds.
        sampler: An Optuna sampler, or a name (``tpe``, ``random``, ``grid``, ``cmaes``, ``gp``,
            ``qmc``, ``nsgaii``, ``bruteforce``; W&B's ``bayes`` is ``tpe``).
        sampler_options: Options of a sampler given by name (``{"n_startup_trials": 5}``).
        seed: Seed of the sampler; each trial's draw is seeded from it and the trial's slot, so
            ``jobs=N`` workers draw distinct parameters and a seeded sweep is reproducible.
        pruner: An Optuna pruner or a name (``median``, ``hyperband``, ``none``, ...).
        pruner_options: Options of a pruner given by name (``{"min_resource": 2}``).
        storage: None (a journal file under ``.nbops/sweeps/``), a ``.journal`` path,
            ``sqlite:///...``, ``postgresql://...`` (several machines), or ``"memory"``.
        study_name: The sweep's name (also the group of its trial runs); resumes if it exists.
        jobs: Worker processes on this machine (default 1: the objective runs in this process
            as it is); 0 only creates the sweep, for ``nbops sweep worker`` elsewhere. On a
            Dask ``executor``: sweep workers run as Dask tasks (default one per Dask worker).
        executor: ``"local"`` (default) or ``"dask://HOST:PORT"``: trials run as Dask tasks on
            that cluster, over a ``storage`` every worker reaches (PostgreSQL, or a journal
            with ``shared_disk``).
        shared_disk: The Dask workers see this machine's files at the same paths, so a
            journal storage (the default one included) is shared with them.
        project, wandb: Project of the runs and W&B mirror mode.
        kernel_name: Kernel for notebook trials (default: the notebook's).
        trial_timeout: Seconds one notebook trial may run before its kernel is stopped.
        heartbeat_interval, grace_period: RDB storages: a trial whose worker stops beating for
            ``grace_period`` s (default 2x the interval) is failed and retried.
    """

    objective: Objective | None = None
    space: Mapping[str, Any] | str | os.PathLike[str] | None = None
    metric: str | Sequence[str] | None = None
    direction: str | Sequence[str] | None = None
    n_trials: int | None = None
    timeout: float | None = None
    sampler: Any = None
    sampler_options: Mapping[str, Any] = field(default_factory=dict)
    seed: int | None = None
    pruner: Any = None
    pruner_options: Mapping[str, Any] = field(default_factory=dict)
    storage: Any = None
    study_name: str | None = None
    jobs: int | None = None
    executor: str | None = None
    shared_disk: bool = False
    project: str | None = None
    wandb: str | bool | None = None
    kernel_name: str | None = None
    trial_timeout: float | None = None
    heartbeat_interval: int = 10
    grace_period: int | None = None

    @classmethod
    def build(cls, base: SweepConfig | None = None, **options: Any) -> SweepConfig:
        """``base`` with ``options`` on top; unknown option names are refused by name."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - names)
        if unknown:
            raise SweepError(
                f"nbops.sweep has no option {', '.join(map(repr, unknown))}; its options: "
                + ", ".join(sorted(names))
            )
        return dataclasses.replace(base or cls(), **options)

    @property
    def metrics(self) -> tuple[str, ...]:
        return _as_tuple(self.metric)

    @property
    def directions(self) -> tuple[str, ...]:
        directions = _as_tuple(self.direction)
        if len(self.metrics) > 1 and len(directions) == 1:
            directions = directions * len(self.metrics)
        return directions

    def validate(self, exhaustive: bool = False) -> None:
        """Refuse what cannot run, before any study or trial exists.

        ``exhaustive``: the search ends by itself (a grid), so no budget is needed.
        """
        if self.objective is None:
            raise SweepError("give the objective: a function, a notebook path or module:function")
        if self.study_name is not None:
            from nbops.sweeps._storage import sweep_name

            sweep_name(self.study_name)
        if self.n_trials is None and self.timeout is None and not exhaustive:
            raise SweepError("give n_trials=... or timeout=... (or both) to bound the sweep")
        directions = _as_tuple(self.direction)
        if not directions:
            raise SweepError(
                "give direction='maximize' or direction='minimize' (one per metric): nbops does "
                "not guess whether higher is better"
            )
        for d in directions:
            if d not in DIRECTIONS:
                raise SweepError(f"direction must be 'maximize' or 'minimize', not {d!r}")
        if self.metrics and len(self.metrics) != len(self.directions):
            raise SweepError(
                f"{len(self.metrics)} metrics but {len(directions)} directions: give one each"
            )
        n = self.n_trials
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
            raise SweepError(f"n_trials must be a positive whole number, not {n!r}")
        t = self.timeout
        if t is not None and (isinstance(t, bool) or not isinstance(t, (int, float)) or t <= 0):
            raise SweepError(f"timeout must be a positive number of seconds, not {t!r}")
        j = self.jobs
        if j is not None and (isinstance(j, bool) or not isinstance(j, int) or j < 0):
            raise SweepError(f"jobs must be a non-negative integer, not {j!r}")
        if not isinstance(self.shared_disk, bool):
            raise SweepError(f"shared_disk must be true or false, not {self.shared_disk!r}")
        if self.executor is not None:
            from nbops.cluster import parse_executor

            parse_executor(self.executor)  # InvalidValueError names the forms it takes
        s = self.seed
        if s is not None and (isinstance(s, bool) or not isinstance(s, int)):
            raise SweepError(f"seed must be an integer, not {s!r}")
