"""Cell provenance: which cells ran, in what order, and whether the notebook still matches.

Pure analysis over recorded executions and the saved notebook's code cells; no IPython here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any

#: How many findings of each kind a report spells out.
_SHOWN = 5


@dataclass(frozen=True)
class ProvenanceReport:
    """Hidden-state findings for one kernel session, checked against the saved notebook.

    ``not_reached`` lists cells after the furthest cell that ran (not run *yet*): they are
    reported neutrally and do not make the run irreproducible.
    """

    executions: int
    errors: tuple[str, ...] = ()
    out_of_order: tuple[str, ...] = ()
    edited_after_run: tuple[str, ...] = ()
    not_executed: tuple[str, ...] = ()
    not_in_notebook: tuple[str, ...] = ()
    not_reached: tuple[str, ...] = ()
    notebook: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def reproducible(self) -> bool:
        """True when nothing suggests the results depend on hidden state."""
        return not (
            self.out_of_order or self.edited_after_run or self.not_executed or self.not_in_notebook
        )

    def findings(self) -> list[str]:
        """One line per finding, most serious first."""
        lines: list[str] = []
        for title, items in (
            ("ran out of order", self.out_of_order),
            ("edited after they ran", self.edited_after_run),
            ("code that ran is not in the saved notebook", self.not_in_notebook),
            ("never ran in this session", self.not_executed),
            ("raised an error", self.errors),
        ):
            if items:
                shown = "; ".join(items[:_SHOWN])
                more = f" (+{len(items) - _SHOWN} more)" if len(items) > _SHOWN else ""
                lines.append(f"{title}: {shown}{more}")
        return lines

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProvenanceReport:
        """The report stored by :meth:`to_dict` (unknown keys ignored)."""
        lists = (
            "errors",
            "out_of_order",
            "edited_after_run",
            "not_executed",
            "not_in_notebook",
            "not_reached",
            "notes",
        )
        return cls(
            executions=int(data.get("executions") or 0),
            notebook=data.get("notebook"),
            **{key: tuple(str(v) for v in data.get(key) or ()) for key in lists},
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form, as stored under the run's ``provenance`` metadata."""
        return {
            "executions": self.executions,
            "reproducible": self.reproducible,
            "errors": list(self.errors),
            "out_of_order": list(self.out_of_order),
            "edited_after_run": list(self.edited_after_run),
            "not_executed": list(self.not_executed),
            "not_in_notebook": list(self.not_in_notebook),
            "not_reached": list(self.not_reached),
            "notebook": self.notebook,
            "notes": list(self.notes),
        }

    def __str__(self) -> str:
        head = f"Cell provenance: {self.executions} cell executions; " + (
            "no hidden-state problems found."
            if self.reproducible
            else "results may depend on hidden state:"
        )
        body = [f"  - {line}" for line in self.findings()]
        notes = [f"  ({note})" for note in self._neutral()]
        return "\n".join([head, *body, *notes])

    def _neutral(self) -> list[str]:
        """Notes that are not findings: cells not run yet, and what was checked."""
        waiting = []
        if self.not_reached:
            shown = ", ".join(self.not_reached[:_SHOWN])
            more = (
                f" (+{len(self.not_reached) - _SHOWN} more)"
                if len(self.not_reached) > _SHOWN
                else ""
            )
            waiting.append(f"not run yet: {shown}{more}")
        return [*waiting, *self.notes]

    def _repr_html_(self) -> str:
        items = "".join(f"<li>{escape(line)}</li>" for line in [*self.findings(), *self._neutral()])
        verdict = (
            "no hidden-state problems found" if self.reproducible else "may depend on hidden state"
        )
        head = f"<b>Cell provenance</b>: {escape(verdict)}"
        return f"<div class='nbops-provenance'>{head}<ul>{items}</ul></div>"


def _label(index: int, count: int | None) -> str:
    return f"cell {index + 1} (In [{count}])" if count is not None else f"cell {index + 1}"


def _is_bookkeeping(execution: Mapping[str, Any]) -> bool:
    """True for a cell holding only ``%nbops`` / ``%load_ext nbops`` lines (changes no state)."""
    return bool(execution.get("nbops_only"))


