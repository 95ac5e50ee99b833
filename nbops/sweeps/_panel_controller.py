"""Everything the sweep panel shows, computed without ipywidgets (testable without a browser).

:class:`PanelController` turns a :class:`~nbops.sweeps.Sweep` into a :class:`PanelState`
(progress, timing, best trial, recent trials, errors, history, importances); :func:`render_html`
and the SVG helpers turn that into escaped HTML. Importances are recomputed at most once per
``importance_every`` seconds, and only when new trials completed.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrialRow:
    number: int
    state: str
    value: str
    params: str
    seconds: float | None


@dataclass(frozen=True)
class PanelState:
    """One refresh of the panel."""

    name: str
    done: int
    total: int | None
    running: int
    elapsed: float
    eta: float | None
    best_value: float | None
    best_params: dict[str, Any]
    recent: tuple[TrialRow, ...]
    errors: tuple[tuple[int, str], ...]
    history: tuple[tuple[int, float, float], ...]  # (trial number, value, best so far)
    importances: dict[str, float] = field(default_factory=dict)
    finished: bool = False
    stopped: bool = False


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = max(0.0, seconds)
    if seconds < 10:
        return f"{seconds:.1f}s"
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, sec = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


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

    def request_stop(self) -> None:
        """The Stop button: stop the sweep (idempotent)."""
        if not self.stop_requested:
            self.stop_requested = True
            self.sweep.stop()

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
        elapsed = (self.sweep.finished_at or now) - self.sweep.started
        eta = None
        if total is not None and done and total > done and not self.sweep.done:
            eta = elapsed / done * (total - done)
        single = len(study.directions) == 1
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        best_value, best_params = None, {}
        if single and complete:
            best = study.best_trial
            best_value, best_params = best.value, dict(best.params)
        history: list[tuple[int, float, float]] = []
        if single:
            maximize = study.direction.name == "MAXIMIZE"
            best_so_far: float | None = None
            for t in sorted(complete, key=lambda t: t.number):
                value = float(t.value)
                if best_so_far is None or (
                    value > best_so_far if maximize else value < best_so_far
                ):
                    best_so_far = value
                history.append((t.number, value, best_so_far))
        rows = tuple(self._row(t) for t in sorted(trials, key=lambda t: -t.number)[: self.recent])
        errors = tuple(
            (t.number, str(t.user_attrs["nbops.error"]))
            for t in sorted(trials, key=lambda t: t.number)
            if "nbops.error" in t.user_attrs
        ) + tuple((-1, m) for m in getattr(self.sweep, "_worker_errors", []))
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
            history=tuple(history),
            importances=self._maybe_importances(study, len(complete), now, force, single),
            finished=self.sweep.done,
            stopped=self.sweep.stopped,
        )

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
        except Exception as exc:  # noqa: BLE001 - too few distinct values, one parameter, ...
            logger.debug("no parameter importances yet: %s", exc)
        return self._importances


# --- rendering --------------------------------------------------------------------------------
def history_svg(
    points: Sequence[tuple[int, float, float]], width: int = 320, height: int = 120
) -> str:
    """A small SVG: each completed trial's value (dots) and the best so far (line)."""
    if not points:
        return "<svg class='nbops-history' width='0' height='0'></svg>"
    xs = [p[0] for p in points]
    ys = [v for p in points for v in (p[1], p[2])]
    x0, x1 = min(xs), max(xs) or 1
    y0, y1 = min(ys), max(ys)
    span_x, span_y = (x1 - x0) or 1, (y1 - y0) or 1
    pad = 8

    def sx(x: float) -> float:
        return pad + (x - x0) / span_x * (width - 2 * pad)

    def sy(y: float) -> float:
        return height - pad - (y - y0) / span_y * (height - 2 * pad)

    dots = "".join(
        f"<circle cx='{sx(n):.1f}' cy='{sy(v):.1f}' r='2.5' fill='#4c78a8'>"
        f"<title>trial {n}: {escape(_fmt(v))}</title></circle>"
        for n, v, _ in points
    )
    line = " ".join(f"{sx(n):.1f},{sy(b):.1f}" for n, _, b in points)
    return (
        f"<svg class='nbops-history' width='{width}' height='{height}' "
        f"xmlns='http://www.w3.org/2000/svg'><title>optimisation history</title>"
        f"<polyline points='{line}' fill='none' stroke='#e45756' stroke-width='1.5'/>{dots}"
        f"<text x='{pad}' y='10' font-size='9'>{escape(_fmt(y1))}</text>"
        f"<text x='{pad}' y='{height - 1}' font-size='9'>{escape(_fmt(y0))}</text></svg>"
    )


