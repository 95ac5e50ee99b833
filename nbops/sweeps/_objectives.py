"""Running one trial: a function of an Optuna trial, a function of a dict, or a notebook."""

from __future__ import annotations

import logging
import math
import os
import pickle
import shutil
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from nbops.fileio import write_atomic
from nbops.sweeps import _optuna
from nbops.sweeps._errors import MetricMissing, SweepError, TrialFailed
from nbops.sweeps._report import HANDOFF_ENV, TrialReporter, reporting_to
from nbops.sweeps._space import nest, suggest
from nbops.sweeps._spec import SweepSpec, load_callable
from nbops.sweeps._storage import sweeps_dir

if TYPE_CHECKING:
    from nbops.store import RunStore, StoreAddress
    from nbops.tracking import Run

logger = logging.getLogger(__name__)


class TrialScope:
    """The tracked run of one trial (group = sweep name, job type ``trial``).

    With the offline W&B mirror, no W&B run starts on the trial's path: the run is marked as
    owing a copy (:func:`nbops.mirror.deferred_state`) and :attr:`copy_later` tells the worker
    to write the copy from the store once the run has finished. ``store``: where the run is
    recorded (default: this process's store); ``attrs``: the worker's trial attributes (a
    Dask task's worker), kept in the run's ``sweep`` metadata without their ``nbops.`` prefix.
    """

    def __init__(
        self,
        spec: SweepSpec,
        trial: Any,
        store: RunStore | None = None,
        attrs: Mapping[str, Any] | None = None,
    ) -> None:
        self.spec = spec
        self.trial = trial
        self.store = store
        self.attrs = {k.removeprefix("nbops."): v for k, v in (attrs or {}).items()}
        self.run: Run | None = None
        self.copy_later = spec.wandb == "offline"

    def open_run(
        self,
        params: Mapping[str, Any],
        *,
        run_id: str | None = None,
        notebook: str | None = None,
    ) -> Run:
        from nbops.mirror import METADATA_KEY, deferred_state
        from nbops.tracking import init

        if run_id is None:  # the id the trial was claimed with (one storage write fewer)
            run_id = self.trial.user_attrs.get("nbops.run_id")
        self.run = init(
            project=self.spec.project,
            name=f"{self.spec.study_name}-{self.trial.number}",
            config=dict(params),
            group=self.spec.study_name,
            job_type="trial",
            wandb="disabled" if self.copy_later else self.spec.wandb,
            capture=False,
            run_id=run_id,
            store=self.store,
        )
        sweep = {
            "study": self.spec.study_name,
            "trial": self.trial.number,
            "notebook": notebook,
            **self.attrs,
        }
        # stored with the run's first flush (within 0.2 s), not one more write on the trial path
        self.run.set_metadata("sweep", sweep, deferred=True)
        if self.copy_later:
            self.run.set_metadata(METADATA_KEY, deferred_state().to_dict(), deferred=True)
        return self.run


class Objective(Protocol):
    def start(self, trial: Any, scope: TrialScope) -> None:
        """Prepare the trial (sample, open its run) before it may be interrupted."""

    def __call__(self, trial: Any, scope: TrialScope) -> list[float]: ...

    def close(self) -> None: ...


def values_from(result: Any, spec: SweepSpec, run: Run | None, where: str) -> list[float]:
    """Turn what an objective returned (or logged) into one value per direction."""
    wanted = len(spec.directions)
    if isinstance(result, Mapping):
        if not spec.metrics:
            raise TrialFailed(f"{where} returned a dict; name the metric with metric=...")
        missing = [m for m in spec.metrics if m not in result]
        if missing:
            raise MetricMissing(
                f"{where} returned no {', '.join(map(repr, missing))} "
                f"(it returned: {', '.join(map(str, result)) or 'nothing'})"
            )
        raw: Sequence[Any] = [result[m] for m in spec.metrics]
    elif result is None:
        if not spec.metrics or run is None:
            raise TrialFailed(f"{where} returned None: return the objective value")
        summary = dict(run.summary)
        missing = [m for m in spec.metrics if m not in summary]
        if missing:
            raise MetricMissing(
                f"{where} returned None and never logged metric "
                f"{', '.join(map(repr, missing))} (it logged: {', '.join(summary) or 'nothing'})"
            )
        raw = [summary[m] for m in spec.metrics]
    elif isinstance(result, (list, tuple)):
        raw = list(result)
    else:
        raw = [result]
    if len(raw) != wanted:
        raise TrialFailed(f"{where} gave {len(raw)} value(s) for {wanted} direction(s)")
    values: list[float] = []
    for value in raw:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise TrialFailed(f"{where} gave {value!r}, which is not a number") from None
        if not math.isfinite(number):
            raise TrialFailed(f"{where} gave {number}, which is not finite")
        values.append(number)
    return values


