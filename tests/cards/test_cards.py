"""Model cards from a real tracked run: evidence, HF front matter, escaping, ``nbops card``."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

import nbops
from nbops.registry import set_alias
from tests.conftest import REPO

SCRIPT = "<script>alert(1)</script>"
CARD_YAML = """\
stages:
  train: {notebook: train.ipynb}
card:
  description: Classifies iris flowers from four measurements.
  license: apache-2.0
  owners: [Ada <ada@example.org>]
  intended_use: |
    Teaching how model cards work.

    Not for *production* <b>use</b>.
  limitations: Trained on 120 flowers.
  tags: [teaching]
  evaluation_dataset: iris-test
  evaluation_metrics: [accuracy, f1_macro]
  hub_datasets: {iris-train: scikit-learn/iris}
"""


@pytest.fixture
def tracked(isolated_env: Path) -> dict[str, Any]:
    """A real run: two dataset versions, parameters, metrics, a plot, a registered model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import ConfusionMatrixDisplay, accuracy_score, f1_score
    from sklearn.model_selection import train_test_split

    (isolated_env / "nbops.yaml").write_text(CARD_YAML)
    frame = load_iris(as_frame=True).frame
    train, test = train_test_split(frame, test_size=0.2, random_state=3)
    params = {"C": 0.5, "max_iter": 500, "note": SCRIPT, "features": ["a|b", "c"]}
    with nbops.init(project="iris", name="logreg", config=params) as run:
        train_v = nbops.log_dataset(train, name="iris-train")
        test_v = nbops.log_dataset(test, name="iris-test")
        model = LogisticRegression(C=0.5, max_iter=500).fit(
            train.drop(columns="target"), train.target
        )
        pred = model.predict(test.drop(columns="target"))
        metrics = {
            "accuracy": accuracy_score(test.target, pred),
            "f1_macro": f1_score(test.target, pred, average="macro"),
        }
        run.log({"accuracy": 0.1, "f1_macro": 0.1})
        run.log(metrics)
        run.log({"train_accuracy": 1.0, "epoch": 3, "fit_seconds": 0.25})
        ConfusionMatrixDisplay.from_predictions(test.target, pred)
        plt.savefig("confusion.png", dpi=60)
        plt.close("all")
        run.log_artifact("confusion.png", type="plot")
        nbops.log_model(model, "iris-clf")
    set_alias("iris-clf", 1, "production", reason="first")
    return {
        "run": run,
        "params": params,
        "metrics": metrics,
        "datasets": {"iris-train": train_v.hash, "iris-test": test_v.hash},
    }


def _front_matter(markdown: str) -> dict[str, Any]:
    match = re.match(r"---\n(.*?)\n---\n", markdown, re.S)
    assert match, markdown[:200]
    return yaml.safe_load(match.group(1))


def _section(markdown: str, title: str) -> str:
    return markdown.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def _table(section: str, header: str) -> dict[str, str]:
    lines = section.split(header + "\n", 1)[1].splitlines()[1:]
    rows = {}
    for line in lines:
        if not line.startswith("|"):
            break
        cells = re.split(r"(?<!\\)\|", line.strip())[1:-1]
        rows[cells[0].strip()] = cells[1].strip()
    return rows


def test_card_holds_exactly_the_tracked_evidence(tracked: dict[str, Any]) -> None:
    card = nbops.card("iris-clf@production")
    md = card.markdown
    meta = _front_matter(md)
    assert meta == card.metadata
    assert meta["license"] == "apache-2.0" and meta["library_name"] == "sklearn"
    assert meta["tags"] == ["nbops", "skops", "tabular-classification", "teaching"]
    assert meta["datasets"] == ["scikit-learn/iris"]  # only Hub datasets
    assert meta["metrics"] == ["accuracy", "f1"]
    (result,) = meta["model-index"][0]["results"]
    assert result["task"] == {"type": "tabular-classification", "name": "Tabular Classification"}
    assert result["dataset"] == {
        "type": "iris-test",
        "name": "iris-test",
        "split": "test",
        "revision": tracked["datasets"]["iris-test"],
    }
    # only the evaluation metrics, never train_accuracy, epoch or fit_seconds
    assert {m["name"]: m["value"] for m in result["metrics"]} == pytest.approx(tracked["metrics"])
    assert [m["type"] for m in result["metrics"]] == ["accuracy", "f1"]

    evaluation = _section(md, "Evaluation results")
    metrics = _table(evaluation, "| Metric | Value |")
    assert {k.replace("\\_", "_"): float(v) for k, v in metrics.items()} == pytest.approx(
        tracked["metrics"], abs=1e-4
    )
    assert "not evaluation results): epoch 3" in evaluation
    params = _table(_section(md, "Training procedure and hyperparameters"), "| Parameter | Value |")
    assert params == {
        "C": "0.5",
        "max\\_iter": "500",
        "note": "&lt;script&gt;alert(1)&lt;/script&gt;",
        "features": '\\["a\\|b", "c"\\]',
    }
    data = _section(md, "Training data")
    digest = tracked["datasets"]["iris-train"]
    assert "### iris-train\n" in data and f"| Version (hash) | {digest} |" in data
    assert "iris-test" not in data
    assert "### iris-test\n" in _section(md, "Evaluation data")
    assert "| sepal length (cm) | float64 | 0 | min " in data
    run = tracked["run"]
    lineage = _section(md, "Lineage")
    assert f"| Training run | {run.id} |" in lineage and "not run by a pipeline" in lineage
    assert "| Python | " in _section(md, "Environment") and "| scikit-learn | " in md
    assert 'nbops.load_model("iris-clf:1")' in md
    assert 'nbops.load_model("iris-clf@production")' in md
    assert (
        "Not for *production* &lt;b&gt;use&lt;/b&gt;." in md
    )  # people's Markdown kept, HTML escaped
    assert "![confusion.png](data:image/png;base64," in md
    assert SCRIPT not in md and "<b>" not in md


