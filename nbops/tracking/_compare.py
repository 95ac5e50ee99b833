"""``nbops.compare``: runs side by side in the notebook, with no server.

Metric curves overlaid per metric, a parameter table with the differences highlighted, and a
parallel-coordinates view of the parameters against one metric; all drawn with matplotlib as
inline SVG, every value escaped.
"""

from __future__ import annotations

import io
import math
import os
import re
from collections.abc import Iterable, Sequence
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbops.errors import InvalidValueError, NbopsError
from nbops.fileio import write_atomic
from nbops.store import RunStore, open_store
from nbops.tracking._query import StoredRun
from nbops.tracking._system import PREFIX as SYSTEM

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

#: At most this many metrics are drawn when none are named.
MAX_METRICS = 12
#: A legend lists at most this many runs, then "and N more" (the runs table lists them all).
MAX_LEGEND = 8
_STYLE = """<style>
.nbops-compare table {border-collapse: collapse; margin: 0.5em 0; font-size: 90%}
.nbops-compare th, .nbops-compare td {border: 1px solid #ddd; padding: 2px 6px; text-align: left}
.nbops-compare tr.nbops-diff td {background: #fff3c4}
.nbops-compare .nbops-charts {display: grid; gap: 8px;
  grid-template-columns: repeat(auto-fill, minmax(380px, 1fr))}
.nbops-compare .nbops-charts figure {margin: 0; min-width: 0}
.nbops-compare .nbops-charts svg {max-width: 100%; height: auto}
</style>"""


def compare(
    runs: Any,
    metrics: Sequence[str] | str | None = None,
    *,
    x: str = "step",
    target: str | None = None,
    store: RunStore | str | None = None,
) -> Comparison:
    """Compare runs: return an object that renders in Jupyter and saves to HTML.

    Args:
        runs: Run ids (or unique prefixes), runs (:class:`Run`, :class:`StoredRun`), or the
            DataFrame :func:`nbops.runs` returns (its ``id`` column).
        metrics: The metrics to draw; default every metric the runs logged (system metrics
            excepted, at most 12).
        x: The x axis of the curves: ``"step"`` or ``"time"`` (seconds since each run started).
        target: The metric of the parallel-coordinates view; default the first metric.
        store: The store (or its folder or URL); default the project's.
    """
    if x not in ("step", "time"):
        raise InvalidValueError(f"x must be 'step' or 'time', not {x!r}")
    target_store = open_store(store)
    found = [_stored(item, target_store) for item in _items(runs)]
    if not found:
        raise InvalidValueError("compare() needs at least one run id")
    return Comparison(found, metrics=metrics, x=x, target=target)


def _items(runs: Any) -> list[Any]:
    if isinstance(runs, (str, StoredRun)) or (hasattr(runs, "store") and hasattr(runs, "id")):
        return [runs]
    columns = getattr(runs, "columns", None)
    if columns is not None:
        if "id" not in columns:
            raise InvalidValueError("compare() takes a DataFrame from nbops.runs() (an id column)")
        return list(runs["id"])
    if isinstance(runs, Iterable):
        return list(runs)
    raise InvalidValueError(f"compare() takes run ids or runs, not {type(runs).__name__}")


def _stored(item: Any, store: RunStore) -> StoredRun:
    if isinstance(item, StoredRun):
        return item
    if isinstance(item, str):
        return StoredRun(store.get_run(store.resolve_id(item)), store)
    run_id, run_store = getattr(item, "id", None), getattr(item, "store", None)
    if isinstance(run_id, str) and isinstance(run_store, RunStore):
        flush = getattr(item, "flush", None)
        if callable(flush) and not getattr(item, "finished", True):
            flush()
        return StoredRun(run_store.get_run(run_id), run_store)
    raise InvalidValueError(f"compare() takes run ids or runs, not {type(item).__name__}")


