"""The notebook session: the run ``%nbops track`` started, re-attached on re-run."""

from __future__ import annotations

import time
from typing import Any

from nbops.notebook._provenance import ProvenanceReport, analyse
from nbops.notebook._recorder import CellRecorder
from nbops.tracking import Run, init
from nbops.tracking._active import active_run


class NotebookSession:
    """Owns the cell recorder and the run tracked from this kernel."""

    def __init__(self, shell: Any) -> None:
        self.shell = shell
        self.recorder = CellRecorder(shell)
        self.run: Run | None = None
        self.last_report: ProvenanceReport | None = None

    def track(self, *, new: bool = False, **options: Any) -> tuple[Run, bool]:
        """Return ``(run, reattached)``: the current run, or a new one when none is running."""
        current = self.run if self.run is not None and not self.run.finished else None
        if current is None:
            other = active_run()
            current = other if other is not None and not other.finished else None
        if current is not None and not new:
            self._attach(current)
            return current, True
        if current is not None:
            self.stop()
        run = init(shell=self.shell, **options)
        self._attach(run)
        return run, False

    def _attach(self, run: Run) -> None:
        if self.run is run:
            return
        self.run = run
        run.set_metadata("cells", self.recorder.records, deferred=True)
        run.add_finish_hook(self._record_provenance)

    def provenance(self) -> ProvenanceReport:
        """Analyse the cells run so far against the notebook as saved now.

        Under papermill the comparison is with the executed copy papermill writes, which holds
        the injected parameters cell.
        """
        from nbops.capture import snapshot_notebook

        path = None
        if self.run is not None:
            metadata = self.run.store.get_metadata(self.run.id)
            path = (metadata.get("papermill") or {}).get("output_path") or (
                metadata.get("notebook") or {}
            ).get("path")
        cells = None
        if path:
            for _ in range(3):  # papermill may be rewriting its output notebook right now
                snapshot = snapshot_notebook(path)
                if not snapshot["error"]:
                    cells = snapshot["code_cells"]
                    break
                time.sleep(0.05)
        return analyse(self.recorder.executions(), cells, path)

    def _record_provenance(self, run: Run) -> None:
        self.last_report = self.provenance()
        run.set_metadata("cells", self.recorder.executions(), deferred=True)
        run.set_metadata("provenance", self.last_report.to_dict(), deferred=True)

    def stop(self, status: str = "finished") -> ProvenanceReport | None:
        """Finish the tracked run; return its provenance report (None when no run)."""
        run = self.run
        if run is None or run.finished:
            self.run = None
            return None
        run.finish(status)
        self.run = None
        return self.last_report
