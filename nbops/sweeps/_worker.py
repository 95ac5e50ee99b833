"""The worker loop: claim a trial, run it with heartbeats, tell the study; stop cleanly.

Every worker (a process of ``jobs=N``, ``nbops sweep worker`` on another machine, or the
calling thread for ``jobs=1``) runs :func:`run_worker`. Each trial takes a budget slot under
a lock held in the storage (:mod:`nbops.sweeps._claim`), so a budget of N runs exactly N
trials however many workers join, and no placeholder trial is ever stored. Interrupts
(Ctrl-C, SIGTERM, Stop, the death of the coordinator) are only delivered while an objective
runs; the trial is then told FAIL, so no trial is left RUNNING.

Run as ``python -m nbops.sweeps SPEC_FILE [PARENT_PID]`` by
:class:`nbops.sweeps.Sweep`.
"""

from __future__ import annotations

import ctypes
import logging
import os
import pickle
import signal
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbops.sweeps import _optuna
from nbops.sweeps._claim import claim
from nbops.sweeps._errors import MetricMissing, SweepError, SweepInterrupted
from nbops.sweeps._finisher import RunFinisher
from nbops.sweeps._objectives import Objective, TrialScope, make_objective
from nbops.sweeps._spec import SweepSpec
from nbops.sweeps._storage import STOP_ATTR, fail_dead_local_trials, open_storage, this_host
from nbops.tracking import suspended

if TYPE_CHECKING:
    from nbops.store import RunStore, StoreAddress

logger = logging.getLogger(__name__)

EXIT_INTERRUPTED = 130
STOP_REASON_ATTR = "nbops.stop_reason"
MISSING_PREFIX = "metric missing: "


class Interrupter:
    """Delivers an interrupt to a worker only while its objective runs; defers it otherwise."""

    def __init__(self, thread: threading.Thread | None = None) -> None:
        self.thread = thread or threading.current_thread()
        self._lock = threading.Lock()
        self._allowed = False
        self.pending = False
        self.reason = "the sweep was stopped"

    @contextmanager
    def allow(self) -> Iterator[None]:
        with self._lock:
            if self.pending:
                raise SweepInterrupted("the sweep was stopped")
            self._allowed = True
        try:
            yield
        finally:
            with self._lock:
                self._allowed = False

    def interrupt(self, reason: str | None = None) -> None:
        """Interrupt the running objective now, or the loop before its next trial."""
        with self._lock:
            if reason and not self.pending:
                self.reason = reason
            self.pending = True
            if not self._allowed:
                return
            self._allowed = False
            if self.thread is threading.current_thread():
                raise SweepInterrupted("the sweep was stopped")
            ident = self.thread.ident
            if ident is not None:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    ctypes.c_ulong(ident), ctypes.py_object(SweepInterrupted)
                )

    def signal_handler(self, signum: int, frame: Any) -> None:
        self.interrupt()


class _Heartbeat:
    """Records the RDB heartbeat of a running trial from a background thread."""

    def __init__(self, storage: Any, trial_id: int) -> None:
        self.storage, self.trial_id = storage, trial_id
        self.interval = heartbeat_interval(storage)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> _Heartbeat:
        if self.interval:
            self._thread = threading.Thread(target=self._beat, daemon=True, name="nbops-beat")
            self._thread.start()
        return self

    def _beat(self) -> None:
        assert self.interval is not None
        while not self._stop.wait(self.interval):
            try:
                self.storage.record_heartbeat(self.trial_id)
            except Exception:
                logger.warning("heartbeat of trial %s failed", self.trial_id, exc_info=True)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def heartbeat_interval(storage: Any) -> int | None:
    """The heartbeat interval of an RDB storage with heartbeats, else None."""
    from optuna.storages import RDBStorage

    if isinstance(storage, RDBStorage):
        return storage.get_heartbeat_interval()
    return None


def load_study(spec: SweepSpec, storage: Any = None) -> Any:
    import optuna

    storage = storage or open_storage(
        spec.storage,
        heartbeat_interval=spec.heartbeat_interval,
        grace_period=spec.grace_period,
    )
    try:
        return optuna.load_study(
            study_name=spec.study_name,
            storage=storage,
            sampler=spec.load_sampler(),
            pruner=spec.load_pruner(),
        )
    except KeyError:
        raise SweepError(
            f"no sweep {spec.study_name!r} in this storage; list sweeps with `nbops sweep status`"
        ) from None


