"""The W&B copy carries what the store knows about the run's code, as wandb lays it out."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

import nbops
from nbops.mirror import find_offline_runs, read_offline_run, rebuild_offline_copy
from nbops.store import open_store

REMOTE_PASSWORD = "remote-pass-77aa66bb"


def _git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=root,
        check=True,
        capture_output=True,
    )


@pytest.fixture
def repo(isolated_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = isolated_env
    (root / "train.py").write_text("print('v1')\n")
    (root / "train.ipynb").write_text(
        json.dumps(
            {
                "nbformat": 4,
                "nbformat_minor": 5,
                "metadata": {},
                "cells": [
                    {
                        "cell_type": "code",
                        "id": "c1",
                        "source": "x = 1",
                        "metadata": {},
                        "outputs": [],
                        "execution_count": None,
                    }
                ],
            }
        )
    )
    _git(root, "init", "-q")
    _git(root, "remote", "add", "origin", f"https://bob:{REMOTE_PASSWORD}@example.com/demo.git")
    _git(root, "add", ".")
    _git(root, "commit", "-qm", "first")
    (root / "train.py").write_text("print('v2')\n")  # an uncommitted change: diff.patch
    monkeypatch.setenv("WANDB_DIR", str(root))
    return root


def _check_files(run_dir: Path, metadata: dict[str, Any]) -> None:
    files = run_dir / "files"
    git = metadata["git"]
    meta = json.loads((files / "wandb-metadata.json").read_text())
    assert meta["git"] == {"commit": git["commit"], "remote": git["remote"]}
    assert meta["codePath"] == "train.ipynb"
    assert "print('v2')" in (files / "diff.patch").read_text()
    requirements = (files / "requirements.txt").read_text().splitlines()
    assert requirements == [f"{k}=={v}" for k, v in sorted(metadata["packages"].items())]
    assert (files / "code" / "train.ipynb").read_text() == metadata["notebook"]["snapshot"]["text"]
    copy = read_offline_run(run_dir)
    assert {"wandb-metadata.json", "diff.patch", "requirements.txt", "code/train.ipynb"} <= set(
        copy.files
    )
    for path in run_dir.rglob("*"):
        if path.is_file():
            assert REMOTE_PASSWORD.encode() not in path.read_bytes(), path


def test_live_and_rebuilt_copies_carry_git_diff_packages_and_notebook(repo: Path) -> None:
    run = nbops.init(project="code", wandb="offline", notebook=repo / "train.ipynb")
    run.log({"loss": 0.5})
    (repo / "model").mkdir()
    (repo / "model" / "weights.bin").write_bytes(b"w")
    run.log_artifact(repo / "model", name="model-dir", type="model")
    run.log_artifact(repo / "train.py", name="script", type="code")
    run.finish()
    store = open_store()
    metadata = store.get_metadata(run.id)
    assert metadata["git"]["commit"] and "example.com/demo.git" in metadata["git"]["remote"]
    assert REMOTE_PASSWORD not in metadata["git"]["remote"]
    (live_dir,) = find_offline_runs(repo)
    _check_files(live_dir, metadata)
    live = read_offline_run(live_dir)  # the run record too, as wandb puts it for its own runs
    assert (live.git_commit, live.git_remote) == (
        metadata["git"]["commit"],
        metadata["git"]["remote"],
    )

    live_dir = live_dir.rename(repo / "kept-live-copy")  # keep it to compare with
    result = rebuild_offline_copy(store, run.id, repo)
    rebuilt = Path(result.detail)
    assert find_offline_runs(repo) == [rebuilt]
    assert rebuilt.parent == repo / "wandb"
    _check_files(rebuilt, metadata)
    copy = read_offline_run(rebuilt)
    assert copy.git_commit == metadata["git"]["commit"]  # in the run record, as wandb puts it
    assert copy.git_remote == metadata["git"]["remote"]
    assert copy.history[0]["loss"] == 0.5
    names = [(a.name, a.type) for a in copy.artifacts]
    assert names == [(a.name, a.type) for a in read_offline_run(live_dir).artifacts]
    assert names == [("model-dir", "model"), ("script", "code")]


@pytest.mark.parametrize("path", ["..", "nb/..", "/"])
def test_a_notebook_path_naming_a_folder_stays_inside_code(path: str) -> None:
    from nbops.mirror import code_files

    metadata = {"notebook": {"path": path, "snapshot": {"text": "{}"}}}
    files = code_files(metadata)
    assert "code/notebook.ipynb" in files
    assert all(".." not in Path(p).parts for p in files)
