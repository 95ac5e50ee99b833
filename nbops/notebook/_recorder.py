"""Records every executed cell of an IPython session (count, code hash, duration, outcome)."""

from __future__ import annotations

import time
from typing import Any

from nbops.hashing import code_hash


class CellRecorder:
    """IPython ``pre_run_cell``/``post_run_cell`` handlers appending one record per cell.

    Records are plain dicts (``n``, ``id``, ``hash``, ``nbops_only``, ``start``, ``duration``,
    ``ok``, ``error``) in execution order; the list is shared with the run, which stores it on
    flush.
    """

    def __init__(self, shell: Any) -> None:
        self.shell = shell
        self.records: list[dict[str, Any]] = []
        # (cell id, raw source, wall-clock start, perf_counter start) of the cell now running
        self._running: tuple[str | None, str, float, float] | None = None
        self._backfill()

    def _backfill(self) -> None:
        """Add the cells that ran before the extension was loaded (outcome unknown)."""
        history = getattr(self.shell, "history_manager", None)
        raw = list(getattr(history, "input_hist_raw", None) or [])
        for n, source in enumerate(raw[1:], start=1):
            self.records.append(_record(n, None, source))

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
        self._running = (
            getattr(info, "cell_id", None),
            info.raw_cell,
            time.time(),
            time.perf_counter(),
        )

    def post_run_cell(self, result: Any) -> None:
        end = time.perf_counter()
        running, self._running = self._running, None
        n = result.execution_count
        if self.records and self.records[-1]["n"] == n and self.records[-1]["ok"] is None:
            self.records.pop()  # the cell that loaded the extension was backfilled
        error = result.error_before_exec or result.error_in_exec
        source = getattr(result.info, "raw_cell", None) or ""
        record = _record(n, getattr(result.info, "cell_id", None), source)
        if running is not None:
            record.update(id=running[0], start=running[2], duration=round(end - running[3], 6))
        record["ok"] = error is None
        record["error"] = None if error is None else f"{type(error).__name__}: {error}"[:300]
        self.records.append(record)

    def executions(self) -> list[dict[str, Any]]:
        """The recorded cells, plus the one running now (its outcome still unknown)."""
        if self._running is None:
            return list(self.records)
        cell_id, source, start, _ = self._running
        # the running cell's own count: its place in the input history (IPython stores the
        # input before running it; execution_count itself differs between shells mid-cell)
        history = getattr(self.shell, "history_manager", None)
        raw = getattr(history, "input_hist_raw", None) or []
        count = len(raw) - 1 if raw else getattr(self.shell, "execution_count", None)
        current = _record(count, cell_id, source)
        current["start"] = start
        records = list(self.records)
        if records and records[-1]["n"] == current["n"] and records[-1]["ok"] is None:
            records.pop()
        return [*records, current]


def nbops_only(source: str) -> bool:
    """True when a cell holds only ``%nbops`` and ``%load_ext nbops`` lines (and comments).

    Such cells change no variable of the notebook (``%nbops sweep`` does, so it does not count).
    """
    lines = [line.strip() for line in source.splitlines() if line.strip()]
    return bool(lines) and all(
        line.startswith("#")
        or (line.split()[0] == "%nbops" and line.split()[1:2] != ["sweep"])
        or line.split() in (["%load_ext", "nbops"], ["%reload_ext", "nbops"])
        for line in lines
    )


def _record(n: int | None, cell_id: str | None, source: str) -> dict[str, Any]:
    return {
        "n": n,
        "id": cell_id,
        "hash": code_hash([source]),
        "nbops_only": nbops_only(source),
        "start": None,
        "duration": None,
        "ok": None,
        "error": None,
    }
