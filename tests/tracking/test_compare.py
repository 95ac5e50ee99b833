"""nbops.compare: curves, the parameter table and parallel coordinates, rendered and escaped."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import nbops
from nbops.errors import InvalidValueError

EVIL = "<script>alert(1)</script>&"


def make_runs() -> list[str]:
    ids = []
    for lr, opt in ((0.1, "adam"), (0.01, "sgd"), (0.001, EVIL)):
        run = nbops.init(
            project="p",
            name=f"lr {lr} {EVIL}",
            config={"lr": lr, "optimizer": opt, "epochs": 3},
            capture=False,
            system_metrics=False,
        )
        for step in range(4):
            run.log({"loss": lr * 10 / (step + 1), "acc": 1 - lr * 5 / (step + 1)})
        run.finish()
        ids.append(run.id)
    return ids


def svgs(html: str) -> list[ET.Element]:
    return [ET.fromstring(m) for m in re.findall(r"<svg.*?</svg>", html, flags=re.S)]


def test_compare_renders_curves_params_and_parallel_coordinates(tmp_path: Path) -> None:
    ids = make_runs()
    comparison = nbops.compare(ids)
    assert comparison.metrics == ["acc", "loss"]
    assert comparison.target == "acc"
    assert comparison.differing() == ["lr", "optimizer"]
    figures = comparison.figures()
    assert list(figures) == ["acc", "loss", "parallel coordinates"]
    loss = figures["loss"].axes[0]
    assert loss.get_xlabel() == "step" and loss.get_ylabel() == "loss"
    assert len(loss.get_lines()) == 3
    assert list(loss.get_lines()[0].get_xdata()) == [0, 1, 2, 3]
    assert next(t.get_text() for t in loss.get_legend().get_texts()).startswith("lr 0.1")
    parallel = figures["parallel coordinates"].axes[0]
    assert [t.get_text() for t in parallel.get_xticklabels()] == ["lr", "optimizer", "acc"]
    assert len(parallel.get_lines()) == 3 + 3  # one line per run, one vertical axis each

    html = comparison._repr_html_()
    assert "<script>" not in html  # every value escaped, in tables and in the SVG text
    assert "&lt;script&gt;" in html
    assert len(svgs(html)) == 3  # well-formed inline SVG
    diff_rows = re.findall(r"<tr class='nbops-diff'><th>([^<]*)</th>", html)
    assert diff_rows == ["lr", "optimizer"]
    assert "<tr><th>epochs</th>" in html  # same in every run: not highlighted

    saved = comparison.save(tmp_path / "cmp.html")
    page = saved.read_text()
    assert page.startswith("<!DOCTYPE html>") and "<script>" not in page


def test_compare_accepts_runs_frames_and_time_axis() -> None:
    ids = make_runs()
    frame = nbops.runs()
    by_frame = nbops.compare(frame, metrics="loss", x="time")
    assert [r.id for r in by_frame.runs] == ids
    axes = by_frame.figures()["loss"].axes[0]
    assert axes.get_xlabel() == "seconds since start"
    assert all(x >= 0 for line in axes.get_lines() for x in line.get_xdata())
    live = nbops.init(project="p", capture=False, system_metrics=False)
    live.log({"loss": 1.0})
    assert nbops.compare([live, nbops.get_run(ids[0])]).metrics == ["acc", "loss"]


def test_compare_bad_input() -> None:
    ids = make_runs()
    with pytest.raises(InvalidValueError, match="no run logged metric 'nope'"):
        nbops.compare(ids, metrics=["nope"])
    with pytest.raises(InvalidValueError, match="x must be"):
        nbops.compare(ids, x="epoch")
    with pytest.raises(InvalidValueError, match="at least one"):
        nbops.compare([])
    single = nbops.compare(ids[0])
    assert "parallel coordinates" not in single.figures()


def many_runs(count: int = 20, metrics: int = 5) -> list[str]:
    ids = []
    for index in range(count):
        with nbops.init(
            project="many",
            name=f"{EVIL} run {index}",
            config={"lr": 0.001 * (index + 1), "seed": index},
            capture=False,
            system_metrics=False,
        ) as run:
            for step in range(3):
                run.log({f"m{k}": (index + k) / (step + 1) for k in range(metrics)})
        ids.append(run.id)
    return ids


def test_twenty_runs_five_metrics_keep_the_legends_short_and_the_lines_apart() -> None:
    ids = many_runs()
    comparison = nbops.compare(ids)
    assert comparison.metrics == ["m0", "m1", "m2", "m3", "m4"]
    figures = comparison.figures()
    for name in comparison.metrics:
        figure = figures[name]
        axes = figure.axes[0]
        lines = axes.get_lines()
        assert len(lines) == 20  # every run drawn, only the legend is capped
        assert len({line.get_color() for line in lines}) == 20  # no colour repeats
        texts = [t.get_text() for t in axes.get_legend().get_texts()]
        assert len(texts) == 8 and texts[-1] == "and 13 more"
        assert texts[0] == f"{EVIL} run 0 ({ids[0][:8]})"[:31] + "…"
        figure.draw_without_rendering()
        legend = axes.get_legend().get_window_extent()
        assert legend.height < 0.9 * axes.get_window_extent().height  # fits inside the chart
    parallel = figures["parallel coordinates"].axes[0]
    texts = [t.get_text() for t in parallel.get_legend().get_texts()]
    assert len(texts) == 8 and texts[-1] == "and 13 more"

    html = comparison.to_html()
    assert "<script>" not in html and html.count("&lt;script&gt;") >= 20
    assert len(svgs(html)) == 6 and "and 13 more" in html