class FunctionObjective:
    """A Python callable: ``f(trial)`` (define-by-run) or ``f(params)`` with a space."""

    def __init__(self, spec: SweepSpec, fn: Callable[..., Any] | None = None) -> None:
        self.spec = spec
        self.fn = fn if fn is not None else load_callable(spec)
        self.where = f"objective {getattr(self.fn, '__qualname__', repr(self.fn))}"

    def start(self, trial: Any, scope: TrialScope) -> None:
        """Sample the space and open the trial's run, outside the interruptible part, so an
        interrupt never lands inside ``nbops.init`` (a run left half-open)."""
        self._params: dict[str, Any] | None = None
        if self.spec.kind == "params":
            assert self.spec.space is not None
            self._params = suggest(trial, dict(self.spec.space))
        scope.open_run(self._params or {})

    def __call__(self, trial: Any, scope: TrialScope) -> list[float]:
        run = scope.run
        assert run is not None, "start() opens the run"
        if self._params is not None:
            params = self._params
            given = nest(params) if any("." in k for k in params) else dict(params)
            with reporting_to(TrialReporter(trial)):
                result = self.fn(given)
        else:
            with reporting_to(TrialReporter(trial)):
                result = self.fn(trial)
            if trial.params:
                run.log_params(trial.params)
        return values_from(result, self.spec, run, self.where)

    def close(self) -> None:
        return None


@dataclass(frozen=True)
class _Kernel:
    manager: Any
    run_id: str
    handoff: Path


