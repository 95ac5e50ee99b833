"""W&B servers that refuse, never answer, answer 401 or 500, or hang on POST.

Each case runs a real script in a fresh process against a loopback server started by the test:
``finish()`` must return quickly, the process must exit soon after (no wandb thread or
telemetry exporter keeps it alive), the run gets one clear message and a complete offline copy,
and ``nbops sync`` tells "no answer" apart from "the server answered HTTP 500".
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nbops.mirror import WandbMirror, find_offline_runs, read_offline_run
from nbops.store import open_store
from tests.conftest import subprocess_env
from tests.mirror.servers import (
    FAILURES,
    PROBE_ONLY,
    PROBE_THEN_HANG,
    closed_port,
    failing_server,
)

pytestmark = pytest.mark.slow

FAKE_KEY = "a" * 36 + "f00d"
SECRET = "summary-secret-5d4c3b2a19"
STEPS = 300

SCRIPT = f"""
import json, sys, time
import nbops

begun = time.perf_counter()
run = nbops.init(project="fm", name="failing-server", config={{"lr": 0.1}}, capture=False)
for i in range({STEPS}):
    run.log({{"loss": 1.0 / (i + 1), "acc": i / {STEPS}}})
run.summary["api_token"] = {SECRET!r}
# the run's own work usually outlasts the mirror's start (server check, then wandb.init)
deadline = time.monotonic() + 60
while run.mirror.state.status == "starting" and time.monotonic() < deadline:
    time.sleep(0.05)
startup = time.perf_counter() - begun
started = time.perf_counter()
run.finish()
took = time.perf_counter() - started
print(json.dumps({{"id": run.id, "startup": startup, "finish": took, "end": time.time()}}))
"""


def _run_script(tmp_path: Path, url: str) -> tuple[dict[str, object], str, float]:
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    env = subprocess_env(WANDB_API_KEY=FAKE_KEY, WANDB_BASE_URL=url, WANDB_DIR=str(tmp_path))
    env.pop("NBOPS_WANDB", None)  # mode from the key: online
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    ended = time.time()
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result, done.stderr, ended


@pytest.mark.parametrize("kind", FAILURES)
def test_failing_server_gets_a_complete_offline_copy_quickly(
    kind: str, tmp_path: Path, isolated_env: Path
) -> None:
    with failing_server(kind) as url:
        result, stderr, ended = _run_script(tmp_path, url)

    # loose bounds: they catch wandb's 30-100 s waits, not speed (the machine is shared)
    assert float(result["startup"]) <= 20.0, result
    assert float(result["finish"]) <= 5.0, result
    assert ended - float(result["end"]) <= 10.0, "something kept the process alive after finish"
    messages = [line for line in stderr.splitlines() if "offline instead" in line]
    assert len(messages) == 1, stderr
    if kind in ("http401", "http500"):
        assert f"answered HTTP {kind[4:]}" in messages[0]
    else:
        assert "could not be reached" in messages[0]
    assert "not mirrored" not in stderr and "is in use" not in stderr
    assert "Failed to export" not in stderr  # wandb's telemetry exporter is off
    assert FAKE_KEY not in stderr

    store = open_store()
    run_id = str(result["id"])
    state = store.get_metadata(run_id)["wandb"]
    assert (state["mode"], state["copy"], state["rows"]) == ("offline", "complete", STEPS)
    (run_dir,) = find_offline_runs(tmp_path)
    assert state["run_dir"] == str(run_dir)
    copy = read_offline_run(run_dir)
    assert copy.complete and copy.exit_code == 0
    assert copy.run_id == run_id
    points = store.get_metrics(run_id)
    assert [row["_step"] for row in copy.history] == list(range(STEPS))
    assert [row["loss"] for row in copy.history] == [p.value for p in points if p.key == "loss"]
    assert copy.summary["api_token"] == "[redacted]"
    for path in (tmp_path / "wandb").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert SECRET.encode() not in data, path
            assert FAKE_KEY.encode() not in data, path


# finish() (or the interpreter's exit, as at kernel shutdown) right after the run starts, while
# the mirror is still asking the server or inside wandb's online start
SCRIPT_AT_ONCE = f"""
import json, sys, time
import nbops

if sys.argv[1] == "magic":  # a notebook's %nbops track ... %nbops stop
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.run_cell("%load_ext nbops")
    shell.run_cell("%nbops track --project fm --name at-once")
    run = nbops.active_run()
else:
    run = nbops.init(project="fm", name="at-once", config={{"lr": 0.1}}, capture=False)
