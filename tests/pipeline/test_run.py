"""Real pipelines through real kernels: caching, parallelism, failures, gates, the lock."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

import nbops
from nbops.pipeline import PipelineFailed, read_lock, run_pipeline
from tests.conftest import subprocess_env
from tests.pipeline.conftest import executions, write_notebook, write_spec

pytestmark = pytest.mark.kernel


def quiet(lines: list[str]) -> Callable[[str], None]:
    return lines.append


def test_cache_semantics(chain: Callable[[], Path]) -> None:
    root = chain()
    first = run_pipeline(root, jobs=2, report=quiet([]))
    assert [s.outcome for s in first.stages] == ["ran"] * 4
    assert executions(root) == {"make": 1, "double": 1, "report": 1, "side": 1}
    lock = read_lock(root)
    assert lock["double"].params == {"times": 2}
    assert lock["report"].metrics["value"] == 6.0
    assert set(lock["make"].deps) == {"input.txt"} and set(lock["make"].outs) == {"a.txt"}

    # nothing changed: nothing runs
    again = run_pipeline(root, report=quiet([]))
    assert {s.outcome for s in again.stages} == {"cached"}

    # markdown, outputs and execution counts are not code: nothing runs
    nb_path = root / "nb" / "make.ipynb"
    nb = json.loads(nb_path.read_text())
    nb["cells"][0]["source"] = "# make, now documented"
    nb["cells"][2]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "hi"}]
    nb["cells"][2]["execution_count"] = 7
    nb_path.write_text(json.dumps(nb))
    assert {s.outcome for s in run_pipeline(root, report=quiet([])).stages} == {"cached"}

    # a dep changes: that stage and its dependents run, the independent one does not
    (root / "input.txt").write_text("5\n")
    lines: list[str] = []
    changed = run_pipeline(root, report=quiet(lines))
    assert {s.name: s.outcome for s in changed.stages} == {
        "make": "ran",
        "double": "ran",
        "report": "ran",
        "side": "cached",
    }
    assert "dep input.txt changed" in changed["make"].reasons
    assert read_lock(root)["report"].metrics["value"] == 10.0

    # a code cell changes: it and its dependents run
    nb = json.loads((root / "nb" / "double.ipynb").read_text())
    nb["cells"][2]["source"] = (
        "Path('b.txt').write_text(str(int(Path('a.txt').read_text()) * times + 1))"
    )
    (root / "nb" / "double.ipynb").write_text(json.dumps(nb))
    coded = run_pipeline(root, report=quiet([]))
    assert {s.name: s.outcome for s in coded.stages} == {
        "make": "cached",
        "double": "ran",
        "report": "ran",
        "side": "cached",
    }
    assert coded["double"].reasons == ("code cells of nb/double.ipynb changed",)
    assert executions(root) == {"make": 2, "double": 3, "report": 3, "side": 1}

    # a parameter override, a missing out, and --force
    over = run_pipeline(root, ["double"], overrides={"double": {"times": 3}}, report=quiet([]))
    assert over["double"].reasons == ("param times changed: 2 -> 3",)
    assert [s.name for s in over.stages] == ["make", "double"]
    # a missing out of an unchanged stage is restored from the object store, not re-run
    (root / "side.txt").unlink()
    restored = run_pipeline(root, ["side"], report=quiet([]))["side"]
    assert (restored.outcome, restored.message) == (
        "cached",
        "restored from the cache (the inputs are unchanged)",
    )
    assert (root / "side.txt").read_text() == "ok" and executions(root)["side"] == 1
    assert run_pipeline(root, ["side"], force=True, report=quiet([]))["side"].outcome == "ran"


def test_stages_are_tracked_runs_without_magic(chain: Callable[[], Path]) -> None:
    root = chain()
    result = run_pipeline(root, ["report"], report=quiet([]))
    frame = nbops.runs()
    assert set(frame["job_type"]) == {"stage"}
    assert set(frame["group"]) == {f"pipeline-{result.id}"}
    report_run = nbops.get_run(result["report"].run_id or "")
    assert report_run.status == "finished"
    assert list(report_run.history()["value"]) == [6.0]
    assert report_run.metadata["notebook"]["path"] == str(root / "nb" / "report.ipynb")
    assert report_run.metadata["pipeline"]["stage"] == "report"
    assert nbops.get_run(result["double"].run_id or "").params == {"times": 2}
    executed = root / (result["report"].executed or "")
    assert executed.is_file() and executed.is_relative_to(root / ".nbops" / "executed")


def _timed_stage(root: Path, name: str) -> dict[str, Any]:
    write_notebook(
        root / f"{name}.ipynb",
        "",
        "import time\nfrom pathlib import Path\n"
        f"start = time.time()\ntime.sleep(2)\n"
        f"Path('{name}.json').write_text(str([start, time.time()]))",
    )
    return {"notebook": f"{name}.ipynb", "outs": [f"{name}.json"]}


def test_independent_stages_overlap_with_two_jobs(isolated_env: Path) -> None:
    root = isolated_env
    write_spec(
        root, {"stages": {"left": _timed_stage(root, "left"), "right": _timed_stage(root, "right")}}
    )
    run_pipeline(root, jobs=2, report=quiet([]))
    (a0, a1), (b0, b1) = (json.loads((root / f"{n}.json").read_text()) for n in ("left", "right"))
    assert a0 < b1 and b0 < a1, "the two stages did not run at the same time"


def test_failure_stops_dependents_keeps_lock_and_notebook(chain: Callable[[], Path]) -> None:
    root = chain()
    run_pipeline(root, report=quiet([]))
    good = read_lock(root)["double"]
    write_notebook(
        root / "nb" / "double.ipynb", "times = 2", "raise ValueError('bad data in a.txt')"
    )
    (root / "input.txt").write_text("4\n")
    lines: list[str] = []
    with pytest.raises(PipelineFailed) as info:
        run_pipeline(root, jobs=2, report=quiet(lines))
    result = info.value.result
    outcomes = {s.name: s.outcome for s in result.stages}
    assert outcomes == {"make": "ran", "double": "failed", "report": "skipped", "side": "cached"}
    message = result["double"].message or ""
    # cell 3 of the executed notebook: papermill's injected-parameters cell comes first
    assert "cell 3 (In [3]) raised ValueError: bad data in a.txt" in message
    executed = root / (result["double"].executed or "")
    assert str(executed) in message and executed.is_file()
    assert "bad data" in executed.read_text()
    assert read_lock(root)["double"] == good  # the last good entry stays
    assert read_lock(root)["make"].params == {"factor": 1}
    assert nbops.get_run(result["double"].run_id or "").status == "failed"
    assert any("skipped   (upstream double failed)" in line for line in lines)


def test_gate_failure_message(chain: Callable[[], Path]) -> None:
    root = chain()
    spec = yaml.safe_load((root / "nbops.yaml").read_text())
    spec["stages"]["report"]["gates"] = {"value": ">= 100"}
    write_spec(root, spec)
    with pytest.raises(PipelineFailed) as info:
        run_pipeline(root, ["report"], report=quiet([]))
    assert info.value.result["report"].message == "report: value 6 < 100 (gate >= 100)"
    assert "report" not in read_lock(root)
    spec["stages"]["report"]["gates"] = {"accuracy": "> 0.5"}
    write_spec(root, spec)
    with pytest.raises(PipelineFailed, match="never logged it \\(logged: value\\)"):
        run_pipeline(root, ["report"], report=quiet([]))


def test_timeout_and_dead_kernel_fail_without_hanging(isolated_env: Path) -> None:
    root = isolated_env
    write_notebook(root / "slow.ipynb", "", "import time\ntime.sleep(60)")
    write_notebook(root / "dies.ipynb", "", "import os\nos._exit(3)")
    write_spec(
        root,
        {
            "stages": {
                "slow": {"notebook": "slow.ipynb", "timeout": 3},
                "dies": {"notebook": "dies.ipynb"},
            }
        },
    )
    started = time.monotonic()
    with pytest.raises(PipelineFailed) as info:
        run_pipeline(root, jobs=2, report=quiet([]))
    assert time.monotonic() - started < 55  # stopped at the timeout, not after the 60 s sleep
    result = info.value.result
    assert "did not finish within 3.0 s" in (result["slow"].message or "")
    assert "died" in (result["dies"].message or "")


_LOCK_WRITER = """
import sys
from nbops.pipeline import LockEntry, write_lock
i = 0
while True:
    entry = LockEntry(notebook="x.ipynb", code=str(i) * 64, params={"i": i, "pad": "y" * 200000},
                      deps={}, outs={})
    write_lock(sys.argv[1], {"stage": entry})
    i += 1
    if i == 3:
        print("writing", flush=True)
