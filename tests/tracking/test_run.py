from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import nbops
from nbops.errors import ArtifactError, InvalidValueError, NoActiveRunError, RunFinishedError
from nbops.store import SQLiteStore
from tests.conftest import subprocess_env


def test_init_log_finish_roundtrip() -> None:
    run = nbops.init(
        project="proj",
        name="first",
        config={"lr": 0.1, "depth": 3},
        tags="a",
        group="g",
        job_type="train",
    )
    for i in range(5):
        run.log({"loss": 1.0 / (i + 1), "acc": i / 10})
    run.summary["best"] = 42
    run.finish()
    stored = nbops.get_run(run.id)
    assert stored.status == "finished"
    assert stored.params == {"lr": 0.1, "depth": 3}
    assert stored.summary["best"] == 42
    assert stored.summary["acc"] == pytest.approx(0.4)
    history = stored.history()
    assert list(history["step"]) == [0, 1, 2, 3, 4]
    assert list(history["loss"]) == pytest.approx([1, 1 / 2, 1 / 3, 1 / 4, 1 / 5])
    record = stored.record
    assert (record.project, record.name, record.tags, record.group, record.job_type) == (
        "proj",
        "first",
        ("a",),
        "g",
        "train",
    )


def test_runs_dataframe_has_params_and_last_metrics() -> None:
    with nbops.init(project="p", config={"lr": 0.1}) as run:
        run.log({"acc": 0.5})
        run.log({"acc": 0.7})
    with nbops.init(project="q"):
        nbops.log({"loss": 2.0})
    frame = nbops.runs()
    assert len(frame) == 2
    assert {
        "id",
        "name",
        "project",
        "group",
        "job_type",
        "status",
        "start_time",
        "end_time",
        "params.lr",
        "metrics.acc",
        "metrics.loss",
    } <= set(frame.columns)
    row = frame[frame["id"] == run.id].iloc[0]
    assert row["metrics.acc"] == 0.7
    assert row["params.lr"] == 0.1
    assert len(nbops.runs(project="q")) == 1


def test_steps_explicit_and_automatic() -> None:
    run = nbops.init()
    run.log({"a": 1})
    run.log({"a": 2}, step=10)
    run.log({"b": 3}, step=10)
    run.log({"a": 4})
    run.log({"c": 5}, step=3)  # late value for an earlier step is kept
    run.finish()
    points = run.store.get_metrics(run.id)
    assert [(p.key, p.step) for p in points] == [
        ("a", 0),
        ("c", 3),
        ("a", 10),
        ("b", 10),
        ("a", 11),
    ]


def test_metric_values_are_checked_at_the_call() -> None:
    run = nbops.init()
    with pytest.raises(InvalidValueError, match=r"metric 'x' has a str value"):
        run.log({"x": "high"})
    with pytest.raises(InvalidValueError, match="step"):
        run.log({"x": 1}, step=-1)
    run.log({"flag": True, "nan": float("nan"), "i": 3})
    run.finish()
    last = run.store.last_metrics([run.id])[run.id]
    assert last["flag"] == 1.0 and last["i"] == 3.0 and math.isnan(last["nan"])


def test_writes_after_finish_are_refused() -> None:
    run = nbops.init()
    run.finish()
    run.finish()  # idempotent
    with pytest.raises(RunFinishedError):
        run.log({"a": 1})
    with pytest.raises(RunFinishedError):
        run.log_params({"a": 1})


def test_module_shortcuts_need_an_active_run() -> None:
    assert nbops.active_run() is None
    with pytest.raises(NoActiveRunError, match=r"nbops\.init"):
        nbops.log({"a": 1})
    run = nbops.init()
    assert nbops.active_run() is run
    nbops.log_params({"k": "v"})
    nbops.finish()
    assert nbops.active_run() is None
    assert nbops.get_run(run.id).params == {"k": "v"}


def test_new_init_finishes_the_previous_run() -> None:
    first = nbops.init()
    second = nbops.init()
    assert first.finished and not second.finished
    assert nbops.get_run(first.id).status == "finished"


def test_context_manager_marks_failure() -> None:
    with pytest.raises(ZeroDivisionError), nbops.init() as run:
        1 / 0
    assert nbops.get_run(run.id).status == "failed"


def test_artifacts_are_content_addressed_and_deduplicated(tmp_path: Path) -> None:
    model = tmp_path / "model.bin"
    model.write_bytes(b"weights" * 1000)
    folder = tmp_path / "data"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.csv").write_text("x\n1\n")
    (folder / "sub" / "b.csv").write_text("y\n2\n")
    run = nbops.init()
    a = run.log_artifact(model, type="model")
    b = run.log_artifact(model, name="model-copy")
    d = run.log_artifact(folder, name="data", type="dataset")
    run.finish()
    assert a.digest == b.digest and a.size == 7000
    objects = run.store.path / "objects"
    blobs = [p for p in objects.rglob("*") if p.is_file() and not p.name.startswith(".")]
    assert len(blobs) == 4  # the model once, two csv files, one manifest
    stored = nbops.get_run(run.id).artifacts
    assert set(stored) == {"model.bin", "model-copy", "data"}
    assert stored["model.bin"].type == "model"
    out = stored["data"].restore(tmp_path / "restored")
    assert (out / "sub" / "b.csv").read_text() == "y\n2\n"
    assert d.kind == "dir"


@pytest.mark.parametrize("name", ["../escape", "a/b", "", ".hidden", "x" * 200])
def test_artifact_names_cannot_escape(tmp_path: Path, name: str) -> None:
    f = tmp_path / "f.txt"
    f.write_text("x")
    run = nbops.init()
    with pytest.raises(ArtifactError, match="invalid artifact name"):
        run.log_artifact(f, name=name)


