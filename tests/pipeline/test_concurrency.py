"""One run at a time per project, a lock that never loses an entry, and failures of nbops' own
bookkeeping that fail the stage's run."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import nbops
from nbops.pipeline import PipelineBusyError, read_lock, run_pipeline
from tests.conftest import subprocess_env
from tests.pipeline.conftest import write_notebook, write_spec

pytestmark = pytest.mark.kernel


def _two_stages(root: Path, seconds: float) -> None:
    for name in ("slow", "fast"):
        write_notebook(
            root / f"{name}.ipynb",
            "",
            f"import time\ntime.sleep({seconds if name == 'slow' else 0})\n"
            f"open('{name}.txt', 'w').write('{name}')",
        )
    write_spec(
        root,
        {
            "stages": {
                "slow": {"notebook": "slow.ipynb", "outs": ["slow.txt"]},
                "fast": {"notebook": "fast.ipynb", "outs": ["fast.txt"]},
            }
        },
    )


def _start_run(root: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "nbops", "run", *args],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
    )


def _wait_for_line(proc: subprocess.Popen[str], text: str) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        if text in line:
            return
    raise AssertionError(f"{text!r} never printed; stderr: {proc.stderr and proc.stderr.read()}")


def test_a_second_run_is_refused_then_waits_and_both_entries_stay(isolated_env: Path) -> None:
    root = isolated_env
    _two_stages(root, seconds=6)
    first = _start_run(root, "slow")
    try:
        _wait_for_line(first, "running")
        with pytest.raises(PipelineBusyError) as caught:
            run_pipeline(root, ["fast"], report=lambda _line: None)
        message = str(caught.value)
        assert f"pid {first.pid} on {socket.gethostname()}" in message and "--wait" in message
        assert caught.value.holder["pid"] == first.pid
        assert not (root / "fast.txt").exists()
        waited = run_pipeline(root, ["fast"], wait=float("inf"), report=lambda _line: None)
        assert first.poll() == 0  # the second run only started once the first was done
        assert waited["fast"].outcome == "ran"
    finally:
        first.kill()
        first.communicate(timeout=60)
    assert set(read_lock(root)) == {"slow", "fast"}  # disjoint targets: no entry lost


_HOLDER = """
import sys, time
from pathlib import Path
from nbops.pipeline import RunLock
lock = RunLock(Path(sys.argv[1]), Path(sys.argv[2]))
lock.acquire()
print("held", flush=True)
time.sleep(600)
"""


def test_a_lock_left_by_a_dead_run_is_taken_over(isolated_env: Path) -> None:
    root = isolated_env
    _two_stages(root, seconds=0)
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(root), str(root / ".nbops")],
        stdout=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    with pytest.raises(PipelineBusyError):
        run_pipeline(root, ["fast"], report=lambda _line: None)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=30)
    assert run_pipeline(root, ["fast"], report=lambda _line: None)["fast"].outcome == "ran"


def test_cli_refuses_at_once_with_who_holds_the_lock(isolated_env: Path) -> None:
    root = isolated_env
    _two_stages(root, seconds=0)
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(root), str(root / ".nbops")],
        stdout=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        second = _start_run(root)
        _out, err = second.communicate(timeout=120)
        assert second.returncode == 1 and err.startswith("Error: another `nbops run`")
        assert f"pid {holder.pid}" in err and "Traceback" not in err
        assert time.monotonic() - started < 60  # refused, not queued
    finally:
        holder.kill()
        holder.wait(timeout=30)


@pytest.mark.parametrize("where", ["scrub_secrets", "save_outs", "update_lock"])
def test_bookkeeping_errors_fail_the_stage_run(
    isolated_env: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    import nbops.pipeline._stage as stage_module

    def broken(*_args: Any, **_kwargs: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(stage_module, where, broken)
    root = isolated_env
    _two_stages(root, seconds=0)
    lines: list[str] = []
    with pytest.raises(nbops.pipeline.PipelineFailed) as caught:
        run_pipeline(root, ["fast"], report=lines.append)
    result = caught.value.result["fast"]
    assert result.outcome == "failed" and result.run_id
    assert (
        result.message
        == f"fast: run {result.run_id} failed: OSError: [Errno 28] No space left on device"
    )
    run = nbops.get_run(result.run_id)
    assert run.status == "failed"
    assert run.metadata["pipeline"]["failure"] == result.message
    assert any(f"run {result.run_id}" in line and "FAILED" in line for line in lines)
    assert "fast" not in read_lock(root)


def test_run_lock_file_names_its_holder(isolated_env: Path) -> None:
    from nbops.pipeline import RunLock

    lock = RunLock(isolated_env, isolated_env / ".nbops")
    with lock:
        holder = json.loads(lock.path.read_text())
        assert holder["pid"] == os.getpid() and holder["project"] == str(isolated_env.resolve())
        with pytest.raises(PipelineBusyError):
            RunLock(isolated_env, isolated_env / ".nbops", wait=0.3).acquire()
    with RunLock(isolated_env, isolated_env / ".nbops"):
        pass
