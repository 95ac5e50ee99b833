"""Run management: tags and notes edited after start, and resuming a run from another process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import nbops
from nbops.errors import InvalidValueError, StoreError
from tests.conftest import subprocess_env


def test_tags_and_notes_editable_on_the_run() -> None:
    run = nbops.init(project="p", tags=["a"], capture=False, system_metrics=False)
    run.tags = ["a", "b", "b"]
    run.notes = "first try"
    assert run.tags == ("a", "b")
    stored = nbops.get_run(run.id)
    assert stored.tags == ("a", "b")
    assert stored.notes == "first try"
    run.finish()
    run.tags = ("final",)  # still editable after the run finished
    run.notes = "kept"
    assert nbops.get_run(run.id).tags == ("final",)
    assert nbops.get_run(run.id).notes == "kept"
    assert list(nbops.runs(tags="final")["id"]) == [run.id]
    with pytest.raises(InvalidValueError, match="text"):
        run.notes = 3  # type: ignore[assignment]


def test_cli_tag_and_note(cli: Any) -> None:
    with nbops.init(project="p", tags=["a", "b"], capture=False, system_metrics=False) as run:
        pass
    result = cli("runs", "tag", run.id[:8], "+c", "-a", "d")
    assert result.exit_code == 0, result.output
    assert nbops.get_run(run.id).tags == ("b", "c", "d")
    result = cli("runs", "note", run.id, "best", "so", "far")
    assert result.exit_code == 0
    assert nbops.get_run(run.id).notes == "best so far"
    shown = cli("runs", "show", run.id)
    assert "tags: b, c, d" in shown.output and "notes: best so far" in shown.output
    bad = cli("runs", "tag", run.id)
    assert bad.exit_code != 0 and "Error:" in bad.stderr + bad.output
    bad = cli("runs", "tag", run.id, "+")
    assert bad.exit_code != 0 and "empty tag" in bad.stderr + bad.output
    missing = cli("runs", "tag", "zzzzzzzz", "+x")
    assert missing.exit_code != 0 and "Traceback" not in missing.stderr + missing.output


RESUME = """
import sys, nbops
run = nbops.init(run_id=sys.argv[1], resume=True, capture=False, system_metrics=False)
print(run.step, run.status, flush=True)
for i in range(3):
    run.log({"loss": 0.1 * i})
run.log_params({"stage": 2})
run.finish()
"""


def test_resume_from_another_process_continues_the_steps(tmp_path: Path) -> None:
    run = nbops.init(project="p", config={"lr": 0.1}, capture=False, system_metrics=False)
    for i in range(5):
        run.log({"loss": 1.0 - 0.1 * i})
    run.summary["best"] = 7
    run.finish("failed")
    script = tmp_path / "resume.py"
    script.write_text(RESUME)
    result = subprocess.run(
        [sys.executable, str(script), run.id],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["5", "running"]
    stored = nbops.get_run(run.id)
    assert stored.status == "finished"
    assert list(stored.history()["step"]) == list(range(8))
    assert stored.params == {"lr": 0.1, "stage": 2}
    assert stored.summary["best"] == 7
    assert stored.summary["loss"] == pytest.approx(0.2)
    assert stored.record.end_time is not None


def test_resume_refusals() -> None:
    with pytest.raises(InvalidValueError, match="run_id"):
        nbops.init(resume=True, capture=False)
    live = nbops.init(project="p", capture=False, system_metrics=False)
    with pytest.raises(StoreError, match="running in another process"):
        nbops.init(run_id=live.id, resume=True, capture=False, system_metrics=False)
    assert live.status == "running"  # the refused resume did not finish the active run
    assert nbops.active_run() is live


def test_resumed_run_gets_a_complete_wandb_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from nbops.mirror import read_offline_run

    monkeypatch.setenv("NBOPS_WANDB", "offline")
    run = nbops.init(project="p", capture=False, system_metrics=False)
    for i in range(3):
        run.log({"loss": float(i)})
    run.finish()
    again = nbops.init(run_id=run.id, resume=True, capture=False, system_metrics=False)
    again.log({"loss": 10.0})
    again.finish()
    state = nbops.get_run(run.id).metadata["wandb"]
    assert (state["copy"], state["rows"], state["total"]) == ("complete", 4, 4)
    assert os.environ["WANDB_DIR"] in state["run_dir"]
    copy = read_offline_run(state["run_dir"])
    assert [row["loss"] for row in copy.history] == [0.0, 1.0, 2.0, 10.0]
    assert [row["_step"] for row in copy.history] == [0, 1, 2, 3]


def test_tag_and_note_edits_reach_the_wandb_copy(
    cli: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from nbops.mirror import read_offline_run

    monkeypatch.setenv("NBOPS_WANDB", "offline")
    run = nbops.init(project="p", tags=["a"], capture=False, system_metrics=False)
    run.log({"loss": 1.0})
    run.tags = ["a", "live"]
    run.notes = "set while running"
    assert cli("runs", "tag", run.id, "+from-cli").exit_code == 0  # another process, mid-run
    run.finish()
    state = nbops.get_run(run.id).metadata["wandb"]
    assert state["copy"] == "complete"
    copy = read_offline_run(state["run_dir"])
    assert (copy.tags, copy.notes) == (("a", "live", "from-cli"), "set while running")

    assert cli("runs", "tag", run.id, "-a", "+after").exit_code == 0  # after the run finished
    assert cli("runs", "note", run.id, "edited", "later").exit_code == 0
    state = nbops.get_run(run.id).metadata["wandb"]
    assert state["copy"] == "partial" and "changed after the run finished" in state["reason"]
    shown = cli("runs", "show", run.id)
    assert "nbops sync --offline" in shown.output
    synced = cli("sync", "--offline")
    assert synced.exit_code == 0, synced.output + synced.stderr
    state = nbops.get_run(run.id).metadata["wandb"]
    assert state["copy"] == "complete"
    copy = read_offline_run(state["run_dir"])
    assert (copy.tags, copy.notes) == (("live", "from-cli", "after"), "edited later")
    assert [row["loss"] for row in copy.history] == [1.0]
    run.tags = ["via-run-object"]  # a finished Run object edits the same way
    assert nbops.get_run(run.id).metadata["wandb"]["copy"] == "partial"