def test_front_matter_parses_as_hugging_face_metadata(
    tracked: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from huggingface_hub import ModelCard, ModelCardData
    from huggingface_hub.repocard import metadata_load

    path = nbops.card("iris-clf").save(tmp_path / "README.md")
    meta = metadata_load(path)
    assert meta is not None and meta["model-index"][0]["name"] == "iris-clf"
    hf = ModelCard.load(path, ignore_metadata_errors=False)
    assert isinstance(hf.data, ModelCardData)
    assert hf.data.license == "apache-2.0" and hf.data.library_name == "sklearn"
    results = hf.data.eval_results
    assert results is not None
    # only the evaluation metrics (train_accuracy, epoch, fit_seconds were logged too)
    assert {r.metric_name: r.metric_value for r in results} == pytest.approx(tracked["metrics"])
    assert [r.metric_type for r in results] == ["accuracy", "f1"]
    assert {r.dataset_split for r in results} == {"test"}
    assert {r.dataset_revision for r in results} == {tracked["datasets"]["iris-test"]}
    assert {r.task_type for r in results} == {"tabular-classification"}


def test_html_card_escapes_every_value(tracked: dict[str, Any]) -> None:
    page = nbops.card("iris-clf:1").html
    assert page.startswith("<!DOCTYPE html>")
    assert SCRIPT not in page and "<script" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "Ada &lt;ada@example.org&gt;" in page
    assert "<em>production</em> &lt;b&gt;use&lt;/b&gt;" in page
    assert '<img src="data:image/png;base64,' in page
    for digest in tracked["datasets"].values():
        assert digest in page
    card = nbops.card("iris-clf:1")
    assert card._repr_html_() == card.html and card._repr_markdown_() == card.markdown


def test_save_writes_plots_beside_the_card(tracked: dict[str, Any], tmp_path: Path) -> None:
    card = nbops.card("iris-clf")
    path = card.save(tmp_path / "out" / "model_card.md", html=tmp_path / "card.html")
    text = path.read_text()
    assert "![confusion.png](model_card_files/confusion.png)" in text and "base64" not in text
    assert (tmp_path / "out" / "model_card_files" / "confusion.png").read_bytes() == Path(
        "confusion.png"
    ).read_bytes()
    assert (tmp_path / "card.html").read_text() == card.html


def test_project_template_overrides_the_packaged_one(
    tracked: dict[str, Any], isolated_env: Path
) -> None:
    (isolated_env / "templates").mkdir()
    (isolated_env / "templates" / "model_card.md.j2").write_text(
        "# {{ model.ref }}\n"
        "{% for k, v in params.items() %}{{ k }}={{ v|value|cell }}\n{% endfor %}"
    )
    md = nbops.card("iris-clf").markdown
    assert md.startswith("---\n") and "\n# iris-clf:1\n" in md
    assert "note=&lt;script&gt;" in md


def test_missing_human_parts_say_what_to_add(tracked: dict[str, Any], isolated_env: Path) -> None:
    (isolated_env / "nbops.yaml").write_text("stages: {}\n")
    card = nbops.card("iris-clf")
    assert "license" not in card.metadata
    assert "add `card.intended_use` to nbops.yaml" in card.markdown
    # nothing says which metrics are evaluation results: no model-index rather than a guess
    assert "model-index" not in card.metadata and "metrics" not in card.metadata
    assert "No evaluation results recorded" in card.markdown


def test_packaged_template_matches_the_repository_copy() -> None:
    packaged = REPO / "nbops" / "cards" / "templates" / "model_card.md.j2"
    assert (REPO / "templates" / "model_card.md.j2").read_text() == packaged.read_text()


def test_cli_card(tracked: dict[str, Any], cli: Any, tmp_path: Path) -> None:
    result = cli(
        "card",
        "iris-clf@production",
        "-o",
        str(tmp_path / "m.md"),
        "--html",
        str(tmp_path / "m.html"),
    )
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "m.md").read_text().startswith("---\nlicense: apache-2.0\n")
    assert "&lt;script&gt;" in (tmp_path / "m.html").read_text()
    printed = cli("card", "iris-clf", "-o", "-")
    assert printed.exit_code == 0 and "# Model card: iris-clf (version 1)" in printed.output
    assert cli("card", "nope").exit_code == 1


