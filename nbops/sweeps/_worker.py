"""The worker loop: claim a trial, run it with heartbeats, tell the study; stop cleanly.

Every worker (a process of ``jobs=N``, ``nbops sweep worker`` on another machine, or the
calling thread for ``jobs=1``) runs :func:`run_worker`. A trial budget is a set of WAITING
trials enqueued by ``nbops.sweep``; a worker claims one atomically (WAITING -> RUNNING is a
compare-and-set in every Optuna storage), so N budgeted trials run exactly N times however
many workers join. Interrupts (Ctrl-C, SIGTERM, Stop) are only delivered while an objective
runs; the trial is then told FAIL, so no trial is left RUNNING.

Run as ``python -m nbops.sweeps._worker SPEC_FILE`` by :class:`nbops.sweeps.Sweep`.
"""

from __future__ import annotations

import ctypes
import datetime
import logging
import os
import pickle
import signal
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from nbops.sweeps._errors import SweepError, SweepInterrupted
from nbops.sweeps._objectives import Objective, TrialScope, make_objective
from nbops.sweeps._spec import SweepSpec
from nbops.sweeps._storage import fail_dead_local_trials, open_storage, this_host
from nbops.tracking import suspended

logger = logging.getLogger(__name__)

STOP_ATTR = "nbops.stop"
EXIT_INTERRUPTED = 130


class Interrupter:
    """Delivers an interrupt to a worker only while its objective runs; defers it otherwise."""

    def __init__(self, thread: threading.Thread | None = None) -> None:
        self.thread = thread or threading.current_thread()
        self._lock = threading.Lock()
        self._allowed = False
        self.pending = False

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

    def interrupt(self) -> None:
        """Interrupt the running objective now, or the loop before its next trial."""
        with self._lock:
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
        from optuna.storages._heartbeat import BaseHeartbeat

        self.storage, self.trial_id = storage, trial_id
        interval = storage.get_heartbeat_interval() if isinstance(storage, BaseHeartbeat) else None
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> _Heartbeat:
        if self.interval:
            self.storage.record_heartbeat(self.trial_id)
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


def claim(study: Any, budgeted: bool) -> Any:
    """Return a new ``optuna.Trial``: a WAITING one claimed atomically, or None when budgeted
    and none is left; unbudgeted sweeps (timeout only) ask for a new one."""
    import optuna
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    storage = study._storage
    for frozen in storage.get_all_trials(
        study._study_id, deepcopy=False, states=(TrialState.WAITING,)
    ):
        try:
            if storage.set_trial_state_values(frozen._trial_id, state=TrialState.RUNNING):
                return optuna.Trial(study, frozen._trial_id)
        except UpdateFinishedTrialError:
            continue
    if budgeted:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return study.ask()


def load_study(spec: SweepSpec, storage: Any = None) -> Any:
    import optuna

    storage = storage or open_storage(
        spec.storage,
        heartbeat_interval=spec.heartbeat_interval,
        grace_period=spec.grace_period,
    )
    sampler = pickle.loads(spec.sampler) if spec.sampler else None  # noqa: S301
    pruner = pickle.loads(spec.pruner) if spec.pruner else None  # noqa: S301
    try:
        return optuna.load_study(
            study_name=spec.study_name, storage=storage, sampler=sampler, pruner=pruner
        )
    except KeyError:
        raise SweepError(
            f"no sweep {spec.study_name!r} in this storage; list sweeps with `nbops sweep status`"
        ) from None


def run_worker(
    spec: SweepSpec,
    *,
    interrupter: Interrupter | None = None,
    stop: threading.Event | None = None,
    study: Any = None,
) -> int:
    """Run trials until the budget, the deadline or a stop; return how many this worker ran.

    Raises:
        SweepInterrupted: The worker was interrupted (its running trial was told FAIL).
    """
    from optuna.storages._heartbeat import is_heartbeat_enabled

    interrupter = interrupter or Interrupter()
    study = study or load_study(spec)
    objective = make_objective(spec)
    count = 0
    try:
        while not interrupter.pending and not (stop is not None and stop.is_set()):
            if spec.deadline is not None and time.time() >= spec.deadline:
                break
            if study.user_attrs.get(STOP_ATTR):
                break
            if is_heartbeat_enabled(study._storage):
                _fail_stale(study)
            fail_dead_local_trials(study)
            trial = claim(study, spec.budgeted)
            if trial is None:
                if _others_may_go_stale(study):
                    # a RUNNING trial may belong to a dead worker: once its heartbeat is stale
                    # it is failed and re-queued, and this worker runs it
                    time.sleep(min(2.0, study._storage.get_heartbeat_interval() or 1))
                    continue
                break
            run_trial(study, trial, objective, spec, interrupter)
            count += 1
    finally:
        objective.close()
    if interrupter.pending:
        raise SweepInterrupted("the sweep was stopped")
    return count


