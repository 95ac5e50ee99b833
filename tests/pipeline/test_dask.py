"""Pipeline stages as tasks on a real Dask cluster (scheduler and two workers as separate
processes on loopback), files moved through a directory remote, real kernels."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from nbops.config import store_path
from nbops.pipeline import (
    ExecutorConfigError,
    PipelineFailed,
    PipelineResult,
    add_remote,
    read_lock,
    run_pipeline,
)
from nbops.process import pid_alive
from nbops.store import RunRecord, open_store
from tests.conftest import DaskCluster, subprocess_env
from tests.pipeline.conftest import write_notebook, write_spec

WRITE = "from pathlib import Path\nimport time\n"


def _diamond(root: Path, pause: float) -> None:
    """``a`` -> ``b``, ``a`` -> ``c``, ``b`` and ``c`` -> ``d``; ``b`` and ``c`` take ``pause``
    seconds; ``d`` logs a metric gated on."""
    (root / "input.txt").write_text("2\n")
    write_notebook(
        root / "nb" / "a.ipynb",
        "",
        WRITE + "Path('a.txt').write_text(str(int(Path('input.txt').read_text()) + 1))",
    )
    for name, op in (("b", "* 10"), ("c", "+ 100")):
        write_notebook(
            root / "nb" / f"{name}.ipynb",
            f"pause = {pause}",
            WRITE + "time.sleep(pause)\n"
            "Path('out').mkdir(exist_ok=True)\n"
            f"Path('out/{name}.txt').write_text(str(int(Path('a.txt').read_text()) {op}))",
        )
    write_notebook(
        root / "nb" / "d.ipynb",
        "",
        WRITE + "import nbops\n"
        "total = int(Path('out/b.txt').read_text()) + int(Path('out/c.txt').read_text())\n"
        "Path('d.txt').write_text(str(total))\n"
        "nbops.log({'total': float(total)})",
    )
    write_spec(
        root,
        {
            "stages": {
                "a": {"notebook": "nb/a.ipynb", "deps": ["input.txt"], "outs": ["a.txt"]},
                "b": {
                    "notebook": "nb/b.ipynb",
                    "params": {"pause": pause},
                    "deps": ["a.txt"],
                    "outs": ["out/b.txt"],
                },
                "c": {
                    "notebook": "nb/c.ipynb",
                    "params": {"pause": pause},
                    "deps": ["a.txt"],
                    "outs": ["out/c.txt"],
                },
                "d": {
                    "notebook": "nb/d.ipynb",
                    "deps": ["out/b.txt", "out/c.txt"],
                    "outs": ["d.txt"],
                    "gates": {"total": ">= 1"},
                },
            }
        },
    )


def _remote(root: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "remote"
    add_remote(root, store_path(root), "shared", str(folder), default=True)
    return folder


def _outcomes(result: PipelineResult) -> dict[str, str]:
    return {s.name: s.outcome for s in result.stages}


def _stage_runs(stage: str) -> list[tuple[RunRecord, dict[str, Any]]]:
    store = open_store()
    return [
        (r, store.get_metadata(r.id).get("executor") or {})
        for r in store.list_runs()
        if r.name == stage and r.job_type == "stage"
    ]


@pytest.mark.slow
def test_independent_stages_run_on_different_workers_then_all_cached(
    isolated_env: Path, dask_cluster: DaskCluster, tmp_path: Path, cli: Any
) -> None:
    root = isolated_env
    _diamond(root, pause=3)
    remote = _remote(root, tmp_path)
    lines: list[str] = []
    result = run_pipeline(root, executor=dask_cluster.url, report=lines.append)
    assert _outcomes(result) == {"a": "ran", "b": "ran", "c": "ran", "d": "ran"}, lines
    assert (root / "d.txt").read_text() == "133"  # (2+1)*10 + (2+1)+100
    assert (root / "out" / "b.txt").read_text() == "30"
    assert any(f"running stages on {dask_cluster.url} (2 workers)" in line for line in lines)
    (b, b_where), (c, c_where) = _stage_runs("b")[0], _stage_runs("c")[0]
    assert {b_where["worker"], c_where["worker"]} == {"w0", "w1"}
    assert b.start_time < (c.end_time or 0) and c.start_time < (b.end_time or 0)  # overlapped
    assert b_where["url"] == dask_cluster.url and b_where["attempt"] == 1
    assert b_where["task"] == f"nbops-{result.id}-b" and b_where["address"].startswith("tcp://")
    for name in "abcd":
        ((run, _),) = _stage_runs(name)
        assert run.status == "finished"
    # the outs and executed notebooks travelled through the remote, as the lock records them
    objects = {p.parent.name + p.name for p in (remote / "objects").rglob("*") if p.is_file()}
    assert read_lock(root)["d"].outs["d.txt"] in objects
    executed = store_path(root) / "executed" / result.id / "d.ipynb"
    assert "nbops.log({'total'" in executed.read_text()
    shown = cli("runs", "show", b.id)
    assert f"executed on {dask_cluster.url}: worker {b_where['worker']}" in shown.output
    assert f"task nbops-{result.id}-b, attempt 1" in shown.output

    again = run_pipeline(root, executor=dask_cluster.url, report=lines.append)
    assert set(_outcomes(again).values()) == {"cached"}
    assert len(_stage_runs("b")) == 1  # nothing ran again


@pytest.mark.slow
def test_a_worker_killed_mid_stage_is_retried_elsewhere(
    isolated_env: Path, dask_cluster: DaskCluster, tmp_path: Path
) -> None:
    root = isolated_env
    marker = tmp_path / "attempts.txt"
    write_notebook(
        root / "nb" / "slow.ipynb",
        f"marker = {str(marker)!r}",
        WRITE + "with open(marker, 'a') as fh:\n    fh.write('started\\n')\n"
        "time.sleep(8)\nPath('slow.txt').write_text('done')",
    )
    write_spec(
        root,
        {
            "stages": {
                "slow": {
                    "notebook": "nb/slow.ipynb",
                    "params": {"marker": str(marker)},
                    "outs": ["slow.txt"],
                }
            }
        },
    )
    _remote(root, tmp_path)
    outcome: dict[str, Any] = {}
    lines: list[str] = []

    def run() -> None:
        try:
            outcome["result"] = run_pipeline(root, executor=dask_cluster.url, report=lines.append)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertions below
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 120
    while not (marker.exists() and marker.read_text()):
        assert time.monotonic() < deadline and thread.is_alive(), (outcome, dask_cluster.logs())
        time.sleep(0.2)
    ((first, where),) = _stage_runs("slow")
    dask_cluster.kill_worker(where["worker"])
    thread.join(timeout=180)
    assert not thread.is_alive()
    assert "error" not in outcome, (outcome, dask_cluster.logs())
    assert _outcomes(outcome["result"]) == {"slow": "ran"}
    assert (root / "slow.txt").read_text() == "done"
    runs = {r.id: (r, w) for r, w in _stage_runs("slow")}
    assert len(runs) == 2
    killed, _ = runs.pop(first.id)
    assert killed.status == "crashed"
    ((retried, retried_where),) = runs.values()
    assert retried.status == "finished"
    assert retried_where["worker"] != where["worker"] and retried_where["attempt"] == 2
    assert retried_where["task"] == where["task"]  # the same task, retried by Dask
    assert marker.read_text() == "started\nstarted\n"
    lost = f"(worker {where['worker']} died during attempt 1; run {first.id} crashed)"
    assert sum(lost in line for line in lines) == 1, lines  # reported once

    again = run_pipeline(root, executor=dask_cluster.url, report=print)
    assert _outcomes(again) == {"slow": "cached"}


@pytest.mark.slow
def test_a_failing_stage_on_dask_behaves_as_locally(
    isolated_env: Path, dask_cluster: DaskCluster, tmp_path: Path
) -> None:
    root = isolated_env
    _diamond(root, pause=0)
    write_notebook(
        root / "nb" / "c.ipynb", "pause = 0", "raise RuntimeError('c is broken on purpose')"
    )
    _remote(root, tmp_path)
    with pytest.raises(PipelineFailed, match="c is broken on purpose") as failed:
        run_pipeline(root, executor=dask_cluster.url, report=print)
    result = failed.value.result
    assert _outcomes(result) == {"a": "ran", "b": "ran", "c": "failed", "d": "skipped"}
    ((run, where),) = _stage_runs("c")
    assert run.status == "failed" and where["worker"] in ("w0", "w1")
    executed = store_path(root) / "executed" / result.id / "c.ipynb"
    assert "c is broken on purpose" in executed.read_text()  # fetched from the worker
    assert set(read_lock(root)) == {"a", "b"}
    assert not (root / "out" / "c.txt").exists()


@pytest.mark.slow
def test_a_shared_disk_moves_nothing(
    isolated_env: Path, dask_cluster: DaskCluster, tmp_path: Path
) -> None:
    root = isolated_env
    _diamond(root, pause=0)
    spec = (root / "nbops.yaml").read_text()
    (root / "nbops.yaml").write_text(
        spec + f"pipeline:\n  executor: {{url: '{dask_cluster.url}', shared_disk: true}}\n"
    )
    result = run_pipeline(root, report=print)
    assert set(_outcomes(result).values()) == {"ran"}
    assert (root / "d.txt").read_text() == "133"
    assert all(w["url"] == dask_cluster.url for name in "abcd" for _, w in _stage_runs(name))
    assert run_pipeline(root, executor="local", report=print).stages[0].outcome == "cached"


def test_no_remote_and_no_shared_disk_is_an_error_before_anything_runs(
    isolated_env: Path,
) -> None:
    _diamond(isolated_env, pause=0)
    # nothing listens on port 1: the configuration is refused before connecting
    with pytest.raises(ExecutorConfigError, match="nbops remote add NAME URL --default"):
        run_pipeline(isolated_env, executor="dask://127.0.0.1:1", report=print)
    assert not (isolated_env / "a.txt").exists()
    assert open_store().list_runs() == []


def test_bad_executor_urls_are_cli_errors(isolated_env: Path, cli: Any) -> None:
    _diamond(isolated_env, pause=0)
    for url in ("http://host:80", "dask://host", "dask://h:99999"):
        result = cli("run", "--executor", url)
        assert result.exit_code != 0
        assert "Error: executor" in result.stderr and "dask://HOST:PORT" in result.stderr
        assert "Traceback" not in result.stderr
    spec = (isolated_env / "nbops.yaml").read_text()
    (isolated_env / "nbops.yaml").write_text(spec + "pipeline:\n  executor: {url: ftp://x}\n")
    result = cli("run")
    assert result.exit_code != 0 and "pipeline.executor" in result.stderr
    (isolated_env / "nbops.yaml").write_text(spec)
    result = cli("run", "--executor", "dask://127.0.0.1:1", "--shared-disk")
    assert result.exit_code != 0 and "no Dask scheduler answers" in result.stderr
    assert not (isolated_env / "a.txt").exists()


@pytest.mark.slow
def test_ctrl_c_makes_the_workers_kill_their_kernels(
    isolated_env: Path, dask_cluster: DaskCluster, tmp_path: Path
) -> None:
    root = isolated_env
    marker = tmp_path / "kernel.pid"
    write_notebook(
        root / "long.ipynb",
        f"marker = {str(marker)!r}",
        "import os, time\nopen(marker, 'w').write(str(os.getpid()))\ntime.sleep(120)",
    )
    write_spec(
        root, {"stages": {"long": {"notebook": "long.ipynb", "params": {"marker": str(marker)}}}}
    )
    _remote(root, tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "nbops", "run", "--executor", dask_cluster.url],
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
    )
    deadline = time.monotonic() + 120
    while not (marker.exists() and marker.read_text()):
        assert time.monotonic() < deadline and proc.poll() is None, dask_cluster.logs()
        time.sleep(0.2)
    kernel = int(marker.read_text())
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=90)
    assert proc.returncode == 130, err
    assert not pid_alive(kernel)  # killed by its worker, which the coordinator told to stop
    ((run, where),) = _stage_runs("long")
    assert run.status == "killed" and where["worker"] in ("w0", "w1")


def test_the_command_line_overrides_the_executor_of_nbops_yaml(isolated_env: Path) -> None:
    from nbops.pipeline import load_spec
    from nbops.pipeline._dask import executor_options

    _diamond(isolated_env, pause=0)
    spec = (isolated_env / "nbops.yaml").read_text()
    (isolated_env / "nbops.yaml").write_text(
        spec + "pipeline:\n  executor: {url: 'dask://10.0.0.5:8786', retries: 3}\n"
    )
    loaded = load_spec(isolated_env)
    options = executor_options(loaded, None, None, None)
    assert (options.executor.address, options.shared_disk, options.retries) == (
        "tcp://10.0.0.5:8786",
        False,
        3,
    )
    options = executor_options(loaded, "local", True, 0)
    assert (options.executor.is_local, options.shared_disk, options.retries) == (True, True, 0)
    (isolated_env / "nbops.yaml").write_text(spec + "pipeline:\n  executor: dask://h:1\n")
    assert executor_options(load_spec(isolated_env), None, None, None).retries == 1
    (isolated_env / "nbops.yaml").write_text(
        spec + "pipeline:\n  executor: {url: 'dask://h:1', shared: true, retries: -1}\n"
    )
    problems = load_spec(isolated_env, strict=False).problems
    assert any("unknown key 'shared'" in p and "shared_disk" in p for p in problems), problems
    assert any("retries must be a whole number" in p for p in problems), problems


def test_a_stage_job_keeps_parameter_values_out_of_its_repr() -> None:
    import pickle

    from nbops.pipeline import Stage, StageJob

    job = StageJob(
        Stage("train", "train.ipynb"), {"api_key": "s3cr3t-value"}, "python3", "pid", "demo",
        "sqlite:///store", "store", "/project", "/project/out.ipynb", "dask://127.0.0.1:8786",
    )  # fmt: skip
    assert "s3cr3t-value" not in repr(job)  # Dask logs a failed task's arguments
    assert pickle.loads(pickle.dumps(job)).params == {"api_key": "s3cr3t-value"}
