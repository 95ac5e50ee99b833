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
    # the original lists its reproductions
    shown = cli("runs", "show", run_id)
    assert f"reproduced by {result.run_id}: reproduced" in shown.output
    listed = json.loads(cli("runs", "show", run_id, "--json").output)["reproductions"]
    assert [r["verdict"] for r in listed] == ["reproduced", "reproduced"]


def test_changed_data_on_disk_uses_the_recorded_version(project: Path) -> None:
    run_id = _papermill(project)
    (project / "data.csv").write_text("x\n100\n200\n")  # changed after the run

    result = reproduce(run_id)

    assert result.verdict == "reproduced", result.reasons
    assert (
        "data: the file(s) of data changed on disk since the run; the re-run used the recorded "
        "version" in result.reasons
    ), result.reasons
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


def test_system_metrics_sampled_by_time_are_not_compared() -> None:
    from nbops.reproduce import compare_metrics

    diffs = compare_metrics(
        {"score": 1.5, "system/cpu_percent": 30.0},
        {"score": 1.5, "system/cpu_percent": 80.0, "system/process_rss_mb": 157.8},
    )
    assert [(d.key, d.exact) for d in diffs] == [("score", True)]


def test_tolerances_parse_and_bad_ones_say_what_to_give() -> None:
    assert parse_tolerances(["accuracy=0.01", "loss=0"]) == {"accuracy": 0.01, "loss": 0.0}
    for bad in ("accuracy", "=0.1", "accuracy=x", "accuracy=-1", "accuracy=nan"):
        with pytest.raises(ValueError, match="METRIC=REL"):
            parse_tolerances([bad])


def test_a_pipeline_stage_is_reproduced_from_its_run_id(isolated_env: Path) -> None:
    from nbops.pipeline import run_pipeline

    root = isolated_env
    (root / "nb").mkdir()
    _write_notebook(
        root / "nb" / "prepare.ipynb",
        [
            _cell("n = 5", ["parameters"]),
            _cell(
                "import pathlib\npathlib.Path('data').mkdir(exist_ok=True)\n"
                "rows = '\\n'.join(map(str, range(n)))\n"
                "pathlib.Path('data/rows.csv').write_text('x\\n' + rows)"
            ),
        ],
    )
    _write_notebook(
        root / "nb" / "train.ipynb",
        [
            _cell("scale = 1.5", ["parameters"]),
            _cell(
                "import nbops, pandas as pd\n"
                "frame = pd.read_csv('data/rows.csv')\n"
                "nbops.log({'total': float(frame['x'].sum()) * scale})"
            ),
        ],
    )
    (root / "nbops.yaml").write_text(
        "stages:\n"
        "  prepare:\n    notebook: nb/prepare.ipynb\n    params: {n: 5}\n"
        "    outs: [data/rows.csv]\n"
        "  train:\n    notebook: nb/train.ipynb\n    params: {scale: 2.0}\n"
        "    deps: [data/rows.csv]\n"
    )
    (root / ".gitignore").write_text(".nbops/\ndata/\n")  # outs are not committed
    _git(root, "init", "-q")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@e", "add", ".")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-q", "-m", "pipeline")
    run_pipeline(root, report=lambda _line: None)
    runs = nbops.runs()
    train_id = str(runs[runs["name"] == "train"]["id"].iloc[-1])
    assert nbops.get_run(train_id).summary.get("total", None) in (None, 20.0)

    result = reproduce(train_id)

    assert result.verdict == "reproduced", result.reasons
    (metric,) = result.metrics
    assert metric.key == "total" and metric.original == metric.reproduced == 20.0
    (restored,) = [c for c in result.checks if c.name == "input data/rows.csv"]
    assert restored.ok, restored.detail  # the upstream out came from the store, by hash
    assert nbops.get_run(result.run_id or "").params["scale"] == 2.0


