"""The notebook session: cell recording and provenance for whichever run is active."""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from nbops.errors import NbopsError
from nbops.notebook._provenance import ProvenanceReport, analyse, locate
from nbops.notebook._recorder import CellRecorder
from nbops.tracking import (
    RUN_ID_ENV,
    Run,
    active_run,
    add_activation_listener,
    attach_from_environment,
    init,
    remove_activation_listener,
)

logger = logging.getLogger(__name__)

#: Options of ``%nbops track`` that ``--new`` carries over from the run it replaces.
INHERITED = ("project", "tags", "group", "job_type", "wandb")
#: How long ``%nbops status`` waits for the start capture before saying it is in progress.
CAPTURE_WAIT = 1.0


class NotebookSession:
    """Records the kernel's cells and reports provenance for the active run.

    There is one notion of the current run: :func:`nbops.active_run`. A run started with
    ``%nbops track`` or with ``nbops.init()`` in this kernel gets the cell records and the
    provenance report alike.
    """

    def __init__(self, shell: Any) -> None:
        self.shell = shell
        self.recorder = CellRecorder(shell)
        self.last_report: ProvenanceReport | None = None
        self._attached: set[str] = set()
        self._options: dict[str, dict[str, Any]] = {}

    @property
    def run(self) -> Run | None:
        """The active run while it is running, else None."""
        run = active_run()
        return run if run is not None and not run.finished else None

    # --- hooks ------------------------------------------------------------------------------
    def register(self) -> None:
        """Register the cell recorder and the session's hooks (see :meth:`unregister`)."""
        self.recorder.register()
        self.shell.events.register("post_run_cell", self._flush_attached)
        if os.environ.get(RUN_ID_ENV):
            self.shell.events.register("pre_run_cell", self._attach_before_first_cell)
        add_activation_listener(self._on_activate)
        current = self.run
        if current is not None:
            self._on_activate(current)

    def unregister(self) -> None:
        """Remove every hook :meth:`register` added."""
        self.recorder.unregister()
        try:
            self.shell.events.unregister("post_run_cell", self._flush_attached)
        except ValueError:
            pass
        for event, handler in (
            ("post_run_cell", self._flush_attached),
            ("pre_run_cell", self._attach_before_first_cell),
        ):
            try:
                self.shell.events.unregister(event, handler)
            except ValueError:
                pass
        remove_activation_listener(self._on_activate)

    def _attach_before_first_cell(self, _info: object = None) -> None:
        """In a kernel executed by a pipeline or a sweep, attach to the run it was given.

        Done before the first cell rather than at start-up: an executor may start the kernel
        before it opens the run (a sweep prepares the next trial's kernel in advance).
        """
        try:
            attach_from_environment()
        except NbopsError as exc:
            logger.warning("nbops: cannot attach to run $%s: %s", RUN_ID_ENV, exc)
            return
        self.shell.events.unregister("pre_run_cell", self._attach_before_first_cell)

    def _flush_attached(self, _result: object = None) -> None:
        """Make each cell's metrics durable before its reply reaches the executor."""
        run = self.run
        if run is not None and not run.owner:
            run.flush()

    def _on_activate(self, run: Run) -> None:
        if not run.owner or run.id in self._attached:
            return
        self._attached.add(run.id)
        run.set_metadata("cells", self.recorder.records, deferred=True)
        run.add_finish_hook(self._record_provenance)
        run.add_exit_check(self._failed_cell)

    # --- commands ---------------------------------------------------------------------------
    def track(self, *, new: bool = False, **options: Any) -> tuple[Run, bool]:
        """Return ``(run, reattached)``: the current run, or a new one when none is running.

        With ``new``, the current run is finished and the new one keeps its project, tags,
        group, job type and W&B mode unless ``options`` give others.
        """
        current = self.run
        if current is not None and not new:
            self._on_activate(current)
            return current, True
        given = {k: v for k, v in options.items() if v is not None}
        if current is not None:
            given = {**self._inherited(current), **given}
            self.stop()
        run = init(shell=self.shell, **given)
        self._options[run.id] = given
        self._on_activate(run)
        return run, False

    def _inherited(self, run: Run) -> dict[str, Any]:
        known = {
            "project": run.project,
            "tags": list(run.tags) or None,
            "group": run.group,
            "job_type": run.job_type,
            **self._options.get(run.id, {}),
        }
        return {k: known[k] for k in INHERITED if known.get(k) is not None}

    def stop(self, status: str = "finished") -> ProvenanceReport | None:
        """Finish the active run; return its provenance report (None when no run)."""
        run = self.run
        if run is None:
            return None
        self.last_report = None
        run.finish(status)
        return self.last_report

    # --- provenance -------------------------------------------------------------------------
    def notebook_path(self, run: Run) -> str | None:
        """The saved notebook to compare with: papermill's executed copy, else the source."""
        metadata = run.store.get_metadata(run.id)
        papermill = metadata.get("papermill") or {}
        notebook = metadata.get("notebook") or {}
        return papermill.get("output_path") or notebook.get("path")

    def provenance(self, run: Run | None = None) -> ProvenanceReport:
        """Analyse the cells run so far against the notebook as saved now.

        Under papermill the comparison is with the executed copy papermill writes, which holds
        the injected parameters cell.
        """
        run = run if run is not None else self.run
        path = self.notebook_path(run) if run is not None else None
        pending = None
        if path is None and run is not None and run.capturing:
            pending = "the notebook is still being captured; ask again in a moment"
        return analyse(
            self.recorder.executions(), self._code_cells(path), path, pending_note=pending
        )

    @staticmethod
    def _code_cells(path: str | None) -> list[dict[str, Any]] | None:
        from nbops.capture import snapshot_notebook

        if not path:
            return None
        for _ in range(3):  # papermill may be rewriting its output notebook right now
            snapshot = snapshot_notebook(path)
            if not snapshot["error"]:
                cells: list[dict[str, Any]] = snapshot["code_cells"]
                return cells
            time.sleep(0.05)
        return None

    def wait_for_capture(self, run: Run, timeout: float = CAPTURE_WAIT) -> bool:
        """Wait up to ``timeout`` s for the start capture; return True when it is done."""
        run.wait_background(timeout)
        return not run.capturing

    def _record_provenance(self, run: Run) -> None:
        self.last_report = self.provenance(run)
        run.set_metadata("cells", self.recorder.executions(), deferred=True)
        run.set_metadata("provenance", self.last_report.to_dict(), deferred=True)

    def _failed_cell(self, run: Run) -> str | None:
        """At exit: ``"failed"`` when an executed notebook (papermill) stopped on an error.

        The failing cell is stored under the run's ``error`` metadata. In an interactive
        session a last cell that raised says nothing about the run, so it stays finished.
        """
        executions = self.recorder.executions()
        if not executions or executions[-1].get("ok") is not False:
            return None
        run.wait_background()
        metadata = run.store.get_metadata(run.id)
        source = (metadata.get("notebook") or {}).get("source")
        if not metadata.get("papermill") and source not in ("papermill", "executor"):
            return None
        failed = executions[-1]
        path = self.notebook_path(run)
        cells = self._code_cells(path)
        index = locate(executions, cells)[-1] if cells is not None else None
        run.set_metadata(
            "error",
            {
                "cell": None if index is None else index + 1,
                "execution_count": failed.get("n"),
                "cell_id": failed.get("id"),
                "error": failed.get("error"),
                "notebook": path,
            },
        )
        return "failed"
