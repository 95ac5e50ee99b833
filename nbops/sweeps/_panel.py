"""``SweepPanel``: the live ipywidgets view of a sweep. All logic is in the controller."""

from __future__ import annotations

import logging
import threading
from typing import Any

import ipywidgets as widgets

from nbops.sweeps._panel_controller import (
    PanelController,
    PanelState,
    errors_html,
    header_html,
    plots_html,
    table_html,
)

logger = logging.getLogger(__name__)


class SweepPanel(widgets.VBox):  # type: ignore[misc]
    """Progress, best trial, recent trials, history, importances, errors and a Stop button.

    Refreshed from a background thread at most once per ``interval`` seconds while the sweep
    runs, so the kernel stays free (Stop works while the sweep runs in the background).
    """

    def __init__(self, sweep: Any, *, interval: float = 1.0, **kwargs: Any) -> None:
        self.controller = PanelController(sweep)
        self.interval = interval
        self.progress = widgets.IntProgress(value=0, min=0, max=1, description="trials")
        self.header = widgets.HTML()
        self.table = widgets.HTML()
        self.plots = widgets.HTML()
        self.errors = widgets.Output()
        self.stop_button = widgets.Button(description="Stop", button_style="danger", icon="stop")
        self.stop_button.on_click(self._on_stop)
        self._shown_errors = 0
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        super().__init__(
            [
                widgets.HBox([self.progress, self.stop_button]),
                self.header,
                self.table,
                self.plots,
                self.errors,
            ],
            **kwargs,
        )
        self.refresh(force=True)

    @property
    def sweep(self) -> Any:
        return self.controller.sweep

    def _on_stop(self, _button: Any) -> None:
        self.stop_button.disabled = True
        try:
            self.controller.request_stop()
            self.stop_button.description = "Stopping"
        except Exception as exc:  # noqa: BLE001 - a button callback shows its error in the panel
            with self.errors:
                print(f"Stop failed: {exc}")
            self.stop_button.disabled = False

    def refresh(self, *, force: bool = False) -> PanelState:
        """Read the sweep once and update every widget."""
        state = self.controller.snapshot(force=force)
        total = state.total if state.total is not None else max(state.done + state.running, 1)
        self.progress.max = max(total, 1)
        self.progress.value = min(state.done, self.progress.max)
        self.header.value = header_html(state)
        self.table.value = table_html(state.recent)
        self.plots.value = plots_html(state)
        new = state.errors[self._shown_errors :]
        if new:
            self._shown_errors = len(state.errors)
            self.errors.append_display_data(_html(errors_html(new)))
        if state.finished or state.stopped:
            self.stop_button.disabled = True
            if state.finished:
                self.stop_button.description = "Stopped" if state.stopped else "Done"
        return state

    def start(self) -> SweepPanel:
        """Refresh in the background until the sweep is done."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, daemon=True, name="nbops-panel")
            self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._closed.wait(self.interval):
            try:
                state = self.refresh()
            except Exception:
                logger.debug("panel refresh failed", exc_info=True)
                continue
            if state.finished:
                self.refresh(force=True)
                return

    def show(self) -> SweepPanel:
        """Display the panel in the notebook and keep it live."""
        from IPython.display import display

        display(self)
        return self.start()

    def close(self) -> None:
        self._closed.set()
        super().close()


def _html(text: str) -> Any:
    from IPython.display import HTML

    return HTML(text)
