"""``nbops.compare`` and ``nbops.RunsPanel`` rendered in a real JupyterLab by a real browser."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
import pytest

from tests.browser import _lab

pytestmark = pytest.mark.browser

CELLS = [
    """import nbops

ids = []
for name, rate in (("<b>bold</b>", 0.5), ("steady", 0.2)):
    with nbops.init(project="compare", name=name, config={"rate": rate},
                    capture=False, system_metrics=False) as run:
        for step in range(20):
            run.log({"loss": (1 - rate) ** step, "acc": 1 - (1 - rate) ** step})
    ids.append(run.id)""",
    "nbops.compare(ids)",
    """panel = nbops.RunsPanel("compare", interval=0)
panel.runs_list.value = tuple(ids)
panel""",
]


def _notebook(root: Path) -> str:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in CELLS]
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    nbformat.write(notebook, root / "compare_runs.ipynb")
    return "compare_runs.ipynb"


def test_compare_and_runs_panel_render_in_jupyterlab(
    lab_server: Any, lab_page: Any, artifacts: Path
) -> None:
    page = lab_page
    name = _notebook(lab_server.root)
    _lab.open_notebook(page, lab_server, name)
    _lab.run_all(page)
    _lab.wait_all_executed(page)
    assert _lab.error_outputs(page) == []

    outputs = page.locator(".jp-Cell-outputArea")
    comparison = page.locator(".nbops-compare")
    comparison.wait_for()
    # one chart per metric plus the parallel-coordinates view, each a real matplotlib SVG
    assert comparison.locator("figure svg").count() == 3
    assert comparison.locator("svg text, svg use").count() > 20  # axes ticks, labels, legend
    assert "<b>bold</b>" in comparison.inner_text()  # shown as text, never as markup
    assert outputs.locator("b", has_text="bold").count() == 0
    acc, loss = (comparison.locator("figure svg").nth(i).bounding_box() for i in range(2))
    assert abs(acc["y"] - loss["y"]) < 2 and loss["x"] >= acc["x"] + acc["width"] - 1
    comparison.scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts / "compare.png"), full_page=True)

    panel = page.locator(".nbops-runs-panel")
    panel.wait_for()
    listed = panel.locator(".widget-select-multiple select option").all_inner_texts()
    labels = sorted(text.replace("\xa0", " ") for text in listed)
    assert len(labels) == 2 and all(label.endswith(" · finished") for label in labels)
    assert labels[0].startswith("<b>bold</b> (") and labels[1].startswith("steady (")
    assert "2</b> of 2 run(s)" in panel.locator(".widget-html-content").first.inner_html()
    # JupyterLab shows an SVG output as an <img> of the SVG (its safe rendering of SVG)
    charts = panel.locator(".widget-output .jp-RenderedSVG img")
    charts.first.wait_for()
    assert charts.count() == 2  # acc and loss
    widths = charts.evaluate_all("images => images.map(i => i.naturalWidth)")
    assert all(width > 200 for width in widths), widths  # drawn, not broken images
    # side by side in the grid, each inside the panel, not one chart per row
    grid = panel.locator(".nbops-runs-charts").bounding_box()
    first, second = (charts.nth(i).bounding_box() for i in range(2))
    assert abs(first["y"] - second["y"]) < 2 and second["x"] >= first["x"] + first["width"] - 1
    for box in (first, second):
        assert box["width"] > 200 and box["x"] + box["width"] <= grid["x"] + grid["width"] + 1
    assert "Loading widget" not in _lab.notebook_text(page)
    panel.scroll_into_view_if_needed()
    panel.screenshot(path=str(artifacts / "runs_panel.png"))
