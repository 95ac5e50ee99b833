"""The sweep panel as escaped HTML and small SVG plots (history, Pareto front, parallel
coordinates, importances). Everything user-provided goes through :func:`html.escape`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

from nbops.sweeps._panel_state import PanelState, TrialRow, _fmt, duration

_PAD_LEFT, _PAD, _AXIS = 46, 10, "#888"


def _log_scale(values: Sequence[float]) -> bool:
    """Log axis when every value is positive and they span more than two decades."""
    return bool(values) and min(values) > 0 and max(values) / min(values) > 100


class _Scale:
    def __init__(self, lo: float, hi: float, a: float, b: float, log: bool = False) -> None:
        self.log = log
        self.lo, self.hi = (math.log10(lo), math.log10(hi)) if log else (lo, hi)
        if self.hi == self.lo:
            self.lo, self.hi = self.lo - 0.5, self.hi + 0.5
        self.a, self.b = a, b

    def __call__(self, v: float) -> float:
        v = math.log10(v) if self.log else v
        return self.a + (v - self.lo) / (self.hi - self.lo) * (self.b - self.a)


def _axes(x: _Scale, y: _Scale, width: int, height: int, xlabel: str, ylabel: str) -> str:
    lo, hi = (10**y.lo, 10**y.hi) if y.log else (y.lo, y.hi)
    xlo, xhi = (10**x.lo, 10**x.hi) if x.log else (x.lo, x.hi)
    bottom = height - 22
    return (
        f"<line x1='{_PAD_LEFT}' y1='{_PAD}' x2='{_PAD_LEFT}' y2='{bottom}' stroke='{_AXIS}'/>"
        f"<line x1='{_PAD_LEFT}' y1='{bottom}' x2='{width - _PAD}' y2='{bottom}' "
        f"stroke='{_AXIS}'/>"
        f"<text x='{_PAD_LEFT - 3}' y='{_PAD + 8}' font-size='9' text-anchor='end'>"
        f"{escape(_fmt(hi))}</text>"
        f"<text x='{_PAD_LEFT - 3}' y='{bottom}' font-size='9' text-anchor='end'>"
        f"{escape(_fmt(lo))}</text>"
        f"<text x='{_PAD_LEFT}' y='{bottom + 11}' font-size='9'>{escape(_fmt(xlo))}</text>"
        f"<text x='{width - _PAD}' y='{bottom + 11}' font-size='9' text-anchor='end'>"
        f"{escape(_fmt(xhi))}</text>"
        f"<text x='{(width + _PAD_LEFT) / 2:.0f}' y='{height - 2}' font-size='10' "
        f"text-anchor='middle'>{escape(xlabel)}</text>"
        f"<text x='10' y='{(height - 22) / 2:.0f}' font-size='10' text-anchor='middle' "
        f"transform='rotate(-90 10 {(height - 22) / 2:.0f})'>{escape(ylabel)}"
        f"{' (log)' if y.log else ''}</text>"
    )


def history_svg(
    points: Sequence[tuple[int, float, float]],
    width: int = 340,
    height: int = 150,
    label: str = "objective",
) -> str:
    """Each completed trial's value (dots) and the best so far (line), with axes; a log
    scale when the values span decades."""
    if not points:
        return "<svg class='nbops-history' width='0' height='0'></svg>"
    ys = [v for p in points for v in (p[1], p[2])]
    xs = [p[0] for p in points]
    sx = _Scale(min(xs), max(xs), _PAD_LEFT + 4, width - _PAD)
    sy = _Scale(min(ys), max(ys), height - 26, _PAD + 4, log=_log_scale(ys))
    dots = "".join(
        f"<circle cx='{sx(n):.1f}' cy='{sy(v):.1f}' r='2.5' fill='#4c78a8'>"
        f"<title>trial {n}: {escape(_fmt(v))}</title></circle>"
        for n, v, _ in points
    )
    line = " ".join(f"{sx(n):.1f},{sy(b):.1f}" for n, _, b in points)
    return (
        f"<svg class='nbops-history' width='{width}' height='{height}' "
        f"xmlns='http://www.w3.org/2000/svg'><title>optimisation history</title>"
        + _axes(sx, sy, width, height, "trial", label)
        + f"<polyline points='{line}' fill='none' stroke='#e45756' stroke-width='1.5'/>{dots}"
        "</svg>"
    )


def pareto_svg(state: PanelState, width: int = 340, height: int = 170) -> str:
    """The first two objectives of every completed trial; the Pareto front highlighted."""
    if len(state.objectives) < 2 or not state.points:
        return "<svg class='nbops-pareto' width='0' height='0'></svg>"
    xs = [p[0][0] for p in state.points]
    ys = [p[0][1] for p in state.points]
    sx = _Scale(min(xs), max(xs), _PAD_LEFT + 4, width - _PAD, log=_log_scale(xs))
    sy = _Scale(min(ys), max(ys), height - 26, _PAD + 4, log=_log_scale(ys))
    front = {tuple(values) for _, values, _ in state.pareto}
    dots = "".join(
        f"<circle cx='{sx(v[0]):.1f}' cy='{sy(v[1]):.1f}' r='{3.5 if v in front else 2.5}' "
        f"fill='{'#e45756' if v in front else '#9ab'}'><title>"
        f"{escape(', '.join(f'{o}={_fmt(x)}' for o, x in zip(state.objectives, v, strict=False)))}"
        "</title></circle>"
        for v, _ in state.points
    )
    return (
        f"<svg class='nbops-pareto' width='{width}' height='{height}' "
        f"xmlns='http://www.w3.org/2000/svg'><title>Pareto front</title>"
        + _axes(sx, sy, width, height, state.objectives[0], state.objectives[1])
        + dots
        + "</svg>"
    )


def parallel_svg(state: PanelState, width: int = 420, height: int = 160) -> str:
    """Parallel coordinates: one axis per numeric parameter and the first objective; one
    line per completed trial, coloured by its objective (dark: better)."""
    numeric = sorted(
        {
            k
            for _, params in state.points
            for k, v in params.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)
        }
    )
    if not state.points or not numeric:
        return "<svg class='nbops-parallel' width='0' height='0'></svg>"
    axes = [*numeric[:8], state.objectives[0]]
    columns: dict[str, list[float]] = {a: [] for a in axes}
    for values, params in state.points:
        for a in numeric[:8]:
            v = params.get(a)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                columns[a].append(float(v))
        columns[axes[-1]].append(values[0])
    step = (width - 2 * _PAD) / max(1, len(axes) - 1)
    scales = {
        a: _Scale(min(col), max(col), height - 20, _PAD, log=_log_scale(col))
        for a, col in columns.items()
        if col
    }
    objective = columns[axes[-1]]
    lo, hi = min(objective), max(objective)
    better_high = state.directions[0] == "maximize"
    lines = []
    for values, params in state.points:
        pts = []
        for i, a in enumerate(axes):
            v = values[0] if a == axes[-1] else params.get(a)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and a in scales:
                pts.append(f"{_PAD + i * step:.1f},{scales[a](float(v)):.1f}")
        share = 0.5 if hi == lo else (values[0] - lo) / (hi - lo)
        share = share if better_high else 1 - share
        colour = f"rgb({int(200 - 170 * share)},{int(120 - 60 * share)},{int(220 - 60 * share)})"
        lines.append(
            f"<polyline points='{' '.join(pts)}' fill='none' stroke-opacity='0.6' "
            f"stroke='{colour}'/>"
        )
    ticks = "".join(
        f"<line x1='{_PAD + i * step:.1f}' y1='{_PAD}' x2='{_PAD + i * step:.1f}' "
        f"y2='{height - 20}' stroke='{_AXIS}'/>"
        f"<text x='{_PAD + i * step:.1f}' y='{height - 6}' font-size='9' "
        f"text-anchor='{'start' if i == 0 else 'end' if i == len(axes) - 1 else 'middle'}'>"
        f"{escape(a[:14])}</text>"
        for i, a in enumerate(axes)
    )
    return (
        f"<svg class='nbops-parallel' width='{width}' height='{height}' "
        f"xmlns='http://www.w3.org/2000/svg'><title>parallel coordinates</title>"
        f"{''.join(lines)}{ticks}</svg>"
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


def _best_text(state: PanelState) -> str:
    if state.best_value is not None:
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in state.best_params.items())
        return f"best {state.objectives[0]} {_fmt(state.best_value)} ({params})"
    if state.pareto:
        return f"Pareto front: {len(state.pareto)} trial(s) trading off " + " vs ".join(
            f"{o} ({d})" for o, d in zip(state.objectives, state.directions, strict=False)
        )
    return "no completed trial yet"


def header_html(state: PanelState) -> str:
    total = "?" if state.total is None else str(state.total)
    status = "stopped" if state.stopped else "done" if state.finished else "running"
    eta = f", ETA {duration(state.eta)}" if state.eta is not None else ""
    return (
        f"<div class='nbops-sweep-header'><b>{escape(state.name)}</b> {escape(status)}: "
        f"{state.done}/{escape(total)} trials, {state.running} running, "
        f"elapsed {duration(state.elapsed)}{escape(eta)}<br>{escape(_best_text(state))}</div>"
    )


def table_html(rows: Sequence[TrialRow], objectives: Sequence[str] = ("value",)) -> str:
    body = "".join(
        f"<tr><td>{r.number}</td><td>{escape(r.state)}</td><td>{escape(r.value)}</td>"
        f"<td>{escape(r.params)}</td>"
        f"<td>{escape(duration(r.seconds)) if r.seconds else ''}</td></tr>"
        for r in rows
    )
    label = escape(", ".join(objectives))
    return (
        "<table class='nbops-trials'><tr><th>#</th><th>state</th>"
        f"<th>{label}</th><th>params</th><th>time</th></tr>{body}</table>"
    )


def pareto_html(state: PanelState) -> str:
    """The Pareto front as a table, one labelled column per objective."""
    if not state.pareto:
        return ""
    head = "".join(
        f"<th>{escape(o)} ({escape(d)})</th>"
        for o, d in zip(state.objectives, state.directions, strict=False)
    )
    body = "".join(
        f"<tr><td>{n}</td>"
        + "".join(f"<td>{escape(_fmt(v))}</td>" for v in values)
        + f"<td>{escape(', '.join(f'{k}={_fmt(v)}' for k, v in params.items()))}</td></tr>"
        for n, values, params in state.pareto
    )
    return f"<table class='nbops-pareto'><tr><th>#</th>{head}<th>params</th></tr>{body}</table>"


def errors_html(errors: Sequence[tuple[int, str, str]]) -> str:
    """Failed trials, each with its traceback folded under its message."""
    if not errors:
        return ""
    items = "".join(
        f"<li>{'worker' if n < 0 else f'trial {n}'}: "
        + (
            f"<details><summary>{escape(m)}</summary><pre>{escape(tb)}</pre></details>"
            if tb
            else escape(m)
        )
        + "</li>"
        for n, m, tb in errors[-10:]
    )
    return f"<ul class='nbops-errors'>{items}</ul>"


def plots_html(state: PanelState) -> str:
    """History (or the Pareto front), parallel coordinates and importances, with titles."""
    title = "<div style='font-size:12px;color:#555;margin-bottom:2px'>{}</div>"
    if len(state.objectives) > 1:
        first = title.format("Objectives of each trial (red: Pareto front)") + pareto_svg(state)
    else:
        first = title.format(f"{state.objectives[0]} per trial (line: best so far)") + history_svg(
            state.history, label=state.objectives[0]
        )
    parallel = (
        title.format("Parameters of each trial (parallel coordinates)") + parallel_svg(state)
        if state.points
        else ""
    )
    importances = (
        title.format("Parameter importance (Optuna)") + importances_svg(state.importances)
        if state.importances
        else ""
    )
    return (
        "<div style='display:flex;flex-wrap:wrap;gap:24px'>"
        f"<div>{first}</div><div>{parallel}</div><div>{importances}</div></div>"
    )


def render_html(state: PanelState) -> str:
    """The whole panel as static HTML (``Sweep._repr_html_``)."""
    return (
        header_html(state)
        + table_html(state.recent, state.objectives)
        + pareto_html(state)
        + plots_html(state)
        + errors_html(state.errors)
    )