class NotebookObjective:
    """Execute a notebook per trial; the next trial's kernel starts while this one runs.
    ``store``: the store the kernels record into (default: the one their environment names)."""

    def __init__(self, spec: SweepSpec, store: StoreAddress | None = None) -> None:
        from nbops.execute import kernel_name_of

        if not spec.target or not spec.metrics:
            raise SweepError("a notebook sweep needs the notebook path and metric=...")
        self.spec = spec
        self.store = store
        self.path = spec.target
        self.kernel_name = spec.kernel_name or kernel_name_of(self.path)
        self.out_dir = sweeps_dir() / spec.study_name
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="nbops-kernel-start")
        self._spare: Future[_Kernel] | None = None

    def start(self, trial: Any, scope: TrialScope) -> None:
        """Nothing before the interruptible part: a kernel's run opens with its execution."""

    def _start(self) -> Future[_Kernel]:
        from nbops.config import store_path
        from nbops.execute import start_kernel
        from nbops.tracking import RUN_ID_ENV, new_run_id

        run_id = new_run_id()
        handoff = self.out_dir / f".handoff-{run_id}.pkl"
        env = {
            RUN_ID_ENV: run_id,
            "NBOPS_WANDB": "disabled",  # the owner mirrors the trial's run
            "NBOPS_HOME": str(store_path()),
            HANDOFF_ENV: str(handoff),
            **(self.store.environ() if self.store is not None else {}),
        }

        def start() -> _Kernel:
            return _Kernel(start_kernel(self.kernel_name, env=env), run_id, handoff)

        return self._pool.submit(start)

    def __call__(self, trial: Any, scope: TrialScope) -> list[float]:
        assert self.spec.space is not None
        params = suggest(trial, dict(self.spec.space))
        pending, self._spare = self._spare or self._start(), None
        handed: list[bool] = []  # set once execute_notebook owns (and will stop) the kernel
        try:
            kernel = pending.result()
            self._spare = self._start()  # overlaps with this trial; a fresh process per trial
            self._execute(trial, scope, params, kernel, handed)
        finally:  # whatever fails (or a Stop lands) before execution starts, the kernel stops
            if not handed:
                _discard(pending)
        return self._values(scope)

    def _execute(
        self,
        trial: Any,
        scope: TrialScope,
        params: dict[str, Any],
        kernel: _Kernel,
        handed: list[bool],
    ) -> None:
        import optuna

        from nbops.execute import CellError, ExecutionError, execute_notebook

        try:
            write_atomic(
                kernel.handoff,
                pickle.dumps(
                    {
                        "storage": self.spec.storage,
                        "study": self.spec.study_name,
                        "trial_id": _optuna.trial_id(trial),
                        "pruner": self.spec.pruner,
                    }
                ),
            )
            run = scope.open_run(params, run_id=kernel.run_id, notebook=self.path)
            output = self.out_dir / f"trial-{trial.number:04d}.ipynb"
            trial.set_user_attr("nbops.output", str(output))
            handed.append(True)
            try:
                execute_notebook(
                    self.path,
                    output,
                    params,
                    kernel_name=self.kernel_name,
                    timeout=self.spec.trial_timeout,
                    kernel=kernel.manager,
                    wait_for_shutdown=False,
                    save_each_cell=False,
                )
            finally:
                run.sync_from_store()
        except KeyboardInterrupt:  # Stop now, Ctrl-C: the kernel and what it started go too
            stop_kernel(kernel.manager)
            raise
        except CellError as exc:
            if exc.ename == "TrialPruned":
                raise optuna.TrialPruned(exc.evalue) from None
            raise TrialFailed(f"{self.path}: {exc}") from None
        except ExecutionError as exc:
            raise TrialFailed(f"{self.path}: {exc}") from None
        finally:
            kernel.handoff.unlink(missing_ok=True)

    def _values(self, scope: TrialScope) -> list[float]:
        run = scope.run
        assert run is not None and self.spec.target is not None
        summary = dict(run.summary)
        missing = [m for m in self.spec.metrics if m not in summary]
        if missing:
            logged = ", ".join(k for k in summary if k != "intermediate_value") or "nothing"
            raise MetricMissing(
                f"notebook {self.path} never logged metric {', '.join(map(repr, missing))} "
                f"with nbops.log (it logged: {logged})"
            )
        return values_from([summary[m] for m in self.spec.metrics], self.spec, run, self.path)

    def close(self) -> None:
        spare, self._spare = self._spare, None
        if spare is not None:
            _discard(spare)
        self._pool.shutdown(wait=False)


def _discard(pending: Future[_Kernel]) -> None:
    """Stop the kernel a future started (now, or as soon as it has started)."""

    def stop(done: Future[_Kernel]) -> None:
        if not done.cancelled() and done.exception() is None:
            stop_kernel(done.result().manager)

    pending.add_done_callback(stop)


def stop_kernel(manager: Any) -> None:
    """Stop a kernel nobody executes on now (and its child processes); never raises."""
    from nbops.execute import kill_kernel

    kill_kernel(manager)  # the kernel and the processes it started
    try:
        from jupyter_core.utils import run_sync

        run_sync(manager.shutdown_kernel)(now=True)  # reaps it, removes its connection file
    except Exception:
        logger.debug("kernel clean-up failed", exc_info=True)
    folder = os.path.dirname(str(getattr(manager, "ip", "")))
    if os.path.basename(folder).startswith("nbops-kernel-"):
        shutil.rmtree(folder, ignore_errors=True)


def make_objective(
    spec: SweepSpec, fn: Callable[..., Any] | None = None, store: StoreAddress | None = None
) -> Objective:
    if spec.kind == "notebook":
        return NotebookObjective(spec, store)
    return FunctionObjective(spec, fn)


def environment_for_workers() -> dict[str, str]:
    """Environment of worker processes: this one, minus a run id meant for this process."""
    env = dict(os.environ)
    env.pop("NBOPS_RUN_ID", None)
    env.pop(HANDOFF_ENV, None)
    return env
