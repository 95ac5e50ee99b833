"""``nbops.report``: intermediate values that reach the Optuna trial, in a function or a kernel.

In a worker, the running trial is held in a context variable. In a kernel started for a
notebook trial, ``NBOPS_SWEEP_HANDOFF`` names a file the owner wrote just before running the
notebook (the kernel is started in advance, before the trial exists): the storage, the study,
the trial id and the pruner. When the pruner says so, ``report`` raises ``optuna.TrialPruned``;
in a notebook the cell fails with that exception and the owner records the trial as pruned.
"""

from __future__ import annotations

import contextvars
import logging
import math
import os
import pickle
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from nbops.errors import InvalidValueError
from nbops.sweeps._errors import SweepError

logger = logging.getLogger(__name__)

HANDOFF_ENV = "NBOPS_SWEEP_HANDOFF"
REPORT_METRIC = "intermediate_value"


class Reporter(Protocol):
    def report(self, value: float, step: int) -> None: ...


class TrialReporter:
    """Reports to an ``optuna.Trial`` in this process."""

    def __init__(self, trial: Any) -> None:
        self.trial = trial

    def report(self, value: float, step: int) -> None:
        import optuna

        if len(self.trial.study.directions) > 1:
            raise SweepError(
                "nbops.report is for single-objective sweeps: Optuna cannot prune "
                "multi-objective trials"
            )
        self.trial.report(value, step)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at step {step} (value {value:.6g})")


class StorageReporter:
    """Reports straight to the storage of a trial another process owns (a notebook kernel)."""

    def __init__(self, storage_url: str, study_name: str, trial_id: int, pruner: Any) -> None:
        import optuna

        from nbops.sweeps._storage import open_storage

        self.storage = open_storage(storage_url)
        self.study = optuna.load_study(study_name=study_name, storage=self.storage, pruner=pruner)
        self.trial_id = trial_id

    def report(self, value: float, step: int) -> None:
        import optuna

        if len(self.study.directions) > 1:
            raise SweepError("nbops.report is for single-objective sweeps")
        self.storage.set_trial_intermediate_value(self.trial_id, step, value)
        frozen = self.storage.get_trial(self.trial_id)
        if self.study.pruner.prune(self.study, frozen):
            raise optuna.TrialPruned(f"pruned at step {step} (value {value:.6g})")


_current: contextvars.ContextVar[Reporter | None] = contextvars.ContextVar(
    "nbops_sweep_trial", default=None
)
_kernel_reporter: Reporter | None = None
_kernel_checked = False


@contextmanager
def reporting_to(reporter: Reporter) -> Iterator[None]:
    """Route ``nbops.report`` calls in this context to ``reporter``."""
    token = _current.set(reporter)
    try:
        yield
    finally:
        _current.reset(token)


def _from_handoff() -> Reporter | None:
    global _kernel_reporter, _kernel_checked
    if _kernel_checked:
        return _kernel_reporter
    path = os.environ.get(HANDOFF_ENV)
    if not path:
        _kernel_checked = True
        return None
    try:
        data = pickle.loads(Path(path).read_bytes())  # noqa: S301 - written by the owner
    except (OSError, pickle.UnpicklingError) as exc:
        raise SweepError(f"cannot read the sweep trial handed to this kernel ({exc})") from None
    pruner = pickle.loads(data["pruner"]) if data.get("pruner") else None  # noqa: S301
    _kernel_reporter = StorageReporter(data["storage"], data["study"], data["trial_id"], pruner)
    _kernel_checked = True
    return _kernel_reporter


def report(value: float, step: int) -> None:
    """Report an intermediate objective value; raise ``optuna.TrialPruned`` if pruned.

    Inside a sweep trial (a function objective, or a notebook executed by a sweep) the value
    reaches the Optuna trial and its pruner. It is also logged as the metric
    ``intermediate_value`` of the active run. Outside a sweep it is only logged (if a run is
    active), so the same notebook runs standalone.
    """
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidValueError(f"nbops.report needs a number, not {value!r}") from None
    if not math.isfinite(number):
        raise InvalidValueError(f"nbops.report needs a finite number, not {value!r}")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise InvalidValueError(f"nbops.report needs a non-negative integer step, not {step!r}")
    from nbops.tracking import active_run

    run = active_run()
    if run is not None and not run.finished:
        run.log({REPORT_METRIC: number}, step=step)
    reporter = _current.get() or _from_handoff()
    if reporter is not None:
        reporter.report(number, step)
