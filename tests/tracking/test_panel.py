"""``nbops.RunsPanel`` driven in Python: traits assigned and buttons clicked, no browser."""

from __future__ import annotations

import time
from collections.abc import Callable

import nbops

EVIL = "<img src=x onerror=alert(1)>"


def _wait(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _finished(name: str, losses: list[float], project: str = "p", **kwargs: object) -> str:
    with nbops.init(
        project=project, name=name, capture=False, system_metrics=False, **kwargs
    ) as run:
        for loss in losses:
            run.log({"loss": loss, "acc": 1 - loss})
    return run.id


def test_list_filter_sort_status_and_curves() -> None:
    alpha = _finished("alpha", [0.9, 0.5, 0.2])
    beta = _finished(EVIL, [0.8, 0.7], tags=["tuned"])
    _finished("other-project", [0.1], project="q")
    live = nbops.init(project="p", name="live", capture=False, system_metrics=False)
    live.log({"loss": 0.6})
    live.flush()
    panel = nbops.RunsPanel("p", interval=0)
    try:
        assert [value for _, value in panel.runs_list.options] == [live.id, beta, alpha]
        assert "3</b> of 3 run(s)" in panel.header.value and "1 running" in panel.header.value
        assert all(EVIL in label for label, v in panel.runs_list.options if v == beta)

        panel.filter_text.value = "TUNED"  # a tag, case-insensitive
        assert [v for _, v in panel.runs_list.options] == [beta]
        panel.filter_text.value = alpha  # an id
        assert [v for _, v in panel.runs_list.options] == [alpha]
        panel.filter_text.value = ""
        panel.status.value = "running"
        assert [v for _, v in panel.runs_list.options] == [live.id]
        panel.status.value = ""
        assert ("loss (low first)", "metrics.loss") in panel.sort.options
        panel.sort.value = "metrics.loss"
        assert [v for _, v in panel.runs_list.options] == [alpha, live.id, beta]

        panel.runs_list.value = (alpha, beta)
        assert set(panel.figures) == {"acc", "loss"}
        axes = panel.figures["loss"].axes[0]
        assert (axes.get_xlabel(), axes.get_ylabel(), axes.get_title()) == ("step", "loss", "loss")
        legend = [text.get_text() for text in axes.get_legend().get_texts()]
        assert legend == [f"alpha ({alpha[:8]})", f"{EVIL} ({beta[:8]})"[:31] + "…"]
        assert [len(line.get_xdata()) for line in axes.get_lines()] == [3, 2]
        svgs = [cell.outputs[0]["data"]["image/svg+xml"] for cell in panel.charts.children]
        assert len(svgs) == 2 and all("<img" not in svg for svg in svgs)
        assert panel.message.value == ""

        panel.sort.value = "-start_time"  # re-listing keeps the selection
        assert panel.runs_list.value == (alpha, beta)
        panel.runs_list.value = ()
        assert panel.figures == {} and panel.charts.children == ()
        assert "Select runs" in panel.message.value
    finally:
        panel.close()
        live.finish()


def test_live_runs_update_until_closed() -> None:
    first = nbops.init(project="p", name="first", capture=False, system_metrics=False)
    first.log({"loss": 1.0})
    first.flush()
    panel = nbops.RunsPanel("p", interval=0.1)
    try:
        assert panel.live
        panel.runs_list.value = (first.id,)
        for i in range(4):
            first.log({"loss": 1.0 / (i + 2)})
        first.flush()
        _wait(lambda: len(panel.figures["loss"].axes[0].get_lines()[0].get_xdata()) == 5)
        second = nbops.init(project="p", name="second", capture=False, system_metrics=False)
        _wait(lambda: second.id in [v for _, v in panel.runs_list.options])
        assert panel.runs_list.value == (first.id,)
        second.finish()
        first.finish()
        _wait(lambda: "running" not in panel.header.value)
        panel.refresh_button.click()
        assert not panel.refresh_button.disabled
    finally:
        panel.close()
    assert not panel.live
    closed_at = len(panel.runs_list.options)
    nbops.init(project="p", name="after", capture=False, system_metrics=False).finish()
    time.sleep(0.5)
    assert len(panel.runs_list.options) == closed_at  # no refresh after close


def test_errors_go_into_the_panel() -> None:
    _finished("a", [1.0])
    panel = nbops.RunsPanel("p", interval=0, metrics=["missing"])
    try:
        panel.runs_list.value = (panel.runs_list.options[0][1],)
        (shown,) = panel.errors.outputs
        assert "no run logged metric" in shown["data"]["text/html"]
    finally:
        panel.close()


def test_empty_store_shows_a_hint() -> None:
    panel = nbops.RunsPanel(interval=0)
    try:
        assert panel.runs_list.options == ()
        assert "<b>0</b> of 0 run(s)" in panel.header.value
        assert "Select runs" in panel.message.value and panel.charts.children == ()
        assert panel.errors.outputs == ()
    finally:
        panel.close()


def test_charts_sit_side_by_side_in_a_wrapping_grid() -> None:
    ids = []
    for index in range(20):
        with nbops.init(
            project="p", name=f"{EVIL} {index}", capture=False, system_metrics=False
        ) as run:
            for step in range(3):
                run.log({f"m{k}": (index + k) / (step + 1) for k in range(5)})
        ids.append(run.id)
    panel = nbops.RunsPanel("p", interval=0)
    try:
        assert panel.charts in panel.children  # one grid below the list, not a chart per row
        layout = panel.charts.layout
        assert layout.grid_template_columns == "repeat(auto-fill, minmax(380px, 1fr))"
        assert layout.width == "100%" and layout.grid_gap == "8px"
        assert ".nbops-runs-charts img {max-width: 100%" in panel.style.value  # charts shrink
        assert panel.style in panel.children
        panel.runs_list.value = tuple(ids)
        assert list(panel.figures) == ["m0", "m1", "m2", "m3", "m4"]
        cells = panel.charts.children
        assert len(cells) == 5 and all(len(cell.outputs) == 1 for cell in cells)
        for cell, figure in zip(cells, panel.figures.values(), strict=True):
            svg = cell.outputs[0]["data"]["image/svg+xml"]
            assert svg.startswith("<svg") and "<img" not in svg
            texts = [t.get_text() for t in figure.axes[0].get_legend().get_texts()]
            assert len(texts) == 8 and texts[-1] == "and 13 more"  # legend capped

        panel.runs_list.value = tuple(ids[:2])  # redrawn into the same cells: no flicker
        assert panel.charts.children == cells
        panel.runs_list.value = ()
        assert panel.charts.children == () and "Select runs" in panel.message.value
    finally:
        panel.close()
