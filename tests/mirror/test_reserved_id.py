"""wandb keeps the id of a failed online start reserved: the offline copy takes a fresh id.

Each case runs in a fresh process (wandb's reservation and process-wide settings are
per process) against a loopback server started by the test.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nbops.mirror import read_offline_run
from tests.conftest import subprocess_env
from tests.mirror.servers import PROBE_ONLY, failing_server

pytestmark = pytest.mark.slow

MIRROR = """
import json, time, warnings
from nbops.mirror import WandbMirror

mirror = WandbMirror(run_id="resv0001", project="p", name="n", config={"lr": 0.1},
                     mode="online", init_timeout=3.0)
mirror.log([(i, 1.0 + i, {"x": float(i)}) for i in range(50)])
started = time.perf_counter()
done = mirror.finish(timeout=60)
print(json.dumps({"done": done, "finish": time.perf_counter() - started,
                  "state": mirror.state.to_dict()}))
"""

REBUILD = """
import json, time
import wandb
from nbops.mirror import rebuild_offline_copy
from nbops.store import RunRecord, open_store

try:  # an online start that fails: wandb keeps the id reserved in this process
    wandb.init(id="resv0002", project="p", mode="online",
               settings=wandb.Settings(init_timeout=3, silent=True))
except Exception:
    pass
store = open_store()
store.create_run(RunRecord(id="resv0002", project="p", name="n", status="finished",
                           start_time=time.time()))
direct = rebuild_offline_copy(store, "resv0002", ".")  # written without wandb: its own id
first = store.get_metadata("resv0002")["wandb"]
result = rebuild_offline_copy(store, "resv0002", ".", through_wandb=True)
print(json.dumps({"dir": result.detail, "state": store.get_metadata("resv0002")["wandb"],
                  "direct": direct.detail, "direct_state": first}))
"""


def _run(tmp_path: Path, code: str, url: str) -> dict[str, object]:
    script = tmp_path / "script.py"
    script.write_text(code)
    env = subprocess_env(WANDB_API_KEY="b" * 40, WANDB_BASE_URL=url, WANDB_DIR=str(tmp_path))
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "is in use" not in done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_mirror_falls_back_under_a_fresh_id(tmp_path: Path, isolated_env: Path) -> None:
    with failing_server(PROBE_ONLY) as url:
        result = _run(tmp_path, MIRROR, url)
    state = result["state"]
    assert isinstance(state, dict)
    assert result["done"] is True
    assert (state["mode"], state["copy"], state["rows"]) == ("offline", "complete", 50)
    assert state["wandb_id"].startswith("resv0001-")
    assert "kept id resv0001 reserved" in state["reason"]
    copy = read_offline_run(state["run_dir"])
    assert copy.complete and copy.run_id == state["wandb_id"]
    assert [row["x"] for row in copy.history] == [float(i) for i in range(50)]


def test_rebuild_takes_a_fresh_id_when_wandb_holds_the_run_id(
    tmp_path: Path, isolated_env: Path
) -> None:
    with failing_server("http500") as url:
        result = _run(tmp_path, REBUILD, url)
    state = result["state"]
    assert isinstance(state, dict)
    assert state["copy"] == "complete" and state["wandb_id"].startswith("resv0002-")
    assert read_offline_run(str(result["dir"])).complete
    # a copy written directly needs no wandb run, so wandb's reservation does not touch it
    direct = result["direct_state"]
    assert isinstance(direct, dict)
    assert (direct["copy"], direct["wandb_id"]) == ("complete", "resv0002")
    assert direct["run_dir"] == result["direct"]
