"""``RunsPanel``: an ipywidgets list of runs that draws the selected runs' metric curves.

A thin shell over the public API: the list comes from ``nbops.runs()``, the curves from
``nbops.compare()`` (which reads ``get_run(id).history()``). It refreshes from a background
thread while any listed run is running, and stops on :meth:`RunsPanel.close`.
"""

from __future__ import annotations

import logging
import threading
from html import escape
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from nbops.tracking._compare import _svg

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

logger = logging.getLogger(__name__)

#: Status filter choices (label, value passed to ``nbops.runs(status=...)``).
STATUSES = [
    ("any status", ""),
    ("running", "running"),
    ("finished", "finished"),
    ("failed", "failed"),
    ("killed", "killed"),
    ("crashed", "crashed"),
]
#: Sort choices before the per-metric ones.
SORTS = [
    ("newest first", "-start_time"),
    ("oldest first", "start_time"),
    ("name", "name"),
    ("status", "status"),
]
#: Runs listed at most (the most recent first when no sort is chosen).
LIMIT = 500
#: The charts' grid: as many columns of at least this width as fit, wrapping below; a chart
#: (about 500 CSS pixels wide) shrinks to its column rather than spilling over the next one.
CHART_MIN_WIDTH = "380px"
_STYLE = "<style>.nbops-runs-charts img {max-width: 100%; height: auto}</style>"


