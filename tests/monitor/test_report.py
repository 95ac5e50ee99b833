"""DriftReport: JSON round trip, HTML with escaped names and inline SVG overlays."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import nbops
from nbops.monitor import DriftInputError, DriftReport


@pytest.fixture
def report() -> DriftReport:
    rng = np.random.default_rng(0)
    n = 5_000
    ref = pd.DataFrame(
        {
            "<script>alert('x')</script>": rng.normal(0, 1, n),
            "count": rng.poisson(2, n),
            "kind": rng.choice(["a", "b", "c"], n),
        }
    )
    cur = ref.copy()
    cur["<script>alert('x')</script>"] += 0.5
    cur.loc[: n // 10, "kind"] = "<img src=x onerror=alert(1)>"
    return nbops.drift(ref, cur)


def test_json_round_trip(report: DriftReport) -> None:
    text = report.to_json()
    data = json.loads(text)
    assert data["schema"] == "nbops.drift/1"
    assert data["drifted"] is report.drifted
    assert data["drifted_columns"] == report.drifted_columns
    back = DriftReport.from_json(text)
    assert back == report
    assert back.to_json() == text
    with pytest.raises(DriftInputError, match="not an nbops drift report"):
        DriftReport.from_dict({"schema": "other"})


def test_html_escapes_names_and_categories(report: DriftReport, tmp_path: Path) -> None:
    page = report.to_html(title="<b>title</b>")
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "<img" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "<title>&lt;b&gt;title&lt;/b&gt;</title>" in page
    assert page.count("<svg") == 3  # one overlay per column
    fragment = report._repr_html_()
    assert fragment.startswith('<div class="nbops-drift">') and "<svg" in fragment
    path = report.save_html(tmp_path / "out" / "report.html")
    assert path.read_text() == report.to_html()


def test_report_properties(report: DriftReport) -> None:
    assert report.drifted_columns == ["<script>alert('x')</script>", "kind"]
    assert report.share == pytest.approx(2 / 3)
    assert report.drifted
    assert "DRIFT: 2/3 columns" in repr(report)
    col = report.columns["kind"]
    assert col.kind == "categorical" and col.test == "chi2" and col.tvd is not None
    assert "new categories" in col.reasons
    count = report.columns["count"]
    assert count.overlay.edges[0] == -0.5  # integer columns get one bar per value
    assert 0.99 <= sum(count.overlay.reference) <= 1.0  # the plot spans the 0.5-99.5% range
