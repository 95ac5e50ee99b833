"""A running or finished sweep: its study, its workers, stop and wait."""

from __future__ import annotations

import logging
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbops.fileio import write_atomic
from nbops.sweeps._claim import BUDGET_ATTR, counted
from nbops.sweeps._errors import SweepError
from nbops.sweeps._objectives import environment_for_workers
from nbops.sweeps._spec import SweepSpec
from nbops.sweeps._storage import STOP_ATTR, fail_dead_local_trials, redact_url, sweeps_dir
from nbops.sweeps._worker import STOP_REASON_ATTR, Interrupter, run_worker

if TYPE_CHECKING:
    from nbops.sweeps._dask import DaskTasks
    from nbops.tracking import Run

logger = logging.getLogger(__name__)

_STOP_GRACE = 15.0
_STOP_NOW_GRACE = 1.0


class Sweep:
    """A sweep: an Optuna study plus the workers running its trials.

    Returned by :func:`nbops.sweep` (running or finished) and :func:`nbops.load_sweep`.
    """

    def __init__(
        self,
        spec: SweepSpec,
        study: Any,
        *,
        summary_run: Run | None = None,
        objective: Callable[..., Any] | None = None,
    ) -> None:
        self.spec = spec
        self._objective = objective
        self._study = study
        self._summary_run = summary_run
        self._procs: list[subprocess.Popen[bytes]] = []
        self._logs: list[Path] = []
        self._spec_file: Path | None = None
        self._dask: DaskTasks | None = None
        self._thread: threading.Thread | None = None
        self._interrupter: Interrupter | None = None
        self._stop = threading.Event()
        self._stop_now = False
        self._done = threading.Event()
        self._worker_errors: list[str] = []
        self._error: BaseException | None = None
        self.started = time.time()
        self.finished_at: float | None = None
        self._loaded = False  # set by load_sweep: the workers are not this process's

    # --- identity and results -------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.spec.study_name

    @property
    def storage_url(self) -> str:
        """Where the study lives (password hidden)."""
        return redact_url(self.spec.storage)

    @property
    def study(self) -> Any:
        """The Optuna study."""
        return self._study

    @property
    def n_trials(self) -> int | None:
        """The trial budget of this sweep (all ``nbops.sweep`` calls on the study), or None."""
        value = self._study.user_attrs.get(BUDGET_ATTR)
        return int(value) if isinstance(value, int) else None

    @property
    def best_params(self) -> dict[str, Any]:
        """Parameters of the best completed trial (single objective)."""
        return dict(self._best().params)

    @property
    def best_value(self) -> float:
        """Objective value of the best completed trial (single objective)."""
        return float(self._best().value)

    @property
    def best_trial(self) -> Any:
        return self._best()

    @property
    def best_trials(self) -> list[Any]:
        """The Pareto front (multi-objective) or the best trial, as ``FrozenTrial`` objects."""
        return list(self._study.best_trials)

    def _best(self) -> Any:
        if len(self._study.directions) > 1:
            raise SweepError(
                f"sweep {self.name} has {len(self._study.directions)} objectives, so there is "
                "no single best trial; use .best_trials (the Pareto front)"
            )
        try:
            return self._study.best_trial
        except ValueError:
            raise SweepError(
                f"sweep {self.name} has no completed trial yet; see .errors for failures"
            ) from None

    def trials(self, states: Any = None) -> list[Any]:
        """The study's trials (``FrozenTrial``); retries not yet started are left out."""
        from optuna.trial import TrialState

        wanted = states or tuple(s for s in TrialState if s != TrialState.WAITING)
        return list(self._study.get_trials(deepcopy=False, states=wanted))

    def trials_dataframe(self, **kwargs: Any) -> Any:
        """``study.trials_dataframe()`` without the budget slots not yet started."""
        frame = self._study.trials_dataframe(**kwargs)
        if "state" in frame.columns:
            frame = frame[frame["state"] != "WAITING"].reset_index(drop=True)
        return frame

    @property
    def errors(self) -> list[tuple[int, str]]:
        """``(trial number, message)`` of failed trials, plus workers that could not start."""
        found = [
            (t.number, str(t.user_attrs["nbops.error"]))
            for t in self.trials()
            if "nbops.error" in t.user_attrs
        ]
        return found + [(-1, message) for message in self._worker_errors]

    # --- lifecycle ------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        """True once this process's workers have all ended. A loaded sweep (running elsewhere,
        perhaps) is done when no trial runs and its budget, deadline or a stop ended it."""
        if not self._loaded:
            return self._done.is_set()
        from optuna.trial import TrialState

        trials = self._study.get_trials(deepcopy=False)
        if any(t.state in (TrialState.RUNNING, TrialState.WAITING) for t in trials):
            return False
        budget = self.n_trials
        deadline = self.spec.deadline
        return bool(
            self.stopped
            or (budget is not None and counted(trials) >= budget)
            or (deadline is not None and time.time() >= deadline)
            or (budget is None and deadline is None)
        )

    def span(self, trials: list[Any] | None = None) -> tuple[float, float | None]:
        """When the sweep started and (once done) ended, in epoch seconds. For a loaded sweep
        these come from its trials, so a stored sweep's elapsed time is its own."""
        if not self._loaded:
            return self.started, self.finished_at
        trials = self.trials() if trials is None else trials
        starts = [t.user_attrs["nbops.started"] for t in trials if "nbops.started" in t.user_attrs]
        ends = [t.datetime_complete.timestamp() for t in trials if t.datetime_complete]
        return (min(starts) if starts else self.started), (max(ends) if ends else None)

    @property
    def stopped(self) -> bool:
        """True once stopped, from here or from elsewhere (the study records a stop)."""
        if self._stop.is_set():
            return True
        try:
            return bool(self._study.user_attrs.get(STOP_ATTR))
        except Exception:  # noqa: BLE001 - an unreachable storage does not make a sweep stopped
            return False

    def stop(self, now: bool = False) -> None:
        """Stop the sweep: no new trial starts; nothing is left RUNNING.

        By default the trials running now finish and are recorded (workers on other machines
        see the stop before their next trial). ``now=True`` interrupts them at once: they end
        as FAIL. Returns at once; :meth:`wait` waits for the workers.
        """
        self._stop.set()
        self._stop_now = self._stop_now or now
        try:
            self._study.set_user_attr(STOP_ATTR, time.time())
        except Exception:
            logger.warning("could not record the stop in the study storage", exc_info=True)
        if not now:
            return
        if self._dask is not None:
            self._dask.stop(now)
        if self._interrupter is not None:
            self._interrupter.interrupt()
            if self._thread is not None and not self._procs:
                # a thread cannot be interrupted inside a long C call (time.sleep, a fit):
                # its trial is failed in the storage now, its late result is discarded
                timer = threading.Timer(_STOP_NOW_GRACE, self._fail_own_running)
                timer.daemon = True
                timer.start()
        for proc in self._procs:
            if proc.poll() is None:
                try:
                    proc.send_signal(signal.SIGINT)
                except ProcessLookupError:
                    pass

    def _fail_own_running(self) -> None:
        from optuna.trial import TrialState

        from nbops.sweeps import _optuna
        from nbops.sweeps._storage import this_host

        if self._done.is_set():
            return
        me, host = os.getpid(), this_host()
        try:
            for trial in self._study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                attrs = trial.user_attrs
                if attrs.get("nbops.pid") == me and attrs.get("nbops.host") == host:
                    _optuna.set_user_attr(
                        self._study, trial, "nbops.error", "interrupted: the sweep was stopped"
                    )
                    _optuna.fail_running(self._study, trial)
        except Exception:  # the trial finished meanwhile, or the storage is unreachable
            logger.debug("could not fail the running trial of sweep %s", self.name, exc_info=True)

    def wait(self, timeout: float | None = None) -> Sweep:
        """Block until the workers end (or ``timeout`` s pass); return the sweep.

        Raises:
            SweepError: every worker failed before running a trial (the message says why).
        """
        if self._thread is not None and self._thread is not threading.current_thread():
            # an Event, not Thread.join: a Ctrl-C landing inside join() can leave the thread
            # looking finished to every later join, and the summary would never be written
            self._done.wait(timeout)
        if self._error is not None:
            raise self._error
        return self

    # --- running --------------------------------------------------------------------------
    def _run_inline(self) -> None:
        """Run the trials in the calling thread (``jobs=1``); Ctrl-C stops cleanly."""
        self._interrupter = Interrupter()
        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, self._interrupter.signal_handler) if main else None
        try:
            run_worker(
                self.spec,
                interrupter=self._interrupter,
                stop=self._stop,
                study=self.study,
                fn=self._objective,
            )
        except KeyboardInterrupt:
            self._stop.set()
            self._finalize()
            raise
        except BaseException as exc:
            self._error = exc
            self._finalize()
            raise
        finally:
            if main:
                signal.signal(signal.SIGINT, previous)
        self._finalize()

    def _start_thread(self) -> None:
        def target() -> None:
            try:
                run_worker(
                    self.spec,
                    interrupter=self._interrupter,
                    stop=self._stop,
                    study=self.study,
                    fn=self._objective,
                )
            except KeyboardInterrupt:
                self._stop.set()
            except BaseException as exc:  # noqa: BLE001 - re-raised by wait() in the caller
                self._error = exc
            finally:
                self._finalize()

        self._thread = threading.Thread(target=target, name=f"nbops-sweep-{self.name}", daemon=True)
        self._interrupter = Interrupter(self._thread)
        self._thread.start()

    def _start_processes(self, jobs: int) -> None:
        folder = sweeps_dir() / self.name
        spec_file = folder / f"spec-{uuid.uuid4().hex[:12]}.pkl"
        write_atomic(spec_file, pickle.dumps(self.spec))
        self._spec_file = spec_file
        env = environment_for_workers()
        from nbops.config import store_path

        env["NBOPS_HOME"] = str(store_path())
        paths = [os.path.abspath(p or os.curdir) for p in sys.path if p is not None]
        env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(p for p in paths if os.path.isdir(p)))
        for index in range(jobs):
            log = folder / f"worker-{index}.log"
            with open(log, "ab") as out:
                proc = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "nbops.sweeps",
                        str(spec_file),
                        str(os.getpid()),  # workers stop when this process dies
                    ],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=os.getcwd(),
                )
            self._procs.append(proc)
            self._logs.append(log)
        self._thread = threading.Thread(
            target=self._supervise, name=f"nbops-sweep-{self.name}", daemon=True
        )
        self._thread.start()

    def _start_dask(self, tasks: DaskTasks) -> None:
        """Run the trials as Dask tasks (see :mod:`nbops.sweeps._dask`)."""
        self._dask = tasks
        self._thread = tasks.start(self)

    @property
    def pids(self) -> list[int]:
        """Process ids of this sweep's worker processes."""
        return [proc.pid for proc in self._procs]

    def _supervise(self) -> None:
        try:
            stop_seen: float | None = None
            while any(proc.poll() is None for proc in self._procs):
                if self._stop_now:
                    stop_seen = stop_seen or time.time()
                    if time.time() - stop_seen > _STOP_GRACE:
                        for proc in self._procs:
                            if proc.poll() is None:
                                proc.kill()
                time.sleep(0.05)
            dead = {p.pid for p in self._procs if p.returncode not in (0, 130)}
            if dead:
                fail_dead_local_trials(self._study, pids=dead)
            for proc, log in zip(self._procs, self._logs, strict=True):
                if proc.returncode not in (0, 130):
                    tail = _tail(log)
                    self._worker_errors.append(
                        f"worker {proc.pid} exited with code {proc.returncode}: {tail}"
                    )
            reason = self._study.user_attrs.get(STOP_REASON_ATTR)
            every_worker_failed = len(self._worker_errors) == len(self._procs)
            if reason:
                self._error = SweepError(f"sweep {self.name} stopped: {reason}")
            elif self._worker_errors and every_worker_failed and not self.trials():
                self._error = SweepError(
                    f"every worker of sweep {self.name} failed: {self._worker_errors[0]}"
                )
        except BaseException as exc:  # noqa: BLE001 - re-raised by wait() in the caller
            self._error = exc
        finally:
            if self._spec_file is not None:
                self._spec_file.unlink(missing_ok=True)
            self._finalize()

    def _finalize(self) -> None:
        if self._done.is_set():
            return
        self.finished_at = time.time()
        try:
            self._write_summary()
        except Exception:
            logger.warning("could not write the summary run of sweep %s", self.name, exc_info=True)
        self._done.set()

    def _write_summary(self) -> None:
        run = self._summary_run
        if run is None or run.finished:
            return
        from optuna.trial import TrialState

        trials = self.trials()
        counts = {s.name.lower(): sum(t.state == s for t in trials) for s in TrialState}
        for key in ("complete", "pruned", "fail", "running"):
            run.summary[f"n_{key}"] = counts.get(key, 0)
        run.summary["seconds"] = round((self.finished_at or time.time()) - self.started, 3)
        if len(self._study.directions) == 1 and counts.get("complete"):
            best = self._study.best_trial
            run.summary["best_value"] = best.value
            run.summary["best_params"] = dict(best.params)
            run.summary["best_trial"] = best.number
            run.summary["best_run_id"] = best.user_attrs.get("nbops.run_id")
        elif counts.get("complete"):
            run.summary["pareto_front"] = [
                {"trial": t.number, "values": t.values, "params": t.params}
                for t in self._study.best_trials
            ]
        status = "finished"
        if self._error is not None or (trials and not counts.get("complete")):
            status = "failed"
        if self._stop.is_set():
            status = "killed"
        from nbops.tracking import suspended

        with suspended():
            run.finish(status)

    # --- display --------------------------------------------------------------------------
    def __repr__(self) -> str:
        state = "done" if self.done else "running"
        return f"<nbops.Sweep {self.name} {state} storage={self.storage_url}>"

    def _repr_html_(self) -> str:
        from nbops.sweeps._panel_controller import PanelController, render_html

        return render_html(PanelController(self).snapshot(force=True))


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(text[-lines:]) or "(empty log)"
