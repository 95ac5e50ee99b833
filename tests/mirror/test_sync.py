from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pytest

from nbops.errors import NbopsError
from nbops.mirror import (
    NoApiKeyError,
    ServerUnreachableError,
    WandbMirror,
    find_offline_runs,
    sync,
)

FAKE_KEY = "e" * 36 + "beef"


@pytest.fixture
def offline_runs(wandb_env: Path) -> Path:
    for i in range(2):
        mirror = WandbMirror(
            run_id=f"sy000{i}",
            project="p",
            name="n",
            config={},
            mode="offline",
            directory=wandb_env,
        )
        mirror.log([(0, 1.0, {"x": 1.0})])
        assert mirror.finish(timeout=60)
    assert len(find_offline_runs(wandb_env)) == 2
    return wandb_env / "wandb"


def test_nothing_to_sync(wandb_env: Path) -> None:
    report = sync(wandb_env)
    assert report.nothing_to_sync
    assert "nothing to sync" in str(report)


def test_sync_without_key_says_how_to_log_in(offline_runs: Path) -> None:
    with pytest.raises(NoApiKeyError) as info:
        sync(offline_runs)
    message = str(info.value)
    assert isinstance(info.value, NbopsError)
    assert "no W&B API key is configured" in message
    assert "wandb login" in message
    assert "WANDB_API_KEY" in message
    assert "2 offline run(s)" in message
    assert str(offline_runs) in message


def test_sync_with_unreachable_server(
    offline_runs: Path,
    closed_port_url: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    monkeypatch.setenv("WANDB_BASE_URL", closed_port_url)
    caplog.set_level(logging.DEBUG)
    started = time.perf_counter()
    with pytest.raises(ServerUnreachableError) as info:
        sync(offline_runs, timeout=10)
    assert time.perf_counter() - started < 40  # bounded by the timeout (a hang bound, not speed)
    message = str(info.value)
    assert "could not be reached" in message
    assert "stay offline" in message
    assert closed_port_url in message
    assert FAKE_KEY not in message
    assert FAKE_KEY not in caplog.text
    assert not list(offline_runs.glob("*/*.synced"))


def test_plain_sync_completes_copies_from_the_store_before_uploading(
    isolated_env: Path, cli: Any, closed_port_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    import nbops
    from nbops.mirror import read_offline_run
    from nbops.store import open_store

    monkeypatch.setenv("WANDB_DIR", str(isolated_env))
    run = nbops.init(project="s", wandb="offline", capture=False)
    for i in range(50):
        run.log({"x": float(i)})
    run.finish()
    store = open_store()
    state = store.get_metadata(run.id)["wandb"]
    shutil.rmtree(state["run_dir"])  # the copy a killed process left behind is gone
    partial = {**state, "copy": "partial", "rows": 10, "reason": "the process ended"}
    store.set_metadata(run.id, "wandb", partial)
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    monkeypatch.setenv("WANDB_BASE_URL", closed_port_url)
    result = cli("sync", "--timeout", "2")
    assert f"run {run.id}: W&B copy rebuilt from the store (50 rows)" in result.output
    assert result.exit_code == 1 and "could not be reached" in result.stderr  # then uploads
    rebuilt = store.get_metadata(run.id)["wandb"]
    assert rebuilt["copy"] == "complete"
    copy = read_offline_run(rebuilt["run_dir"])
    assert [row["x"] for row in copy.history] == [float(i) for i in range(50)]