"""


def test_killed_while_writing_the_lock_leaves_a_whole_lock(isolated_env: Path) -> None:
    for delay in (0.05, 0.2, 0.5):
        proc = subprocess.Popen(
            [sys.executable, "-c", _LOCK_WRITER, str(isolated_env)],
            stdout=subprocess.PIPE,
            text=True,
            env=subprocess_env(),
        )
        assert proc.stdout is not None and proc.stdout.readline().strip() == "writing"
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        entry = read_lock(isolated_env)["stage"]  # parses: old or new, never half
        assert entry.code == str(entry.params["i"]) * 64
    leftovers = [p.name for p in isolated_env.iterdir() if p.name.startswith(".nbops.lock")]
    assert len(leftovers) <= 3  # at most the temp file of each killed write, never the lock


def test_ctrl_c_stops_cleanly(isolated_env: Path) -> None:
    root = isolated_env
    write_notebook(
        root / "quick.ipynb", "", "from pathlib import Path\nPath('quick.txt').write_text('done')"
    )
    write_notebook(root / "long.ipynb", "", "import time\ntime.sleep(120)")
    write_spec(
        root,
        {
            "stages": {
                "quick": {"notebook": "quick.ipynb", "outs": ["quick.txt"]},
                "long": {"notebook": "long.ipynb", "after": ["quick"]},
            }
        },
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "nbops", "run"],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if "long" in line and "running" in line:
            break
    time.sleep(1.5)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "completed stages are recorded" in err
    assert set(read_lock(root)) == {"quick"}
    statuses = {r.name: r.status for r in nbops.runs().itertuples()}
    assert statuses == {"quick": "finished", "long": "killed"}


def test_secret_parameters_reach_no_file(isolated_env: Path, monkeypatch: Any) -> None:
    root = isolated_env
    monkeypatch.setenv("SERVICE_PASSWORD", "env-secret-4242")
    write_notebook(
        root / "use.ipynb",
        "api_token = ''\nrounds = 1",
        "import os\nprint(api_token, os.environ['SERVICE_PASSWORD'])\n"
        "import nbops\nnbops.log({'rounds': rounds})",
    )
    write_spec(root, {"stages": {"use": {"notebook": "use.ipynb", "params": {"rounds": 1}}}})
    lines: list[str] = []
    run_pipeline(root, overrides={"use": {"api_token": "supersecret123"}}, report=lines.append)
    changed = run_pipeline(
        root, overrides={"use": {"api_token": "other-secret-99"}}, report=lines.append
    )
    assert changed["use"].reasons == ("param api_token changed (a secret: values not shown)",)
    sealed = read_lock(root)["use"].params["api_token"]
    assert sealed.startswith("hmac-sha256:")
    secrets = ("supersecret123", "other-secret-99", "env-secret-4242")
    leaks = [
        str(p)
        for p in [root / "nbops.lock", *(root / ".nbops").rglob("*")]
        if p.is_file() and any(s.encode() in p.read_bytes() for s in secrets)
    ]
    assert leaks == []
    assert not any(s in line for line in lines for s in secrets)


def test_sweep_stage_hands_its_best_parameters_on(isolated_env: Path) -> None:
    root = isolated_env
    write_notebook(
        root / "tune.ipynb",
        "x = 0.0\nlabel = 'tune'",
        "import nbops\nnbops.log({'score': -((x - 2.0) ** 2)})\n"
        "from pathlib import Path\nPath('tuned.txt').write_text(str(x))",
    )
    write_notebook(
        root / "use.ipynb",
        "x = 0.0\nother = 1",
        "from pathlib import Path\nPath('used.txt').write_text(str(x))",
    )
    write_spec(
        root,
        {
            "stages": {
                "tune": {
                    "notebook": "tune.ipynb",
                    "outs": ["tuned.txt"],
                    "sweep": {
                        "space": {"x": {"type": "float", "low": 0.0, "high": 4.0}},
                        "n_trials": 4,
                        "metric": "score",
                        "direction": "maximize",
                    },
                },
                "use": {"notebook": "use.ipynb", "after": ["tune"], "outs": ["used.txt"]},
            }
        },
    )
    result = run_pipeline(root, report=quiet([]))
    entry = read_lock(root)["tune"]
    assert entry.sweep is not None and entry.sweep["config"]["n_trials"] == 4
    best = entry.sweep["best_params"]["x"]
    assert float((root / "tuned.txt").read_text()) == best  # the stage ran with the best
    assert float((root / "used.txt").read_text()) == best  # and handed it on
    assert read_lock(root)["use"].params == {"x": best}
    trials = nbops.runs()
    assert (trials["job_type"] == "trial").sum() == 4
    assert nbops.get_run(result["tune"].run_id or "").params["x"] == best
    again = run_pipeline(root, report=quiet([]))
    assert {s.outcome for s in again.stages} == {"cached"}  # the handoff is stable


def test_sweep_stage_options_are_validated(isolated_env: Path) -> None:
    write_notebook(isolated_env / "t.ipynb", "x = 0.0", "pass")
    write_spec(
        isolated_env,
        {"stages": {"t": {"notebook": "t.ipynb", "sweep": {"n_trials": 0, "metrc": "s"}}}},
    )
    from nbops.pipeline import SpecError, load_spec

    with pytest.raises(SpecError) as info:
        load_spec(isolated_env)
    text = str(info.value)
    for part in (
        "unknown key 'metrc' (did you mean 'metric'?)",
        "needs space",
        "n_trials: a positive integer",
        "needs metric",
        "needs direction: maximize or minimize",
    ):
        assert part in text
