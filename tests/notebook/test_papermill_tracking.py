"""A real notebook, executed by papermill in a real kernel, tracked with ``%nbops track``.

Both copies are read back: the local store, and W&B's offline ``.wandb`` file.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import nbops
from nbops.mirror import find_offline_runs, read_offline_run
from tests.conftest import subprocess_env

pytestmark = pytest.mark.kernel

SECRET = "sekret-value-9f8e7d6c5b"
PAPERMILL = str(Path(sys.executable).parent / "papermill")


def _cell(source: str, cell_id: str, tags: list[str] | None = None) -> dict[str, object]:
    return {
        "cell_type": "code",
        "id": cell_id,
        "source": source,
        "outputs": [],
        "execution_count": None,
        "metadata": {"tags": tags or []},
    }


def write_notebook(path: Path, *, stop: bool) -> None:
    cells = [
        _cell("alpha = 0.1\nepochs = 5\napi_token = 'default'", "params", ["parameters"]),
        _cell("%load_ext nbops\n%nbops track --project e2e --name papermill-run --tag ci", "track"),
        _cell(
            "import nbops\n"
            "for step in range(epochs):\n"
            "    nbops.log({'loss': 1.0 / (step + 1), 'acc': step * alpha})\n"
            "nbops.log_params({'optimizer': 'sgd'})\n"
            "nbops.active_run().summary['best_acc'] = (epochs - 1) * alpha",
            "train",
        ),
    ]
    if stop:
        cells.append(_cell("%nbops stop", "stop"))
    path.write_text(
        json.dumps(
            {
                "nbformat": 4,
                "nbformat_minor": 5,
                "cells": cells,
                "metadata": {
                    "kernelspec": {
                        "name": "python3",
                        "display_name": "Python 3",
                        "language": "python",
                    }
                },
            }
        )
    )


def execute(project: Path, notebook: Path, *params: str) -> subprocess.CompletedProcess[str]:
    env = subprocess_env(
        NBOPS_WANDB="offline",
        WANDB_DIR=str(project),
        MY_SERVICE_TOKEN=SECRET,
    )
    return subprocess.run(
        [PAPERMILL, "--log-level", "ERROR", str(notebook), str(project / "out.ipynb"), *params],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


@pytest.mark.parametrize("stop", [True, False], ids=["stop-magic", "kernel-shutdown"])
def test_notebook_run_is_in_the_store_and_in_wandb_offline(isolated_env: Path, stop: bool) -> None:
    project = isolated_env
    notebook = project / "train.ipynb"
    write_notebook(notebook, stop=stop)
    done = execute(project, notebook, "-p", "alpha", "0.25", "-p", "api_token", SECRET)
    assert done.returncode == 0, done.stderr[-3000:]

    (row,) = nbops.runs(project="e2e").itertuples()
    run = nbops.get_run(row.id)
    # the local store
    assert run.status == "finished"  # finished by %nbops stop, or by kernel shutdown
    assert run.record.name == "papermill-run" and run.record.tags == ("ci",)
    assert run.params["alpha"] == 0.25  # injected by papermill
    assert run.params["optimizer"] == "sgd"
    assert run.params["api_token"] == "[redacted]"
    history = run.history()
    assert list(history["step"]) == [0, 1, 2, 3, 4]
    assert list(history["loss"]) == pytest.approx([1, 1 / 2, 1 / 3, 1 / 4, 1 / 5])
    assert list(history["acc"]) == pytest.approx([0, 0.25, 0.5, 0.75, 1.0])
    assert run.summary["best_acc"] == 1.0
    notebook_doc = run.metadata["notebook"]
    assert notebook_doc["path"] == str(notebook) and notebook_doc["source"] == "papermill"
    assert notebook_doc["snapshot"]["sha256"]
    assert run.metadata["papermill"]["parameters"]["alpha"] == 0.25
    assert run.metadata["git"] is None or "commit" in run.metadata["git"]
    assert run.metadata["environment"]["python"]["version"]
    assert "pandas" in run.metadata["packages"]
    cells = run.metadata["cells"]
    outcomes = [c["ok"] for c in cells if c["n"] is not None]
    # the two cells before %load_ext come from IPython's history (outcome unknown); the cells
    # after it succeeded; with %nbops stop, the stop cell itself was still running
    assert outcomes == [None, None, True, True] + ([None] if stop else [])
    if stop:
        provenance = run.metadata["provenance"]
        assert provenance["reproducible"] is True, provenance

    # the W&B offline mirror, read back from the binary .wandb file; a kernel shut down without
    # %nbops stop may end before the mirror drained: `nbops sync --offline` completes the copy
    if not stop and run.metadata["wandb"]["copy"] != "complete":
        assert run.metadata["wandb"]["copy"] == "partial"
        synced = subprocess.run(
            [sys.executable, "-m", "nbops", "sync", "--offline"],
            cwd=project,
            env=subprocess_env(WANDB_DIR=str(project)),
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert synced.returncode == 0, synced.stderr
        run = nbops.get_run(row.id)
    (run_dir,) = find_offline_runs(project / "wandb")
    offline = read_offline_run(run_dir)
    # the same id, or a fresh one derived from it when wandb kept the id reserved (the sync
    # rebuild after a shutdown that beat the mirror); the store names the copy either way
    assert offline.run_id == run.id or offline.run_id.startswith(f"{run.id}-"), offline.run_id
    assert run.metadata["wandb"]["wandb_id"] == offline.run_id
    assert offline.name == "papermill-run"
    assert offline.project == "e2e"
    assert offline.config["alpha"] == 0.25 and offline.config["optimizer"] == "sgd"
    assert offline.config["api_token"] == "[redacted]"
    assert [h["_step"] for h in offline.history] == [0, 1, 2, 3, 4]
    assert [h["acc"] for h in offline.history] == pytest.approx([0, 0.25, 0.5, 0.75, 1.0])
    assert offline.summary["best_acc"] == 1.0
    assert offline.exit_code == 0
    assert run.metadata["wandb"]["mode"] == "offline"
    assert run.metadata["wandb"]["status"] == "finished"
    assert run.metadata["wandb"]["run_dir"] == str(run_dir)

    # the secret from the environment and the parameters is nowhere in what nbops wrote
    leaks = [
        str(path)
        for folder in (project / ".nbops", project / "wandb")
        for path in folder.rglob("*")
        if path.is_file() and SECRET.encode() in path.read_bytes()
    ]
    assert leaks == []