@pytest.mark.slow
def test_html_card_renders_in_a_headless_browser(tracked: dict[str, Any], tmp_path: Path) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser is not None, "chromium is missing: apt-get install -y chromium (.ci/run does)"
    page = tmp_path / "card.html"
    nbops.card("iris-clf@production").save(tmp_path / "model_card.md", html=page)
    shot = tmp_path / "card.png"
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-background-networking",
            f"--user-data-dir={tmp_path / 'ud'}",
            f"--screenshot={shot}",
            "--window-size=1200,2400",
            page.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    from PIL import Image

    with Image.open(shot) as image:
        assert image.size == (1200, 2400)
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
        assert colours is not None and len(colours) > 50  # text, tables and the plot rendered


def test_card_lists_the_types_a_version_needs(isolated_env: Path) -> None:
    import functools
    import os

    from sklearn.preprocessing import FunctionTransformer

    (isolated_env / "nbops.yaml").write_text("card: {license: mit}\n")
    with pytest.warns(UserWarning, match="allow-list"):
        nbops.log_model(FunctionTransformer(functools.partial(os.system)), "evil")
    card = nbops.card("evil")
    details = _table(_section(card.markdown, "Model details"), "| | |")
    assert "functools.partial, posix.system" in details["Format"]
    assert "without running arbitrary code" not in details["Format"]
    assert details["Types needed"] == "functools.partial, posix.system"
    assert 'trusted=["functools.partial", "posix.system"]' in card.markdown


def test_evaluation_recorded_by_log_model_and_front_matter_rules(
    isolated_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from huggingface_hub import ModelCard
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    (isolated_env / "nbops.yaml").write_text(
        "card: {license: 'Acme <b>Internal</b> v2', description: x}\n"
    )
    frame = load_iris(as_frame=True).frame
    with nbops.init(project="ev") as run:
        nbops.log_dataset(frame.iloc[:100], name="train-part")
        nbops.log_dataset(frame.iloc[100:], name="holdout")
        model = LogisticRegression(max_iter=300).fit(frame.iloc[:100, :4], frame.target[:100])
        run.log({"train_accuracy": 1.0, "accuracy": 0.8123456789, "epoch": 7})
        nbops.log_model(
            model,
            "ev",
            evaluation={"dataset": "holdout", "split": "validation", "metrics": ["accuracy"]},
        )
        with pytest.raises(nbops.NbopsError, match="were not logged by the run"):
            nbops.log_model(model, "ev", evaluation={"dataset": "holdout", "metrics": ["auc"]})
    card = nbops.card("ev")
    meta = card.metadata
    assert meta["license"] == "other" and meta["license_name"] == "acme-internal-v2"
    assert "datasets" not in meta  # local datasets are not Hub ids
    assert "<" not in yaml.safe_dump(meta)
    (result,) = meta["model-index"][0]["results"]
    assert result["dataset"]["split"] == "validation" and result["dataset"]["name"] == "holdout"
    assert result["metrics"] == [{"type": "accuracy", "value": 0.812346, "name": "accuracy"}]
    assert "| accuracy | 0.8123 |" in card.markdown  # rounded for reading
    path = card.save(tmp_path / "README.md")
    hf = ModelCard.load(path, ignore_metadata_errors=False)
    assert hf.data.license == "other" and hf.data.eval_results is not None
    assert [r.metric_name for r in hf.data.eval_results] == ["accuracy"]


def test_card_shows_the_last_image_logged_under_each_key(
    isolated_env: Path, tmp_path: Path
) -> None:
    import numpy as np
    from sklearn.dummy import DummyClassifier

    with nbops.init(project="p", capture=False, system_metrics=False) as run:
        for shade in (0, 255):
            picture = np.full((3, 3), shade, dtype=np.uint8)
            run.log({"confusion": nbops.Image(picture, caption=f"shade {shade} <b>")})
        nbops.log_model(DummyClassifier().fit([[0], [1]], [0, 1]), "dummy")
    card = nbops.card("dummy:1")
    (image,) = [i for i in card.context["images"] if i["name"].startswith("confusion")]
    assert (
        image["name"] == "confusion: shade 255 <b>" and image["filename"] == "confusion.step1.png"
    )
    assert "&lt;b&gt;" in card.html and "shade 255 <b>" not in card.html
    saved = card.save(tmp_path / "card.md")
    from PIL import Image

    with Image.open(saved.parent / "card_files" / "confusion.step1.png") as shown:
        assert shown.getpixel((0, 0)) == 255
