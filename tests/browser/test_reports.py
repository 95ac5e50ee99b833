"""The HTML model card and the drift report, rendered by the same chromium that drives JupyterLab.

Each page must render offline (no request leaves ``file:``/``data:``), with no script run from
the hostile values put into it, no console errors and every image decoded; a full-page screenshot
is kept for a person to look at.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import nbops

pytestmark = pytest.mark.browser

HOSTILE = "<script>alert(1)</script>"
CARD_YAML = """\
stages: {}
card:
  description: Classifies iris flowers from four measurements.
  license: apache-2.0
  owners: [Ada <ada@example.org>]
  intended_use: Teaching how model cards work. Not for *production* use.
  limitations: Trained on 120 flowers.
  evaluation_dataset: iris-test
"""


@dataclass
class PageLog:
    """What a page did while it loaded: dialogs, console errors, requests beyond the file."""

    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    remote: list[str] = field(default_factory=list)


@pytest.fixture
def watched(page: Any) -> tuple[Any, PageLog]:
    log = PageLog()

    def on_dialog(dialog: Any) -> None:
        log.dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.on("pageerror", lambda exc: log.errors.append(str(exc)))
    page.on("console", lambda msg: log.errors.append(msg.text) if msg.type == "error" else None)
    page.on(
        "request",
        lambda req: None if req.url.startswith(("file:", "data:")) else log.remote.append(req.url),
    )
    return page, log


def _render(page: Any, log: PageLog, html: Path, shot: Path) -> str:
    page.goto(html.resolve().as_uri())
    page.wait_for_load_state("load")
    broken = page.evaluate(
        "() => Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0))"
        ".map(i => i.src.slice(0, 80))"
    )
    page.screenshot(path=str(shot), full_page=True)
    assert broken == []
    assert log.dialogs == []
    assert log.errors == []
    assert log.remote == []
    return str(page.locator("body").inner_text())


def _registered_model(project: Path) -> dict[str, float]:
    """A tiny tracked run registering ``iris-clf`` version 1, with a plot and two datasets."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import ConfusionMatrixDisplay, accuracy_score
    from sklearn.model_selection import train_test_split

    (project / "nbops.yaml").write_text(CARD_YAML)
    frame = load_iris(as_frame=True).frame
    train, test = train_test_split(frame, test_size=0.2, random_state=3)
    with nbops.init(project="iris", name="logreg", config={"C": 0.5, "note": HOSTILE}) as run:
        nbops.log_dataset(train, name="iris-train")
        nbops.log_dataset(test, name="iris-test")
        model = LogisticRegression(C=0.5, max_iter=500).fit(
            train.drop(columns="target"), train.target
        )
        pred = model.predict(test.drop(columns="target"))
        metrics = {"accuracy": accuracy_score(test.target, pred)}
        run.log(metrics)
        ConfusionMatrixDisplay.from_predictions(test.target, pred)
        plt.savefig("confusion.png", dpi=60)
        plt.close("all")
        run.log_artifact("confusion.png", type="plot")
        nbops.log_model(
            model, "iris-clf", evaluation={"dataset": "iris-test", "metrics": ["accuracy"]}
        )
    return metrics


def test_model_card_renders(
    watched: tuple[Any, PageLog], isolated_env: Path, artifacts: Path
) -> None:
    page, log = watched
    metrics = _registered_model(isolated_env)
    html = isolated_env / "card.html"
    nbops.card("iris-clf").save(isolated_env / "model_card.md", html=html)

    text = _render(page, log, html, artifacts / "model_card.png")
    assert "iris-clf" in text
    assert HOSTILE in text  # shown as text, never run
    assert "Ada <ada@example.org>" in text
    row = page.locator("tr", has=page.locator("td", has_text="accuracy")).first.inner_text()
    assert float(row.split()[-1]) == pytest.approx(metrics["accuracy"], abs=1e-3)
    assert page.locator("img").count() >= 1


def test_drift_report_renders(
    watched: tuple[Any, PageLog], tmp_path: Path, artifacts: Path
) -> None:
    import numpy as np
    import pandas as pd

    page, log = watched
    rng = np.random.default_rng(0)
    n = 2_000
    reference = pd.DataFrame(
        {
            "age": rng.normal(40, 10, n),
            "income": rng.lognormal(10, 0.5, n),
            "visits": rng.poisson(3, n),
            "plan": rng.choice(["free", "pro", "team"], n, p=[0.6, 0.3, 0.1]),
            HOSTILE: rng.normal(0, 1, n),
        }
    )
    current = reference.copy()
    current["age"] += 5
    current["plan"] = rng.choice(["free", "pro", "team"], n, p=[0.4, 0.4, 0.2])
    report = nbops.drift(reference, current)
    assert set(report.drifted_columns) == {"age", "plan"}
    html = report.save_html(tmp_path / "drift.html")

    text = _render(page, log, html, artifacts / "drift_report.png")
    for column in ("age", "income", "visits", "plan", HOSTILE):
        assert column in text
    assert page.locator("svg").count() >= 4  # one overlay per column
