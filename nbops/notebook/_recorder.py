"""Records every executed cell of an IPython session (count, code hash, duration, outcome)."""

from __future__ import annotations

import time
from typing import Any

from nbops.capture import code_hash


class CellRecorder:
    """IPython ``pre_run_cell``/``post_run_cell`` handlers appending one record per cell.

    Records are plain dicts (``n``, ``id``, ``hash``, ``start``, ``duration``, ``ok``,
    ``error``) in execution order; the list is shared with the run, which stores it on flush.
    """

    def __init__(self, shell: Any) -> None:
        self.shell = shell
        self.records: list[dict[str, Any]] = []
        self._start = 0.0
        self._wall = 0.0
        self._cell_id: str | None = None
        self._backfill()

    def _backfill(self) -> None:
        """Add the cells that ran before the extension was loaded (outcome unknown)."""
        history = getattr(self.shell, "history_manager", None)
        raw = list(getattr(history, "input_hist_raw", None) or [])
        current = getattr(self.shell, "execution_count", len(raw))
        for n in range(1, min(current, len(raw))):
            self.records.append(
                {
                    "n": n,
                    "id": None,
                    "hash": code_hash(raw[n]),
                    "start": None,
                    "duration": None,
                    "ok": None,
                    "error": None,
                }
            )

    def register(self) -> None:
        self.shell.events.register("pre_run_cell", self.pre_run_cell)
        self.shell.events.register("post_run_cell", self.post_run_cell)

    def unregister(self) -> None:
        for event, handler in (
            ("pre_run_cell", self.pre_run_cell),
            ("post_run_cell", self.post_run_cell),
        ):
            try:
                self.shell.events.unregister(event, handler)
            except ValueError:
                pass

    def pre_run_cell(self, info: Any) -> None:
        self._cell_id = getattr(info, "cell_id", None)
        self._wall = time.time()
        self._start = time.perf_counter()

    def post_run_cell(self, result: Any) -> None:
        duration = time.perf_counter() - self._start
        info = result.info
        source = getattr(info, "raw_cell", None) or ""
        error = result.error_before_exec or result.error_in_exec
        self.records.append(
            {
                "n": result.execution_count,
                "id": self._cell_id,
                "hash": code_hash(source),
                "start": self._wall,
                "duration": round(duration, 6),
                "ok": error is None,
                "error": None if error is None else f"{type(error).__name__}: {error}"[:300],
            }
        )
