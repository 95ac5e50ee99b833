from __future__ import annotations

import json
from typing import Any

from nbops.hashing import code_hash
from nbops.notebook import ProvenanceReport, analyse


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
    stored = json.loads(json.dumps(report.to_dict()))  # as the run's metadata holds it
    assert ProvenanceReport.from_dict(stored) == report
    text = str(report)
    assert "ran out of order" in text and "edited after they ran" in text


def test_unknown_notebook_checks_errors_only() -> None:
    report = analyse([ran(1, None, "1/0", ok=False)], None)
    assert report.errors and "notebook not found" in report.notes[0]


def test_html_is_escaped() -> None:
    nb = cells("<script>")
    report = analyse([ran(1, None, "x", ok=False) | {"error": "<b>boom</b>"}], nb)
    assert "<b>boom" not in report._repr_html_() and "&lt;b&gt;boom" in report._repr_html_()


def test_duplicated_code_without_ids_is_matched_by_position() -> None:
    nb = cells("total = 0", "total += 1", "total += 1", "print(total)")
    executions = [ran(i + 1, None, src) for i, src in enumerate(c["source"] for c in nb)]
    report = analyse(executions, nb)
    assert report.reproducible, str(report)
    assert report.not_executed == () and report.out_of_order == ()


def test_a_rerun_of_duplicated_code_is_still_out_of_order() -> None:
    nb = cells("total = 0", "total += 1", "x = 2", "total += 1", "y = 1")
    executions = [ran(i + 1, None, c["source"]) for i, c in enumerate(nb)]
    executions.append(ran(6, None, "total += 1"))  # run again once the notebook is done
    report = analyse(executions, nb)
    assert report.out_of_order == ("cell 4 (In [6]) ran after cell 5 (In [5])",)
    assert not report.reproducible


def test_cells_after_the_furthest_cell_run_are_not_run_yet() -> None:
    nb = cells("a = 1", "b = 2", "%nbops stop", "c = 3", "d = 4")
    executions = [ran(1, "c0", "a = 1"), ran(2, "c1", "b = 2"), ran(3, "c2", "%nbops stop")]
    report = analyse(executions, nb)
    assert report.reproducible
    assert report.not_reached == ("cell 4", "cell 5") and report.not_executed == ()
    assert "not run yet: cell 4, cell 5" in str(report)
    assert report.to_dict()["not_reached"] == ["cell 4", "cell 5"]


def test_a_skipped_cell_before_the_furthest_one_still_never_ran() -> None:
    nb = cells("a = 1", "b = 2", "c = 3")
    report = analyse([ran(1, "c0", "a = 1"), ran(2, "c2", "c = 3")], nb)
    assert report.not_executed == ("cell 2",) and not report.reproducible


def test_unsaved_nbops_only_cells_are_not_findings() -> None:
    from nbops.notebook._recorder import nbops_only

    nb = cells("a = 1")
    status = ran(2, None, "%nbops status") | {"nbops_only": nbops_only("%nbops status")}
    report = analyse([ran(1, "c0", "a = 1"), status], nb)
    assert report.reproducible and report.not_in_notebook == ()
    assert nbops_only("%load_ext nbops\n# track it\n%nbops track --name x")
    assert not nbops_only("%nbops sweep nb.ipynb --space s.yaml")
    assert not nbops_only("%nbops status\nx = 1")
