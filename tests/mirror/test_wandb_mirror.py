from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path

import pytest

from nbops.errors import MirrorError
from nbops.mirror import (
    MirrorWarning,
    OfflineArtifact,
    WandbMirror,
    find_offline_runs,
    read_offline_run,
)

SECRET = "sekret-value-12345"
FAKE_KEY = "f" * 36 + "c0de"


def _rows(n: int) -> list[tuple[int, float, dict[str, float]]]:
    return [
        (
            step,
            1_700_000_000.0 + step * 0.5,
            {"loss": 1.0 / (step + 1), "acc": step / 100, "lr": 0.1 * 0.9**step},
        )
        for step in range(n)
    ]


def _mirror(run_id: str, directory: Path, **kwargs: object) -> WandbMirror:
    options: dict[str, object] = {
        "project": "nbops-test",
        "name": f"name-{run_id}",
        "config": {"lr": 0.1, "layers": [64, 32], "opt": {"name": "adam", "beta": 0.9}},
        "mode": "offline",
        "directory": directory,
        **kwargs,
    }
    return WandbMirror(run_id=run_id, **options)  # type: ignore[arg-type]


def test_offline_round_trip(wandb_env: Path, tmp_path: Path) -> None:
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"\x00\x01weights")
    mirror = _mirror("rt0001", wandb_env, group="grp", job_type="train", tags=("a", "b"))
    rows = _rows(50)
    mirror.log(rows[:20])
    mirror.log(rows[20:])
    mirror.update_config({"epochs": 5})
    mirror.update_summary({"best_loss": 0.02, "best_step": 49})
    mirror.log_artifact(weights, "model weights", "model")
    assert mirror.finish(timeout=60)
    state = mirror.state
    assert state.status == "finished", state
    assert state.error is None
    assert state.mode == "offline"
    assert state.url is None

    runs = find_offline_runs(wandb_env)
    assert [Path(state.run_dir or "")] == runs
    run = read_offline_run(runs[0])
    assert (run.run_id, run.name, run.project) == ("rt0001", "name-rt0001", "nbops-test")
    assert (run.group, run.job_type, run.tags) == ("grp", "train", ("a", "b"))
    assert run.config == {
        "lr": 0.1,
        "layers": [64, 32],
        "opt": {"name": "adam", "beta": 0.9},
        "epochs": 5,
    }
    assert len(run.history) == 50
    for (step, timestamp, metrics), row in zip(rows, run.history, strict=True):
        assert row == {"_step": step, "_timestamp": timestamp, **metrics}
    assert run.summary["best_loss"] == 0.02
    assert run.summary["best_step"] == 49
    assert run.summary["loss"] == rows[-1][2]["loss"]
    assert run.artifacts == [OfflineArtifact("model-weights", "model")]
    assert run.exit_code == 0
    assert run.complete


def test_two_mirrors_concurrently(wandb_env: Path) -> None:
    mirrors = [_mirror(f"cc000{i}", wandb_env) for i in range(2)]
    for step in range(20):
        for i, mirror in enumerate(mirrors):
            mirror.log([(step, 1_700_000_000.0 + step, {"x": float(step * (i + 1))})])
    results = [m.finish(exit_code=i, timeout=60) for i, m in enumerate(mirrors)]
    assert results == [True, True]
    runs = {read_offline_run(p).run_id: read_offline_run(p) for p in find_offline_runs(wandb_env)}
    assert set(runs) == {"cc0000", "cc0001"}
    for i in range(2):
        run = runs[f"cc000{i}"]
        assert [row["x"] for row in run.history] == [float(s * (i + 1)) for s in range(20)]
        assert run.exit_code == i


def test_backwards_step_is_skipped_with_one_warning(
    wandb_env: Path, caplog: pytest.LogCaptureFixture
) -> None:
    mirror = _mirror("bk0001", wandb_env)
    caplog.set_level(logging.WARNING, logger="nbops.mirror")
    mirror.log([(0, 1.0, {"m": 0.0}), (5, 2.0, {"m": 5.0}), (3, 3.0, {"m": 3.0})])
    mirror.log([(2, 4.0, {"m": 2.0}), (6, 5.0, {"m": 6.0})])
    assert mirror.finish(timeout=60)
    assert mirror.state.status == "finished"
    assert mirror.state.error is None
    run = read_offline_run(find_offline_runs(wandb_env)[0])
    assert [(r["_step"], r["m"]) for r in run.history] == [(0, 0.0), (5, 5.0), (6, 6.0)]
    step_warnings = [r for r in caplog.records if "increasing steps" in r.getMessage()]
    assert len(step_warnings) == 1