def test_hidden_state_of_an_interactive_run_is_named(
    isolated_env: Path, ipython: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = isolated_env
    cells = [
        _cell("%load_ext nbops\n%nbops track --project repro --name interactive"),
        _cell("x = 1"),
        _cell("y = x + 10"),
        _cell("x = 100"),
        _cell("import nbops\nnbops.log({'y': y})"),
        _cell("%nbops stop"),
    ]
    _write_notebook(root / "explore.ipynb", cells)
    monkeypatch.setenv("NBOPS_NOTEBOOK_PATH", str(root / "explore.ipynb"))
    for index in (0, 1, 3, 2, 4, 5):  # x = 100 ran before y = x + 10: y is 110, not 11
        source = cells[index]["source"]
        ipython.run_cell(source, store_history=True, cell_id=f"c{index}")
    original = str(nbops.runs(project="repro")["id"].iloc[-1])
    assert nbops.get_run(original).metadata["provenance"]["reproducible"] is False

    result = reproduce(original)

    assert result.verdict == "differs"
    (metric,) = result.metrics
    assert (metric.original, metric.reproduced) == (110.0, 11.0)
    (hidden,) = [r for r in result.reasons if r.startswith("hidden state")]
    assert "y interactively 110.0, top to bottom 11.0" in hidden
    # the likely cause, named: `y = x + 10` (cell 3) ran after `x = 100` (cell 4)
    assert "ran out of order: cell 3 (In [4]) ran after cell 4 (In [3])" in hidden, hidden


def test_a_bundle_is_reproduced_in_another_checkout_with_a_fresh_store(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Any
) -> None:
    import zipfile

    run_id = _papermill(project, "-p", "scale", "3.0")
    bundle = tmp_path / "moved" / "run.zip"
    done = cli("export", run_id, "-o", str(bundle), "--env", str(tmp_path / "requirements.txt"))
    assert done.exit_code == 0, done.stderr
    pins = (tmp_path / "requirements.txt").read_text()
    assert "pandas==" in pins and "[redacted]" not in pins
    with zipfile.ZipFile(bundle) as zf:
        names = zf.namelist()
        assert "notebook.ipynb" in names and "requirements.txt" in names
        assert any(n.startswith("blobs/") for n in names)  # data.csv's recorded version

    # another checkout of the same repository, its own store, and its data.csv changed
    other = tmp_path / "elsewhere"
    subprocess.run(["git", "clone", "-q", str(project), str(other)], check=True)
    (other / "data.csv").write_text("x\n7\n")
    monkeypatch.chdir(other)
    monkeypatch.setenv("NBOPS_HOME", str(other / ".nbops"))

    result = reproduce(str(bundle), store=other / ".nbops")

    assert result.verdict == "reproduced", result.reasons
    assert result.original == run_id
    rerun = nbops.get_run(result.run_id or "", store=other / ".nbops")
    assert rerun.metadata["reproduces"]["bundle"] == str(bundle)
    assert rerun.params["scale"] == 3.0


def test_a_tampered_bundle_is_refused(project: Path, tmp_path: Path, cli: Any) -> None:
    import zipfile

    run_id = _papermill(project)
    bundle = tmp_path / "run.zip"
    assert cli("export", run_id, "-o", str(bundle)).exit_code == 0
    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(bundle) as src, zipfile.ZipFile(tampered, "w") as dst:
        for item in src.infolist():
            body = src.read(item)
            if item.filename == "notebook.ipynb":
                body = body.replace(b"random.Random(7)", b"random.Random(8)")
            dst.writestr(item, body)

    with pytest.raises(ReproduceError, match=r"notebook\.ipynb does not have its recorded hash"):
        reproduce(str(tampered))
    done = cli("reproduce", str(tampered))
    assert done.exit_code == 2 and done.stderr.startswith("Error: bundle")
    not_zip = tmp_path / "junk.zip"
    not_zip.write_text("junk")
    with pytest.raises(ReproduceError, match="not an nbops bundle"):
        reproduce(str(not_zip))


def test_the_magic_shows_the_verdict_as_a_table(project: Path, ipython: Any) -> None:
    run_id = _papermill(project)
    ipython.run_line_magic("load_ext", "nbops")

    result = ipython.run_line_magic("nbops", f"reproduce {run_id} --tolerance score=0.001")

    assert result.verdict == "reproduced"
    html = result._repr_html_()
    assert "<table>" in html and "score" in html and "reproduced" in html


def _team_store_reproduction(
    project: Path, monkeypatch: pytest.MonkeyPatch, url: str, blobs: Path
) -> None:
    """Track a run into the store at ``url`` (blobs in ``blobs``), then reproduce it with the
    store given as an argument only: the kernel must get the URL and blobs from nbops."""
    from nbops.store import open_store

    monkeypatch.setenv("NBOPS_STORE", url)
    monkeypatch.setenv("NBOPS_BLOBS", str(blobs))
    run_id = _papermill(project)
    team = open_store(url)
    monkeypatch.delenv("NBOPS_STORE")
    monkeypatch.delenv("NBOPS_BLOBS")  # the session knows the store only by the object

    result = reproduce(run_id, store=team)

    assert result.verdict == "reproduced", (result.reasons, result.metrics)
    rerun = nbops.get_run(result.run_id or "", store=team)
    assert {"score", "rows"} <= set(rerun.summary)  # the kernel logged into the team store
    assert rerun.metadata["reproduces"]["run"] == run_id
    assert team.blobs.url == blobs.as_uri()
    assert not (project / ".nbops" / "runs.db").exists()  # nothing went to the default store


def test_reproduce_uses_a_non_default_sqlite_store_and_blob_folder(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    team = tmp_path / "team-store"
    _team_store_reproduction(project, monkeypatch, f"sqlite://{team}", tmp_path / "team-blobs")
    assert not (team / "objects").exists()  # the kernels used the configured blob folder


@pytest.mark.postgres
def test_reproduce_uses_a_postgres_team_store(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, postgres_store_url: str
) -> None:
    _team_store_reproduction(project, monkeypatch, postgres_store_url, tmp_path / "team-blobs")


def test_a_bundle_reproduces_in_a_folder_that_is_not_a_git_repository(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Any
) -> None:
    import shutil
    import tempfile
    import zipfile

    cells = [dict(c) for c in TRAIN]
    cells[2] = _cell(TRAIN[2]["source"].replace("* scale", "* scale * helper.FACTOR"))
    cells[2]["source"] = "import helper\n" + cells[2]["source"]
    _write_notebook(project / "train.ipynb", cells)
    (project / "helper.py").write_text("FACTOR = 2\n")
    _git(project, "add", ".")
    _git(project, "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-q", "-m", "helper")
    (project / "helper.py").write_text("FACTOR = 5\n")  # uncommitted: only the diff has it
    run_id = _papermill(project)
    assert nbops.get_run(run_id).summary["score"] == pytest.approx(6 * 2.0 * 5, abs=1)

    bundle = tmp_path / "run.zip"
    assert cli("export", run_id, "-o", str(bundle)).exit_code == 0
    bare = tmp_path / "bare.zip"
    assert cli("export", run_id, "-o", str(bare), "--no-source").exit_code == 0
    with zipfile.ZipFile(bundle) as zf:
        assert zf.read("source/helper.py") == b"FACTOR = 5\n"  # the commit with the diff
        assert "source/train.ipynb" in zf.namelist() and "source/.nbops" not in zf.namelist()
    with zipfile.ZipFile(bare) as zf:
        assert not any(n.startswith("source/") for n in zf.namelist())

    fresh = tmp_path / "fresh"  # not a git repository, an empty store, no project files
    fresh.mkdir()
    shutil.copy(bundle, fresh / "run.zip")
    shutil.copy(bare, fresh / "bare.zip")
    monkeypatch.chdir(fresh)
    monkeypatch.setenv("NBOPS_HOME", str(fresh / ".nbops"))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    assert subprocess.run(["git", "rev-parse"], cwd=fresh, capture_output=True).returncode != 0

    result = reproduce(str(fresh / "run.zip"))

    assert result.verdict == "reproduced", (result.reasons, result.checks)
    assert result.original == run_id
    assert any(c.name == "source" and c.ok for c in result.checks)
    assert nbops.get_run(result.run_id or "").metadata["reproduces"]["run"] == run_id
    assert list(scratch.iterdir()) == []  # the unpacked source and the workspace are gone
    with pytest.raises(ReproduceError, match="git commit"):
        reproduce(str(fresh / "bare.zip"))  # without its source it needs the commit
