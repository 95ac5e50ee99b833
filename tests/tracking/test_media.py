"""Images, tables, histograms and matplotlib figures logged with ``log``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import nbops
from nbops.errors import InvalidValueError


def test_each_media_type_is_stored_by_step(tmp_path: Path) -> None:
    from matplotlib.figure import Figure
    from PIL import Image as PILImage

    figure = Figure()
    figure.add_subplot().plot([1, 2, 3])
    source = tmp_path / "in.png"
    PILImage.new("RGB", (4, 3), (255, 0, 0)).save(source)
    with nbops.init(project="p", capture=False, system_metrics=False) as run:
        run.log({"loss": 1.0, "sample": np.zeros((5, 6, 3), dtype=np.uint8)})
        run.log({"sample": nbops.Image(np.ones((5, 6)), caption="all white")})
        run.log({"file": nbops.Image(source), "confusion": figure})
        run.log({"weights": np.array([0.1, 0.2, 0.2, 0.9]), "preds": nbops.Table({"y": [1, 2]})})
        run.log({"frame": pd.DataFrame({"x": [1.5]}), "column": pd.Series([3], name="s")})
        nbops.log({"hist": nbops.Histogram([1, 2, 2, 3], bins=2)})
    stored = nbops.get_run(run.id)
    samples = stored.media("sample")
    assert [step for step, _ in samples] == [0, 1]
    with PILImage.open(samples[0][1].path) as first:
        assert (first.size, first.mode) == ((6, 5), "RGB")
    with PILImage.open(samples[1][1].path) as second:
        assert second.mode == "L" and second.getpixel((0, 0)) == 255
    assert samples[1][1].record.metadata["caption"] == "all white"
    assert samples[0][1].type == "image"
    with PILImage.open(stored.media("file")[0][1].path) as copied:
        assert copied.getpixel((0, 0)) == (255, 0, 0)
    assert stored.media("confusion")[0][0] == 2
    assert stored.media("confusion")[0][1].path.read_bytes()[:4] == b"\x89PNG"
    table = pd.read_csv(stored.media("preds")[0][1].path)
    assert list(table["y"]) == [1, 2]
    weights = json.loads(stored.media("weights")[0][1].path.read_text())
    assert sum(weights["counts"]) == 4
    assert json.loads(stored.media("hist")[0][1].path.read_text())["counts"] == [1, 3]
    assert pd.read_csv(stored.media("frame")[0][1].path)["x"].tolist() == [1.5]
    assert pd.read_csv(stored.media("column")[0][1].path)["s"].tolist() == [3]
    assert stored.media("frame")[0][1].type == "table"
    history = stored.history()
    assert list(history.columns) == ["step", "loss", "_timestamp"]  # media are not metrics
    assert run.step == 6


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (np.zeros((4, 4, 2)), r"image 'bad' has shape \(4, 4, 2\)"),
        (np.full((2, 2), 3.0), r"image 'bad': float pixels must be finite and in \[0, 1\]"),
        (nbops.Table(pd.DataFrame()), "table 'bad' is empty"),
        (nbops.Histogram([float("nan")]), "histogram 'bad' has no finite values"),
        (nbops.Image("missing.png"), "image 'bad': cannot read"),
    ],
)
def test_bad_media_name_the_key(value: object, message: str) -> None:
    with nbops.init(project="p", capture=False, system_metrics=False) as run:
        with pytest.raises(InvalidValueError, match=message):
            run.log({"bad": value, "loss": 1.0})
        assert run.step == 0  # nothing logged, not even the metric beside it
        run.flush()
        assert nbops.get_run(run.id).artifacts == {}
        assert nbops.get_run(run.id).history().empty


def test_runs_show_html_renders_every_media_kind(cli: Any, tmp_path: Path) -> None:
    import base64
    import io
    import re
    from html.parser import HTMLParser

    from PIL import Image as PILImage

    evil = "<script>alert(1)</script>"
    picture = np.zeros((2, 3, 3), dtype=np.uint8)
    picture[0, 0] = (255, 0, 0)
    with nbops.init(project="p", capture=False, system_metrics=False, config={"x": evil}) as run:
        run.log({"loss": 1.0, "picture": nbops.Image(picture, caption=evil)})
        run.log({"loss": 0.5, "rows": pd.DataFrame({evil: range(30), "b": ["<i>"] * 30})})
        run.log({"spread": nbops.Histogram([1, 2, 2, 3, 3, 3], bins=3)})
        run.log_table("weights", np.arange(6.0).reshape(3, 2))
        run.notes = evil
    out = tmp_path / "run.html"
    result = cli("runs", "show", run.id, "--html", str(out), "--rows", "5")
    assert result.exit_code == 0, result.stderr
    page = out.read_text()
    assert evil not in page and "<i>" not in page and "&lt;script&gt;" in page
    HTMLParser().feed(page)  # well-formed enough to parse
    (uri,) = re.findall(r"<img src='data:image/png;base64,([^']+)' alt='picture'>", page)
    with PILImage.open(io.BytesIO(base64.b64decode(uri))) as shown:
        assert shown.size == (3, 2) and shown.getpixel((0, 0)) == (255, 0, 0)
    table = page.split("<h3>rows</h3>", 1)[1].split("</table>", 1)[0]
    assert table.count("<tr>") == 6 and "25 more row(s) of 30" in page  # header + 5 rows
    spread = page.split("<h3>spread</h3>", 1)[1].split("</svg>", 1)[0]
    assert spread.count("<rect") == 3 and "max 3" in spread
    assert "<h3>weights</h3>" in page and "<td>5.0</td>" in page
    assert page.count("<svg") >= 2  # the loss curve (matplotlib) and the histogram
    assert "step 0: &lt;script&gt;" in page