class Comparison:
    """Runs compared: :meth:`figures`, :meth:`params`, ``_repr_html_`` and :meth:`save`."""

    def __init__(
        self,
        runs: list[StoredRun],
        *,
        metrics: Sequence[str] | str | None = None,
        x: str = "step",
        target: str | None = None,
    ) -> None:
        self.runs = runs
        self.x = x
        self._histories = {run.id: run.history() for run in runs}
        logged = sorted({c for h in self._histories.values() for c in _metric_columns(h)})
        if metrics is None:
            chosen = logged[:MAX_METRICS]
        else:
            chosen = [metrics] if isinstance(metrics, str) else list(metrics)
            unknown = [m for m in chosen if m not in logged]
            if unknown:
                raise InvalidValueError(
                    f"no run logged metric {unknown[0]!r}; logged: {', '.join(logged) or 'none'}"
                )
        self.metrics = chosen
        if target is not None and target not in logged:
            raise InvalidValueError(f"no run logged metric {target!r} (target)")
        self.target = target if target is not None else (chosen[0] if chosen else None)

    # --- data ---------------------------------------------------------------------------------
    def params(self) -> pd.DataFrame:
        """One row per parameter, one column per run (named ``name (id)``)."""
        import pandas as pd

        keys = sorted({k for run in self.runs for k in run.params})
        return pd.DataFrame(
            {_label(run): [run.params.get(k) for k in keys] for run in self.runs}, index=keys
        )

    def differing(self) -> list[str]:
        """The parameters whose values are not the same in every run."""
        frame = self.params()
        return [k for k in frame.index if len({repr(v) for v in frame.loc[k]}) > 1]

    # --- charts -------------------------------------------------------------------------------
    def figures(self) -> dict[str, Figure]:
        """One matplotlib Figure per metric (the runs' curves), and ``"parallel coordinates"``."""
        charts = {metric: self._curves(metric) for metric in self.metrics}
        parallel = self._parallel()
        if parallel is not None:
            charts["parallel coordinates"] = parallel
        return charts

    def _curves(self, metric: str) -> Figure:
        figure = _figure((5.2, 3.4))
        axes = figure.add_subplot()
        if len(self.runs) > 10:  # the default cycle repeats after 10 colours
            from matplotlib import colormaps

            axes.set_prop_cycle(color=[colormaps["tab20"](i) for i in range(20)])
        for run in self.runs:
            history = self._histories[run.id]
            if metric not in history.columns:
                continue
            rows = history[history[metric].notna()]
            if self.x == "step":
                xs = list(rows["step"])
            else:
                xs = [t - run.record.start_time for t in rows[_time_column(history)]]
            axes.plot(
                xs,
                list(rows[metric]),
                marker="." if len(rows) < 30 else None,
                label=_short(_label(run)),
            )
        axes.set_title(_short(metric, 60))
        axes.set_xlabel("step" if self.x == "step" else "seconds since start")
        if self.x == "step":
            from matplotlib.ticker import MaxNLocator

            axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_ylabel(_short(metric, 40))
        axes.grid(alpha=0.3)
        _legend(axes, fontsize="small")
        figure.tight_layout()
        return figure

    def _parallel(self) -> Figure | None:
        """Parameters that differ (numbers as they are, other values as categories) and the
        target metric's last value, each on its own normalised axis; one line per run."""
        if self.target is None or len(self.runs) < 2:
            return None
        frame = self.params()
        axes_names = self.differing()[:10]
        columns: list[tuple[str, list[float], list[str] | None]] = []
        for name in axes_names:
            values = list(frame.loc[name])
            if all(_number(v) is not None for v in values):
                columns.append((name, [float(_number(v) or 0.0) for v in values], None))
            else:
                labels = sorted({_short(str(v), 20) for v in values})
                columns.append(
                    (name, [float(labels.index(_short(str(v), 20))) for v in values], labels)
                )
        scores = [_last(self._histories[run.id], self.target) for run in self.runs]
        columns.append((self.target, scores, None))
        figure = _figure((max(4.5, 1.4 * len(columns) + 1.5), 3.6))
        axes = figure.add_subplot()
        finite = [s for s in scores if math.isfinite(s)]
        low, high = (min(finite), max(finite)) if finite else (0.0, 1.0)
        from matplotlib import colormaps

        cmap = colormaps["viridis"]
        for index, run in enumerate(self.runs):
            ys = [_scaled(values[index], values) for _, values, _ in columns]
            shade = (scores[index] - low) / (high - low) if high > low else 0.5
            color = cmap(shade if math.isfinite(shade) else 0.0)
            axes.plot(range(len(columns)), ys, color=color, marker="o", label=_short(_label(run)))
        for position, (_, values, categories) in enumerate(columns):
            axes.axvline(position, color="#888", linewidth=0.8)
            finite_values = [v for v in values if math.isfinite(v)]
            if categories is not None:
                for code, text in enumerate(categories):
                    axes.annotate(
                        text,
                        (position, _scaled(float(code), values)),
                        fontsize=7,
                        xytext=(3, 0),
                        textcoords="offset points",
                    )
            elif finite_values:
                for value in (min(finite_values), max(finite_values)):
                    axes.annotate(
                        f"{value:.4g}",
                        (position, _scaled(value, values)),
                        fontsize=7,
                        xytext=(3, 0),
                        textcoords="offset points",
                    )
        axes.set_xticks(range(len(columns)))
        axes.set_xticklabels([_short(name, 18) for name, _, _ in columns], rotation=20, fontsize=8)
        axes.set_yticks([])
        axes.set_ylim(-0.08, 1.08)
        axes.set_title(f"parameters against {_short(self.target, 40)} (last value)")
        _legend(axes, fontsize="x-small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
        figure.tight_layout()
        return figure

    # --- rendering ----------------------------------------------------------------------------
    def to_html(self) -> str:
        """The comparison as an HTML fragment (tables and inline SVG charts)."""
        runs_rows = "".join(
            f"<tr><td>{escape(r.id)}</td><td>{escape(r.name)}</td><td>{escape(r.status)}</td>"
            f"<td>{escape(', '.join(r.record.tags))}</td></tr>"
            for r in self.runs
        )
        parts = [
            _STYLE,
            "<div class='nbops-compare'>",
            "<table><tr><th>run</th><th>name</th><th>status</th><th>tags</th></tr>",
            runs_rows,
            "</table>",
            self._params_html(),
            "<div class='nbops-charts'>",
        ]
        for title, figure in self.figures().items():
            parts.append(f"<figure title='{escape(title, quote=True)}'>{_svg(figure)}</figure>")
        parts.append("</div></div>")
        return "".join(parts)

    def _params_html(self) -> str:
        frame = self.params()
        if frame.empty:
            return "<p>No parameters.</p>"
        differing = set(self.differing())
        head = "".join(f"<th>{escape(str(c))}</th>" for c in frame.columns)
        rows = []
        for key in frame.index:
            cells = "".join(f"<td>{escape(_text(v))}</td>" for v in frame.loc[key])
            marker = " class='nbops-diff'" if key in differing else ""
            rows.append(f"<tr{marker}><th>{escape(str(key))}</th>{cells}</tr>")
        return f"<table><tr><th>parameter</th>{head}</tr>{''.join(rows)}</table>"

    def _repr_html_(self) -> str:
        return self.to_html()

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write a standalone HTML page (atomically); return its path."""
        title = "nbops: " + ", ".join(run.name for run in self.runs)
        page = (
            "<!DOCTYPE html><html><head><meta charset='utf-8'>"
            f"<title>{escape(title)}</title></head><body>{self.to_html()}</body></html>"
        )
        return write_atomic(path, page)

    def __repr__(self) -> str:
        return f"<nbops.Comparison of {len(self.runs)} runs, metrics {self.metrics}>"


def _figure(size: tuple[float, float]) -> Figure:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise NbopsError(
            "nbops.compare() draws with matplotlib: pip install matplotlib (or nbops[demo])"
        ) from None
    return Figure(figsize=size, dpi=96)


def _legend(axes: Any, **kwargs: Any) -> None:
    """A legend of the first :data:`MAX_LEGEND` - 1 lines and "and N more" when there are more."""
    handles, labels = axes.get_legend_handles_labels()
    if len(handles) > MAX_LEGEND:
        from matplotlib.lines import Line2D

        hidden = len(handles) - (MAX_LEGEND - 1)
        handles = [*handles[: MAX_LEGEND - 1], Line2D([], [], linestyle="none")]
        labels = [*labels[: MAX_LEGEND - 1], f"and {hidden} more"]
    if handles:
        axes.legend(handles, labels, **kwargs)


def _svg(figure: Figure) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None}, bbox_inches="tight")
    text = buffer.getvalue()
    return text[text.index("<svg") :]  # drop the XML declaration and doctype (inline SVG)


def _metric_columns(history: pd.DataFrame) -> list[str]:
    return [c for c in history.columns[1:-1] if not str(c).startswith(SYSTEM)]


def _time_column(history: pd.DataFrame) -> str:
    return str(history.columns[-1])


def _last(history: pd.DataFrame, metric: str) -> float:
    if metric not in history.columns:
        return math.nan
    values = history[metric].dropna()
    return float(values.iloc[-1]) if len(values) else math.nan


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _scaled(value: float, values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    if not finite or not math.isfinite(value):
        return 0.0
    low, high = min(finite), max(finite)
    return 0.5 if high == low else (value - low) / (high - low)


def _label(run: StoredRun) -> str:
    return f"{run.name} ({run.id[:8]})"


def _short(text: str, limit: int = 32) -> str:
    # matplotlib treats $...$ as mathtext: escape dollars so a name is drawn as written
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return re.sub(r"\$", r"\\$", text)


def _text(value: Any) -> str:
    return "" if value is None else str(value)