def test_missing_artifact_path_is_a_clear_error(tmp_path: Path) -> None:
    run = nbops.init()
    with pytest.raises(ArtifactError, match="does not exist"):
        run.log_artifact(tmp_path / "nope.bin")


def test_secret_params_are_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_SERVICE_TOKEN", "sekret-value-12345")
    run = nbops.init(
        config={"api_key": "abc123456", "url": "https://x?t=sekret-value-12345", "lr": 0.1}
    )
    run.finish()
    params = nbops.get_run(run.id).params
    assert params["api_key"] == "[redacted]"
    assert "sekret-value-12345" not in params["url"]
    assert params["lr"] == 0.1


def test_metrics_become_durable_without_finishing() -> None:
    run = nbops.init()
    run.log({"m": 1.0})
    reader = SQLiteStore(run.store.path)  # a second connection, as another process would use
    deadline = time.monotonic() + 30  # the flusher writes every 0.2 s; a loaded machine is slower
    while not reader.get_metrics(run.id) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [p.value for p in reader.get_metrics(run.id)] == [1.0]
    assert not run.finished
    run.finish()


_KILLED_CHILD = """
import sys, time, nbops
run = nbops.init(project="killed")
print(run.id, flush=True)
i = 0
while True:
    run.log({"step_value": float(i)})
    if i % 100 == 0:
        print(i, time.time(), flush=True)
    i += 1
    time.sleep(0.001)
"""


def test_sigkill_loses_at_most_the_last_second(isolated_env: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_CHILD],
        stdout=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
    )
    assert proc.stdout is not None
    run_id = proc.stdout.readline().strip()
    seen: list[tuple[int, float]] = []
    deadline = time.time() + 60
    while time.time() < deadline:
        line = proc.stdout.readline().split()
        seen.append((int(line[0]), float(line[1])))
        if seen[-1][0] >= 1500:
            break
    killed_at = time.time()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    stored = nbops.get_run(run_id)
    assert stored.status == "crashed"
    steps = list(stored.history()["step"])
    assert steps == list(range(len(steps)))  # nothing missing in between
    # every step printed more than a second before the kill is on disk
    required = max(step for step, ts in seen if ts < killed_at - 1.0)
    assert steps[-1] >= required


_WRITER = """
import sys, nbops
run = nbops.init(project="parallel", name=sys.argv[1])
for i in range(10_000):
    run.log({"value": float(i)})
run.finish()
"""


def test_four_processes_log_10000_metrics_each_without_loss() -> None:
    procs = [
        subprocess.Popen([sys.executable, "-c", _WRITER, f"w{k}"], env=subprocess_env())
        for k in range(4)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    frame = nbops.runs(project="parallel")
    assert sorted(frame["name"]) == ["w0", "w1", "w2", "w3"]
    assert set(frame["status"]) == {"finished"}
    for run_id in frame["id"]:
        history = nbops.get_run(run_id).history()
        assert list(history["value"]) == [float(i) for i in range(10_000)]


@pytest.mark.parametrize(
    ("names", "step_column", "time_column"),
    [
        (["step", "loss"], "_step", "_timestamp"),
        (["_step", "step"], "__step", "_timestamp"),
        (["timestamp", "_timestamp"], "step", "__timestamp"),
        (["step", "_timestamp"], "_step", "__timestamp"),
    ],
)
def test_history_keeps_metrics_named_like_its_own_columns(
    names: list[str], step_column: str, time_column: str
) -> None:
    run = nbops.init()
    for i in range(3):
        run.log({name: float(i * 10 + k) for k, name in enumerate(names)}, step=i * 2)
    run.finish()
    history = nbops.get_run(run.id).history()
    assert list(history[step_column]) == [0, 2, 4]
    for k, name in enumerate(names):
        assert list(history[name]) == [float(i * 10 + k) for i in range(3)]
    assert history[time_column].notna().all()
    assert len(history.columns) == len(names) + 2


def test_history_of_a_run_without_metrics_is_empty() -> None:
    run = nbops.init()
    run.finish()
    history = nbops.get_run(run.id).history()
    assert list(history.columns) == ["step", "_timestamp"] and len(history) == 0


def test_history_has_gaps_where_a_metric_was_not_logged() -> None:
    run = nbops.init()
    run.log({"a": 1.0})
    run.log({"b": 2.0})
    run.log({"a": 3.0}, step=0)  # a later value for the same step wins
    run.finish()
    history = nbops.get_run(run.id).history()
    assert list(history["a"].fillna(-1)) == [3.0, -1]
    assert list(history["b"].fillna(-1)) == [-1, 2.0]


def test_an_overflowing_metric_names_its_key() -> None:
    from nbops.errors import MetricValueError

    run = nbops.init()
    with pytest.raises(MetricValueError, match=r"metric 'x' is too large .*1e400") as caught:
        run.log({"ok": 1, "x": 10**400})
    assert caught.value.key == "x" and caught.value.value_type == "int"
    run.finish()
    assert run.store.get_metrics(run.id) == []  # nothing of the refused call was logged


@pytest.mark.parametrize("project", ["a/b", "", "   "])
def test_init_validates_the_project_before_finishing_the_active_run(project: str) -> None:
    first = nbops.init(project="ok")
    with pytest.raises(InvalidValueError, match="invalid project name"):
        nbops.init(project=project)
    assert not first.finished and nbops.active_run() is first
    assert nbops.get_run(first.id).status == "running"