class RunsPanel(widgets.VBox):  # type: ignore[misc]
    """Runs of a project (or every project): filter, status, sort, and a multi-select list;
    the selected runs' metric curves are drawn below, one chart per metric, side by side in a
    grid that wraps to the panel's width.

    Args:
        project: Only this project's runs (default: every project).
        metrics: The metrics to draw (default: every metric the selected runs logged).
        x: ``"step"`` or ``"time"`` for the curves' x axis.
        interval: Seconds between refreshes while a listed run is running.
        store: The store (or its folder or URL); default the project's.

    Drive it from Python as from the browser: assign ``filter_text.value``,
    ``status.value``, ``sort.value`` or ``runs_list.value`` (run ids), or click
    ``refresh_button``. :attr:`figures` holds the charts last drawn, :attr:`charts` their grid
    (one ``Output`` per chart) and :attr:`message` what shows when there is nothing to draw.
    """

    def __init__(
        self,
        project: str | None = None,
        *,
        metrics: list[str] | None = None,
        x: str = "step",
        interval: float = 2.0,
        store: Any = None,
        **kwargs: Any,
    ) -> None:
        self.project = project
        self.metrics = metrics
        self.x = x
        self.interval = interval
        self.store = store
        self.figures: dict[str, Figure] = {}
        self.filter_text = widgets.Text(
            placeholder="filter: name, id or tag", description="filter", continuous_update=False
        )
        self.status = widgets.Dropdown(options=STATUSES, value="", description="status")
        self.sort = widgets.Dropdown(options=SORTS, value="-start_time", description="sort")
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh")
        self.header = widgets.HTML()
        self.runs_list = widgets.SelectMultiple(options=[], rows=8, description="runs")
        self.runs_list.layout.width = "100%"
        self.message = widgets.HTML()
        self.style = widgets.HTML(_STYLE)
        self.charts = widgets.GridBox(
            [],
            layout=widgets.Layout(
                width="100%",
                grid_template_columns=f"repeat(auto-fill, minmax({CHART_MIN_WIDTH}, 1fr))",
                grid_gap="8px",
            ),
        )
        self.charts.add_class("nbops-runs-charts")
        self._outputs: list[widgets.Output] = []  # reused between draws (no flicker when live)
        self.errors = widgets.Output()
        self._running: set[str] = set()
        self._drawn: tuple[str, ...] | None = None  # None: nothing drawn yet
        self._lock = threading.RLock()  # one refresh at a time (thread and callbacks)
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        for control in (self.filter_text, self.status, self.sort):
            control.observe(self._on_change, names="value")
        self.runs_list.observe(self._on_select, names="value")
        self.refresh_button.on_click(self._on_refresh)
        super().__init__(
            [
                widgets.HBox([self.filter_text, self.status, self.sort, self.refresh_button]),
                self.header,
                self.runs_list,
                self.message,
                self.style,
                self.charts,
                self.errors,
            ],
            **kwargs,
        )
        self.add_class("nbops-runs-panel")
        self.refresh()
        self.start()

    # --- data ---------------------------------------------------------------------------------
    def _frame(self) -> pd.DataFrame:
        import nbops

        return nbops.runs(
            self.project,
            store=self.store,
            status=self.status.value or None,
            sort=self.sort.value,
            limit=LIMIT,
        )

    def _matching(self, frame: pd.DataFrame) -> pd.DataFrame:
        text = self.filter_text.value.strip().lower()
        if not text or frame.empty:
            return frame
        keep = [
            text in str(name).lower()
            or str(run_id).lower().startswith(text)
            or any(text in str(tag).lower() for tag in tags)
            for run_id, name, tags in zip(frame["id"], frame["name"], frame["tags"], strict=True)
        ]
        return frame[keep]

    # --- refreshing ---------------------------------------------------------------------------
    def refresh(self) -> None:
        """Read the runs again, update the list (keeping the selection) and the curves."""
        with self._lock, self._reporting("refresh"):
            frame = self._frame()
            self._sort_options(frame)
            shown = self._matching(frame)
            options = [
                (f"{name} ({run_id[:8]}) · {status}", run_id)
                for run_id, name, status in zip(
                    shown["id"], shown["name"], shown["status"], strict=True
                )
            ]
            kept = tuple(v for v in self.runs_list.value if v in {o[1] for o in options})
            if options != list(self.runs_list.options):
                self.runs_list.unobserve(self._on_select, names="value")
                try:
                    self.runs_list.options = options
                    self.runs_list.value = kept
                finally:
                    self.runs_list.observe(self._on_select, names="value")
            statuses = dict(zip(frame["id"], frame["status"], strict=True))
            self._running = {i for i, s in statuses.items() if s == "running"}
            running = len(self._running)
            self.header.value = (
                f"<b>{len(shown)}</b> of {len(frame)} run(s)"
                + (f" in project <code>{escape(self.project)}</code>" if self.project else "")
                + (f", {running} running" if running else "")
            )
            live = any(i in self._running for i in kept)
            if kept != self._drawn or live or (kept and not self.figures):
                self.draw()

    def _sort_options(self, frame: pd.DataFrame) -> None:
        metrics = sorted(c[len("metrics.") :] for c in frame.columns if c.startswith("metrics."))
        options = list(SORTS)
        for metric in metrics:
            options += [(f"{metric} (high first)", f"-metrics.{metric}")]
            options += [(f"{metric} (low first)", f"metrics.{metric}")]
        if options != list(self.sort.options):
            current = self.sort.value
            self.sort.unobserve(self._on_change, names="value")
            try:
                self.sort.options = options
                self.sort.value = current if current in {v for _, v in options} else "-start_time"
            finally:
                self.sort.observe(self._on_change, names="value")

    def draw(self) -> None:
        """Draw the selected runs' curves into :attr:`charts` (one SVG chart per metric)."""
        import nbops

        with self._lock, self._reporting("drawing"):
            selected = tuple(self.runs_list.value)
            self._drawn = selected
            if not selected:
                self.figures = {}
                self._show([], "<p>Select runs to draw their metrics.</p>")
                return
            comparison = nbops.compare(
                list(selected), metrics=self.metrics, x=self.x, store=self.store
            )
            self.figures = {
                m: f for m, f in comparison.figures().items() if m in comparison.metrics
            }
            empty = "" if self.figures else "<p>The selected runs logged no metrics.</p>"
            self._show([_svg(figure) for figure in self.figures.values()], empty)

    def _show(self, svgs: list[str], message: str) -> None:
        """Put each SVG in its own grid cell (reusing the cells' ``Output`` widgets)."""
        from IPython.display import SVG

        self.message.value = message
        while len(self._outputs) < len(svgs):
            self._outputs.append(widgets.Output(layout=widgets.Layout(min_width="0")))
        for output, svg in zip(self._outputs, svgs, strict=False):
            output.outputs = ()
            output.append_display_data(SVG(svg))
        cells = tuple(self._outputs[: len(svgs)])
        if self.charts.children != cells:
            self.charts.children = cells

    # --- callbacks ----------------------------------------------------------------------------
    def _on_change(self, _change: Any) -> None:
        self.refresh()

    def _on_select(self, _change: Any) -> None:
        self.draw()

    def _on_refresh(self, button: Any) -> None:
        button.disabled = True
        try:
            self.refresh()
        finally:
            button.disabled = False

    def _reporting(self, what: str) -> Any:
        return _Report(self.errors, what)

    # --- live updates -------------------------------------------------------------------------
    def start(self) -> RunsPanel:
        """Refresh every :attr:`interval` seconds until :meth:`close` (a daemon thread, started
        by the constructor; ``interval=0`` refreshes only on demand)."""
        if self._thread is None and self.interval > 0:
            self._thread = threading.Thread(target=self._loop, daemon=True, name="nbops-runs")
            self._thread.start()
        return self

    @property
    def live(self) -> bool:
        """True while the refresh thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        while not self._closed.wait(self.interval):
            self.refresh()  # new runs appear; the selected runs' curves grow while they run

    def close(self) -> None:
        """Stop refreshing and close the widgets."""
        self._closed.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=max(self.interval, 1.0) + 5.0)
        super().close()


class _Report:
    """Context manager: an exception becomes a line in the panel's error Output."""

    def __init__(self, output: Any, what: str) -> None:
        self.output = output
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: BaseException | None, _tb: Any) -> bool:
        if exc is None or not isinstance(exc, Exception):
            return False
        from IPython.display import HTML

        logger.debug("runs panel %s failed", self.what, exc_info=exc)
        message = f"{self.what} failed: {type(exc).__name__}: {exc}"
        self.output.outputs = ()
        self.output.append_display_data(HTML(f"<pre>{escape(message)}</pre>"))
        return True