def test_disabled_mirror_does_nothing(wandb_env: Path) -> None:
    mirror = _mirror("ds0001", wandb_env, mode="disabled")
    mirror.log(_rows(3))
    assert mirror.finish(timeout=1)
    assert mirror.state.status == "disabled"
    assert not (wandb_env / "wandb").exists()


def test_online_falls_back_offline_without_blocking_caller(
    wandb_env: Path,
    closed_port_url: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    monkeypatch.setenv("WANDB_BASE_URL", closed_port_url)
    caplog.set_level(logging.WARNING, logger="nbops.mirror")
    started = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mirror = _mirror("fb0001", wandb_env, mode=None, init_timeout=3.0)
        assert time.perf_counter() - started < 2.0  # well below init_timeout: it did not wait
        worst = 0.0
        for row in _rows(30):
            t0 = time.perf_counter()
            mirror.log([row])
            worst = max(worst, time.perf_counter() - t0)
        assert mirror.finish(timeout=30)
    assert worst < 1.0  # no log call waits for the unreachable server (hang bound, not speed)
    fallback = [w for w in caught if issubclass(w.category, MirrorWarning)]
    assert len(fallback) == 1
    assert "could not be reached" in str(fallback[0].message)
    assert time.perf_counter() - started < 15
    state = mirror.state
    assert (state.mode, state.status, state.url) == ("offline", "finished", None)
    assert (state.copy, state.rows, state.total) == ("complete", 30, 30)
    assert "could not be reached (connection refused)" in (state.reason or "")
    run = read_offline_run(find_offline_runs(wandb_env)[0])
    assert run.run_id == "fb0001"
    assert len(run.history) == 30


def test_no_secret_in_any_wandb_file(
    wandb_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_SERVICE_TOKEN", SECRET)
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    monkeypatch.setattr("sys.argv", ["train.py", f"--token={SECRET}", FAKE_KEY])
    artifact = tmp_path / "notes.txt"
    artifact.write_text("plain notes")
    mirror = _mirror("sc0001", wandb_env)
    mirror.log(_rows(5))
    mirror.update_summary({"done": 1})
    mirror.log_artifact(artifact, "notes", "dataset")
    assert mirror.finish(timeout=60)
    assert mirror.state.status == "finished"
    files = [p for p in (wandb_env / "wandb").rglob("*") if p.is_file()]
    assert any(p.suffix == ".wandb" for p in files)
    assert any(p.name == "debug.log" for p in files)
    for path in files:
        data = path.read_bytes()
        assert SECRET.encode() not in data, path
        assert FAKE_KEY.encode() not in data, path


def test_truncated_file_gives_what_was_written(wandb_env: Path, tmp_path: Path) -> None:
    mirror = _mirror("tr0001", wandb_env)
    mirror.log(_rows(400))
    assert mirror.finish(timeout=60)
    source = next(find_offline_runs(wandb_env)[0].glob("run-*.wandb"))
    data = source.read_bytes()
    assert len(data) > 3 * 32 * 1024  # records cross block boundaries
    full = read_offline_run(source)
    assert [r["_step"] for r in full.history] == list(range(400))

    previous = -1
    for cut in (len(data) // 3, len(data) // 2 + 17, len(data) - 5):
        truncated = tmp_path / f"cut-{cut}.wandb"
        truncated.write_bytes(data[:cut])
        run = read_offline_run(truncated)
        assert run.run_id == "tr0001"
        assert not run.complete
        assert run.exit_code is None
        steps = [r["_step"] for r in run.history]
        assert steps == list(range(len(steps)))
        assert previous < len(steps) <= 400
        assert run.history == full.history[: len(steps)]
        previous = len(steps)
    assert previous >= 390


def test_read_rejects_non_wandb_file(tmp_path: Path) -> None:
    bogus = tmp_path / "run-x.wandb"
    bogus.write_bytes(b"not a wandb file")
    with pytest.raises(MirrorError, match="not a W&B run file"):
        read_offline_run(bogus)
    with pytest.raises(MirrorError, match=r"no run-\*\.wandb file"):
        read_offline_run(tmp_path / "empty-dir")
