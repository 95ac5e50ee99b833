"""Everything the sweep panel shows, computed without ipywidgets (testable without a browser).

:class:`PanelController` turns a :class:`~nbops.sweeps.Sweep` into a :class:`PanelState`
(progress, timing, best trial or Pareto front, recent trials, errors with their tracebacks,
history, parameters per trial, importances); :mod:`nbops.sweeps._panel_render` turns that
into escaped HTML. Importances are recomputed at most once per ``importance_every`` seconds,
and only when new trials completed.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from nbops.sweeps._panel_render import (
    errors_html,
    header_html,
    history_svg,
    importances_svg,
    parallel_svg,
    pareto_html,
    pareto_svg,
    plots_html,
    render_html,
    table_html,
)
from nbops.sweeps._panel_state import PanelState, TrialRow, _fmt, duration

__all__ = [
    "PanelController",
    "PanelState",
    "TrialRow",
    "duration",
    "errors_html",
    "header_html",
    "history_svg",
    "importances_svg",
    "parallel_svg",
    "pareto_html",
    "pareto_svg",
    "plots_html",
    "render_html",
    "table_html",
]

logger = logging.getLogger(__name__)


class PanelController:
    """Reads a sweep and produces :class:`PanelState`; also carries the Stop request."""

    def __init__(self, sweep: Any, *, recent: int = 8, importance_every: float = 1.0) -> None:
        self.sweep = sweep
        self.recent = recent
        self.importance_every = importance_every
        self._importances: dict[str, float] = {}
        self._importance_at = 0.0
        self._importance_complete = -1
        self.stop_requested = False

    def request_stop(self, now: bool = False) -> None:
        """The Stop buttons: stop the sweep, letting running trials finish unless ``now``."""
        if now or not self.stop_requested:
            self.stop_requested = True
            self.sweep.stop(now=now)

    def snapshot(self, *, force: bool = False, now: float | None = None) -> PanelState:
        from optuna.trial import TrialState

        now = time.time() if now is None else now
        study = self.sweep.study
        trials = self.sweep.trials()
        finished = [t for t in trials if t.state.is_finished()]
        superseded = sum(1 for t in trials if "failed_trial" in t.system_attrs)
        done = max(0, len(finished) - superseded)
        total = self.sweep.n_trials
        running = sum(1 for t in trials if t.state == TrialState.RUNNING)
        is_done = self.sweep.done
        started, ended = self.sweep.span(trials)
        elapsed = max(0.0, (ended if is_done and ended else now) - started)
        eta = None
        if total is not None and done and total > done and not is_done:
            eta = elapsed / done * (total - done)
        directions = tuple(d.name.lower() for d in study.directions)
        single = len(directions) == 1
        complete = sorted(
            (t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: t.number
        )
        best_value, best_params = None, {}
        if single and complete:
            best = study.best_trial
            best_value, best_params = best.value, dict(best.params)
        rows = tuple(self._row(t) for t in sorted(trials, key=lambda t: -t.number)[: self.recent])
        errors = tuple(
            (
                t.number,
                str(t.user_attrs["nbops.error"]),
                str(t.user_attrs.get("nbops.traceback", "")),
            )
            for t in sorted(trials, key=lambda t: t.number)
            if "nbops.error" in t.user_attrs
        ) + tuple((-1, m, "") for m in getattr(self.sweep, "_worker_errors", []))
        return PanelState(
            name=self.sweep.name,
            done=done,
            total=total,
            running=running,
            elapsed=elapsed,
            eta=eta,
            best_value=best_value,
            best_params=best_params,
            recent=rows,
            errors=errors,
            history=_history(complete, directions) if single else (),
            importances=self._maybe_importances(study, len(complete), now, force, single),
            finished=is_done,
            stopped=self.sweep.stopped,
            objectives=self._objectives(len(directions)),
            directions=directions,
            pareto=()
            if single or not complete
            else tuple(
                (t.number, tuple(t.values), dict(t.params))
                for t in sorted(study.best_trials, key=lambda t: t.number)
            ),
            points=tuple((tuple(t.values), dict(t.params)) for t in complete[-200:]),
        )

    def _objectives(self, count: int) -> tuple[str, ...]:
        metrics = tuple(self.sweep.spec.metrics)
        if len(metrics) == count:
            return metrics
        return ("objective",) if count == 1 else tuple(f"objective {i + 1}" for i in range(count))

    @staticmethod
    def _row(trial: Any) -> TrialRow:
        value = "" if trial.values is None else ", ".join(_fmt(v) for v in trial.values)
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in trial.params.items())
        seconds = None
        if trial.datetime_start and trial.datetime_complete:
            seconds = (trial.datetime_complete - trial.datetime_start).total_seconds()
        return TrialRow(trial.number, trial.state.name, value, params, seconds)

    def _maybe_importances(
        self, study: Any, complete: int, now: float, force: bool, single: bool
    ) -> dict[str, float]:
        due = force or now - self._importance_at >= self.importance_every
        if not single or complete < 3 or not due or complete == self._importance_complete:
            return self._importances
        self._importance_at, self._importance_complete = now, complete
        try:
            import optuna

            self._importances = dict(optuna.importance.get_param_importances(study))
        except (ValueError, RuntimeError, ZeroDivisionError) as exc:  # too few distinct values
            logger.debug("no parameter importances yet: %s", exc)
        return self._importances


def _history(
    complete: list[Any], directions: tuple[str, ...]
) -> tuple[tuple[int, float, float], ...]:
    maximize = directions[0] == "maximize"
    best_so_far: float | None = None
    history: list[tuple[int, float, float]] = []
    for t in complete:
        value = float(t.value)
        if best_so_far is None or (value > best_so_far if maximize else value < best_so_far):
            best_so_far = value
        history.append((t.number, value, best_so_far))
    return tuple(history)
