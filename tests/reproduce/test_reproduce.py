"""``nbops reproduce`` against real kernels: papermill-tracked notebooks in a git project."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import nbops
from nbops.reproduce import ReproduceError, parse_tolerances, reproduce
from nbops.store import open_store
from tests.conftest import subprocess_env

pytestmark = pytest.mark.kernel

PAPERMILL = str(Path(sys.executable).parent / "papermill")


def _cell(source: str, tags: list[str] | None = None) -> dict[str, Any]:
    return {
        "cell_type": "code",
        "source": source,
        "outputs": [],
        "execution_count": None,
        "metadata": {"tags": tags or []},
    }


def _write_notebook(path: Path, cells: list[dict[str, Any]]) -> None:
    for i, cell in enumerate(cells):
        cell["id"] = f"c{i}"
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


TRAIN = [
    _cell("seeded = True\nscale = 2.0", ["parameters"]),
    _cell("%load_ext nbops\n%nbops track --project repro --name train"),
    _cell(
        "import random\n"
        "import pandas as pd\n"
        "import nbops\n"
        "frame = pd.read_csv('data.csv')\n"
        "nbops.log_dataset('data.csv', name='data')\n"
        "rng = random.Random(7) if seeded else random.Random()\n"
        "score = float(frame['x'].sum()) * scale + rng.random()\n"
        "nbops.log({'score': score, 'rows': len(frame)})\n"
        "print(f'score {score:.6f}')"
    ),
    _cell("%nbops stop"),
]


def _git(project: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=project, check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def project(isolated_env: Path) -> Path:
    """A git project with a notebook and its data, committed."""
    root = isolated_env
    _write_notebook(root / "train.ipynb", [dict(c) for c in TRAIN])
    (root / "data.csv").write_text("x\n1\n2\n3\n")
    (root / ".gitignore").write_text(".nbops/\nout.ipynb\n")
    _git(root, "init", "-q")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@e", "add", ".")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-q", "-m", "start")
    return root


def _papermill(project: Path, *params: str) -> str:
    done = subprocess.run(
        [PAPERMILL, "--log-level", "ERROR", "train.ipynb", "out.ipynb", *params],
        cwd=project,
        env=subprocess_env(NBOPS_WANDB="disabled"),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    runs = nbops.runs(project="repro")
    return str(runs["id"].iloc[-1])


def test_a_papermill_run_is_reproduced_exactly_and_linked(project: Path, cli: Any) -> None:
    run_id = _papermill(project, "-p", "scale", "3.0")
    before = _git(project, "status", "--porcelain")

    result = reproduce(run_id)

    assert result.verdict == "reproduced", (result.reasons, result.outputs)
    assert result.exit_code == 0
    assert {m.key for m in result.metrics} == {"score", "rows"}
    assert all(m.exact for m in result.metrics)
    original = nbops.get_run(run_id)
    assert original.params["scale"] == 3.0
    rerun = nbops.get_run(result.run_id or "")
    assert rerun.params["scale"] == 3.0  # the recorded papermill parameters were used
    assert rerun.record.job_type == "reproduction"
    assert rerun.metadata["reproduces"]["run"] == run_id
    assert rerun.metadata["reproduces"]["verdict"] == "reproduced"
    assert _git(project, "status", "--porcelain") == before  # the checkout is only read
    # the CLI: exit 0 and strict JSON
    done = cli("reproduce", run_id, "--json")
    assert done.exit_code == 0, done.stderr
    assert json.loads(done.output)["verdict"] == "reproduced"


def test_changed_data_on_disk_uses_the_recorded_version(project: Path) -> None:
    run_id = _papermill(project)
    (project / "data.csv").write_text("x\n100\n200\n")  # changed after the run

    result = reproduce(run_id)

    assert result.verdict == "reproduced", result.reasons
    assert any(r.startswith("data: ") and "data" in r for r in result.reasons), result.reasons
    assert (project / "data.csv").read_text() == "x\n100\n200\n"  # user's file untouched


def test_an_unseeded_metric_differs_and_nondeterminism_is_named(project: Path, cli: Any) -> None:
    run_id = _papermill(project, "-p", "seeded", "False")

    result = reproduce(run_id)

    assert result.verdict == "differs"
    assert result.exit_code == 1
    assert result.second_run_id is not None
    assert any(r.startswith("nondeterminism:") and "score" in r for r in result.reasons)
    assert not any(r.startswith("hidden state") for r in result.reasons)
    # a tolerance wide enough accepts it
    loose = reproduce(run_id, tolerances={"score": 0.5})
    assert loose.verdict == "reproduced within tolerance", loose.reasons


def test_a_recorded_package_version_that_differs_is_reported(project: Path) -> None:
    run_id = _papermill(project)
    store = open_store()
    packages = dict(store.get_metadata(run_id)["packages"])
    packages["pandas"] = "0.0.1"
    packages["long-gone-package"] = "1.0"
    store.set_metadata(run_id, "packages", packages)

    result = reproduce(run_id)

    (check,) = [c for c in result.checks if c.name == "packages"]
    assert not check.ok
    assert "pandas 0.0.1 ->" in check.detail and "long-gone-package 1.0 -> -" in check.detail
    assert result.verdict == "reproduced"  # reported, and the result still holds


def test_missing_pieces_are_named_before_anything_runs(project: Path, cli: Any) -> None:
    run_id = _papermill(project)
    store = open_store()
    git = dict(store.get_metadata(run_id)["git"])
    git["commit"] = "0" * 40
    store.set_metadata(run_id, "git", git)
    count = len(store.list_runs())

    with pytest.raises(ReproduceError, match="commit 000000000000 is not in"):
        reproduce(run_id)
    assert len(store.list_runs()) == count  # nothing ran

    done = cli("reproduce", run_id)
    assert done.exit_code == 2
    assert done.stderr.startswith("Error: cannot reproduce run")
    assert "Traceback" not in done.stderr


def test_a_run_without_a_notebook_is_refused_clearly(isolated_env: Path) -> None:
    with nbops.init(project="script", capture=False) as run:
        run.log({"x": 1.0})
    with pytest.raises(ReproduceError, match="no notebook snapshot"):
        reproduce(run.id)


def test_tolerances_parse_and_bad_ones_say_what_to_give() -> None:
    assert parse_tolerances(["accuracy=0.01", "loss=0"]) == {"accuracy": 0.01, "loss": 0.0}
    for bad in ("accuracy", "=0.1", "accuracy=x", "accuracy=-1", "accuracy=nan"):
        with pytest.raises(ValueError, match="METRIC=REL"):
            parse_tolerances([bad])