for i in range({STEPS}):
    run.log({{"loss": 1.0 / (i + 1)}})
took = None
started = time.perf_counter()
if sys.argv[1] == "finish":
    run.finish()
    took = time.perf_counter() - started
elif sys.argv[1] == "magic":
    assert shell.run_cell("%nbops stop").success
    took = time.perf_counter() - started
print(json.dumps({{"id": run.id, "finish": took, "end": time.time()}}), flush=True)
"""

# The server answers nbops' question but fails (or never answers) wandb's own requests: wandb's
# online start retries for 30 s, and wandb's exit hook used to wait for its service that long.
AT_ONCE_CASES = [
    *[(kind, "finish") for kind in FAILURES],
    (PROBE_ONLY, "finish"),
    (PROBE_THEN_HANG, "finish"),
    (PROBE_THEN_HANG, "exit"),
    (PROBE_THEN_HANG, "magic"),
    ("http401", "magic"),
    ("hang-post", "exit"),
]


@pytest.mark.parametrize(("kind", "how"), AT_ONCE_CASES)
def test_finish_right_after_start_is_bounded_and_the_copy_completes_later(
    kind: str, how: str, tmp_path: Path, isolated_env: Path
) -> None:
    script = tmp_path / "at_once.py"
    script.write_text(SCRIPT_AT_ONCE)
    env = subprocess_env(WANDB_API_KEY=FAKE_KEY, WANDB_DIR=str(tmp_path))
    env.pop("NBOPS_WANDB", None)  # mode from the key: online
    with failing_server(kind) as url:
        env["WANDB_BASE_URL"] = url
        done = subprocess.run(
            [sys.executable, str(script), how],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        ended = time.time()
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if how != "exit":  # loose: wandb's own waits are 30 s and more
        assert float(result["finish"]) <= 5.0, result
    assert ended - float(result["end"]) <= 10.0, "wandb kept the process alive"
    assert len([line for line in done.stderr.splitlines() if "offline instead" in line]) <= 1
    assert "is in use" not in done.stderr and "Failed to export" not in done.stderr
    assert FAKE_KEY not in done.stderr

    # whatever the process managed, the store says how far the copy got and sync completes it
    env["WANDB_BASE_URL"] = f"http://127.0.0.1:{closed_port()}"
    synced = subprocess.run(
        [sys.executable, "-m", "nbops", "sync", "--offline", "--dir", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert synced.returncode == 0, synced.stderr[-3000:]
    store = open_store()
    run_id = str(result["id"])
    state = store.get_metadata(run_id)["wandb"]
    assert (state["copy"], state["rows"]) == ("complete", STEPS), state
    copy = read_offline_run(state["run_dir"])
    assert copy.complete
    losses = [p.value for p in store.get_metrics(run_id) if p.key == "loss"]
    assert [row["loss"] for row in copy.history] == losses


@pytest.fixture
def waiting_run(wandb_env: Path) -> Path:
    mirror = WandbMirror(
        run_id="wait0001", project="p", name="n", config={}, mode="offline", directory=wandb_env
    )
    mirror.log([(0, 1.0, {"x": 1.0})])
    assert mirror.finish(timeout=60)
    return wandb_env


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("silent", "could not be reached (no answer within 2 s)"),
        ("hang-post", "could not be reached (no answer within 2 s)"),
        ("refuse", "could not be reached (connection refused)"),
        ("http500", "answered HTTP 500"),
        ("http401", "answered HTTP 401 (the API key was refused)"),
    ],
)
def test_sync_says_whether_the_server_answered(
    kind: str,
    expected: str,
    waiting_run: Path,
    cli: object,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    with failing_server(kind) as url:
        monkeypatch.setenv("WANDB_BASE_URL", url)
        started = time.perf_counter()
        result = cli("sync", "--dir", str(waiting_run), "--timeout", "2")  # type: ignore[operator]
        took = time.perf_counter() - started
    assert result.exit_code == 1, result.output
    assert expected in result.stderr
    assert "1 offline run(s)" in result.stderr and "stay offline" in result.stderr
    assert FAKE_KEY not in result.stderr
    assert took < 30
    assert not list((waiting_run / "wandb").glob("*/*.synced"))


def test_sync_timeout_must_be_positive(cli: object) -> None:
    result = cli("sync", "--timeout", "0")  # type: ignore[operator]
    assert result.exit_code == 2
    assert "--timeout must be a positive number" in result.stderr
    assert "Traceback" not in result.stderr
    assert not os.environ.get("WANDB_API_KEY")