class _Matcher:
    """Finds the saved cell an execution ran: by cell id when the front end sent one, else by
    content, taking the first cell with that code after the previous execution's position (so a
    Run All over duplicated code matches each copy in turn)."""

    def __init__(self, code_cells: Sequence[Mapping[str, Any]]) -> None:
        self.by_id = {c["id"]: c for c in code_cells if c.get("id")}
        self.by_hash: dict[str, list[Mapping[str, Any]]] = {}
        for cell in code_cells:
            self.by_hash.setdefault(cell["sha256"], []).append(cell)
        self.position = -1

    def match(self, execution: Mapping[str, Any]) -> Mapping[str, Any] | None:
        cell_id = execution.get("id")
        cell = self.by_id.get(cell_id) if cell_id else None
        if cell is None:
            candidates = self.by_hash.get(execution["hash"], [])
            after = [c for c in candidates if int(c["index"]) > self.position]
            before = [c for c in candidates if int(c["index"]) <= self.position]
            cell = after[0] if after else (before[-1] if before else None)
        if cell is not None:
            self.position = int(cell["index"])
        return cell


def locate(
    executions: Sequence[Mapping[str, Any]], code_cells: Sequence[Mapping[str, Any]]
) -> list[int | None]:
    """Return the notebook index of the cell each execution ran (None when not in it)."""
    matcher = _Matcher(code_cells)
    found = [matcher.match(e) for e in executions]
    return [None if cell is None else int(cell["index"]) for cell in found]


def analyse(
    executions: Sequence[Mapping[str, Any]],
    code_cells: Sequence[Mapping[str, Any]] | None,
    notebook: str | None = None,
    *,
    pending_note: str | None = None,
) -> ProvenanceReport:
    """Compare recorded executions with the saved notebook's code cells.

    Cells are matched by id when the front end sent ids, else by content and position. The
    notebook is considered up to the furthest cell that ran (the one that stopped the run, or
    that asked for the report): cells after it that have not run are "not run yet", which is
    neutral, while cells before it that never ran are findings.

    Args:
        executions: Records with ``n`` (execution count), ``id`` (cell id or None), ``hash``
            (code hash), ``ok``, ``error`` and ``nbops_only`` (the cell holds only nbops
            magics), in the order the cells ran.
        code_cells: The saved notebook's code cells (``index``, ``id``, ``sha256``, ``source``),
            or None when the notebook is unknown.
        notebook: The notebook's path, for the report.
        pending_note: Why the notebook is not known yet, when ``code_cells`` is None.
    """
    errors = tuple(
        f"In [{e.get('n')}]: {e.get('error') or 'error'}"
        for e in executions
        if e.get("ok") is False
    )
    if code_cells is None:
        return ProvenanceReport(
            executions=len(executions),
            errors=errors,
            notes=(pending_note or "notebook not found, so order and edits could not be checked",),
        )
    matcher = _Matcher(code_cells)
    last_hash: dict[int, str] = {}
    last_count: dict[int, int | None] = {}
    order: list[tuple[int, int | None]] = []
    stray: list[str] = []
    for e in executions:
        cell = matcher.match(e)
        if cell is None:
            if not _is_bookkeeping(e):
                stray.append(f"In [{e.get('n')}]")
            continue
        index = int(cell["index"])
        last_hash[index] = e["hash"]
        last_count[index] = e.get("n")
        if not _is_bookkeeping(e):
            order.append((index, e.get("n")))

    out_of_order: list[str] = []
    highest: tuple[int, int | None] | None = None
    for index, count in order:
        if highest is not None and index < highest[0]:
            out_of_order.append(f"{_label(index, count)} ran after {_label(*highest)}")
        if highest is None or index >= highest[0]:
            highest = (index, count)

    reached = max(last_hash, default=-1)
    edited = tuple(
        _label(c["index"], last_count[c["index"]])
        for c in code_cells
        if c["index"] in last_hash and last_hash[c["index"]] != c["sha256"]
    )
    never = [
        c for c in code_cells if c["index"] not in last_hash and str(c.get("source", "")).strip()
    ]
    return ProvenanceReport(
        executions=len(executions),
        errors=errors,
        out_of_order=tuple(out_of_order),
        edited_after_run=edited,
        not_executed=tuple(_label(c["index"], None) for c in never if c["index"] < reached),
        not_in_notebook=tuple(stray),
        not_reached=tuple(_label(c["index"], None) for c in never if c["index"] > reached),
        notebook=notebook,
        notes=(f"checked against the saved copy of {notebook}; unsaved edits are not seen",),
    )