def _others_may_go_stale(study: Any) -> bool:
    from optuna.storages._heartbeat import is_heartbeat_enabled
    from optuna.trial import TrialState

    storage = study._storage
    if not is_heartbeat_enabled(storage):
        return False
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    # A worker killed between claiming a trial and its first heartbeat leaves a trial Optuna
    # never sees as stale: no pid recorded (that follows the first beat) long after its start.
    grace = getattr(getattr(storage, "_backend", storage), "grace_period", None)
    limit = 2 * (grace or 2 * storage.get_heartbeat_interval())
    for trial in running:
        started = trial.datetime_start
        if "nbops.pid" not in trial.user_attrs and started is not None:
            age = (datetime.datetime.now() - started).total_seconds()
            if age > limit and storage.set_trial_state_values(trial._trial_id, TrialState.FAIL):
                callback = storage.get_heartbeat_stale_trial_callback()
                if callback is not None:
                    callback(study, storage.get_trial(trial._trial_id))
    return bool(running)


def _fail_stale(study: Any) -> None:
    from optuna.storages import fail_stale_trials

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ExperimentalWarning
        fail_stale_trials(study)


def run_trial(
    study: Any, trial: Any, objective: Objective, spec: SweepSpec, interrupter: Interrupter
) -> None:
    """Run one claimed trial and always tell the study how it ended."""
    import optuna
    from optuna.trial import TrialState

    scope = TrialScope(spec, trial)
    state, values, error = TrialState.FAIL, None, None
    with suspended():
        try:
            with _Heartbeat(study._storage, trial._trial_id):
                storage = study._storage
                storage.set_trial_user_attr(trial._trial_id, "nbops.pid", os.getpid())
                storage.set_trial_user_attr(trial._trial_id, "nbops.host", this_host())
                storage.set_trial_user_attr(trial._trial_id, "nbops.started", time.time())
                try:
                    with interrupter.allow():
                        values = objective(trial, scope)
                    state = TrialState.COMPLETE
                except optuna.TrialPruned:
                    state = TrialState.PRUNED
                except KeyboardInterrupt:
                    error = "interrupted: the sweep was stopped"
                except SweepError as exc:
                    error = str(exc)
                except Exception as exc:
                    error = f"{type(exc).__name__}: {exc}"
                    logger.warning("trial %s failed", trial.number, exc_info=True)
        finally:
            _finish(study, trial, scope, state, values, error)


def _finish(
    study: Any, trial: Any, scope: TrialScope, state: Any, values: Any, error: str | None
) -> None:
    from optuna.trial import TrialState

    storage = study._storage
    run = scope.run
    if error is not None:
        storage.set_trial_user_attr(trial._trial_id, "nbops.error", error[:2000])
    if run is not None:
        storage.set_trial_user_attr(trial._trial_id, "nbops.run_id", run.id)
    storage.set_trial_user_attr(trial._trial_id, "nbops.ended", time.time())
    study.tell(trial, values, state=state, skip_if_finished=True)
    if run is not None:
        run.summary["trial"] = trial.number
        run.summary["trial_state"] = state.name
        if values is not None:
            run.summary["objective"] = values[0] if len(values) == 1 else values
        if error is not None:
            run.summary["error"] = error[:500]
        interrupted = error is not None and error.startswith("interrupted")
        status = "finished" if state != TrialState.FAIL else "killed" if interrupted else "failed"
        run.finish(status)


def main(argv: list[str] | None = None) -> int:
    """Entry point of a worker process: ``python -m nbops.sweeps._worker SPEC_FILE``."""
    args = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec: SweepSpec = pickle.loads(Path(args[0]).read_bytes())  # noqa: S301 - our own file
    interrupter = Interrupter()
    signal.signal(signal.SIGINT, interrupter.signal_handler)
    signal.signal(signal.SIGTERM, interrupter.signal_handler)
    try:
        count = run_worker(spec, interrupter=interrupter)
    except KeyboardInterrupt:
        print(f"nbops worker {os.getpid()}: stopped", file=sys.stderr)
        return EXIT_INTERRUPTED
    except SweepError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    print(f"nbops worker {os.getpid()}: ran {count} trial(s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