def importances_svg(importances: dict[str, float], width: int = 320) -> str:
    """A small SVG bar chart of parameter importances."""
    if not importances:
        return "<svg class='nbops-importances' width='0' height='0'></svg>"
    items = sorted(importances.items(), key=lambda kv: -kv[1])[:10]
    bar_h, label_w = 16, 110
    height = bar_h * len(items) + 4
    top = max(v for _, v in items) or 1.0
    bars = "".join(
        f"<text x='0' y='{i * bar_h + 12}' font-size='10'>{escape(name[:18])}</text>"
        f"<rect x='{label_w}' y='{i * bar_h + 2}' height='{bar_h - 4}' "
        f"width='{max(1.0, v / top * (width - label_w - 40)):.1f}' fill='#72b7b2'/>"
        f"<text x='{width - 36}' y='{i * bar_h + 12}' font-size='10'>{v:.2f}</text>"
        for i, (name, v) in enumerate(items)
    )
    return (
        f"<svg class='nbops-importances' width='{width}' height='{height}' "
        f"xmlns='http://www.w3.org/2000/svg'><title>parameter importances</title>{bars}</svg>"
    )


def header_html(state: PanelState) -> str:
    total = "?" if state.total is None else str(state.total)
    status = "stopped" if state.stopped else "done" if state.finished else "running"
    best = "no completed trial yet"
    if state.best_value is not None:
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in state.best_params.items())
        best = f"best {_fmt(state.best_value)} ({params})"
    eta = f", ETA {duration(state.eta)}" if state.eta is not None else ""
    return (
        f"<div class='nbops-sweep-header'><b>{escape(state.name)}</b> {escape(status)}: "
        f"{state.done}/{escape(total)} trials, {state.running} running, "
        f"elapsed {duration(state.elapsed)}{escape(eta)}<br>{escape(best)}</div>"
    )


def table_html(rows: Sequence[TrialRow]) -> str:
    body = "".join(
        f"<tr><td>{r.number}</td><td>{escape(r.state)}</td><td>{escape(r.value)}</td>"
        f"<td>{escape(r.params)}</td>"
        f"<td>{escape(duration(r.seconds)) if r.seconds else ''}</td></tr>"
        for r in rows
    )
    return (
        "<table class='nbops-trials'><tr><th>#</th><th>state</th><th>value</th><th>params</th>"
        f"<th>time</th></tr>{body}</table>"
    )


def errors_html(errors: Sequence[tuple[int, str]]) -> str:
    if not errors:
        return ""
    items = "".join(
        f"<li>{'worker' if n < 0 else f'trial {n}'}: {escape(m)}</li>" for n, m in errors[-10:]
    )
    return f"<ul class='nbops-errors'>{items}</ul>"


def plots_html(state: PanelState) -> str:
    """The optimisation history and the parameter importances, side by side, with titles."""
    title = "<div style='font-size:12px;color:#555;margin-bottom:2px'>{}</div>"
    history = title.format("Objective per trial (line: best so far)") + history_svg(state.history)
    importances = (
        title.format("Parameter importance (Optuna)") + importances_svg(state.importances)
        if state.importances
        else ""
    )
    return f"<div style='display:flex;gap:24px'><div>{history}</div><div>{importances}</div></div>"


def render_html(state: PanelState) -> str:
    """The whole panel as static HTML (``Sweep._repr_html_``)."""
    return (
        header_html(state)
        + table_html(state.recent)
        + plots_html(state)
        + errors_html(state.errors)
    )
