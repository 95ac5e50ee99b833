"""The shipped example (``nbops.yaml``, ``notebooks/``) run end to end, as ``make demo`` runs it."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

import nbops
from tests.conftest import REPO


@pytest.mark.slow
@pytest.mark.kernel
def test_example_logs_its_confusion_matrix_as_media(
    cli: Any, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nbops.mirror import read_offline_run

    monkeypatch.setenv("NBOPS_WANDB", "offline")
    shutil.copy(REPO / "nbops.yaml", isolated_env / "nbops.yaml")
    shutil.copytree(REPO / "notebooks", isolated_env / "notebooks")
    ran = cli("run", "--jobs", "2")
    assert ran.exit_code == 0, ran.stderr
    assert "3 ran" in ran.output

    # the model card shows the figure from the media path, relative to the card
    markdown = (isolated_env / "model_card.md").read_text()
    reference = "![confusion\\_matrix](model_card_files/confusion_matrix.step1.png)"
    assert reference in markdown
    picture = isolated_env / "model_card_files" / "confusion_matrix.step1.png"
    assert picture.read_bytes().startswith(b"\x89PNG")
    html = (isolated_env / "model_card.html").read_text()
    assert 'alt="confusion_matrix"' in html and "<figcaption>confusion_matrix</figcaption>" in html

    # stored as media keyed by step (no loose plot artifact), and mirrored as a wandb.Image
    runs = nbops.runs()
    (evaluate,) = runs[runs["name"] == "evaluate"]["id"]
    stored = nbops.get_run(evaluate)
    assert stored.media_keys() == ["confusion_matrix"]
    [(step, image)] = stored.media("confusion_matrix")
    assert image.path.read_bytes() == picture.read_bytes()
    assert not [a for a in stored.artifacts.values() if a.type == "evaluation-plot"]
    run_dir = stored.metadata["wandb"]["run_dir"]
    rows = [row for row in read_offline_run(run_dir).history if "confusion_matrix._type" in row]
    assert len(rows) == 1 and rows[0]["confusion_matrix._type"] == "image-file"
    assert rows[0]["confusion_matrix.path"].endswith(".png") and rows[0]["_step"] == step
