from __future__ import annotations

from typing import Any

from nbops.hashing import code_hash
from nbops.notebook import analyse


def cells(*sources: str) -> list[dict[str, Any]]:
    return [
        {"index": i, "id": f"c{i}", "source": s, "sha256": code_hash([s])}
        for i, s in enumerate(sources)
    ]


def ran(n: int, cell_id: str | None, source: str, ok: bool | None = True) -> dict[str, Any]:
    return {
        "n": n,
        "id": cell_id,
        "hash": code_hash([source]),
        "ok": ok,
        "error": None if ok is not False else "ValueError: bad",
    }


def test_top_to_bottom_is_reproducible() -> None:
    nb = cells("a = 1", "b = a + 1", "")
    report = analyse([ran(1, "c0", "a = 1"), ran(2, "c1", "b = a + 1")], nb, "x.ipynb")
    assert report.reproducible
    assert "no hidden-state problems" in str(report)


def test_matching_by_code_when_cells_have_no_ids() -> None:
    nb = cells("a = 1", "b = a + 1")
    report = analyse([ran(1, None, "a = 1"), ran(2, None, "b = a + 1\n\n")], nb)
    assert report.reproducible


def test_out_of_order_edit_stray_and_error() -> None:
    nb = cells("a = 1", "b = a + 1", "c = b")
    executions = [
        ran(1, "c0", "a = 1"),
        ran(2, "c1", "b = a + 1"),
        ran(3, "c0", "a = 2"),  # re-run after cell 2, with code never saved
        ran(4, None, "print(b)"),  # a scratch cell since deleted
        ran(5, "c2", "c = b", ok=False),
    ]
    report = analyse(executions, nb, "x.ipynb")
    assert not report.reproducible
    assert report.out_of_order == ("cell 1 (In [3]) ran after cell 2 (In [2])",)
    assert report.edited_after_run == ("cell 1 (In [3])",)
    assert report.not_in_notebook == ("In [4]",)
    assert report.errors == ("In [5]: ValueError: bad",)
    assert report.to_dict()["reproducible"] is False
    text = str(report)
    assert "ran out of order" in text and "edited after they ran" in text


def test_unknown_notebook_checks_errors_only() -> None:
    report = analyse([ran(1, None, "1/0", ok=False)], None)
    assert report.errors and "notebook not found" in report.notes[0]


def test_html_is_escaped() -> None:
    nb = cells("<script>")
    report = analyse([ran(1, None, "x", ok=False) | {"error": "<b>boom</b>"}], nb)
    assert "<b>boom" not in report._repr_html_() and "&lt;b&gt;boom" in report._repr_html_()