def claim_trial(study: Any, spec: SweepSpec, attrs: Mapping[str, Any] | None = None) -> Any:
    """Take the next trial (see :func:`nbops.sweeps._claim.claim`), marked as this worker's
    (pid, host, start, the id its run will have, and ``attrs``) before another worker can
    look at it."""
    from nbops.tracking import new_run_id

    mine = {
        "nbops.pid": os.getpid(),
        "nbops.host": this_host(),
        "nbops.started": time.time(),
        "nbops.run_id": new_run_id(),
        **(attrs or {}),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "heartbeat is supposed to be used with optimize"
        trial = claim(study, spec.storage, spec.seed, spec.grid_size, mine)
    if trial is None:
        return None
    if trial.user_attrs.get("nbops.run_id") != mine["nbops.run_id"]:  # a WAITING trial
        for key, value in mine.items():
            trial.set_user_attr(key, value)
    storage = _optuna.storage_of(study)
    if heartbeat_interval(storage):
        storage.record_heartbeat(_optuna.trial_id(trial))
    return trial


def run_worker(
    spec: SweepSpec,
    *,
    interrupter: Interrupter | None = None,
    stop: threading.Event | None = None,
    study: Any = None,
    fn: Callable[..., Any] | None = None,
    attrs: Mapping[str, Any] | None = None,
    store: StoreAddress | None = None,
) -> int:
    """Run trials until the budget, the deadline or a stop; return how many this worker ran.

    ``fn`` is the objective itself when the worker runs in the caller's process (``jobs=1``):
    it is called as it is, with its closures and globals, never copied. ``attrs`` are
    recorded with each trial this worker claims (a Dask task names its worker). ``store``:
    where trial runs (and notebook kernels) record, instead of this process's store (a Dask
    task records into its coordinator's store).

    Raises:
        SweepInterrupted: The worker was interrupted (its running trial was told FAIL).
    """
    interrupter = interrupter or Interrupter()
    study = study or load_study(spec)
    objective = make_objective(spec, fn, store)
    opened = store.open() if store is not None else None
    storage = _optuna.storage_of(study)
    finisher = RunFinisher()
    count = 0
    try:
        while not interrupter.pending and not (stop is not None and stop.is_set()):
            if spec.deadline is not None and time.time() >= spec.deadline:
                break
            if study.user_attrs.get(STOP_ATTR):
                break
            if heartbeat_interval(storage):
                _fail_stale(study)
            fail_dead_local_trials(study)
            trial = claim_trial(study, spec, attrs)
            if trial is None:
                if _lost_trials_may_return(study, storage):
                    # a RUNNING trial may belong to a worker that dies: its retry is ours
                    time.sleep(min(2.0, heartbeat_interval(storage) or 0.5))
                    continue
                break
            exhausted = run_trial(
                study, trial, objective, spec, interrupter, finisher, opened, attrs
            )
            count += 1
            if exhausted:  # a GridSampler or BruteForceSampler ran out of combinations
                break
            _stop_if_metric_missing(study, trial)
    finally:
        objective.close()
        finisher.close(wait_copies=not interrupter.pending)
    if interrupter.pending:
        raise SweepInterrupted("the sweep was stopped")
    return count


def _stop_if_metric_missing(study: Any, trial: Any) -> None:
    """A trial that never produced the metric, before any trial did: every trial would fail
    alike, so stop the sweep (every worker) and raise the reason."""
    from optuna.trial import TrialState

    error = study.get_trials(deepcopy=False)[trial.number].user_attrs.get("nbops.error", "")
    if not error.startswith(MISSING_PREFIX):
        return
    if study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return  # the metric came before: this trial failed for its own reasons
    reason = error[len(MISSING_PREFIX) :]
    study.set_user_attr(STOP_REASON_ATTR, reason)
    study.set_user_attr(STOP_ATTR, time.time())
    raise SweepError(f"sweep {study.study_name} stopped after trial {trial.number}: {reason}")


def _lost_trials_may_return(study: Any, storage: Any) -> bool:
    """True while a RUNNING trial could still be lost and retried: one run by another
    process on this machine (its death is seen by pid) or kept alive by heartbeats."""
    from optuna.trial import TrialState

    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    if heartbeat_interval(storage):
        return bool(running)
    host, me = this_host(), os.getpid()
    return any(
        t.user_attrs.get("nbops.host") == host and t.user_attrs.get("nbops.pid") != me
        for t in running
    )


def _fail_stale(study: Any) -> None:
    from optuna.storages import fail_stale_trials

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ExperimentalWarning
        fail_stale_trials(study)


def run_trial(
    study: Any,
    trial: Any,
    objective: Objective,
    spec: SweepSpec,
    interrupter: Interrupter,
    finisher: RunFinisher | None = None,
    store: RunStore | None = None,
    attrs: Mapping[str, Any] | None = None,
) -> bool:
    """Run one claimed trial and always tell the study how it ended (its run in ``store``,
    ``attrs`` in its run's ``sweep`` metadata).

    Returns True when the sampler has no combination left (grid or brute force exhausted).
    """
    import optuna
    from optuna.trial import TrialState

    scope = TrialScope(spec, trial, store, attrs)
    state, values, error = TrialState.FAIL, None, None
    with suspended():
        try:
            with _Heartbeat(_optuna.storage_of(study), _optuna.trial_id(trial)):
                try:
                    objective.start(trial, scope)
                    with interrupter.allow():
                        values = objective(trial, scope)
                    state = TrialState.COMPLETE
                except optuna.TrialPruned:
                    state = TrialState.PRUNED
                except KeyboardInterrupt:
                    error = f"interrupted: {interrupter.reason}"
                except MetricMissing as exc:
                    error = MISSING_PREFIX + str(exc)
                except SweepError as exc:
                    error = str(exc)
                except Exception as exc:  # the user's objective: any error fails the trial
                    error = f"{type(exc).__name__}: {exc}"
                    # kept with the trial (the panel shows it), not printed into a random cell
                    trial.set_user_attr("nbops.traceback", traceback.format_exc()[-8000:])
                    logger.debug("trial %s failed", trial.number, exc_info=True)
        finally:
            exhausted = _finish(study, trial, scope, state, values, error, finisher)
    return exhausted


def _finish(
    study: Any,
    trial: Any,
    scope: TrialScope,
    state: Any,
    values: Any,
    error: str | None,
    finisher: RunFinisher | None = None,
) -> bool:
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    run = scope.run
    try:
        if error is not None:
            trial.set_user_attr("nbops.error", error[:2000])
        if run is not None and run.id != trial.user_attrs.get("nbops.run_id"):
            trial.set_user_attr("nbops.run_id", run.id)  # a notebook's kernel chose its own
    except UpdateFinishedTrialError:  # failed meanwhile by "Stop now" (see Sweep.stop)
        state, error = TrialState.FAIL, "interrupted: the sweep was stopped"
    exhausted = False
    try:
        told = study.tell(trial, values, state=state, skip_if_finished=True)
    except RuntimeError as exc:
        # GridSampler/BruteForceSampler call study.stop() once every combination was tried,
        # which outside study.optimize raises after the trial's state is written
        if "Study.stop" not in str(exc):
            raise
        exhausted = True
    else:
        if told.state == TrialState.FAIL and state != TrialState.FAIL:  # failed meanwhile
            state, error = TrialState.FAIL, "interrupted: the sweep was stopped"
    if run is not None:
        run.summary["trial"] = trial.number
        run.summary["trial_state"] = state.name
        if values is not None:
            run.summary["objective"] = values[0] if len(values) == 1 else values
        if error is not None:
            run.summary["error"] = error[:500]
        interrupted = error is not None and error.startswith("interrupted")
        status = "finished" if state != TrialState.FAIL else "killed" if interrupted else "failed"
        if finisher is None:
            finisher = RunFinisher()
            finisher.finish(run, status, copy=scope.copy_later)
            finisher.close()
        else:
            finisher.finish(run, status, copy=scope.copy_later)
    return exhausted


def _watch_parent(parent: int, interrupter: Interrupter) -> None:
    """Stop this worker when the process that started it dies (a restarted kernel)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        interrupter.interrupt(f"the sweep's coordinator (process {parent}) died")

    threading.Thread(target=watch, daemon=True, name="nbops-parent-watch").start()


def main(argv: list[str] | None = None) -> int:
    """Entry point of a worker process: ``python -m nbops.sweeps SPEC_FILE [PARENT_PID]``."""
    args = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec: SweepSpec = pickle.loads(Path(args[0]).read_bytes())  # noqa: S301 - our own file
    interrupter = Interrupter()
    signal.signal(signal.SIGINT, interrupter.signal_handler)
    signal.signal(signal.SIGTERM, interrupter.signal_handler)
    if len(args) > 1:
        _watch_parent(int(args[1]), interrupter)
    try:
        count = run_worker(spec, interrupter=interrupter)
    except KeyboardInterrupt:
        print(f"nbops worker {os.getpid()}: stopped ({interrupter.reason})", file=sys.stderr)
        return EXIT_INTERRUPTED
    except SweepError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    print(f"nbops worker {os.getpid()}: ran {count} trial(s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
