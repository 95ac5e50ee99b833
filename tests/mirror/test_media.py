"""Media logged with nbops reach the W&B copy as W&B media, live and rebuilt from the store."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import nbops
from nbops.mirror import read_offline_run, rebuild_offline_copy
from nbops.store import open_store


def _log_every_kind(run: Any) -> None:
    from matplotlib.figure import Figure

    figure = Figure()
    figure.add_subplot().plot([1, 2, 3])
    run.log({"loss": 0.5})
    run.log({"loss": 0.4, "sample": nbops.Image(np.zeros((4, 5, 3), np.uint8), caption="c<b>")})
    run.log({"confusion": figure, "preds": nbops.Table({"y": [1, 2], "p": ["a", "b"]})})
    run.log({"weights": nbops.Histogram([1, 2, 2, 3], bins=2), "frame": pd.DataFrame({"x": [7]})})
    run.log_table("scores", pd.DataFrame({"acc": [0.9, 0.8]}, index=["a", "b"]))
    run.log_table("matrix", np.arange(6.0).reshape(3, 2))


def _media_rows(run_dir: Path) -> dict[str, tuple[int, dict[str, Any]]]:
    """Each media key of the copy's history with its step and W&B value."""
    found: dict[str, tuple[int, dict[str, Any]]] = {}
    for row in read_offline_run(run_dir).history:  # the reader flattens nested values: a.b
        for name, value in row.items():
            key, _, field = name.partition(".")
            if field:
                found.setdefault(key, (row["_step"], {}))[1][field] = value
    return found


def _check(run_dir: Path) -> None:
    media = _media_rows(run_dir)
    assert {k: (step, v["_type"]) for k, (step, v) in media.items()} == {
        "sample": (1, "image-file"),
        "confusion": (2, "image-file"),
        "preds": (2, "table-file"),
        "weights": (3, "histogram"),
        "frame": (3, "table-file"),
        "scores": (3, "table-file"),
        "matrix": (3, "table-file"),
    }
    assert (media["matrix"][1]["nrows"], media["matrix"][1]["ncols"]) == (3, 2)
    assert media["sample"][1]["caption"] == "c<b>"
    assert (media["sample"][1]["width"], media["sample"][1]["height"]) == (5, 4)
    assert media["weights"][1]["values"] == [1, 3]
    assert media["preds"][1]["nrows"] == 2 and media["preds"][1]["ncols"] == 2
    for key in ("sample", "confusion", "preds", "scores"):  # the files wandb uploads
        assert (run_dir / "files" / media[key][1]["path"]).is_file(), key
    scores = run_dir / "files" / media["scores"][1]["path"]
    assert "0.9" in scores.read_text() and '"a"' in scores.read_text()
    copy = read_offline_run(run_dir)
    assert [row.get("loss") for row in copy.history if "loss" in row] == [0.5, 0.4]
    names = {a.name for a in copy.artifacts}  # wandb adds a run-ID-KEY artifact per table
    assert "scores" in names  # log_table keeps its artifact; log's media are history values
    assert not any(".step" in name for name in names)


def test_live_mirror_logs_wandb_media(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBOPS_WANDB", "offline")
    with nbops.init(project="p", capture=False, system_metrics=False) as run:
        _log_every_kind(run)
    state = nbops.get_run(run.id).metadata["wandb"]
    assert state["copy"] == "complete"
    assert os.environ["WANDB_DIR"] in state["run_dir"]
    _check(Path(state["run_dir"]))


def test_rebuilt_copy_has_the_same_media(tmp_path: Path) -> None:
    with nbops.init(project="p", capture=False, system_metrics=False) as run:  # no mirror
        _log_every_kind(run)
    result = rebuild_offline_copy(open_store(), run.id, tmp_path)
    assert result.action == "rebuilt"
    _check(Path(result.detail))


def test_media_logged_by_an_attached_process_reach_the_owners_copy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from nbops.tracking import Run

    monkeypatch.setenv("NBOPS_WANDB", "offline")
    owner = nbops.init(project="p", capture=False, system_metrics=False)
    stage = Run.attach(owner.id, owner.store)  # as a pipeline stage's kernel writes into it
    stage.log({"acc": 0.9, "sample": nbops.Image(np.full((2, 2), 255, np.uint8))})
    stage.finish()
    owner.sync_from_store()
    owner.finish()
    state = nbops.get_run(owner.id).metadata["wandb"]
    media = _media_rows(Path(state["run_dir"]))
    assert media["sample"][0] == 0 and media["sample"][1]["_type"] == "image-file"
