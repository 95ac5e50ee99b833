"""The W&B copy derives from the store and is completed from it however the run ended.

Real parts: a papermill-executed notebook with no stop cell, a process killed with SIGKILL,
``nbops sync --offline`` in a fresh process, and every ``.wandb`` file read back and compared
with the store.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import nbops
from nbops.mirror import complete_offline_copies, find_offline_runs, read_offline_run
from nbops.store import RunStore, open_store
from tests.conftest import subprocess_env

SECRET = "summary-secret-0a9b8c7d6e"
PAPERMILL = str(Path(sys.executable).parent / "papermill")


def store_rows(store: RunStore, run_id: str) -> list[dict[str, Any]]:
    """The store's history as W&B rows: ``_step``, ``_timestamp`` and each metric."""
    rows: dict[int, dict[str, Any]] = {}
    for point in store.get_metrics(run_id):
        row = rows.setdefault(point.step, {"_step": point.step, "_timestamp": point.timestamp})
        row["_timestamp"] = max(row["_timestamp"], point.timestamp)
        row[point.key] = point.value
    return [rows[step] for step in sorted(rows)]


def assert_copy_equals_store(store: RunStore, run_id: str, run_dir: Path) -> None:
    copy = read_offline_run(run_dir)
    assert copy.complete
    # the same id, or a fresh one derived from it when wandb keeps the old id reserved; the
    # store names the copy it points at either way
    assert copy.run_id == run_id or copy.run_id.startswith(f"{run_id}-"), copy.run_id
    if copy.run_id != run_id:
        assert store.get_metadata(run_id)["wandb"]["wandb_id"] == copy.run_id
    assert copy.history == store_rows(store, run_id)
    summary = store.get_summary(run_id)
    assert {k: copy.summary.get(k) for k in summary} == summary
    params = store.get_params(run_id)
    assert {k: copy.config.get(k) for k in params} == params


def no_secret_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]


def sync_offline(cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nbops", "sync", "--offline"],
        cwd=cwd,
        env=subprocess_env(WANDB_DIR=str(cwd)),
        capture_output=True,
        text=True,
        timeout=300,
    )


def _cell(source: str) -> dict[str, object]:
    return {"cell_type": "code", "source": source, "outputs": [], "metadata": {}}


@pytest.mark.kernel
@pytest.mark.slow
def test_notebook_without_stop_is_completed_by_sync_offline(isolated_env: Path, cli: Any) -> None:
    project = isolated_env
    notebook = project / "long.ipynb"
    cells = [
        _cell(
            "import os\n"
            "import nbops\n"
            "run = nbops.init(project='nb', name='long', config={'lr': 0.1, 'api_key': 'k'})"
        ),
        _cell(
            "for i in range(20000):\n"
            "    run.log({'loss': 1.0 / (i + 1), 'acc': i / 20000, 7: float(i)})\n"
            "run.summary['api_token'] = os.environ['SUMMARY_VALUE']"
        ),
    ]
    notebook.write_text(
        json.dumps(
            {
                "nbformat": 4,
                "nbformat_minor": 4,
                "cells": cells,
                "metadata": {"kernelspec": {"name": "python3", "language": "python"}},
            }
        )
    )
    env = subprocess_env(NBOPS_WANDB="offline", WANDB_DIR=str(project), SUMMARY_VALUE=SECRET)
    done = subprocess.run(
        [PAPERMILL, "--log-level", "ERROR", str(notebook), str(project / "out.ipynb")],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]

    store = open_store()
    (record,) = store.list_runs(project="nb")
    # finished at kernel shutdown; on a loaded machine Jupyter's kill 5 s after the shutdown
    # request can come first (the store then reports the run crashed, holding what was flushed):
    # the W&B copy must equal the store either way
    assert record.status in ("finished", "crashed")
    steps = len(store_rows(store, record.id))
    assert steps == 20000 or record.status == "crashed"
    state = store.get_metadata(record.id)["wandb"]  # the copy's progress is in the store
    assert state["mode"] == "offline" and state["copy"] in ("partial", "complete"), state
    print("copy left by the kernel:", state)
    shown = cli("runs", "show", record.id)
    if state["copy"] == "partial":
        assert f"{state['rows']} of {steps} rows" in shown.output, shown.output
        assert "nbops sync --offline" in shown.output

    synced = sync_offline(project)
    assert synced.returncode == 0, synced.stderr
    assert "nothing uploaded (--offline)" in synced.stdout

    (run_dir,) = find_offline_runs(project)  # the incomplete folder was replaced
    assert_copy_equals_store(store, record.id, run_dir)
    copy = read_offline_run(run_dir)
    assert len(copy.history) == steps
    assert copy.history[5]["7"] == 5.0  # a non-string metric name, coerced as in the store
    assert copy.summary["api_token"] == "[redacted]"
    assert copy.config["api_key"] == "[redacted]"
    assert store.get_metadata(record.id)["wandb"]["copy"] == "complete"
    assert f"W&B copy: complete, {steps} rows" in cli("runs", "show", record.id).output
    assert no_secret_under(project / "wandb") == []
    again = sync_offline(project)  # nothing left to do: the complete copy is kept
    assert "every W&B copy is complete" in again.stdout
    assert find_offline_runs(project) == [run_dir]


