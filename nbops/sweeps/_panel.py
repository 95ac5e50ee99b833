"""``SweepPanel``: the live ipywidgets view of a sweep. All logic is in the controller."""

from __future__ import annotations

import logging
import threading
from typing import Any

import ipywidgets as widgets

from nbops.deps import require
from nbops.shell import current_shell
from nbops.sweeps._panel_controller import (
    PanelController,
    PanelState,
    errors_html,
    header_html,
    pareto_html,
    plots_html,
    table_html,
)

logger = logging.getLogger(__name__)


class SweepPanel(widgets.VBox):  # type: ignore[misc]
    """Progress, best trial, recent trials, history, importances, errors and a Stop button.

    Refreshed from a background thread at most once per ``interval`` seconds while the sweep
    runs. **Stop** lets the running trials finish (and records them), **Stop now** interrupts
    them (they end as FAIL). When the sweep blocks the cell (``panel=None``), the cell
    processes the buttons' clicks while it waits (:meth:`wait_processing_ui`).
    """

    def __init__(self, sweep: Any, *, interval: float = 1.0, **kwargs: Any) -> None:
        self.controller = PanelController(sweep)
        self.interval = interval
        self.progress = widgets.IntProgress(value=0, min=0, max=1, description="trials")
        self.header = widgets.HTML()
        self.table = widgets.HTML()
        self.plots = widgets.HTML()
        self.errors = widgets.Output()
        self.stop_button = widgets.Button(
            description="Stop",
            button_style="warning",
            icon="stop",
            tooltip="no new trial starts; the running ones finish and are kept",
        )
        self.stop_now_button = widgets.Button(
            description="Stop now",
            button_style="danger",
            icon="times",
            tooltip="interrupt the running trials too (they end as FAIL)",
        )
        self.stop_button.on_click(self._on_stop)
        self.stop_now_button.on_click(self._on_stop_now)
        for button in (self.stop_button, self.stop_now_button):
            _clicks_on_subshells(button)
        self._shown_errors = 0
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        super().__init__(
            [
                widgets.HBox([self.progress, self.stop_button, self.stop_now_button]),
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
        self._request(now=False)

    def _on_stop_now(self, _button: Any) -> None:
        self._request(now=True)

    def _request(self, now: bool) -> None:
        button = self.stop_now_button if now else self.stop_button
        self.stop_button.disabled = True
        self.stop_now_button.disabled = now
        try:
            self.controller.request_stop(now=now)
            button.description = "Stopping"
        except Exception as exc:  # noqa: BLE001 - shown in the panel, never lost in another cell
            with self.errors:
                print(f"Stop failed: {exc}")
            self.stop_button.disabled = False
            self.stop_now_button.disabled = False

    def wait_processing_ui(self, sweep: Any, poll: float = 0.1) -> None:
        """Block until ``sweep`` is done while the buttons keep working.

        A busy cell's kernel handles widget messages only when they arrive on a subshell
        (ipykernel 7 with JupyterLab 4.4+ sends comms there by default) or when the cell
        polls for them: with kernels that still offer ``do_one_iteration`` (ipykernel 6),
        ``jupyter-ui-poll`` does that here.
        """
        kernel = getattr(current_shell(), "kernel", None)
        if kernel is None or not hasattr(kernel, "do_one_iteration"):
            while not sweep.done:
                sweep.wait(poll)
            return

        ui_events = require("jupyter_ui_poll", feature="the sweep panel's Stop").ui_events
        with ui_events() as process:
            while not sweep.done:
                process(20)
                sweep.wait(poll)

    def refresh(self, *, force: bool = False) -> PanelState:
        """Read the sweep once and update every widget."""
        state = self.controller.snapshot(force=force)
        total = state.total if state.total is not None else max(state.done + state.running, 1)
        self.progress.max = max(total, 1)
        self.progress.value = min(state.done, self.progress.max)
        self.header.value = header_html(state)
        self.table.value = table_html(state.recent, state.objectives) + pareto_html(state)
        self.plots.value = plots_html(state)
        new = state.errors[self._shown_errors :]
        if new:
            self._shown_errors = len(state.errors)
            self.errors.append_display_data(_html(errors_html(new)))
        if state.finished or state.stopped:
            self.stop_button.disabled = True
            self.stop_now_button.disabled = self.stop_now_button.disabled or state.finished
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


def _clicks_on_subshells(button: Any) -> None:
    """Let a button's clicks reach the kernel while a cell is busy (ipykernel 7).

    JupyterLab 4.4+ sends widget messages on a kernel subshell, which ipykernel 7 serves on
    its own thread even while the main one runs a cell; but ipykernel routes every message
    of a comm to the shell that last published on it, which for a panel shown by a busy
    cell is that busy main shell. The Stop buttons expect no reply, so their clicks may go
    where the frontend sent them.
    """
    comm = getattr(button, "comm", None)
    if comm is not None and hasattr(comm, "_reply_subshell_for"):
        comm._reply_subshell_for = lambda data, default: default


def _html(text: str) -> Any:
    from IPython.display import HTML

    return HTML(text)