KILLED = """
import os, signal
import nbops

run = nbops.init(project="k", name="killed", config={"lr": 0.1}, capture=False)
for i in range(3000):
    run.log({"loss": 1.0 / (i + 1), "acc": i / 3000})
run.summary["best"] = 0.5
run.flush()
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.slow
def test_killed_process_copy_is_rebuilt_from_the_store(isolated_env: Path, cli: Any) -> None:
    project = isolated_env
    script = project / "killed.py"
    script.write_text(KILLED)
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=project,
        env=subprocess_env(NBOPS_WANDB="offline", WANDB_DIR=str(project)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == -9, done.stderr[-2000:]
    store = open_store()
    (record,) = store.list_runs(project="k")
    assert record.status == "crashed"
    state = store.get_metadata(record.id)["wandb"]
    assert state["copy"] == "partial"
    shown = cli("runs", "show", record.id).output
    assert "of 3000 rows" in shown and "nbops sync --offline" in shown

    results = complete_offline_copies(store, project)
    assert [(r.run_id, r.action, r.rows) for r in results] == [(record.id, "rebuilt", 3000)]
    (run_dir,) = find_offline_runs(project)
    assert_copy_equals_store(store, record.id, run_dir)
    assert read_offline_run(run_dir).exit_code == 1  # the run crashed
    assert "W&B copy: complete, 3000 rows" in cli("runs", "show", record.id).output


def test_summary_secret_never_reaches_wandb(isolated_env: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("WANDB_DIR", str(isolated_env))
    run = nbops.init(project="s", wandb="offline", capture=False)
    run.log({"loss": 0.5})
    run.summary["api_token"] = SECRET
    run.summary["db_password"] = {"nested": SECRET}
    run.finish()
    assert no_secret_under(isolated_env / "wandb") == []
    (run_dir,) = find_offline_runs(isolated_env)
    copy = read_offline_run(run_dir)
    assert copy.summary["api_token"] == "[redacted]"
    assert copy.summary["db_password"] == "[redacted]"
    store = open_store()
    assert store.get_summary(run.id)["api_token"] == "[redacted]"
    assert store.get_metadata(run.id)["wandb"]["copy"] == "complete"


def test_non_string_metric_names_match_in_store_and_wandb(
    isolated_env: Path, monkeypatch: Any
) -> None:
    monkeypatch.setenv("WANDB_DIR", str(isolated_env))
    run = nbops.init(project="s", wandb="offline", capture=False)
    run.log({1: 0.5, 2.5: 2.0, "a": 1.0})
    run.log({1: 0.25, 2.5: 3.0, "a": 2.0})
    run.finish()
    store = open_store()
    assert {p.key for p in store.get_metrics(run.id)} == {"1", "2.5", "a"}
    (run_dir,) = find_offline_runs(isolated_env)
    copy = read_offline_run(run_dir)
    assert copy.history == store_rows(store, run.id)
    assert copy.summary["1"] == 0.25 and store.get_summary(run.id)["1"] == 0.25


def test_the_project_secret_rules_apply_to_the_wandb_copy_too(
    isolated_env: Path, monkeypatch: Any
) -> None:
    from nbops.redact import configure_secrets

    monkeypatch.setenv("WANDB_DIR", str(isolated_env))
    (isolated_env / "nbops.yaml").write_text(
        "secrets:\n  words: [ssn]\n  ignore_words: [auth]\n  allow: [sort_key]\n"
    )
    configure_secrets(None)  # the project's file, not rules an earlier test set in code
    config = {
        "patient_ssn": "123-45-6789",  # extended: secret
        "auth": "basic",  # relaxed: kept
        "sort_key": "date",  # allowed: kept
        "api_key": SECRET,  # default: secret
        "max_tokens": 512,  # default: not secret
        "tokenizer": "bpe",
        "author": "ann",
    }
    run = nbops.init(project="rules", wandb="offline", config=config, capture=False)
    run.log({"loss": 0.5})
    run.summary["db_password"] = SECRET
    run.summary["n_tokens"] = 7
    run.summary["ssn_hint"] = "1234"
    run.finish()
    expected = {
        **config,
        "patient_ssn": "[redacted]",
        "api_key": "[redacted]",
    }
    store = open_store()
    assert store.get_params(run.id) == expected
    (run_dir,) = find_offline_runs(isolated_env)
    copy = read_offline_run(run_dir)
    assert {k: copy.config.get(k) for k in expected} == expected
    summary = {"db_password": "[redacted]", "n_tokens": 7, "ssn_hint": "[redacted]"}
    assert {k: store.get_summary(run.id)[k] for k in summary} == summary
    assert {k: copy.summary.get(k) for k in summary} == summary
    assert no_secret_under(isolated_env / "wandb") == []
